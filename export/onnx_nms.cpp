// retinanet_nms: see export/onnx_nms.h.
#include "export/onnx_nms.h"

#include <algorithm>

#include "core/error.h"

namespace detnas::exporter {
namespace {

using V = std::vector<std::string>;

std::string scalar_of(OnnxGraph& g, const std::string& vec, int64_t i, const std::string& hint) {
  return g.node1("Gather", {vec, g.scalar_i64(hint + ".i", i)}, {Attr::of("axis", int64_t(0))}, hint);
}

// kernels::box_decode on rows: anchors (k,4), codes (k,4) -> boxes (k,4), then
// clipped to [0,W]x[0,H] (detect/postprocess.cpp decode_clip).
std::string decode_clip(OnnxGraph& g, const std::string& anchors, const std::string& codes,
                        const kernels::BoxCoderParams& c, const std::string& H, const std::string& W,
                        const std::string& hint) {
  const V a = g.node("Split", {anchors}, {Attr::of("axis", int64_t(1))}, hint + ".a", 4);
  const V d = g.node("Split", {codes}, {Attr::of("axis", int64_t(1))}, hint + ".d", 4);
  auto op = [&](const char* o, const std::string& x, const std::string& y) { return g.node1(o, {x, y}, {}, hint); };
  const std::string half = g.scalar(hint + ".half", 0.5f), clip = g.scalar(hint + ".clip", float(c.clip));
  const std::string aw = op("Sub", a[2], a[0]), ah = op("Sub", a[3], a[1]);
  const std::string acx = op("Add", a[0], op("Mul", half, aw)), acy = op("Add", a[1], op("Mul", half, ah));
  const std::string dx = op("Div", d[0], g.scalar(hint + ".wx", c.wx));
  const std::string dy = op("Div", d[1], g.scalar(hint + ".wy", c.wy));
  const std::string dw = op("Min", op("Div", d[2], g.scalar(hint + ".ww", c.ww)), clip);
  const std::string dh = op("Min", op("Div", d[3], g.scalar(hint + ".wh", c.wh)), clip);
  const std::string pcx = op("Add", op("Mul", dx, aw), acx), pcy = op("Add", op("Mul", dy, ah), acy);
  const std::string hw = op("Mul", half, op("Mul", g.node1("Exp", {dw}, {}, hint), aw));
  const std::string hh = op("Mul", half, op("Mul", g.node1("Exp", {dh}, {}, hint), ah));
  const std::string zero = g.scalar(hint + ".zero", 0.0f);
  auto clamp = [&](const std::string& v, const std::string& hi) { return g.node1("Clip", {v, zero, hi}, {}, hint); };
  return g.node1("Concat",
                 {clamp(op("Sub", pcx, hw), W), clamp(op("Sub", pcy, hh), H), clamp(op("Add", pcx, hw), W),
                  clamp(op("Add", pcy, hh), H)},
                 {Attr::of("axis", int64_t(1))}, hint + ".boxes");
}

}  // namespace

NmsOutputs retinanet_nms(OnnxGraph& g, const std::vector<std::string>& cls, const std::vector<std::string>& box,
                         const std::vector<rt::Tensor>& anchors, int64_t K, const std::string& image_size,
                         const kernels::BoxCoderParams& coder, const det::PostprocessParams& p) {
  DETNAS_CHECK(cls.size() == box.size() && cls.size() == anchors.size(), "export: nms on ", cls.size(), " levels");
  const std::string H = scalar_of(g, image_size, 0, "nms.height"), W = scalar_of(g, image_size, 1, "nms.width");
  const std::string Kc = g.scalar_i64("nms.K", K);
  const std::string flat = g.initializer_i64("nms.flat", {1}, {-1}),
                    rows4 = g.initializer_i64("nms.rows4", {2}, {-1, 4});
  V boxes, scores, labels;
  for (size_t l = 0; l < cls.size(); ++l) {
    const std::string h = "nms.l" + std::to_string(l);
    const int64_t T = anchors[l].size(0), k = std::min(p.pre_nms_top_n, T * K);
    const std::string s = g.node1("Reshape", {g.node1("Sigmoid", {cls[l]}, {}, h + ".sig"), flat}, {}, h + ".scores");
    const V top = g.node(
        "TopK", {s, g.initializer_i64(h + ".k", {1}, {k})},
        {Attr::of("axis", int64_t(0)), Attr::of("largest", int64_t(1)), Attr::of("sorted", int64_t(1))}, h + ".top", 2);
    const std::string t = g.node1("Div", {top[1], Kc}, {}, h + ".anchor");
    const std::string c = g.node1("Mod", {top[1], Kc}, {}, h + ".class");
    const std::string codes = g.node1("Gather", {g.node1("Reshape", {box[l], rows4}, {}, h + ".codes"), t},
                                      {Attr::of("axis", int64_t(0))}, h);
    const std::string anc =
        g.node1("Gather", {g.initializer(h + ".anchors", anchors[l].shape(), anchors[l].to_vector()), t},
                {Attr::of("axis", int64_t(0))}, h);
    boxes.push_back(decode_clip(g, anc, codes, coder, H, W, h + ".decode"));
    scores.push_back(top[0]);
    labels.push_back(c);
  }
  const Attr axis0 = Attr::of("axis", int64_t(0));
  const std::string all_boxes = g.node1("Concat", boxes, {axis0}, "nms.boxes");
  const std::string all_scores = g.node1("Concat", scores, {axis0}, "nms.scores");
  const std::string all_labels = g.node1("Concat", labels, {axis0}, "nms.labels");
  // Per-class scores (1, K, M): a candidate's score in its class's row, 0 elsewhere
  // (0 is below any score threshold, so NMS never keeps it there).
  std::vector<int64_t> ks(static_cast<size_t>(K));
  for (int64_t i = 0; i < K; ++i) ks[size_t(i)] = i;
  const std::string ax0 = g.initializer_i64("nms.axis0", {1}, {0});
  const std::string onehot = g.node1(
      "Cast",
      {g.node1("Equal",
               {g.node1("Unsqueeze", {all_labels, ax0}, {}, "nms"), g.initializer_i64("nms.classes", {K, 1}, ks)}, {},
               "nms")},
      {Attr::of("to", int64_t(onnx::TensorProto::FLOAT))}, "nms.onehot");
  const std::string per_class =
      g.node1("Unsqueeze", {g.node1("Mul", {onehot, all_scores}, {}, "nms"), ax0}, {}, "nms.class_scores");
  const std::string selected =
      g.node1("NonMaxSuppression",
              {g.node1("Unsqueeze", {all_boxes, ax0}, {}, "nms"), per_class,
               g.initializer_i64("nms.max_per_class", {1}, {p.detections_per_image}),
               g.initializer("nms.iou", {1}, {p.nms_thresh}), g.initializer("nms.score_thresh", {1}, {p.score_thresh})},
              {Attr::of("center_point_box", int64_t(0))}, "nms.selected");
  const std::string idx =
      g.node1("Gather", {selected, g.scalar_i64("nms.col2", 2)}, {Attr::of("axis", int64_t(1))}, "nms.kept");
  const std::string kept_scores = g.node1("Gather", {all_scores, idx}, {axis0}, "nms.kept_scores");
  const std::string n = g.node1(
      "Min",
      {g.node1("Shape", {kept_scores}, {}, "nms.count"), g.initializer_i64("nms.top", {1}, {p.detections_per_image})},
      {}, "nms.n");
  const V best = g.node("TopK", {kept_scores, n},
                        {Attr::of("axis", int64_t(0)), Attr::of("largest", int64_t(1)), Attr::of("sorted", int64_t(1))},
                        "nms.best", 2);
  NmsOutputs r;
  r.scores = best[0];
  r.boxes = g.node1("Gather", {g.node1("Gather", {all_boxes, idx}, {axis0}, "nms.kept_boxes"), best[1]}, {axis0},
                    "nms.final_boxes");
  r.labels = g.node1("Gather", {g.node1("Gather", {all_labels, idx}, {axis0}, "nms.kept_labels"), best[1]}, {axis0},
                     "nms.final_labels");
  return r;
}

}  // namespace detnas::exporter
