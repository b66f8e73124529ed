// The detectors' inference graphs as ONNX (export/onnx_export.h). The graph is
// built from the module names (the same names checkpoints use) and the space's
// block specs, mirroring each module's Eval-mode forward; tests run the result in
// ONNX Runtime against reference_outputs.
#include "export/onnx_export.h"

#include <cmath>

#include "core/error.h"
#include "detect/faster_rcnn.h"
#include "detect/retinanet.h"
#include "export/onnx_graph.h"
#include "export/onnx_nms.h"
#include "kernels/shuffle.h"
#include "nn/space.h"
#include "runtime/autograd.h"

namespace detnas::exporter {
namespace {

constexpr double kBnEps = 1e-5;  // nn::BatchNorm2d's eps (every BN of the detectors)

class Builder {
 public:
  Builder(det::Detector& net, OnnxGraph& g) : g_(g) {
    for (const auto& p : net.parameters()) tensors_[p.name] = p.tensor;  // shares the storage
    for (const auto& b : net.buffers()) tensors_[b.name] = b.tensor;
  }

  const rt::Tensor& get(const std::string& name) const {
    auto it = tensors_.find(name);
    DETNAS_CHECK(it != tensors_.end(), "export: the network has no tensor ", name);
    return it->second;
  }
  bool has(const std::string& name) const { return tensors_.count(name) > 0; }

  // conv (+ its bias) (+ BN folded) (+ ReLU). Groups: depthwise when the kernel
  // has one input channel per group and the conv's name starts with "dw".
  std::string conv(const std::string& x, const std::string& conv_name, const std::string& bn_name, int64_t stride,
                   bool relu, bool depthwise = false) {
    const rt::Tensor& w = get(conv_name + ".weight");
    const int64_t co = w.size(0), k = w.size(2);
    std::vector<float> wv = w.to_vector();
    std::vector<double> bias(size_t(co), 0.0);
    if (has(conv_name + ".bias")) {
      std::vector<float> b = get(conv_name + ".bias").to_vector();
      for (int64_t c = 0; c < co; ++c) bias[size_t(c)] = b[size_t(c)];
    }
    if (!bn_name.empty()) {
      const std::vector<float> ga = get(bn_name + ".weight").to_vector(), be = get(bn_name + ".bias").to_vector(),
                               mu = get(bn_name + ".running_mean").to_vector(),
                               var = get(bn_name + ".running_var").to_vector();
      const int64_t per = w.numel() / co;
      for (int64_t c = 0; c < co; ++c) {
        const double s = double(ga[size_t(c)]) / std::sqrt(double(var[size_t(c)]) + kBnEps);
        for (int64_t i = 0; i < per; ++i) wv[size_t(c * per + i)] = float(double(wv[size_t(c * per + i)]) * s);
        bias[size_t(c)] = (bias[size_t(c)] - double(mu[size_t(c)])) * s + double(be[size_t(c)]);
      }
    }
    std::vector<float> bf(bias.begin(), bias.end());
    const std::string W = g_.initializer(conv_name + ".weight", w.shape(), std::move(wv));
    const std::string B = g_.initializer(conv_name + ".bias", {co}, std::move(bf));
    std::vector<Attr> attrs = {Attr::of("kernel_shape", std::vector<int64_t>{k, k}),
                               Attr::of("pads", std::vector<int64_t>{k / 2, k / 2, k / 2, k / 2}),
                               Attr::of("strides", std::vector<int64_t>{stride, stride})};
    if (depthwise) attrs.push_back(Attr::of("group", co));
    std::string y = g_.node1("Conv", {x, W, B}, attrs, conv_name);
    return relu ? g_.node1("Relu", {y}, {}, conv_name + ".relu") : y;
  }

  // Linear as Gemm (weight (out, in), transB).
  std::string linear(const std::string& x, const std::string& name, bool relu) {
    const rt::Tensor& w = get(name + ".weight");
    const std::string W = g_.initializer(name + ".weight", w.shape(), w.to_vector());
    const std::string B = g_.initializer(name + ".bias", {w.size(0)}, get(name + ".bias").to_vector());
    std::string y = g_.node1("Gemm", {x, W, B}, {Attr::of("transB", int64_t(1))}, name);
    return relu ? g_.node1("Relu", {y}, {}, name + ".relu") : y;
  }

  // Channels `idx` of x (N,C,H,W), in that order.
  std::string gather_channels(const std::string& x, const std::vector<int64_t>& idx, const std::string& hint) {
    const std::string I = g_.initializer_i64(hint + ".channels", {int64_t(idx.size())}, idx);
    return g_.node1("Gather", {x, I}, {Attr::of("axis", int64_t(1))}, hint);
  }

