// Example: DetNAS evolutionary search in the tiny space with a fitness supplied
// by the caller (here a toy "latency" model: prefer small kernels early and
// Xception blocks late) under a backbone FLOPs budget; prints the progress and
// the best architectures with their FLOPs and parameters from the cost model.
// Build: g++ search_custom_fitness.cpp $(pkg-config --cflags --libs detnas)
#include <detnas/detnas.h>

#include <cstdio>

using namespace detnas;

// Any metric works (measured latency, AP of a proxy task, ...); higher is better.
static double toy_fitness(const api::Arch& arch) {
  double f = 0;
  for (size_t i = 0; i < arch.size(); ++i) {
    const bool late = i >= arch.size() / 2;
    f += late ? (arch[i] == 3 ? 1.0 : 0.0) : (arch[i] == 0 ? 1.0 : 0.0);
  }
  return f;
}

int main(int argc, char** argv) {
  api::use_best_blas_kernels(argv);
  try {
    api::EvolutionConfig cfg;
    cfg.population = 16;
    cfg.parents = 4;
    cfg.mutants = 6;
    cfg.crossovers = 6;
    cfg.generations = 6;
    cfg.mutate_prob = 0.2;
    cfg.flops_budget_m = 42;  // backbone MMACs at 224x224 (tiny space: 37..49)
    cfg.seed = 3;
    int64_t last_gen = -1;
    api::SearchResult r = api::run_evolution("tiny", cfg, toy_fitness, 3, [&](const api::Candidate& c) {
      if (c.generation != last_gen)
        std::printf("%sgeneration %lld:", last_gen < 0 ? "" : "\n", (long long)c.generation);
      last_gen = c.generation;
      std::printf(" %.0f", c.fitness);
    });
    std::printf("\n%zu candidates evaluated; best fitness per generation:", r.all.size());
    for (double b : r.best_by_generation) std::printf(" %.0f", b);
    std::printf("\n");
    for (const api::Candidate& c : r.best) {
      api::Cost cost = api::backbone_cost("tiny", c.arch);
      std::printf("fitness %.0f  arch %s  %.2fM MACs  %.3fM params  (%s, generation %lld)\n", c.fitness,
                  api::format_arch(c.arch).c_str(), cost.mega_macs(), cost.mega_params(), c.origin.c_str(),
                  (long long)c.generation);
    }
  } catch (const api::Error& e) {
    std::fprintf(stderr, "search_custom_fitness: %s\n", e.what());
    return 1;
  }
  return 0;
}
