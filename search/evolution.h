// Evolutionary architecture search (DETNAS.md "Evolutionary search") and the
// random-search baseline, as a step-by-step state machine so that any fitness
// (detection AP, measured latency, a toy function) can drive it and the whole
// state can be saved after every candidate and resumed exactly.
//
// Generation 0 is `population` random legal candidates. Every later generation:
// the top `parents` of ALL candidates evaluated so far are the parents;
// `mutants` children each copy a random parent and redraw every gene with
// probability `mutate_prob` (uniform over the choices); `crossovers` children
// take each gene from one of two distinct random parents with probability 1/2;
// random candidates fill the generation up to `population`. A candidate is
// legal when no earlier candidate had the same architecture and its backbone
// MACs at 224x224 are <= the budget (and its predicted latency <= the latency
// budget, when there is one); illegal draws are discarded and redrawn,
// giving up after `attempt_factor` x the wanted number of draws (the generation
// is then smaller). Strategy::Random proposes `population` random legal
// candidates per generation for the same number of generations (same number of
// evaluations, same constraint). Higher fitness is better; ties keep the
// earlier candidate. Deterministic by seed.
// Not here: evaluating candidates (search/candidate_eval.h), files and plots (cli/).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "nn/space.h"
#include "runtime/rng.h"

namespace detnas::search {

enum class Strategy { Evolution, Random };
const char* strategy_name(Strategy s);
Strategy parse_strategy(const std::string& s);  // "evolution" | "random"

struct EvolutionConfig {
  Strategy strategy = Strategy::Evolution;
  int64_t population = 50;
  int64_t parents = 10;
  int64_t mutants = 20;
  int64_t crossovers = 20;
  int64_t generations = 20;
  double mutate_prob = 0.1;
  double flops_budget_m = 300;  // backbone MMACs at 224x224; <= 0: unconstrained
  // Predicted latency of an architecture (ms; e.g. a search/latency.h table), shown
  // for every candidate when set; with latency_budget_ms > 0 a candidate predicted
  // above the budget is illegal, exactly as one above the FLOPs budget.
  std::function<double(const nn::Arch&)> latency_ms;
  double latency_budget_ms = 0;
  int64_t attempt_factor = 10;
  uint64_t seed = 0;
  void validate() const;  // throws naming the bad field
};

struct Candidate {
  int64_t index = 0;  // order of proposal, from 0
  int64_t generation = 0;
  std::string origin;  // "random", "mutation", "crossover"
  nn::Arch arch;
  double flops_m = 0;     // backbone MMACs at 224x224
  double params_m = 0;    // backbone parameters, millions
  double latency_ms = 0;  // predicted (EvolutionConfig::latency_ms), 0 without a predictor
  bool evaluated = false;
  double fitness = 0;
  double seconds = 0;  // evaluation wall time
};

class Evolution {
 public:
  Evolution(const nn::SearchSpace& space, const EvolutionConfig& config);

  // True when every generation has been proposed and evaluated (or a
  // generation could not find a single legal candidate).
  bool done();
  // The first candidate not yet evaluated, proposing the next generation when
  // the current one is complete. Requires !done().
  const Candidate& next();
  // Records the fitness of next().
  void record(double fitness, double seconds);
  // The candidates of the current generation not yet evaluated, in index order
  // (proposing the next generation when the current one is complete; empty
  // when done()). Any of them may be recorded, in any order, with record_index:
  // a generation is proposed from complete generations only, so the order in
  // which a generation's candidates are scored (one rank or many) changes nothing.
  std::vector<int64_t> pending();
  void record_index(int64_t index, double fitness, double seconds);

  const std::vector<Candidate>& candidates() const { return cands_; }
  int64_t num_evaluated() const;
  // Evaluated candidates, best first (ties: lower index), at most k.
  std::vector<Candidate> top(int64_t k) const;
  // Best fitness among candidates of generations <= g, for each generation g evaluated so far.
  std::vector<double> best_by_generation() const;
  const EvolutionConfig& config() const { return c_; }
  const nn::SearchSpace& space() const { return space_; }

  // The whole state (config, RNG, every candidate) as JSON, and back. from_json
  // checks that the stored space and config equal the given ones (a resumed
  // search must be the same search) and names the first difference.
  std::string to_json() const;
  static Evolution from_json(const nn::SearchSpace& space, const EvolutionConfig& config, const std::string& json,
                             const std::string& where);

 private:
  void propose_generation();
  bool try_add(nn::Arch a, const char* origin);
  nn::Arch random_arch();

  nn::SearchSpace space_;
  EvolutionConfig c_;
  Rng rng_;
  std::vector<Candidate> cands_;
  int64_t generation_ = -1;  // last proposed generation
  bool exhausted_ = false;
};

// Runs a whole search with `fitness`, calling `on_result` after every candidate
// (e.g. to save the state). Returns the top `k` (default: parents) candidates.
std::vector<Candidate> run_search(Evolution& evo, const std::function<double(const nn::Arch&)>& fitness,
                                  const std::function<void(const Evolution&, const Candidate&)>& on_result = {},
                                  int64_t k = -1);

}  // namespace detnas::search
