// RetinaNet (detect/fpn, detect/retinanet, detect/postprocess): head/FPN shapes on
// padded odd sizes, the flatten order against the anchor order (through
// post-processing), the loss against a direct double-precision computation, loss
// decrease under SGD, supernet/standalone equivalence through the whole detector,
// and an overfit check (AP > 0.9 on a few synthetic images).
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <map>

#include "core/log.h"
#include "data/coco_eval.h"
#include "data/synthetic.h"
#include "data/transforms.h"
#include "detect/retinanet.h"
#include "nn/optimizer.h"
#include "runtime/autograd.h"
#include "runtime/ops_conv.h"
#include "runtime/ops_elementwise.h"
#include "runtime/ops_shape.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::test;
using detnas::rt::Tensor;

namespace {

const nn::Arch kTinyPath = {0, 3, 1, 2, 3, 0, 1, 2, 3, 1};

nn::BackboneOptions tiny_backbone(nn::NetKind kind, uint64_t seed) {
  nn::BackboneOptions b;
  b.space = "tiny";
  b.kind = kind;
  if (kind == nn::NetKind::Standalone) b.arch = kTinyPath;
  b.seed = seed;
  return b;
}

det::RetinaNetOptions small_options(int64_t K, int64_t channels, int64_t depth) {
  det::RetinaNetOptions o;
  o.num_classes = K;
  o.fpn_channels = channels;
  o.tower_depth = depth;
  o.seed = 5;
  return o;
}

Tensor random_tensor(const rt::Shape& s, uint64_t seed, double scale = 1.0) {
  return Tensor::from_vector(s, randn_f(rt::shape_numel(s), seed, scale));
}

// A few synthetic detection images (at `size` x `size`), their targets (crowd
// regions left out, as in training) and the matching COCO ground truth.
struct SynthBatch {
  std::vector<data::SyntheticSample> samples;
  std::vector<det::Targets> targets;
  data::CocoDataset gt;
  Tensor images;
};

SynthBatch synth_batch(const std::vector<int64_t>& indices, int64_t size) {
  SynthBatch b;
  for (const auto& c : data::synthetic_det_categories()) b.gt.categories.push_back({c.id, c.name, "shape"});
  int64_t ann_id = 1;
  for (size_t i = 0; i < indices.size(); ++i) {
    b.samples.push_back(data::render_detection_sample(7, data::SyntheticSplit::Train, indices[i], size));
    b.gt.images.push_back({int64_t(i + 1), int32_t(size), int32_t(size), "img" + std::to_string(i)});
  }
  for (size_t i = 0; i < b.samples.size(); ++i) {
    det::Targets t;
    for (const auto& o : b.samples[i].objects) {
      data::CocoAnnotation a;
      a.id = ann_id++;
      a.image_id = int64_t(i + 1);
      a.category_id = o.category_id;
      a.bbox = {o.bbox[0], o.bbox[1], o.bbox[2], o.bbox[3]};
      a.area = double(o.area);
      a.iscrowd = o.iscrowd;
      b.gt.annotations.push_back(a);
    }
  }
  data::finalize_coco_dataset(b.gt);
  for (size_t i = 0; i < b.samples.size(); ++i) {
    det::Targets t;
    for (const auto& o : b.samples[i].objects) {
      if (o.iscrowd) continue;
      t.boxes.insert(t.boxes.end(),
                     {float(o.bbox[0]), float(o.bbox[1]), float(o.bbox[0] + o.bbox[2]), float(o.bbox[1] + o.bbox[3])});
      t.labels.push_back(b.gt.label_of(o.category_id));
    }
    b.targets.push_back(t);
  }
  std::vector<const data::Image*> imgs;
  for (auto& s : b.samples) imgs.push_back(&s.image);
  b.images = data::batch_to_tensor(imgs);
  return b;
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

double iou_ref(const float* a, const float* b) {
  double iw = std::max(0.0, double(std::min(a[2], b[2])) - std::max(a[0], b[0]));
  double ih = std::max(0.0, double(std::min(a[3], b[3])) - std::max(a[1], b[1]));
  double inter = iw * ih;
  double ua = (double(a[2]) - a[0]) * (double(a[3]) - a[1]) + (double(b[2]) - b[0]) * (double(b[3]) - b[1]) - inter;
  return inter / ua;
}

}  // namespace

TEST_CASE("retinanet: head and FPN output shapes for odd image sizes padded to 32") {
  det::RetinaNet net(tiny_backbone(nn::NetKind::Supernet, 1), small_options(3, 16, 1));
  // Images 70x45 and 33x97 pad to 96x128.
  data::Image a(70, 45, data::bgr(10, 200, 30)), b(33, 97, data::bgr(90, 0, 255));
  Tensor x = data::batch_to_tensor({&a, &b});
  REQUIRE(x.shape() == rt::Shape{2, 3, 96, 128});
  auto out = net.forward_heads(x, kTinyPath);
  const int64_t hs[5] = {12, 6, 3, 2, 1}, ws[5] = {16, 8, 4, 2, 1};
  int64_t total = 0;
  REQUIRE(out.cls.size() == 5);
  for (int l = 0; l < 5; ++l) {
    CHECK(out.feature_sizes[size_t(l)].h == hs[l]);
    CHECK(out.feature_sizes[size_t(l)].w == ws[l]);
    CHECK(out.cls[size_t(l)].shape() == rt::Shape{2, hs[l] * ws[l] * 9, 3});
    CHECK(out.box[size_t(l)].shape() == rt::Shape{2, hs[l] * ws[l] * 9, 4});
    total += hs[l] * ws[l] * 9;
  }
  CHECK(det::retinanet_anchors(net.anchor_generator(), out.feature_sizes).size(0) == total);
  // Initial class scores are the prior (bias -log(99)) up to the small weights.
  CHECK(std::fabs(sigmoid(out.cls[0].to_vector()[0]) - 0.01) < 0.01);
  // Parameter names.
  bool has_b = false, has_f = false, has_h = false;
  for (auto& p : net.parameters()) {
    has_b |= p.name == "backbone.stem.conv.weight";
    has_f |= p.name == "fpn.p7.weight";
    has_h |= p.name == "head.cls_logits.bias";
  }
  CHECK(has_b);
  CHECK(has_f);
  CHECK(has_h);
  CHECK_THROWS_AS(net.forward_heads(Tensor::zeros({1, 3, 100, 96}), kTinyPath), Error);
  CHECK_THROWS_AS(net.forward_train(x, {det::Targets{}}, kTinyPath), Error);
}

TEST_CASE("retinanet: FPN P6 is conv3x3 s2 on the P5 output and P7 on ReLU(P6)") {
  Rng rng(3);
  det::RetinaFpn fpn({{8, 16, 24}, 12}, rng);
  std::vector<Tensor> c = {random_tensor({2, 8, 12, 20}, 1), random_tensor({2, 16, 6, 10}, 2),
                           random_tensor({2, 24, 3, 5}, 3)};
  auto p = fpn.forward(c);
  REQUIRE(p.size() == 5);
  CHECK(p[0].shape() == rt::Shape{2, 12, 12, 20});
  CHECK(p[2].shape() == rt::Shape{2, 12, 3, 5});
  CHECK(p[3].shape() == rt::Shape{2, 12, 2, 3});
  CHECK(p[4].shape() == rt::Shape{2, 12, 1, 2});
  std::map<std::string, Tensor> w;
  for (auto& pr : fpn.parameters()) w[pr.name] = pr.tensor;
  CHECK(w.size() == 16);
  Tensor p6 = rt::ops::conv2d(p[2], w["p6.weight"], w["p6.bias"], {2, 1, 1});
  Tensor p7 = rt::ops::conv2d(rt::ops::relu(p6), w["p7.weight"], w["p7.bias"], {2, 1, 1});
  CHECK(check_close("P6", to_double(p[3].to_vector()), to_double(p6.to_vector()), p6.shape(), Tol::exact()));
  CHECK(check_close("P7", to_double(p[4].to_vector()), to_double(p7.to_vector()), p7.shape(), Tol::exact()));
  // P5 = output5(lateral5(C5)); P4 = output4(lateral4(C4) + up(lateral5(C5))).
  Tensor l5 = rt::ops::conv2d(c[2], w["lateral5.weight"], w["lateral5.bias"], {1, 0, 1});
  Tensor l4 = rt::ops::add(rt::ops::conv2d(c[1], w["lateral4.weight"], w["lateral4.bias"], {1, 0, 1}),
                           rt::ops::upsample_nearest(l5, 6, 10));
  Tensor p4 = rt::ops::conv2d(l4, w["output4.weight"], w["output4.bias"], {1, 1, 1});
  CHECK(check_close("P4", to_double(p[1].to_vector()), to_double(p4.to_vector()), p4.shape(), Tol::exact()));
  CHECK_THROWS_AS(fpn.forward({c[0], c[1]}), Error);
}

TEST_CASE("retinanet: flatten_head_output order and gradient (bit-exact)") {
  const int64_t N = 2, A = 3, C = 5, H = 3, W = 4;
  Tensor x = random_tensor({N, A * C, H, W}, 3);
  x.requires_grad_();
  Tensor y = det::flatten_head_output(x, C);
  REQUIRE(y.shape() == rt::Shape{N, H * W * A, C});
  Tensor g = random_tensor(y.shape(), 4);
  rt::backward(rt::ops::sum(rt::ops::mul(y, g)));
  auto xv = x.to_vector(), yv = y.to_vector(), gv = g.to_vector(), gx = x.grad().to_vector();
  std::vector<double> got, ref, ggot, gref;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t w = 0; w < W; ++w)
        for (int64_t a = 0; a < A; ++a)
          for (int64_t c = 0; c < C; ++c) {
            int64_t xi = ((n * A * C + a * C + c) * H + h) * W + w;
            int64_t yi = (n * H * W * A + (h * W + w) * A + a) * C + c;
            got.push_back(yv[size_t(yi)]);
            ref.push_back(xv[size_t(xi)]);
            ggot.push_back(gx[size_t(xi)]);
            gref.push_back(gv[size_t(yi)]);
          }
  CHECK(check_close("flatten forward", got, ref, {N, H, W, A, C}, Tol::exact()));
  CHECK(check_close("flatten backward", ggot, gref, {N, H, W, A, C}, Tol::exact()));
  CHECK_THROWS_AS(det::flatten_head_output(Tensor::zeros({1, 7, 2, 2}), 4), Error);
}

