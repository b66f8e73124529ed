// `detnas eval`: COCO AP of one architecture of a trained detector. For a
// supernet checkpoint the path's BN statistics are first re-estimated on
// training images (--bn-images, --bn-momentum); inference runs under no-grad;
// the detections are written as a COCO results JSON and the 12 COCO numbers
// printed (the same evaluator as `detnas coco-eval`), or one JSON object with --json.
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cli/det_common.h"
#include "cli/option_checks.h"
#include "cli/run_log.h"
#include "core/log.h"
#include "data/coco_eval.h"
#include "runtime/dist.h"
#include "runtime/fs.h"
#include "search/candidate_eval.h"
#include "search/cost_model.h"

namespace detnas::cli {
namespace {

struct EvalOptions {
  DeviceOptions dev;
  DataOptions d;
  std::string ckpt = "runs/train/last", arch, out;
  int64_t bn_images = -1, batch = -1, threads = 0;
  double bn_momentum = -1;
  uint64_t seed = 1;
  bool json = false;
};

void run_eval(EvalOptions o) {
  const rt::Device dev = select_run_device(o.dev, "eval");
  set_threads(o.threads);
  LoadedDetector m = load_detector(o.ckpt, o.arch, "eval", dev);
  DetData dd = load_det_data(o.d, "eval");
  DETNAS_CHECK(dd.train.num_classes() == m.config.num_classes, "eval: ", m.meta.space, " checkpoint ", o.ckpt,
               " was trained for ", m.config.num_classes, " classes but the data has ", dd.train.num_classes());
  search::EvalSettings es;
  es.batch = o.batch > 0 ? o.batch : m.batch;
  es.short_side = m.short_side;
  es.max_size = m.max_size;
  es.bn_images = m.supernet ? (o.bn_images >= 0 ? o.bn_images : m.bn_images) : std::max<int64_t>(0, o.bn_images);
  es.bn_momentum = o.bn_momentum >= 0 ? o.bn_momentum : m.bn_momentum;
  es.seed = o.seed;
  es.across_ranks = true;  // under mpirun: images split over the ranks, detections gathered
  const nn::SearchSpace& space = nn::space_by_name(m.meta.space);
  const search::ArchCost cost = search::arch_cost(space, m.arch);
  log_info("eval: ", m.config.kind, " ", m.supernet ? "supernet path " : "standalone network ", nn::format_arch(m.arch),
           " (", cost.backbone.mega_macs(), " MMACs, ", cost.backbone.mega_params(), " M params at 224); ",
           es.bn_images > 0 ? "BN recalibrated on " + std::to_string(es.bn_images) + " training images; " : "",
           dd.val.size(), " images of ", dd.val_name, " at short side ", es.short_side);
  if (o.out.empty()) o.out = path_join(path_parent(nn::checkpoint_base(o.ckpt)), "eval_results.json");
  if (rt::dist::is_root()) make_dirs(path_parent(o.out));  // before the work: a bad --out fails at once
  search::PathScore r = search::score_path(*m.net, m.path, dd.train, dd.val, es);
  if (!rt::dist::is_root()) return;  // rank 0 writes and prints
  write_file_atomic(o.out, data::format_coco_results(r.detections));
  log_info("eval: ", r.detections.size(), " detections written to ", o.out, " (BN recalibration ", r.recal_seconds,
           " s, inference + evaluation ", r.infer_seconds, " s)");
  if (o.json) {
    std::printf("%s\n", data::coco_eval_json(r.coco).c_str());
    return;
  }
  for (const std::string& line : data::coco_summary_lines(r.coco)) std::printf("%s\n", line.c_str());
}

void setup_eval(CLI::App& root) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* sub =
      root.add_subcommand("eval", "COCO AP of a trained detector (a supernet path or a standalone network)");
  sub->footer(
      "With no options: evaluates runs/train/last (the default `detnas train` run) on the built-in synthetic val set,\n"
      "for a supernet on the path train evaluated. Settings not given come from the checkpoint.");
  sub->add_option("--ckpt", o->ckpt, "checkpoint of detnas train (path without extension)")->capture_default_str();
  sub->add_option("--arch", o->arch, "the path to evaluate (supernet checkpoints)");
  add_data_options(sub, o->d);
  sub->add_option("--bn-images", o->bn_images, "training images for BN recalibration (supernet; default: as in train)")
      ->check(non_negative());
  sub->add_option("--bn-momentum", o->bn_momentum, "BN momentum of the recalibration (0: exact average)")
      ->check(in_range(0, 1));
  sub->add_option("--batch", o->batch, "images per batch (default: as in train)")->check(positive());
  sub->add_option("--out", o->out, "results JSON (default: next to the checkpoint, eval_results.json)");
  add_device_options(sub, &o->dev);
  sub->add_option("--threads", o->threads, "compute threads (0: all cores)")
      ->capture_default_str()
      ->check(non_negative());
  sub->add_option("--seed", o->seed, "seed of the recalibration batches")->capture_default_str();
  sub->add_flag("--json", o->json, "print one JSON object instead of the summary");
  sub->callback([o] { run_eval(*o); });
}

}  // namespace

DETNAS_COMMAND(setup_eval);

}  // namespace detnas::cli
