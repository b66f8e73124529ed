// `detnas latency-table`: measures a latency table (search/latency.h) on this
// machine for a space, a detector and an input size, and with --validate N
// checks its predictions against the measured end-to-end latency of N random
// architectures (mean and worst relative error; rank correlation of FLOPs and of
// the prediction with the measured latency).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>

#include "api/runtime.h"
#include "cli/command.h"
#include "cli/option_checks.h"
#include "cli/run_log.h"
#include "core/log.h"
#include "nn/checkpoint.h"
#include "runtime/fs.h"
#include "runtime/threads.h"
#include "search/cost_model.h"
#include "search/latency_measure.h"
#include "search/path_sampler.h"

namespace detnas::cli {
namespace {

struct LatencyOptions {
  std::string space = "tiny", detector = "fpn", ckpt, input = "320x320", out = "runs/latency/table.json";
  int64_t batch = 1, threads = 0, validate = 0, fpn_channels = 64, tower_depth = 2, num_classes = 5, fc_dim = 1024,
          rpn_post_nms_test = 100;
  uint64_t seed = 1;
  double min_time = 0.2;
  int64_t repeats = 5;
  bool median = false;
  std::vector<std::string> measure;  // architectures to time end to end beside their prediction
};

std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < idx.size();) {  // ties share their mean rank
    size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    for (size_t k = i; k <= j; ++k) r[idx[k]] = 0.5 * double(i + j);
    i = j + 1;
  }
  return r;
}

// Spearman's rank correlation (Pearson's on the ranks).
double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  const std::vector<double> ra = ranks(a), rb = ranks(b);
  const double n = double(a.size()), ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n,
               mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

void run_latency_table(const LatencyOptions& o) {
  set_threads(o.threads);
  search::LatencyMeasureOptions mo;
  mo.seed = o.seed;
  mo.batch = o.batch;
  mo.min_seconds = o.min_time;
  mo.min_repeats = int(o.repeats);
  mo.median = o.median;
  const size_t x = o.input.find('x');
  char* end = nullptr;
  mo.height = x == std::string::npos ? 0 : std::strtoll(o.input.c_str(), &end, 10);
  mo.width = x == std::string::npos ? 0 : std::strtoll(o.input.c_str() + x + 1, &end, 10);
  DETNAS_CHECK(x != std::string::npos && *end == '\0' && mo.height > 0 && mo.width > 0 && mo.height % 32 == 0 &&
                   mo.width % 32 == 0,
               "latency-table: --input ", o.input, ": expected HxW with H and W positive multiples of 32");
  if (!o.ckpt.empty()) {  // the detector of a train checkpoint
    const nn::CheckpointMeta m = nn::read_checkpoint_meta(o.ckpt);
    DETNAS_CHECK(m.kind == "train", "latency-table: ", o.ckpt, " is a '", m.kind,
                 "' checkpoint; a detector checkpoint from detnas train is needed");
    mo.space = m.space;
    mo.config = det::DetectorConfig::from_map(m.config, nn::checkpoint_base(o.ckpt) + ".json");
  } else {
    DETNAS_CHECK(o.detector == "fpn" || o.detector == "retinanet", "latency-table: --detector ", o.detector,
                 ": expected fpn or retinanet");
    mo.space = o.space;
    mo.config.kind = o.detector;
    mo.config.num_classes = o.num_classes;
    mo.config.fpn_channels = o.fpn_channels;
    mo.config.head_depth = o.tower_depth;
    mo.config.fc_dim = o.fc_dim;
    mo.config.rpn_post_nms_test = o.rpn_post_nms_test;
  }
  const nn::SearchSpace& space = nn::space_by_name(mo.space);
  std::vector<nn::Arch> given;  // --measure, checked before the work
  for (const std::string& text : o.measure) {
    try {
      given.push_back(nn::parse_arch(text));
      nn::validate_arch(space, given.back());
    } catch (const Error& e) {
      DETNAS_FAIL("latency-table: --measure ", text, ": ", e.message());
    }
  }
  make_dirs(path_parent(o.out));  // before the work: a bad --out fails at once
  log_info("latency-table: ", mo.config.kind, " on space ", space.name, ", input ", mo.batch, "x3x", mo.height, "x",
           mo.width, ", ", rt::num_threads(), " threads, ", rt::cpu_model());
  Progress prog(0, 2 + space.total_blocks() * space.num_choices);
  search::LatencyTable t = search::measure_latency_table(mo, [&](int64_t done, int64_t total) {
    if (done % 8 == 0 || done == total)
      std::fprintf(stderr, "latency-table %lld/%lld  %s\n", (long long)done, (long long)total, prog.eta(done).c_str());
  });
  t.build = api::version();
  search::write_latency_table(o.out, t);
  log_info("latency-table: wrote ", o.out, " (fixed parts ", t.fixed_ms(), " ms: stem ", t.fixed["stem"], ", detector ",
           t.fixed["detector"], ")");
  if (o.validate <= 0 && o.measure.empty()) return;
  Rng rng(o.seed ^ 0x7a11da7eULL);
  // Each architecture is timed between two re-timings of the fixed parts: their
  // mean ratio to the table's fixed parts says how fast the machine ran then
  // against when the table was measured. Far from 1, the error measures the
  // machine (a shared VM) rather than the predictor.
  std::vector<nn::Arch> archs = given;
  for (int64_t i = 0; i < o.validate; ++i) archs.push_back(search::sample_uniform_path(space, rng));
  std::vector<double> pred, meas, flops, speed;
  std::printf(
      "| arch | MMACs at 224 | predicted ms | measured ms | error | fixed parts now / in the table |\n"
      "|---|---:|---:|---:|---:|---:|\n");
  double probe = search::measure_fixed_ms(mo) / t.fixed_ms();
  for (const nn::Arch& a : archs) {
    pred.push_back(t.predict_ms(a));
    meas.push_back(search::measure_arch_latency(mo, a));
    flops.push_back(search::arch_cost(space, a).backbone.mega_macs());
    const double next = search::measure_fixed_ms(mo) / t.fixed_ms();
    speed.push_back(0.5 * (probe + next));
    probe = next;
    std::printf("| %s | %.2f | %.3f | %.3f | %+.1f%% | %.3f |\n", nn::format_arch(a).c_str(), flops.back(), pred.back(),
                meas.back(), 100.0 * (pred.back() - meas.back()) / meas.back(), speed.back());
    std::fflush(stdout);
  }
  if (pred.size() < 2) return;
  double sum = 0, worst = 0;
  for (size_t i = 0; i < pred.size(); ++i) {
    const double e = std::fabs(pred[i] - meas[i]) / meas[i];
    sum += e;
    worst = std::max(worst, e);
  }
  std::printf(
      "\n%lld architectures: mean |error| %.1f%%, worst %.1f%%; rank correlation with the measured latency: "
      "prediction %.3f, FLOPs %.3f; the fixed parts ran at %.2f-%.2f x their table time meanwhile (far from 1: the "
      "machine's speed varied, and the errors measure it more than the predictor)\n",
      (long long)pred.size(), 100.0 * sum / double(pred.size()), 100.0 * worst, spearman(pred, meas),
      spearman(flops, meas), *std::min_element(speed.begin(), speed.end()),
      *std::max_element(speed.begin(), speed.end()));
}

