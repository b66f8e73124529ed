// detnas::api search functions: cost-model wrappers by space name, uniform
// architecture sampling, and the evolution run with a caller's fitness.
#include "api/search.h"

namespace detnas::api {

Cost backbone_cost(const std::string& space_name, const Arch& arch, int64_t height, int64_t width) {
  CostOptions o;
  o.height = height;
  o.width = width;
  return search::arch_cost(nn::space_by_name(space_name), arch, o).backbone;
}

ArchCost arch_cost(const std::string& space_name, const Arch& arch, const CostOptions& options) {
  return search::arch_cost(nn::space_by_name(space_name), arch, options);
}

std::function<double(const Arch&)> latency_predictor(const LatencyTable& table) {
  return [table](const Arch& a) { return table.predict_ms(a); };
}

Arch sample_arch(const std::string& space_name, Rng& rng) {
  return search::sample_uniform_path(nn::space_by_name(space_name), rng);
}

SearchResult run_evolution(const std::string& space_name, const EvolutionConfig& config, const FitnessFn& fitness,
                           int64_t top_k, const std::function<void(const Candidate&)>& on_result) {
  DETNAS_CHECK(bool(fitness), "run_evolution: no fitness function given");
  config.validate();
  Evolution evo(nn::space_by_name(space_name), config);
  std::function<void(const Evolution&, const Candidate&)> cb;
  if (on_result) cb = [&](const Evolution&, const Candidate& c) { on_result(c); };
  SearchResult r;
  r.best = search::run_search(evo, fitness, cb, top_k);
  r.all = evo.candidates();
  r.best_by_generation = evo.best_by_generation();
  return r;
}

}  // namespace detnas::api