  // (N, A*C, H, W) -> (N, H*W*A, C): row (h*W + w)*A + a, column c = channel a*C + c.
  std::string flatten_head(const std::string& x, int64_t C, const std::string& hint) {
    const std::string t = g_.node1("Transpose", {x}, {Attr::of("perm", std::vector<int64_t>{0, 2, 3, 1})}, hint + ".t");
    const std::string shape = g_.initializer_i64(hint + ".shape", {3}, {0, -1, C});
    return g_.node1("Reshape", {t, shape}, {}, hint);
  }

  std::string upsample2x(const std::string& x, const std::string& hint) {
    const std::string roi = g_.initializer(hint + ".roi", {0}, {});
    const std::string scales = g_.initializer(hint + ".scales", {4}, {1, 1, 2, 2});
    return g_.node1("Resize", {x, roi, scales},
                    {Attr::of("mode", "nearest"), Attr::of("coordinate_transformation_mode", "asymmetric"),
                     Attr::of("nearest_mode", "floor")},
                    hint);
  }

  // The backbone on `path`: C2..C5.
  std::vector<std::string> backbone(const std::string& images, const nn::Backbone& bb, const nn::Arch& path) {
    std::string x = conv(images, "backbone.stem.conv", "backbone.stem.bn", 2, true);
    std::vector<std::string> feats;
    const nn::SearchSpace& space = bb.space();
    for (const nn::BlockSpec& b : bb.block_specs()) {
      const int c = path[size_t(b.index)];
      const std::string p = "backbone.stage" + std::to_string(b.stage + 1) + "." + std::to_string(b.index_in_stage) +
                            ".choice" + std::to_string(c) + ".";
      if (b.stride == 2) {
        const std::string proj = branch(x, p + "proj.", c, true, 2);
        const std::string main = branch(x, p + "main.", c, false, 2);
        x = g_.node1("Concat", {proj, main}, {Attr::of("axis", int64_t(1))}, p + "concat");
      } else {
        const int64_t C = b.in_channels, half = C / 2;
        std::vector<int64_t> pass(static_cast<size_t>(half)), rest(static_cast<size_t>(half));
        for (int64_t k = 0; k < half; ++k) {
          if (bb.options().split == nn::ChannelSplit::ShuffleHalve) {
            pass[size_t(k)] = kernels::shuffle_src_channel(k, C, 2);
            rest[size_t(k)] = kernels::shuffle_src_channel(half + k, C, 2);
          } else {
            pass[size_t(k)] = kernels::even_odd_src_channel(k, 0);
            rest[size_t(k)] = kernels::even_odd_src_channel(k, 1);
          }
        }
        const std::string a = gather_channels(x, pass, p + "pass");
        const std::string r = gather_channels(x, rest, p + "rest");
        const std::string main = branch(r, p + "main.", c, false, 1);
        x = g_.node1("Concat", {a, main}, {Attr::of("axis", int64_t(1))}, p + "concat");
      }
      if (b.index_in_stage == space.stage_blocks[size_t(b.stage)] - 1) feats.push_back(x);
    }
    return feats;
  }

  OnnxGraph& graph() { return g_; }

 private:
  // nn::ChoiceUnit's branches (nn/blocks.cpp): the projection (dw k s2 + pw), the
  // ShuffleNetV2 main branch (pw, dw k stride s, pw) or the Xception one.
  std::string branch(const std::string& x, const std::string& p, int choice, bool proj, int64_t s) {
    if (proj) return conv(conv(x, p + "dw", p + "bn1", 2, false, true), p + "pw", p + "bn2", 1, true);
    if (nn::choice_kind(choice) == nn::BlockKind::Shuffle) {
      std::string y = conv(x, p + "pw1", p + "bn1", 1, true);
      y = conv(y, p + "dw", p + "bn2", s, false, true);
      return conv(y, p + "pw2", p + "bn3", 1, true);
    }
    std::string y = conv(x, p + "dw1", p + "bn1", s, false, true);
    y = conv(y, p + "pw1", p + "bn2", 1, true);
    y = conv(y, p + "dw2", p + "bn3", 1, false, true);
    y = conv(y, p + "pw2", p + "bn4", 1, true);
    y = conv(y, p + "dw3", p + "bn5", 1, false, true);
    return conv(y, p + "pw3", p + "bn6", 1, true);
  }