void setup_latency_table(CLI::App& root) {
  auto o = std::make_shared<LatencyOptions>();
  CLI::App* sub = root.add_subcommand("latency-table",
                                      "measure the inference latency of every block choice (hardware-aware search)");
  sub->footer(
      "Times every choice of every block position at the shapes it sees, the stem, and the detector's FPN and heads\n"
      "(Eval mode, no autograd; the fastest of repeated runs), on this machine's CPU with --threads. `search\n"
      "--latency-table` then predicts a candidate's latency as the sum of its entries. --validate N compares the\n"
      "prediction with N random architectures' measured end-to-end latency. The detector comes from --ckpt (a\n"
      "train checkpoint) or from the size options, whose defaults are those of `detnas train`.");
  sub->add_option("--space", o->space, "search space")->capture_default_str();
  sub->add_option("--detector", o->detector, "fpn or retinanet")->capture_default_str();
  sub->add_option("--ckpt", o->ckpt, "take space and detector sizes from this detnas train checkpoint");
  sub->add_option("--input", o->input, "input HxW (multiples of 32)")->capture_default_str();
  sub->add_option("--batch", o->batch, "images per forward")->capture_default_str()->check(positive());
  sub->add_option("--out", o->out, "the table (JSON)")->capture_default_str();
  sub->add_option("--validate", o->validate, "random architectures to check the prediction against")
      ->capture_default_str()
      ->check(non_negative());
  sub->add_option("--measure", o->measure, "also time these architectures (choice lists) end to end");
  sub->add_option("--fpn-channels", o->fpn_channels, "FPN/head channels")->capture_default_str()->check(positive());
  sub->add_option("--tower-depth", o->tower_depth, "convs per head tower / box head")
      ->capture_default_str()
      ->check(non_negative());
  sub->add_option("--num-classes", o->num_classes, "classes")->capture_default_str()->check(positive());
  sub->add_option("--fc-dim", o->fc_dim, "fpn: box-head FC width")->capture_default_str()->check(positive());
  sub->add_option("--rpn-post-nms-test", o->rpn_post_nms_test, "fpn: RoIs per image in the box head")
      ->capture_default_str()
      ->check(positive());
  sub->add_option("--threads", o->threads, "compute threads (0: all cores)")
      ->capture_default_str()
      ->check(non_negative());
  sub->add_option("--min-time", o->min_time, "timing: at least this many seconds of runs per entry")
      ->capture_default_str()
      ->check(non_negative());
  sub->add_option("--repeats", o->repeats, "timing: at least this many runs per entry (the fastest is kept)")
      ->capture_default_str()
      ->check(positive());
  sub->add_flag("--median", o->median, "timing: keep the median run instead of the fastest");
  sub->add_option("--seed", o->seed, "seed of the inputs and of the validation architectures")->capture_default_str();
  sub->callback([o] { run_latency_table(*o); });
}

}  // namespace

DETNAS_COMMAND(setup_latency_table);

}  // namespace detnas::cli
