// `detnas search`: evolutionary (or random) search over the paths of a trained
// detector supernet (search/evolution.h), each candidate scored by COCO AP after
// BN recalibration (search/candidate_eval.h). The state (config, RNG, every
// candidate) is rewritten atomically after each candidate; --resume continues
// with no candidate lost or evaluated twice. Run folder: state.json,
// search.jsonl (one record per candidate), top10.json, plot.svg (AP against
// FLOPs coloured by generation, budget line, Pareto front).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

#include "cli/command.h"
#include "cli/det_common.h"
#include "cli/option_checks.h"
#include "cli/run_log.h"
#include "cli/svg_plot.h"
#include "core/log.h"
#include "data/json_writer.h"
#include "runtime/dist.h"
#include "runtime/fault.h"
#include "runtime/fs.h"
#include "search/candidate_eval.h"
#include "search/cost_model.h"
#include "search/evolution.h"
#include "search/latency.h"

namespace detnas::cli {
namespace {

struct SearchOptions {
  DeviceOptions dev;
  DataOptions d;
  std::string ckpt = "runs/train/last", out = "runs/search", strategy = "evolution", latency_table, objective = "ap";
  double latency_budget = 0, latency_weight = -0.07;
  int64_t population = -1, parents = -1, mutants = -1, crossovers = -1, generations = -1, attempt_factor = 10;
  double mutate_prob = 0.1, budget = -1, bn_momentum = 0;
  int64_t bn_images = -1, batch = -1, threads = 0, stop_after = -1, cache_mb = 2048;
  uint64_t seed = 1;
  bool resume = false;
};

// Reference sizes for the COCO spaces; a small search for the CPU-sized space.
search::EvolutionConfig default_config(const nn::SearchSpace& space) {
  search::EvolutionConfig c;
  if (space.name == "tiny") {
    c.population = 16;
    c.parents = 4;
    c.mutants = 6;
    c.crossovers = 6;
    c.generations = 6;
    c.flops_budget_m = 42;  // tiny spans 37.1 (all k3) .. 49.4 (all k7) MMACs at 224
  } else if (space.name == "1.3G") {
    c.flops_budget_m = 1300;
  } else if (space.name == "3.8G") {
    c.flops_budget_m = 3800;
  }
  return c;
}

// How a candidate's AP becomes its fitness: the AP itself, or with a latency
// target the soft-constraint objective AP x (latency / target)^w.
struct Objective {
  bool latency = false;
  double target_ms = 0, w = -0.07;
  double fitness(double ap, double latency_ms) const {
    return latency ? search::latency_objective(ap, latency_ms, target_ms, w) : ap;
  }
  double ap(const search::Candidate& c) const {
    return latency ? c.fitness / std::pow(c.latency_ms / target_ms, w) : c.fitness;
  }
};

void write_outputs(const search::Evolution& evo, const std::string& out, const Objective& obj) {
  // top10.json
  data::JsonWriter t(data::JsonStyle::Pretty);
  t.begin_array();
  for (const search::Candidate& c : evo.top(10)) {
    t.begin_object().field("arch", nn::format_arch(c.arch)).field("ap", obj.ap(c));
    if (obj.latency) t.field("fitness", c.fitness);
    t.key("flops_m").value(c.flops_m, data::Precision{7}).key("params_m").value(c.params_m, data::Precision{7});
    if (c.latency_ms > 0) t.field("latency_ms", c.latency_ms);
    t.field("generation", c.generation).field("index", c.index).end_object();
  }
  t.end_array();
  write_file_atomic(path_join(out, "top10.json"), t.str());
  // plot.svg
  std::vector<double> x, y, lat;
  Series pts;
  pts.line = false;
  pts.points = true;
  pts.label = "candidates";
  const int64_t gens = std::max<int64_t>(1, evo.config().generations - 1);
  for (const search::Candidate& c : evo.candidates()) {
    if (!c.evaluated) continue;
    x.push_back(c.flops_m);
    y.push_back(obj.ap(c));
    lat.push_back(c.latency_ms);
    pts.point_colors.push_back(ramp_color(double(c.generation) / double(gens)));
  }
  pts.x = x;
  pts.y = y;
  pts.color = ramp_color(0.5);
  Series front;
  front.label = "Pareto front";
  front.color = "#2ca02c";
  for (size_t i : pareto_front(x, y)) {
    front.x.push_back(x[i]);
    front.y.push_back(y[i]);
  }
  Chart scatter{std::string(search::strategy_name(evo.config().strategy)) + " search: AP against backbone FLOPs " +
                    "(colour: generation, blue first, red last)",
                "backbone MMACs at 224x224",
                "AP",
                {pts, front},
                {}};
  if (evo.config().flops_budget_m > 0) scatter.vlines.push_back({evo.config().flops_budget_m, "budget", "#d62728"});
  Series best;
  best.label = "best so far";
  best.points = true;
  const std::vector<double> bg = evo.best_by_generation();
  for (size_t g = 0; g < bg.size(); ++g) {
    best.x.push_back(double(g));
    best.y.push_back(bg[g]);
  }
  Chart progress{obj.latency ? "best fitness (AP x (latency / target)^w) by generation" : "best AP by generation",
                 "generation",
                 obj.latency ? "fitness" : "AP",
                 {best},
                 {}};
  std::vector<Chart> charts = {scatter, progress};
  if (evo.config().latency_ms) {  // AP against predicted latency, same points
    Series lp = pts;
    lp.x = lat;
    Chart by_latency{"AP against predicted latency (latency table)", "predicted latency (ms)", "AP", {lp}, {}};
    if (evo.config().latency_budget_ms > 0)
      by_latency.vlines.push_back({evo.config().latency_budget_ms, "budget", "#d62728"});
    if (obj.latency) by_latency.vlines.push_back({obj.target_ms, "target", "#d62728"});
    charts.insert(charts.begin() + 1, by_latency);
  }
  write_file_atomic(path_join(out, "plot.svg"), render_svg(charts));
}

// One candidate's result as sent between ranks (plain doubles, same binary on every rank).
struct CandidateScore {
  int64_t index = -1;
  double ap = 0, ap50 = 0, ap75 = 0, recal_seconds = 0, infer_seconds = 0;
};

void run_search(SearchOptions o) {
  const rt::Device dev = select_run_device(o.dev, "search");
  set_threads(o.threads);
  LoadedDetector m = load_detector(o.ckpt, "", "search", dev);
  DETNAS_CHECK(m.supernet, "search: ", o.ckpt, " is a standalone network (", m.meta.arch,
               "); search needs a supernet checkpoint from detnas train");
  DetData dd = load_det_data(o.d, "search");
  DETNAS_CHECK(dd.train.num_classes() == m.config.num_classes, "search: ", o.ckpt, " was trained for ",
               m.config.num_classes, " classes but the data has ", dd.train.num_classes());
  const nn::SearchSpace& space = nn::space_by_name(m.meta.space);
  search::EvolutionConfig c = default_config(space);
  c.strategy = search::parse_strategy(o.strategy);
  if (o.population > 0) c.population = o.population;
  if (o.parents > 0) c.parents = o.parents;
  if (o.mutants >= 0) c.mutants = o.mutants;
  if (o.crossovers >= 0) c.crossovers = o.crossovers;
  if (o.generations > 0) c.generations = o.generations;
  if (o.budget >= 0) c.flops_budget_m = o.budget;
  c.mutate_prob = o.mutate_prob;
  c.attempt_factor = o.attempt_factor;
  c.seed = o.seed;
  Objective obj;
  std::string latency_note;
  DETNAS_CHECK(o.objective == "ap" || !o.latency_table.empty(), "search: --objective ", o.objective,
               " needs --latency-table");
  DETNAS_CHECK(o.latency_budget <= 0 || !o.latency_table.empty(), "search: --latency-budget needs --latency-table");
  if (!o.latency_table.empty()) {
    auto table = std::make_shared<search::LatencyTable>(search::read_latency_table(o.latency_table, space.name));
    DETNAS_CHECK(table->detector == m.config.kind, "search: ", o.latency_table, " was measured for the ",
                 table->detector, " detector, the checkpoint is ", m.config.kind);
    c.latency_ms = [table](const nn::Arch& a) { return table->predict_ms(a); };
    if (o.objective == "ap-latency") {
      DETNAS_CHECK(o.latency_budget > 0, "search: --objective ap-latency needs --latency-budget (the target, ms)");
      obj = {true, o.latency_budget, o.latency_weight};
    } else {
      c.latency_budget_ms = o.latency_budget;
    }
    latency_note = "; latency table " + o.latency_table + " (" + table->machine + ", " +
                   std::to_string(table->threads) + " threads, input " + std::to_string(table->height) + "x" +
                   std::to_string(table->width) + ")" +
                   (obj.latency ? ", objective AP x (latency / " + std::to_string(o.latency_budget) + " ms)^" +
                                      std::to_string(o.latency_weight)
                    : o.latency_budget > 0 ? ", latency budget " + std::to_string(o.latency_budget) + " ms"
                                           : "");
  }
  search::EvalSettings es;
  es.batch = o.batch > 0 ? o.batch : m.batch;
  es.short_side = m.short_side;
  es.max_size = m.max_size;
  es.bn_images = o.bn_images >= 0 ? o.bn_images : std::max<int64_t>(m.bn_images, 1);
  es.bn_momentum = o.bn_momentum;
  es.seed = o.seed;
  search::BatchCache cache(o.cache_mb << 20);
  if (o.cache_mb > 0) es.cache = &cache;

  const std::string state_path = path_join(o.out, "state.json");
  if (rt::dist::is_root()) {  // rank 0 alone writes the run folder
    make_dirs(o.out);
    if (int64_t n = remove_stale_temporaries(o.out))
      log_info("search: removed ", n, " temporary file(s) of an interrupted write in ", o.out);
  }
  rt::dist::barrier();
  if (o.resume && !file_exists(state_path)) {
    // Killed before its first candidate was recorded: start over (deterministic).
    log_warn("search --resume: no ", state_path, " yet: starting from the first candidate");
    o.resume = false;
  }
  search::Evolution evo = [&] {
    if (!o.resume) return search::Evolution(space, c);
    return search::Evolution::from_json(space, c, read_file(state_path), state_path);
  }();
  if (!o.resume && file_exists(state_path))
    log_warn("search: ", state_path, " exists and is being replaced (use --resume to continue it)");
  const int64_t done0 = evo.num_evaluated();
  std::unique_ptr<JsonlLog> log;
  if (rt::dist::is_root())
    log = std::make_unique<JsonlLog>(path_join(o.out, "search.jsonl"), o.resume ? done0 - 1 : -1, "index");
  log_info("search: ", search::strategy_name(c.strategy), " on ", m.config.kind, " supernet ", o.ckpt, " (space ",
           space.name, "): population ", c.population, ", ", c.generations, " generations, parents ", c.parents,
           ", mutants ", c.mutants, ", crossovers ", c.crossovers, ", budget ", c.flops_budget_m,
           " MMACs; BN recalibration on ", es.bn_images, " training images (momentum ", es.bn_momentum, "), AP on ",
           dd.val_name, " (", dd.val.size(), " images)", o.resume ? "; resumed after " + std::to_string(done0) : "",
           rt::dist::active() ? "; candidates spread over " + std::to_string(rt::dist::size()) + " ranks" : "",
           latency_note);
  const int64_t total = c.population * c.generations;
  Progress prog(done0, total);
  int64_t evaluated_now = 0;
  // Each round, rank r scores the r-th pending candidate of the generation; the
  // scores are gathered on every rank (so every rank keeps the same state) and
  // recorded in index order, rank 0 committing each one to disk. The scores do
  // not depend on which rank or in which order a candidate is scored.
  while (!evo.done()) {
    const std::vector<int64_t> pend = evo.pending();
    const int64_t in_round = std::min<int64_t>(int64_t(pend.size()), rt::dist::size());
    std::string mine;
    if (rt::dist::rank() < in_round) {
      const search::Candidate& cand = evo.candidates()[size_t(pend[size_t(rt::dist::rank())])];
      fault_point("search.score");
      search::PathScore s = search::score_path(*m.net, cand.arch, dd.train, dd.val, es);
      if (es.cache && evaluated_now == 0)
        log_info("search: ", cache.kept(), " of the ", cache.made(),
                 " recalibration and evaluation batches decoded for the first candidate are kept for the next ones (",
                 cache.bytes() >> 20, " MiB; --batch-cache-mb ", o.cache_mb, ")");
      CandidateScore r{cand.index, s.coco.stats[0], s.coco.stats[1], s.coco.stats[2], s.recal_seconds, s.infer_seconds};
      mine.assign(reinterpret_cast<const char*>(&r), sizeof(r));
    }
    const std::vector<std::string> all = rt::dist::allgather(mine);
    for (int64_t r = 0; r < in_round; ++r) {
      DETNAS_CHECK(all[size_t(r)].size() == sizeof(CandidateScore), "search: rank ", r, " sent no score");
      CandidateScore sc;
      std::memcpy(&sc, all[size_t(r)].data(), sizeof(sc));
      DETNAS_CHECK(sc.index == pend[size_t(r)], "search: rank ", r, " scored candidate ", sc.index, ", expected ",
                   pend[size_t(r)]);
      const search::Candidate cand = evo.candidates()[size_t(sc.index)];
      const double secs = sc.recal_seconds + sc.infer_seconds;
      if (rt::dist::is_root()) {
        data::JsonWriter j;
        j.begin_object().field("index", cand.index).field("generation", cand.generation).field("origin", cand.origin);
        j.field("arch", nn::format_arch(cand.arch)).key("flops_m").value(cand.flops_m, data::Precision{7});
        j.key("params_m").value(cand.params_m, data::Precision{7});
        j.field("ap", sc.ap).field("ap50", sc.ap50).field("ap75", sc.ap75);
        if (c.latency_ms) j.field("latency_ms", cand.latency_ms);
        if (obj.latency) j.field("fitness", obj.fitness(sc.ap, cand.latency_ms));
        j.field("seconds", secs).field("recal_seconds", sc.recal_seconds).field("infer_seconds", sc.infer_seconds);
        j.field("rank", r).end_object();
        log->write(j.str());
        log->sync();  // the record is on disk before the state that counts it
        fault_point("search.after_log");
      }
      evo.record_index(sc.index, obj.fitness(sc.ap, cand.latency_ms), secs);
      if (rt::dist::is_root()) {
        // The state is the commit point: a crash before this rename redoes the
        // candidate (--resume drops its search.jsonl record), one after it does not.
        write_file_atomic(state_path, evo.to_json());
        fault_point("search.after_state");
        write_outputs(evo, o.out, obj);
      }
      ++evaluated_now;
      const search::Candidate best = evo.top(1)[0];
      if (rt::dist::is_root())
        std::fprintf(stderr, "search %lld/%lld gen %lld %-9s AP %.4f  %.1f MMACs%s  %.1fs  | best %s %.4f (%s)  %s\n",
                     (long long)evo.num_evaluated(), (long long)total, (long long)cand.generation, cand.origin.c_str(),
                     sc.ap, cand.flops_m,
                     c.latency_ms ? ("  " + std::to_string(cand.latency_ms).substr(0, 6) + " ms").c_str() : "", secs,
                     obj.latency ? "fitness" : "AP", best.fitness, nn::format_arch(best.arch).c_str(),
                     prog.eta(evo.num_evaluated()).c_str());
    }
    if (o.stop_after > 0 && evaluated_now >= o.stop_after) {
      log_info("search: stopping after ", evaluated_now, " candidates as asked; continue with --resume");
      return;
    }
  }
  // Every draw over the budget: nothing was evaluated, so there is no best.
  DETNAS_CHECK(evo.num_evaluated() > 0, "search: no architecture of space ", space.name, " met --flops-budget ",
               c.flops_budget_m, " MMACs",
               c.latency_budget_ms > 0 ? " and --latency-budget " + std::to_string(c.latency_budget_ms) + " ms" : "",
               " in ", c.population * c.attempt_factor, " random draws (the all-k3 path costs ",
               search::arch_cost(space, nn::uniform_arch(space, 0)).backbone.mega_macs(), " MMACs)");
  if (!rt::dist::is_root()) return;
  write_outputs(evo, o.out, obj);
  const std::vector<double> bg = evo.best_by_generation();
  std::string by_gen;
  for (size_t g = 0; g < bg.size(); ++g) by_gen += (g ? ", " : "") + std::to_string(bg[g]).substr(0, 6);
  const search::Candidate best = evo.top(1)[0];
  log_info("search: done, ", evo.num_evaluated(), " candidates in ", format_duration(prog.elapsed()),
           "; best AP by generation: ", by_gen);
  log_info("search: best ", nn::format_arch(best.arch), " AP ", obj.ap(best), " at ", best.flops_m, " MMACs",
           c.latency_ms ? " (predicted " + std::to_string(best.latency_ms) + " ms)" : "", "; results in ", o.out,
           " (top10.json, search.jsonl, plot.svg)");
  std::printf("%s\n", nn::format_arch(best.arch).c_str());
}

void setup_search(CLI::App& root) {
  auto o = std::make_shared<SearchOptions>();
  CLI::App* sub = root.add_subcommand("search", "evolutionary (or random) search of a trained detector supernet");
  sub->footer(
      "With no options: searches the supernet of the default `detnas train` run (runs/train/last) on the built-in\n"
      "synthetic data. Defaults: the reference sizes (population 50, parents 10, 20 mutants, 20 crossovers,\n"
      "20 generations, budget 300/1300/3800 MMACs) for the COCO spaces; 16/4/6/6/6 and 42 MMACs for 'tiny'.\n"
      "Prints the best architecture on stdout.");
  sub->add_option("--ckpt", o->ckpt, "supernet checkpoint of detnas train")->capture_default_str();
  sub->add_option("--out", o->out, "run folder")->capture_default_str();
  sub->add_option("--strategy", o->strategy, "evolution or random")->capture_default_str();
  sub->add_option("--population", o->population, "candidates per generation")->check(positive());
  sub->add_option("--parents", o->parents, "top-k of all evaluated candidates used as parents")->check(positive());
  sub->add_option("--mutants", o->mutants, "mutated children per generation")->check(non_negative());
  sub->add_option("--crossovers", o->crossovers, "crossover children per generation")->check(non_negative());
  sub->add_option("--generations", o->generations, "generations")->check(positive());
  sub->add_option("--mutate-prob", o->mutate_prob, "probability of redrawing each gene")
      ->capture_default_str()
      ->check(in_range(0, 1));
  sub->add_option("--flops-budget", o->budget, "backbone MMACs at 224x224 (0: none)")->check(non_negative());
  sub->add_option("--latency-table", o->latency_table,
                  "latency table of `detnas latency-table` for this space and detector: predicted latency per "
                  "candidate");
  sub->add_option("--latency-budget", o->latency_budget,
                  "ms: with --objective ap, candidates predicted slower are illegal (as over the FLOPs budget); with "
                  "ap-latency, the target")
      ->check(non_negative());
  sub->add_option("--objective", o->objective,
                  "ap, or ap-latency: fitness AP x (latency / target)^w, a soft constraint (MnasNet)")
      ->capture_default_str()
      ->check(CLI::IsMember({"ap", "ap-latency"}));
  sub->add_option("--latency-weight", o->latency_weight, "w of ap-latency (< 0)")
      ->capture_default_str()
      ->check(in_range(-10, 0));
  sub->add_option("--attempt-factor", o->attempt_factor, "give up after this many x the wanted draws")
      ->capture_default_str()
      ->check(positive());
  sub->add_option("--bn-images", o->bn_images,
                  "training images for each candidate's BN recalibration (default: as in train; reference 4000)")
      ->check(non_negative());
  sub->add_option("--bn-momentum", o->bn_momentum,
                  "BN momentum of the recalibration (0: exact average over the batches; the reference uses 0.1 over "
                  "4000 images)")
      ->capture_default_str()
      ->check(in_range(0, 1));
  sub->add_option("--batch", o->batch, "images per batch (default: as in train)")->check(positive());
  sub->add_option("--batch-cache-mb", o->cache_mb,
                  "MiB of decoded recalibration and evaluation batches kept across candidates (0: decode them for "
                  "every candidate; results are the same)")
      ->capture_default_str()
      ->check(in_range(0, 1 << 24));
  add_data_options(sub, o->d);
  add_device_options(sub, &o->dev);
  sub->add_option("--threads", o->threads, "compute threads (0: all cores)")
      ->capture_default_str()
      ->check(non_negative());
  sub->add_option("--seed", o->seed, "seed of the search and of the recalibration batches")->capture_default_str();
  sub->add_flag("--resume", o->resume, "continue OUT/state.json");
  sub->add_option("--stop-after", o->stop_after, "stop after this many candidates (state saved)")->group("");
  sub->callback([o] { run_search(*o); });
}

}  // namespace

DETNAS_COMMAND(setup_search);

}  // namespace detnas::cli