  OnnxGraph& g_;
  std::map<std::string, rt::Tensor> tensors_;
};

std::string input_images(OnnxGraph& g, const OnnxOptions& o) {
  if (o.dynamic) return g.input("images", {-1, 3, -1, -1}, {"batch", "", "height", "width"});
  return g.input("images", {o.batch, 3, o.height, o.width}, {});
}

void anchors_output(OnnxGraph& g, const rt::Tensor& anchors) {
  g.output(g.initializer("anchors.value", anchors.shape(), anchors.to_vector()), "anchors");
}

// A zero batch of the export size through detnas's own forward: the anchors (and
// the feature sizes) the fixed-size graph's outputs pair with.
rt::Tensor fixed_anchors(det::Detector& net, const nn::Arch& path, const OnnxOptions& o) {
  rt::Tensor zeros = rt::Tensor::zeros({1, 3, o.height, o.width});
  rt::NoGradGuard ng;
  nn::ModeGuard mg(net, nn::Mode::Eval);
  if (auto* r = dynamic_cast<det::RetinaNet*>(&net)) {
    auto h = r->forward_heads(zeros, path);
    return det::retinanet_anchors(r->anchor_generator(), h.feature_sizes);
  }
  auto& f = dynamic_cast<det::FasterRcnn&>(net);
  return f.forward_rpn(zeros, path).all_anchors;
}

int64_t finish(OnnxGraph& g, const std::string& file, const OnnxOptions& o, const std::string& graph_kind,
               OnnxExport& r) {
  std::map<std::string, std::string> md = o.metadata;
  md["detnas.graph"] = graph_kind;
  const int64_t bytes = g.finish(file, md);
  r.files.push_back(file);
  r.bytes += bytes;
  r.nodes += g.num_nodes();
  r.initializers += g.num_initializers();
  return bytes;
}

void export_retinanet(det::RetinaNet& net, const nn::Arch& path, const OnnxOptions& o, const std::string& out,
                      OnnxExport& r) {
  OnnxGraph g("detnas_retinanet", o.opset);
  Builder b(net, g);
  const std::string images = input_images(g, o);
  std::vector<std::string> c = b.backbone(images, net.backbone(), path);
  // RetinaFpn on C3..C5 (detect/fpn.h): laterals and outputs with bias, no norm.
  std::vector<std::string> lat(3), p(5);
  for (int l = 0; l < 3; ++l)
    lat[size_t(l)] = b.conv(c[size_t(l + 1)], "fpn.lateral" + std::to_string(l + 3), "", 1, false);
  std::string inner = lat[2];
  p[2] = b.conv(inner, "fpn.output5", "", 1, false);
  for (int l = 1; l >= 0; --l) {
    inner = g.node1("Add", {lat[size_t(l)], b.upsample2x(inner, "fpn.up" + std::to_string(l + 3))}, {},
                    "fpn.inner" + std::to_string(l + 3));
    p[size_t(l)] = b.conv(inner, "fpn.output" + std::to_string(l + 3), "", 1, false);
  }
  p[3] = b.conv(p[2], "fpn.p6", "", 2, false);
  p[4] = b.conv(g.node1("Relu", {p[3]}, {}, "fpn.p6.relu"), "fpn.p7", "", 2, false);
  const int64_t K = net.options().num_classes, depth = net.options().tower_depth;
  std::vector<std::string> cls_out, box_out;
  for (int l = 0; l < 5; ++l) {
    std::string cls = p[size_t(l)], box = p[size_t(l)];
    for (int64_t i = 0; i < depth; ++i) {
      cls = b.conv(cls, "head.cls_tower." + std::to_string(i), "", 1, true);
      box = b.conv(box, "head.box_tower." + std::to_string(i), "", 1, true);
    }
    const std::string lv = "p" + std::to_string(l + 3);
    cls_out.push_back(b.flatten_head(b.conv(cls, "head.cls_logits", "", 1, false), K, "cls_" + lv + ".flat"));
    box_out.push_back(b.flatten_head(b.conv(box, "head.bbox_pred", "", 1, false), 4, "box_" + lv + ".flat"));
    if (!o.nms) {
      g.output(cls_out.back(), "cls_" + lv);
      g.output(box_out.back(), "box_" + lv);
    }
  }
  if (o.nms) {
    // Per-level anchors of the fixed size, in the rows of the flattened outputs.
    const rt::Tensor all = fixed_anchors(net, path, o);
    std::vector<rt::Tensor> per_level;
    int64_t off = 0;
    for (int l = 0; l < 5; ++l) {
      const int64_t h = (o.height + (8 << l) - 1) / (8 << l), w = (o.width + (8 << l) - 1) / (8 << l);
      const int64_t T = h * w * net.num_anchors_per_location();
      per_level.push_back(all.narrow(0, off, T).contiguous());
      off += T;
    }
    DETNAS_CHECK(off == all.size(0), "export: ", all.size(0), " anchors for levels of ", off, " rows");
    const std::string size = g.input("image_size", {2}, {});
    const NmsOutputs d = retinanet_nms(g, cls_out, box_out, per_level, K, size,
                                       det::BoxCoder(net.options().box_weights).params(), net.options().post);
    g.output(d.boxes, "boxes");
    g.output(d.scores, "scores");
    g.output(d.labels, "labels", true);
    const det::PostprocessParams& pp = net.options().post;
    OnnxOptions with = o;
    with.metadata["detnas.postprocess"] =
        "nms: inputs images and image_size (2: the unpadded height, width the boxes are clipped to); outputs boxes "
        "(D,4: x1,y1,x2,y2 in input pixels; divide by the resize factor for the original image), scores (D), labels "
        "(D, int64 0..K-1), best first; sigmoid score > " +
        std::to_string(pp.score_thresh) + ", the top " + std::to_string(pp.pre_nms_top_n) +
        " per level, per-class NMS at IoU " + std::to_string(pp.nms_thresh) + ", the " +
        std::to_string(pp.detections_per_image) + " best";
    finish(g, out, with, "retinanet with post-processing: images, image_size -> boxes, scores, labels", r);
    return;
  }
  if (!o.dynamic) anchors_output(g, fixed_anchors(net, path, o));
  finish(g, out, o, "retinanet: images -> cls_p3..p7, box_p3..p7" + std::string(o.dynamic ? "" : ", anchors"), r);
}

void export_faster_rcnn(det::FasterRcnn& net, const nn::Arch& path, const OnnxOptions& o, const std::string& out,
                        OnnxExport& r) {
  {
    OnnxGraph g("detnas_fpn_rpn", o.opset);
    Builder b(net, g);
    const std::string images = input_images(g, o);
    std::vector<std::string> c = b.backbone(images, net.backbone(), path);
    // FpnBn on C2..C5 (detect/fpn_bn.h): conv + BN everywhere, P6 = max-pool k1 s2 of P5.
    std::vector<std::string> lat(4), p(5);
    for (int l = 0; l < 4; ++l) {
      const std::string n = "fpn.lateral" + std::to_string(l + 2);
      lat[size_t(l)] = b.conv(c[size_t(l)], n + ".conv", n + ".bn", 1, false);
    }
    std::string inner = lat[3];
    p[3] = b.conv(inner, "fpn.output5.conv", "fpn.output5.bn", 1, false);
    for (int l = 2; l >= 0; --l) {
      const std::string n = std::to_string(l + 2);
      inner = g.node1("Add", {lat[size_t(l)], b.upsample2x(inner, "fpn.up" + n)}, {}, "fpn.inner" + n);
      p[size_t(l)] = b.conv(inner, "fpn.output" + n + ".conv", "fpn.output" + n + ".bn", 1, false);
    }
    p[4] =
        g.node1("MaxPool", {p[3]},
                {Attr::of("kernel_shape", std::vector<int64_t>{1, 1}), Attr::of("strides", std::vector<int64_t>{2, 2})},
                "fpn.p6");
    for (int l = 0; l < 4; ++l) g.output(p[size_t(l)], "p" + std::to_string(l + 2));
    for (int l = 0; l < 5; ++l) {
      const std::string lv = "p" + std::to_string(l + 2);
      const std::string t = b.conv(p[size_t(l)], "rpn.conv", "", 1, true);
      g.output(b.flatten_head(b.conv(t, "rpn.cls_logits", "", 1, false), 1, "rpn_obj_" + lv), "rpn_objectness_" + lv);
      g.output(b.flatten_head(b.conv(t, "rpn.bbox_pred", "", 1, false), 4, "rpn_del_" + lv), "rpn_deltas_" + lv);
    }
    if (!o.dynamic) anchors_output(g, fixed_anchors(net, path, o));
    finish(g, out, o,
           "fpn stage 1: images -> p2..p5, rpn_objectness_p2..p6, rpn_deltas_p2..p6" +
               std::string(o.dynamic ? "" : ", anchors") + "; stage 2 in " + box_head_file(out),
           r);
  }
  OnnxGraph g("detnas_fpn_box_head", o.opset);
  Builder b(net, g);
  const int64_t C = net.options().fpn_channels, P = net.options().roi.pooler.pooled_h;
  std::string x = g.input("roi_features", {-1, C, P, P}, {"rois"});
  for (int64_t i = 0; i < net.options().head_depth; ++i) {
    const std::string n = "box_head.conv." + std::to_string(i);
    x = b.conv(x, n + ".conv", n + ".bn", 1, true);
  }
  x = g.node1("Flatten", {x}, {Attr::of("axis", int64_t(1))}, "box_head.flatten");
  x = b.linear(x, "box_head.fc6", true);
  g.output(b.linear(x, "box_head.cls_score", false), "class_logits");
  g.output(b.linear(x, "box_head.bbox_pred", false), "box_deltas");
  finish(g, box_head_file(out), o, "fpn stage 2: roi_features (RoIAlign of the proposals) -> class_logits, box_deltas",
         r);
}

}  // namespace

std::string box_head_file(const std::string& out) {
  const std::string ext = ".onnx";
  const bool has = out.size() > ext.size() && out.compare(out.size() - ext.size(), ext.size(), ext) == 0;
  return (has ? out.substr(0, out.size() - ext.size()) : out) + ".box_head.onnx";
}

OnnxExport export_onnx(det::Detector& net, const nn::Arch& path_in, const OnnxOptions& o, const std::string& out) {
  DETNAS_CHECK(o.dynamic || (o.height > 0 && o.height % 32 == 0 && o.width > 0 && o.width % 32 == 0),
               "export: input size ", o.height, "x", o.width, " must be positive multiples of 32");
  DETNAS_CHECK(o.batch > 0, "export: batch ", o.batch, " must be positive");
  DETNAS_CHECK(!o.nms || (std::string(net.kind()) == "retinanet" && o.batch == 1 && !o.dynamic),
               "export: post-processing inside the graph (nms) is for RetinaNet with a fixed input of batch 1 (",
               net.kind(), ", batch ", o.batch, o.dynamic ? ", dynamic" : "", ")");
  nn::Arch path = path_in;
  const nn::BackboneOptions& bo = net.backbone().options();
  if (bo.kind == nn::NetKind::Standalone) {
    DETNAS_CHECK(path.empty() || path == bo.arch, "export: the standalone network of arch ", nn::format_arch(bo.arch),
                 " cannot export path ", nn::format_arch(path), " (--arch)");
    path = bo.arch;
  }
  DETNAS_CHECK(!path.empty(), "export: a supernet needs the path to export (--arch)");
  nn::validate_arch(net.backbone().space(), path);
  OnnxExport r;
  if (auto* rn = dynamic_cast<det::RetinaNet*>(&net))
    export_retinanet(*rn, path, o, out, r);
  else if (auto* fr = dynamic_cast<det::FasterRcnn*>(&net))
    export_faster_rcnn(*fr, path, o, out, r);
  else
    DETNAS_CHECK(false, "export: detector kind ", net.kind(), " cannot be exported");
  return r;
}

std::map<std::string, rt::Tensor> reference_outputs(det::Detector& net, const nn::Arch& path, const rt::Tensor& images,
                                                    const rt::Tensor& roi_features) {
  rt::NoGradGuard ng;
  nn::ModeGuard mg(net, nn::Mode::Eval);
  std::map<std::string, rt::Tensor> out;
  if (auto* rn = dynamic_cast<det::RetinaNet*>(&net)) {
    auto h = rn->forward_heads(images, path);
    for (size_t l = 0; l < h.cls.size(); ++l) {
      out["cls_p" + std::to_string(l + 3)] = h.cls[l].contiguous();
      out["box_p" + std::to_string(l + 3)] = h.box[l].contiguous();
    }
    out["anchors"] = det::retinanet_anchors(rn->anchor_generator(), h.feature_sizes);
    return out;
  }
  auto& fr = dynamic_cast<det::FasterRcnn&>(net);
  auto r = fr.forward_rpn(images, path);
  for (size_t l = 0; l < r.features.size(); ++l) {
    const std::string lv = "p" + std::to_string(l + 2);
    if (l < 4) out[lv] = r.features[l].contiguous();
    out["rpn_objectness_" + lv] = r.objectness[l].contiguous();
    out["rpn_deltas_" + lv] = r.deltas[l].contiguous();
  }
  out["anchors"] = r.all_anchors;
  if (roi_features.defined()) {
    auto [cls, box] = fr.box_head().forward(roi_features);
    out["class_logits"] = cls.contiguous();
    out["box_deltas"] = box.contiguous();
  }
  return out;
}

}  // namespace detnas::exporter