TEST_CASE("retinanet: a head output firing at one (level, location, anchor, class) decodes to that anchor") {
  det::AnchorGenerator gen = det::AnchorGenerator::retinanet();
  const int64_t K = 4, A = 9, N = 1;
  std::vector<det::HW> fs = {{16, 12}, {8, 6}, {4, 3}, {2, 2}, {1, 1}};  // a 128x96 batch
  Tensor all = det::retinanet_anchors(gen, fs);
  struct Case {
    int64_t level, h, w, a, k;
  };
  for (Case cs : {Case{0, 9, 5, 4, 2}, Case{1, 3, 2, 8, 0}, Case{2, 2, 1, 0, 3}, Case{4, 0, 0, 6, 1}}) {
    std::vector<Tensor> cls, box, anchors;
    int64_t off = 0, expect_row = -1;
    for (int64_t l = 0; l < 5; ++l) {
      Tensor head = Tensor::full({N, A * K, fs[size_t(l)].h, fs[size_t(l)].w}, -10.0f);
      if (l == cs.level) head.data()[((cs.a * K + cs.k) * fs[size_t(l)].h + cs.h) * fs[size_t(l)].w + cs.w] = 3.0f;
      cls.push_back(det::flatten_head_output(head, K));
      box.push_back(det::flatten_head_output(Tensor::zeros({N, A * 4, fs[size_t(l)].h, fs[size_t(l)].w}), 4));
      const int64_t T = fs[size_t(l)].h * fs[size_t(l)].w * A;
      anchors.push_back(all.narrow(0, off, T).contiguous());
      if (l == cs.level) expect_row = off + (cs.h * fs[size_t(l)].w + cs.w) * A + cs.a;
      off += T;
    }
    det::ImageMeta m{42, 100000, 100000, 1.0, 1.0};  // no clipping
    auto dets = det::retinanet_postprocess(cls, box, anchors, {m}, det::BoxCoder({10, 10, 5, 5}), {});
    REQUIRE(dets.size() == 1);
    REQUIRE(dets[0].size() == 1);
    const det::Detection& d = dets[0][0];
    CHECK(d.image_id == 42);
    CHECK(d.label == cs.k);
    CHECK(std::fabs(d.score - sigmoid(3.0)) < 1e-6);
    // The anchor of that row, and its definition from the cell anchors and the stride.
    const float* ar = all.data() + expect_row * 4;
    const float* cell = gen.cell_anchors(cs.level).data() + cs.a * 4;
    const float s = float(int64_t(8) << cs.level);
    float expect[4] = {cell[0] + cs.w * s, cell[1] + cs.h * s, cell[2] + cs.w * s, cell[3] + cs.h * s};
    float got[4] = {d.x1, d.y1, d.x2, d.y2};
    for (int j = 0; j < 4; ++j) {
      CHECK(ar[j] == expect[j]);
      // Decoding zero deltas recomputes the box from centre and size in float32;
      // the result is clipped to the image (corner anchors reach below 0).
      const float e = std::max(expect[j], 0.0f);
      CHECK(std::fabs(got[j] - e) <= 1e-4 * (1 + std::fabs(e)));
    }
  }
}

