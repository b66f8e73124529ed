// Evolution / random search state machine (search/evolution.h), its JSON state.
#include "search/evolution.h"

#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>

#include "core/error.h"
#include "data/json_writer.h"
#include "search/cost_model.h"
#include "search/path_sampler.h"

namespace detnas::search {

const char* strategy_name(Strategy s) { return s == Strategy::Evolution ? "evolution" : "random"; }

Strategy parse_strategy(const std::string& s) {
  if (s == "evolution") return Strategy::Evolution;
  if (s == "random") return Strategy::Random;
  DETNAS_FAIL("search: unknown strategy '", s, "' (known: evolution, random)");
}

void EvolutionConfig::validate() const {
  DETNAS_CHECK(population > 0, "search: population must be > 0, got ", population);
  DETNAS_CHECK(generations > 0, "search: generations must be > 0, got ", generations);
  DETNAS_CHECK(parents > 0 && parents <= population, "search: parents must be in 1..population (", population,
               "), got ", parents);
  DETNAS_CHECK(mutants >= 0 && crossovers >= 0 && mutants + crossovers <= population, "search: mutants (", mutants,
               ") + crossovers (", crossovers, ") must be >= 0 and <= population (", population, ")");
  DETNAS_CHECK(mutate_prob >= 0 && mutate_prob <= 1, "search: mutation probability must be in [0, 1], got ",
               mutate_prob);
  DETNAS_CHECK(attempt_factor > 0, "search: attempt factor must be > 0, got ", attempt_factor);
  DETNAS_CHECK(std::isfinite(latency_budget_ms) && (latency_budget_ms <= 0 || latency_ms), "search: latency budget ",
               latency_budget_ms, " ms needs a latency predictor (a latency table)");
}

Evolution::Evolution(const nn::SearchSpace& space, const EvolutionConfig& config)
    : space_(space), c_(config), rng_(config.seed ^ 0xe7011ULL) {
  space_.validate();
  c_.validate();
}

nn::Arch Evolution::random_arch() { return sample_uniform_path(space_, rng_); }

bool Evolution::try_add(nn::Arch a, const char* origin) {
  for (const Candidate& c : cands_)
    if (c.arch == a) return false;
  const ArchCost cost = arch_cost(space_, a);
  const double flops = cost.backbone.mega_macs();
  if (c_.flops_budget_m > 0 && flops > c_.flops_budget_m) return false;
  const double latency = c_.latency_ms ? c_.latency_ms(a) : 0.0;
  if (c_.latency_budget_ms > 0 && latency > c_.latency_budget_ms) return false;
  Candidate c;
  c.index = int64_t(cands_.size());
  c.generation = generation_;
  c.origin = origin;
  c.arch = std::move(a);
  c.flops_m = flops;
  c.params_m = cost.backbone.mega_params();
  c.latency_ms = latency;
  cands_.push_back(std::move(c));
  return true;
}

void Evolution::propose_generation() {
  ++generation_;
  const size_t before = cands_.size();
  int64_t target = c_.population;
  if (c_.strategy == Strategy::Evolution && generation_ > 0) {
    const std::vector<Candidate> parents = top(c_.parents);
    // Mutation.
    int64_t made = 0;
    for (int64_t tries = 0; made < c_.mutants && tries < c_.mutants * c_.attempt_factor; ++tries) {
      nn::Arch a = parents[rng_.below(parents.size())].arch;
      for (int& g : a)
        if (rng_.uniform() < c_.mutate_prob) g = int(rng_.below(uint64_t(space_.num_choices)));
      made += try_add(std::move(a), "mutation");
    }
    // Crossover (needs two distinct parents).
    made = 0;
    for (int64_t tries = 0; parents.size() > 1 && made < c_.crossovers && tries < c_.crossovers * c_.attempt_factor;
         ++tries) {
      const size_t i = rng_.below(parents.size());
      size_t j = rng_.below(parents.size() - 1);
      if (j >= i) ++j;
      nn::Arch a = parents[i].arch;
      for (size_t g = 0; g < a.size(); ++g)
        if (rng_.uniform() < 0.5) a[g] = parents[j].arch[g];
      made += try_add(std::move(a), "crossover");
    }
  }
  const int64_t need = target - int64_t(cands_.size() - before);
  int64_t made = 0;
  for (int64_t tries = 0; made < need && tries < need * c_.attempt_factor; ++tries)
    made += try_add(random_arch(), "random");
  if (cands_.size() == before) exhausted_ = true;
}

bool Evolution::done() {
  if (exhausted_) return true;
  for (const Candidate& c : cands_)
    if (!c.evaluated) return false;
  if (generation_ + 1 >= c_.generations) return true;
  propose_generation();
  return exhausted_;
}

const Candidate& Evolution::next() {
  DETNAS_CHECK(!done(), "search: next() called on a finished search");
  for (const Candidate& c : cands_)
    if (!c.evaluated) return c;
  DETNAS_FAIL("search: internal error: no pending candidate");
}

void Evolution::record(double fitness, double seconds) {
  DETNAS_CHECK(std::isfinite(fitness), "search: fitness ", fitness, " is not a finite number");
  Candidate& c = const_cast<Candidate&>(next());
  c.evaluated = true;
  c.fitness = fitness;
  c.seconds = seconds;
}

std::vector<int64_t> Evolution::pending() {
  std::vector<int64_t> r;
  if (done()) return r;
  for (const Candidate& c : cands_)
    if (!c.evaluated) r.push_back(c.index);
  return r;
}

void Evolution::record_index(int64_t index, double fitness, double seconds) {
  DETNAS_CHECK(std::isfinite(fitness), "search: fitness ", fitness, " is not a finite number");
  DETNAS_CHECK(index >= 0 && index < int64_t(cands_.size()) && cands_[size_t(index)].index == index,
               "search: record_index(", index, "): no such candidate (", cands_.size(), " proposed)");
  Candidate& c = cands_[size_t(index)];
  DETNAS_CHECK(!c.evaluated, "search: candidate ", index, " was already recorded");
  c.evaluated = true;
  c.fitness = fitness;
  c.seconds = seconds;
}

int64_t Evolution::num_evaluated() const {
  int64_t n = 0;
  for (const Candidate& c : cands_) n += c.evaluated;
  return n;
}

std::vector<Candidate> Evolution::top(int64_t k) const {
  std::vector<Candidate> r;
  for (const Candidate& c : cands_)
    if (c.evaluated) r.push_back(c);
  std::stable_sort(r.begin(), r.end(), [](const Candidate& a, const Candidate& b) { return a.fitness > b.fitness; });
  if (k >= 0 && int64_t(r.size()) > k) r.resize(size_t(k));
  return r;
}

std::vector<double> Evolution::best_by_generation() const {
  std::vector<double> best;
  for (const Candidate& c : cands_) {
    if (!c.evaluated) continue;
    while (int64_t(best.size()) <= c.generation) best.push_back(best.empty() ? -INFINITY : best.back());
    for (size_t g = size_t(c.generation); g < best.size(); ++g) best[g] = std::max(best[g], c.fitness);
  }
  return best;
}

// ---- state -----------------------------------------------------------------

namespace {
void write_config(data::JsonWriter& j, const nn::SearchSpace& space, const EvolutionConfig& c) {
  j.field("space", space.name).field("strategy", strategy_name(c.strategy)).field("population", c.population);
  j.field("parents", c.parents).field("mutants", c.mutants).field("crossovers", c.crossovers);
  j.field("generations", c.generations).field("mutate_prob", c.mutate_prob).field("flops_budget_m", c.flops_budget_m);
  j.field("attempt_factor", c.attempt_factor).field("seed", (unsigned long long)c.seed);
  if (c.latency_budget_ms > 0) j.field("latency_budget_ms", c.latency_budget_ms);  // states from before stay valid
}
}  // namespace

std::string Evolution::to_json() const {
  data::JsonWriter j(data::JsonStyle::Compact);
  j.begin_object().field("version", 1);
  j.key("config").begin_object();
  write_config(j, space_, c_);
  j.end_object();
  j.key("rng").begin_array().value((unsigned long long)rng_.state0()).value((unsigned long long)rng_.state1());
  j.end_array();
  j.field("generation", generation_).field("exhausted", exhausted_);
  j.key("candidates").begin_array();
  for (const Candidate& c : cands_) {
    j.begin_object().field("index", c.index).field("generation", c.generation).field("origin", c.origin);
    j.field("arch", nn::format_arch(c.arch)).field("flops_m", c.flops_m).field("params_m", c.params_m);
    j.field("latency_ms", c.latency_ms)
        .field("evaluated", c.evaluated)
        .field("fitness", c.fitness)
        .field("seconds", c.seconds)
        .end_object();
  }
  j.end_array().end_object();
  return j.str();
}

Evolution Evolution::from_json(const nn::SearchSpace& space, const EvolutionConfig& config, const std::string& json,
                               const std::string& where) {
  Evolution e(space, config);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  auto err = parser.parse(json).get(doc);
  DETNAS_CHECK(!err, where, ": not valid JSON (", simdjson::error_message(err), ")");
  try {
    // The stored config must be this config.
    data::JsonWriter want(data::JsonStyle::Compact);
    want.begin_object();
    write_config(want, space, config);
    want.end_object();
    simdjson::dom::element want_doc;
    simdjson::dom::parser p2;
    DETNAS_CHECK(!p2.parse(want.str()).get(want_doc), "search: internal error writing the config");
    simdjson::dom::object stored = doc["config"].get_object();
    for (auto [key, value] : want_doc.get_object()) {
      simdjson::dom::element s;
      DETNAS_CHECK(!stored[key].get(s), where, ": the saved search has no '", std::string(key),
                   "'; it was written by another version");
      const std::string a = simdjson::minify(s), b = simdjson::minify(value);
      DETNAS_CHECK(a == b, where, ": the saved search has ", std::string(key), " = ", a, " but this run asks for ", b,
                   "; resume with the same options or use a new --out");
    }
    for (auto [key, value] : stored) {
      simdjson::dom::element w;
      DETNAS_CHECK(!want_doc[key].get(w), where, ": the saved search has ", std::string(key), " = ",
                   simdjson::minify(value), " but this run has none; resume with the same options or use a new --out");
    }
    simdjson::dom::array rng = doc["rng"].get_array();
    DETNAS_CHECK(rng.size() == 2, where, ": 'rng' must hold two numbers");
    e.rng_.set_state(uint64_t(rng.at(0).get_uint64()), uint64_t(rng.at(1).get_uint64()));
    e.generation_ = int64_t(doc["generation"].get_int64());
    e.exhausted_ = bool(doc["exhausted"].get_bool());
    // Only states the machine can reach: next() and propose_generation() rely on
    // them (a later generation draws its parents from the evaluated candidates).
    DETNAS_CHECK(e.generation_ >= -1 && e.generation_ < config.generations, where, ": generation ", e.generation_,
                 " is outside -1..", config.generations - 1);
    for (simdjson::dom::element ce : doc["candidates"].get_array()) {
      Candidate c;
      c.index = int64_t(ce["index"].get_int64());
      c.generation = int64_t(ce["generation"].get_int64());
      c.origin = std::string(std::string_view(ce["origin"].get_string()));
      c.arch = nn::parse_arch(std::string(std::string_view(ce["arch"].get_string())));
      nn::validate_arch(space, c.arch);
      c.flops_m = double(ce["flops_m"].get_double());
      c.params_m = double(ce["params_m"].get_double());
      if (double lat = 0; !ce["latency_ms"].get(lat)) c.latency_ms = lat;  // absent in states from before
      c.evaluated = bool(ce["evaluated"].get_bool());
      c.fitness = double(ce["fitness"].get_double());
      c.seconds = double(ce["seconds"].get_double());
      DETNAS_CHECK(c.index == int64_t(e.cands_.size()), where, ": candidate ", e.cands_.size(), " has index ", c.index);
      const Candidate* prev = e.cands_.empty() ? nullptr : &e.cands_.back();
      DETNAS_CHECK(c.generation >= (prev ? prev->generation : 0) && c.generation <= e.generation_, where,
                   ": candidate ", c.index, " has generation ", c.generation, " (expected ",
                   prev ? prev->generation : 0, "..", e.generation_, ")");
      DETNAS_CHECK(!c.evaluated || !prev || prev->evaluated, where, ": candidate ", c.index,
                   " is evaluated but candidate ", c.index - 1, " is not");
      e.cands_.push_back(std::move(c));
    }
    DETNAS_CHECK(
        e.generation_ < 0 || e.exhausted_ || (!e.cands_.empty() && e.cands_.back().generation == e.generation_), where,
        ": generation ", e.generation_, " has no candidates but the search is not marked exhausted");
  } catch (const simdjson::simdjson_error& ex) {
    DETNAS_FAIL(where, ": malformed search state (", ex.what(), ")");
  }
  return e;
}

std::vector<Candidate> run_search(Evolution& evo, const std::function<double(const nn::Arch&)>& fitness,
                                  const std::function<void(const Evolution&, const Candidate&)>& on_result, int64_t k) {
  while (!evo.done()) {
    const nn::Arch arch = evo.next().arch;
    const auto t0 = std::chrono::steady_clock::now();
    const double f = fitness(arch);
    evo.record(f, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (on_result) on_result(evo, evo.candidates()[size_t(evo.num_evaluated() - 1)]);
  }
  return evo.top(k < 0 ? evo.config().parents : k);
}

}  // namespace detnas::search
