// Latency tables (search/latency.h, search/latency_measure.h) and the latency
// budget of the searcher (search/evolution.h): the file format round trip, the
// predictor against hand sums, bad tables (clear errors naming the field), the
// budget as a hard constraint for evolution and random search, the soft
// objective, resume checks, and a (fast-protocol) measured table's structure.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <set>
#include <string>

#include "runtime/fs.h"
#include "search/evolution.h"
#include "search/latency.h"
#include "search/latency_measure.h"
#include "tests/test_util.h"

using namespace detnas;

namespace {

// A table for the tiny space (10 blocks): choice c of block b costs 1 + b + 2c
// ms (Xception the slowest), fixed parts 5 + 7 ms.
search::LatencyTable toy_table() {
  search::LatencyTable t;
  t.space = "tiny";
  t.detector = "fpn";
  t.height = 320;
  t.width = 320;
  t.threads = 2;
  t.machine = "test";
  t.fixed = {{"stem", 5.0}, {"detector", 7.0}};
  for (int b = 0; b < 10; ++b) t.blocks.push_back({1.0 + b, 3.0 + b, 5.0 + b, 7.0 + b});
  return t;
}

std::string replace_once(std::string s, const std::string& from, const std::string& to) {
  const size_t i = s.find(from);
  REQUIRE_MESSAGE(i != std::string::npos, from);
  return s.replace(i, from.size(), to);
}

}  // namespace

TEST_CASE("latency table: JSON round trip and the predictor") {
  const search::LatencyTable t = toy_table();
  const search::LatencyTable u = search::LatencyTable::from_json(t.to_json(), "toy");
  CHECK(u.space == "tiny");
  CHECK(u.detector == "fpn");
  CHECK(u.height == 320);
  CHECK(u.threads == 2);
  CHECK(u.fixed == t.fixed);
  CHECK(u.blocks == t.blocks);
  const nn::Arch a = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1};
  double want = 12;
  for (int b = 0; b < 10; ++b) want += 1.0 + b + 2.0 * a[size_t(b)];
  CHECK(u.predict_ms(a) == doctest::Approx(want).epsilon(1e-12));
  CHECK(u.fixed_ms() == 12.0);
  CHECK_THROWS_WITH_AS(u.predict_ms({0, 1}), doctest::Contains("2 blocks"), Error);
  // The soft objective: AP x (latency / target)^w.
  CHECK(search::latency_objective(0.5, 10, 10) == doctest::Approx(0.5));
  CHECK(search::latency_objective(0.5, 20, 10) == doctest::Approx(0.5 * std::pow(2.0, -0.07)));
  CHECK(search::latency_objective(0.5, 20, 10) < search::latency_objective(0.5, 10, 10));
  CHECK_THROWS_AS(search::latency_objective(0.5, 0, 10), Error);
}

TEST_CASE("latency table: bad tables name the problem") {
  const std::string good = toy_table().to_json();
  auto bad = [&](const std::string& text, const std::string& needle) {
    CHECK_THROWS_WITH_AS(search::LatencyTable::from_json(text, "t.json"), doctest::Contains(needle.c_str()), Error);
  };
  bad("{", "not valid JSON");
  bad(replace_once(good, "detnas-latency-1", "detnas-latency-9"), "not a detnas latency table");
  bad(replace_once(good, "\"space\": \"tiny\"", "\"space\": \"huge\""), "huge");
  bad(replace_once(good, "\"stem\"", "\"stm\""), "fixed part 'stem' missing");
  search::LatencyTable neg = toy_table();
  neg.fixed["stem"] = -5;
  bad(neg.to_json(), "fixed.stem = -5");
  bad(replace_once(good, "\"batch\": 1", "\"batch\": 0"), "'batch'");
  // A row with 3 entries; one row missing (9 blocks for tiny's 10).
  search::LatencyTable t = toy_table();
  t.blocks[4].pop_back();
  bad(t.to_json(), "blocks[4] has 3 entries");
  t = toy_table();
  t.blocks.pop_back();
  bad(t.to_json(), "9 block rows");
  // Another space than the search's.
  CHECK_THROWS_WITH_AS(toy_table().check_space(nn::space_by_name("300M"), "t.json"),
                       doctest::Contains("latency table of space 'tiny', not '300M'"), Error);
  const std::string dir = "/tmp/detnas_latency_" + std::to_string(::getpid());
  make_dirs(dir);
  search::write_latency_table(dir + "/t.json", toy_table());
  CHECK(search::read_latency_table(dir + "/t.json", "tiny").blocks.size() == 10);
  CHECK_THROWS_WITH_AS(search::read_latency_table(dir + "/t.json", "300M"),
                       doctest::Contains((dir + "/t.json").c_str()), Error);
  CHECK_THROWS_WITH_AS(search::read_latency_table(dir + "/none.json"), doctest::Contains("does not exist"), Error);
  remove_all(dir);
}