TEST_CASE("retinanet: loss on a hand-built case equals a direct computation") {
  det::AnchorGenerator gen = det::AnchorGenerator::retinanet();
  std::vector<det::HW> fs = {{4, 4}, {2, 2}, {1, 1}, {1, 1}, {1, 1}};  // a 32x32 batch
  Tensor anchors = det::retinanet_anchors(gen, fs);
  const int64_t N = 3, T = anchors.size(0), K = 3;
  det::RetinaNetOptions o;
  o.num_classes = K;
  std::vector<det::Targets> tg(3);
  tg[0].boxes = {2, 3, 30, 25, 10, 10, 20, 40};
  tg[0].labels = {2, 0};
  tg[1].boxes = {0, 0, 64, 50};
  tg[1].labels = {1};
  // tg[2]: no objects (all background).
  Tensor cls = random_tensor({N, T, K}, 11, 2.0), box = random_tensor({N, T, 4}, 12, 0.5);
  det::Losses l = det::retinanet_loss(cls, box, anchors, tg, o);

  // Direct computation in double.
  auto av = anchors.to_vector(), cv = cls.to_vector(), bv = box.to_vector();
  double focal = 0, sl1 = 0;
  int64_t num_pos = 0;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t M = int64_t(tg[size_t(n)].labels.size());
    std::vector<std::vector<double>> q(static_cast<size_t>(M), std::vector<double>(static_cast<size_t>(T)));
    for (int64_t j = 0; j < M; ++j)
      for (int64_t i = 0; i < T; ++i)
        q[size_t(j)][size_t(i)] = iou_ref(tg[size_t(n)].boxes.data() + 4 * j, &av[size_t(4 * i)]);
    std::vector<int64_t> match(size_t(T), -1);
    for (int64_t i = 0; i < T; ++i) {
      double best = -1;
      int64_t bj = -1;
      for (int64_t j = 0; j < M; ++j)
        if (q[size_t(j)][size_t(i)] > best) best = q[size_t(j)][size_t(i)], bj = j;
      if (bj >= 0) match[size_t(i)] = best >= 0.5 ? bj : (best >= 0.4 ? -2 : -1);
    }
    for (int64_t j = 0; j < M; ++j) {  // low-quality matches
      double rmax = 0;
      for (int64_t i = 0; i < T; ++i) rmax = std::max(rmax, q[size_t(j)][size_t(i)]);
      for (int64_t i = 0; i < T; ++i)
        if (q[size_t(j)][size_t(i)] == rmax) {
          int64_t bj = 0;
          for (int64_t jj = 1; jj < M; ++jj)
            if (q[size_t(jj)][size_t(i)] > q[size_t(bj)][size_t(i)]) bj = jj;
          match[size_t(i)] = bj;
        }
    }
    for (int64_t i = 0; i < T; ++i) {
      const int64_t g = match[size_t(i)];
      if (g == -2) continue;
      for (int64_t k = 0; k < K; ++k) {
        double t = (g >= 0 && tg[size_t(n)].labels[size_t(g)] == k) ? 1.0 : 0.0;
        double x = cv[size_t((n * T + i) * K + k)], p = sigmoid(x);
        double ce = std::max(x, 0.0) - x * t + std::log1p(std::exp(-std::fabs(x)));
        double pt = p * t + (1 - p) * (1 - t), at = 0.25 * t + 0.75 * (1 - t);
        focal += at * ce * (1 - pt) * (1 - pt);
      }
      if (g < 0) continue;
      ++num_pos;
      const float* a = &av[size_t(4 * i)];
      const float* gb = tg[size_t(n)].boxes.data() + 4 * g;
      double aw = double(a[2]) - a[0], ah = double(a[3]) - a[1], ax = a[0] + 0.5 * aw, ay = a[1] + 0.5 * ah;
      double gw = double(gb[2]) - gb[0], gh = double(gb[3]) - gb[1], gx = gb[0] + 0.5 * gw, gy = gb[1] + 0.5 * gh;
      double tgt[4] = {10 * (gx - ax) / aw, 10 * (gy - ay) / ah, 5 * std::log(gw / aw), 5 * std::log(gh / ah)};
      for (int j = 0; j < 4; ++j) {
        double d = std::fabs(bv[size_t((n * T + i) * 4 + j)] - tgt[j]);
        sl1 += d < 0.11 ? 0.5 * d * d / 0.11 : d - 0.5 * 0.11;
      }
    }
  }
  REQUIRE(num_pos > 0);
  const double ref_cls = focal / double(num_pos + N), ref_box = sl1 / std::max(1.0, 4.0 * num_pos);
  // Float32 targets, IoUs and a reduction over N*T*K terms against double: the
  // golden-loss bound (relative 1e-4) covers the float32 encode of the targets.
  CHECK(check_close("cls loss", {l.cls.item()}, {ref_cls}, {1}, Tol::golden_grad(ref_cls)));
  CHECK(check_close("box loss", {l.box.item()}, {ref_box}, {1}, Tol::golden_grad(ref_box)));
  CHECK(check_close("total", {l.total.item()}, {ref_cls + ref_box}, {1}, Tol::golden_grad(ref_cls + ref_box)));
  // No object in the batch: box loss 0, focal summed over all anchors / N.
  det::Losses e = det::retinanet_loss(cls, box, anchors, {det::Targets{}, det::Targets{}, det::Targets{}}, o);
  CHECK(e.box.item() == 0.0f);
  double bg = 0;
  for (float x : cv) {
    double p = sigmoid(x);
    bg += 0.75 * (std::max(double(x), 0.0) + std::log1p(std::exp(-std::fabs(double(x))))) * p * p;
  }
  CHECK(check_close("background-only cls loss", {e.cls.item()}, {bg / N}, {1}, Tol::golden_grad(bg / N)));
  // Bad input.
  std::vector<det::Targets> bad = tg;
  bad[1].boxes = {5, 5, 5, 9};  // zero width
  CHECK_THROWS_AS(det::retinanet_loss(cls, box, anchors, bad, o), Error);
  bad = tg;
  bad[0].labels[0] = 3;
  CHECK_THROWS_AS(det::retinanet_loss(cls, box, anchors, bad, o), Error);
  CHECK_THROWS_AS(det::retinanet_loss(cls, box, anchors, {tg[0]}, o), Error);
  CHECK_THROWS_AS(det::retinanet_loss(cls, box.narrow(1, 0, 5), anchors, tg, o), Error);
}

