// Evolutionary / random search (search/evolution.h) with toy fitness functions:
// legality (unique, within the FLOPs budget checked with the independent cost
// model), the make-up of a generation (mutants/crossovers from the top-k of all
// evaluated so far), determinism by seed, exact resume from the JSON state,
// config mismatch on resume, an exhausted space, and evolution beating random
// search on a fitness with a known optimum.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include "core/error.h"
#include "nn/space.h"
#include "search/cost_model.h"
#include "search/evolution.h"

using namespace detnas;
using search::Candidate;
using search::Evolution;
using search::EvolutionConfig;

namespace {

const nn::SearchSpace& tiny() { return nn::space_by_name("tiny"); }

// Number of genes equal to a hidden target: optimum = total_blocks.
double match_fitness(const nn::Arch& a) {
  double f = 0;
  for (size_t i = 0; i < a.size(); ++i) f += a[i] == int((i * 7 + 3) % 4);
  return f;
}

EvolutionConfig small_config(uint64_t seed) {
  EvolutionConfig c;
  c.population = 12;
  c.parents = 4;
  c.mutants = 4;
  c.crossovers = 4;
  c.generations = 5;
  c.flops_budget_m = 0;
  c.seed = seed;
  return c;
}

std::vector<std::string> archs(const Evolution& e) {
  std::vector<std::string> r;
  for (const Candidate& c : e.candidates()) r.push_back(nn::format_arch(c.arch) + "/" + c.origin);
  return r;
}

}  // namespace

TEST_CASE("search: generations are legal, unique, within budget, and built from the top-k") {
  const nn::SearchSpace& space = nn::space_by_name("300M");
  EvolutionConfig c;  // reference sizes
  c.generations = 3;
  c.flops_budget_m = 300;
  c.seed = 5;
  Evolution evo(space, c);
  search::run_search(evo, match_fitness);
  const auto& cs = evo.candidates();
  CHECK(cs.size() == 150);
  std::set<nn::Arch> seen;
  for (const Candidate& x : cs) {
    CHECK(seen.insert(x.arch).second);
    const int64_t macs = search::backbone_flops(space, x.arch);
    CHECK(double(macs) * 1e-6 <= 300.0);
    CHECK(x.flops_m == doctest::Approx(double(macs) * 1e-6));
    CHECK(x.evaluated);
  }
  for (int64_t g = 1; g < 3; ++g) {
    // Parents: top 10 of generations < g.
    std::vector<Candidate> before;
    for (const Candidate& x : cs)
      if (x.generation < g) before.push_back(x);
    std::stable_sort(before.begin(), before.end(),
                     [](const Candidate& a, const Candidate& b) { return a.fitness > b.fitness; });
    before.resize(10);
    int mut = 0, cross = 0, rnd = 0;
    for (const Candidate& x : cs) {
      if (x.generation != g) continue;
      if (x.origin == "mutation") {
        ++mut;
        // Within a few genes of some parent (p = 0.1 over 20 genes).
        int best = 99;
        for (const Candidate& p : before) {
          int d = 0;
          for (size_t i = 0; i < x.arch.size(); ++i) d += x.arch[i] != p.arch[i];
          best = std::min(best, d);
        }
        CHECK(best >= 1);
        CHECK(best <= 8);
      } else if (x.origin == "crossover") {
        ++cross;
        bool explained = false;
        for (const Candidate& p : before)
          for (const Candidate& q : before) {
            bool ok = &p != &q;
            for (size_t i = 0; ok && i < x.arch.size(); ++i) ok = x.arch[i] == p.arch[i] || x.arch[i] == q.arch[i];
            explained = explained || ok;
          }
        CHECK(explained);
      } else {
        CHECK(x.origin == "random");
        ++rnd;
      }
    }
    CHECK(mut == 20);
    CHECK(cross == 20);
    CHECK(rnd == 10);
  }
}

TEST_CASE("search: deterministic by seed; the random strategy has the same size and constraint") {
  Evolution a(tiny(), small_config(3)), b(tiny(), small_config(3)), c(tiny(), small_config(4));
  search::run_search(a, match_fitness);
  search::run_search(b, match_fitness);
  search::run_search(c, match_fitness);
  CHECK(archs(a) == archs(b));
  CHECK(archs(a) != archs(c));
  EvolutionConfig rc = small_config(3);
  rc.strategy = search::Strategy::Random;
  Evolution r(tiny(), rc);
  search::run_search(r, match_fitness);
  CHECK(r.candidates().size() == a.candidates().size());
  for (const Candidate& x : r.candidates()) CHECK(x.origin == "random");
}

TEST_CASE("search: resume from the saved state after every candidate continues exactly") {
  Evolution full(tiny(), small_config(9));
  search::run_search(full, match_fitness);
  for (int64_t stop : {1, 12, 13, 30}) {
    Evolution part(tiny(), small_config(9));
    for (int64_t i = 0; i < stop; ++i) part.record(match_fitness(part.next().arch), 0.5);
    const std::string state = part.to_json();
    Evolution resumed = Evolution::from_json(tiny(), small_config(9), state, "state.json");
    CHECK(resumed.num_evaluated() == stop);
    search::run_search(resumed, match_fitness);
    CHECK(archs(resumed) == archs(full));
    CHECK(resumed.top(3)[0].fitness == full.top(3)[0].fitness);
    CHECK(resumed.candidates()[0].seconds == 0.5);
  }
}

TEST_CASE("search: resuming with other options or a damaged state fails by name") {
  Evolution part(tiny(), small_config(9));
  part.record(1.0, 0.1);
  const std::string state = part.to_json();
  EvolutionConfig other = small_config(9);
  other.population = 13;
  try {
    Evolution::from_json(tiny(), other, state, "runs/s/state.json");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("population") != std::string::npos);
    CHECK(std::string(e.what()).find("runs/s/state.json") != std::string::npos);
  }
  CHECK_THROWS_AS(Evolution::from_json(tiny(), small_config(9), state.substr(0, state.size() / 2), "x"), Error);
  CHECK_THROWS_AS(Evolution::from_json(nn::space_by_name("300M"), small_config(9), state, "x"), Error);
  CHECK_THROWS_AS(part.record(NAN, 0), Error);
  EvolutionConfig bad = small_config(1);
  bad.parents = 0;
  CHECK_THROWS_AS(Evolution(tiny(), bad), Error);
}

TEST_CASE("search: an impossible budget ends the search instead of looping") {
  EvolutionConfig c = small_config(2);
  c.flops_budget_m = 0.001;
  Evolution e(tiny(), c);
  CHECK(e.done());
  CHECK(e.candidates().empty());
}

TEST_CASE("search: evolution finds better candidates than random search on a known optimum") {
  // Same number of evaluations; over 5 seeds the evolution's best must beat random's best on average.
  double evo_sum = 0, rnd_sum = 0;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    EvolutionConfig c = small_config(seed);
    c.population = 20;
    c.parents = 5;
    c.mutants = 8;
    c.crossovers = 8;
    c.generations = 8;
    Evolution e(nn::space_by_name("300M"), c);
    evo_sum += search::run_search(e, match_fitness)[0].fitness;
    c.strategy = search::Strategy::Random;
    Evolution r(nn::space_by_name("300M"), c);
    rnd_sum += search::run_search(r, match_fitness)[0].fitness;
  }
  CHECK(evo_sum > rnd_sum + 5 * 2);  // at least 2 more matching genes per seed on average
}