TEST_CASE("latency budget: every candidate of evolution and random search is under it") {
  const search::LatencyTable t = toy_table();
  const nn::SearchSpace& space = nn::space_by_name("tiny");
  for (search::Strategy st : {search::Strategy::Evolution, search::Strategy::Random}) {
    search::EvolutionConfig c;
    c.strategy = st;
    c.population = 12;
    c.parents = 4;
    c.mutants = 4;
    c.crossovers = 4;
    c.generations = 4;
    c.flops_budget_m = 0;
    c.seed = 3;
    c.latency_ms = [t](const nn::Arch& a) { return t.predict_ms(a); };
    // All-k3 costs 12 + 55 = 67 ms, all-Xception 127 ms; 90 ms keeps about half the space.
    c.latency_budget_ms = 90;
    search::Evolution evo(space, c);
    // A fitness that prefers the slow choices: the constraint has to hold it back.
    auto fitness = [](const nn::Arch& a) {
      double s = 0;
      for (int g : a) s += g;
      return s;
    };
    search::run_search(evo, fitness);
    REQUIRE(evo.num_evaluated() > 0);
    for (const search::Candidate& cand : evo.candidates()) {
      CHECK(cand.latency_ms == doctest::Approx(t.predict_ms(cand.arch)));
      CHECK(cand.latency_ms <= 90.0);
    }
    // Without the budget the same search goes above it.
    c.latency_budget_ms = 0;
    search::Evolution free(space, c);
    search::run_search(free, fitness);
    double worst = 0;
    for (const search::Candidate& cand : free.candidates()) worst = std::max(worst, cand.latency_ms);
    CHECK(worst > 90.0);
    // The state keeps the predicted latency; a resume must ask for the same budget.
    c.latency_budget_ms = 90;
    const std::string state = evo.to_json();
    search::Evolution back = search::Evolution::from_json(space, c, state, "state.json");
    CHECK(back.candidates()[3].latency_ms == evo.candidates()[3].latency_ms);
    search::EvolutionConfig other = c;
    other.latency_budget_ms = 80;
    CHECK_THROWS_WITH_AS(search::Evolution::from_json(space, other, state, "state.json"),
                         doctest::Contains("latency_budget_ms"), Error);
    other.latency_budget_ms = 0;
    CHECK_THROWS_WITH_AS(search::Evolution::from_json(space, other, state, "state.json"),
                         doctest::Contains("latency_budget_ms"), Error);
  }
  // A budget without a predictor is refused.
  search::EvolutionConfig c;
  c.latency_budget_ms = 10;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("latency predictor"), Error);
}

TEST_CASE("latency table: measured on this machine, structure and predictor") {
  search::LatencyMeasureOptions o;
  o.space = "tiny";
  o.config.kind = "retinanet";
  o.config.num_classes = 3;
  o.config.fpn_channels = 16;
  o.config.head_depth = 1;
  o.height = 64;
  o.width = 64;
  o.warmup = 0;
  o.min_repeats = 1;
  o.min_seconds = 0;
  int64_t calls = 0, last_total = 0;
  const search::LatencyTable t = search::measure_latency_table(o, [&](int64_t done, int64_t total) {
    CHECK(done == ++calls);
    last_total = total;
  });
  CHECK(calls == 2 + 10 * 4);
  CHECK(last_total == calls);
  CHECK(t.space == "tiny");
  CHECK(t.detector == "retinanet");
  CHECK(t.blocks.size() == 10);
  for (const auto& row : t.blocks)
    for (double v : row) CHECK((std::isfinite(v) && v > 0));
  CHECK(t.fixed.at("stem") > 0);
  CHECK(t.fixed.at("detector") > 0);
  // It reads back, and the predictor and a measurement give positive times.
  const search::LatencyTable u = search::LatencyTable::from_json(t.to_json(), "measured");
  const nn::Arch a = {3, 2, 1, 0, 3, 2, 1, 0, 3, 2};
  CHECK(u.predict_ms(a) > t.fixed_ms());
  CHECK(search::measure_arch_latency(o, a) > 0);
  o.config.kind = "fpn";
  o.config.fc_dim = 32;
  o.config.rpn_post_nms_test = 10;
  CHECK(search::measure_latency_table(o).fixed.at("detector") > 0);
  CHECK(search::measure_arch_latency(o, a) > 0);
}