TEST_CASE("retinanet: supernet with a fixed path equals the standalone detector (losses)") {
  det::RetinaNetOptions o = small_options(5, 16, 2);
  det::RetinaNet sn(tiny_backbone(nn::NetKind::Supernet, 3), o);
  o.seed = 77;  // different init: every weight must come from load_from
  det::RetinaNet st(tiny_backbone(nn::NetKind::Standalone, 99), o);
  st.load_from(sn);
  SynthBatch b = synth_batch({0, 1}, 64);
  det::DetLosses a = sn.forward_train(b.images, b.targets, kTinyPath);
  rt::backward(a.total);
  det::DetLosses c = st.forward_train(b.images, b.targets, nn::Arch{});
  rt::backward(c.total);
  CHECK(check_close("cls", {a.part("cls").item()}, {c.part("cls").item()}, {1}, Tol::elementwise()));
  CHECK(check_close("box", {a.part("box").item()}, {c.part("box").item()}, {1}, Tol::elementwise()));
  CHECK_THROWS_AS(a.part("rpn_cls"), Error);
  CHECK(a.total.item() > 0);
  auto grad_of = [](det::RetinaNet& net, const std::string& name) {
    for (auto& p : net.parameters())
      if (p.name == name) return to_double(p.tensor.grad().to_vector());
    FAIL("no parameter ", name);
    return std::vector<double>{};
  };
  for (const char* name : {"head.cls_logits.weight", "head.bbox_pred.bias", "fpn.lateral3.weight",
                           "backbone.stage1.1.choice3.main.dw1.weight", "backbone.stem.conv.weight"}) {
    auto ga = grad_of(sn, name), gc = grad_of(st, name);
    REQUIRE(ga.size() == gc.size());
    CHECK(check_close(name, ga, gc, {int64_t(ga.size())}, Tol::elementwise()));
  }
}

