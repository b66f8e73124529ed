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

// Evolution: config (population, parents, mutants, crossovers, generations,
// mutate_prob, flops_budget_m, strategy, seed), candidates, and the
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
