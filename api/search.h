// Public API, search part (installed as <detnas/search.h>): FLOPs
// (multiply-adds) and parameter counts of an architecture in a space from the
// analytic cost model (no network is built), uniform path sampling, and the
// DetNAS evolutionary search (or its random baseline) driven by a fitness
// callback of the caller (detection AP, measured latency, any metric; higher is
// better) under a backbone FLOPs budget.
// Not here: building or training networks (models.h); scoring a path by COCO
// AP (search/candidate_eval.h, internal).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models.h"
#include "runtime/rng.h"
#include "search/cost_model.h"
#include "search/evolution.h"
#include "search/latency.h"
#include "search/latency_measure.h"
#include "search/path_sampler.h"

namespace detnas::api {

using search::ArchCost;
using search::Cost;
using search::CostOptions;

// Backbone (stem + blocks) cost at batch 1 and a height x width input;
// 224 x 224 is the quantity DetNAS's FLOPs budgets refer to.
Cost backbone_cost(const std::string& space_name, const Arch& arch, int64_t height = 224, int64_t width = 224);
// Full breakdown: stem, per block, per stage, classification head.
ArchCost arch_cost(const std::string& space_name, const Arch& arch, const CostOptions& options = {});
// One uniformly random choice per block.
Arch sample_arch(const std::string& space_name, Rng& rng);

// Latency tables (`detnas latency-table`): measured per-block, per-choice
// inference times on one machine; predict_ms(arch) sums an architecture's
// entries and the fixed parts. measure_latency_table / measure_arch_latency time
// them on this machine (CPU). Set EvolutionConfig::latency_ms to a table's
// predictor (and latency_budget_ms) to search under a latency budget;
// latency_objective is the soft-constraint fitness AP x (latency / target)^w.
using search::latency_objective;
using search::LatencyMeasureOptions;
using search::LatencyTable;
using search::measure_arch_latency;
using search::measure_latency_table;
using search::read_latency_table;
using search::write_latency_table;
// The predictor of a table as EvolutionConfig::latency_ms wants it (the table is copied).
std::function<double(const Arch&)> latency_predictor(const LatencyTable& table);

// Evolution: config (population, parents, mutants, crossovers, generations,
// mutate_prob, flops_budget_m, latency_ms + latency_budget_ms, strategy, seed), candidates, and the
// step-by-step search::Evolution (next / record / to_json / from_json) for
// callers that evaluate asynchronously or save and resume the state.
using search::Candidate;
using search::Evolution;
using search::EvolutionConfig;
using search::Strategy;

// Fitness of one architecture; higher is better. An exception thrown here
// stops the search and propagates to the caller.
using FitnessFn = std::function<double(const Arch&)>;

struct SearchResult {
  std::vector<Candidate> best;             // top_k evaluated candidates, best first
  std::vector<Candidate> all;              // every candidate in proposal order
  std::vector<double> best_by_generation;  // best fitness up to each generation
};

// Runs the whole search on `space_name`; `on_result` (optional) is called after
// every evaluated candidate (progress, logging). top_k < 0: config.parents.
SearchResult run_evolution(const std::string& space_name, const EvolutionConfig& config, const FitnessFn& fitness,
                           int64_t top_k = -1, const std::function<void(const Candidate&)>& on_result = {});

}  // namespace detnas::api