namespace {

// Trains `net` on the batch for `steps` SGD steps (linear warm-up over `warmup`
// steps, LR x0.1 for the last fifth); returns the total losses.
std::vector<double> train_steps(det::RetinaNet& net, const SynthBatch& b, int steps, double lr, int warmup) {
  nn::Sgd sgd(net.parameters(), nn::SgdConfig::detection());
  std::vector<double> losses;
  net.set_mode(nn::Mode::Train);
  for (int s = 0; s < steps; ++s) {
    det::DetLosses l = net.forward_train(b.images, b.targets, nn::Arch{});
    losses.push_back(l.total.item());
    rt::backward(l.total);
    const double warm = std::min(1.0, (s + 1) / double(warmup));
    sgd.step(lr * warm * (s >= steps * 4 / 5 ? 0.1 : 1.0));
  }
  return losses;
}

}  // namespace

TEST_CASE("retinanet: forward_features re-estimates every BN statistic exactly as the whole forward does") {
  det::RetinaNet net(tiny_backbone(nn::NetKind::Supernet, 3), small_options(3, 16, 2));
  SynthBatch b = synth_batch({0, 1}, 64);
  auto recalibrate = [&](bool whole) {
    nn::reset_bn_stats(net);
    net.set_mode(nn::Mode::Recalibrate);
    rt::NoGradGuard ng;
    if (whole)
      net.forward_heads(b.images, kTinyPath);
    else
      net.forward_features(b.images, kTinyPath);
    std::map<std::string, std::vector<float>> stats;
    for (auto& buf : net.buffers()) stats[buf.name] = buf.tensor.to_vector();
    return stats;
  };
  const auto whole = recalibrate(true), backbone_only = recalibrate(false);
  CHECK(whole.size() == backbone_only.size());
  int moved = 0;
  for (const auto& [name, v] : whole) {
    INFO(name);
    REQUIRE(backbone_only.count(name) == 1);
    CHECK(v == backbone_only.at(name));  // the same statistics, bit for bit
    if (name.find("running_mean") != std::string::npos)
      for (float x : v) moved += x != 0.0f;
  }
  CHECK(moved > 0);
}

