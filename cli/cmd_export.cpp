// `detnas export`: the detector of a checkpoint, on one path, as ONNX
// (export/onnx_export.h): BN folded, raw head outputs, anchors for the fixed input
// size, metadata (architecture, space, categories, input rules). A supernet path
// gets its BN statistics recalibrated first, exactly as `eval` does.
#include <chrono>
#include <cstdio>
#include <memory>

#include "api/runtime.h"
#include "cli/command.h"
#include "cli/det_common.h"
#include "cli/option_checks.h"
#include "cli/run_log.h"
#include "core/log.h"
#include "data/json_writer.h"
#include "export/onnx_export.h"
#include "runtime/fs.h"
#include "search/candidate_eval.h"

namespace detnas::cli {
namespace {

struct ExportOptions {
  DataOptions d;  // only for BN recalibration of a supernet path
  std::string ckpt = "runs/train/last", arch, out = "runs/export/model.onnx", input, postprocess = "none";
  bool dynamic = false;
  int64_t bn_images = -1, batch = 1, threads = 0;
  int opset = 17;
};

// "HxW" -> {H, W}; errors name the option and the text.
std::pair<int64_t, int64_t> parse_size(const std::string& s) {
  const size_t x = s.find('x');
  char* end = nullptr;
  int64_t h = 0, w = 0;
  bool ok = x != std::string::npos && x > 0;
  if (ok) {
    h = std::strtoll(s.c_str(), &end, 10);
    ok = end == s.c_str() + x;
  }
  if (ok) {
    w = std::strtoll(s.c_str() + x + 1, &end, 10);
    ok = *end == '\0' && end != s.c_str() + x + 1;
  }
  DETNAS_CHECK(ok && h > 0 && w > 0 && h % 32 == 0 && w % 32 == 0, "export: --input ", s,
               ": expected HxW with H and W positive multiples of 32 (e.g. 320x320)");
  return {h, w};
}

std::map<std::string, std::string> model_metadata(const LoadedDetector& m, const ExportOptions& o, int64_t bn_images) {
  data::JsonWriter cats(data::JsonStyle::Compact);
  cats.begin_array();
  for (const Category& c : m.categories)
    cats.begin_object().field("id", (long long)c.id).field("name", c.name).end_object();
  cats.end_array();
  std::map<std::string, std::string> md;
  md["detnas.version"] = api::version();
  md["detnas.checkpoint"] = o.ckpt + " (step " + std::to_string(m.meta.step) + ")";
  md["detnas.detector"] = m.config.kind;
  md["detnas.space"] = m.meta.space;
  md["detnas.arch"] = nn::format_arch(m.arch);
  md["detnas.num_classes"] = std::to_string(m.config.num_classes);
  md["detnas.categories"] = cats.str();  // label k (class k of the outputs; k+1 in class_logits) -> id, name
  md["detnas.input"] =
      "images: float32 NCHW, channels B,G,R, values 0..255 (no mean/std normalisation); resize keeping the aspect "
      "ratio so the short side is short_side and the long side at most max_size, then pad bottom and right with "
      "zeros to the graph's size (multiples of 32)";
  if (o.postprocess == "none") md["detnas.postprocess"] = "none: raw head outputs";  // nms: the exporter says
  md["detnas.short_side"] = std::to_string(m.short_side);
  md["detnas.max_size"] = std::to_string(m.max_size);
  md["detnas.anchors"] =
      m.config.kind == "retinanet"
          ? "rows of 'anchors' (x1,y1,x2,y2, input pixels) pair with the rows of cls_p3..p7 / box_p3..p7 "
            "concatenated in level order; detect/anchors.h cell anchors, smallest size " +
                std::to_string(m.config.anchor_size) + " on P3 (stride 8), doubling per level; box deltas (10,10,5,5)"
          : "rows of 'anchors' pair with rpn_*_p2..p6 concatenated in level order; cell anchors of size " +
                std::to_string(m.config.anchor_size) +
                " x 2^l on P2..P6 (strides 4..64), ratios 0.5, 1, 2; RPN "
                "deltas (1,1,1,1); stage 2: RoIAlign 7x7 (sampling ratio 2, not aligned) of P2..P5 by the FPN level "
                "rule (224/4), class_logits over background + K, box_deltas (10,10,5,5) per class";
  md["detnas.bn"] = bn_images > 0 ? "folded into the convs; statistics of the supernet path re-estimated on " +
                                        std::to_string(bn_images) + " training images"
                                  : "folded into the convs (the checkpoint's running statistics)";
  return md;
}

void run_export(ExportOptions o) {
  set_threads(o.threads);
  DETNAS_CHECK(!o.dynamic || o.input.empty(), "export: give --input HxW or --dynamic, not both");
  LoadedDetector m = load_detector(o.ckpt, o.arch, "export", rt::Device::CPU);
  exporter::OnnxOptions eo;
  eo.dynamic = o.dynamic;
  eo.batch = o.batch;
  eo.opset = o.opset;
  eo.nms = o.postprocess == "nms";
  if (!o.input.empty()) {
    std::tie(eo.height, eo.width) = parse_size(o.input);
  } else {  // the largest image eval feeds: max_size (or the short side) rounded up to 32, square
    const int64_t side = m.max_size > 0 ? m.max_size : m.short_side;
    eo.height = eo.width = (side + 31) / 32 * 32;
  }
  make_dirs(path_parent(o.out));  // before the work: a bad --out fails at once
  const int64_t bn_images = m.supernet ? (o.bn_images >= 0 ? o.bn_images : m.bn_images) : 0;
  if (bn_images > 0) {
    DetData dd = load_det_data(o.d, "export");
    search::EvalSettings es{m.batch, m.short_side, m.max_size, bn_images, m.bn_momentum, 1};
    search::recalibrate_bn(*m.net, m.path, dd.train, es);
    log_info("export: BN statistics of the supernet path re-estimated on ", bn_images, " training images");
  }
  eo.metadata = model_metadata(m, o, bn_images);
  const auto t0 = std::chrono::steady_clock::now();
  exporter::OnnxExport r = exporter::export_onnx(*m.net, m.path, eo, o.out);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const std::string& f : r.files) log_info("export: wrote ", f);
  log_info("export: ", m.config.kind, " on ", nn::format_arch(m.arch), ", input ",
           o.dynamic ? std::string("dynamic (N, 3, H, W)")
                     : std::to_string(eo.batch) + "x3x" + std::to_string(eo.height) + "x" + std::to_string(eo.width),
           ", opset ", eo.opset, ": ", r.nodes, " nodes, ", r.initializers, " initializers, ", r.bytes, " bytes in ",
           secs, " s (checked by the ONNX checker with strict shape inference)");
}

void setup_export(CLI::App& root) {
  auto o = std::make_shared<ExportOptions>();
  CLI::App* sub = root.add_subcommand("export", "write a trained detector (one path) as an ONNX model");
  sub->footer(
      "RetinaNet: one graph, images -> per-level class logits and box deltas (+ anchors), or with --postprocess nms\n"
      "images + image_size -> boxes, scores, labels. FPN Faster R-CNN: two\n"
      "graphs, OUT (images -> P2..P5, RPN objectness and deltas, anchors) and OUT.box_head.onnx (RoIAlign features\n"
      "-> class logits, box deltas), raw outputs. BN folded into the convs.");
  sub->add_option("--ckpt", o->ckpt, "checkpoint of detnas train (path without extension)")->capture_default_str();
  sub->add_option("--arch", o->arch, "the path to export (supernet checkpoints; default: the path train evaluated)");
  sub->add_option("--out", o->out, "the ONNX file")->capture_default_str();
  sub->add_option("--input", o->input, "fixed input size HxW, multiples of 32 (default: max size x max size)");
  sub->add_flag("--dynamic", o->dynamic, "symbolic batch, height and width (no anchors output)");
  sub->add_option("--postprocess", o->postprocess,
                  "none: raw outputs; nms (RetinaNet, batch 1, fixed size): decoded boxes, scores and labels through "
                  "ONNX's NonMaxSuppression")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "nms"}));
  sub->add_option("--batch", o->batch, "fixed batch size")->capture_default_str()->check(positive());
  sub->add_option("--opset", o->opset, "ONNX opset (13..17)")->capture_default_str();
  sub->add_option("--bn-images", o->bn_images,
                  "supernet: training images for BN recalibration of the path (default: as in train; data options "
                  "as for train)")
      ->check(non_negative());
  add_data_options(sub, o->d);
  sub->add_option("--threads", o->threads, "compute threads (0: all cores)")
      ->capture_default_str()
      ->check(non_negative());
  sub->callback([o] { run_export(*o); });
}

}  // namespace

DETNAS_COMMAND(setup_export);

}  // namespace detnas::cli