TEST_CASE("retinanet: the loss decreases over a few SGD steps") {
  det::RetinaNet net(tiny_backbone(nn::NetKind::Standalone, 1), small_options(5, 16, 1));
  SynthBatch b = synth_batch({0, 1}, 64);
  // The N(0, 0.01) predictors make the first steps slow: a larger LR, no warm-up.
  std::vector<double> l = train_steps(net, b, 15, 0.05, 1);
  MESSAGE("loss ", l.front(), " -> ", l.back());
  CHECK(l.back() < 0.8 * l.front());
}

TEST_CASE("retinanet: overfits two synthetic images to AP > 0.9") {
  auto t0 = std::chrono::steady_clock::now();
  det::RetinaNet net(tiny_backbone(nn::NetKind::Standalone, 1), small_options(5, 32, 2));
  // Two 128x128 images with 10 objects between them (several occluded / truncated).
  SynthBatch b = synth_batch({3, 0}, 128);
  std::vector<double> l = train_steps(net, b, 500, 0.02, 50);
  std::vector<det::ImageMeta> metas;
  for (size_t i = 0; i < b.samples.size(); ++i) metas.push_back({int64_t(i + 1), 128, 128, 1.0, 1.0});
  auto dets = net.detect(b.images, metas, nn::Arch{});
  auto res = data::coco_evaluate(b.gt, det::to_coco_detections(dets, b.gt.label_to_category));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE("loss ", l.front(), " -> ", l.back(), ", AP ", res.stats[0], ", AP50 ", res.stats[1], ", ", secs, " s");
  CHECK(res.stats[0] > 0.9);
}
