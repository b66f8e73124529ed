// FPN Faster R-CNN (detect/fpn_bn, detect/rpn, detect/roi_heads,
// detect/faster_rcnn): RoI level assignment and proposal generation against
// hand-computed cases, balanced-sampler proportions and determinism, ground
// truth appended to the proposals, RPN and RoI losses against direct
// double-precision computations, FPN/P6 structure, shapes and bad input,
// supernet/standalone equivalence through the whole detector, loss decrease and
// an overfit check (AP > 0.9 on two synthetic images).
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <set>

#include "data/coco_eval.h"
#include "data/synthetic.h"
#include "data/transforms.h"
#include "detect/faster_rcnn.h"
#include "nn/optimizer.h"
#include "runtime/autograd.h"
#include "runtime/ops_conv.h"
#include "runtime/ops_elementwise.h"
#include "runtime/ops_norm.h"
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

det::FasterRcnnOptions small_options(int64_t K, int64_t channels, int64_t depth, int64_t fc) {
  det::FasterRcnnOptions o;
  o.num_classes = K;
  o.fpn_channels = channels;
  o.head_depth = depth;
  o.fc_dim = fc;
  o.rpn.pre_nms_top_n_train = 300;
  o.rpn.post_nms_top_n_train = 100;
  o.rpn.pre_nms_top_n_test = 300;
  o.rpn.post_nms_top_n_test = 100;
  o.roi.batch_size_per_image = 64;
  o.seed = 5;
  return o;
}

Tensor random_tensor(const rt::Shape& s, uint64_t seed, double scale = 1.0) {
  return Tensor::from_vector(s, randn_f(rt::shape_numel(s), seed, scale));
}

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
  for (size_t i = 0; i < b.samples.size(); ++i)
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

double bce_ref(double x, double t) { return std::max(x, 0.0) - x * t + std::log1p(std::exp(-std::fabs(x))); }
double sl1_ref(double d, double beta) {
  d = std::fabs(d);
  return d < beta ? 0.5 * d * d / beta : d - 0.5 * beta;
}

}  // namespace

TEST_CASE("fpn: RoI level assignment on hand cases") {
  struct Case {
    float box[4];
    int64_t level;
  };
  const Case cases[] = {
      {{0, 0, 224, 224}, 4},     // canonical size
      {{10, 10, 122, 122}, 3},   // 112: exactly one octave down (the 1e-6 keeps it on 3)
      {{0, 0, 111.9f, 112}, 2},  // just below 112
      {{0, 0, 448, 448}, 5},     // one octave up
      {{0, 0, 447, 448}, 4},     // just below
      {{0, 0, 112, 448}, 4},     // sqrt(112*448) = 224
      {{0, 0, 56, 56}, 2},       // level 2 exactly
      {{5, 5, 20, 20}, 2},       // level 1 clamped to 2
      {{0, 0, 2000, 2000}, 5},   // level 7 clamped to 5
      {{3, 3, 3, 9}, 2},         // zero area
  };
  for (const Case& c : cases) {
    INFO("box ", c.box[0], ",", c.box[1], ",", c.box[2], ",", c.box[3]);
    CHECK(det::fpn_roi_level(c.box) == c.level);
  }
}

TEST_CASE("fpn: proposal generation on a hand-built case") {
  // Level 0: 4 anchors, level 1: 3 anchors; one image 145 wide, 200 high.
  std::vector<float> a0 = {0, 0, 10, 10, 0.5f, 0.5f, 10.5f, 10.5f, 20, 20, 30, 30, 40, 0, 50, 10};
  std::vector<float> a1 = {0, 0, 10, 10, 100, 100, 140, 140, 50, 50, 50.0005f, 60};
  std::vector<float> s0 = {5, 4, 3, 1}, s1 = {4.5f, 2, 6};
  std::vector<float> d0(16, 0.0f), d1(12, 0.0f);
  d1[4] = 0.25f;  // anchor 1 of level 1: centre x + 0.25 * 40 -> (110,100,150,140), clipped at x = 145
  std::vector<Tensor> obj = {Tensor::from_vector({1, 4, 1}, s0), Tensor::from_vector({1, 3, 1}, s1)};
  std::vector<Tensor> del = {Tensor::from_vector({1, 4, 4}, d0), Tensor::from_vector({1, 3, 4}, d1)};
  std::vector<Tensor> anc = {Tensor::from_vector({4, 4}, a0), Tensor::from_vector({3, 4}, a1)};
  det::ProposalParams p;
  p.pre_nms_top_n = 3;  // drops level-0 anchor 3 (score 1)
  p.post_nms_top_n = 10;
  p.nms_thresh = 0.7f;
  // Level 0: anchor 1 has IoU 0.82 with anchor 0 -> suppressed. Level 1: anchor 0
  // equals level-0 anchor 0 but NMS is per level -> kept; anchor 2 is 0.0005 wide -> dropped.
  auto r = det::generate_proposals(obj, del, anc, {{200, 145}}, p);
  REQUIRE(r.size() == 1);
  const std::vector<double> expect_boxes = {0, 0, 10, 10, 0, 0, 10, 10, 20, 20, 30, 30, 110, 100, 145, 140};
  const std::vector<double> expect_scores = {5, 4.5, 3, 2};
  CHECK(check_close("boxes", to_double(r[0].boxes), expect_boxes, {4, 4}, Tol::elementwise()));
  CHECK(check_close("scores", to_double(r[0].scores), expect_scores, {4}, Tol::exact()));
  // post-NMS top-N is per image over all levels.
  p.post_nms_top_n = 2;
  r = det::generate_proposals(obj, del, anc, {{200, 145}}, p);
  CHECK(check_close("top-2 scores", to_double(r[0].scores), {5, 4.5}, {2}, Tol::exact()));
  // pre-NMS top-N 1 per level: the best anchor of each level that survives the size filter.
  p.pre_nms_top_n = 1;
  p.post_nms_top_n = 10;
  r = det::generate_proposals(obj, del, anc, {{200, 145}}, p);
  CHECK(check_close("top-1 per level", to_double(r[0].scores), {5}, {1}, Tol::exact()));  // level 1's best is tiny
  // Bad input.
  CHECK_THROWS_AS(det::generate_proposals(obj, {del[0]}, anc, {{200, 145}}, p), Error);
  CHECK_THROWS_AS(det::generate_proposals(obj, del, anc, {{200, 145}, {10, 10}}, p), Error);
  CHECK_THROWS_AS(det::generate_proposals(obj, del, {anc[1], anc[0]}, {{200, 145}}, p), Error);
}

TEST_CASE("fpn: balanced sampler proportions and determinism by seed") {
  std::vector<int> labels(2000, 0);
  for (int i = 0; i < 2000; i += 7) labels[size_t(i)] = -1;  // ignored
  for (int i = 3; i < 2000; i += 13) labels[size_t(i)] = 1;  // ~150 positives
  Rng r1(11), r2(11), r3(12);
  det::SampledIndices a = det::balanced_sample(labels, 256, 0.5f, r1);
  det::SampledIndices b = det::balanced_sample(labels, 256, 0.5f, r2);
  det::SampledIndices c = det::balanced_sample(labels, 256, 0.5f, r3);
  CHECK(a.pos.size() == 128);
  CHECK(a.neg.size() == 128);
  CHECK(a.pos == b.pos);
  CHECK(a.neg == b.neg);
  CHECK(a.pos != c.pos);
  std::set<int64_t> seen;
  for (int64_t i : a.pos) CHECK(labels[size_t(i)] == 1);
  for (int64_t i : a.neg) CHECK(labels[size_t(i)] == 0);
  seen.insert(a.pos.begin(), a.pos.end());
  seen.insert(a.neg.begin(), a.neg.end());
  CHECK(seen.size() == 256);
  // Few positives: all of them, negatives fill the batch.
  std::vector<int> few(500, 0);
  for (int i = 0; i < 10; ++i) few[size_t(i * 40)] = 1;
  det::SampledIndices f = det::balanced_sample(few, 512, 0.25f, r1);
  CHECK(f.pos.size() == 10);
  CHECK(f.neg.size() == 490);
  f = det::balanced_sample(few, 256, 0.25f, r1);
  CHECK(f.pos.size() == 10);
  CHECK(f.neg.size() == 246);
  // Each negative is equally likely: over 400 draws of 1 out of 4 every one is picked about 100 times.
  std::vector<int> four = {0, 0, 0, 0};
  std::vector<int> count(4, 0);
  for (int t = 0; t < 400; ++t) ++count[size_t(det::balanced_sample(four, 1, 0.5f, r3).neg.at(0))];
  for (int k = 0; k < 4; ++k) CHECK(std::abs(count[size_t(k)] - 100) < 40);
  CHECK_THROWS_AS(det::balanced_sample(four, 1, 1.5f, r3), Error);
}

TEST_CASE("fpn: RoI sampling appends the ground truth, keeps the positive fraction, is reproducible") {
  det::RoiHeadsOptions o;
  o.batch_size_per_image = 16;
  o.positive_fraction = 0.25f;
  std::vector<det::Targets> t(2);
  t[0].boxes = {10, 10, 50, 50, 60, 20, 90, 80};
  t[0].labels = {2, 0};
  // Image 0 without proposals: the RoIs are exactly the GT boxes.
  Rng rng(3);
  det::RoiSamples s = det::sample_rois({{}, {}}, {t[0], t[1]}, o, rng);
  REQUIRE(s.labels.size() == 2);
  CHECK(s.num_pos == 2);
  CHECK(check_close("rois", to_double(s.rois), {0, 10, 10, 50, 50, 0, 60, 20, 90, 80}, {2, 5}, Tol::exact()));
  CHECK(s.labels == std::vector<int64_t>{3, 1});  // background is class 0
  CHECK(
      check_close("targets of GT boxes", to_double(s.box_targets), std::vector<double>(8, 0.0), {2, 4}, Tol::exact()));
  // Many proposals: 40 near GT box 0 (IoU >= 0.5), 60 far away (background).
  std::vector<float> props;
  for (int i = 0; i < 40; ++i) props.insert(props.end(), {10.0f + 0.1f * i, 10, 50.0f + 0.1f * i, 50});
  for (int i = 0; i < 60; ++i) props.insert(props.end(), {200.0f + i, 200, 220.0f + i, 230});
  Rng ra(9), rb(9);
  det::RoiSamples a = det::sample_rois({props, props}, {t[0], t[1]}, o, ra);
  det::RoiSamples b = det::sample_rois({props, props}, {t[0], t[1]}, o, rb);
  CHECK(a.rois == b.rois);
  CHECK(a.labels == b.labels);
  // Image 0: 4 positives (16 * 0.25) + 12 negatives; image 1 (no GT): 16 negatives.
  CHECK(a.num_pos == 4);
  REQUIRE(a.labels.size() == 32);
  for (int i = 0; i < 4; ++i) CHECK(a.labels[size_t(i)] >= 1);
  for (int i = 4; i < 32; ++i) CHECK(a.labels[size_t(i)] == 0);
  for (int i = 0; i < 16; ++i) CHECK(a.rois[size_t(i * 5)] == 0.0f);
  for (int i = 16; i < 32; ++i) CHECK(a.rois[size_t(i * 5)] == 1.0f);
  // Regression targets of a positive: encode(proposal, gt) with weights 10,10,5,5.
  const float* pr = a.rois.data() + 1;
  const int64_t g = a.labels[0] == 3 ? 0 : 1;
  const float* gb = t[0].boxes.data() + 4 * g;
  double pw = pr[2] - pr[0], ph = pr[3] - pr[1], gw = gb[2] - gb[0], gh = gb[3] - gb[1];
  std::vector<double> code = {10 * ((gb[0] + 0.5 * gw) - (pr[0] + 0.5 * pw)) / pw,
                              10 * ((gb[1] + 0.5 * gh) - (pr[1] + 0.5 * ph)) / ph, 5 * std::log(gw / pw),
                              5 * std::log(gh / ph)};
  CHECK(check_close("positive target", to_double(std::vector<float>(a.box_targets.begin(), a.box_targets.begin() + 4)),
                    code, {4}, Tol::golden_forward(10)));
  CHECK_THROWS_AS(det::sample_rois({props}, {t[0], t[1]}, o, ra), Error);
}

TEST_CASE("fpn: RPN and RoI losses equal direct computations") {
  // RPN: 6 anchors, batch large enough that every non-ignored anchor is sampled.
  std::vector<float> av = {0, 0, 10, 10, 1, 1, 11, 11, 30, 30, 40, 40, 0, 0, 20, 20, 5, 0, 15, 10, 60, 60, 70, 90};
  Tensor anchors = Tensor::from_vector({6, 4}, av);
  det::Targets t;
  t.boxes = {0, 0, 10, 10, 30, 31, 41, 42};
  t.labels = {0, 1};
  det::RpnOptions ro;
  ro.batch_size_per_image = 100;
  Tensor obj = random_tensor({2, 6, 1}, 1, 2.0), del = random_tensor({2, 6, 4}, 2, 0.5);
  Rng rng(1);
  det::RpnLosses l = det::rpn_loss(obj, del, anchors, {t, det::Targets{}}, ro, rng);
  // Image 0 by hand: IoU with GT 0: anchor 0: 1; 1: 81/119 = 0.68 (between 0.3 and 0.7 -> ignored);
  // 3: 100/400 = 0.25; 4: 50/150 = 0.33 (ignored); GT 1: anchor 2: 90/121 = 0.74 -> positive.
  // Image 1 has no GT: 6 negatives.
  const int lab0[6] = {1, -1, 1, 0, -1, 0};
  auto ov = obj.to_vector(), dv = del.to_vector();
  double bce = 0, sl1 = 0;
  int count = 0;
  for (int n = 0; n < 2; ++n)
    for (int i = 0; i < 6; ++i) {
      const int lab = n == 0 ? lab0[i] : 0;
      if (lab < 0) continue;
      ++count;
      bce += bce_ref(ov[size_t(n * 6 + i)], lab);
      if (lab != 1) continue;
      const float* a = &av[size_t(4 * i)];
      const float* g = t.boxes.data() + (i == 0 ? 0 : 4);
      double aw = a[2] - a[0], ah = a[3] - a[1], gw = g[2] - g[0], gh = g[3] - g[1];
      double tg[4] = {((g[0] + 0.5 * gw) - (a[0] + 0.5 * aw)) / aw, ((g[1] + 0.5 * gh) - (a[1] + 0.5 * ah)) / ah,
                      std::log(gw / aw), std::log(gh / ah)};
      for (int j = 0; j < 4; ++j) sl1 += sl1_ref(dv[size_t((n * 6 + i) * 4 + j)] - tg[j], 1.0 / 9);
    }
  CHECK(l.num_sampled == count);
  CHECK(l.num_pos == 2);
  CHECK(check_close("rpn cls", {l.cls.item()}, {bce / count}, {1}, Tol::golden_grad(bce / count)));
  CHECK(check_close("rpn box", {l.box.item()}, {sl1 / count}, {1}, Tol::golden_grad(sl1 / count)));

  // RoI loss: 5 RoIs, K = 3 (+ background).
  Tensor cls = random_tensor({5, 4}, 3, 2.0), box = random_tensor({5, 16}, 4, 0.7);
  std::vector<int64_t> labels = {2, 0, 3, 0, 1};
  std::vector<float> bt = randn_f(20, 5, 0.5);
  det::RoiLosses rl = det::roi_loss(cls, box, labels, bt, det::RoiHeadsOptions{});
  auto cv = cls.to_vector(), bv = box.to_vector();
  double ce = 0, rsl1 = 0;
  for (int i = 0; i < 5; ++i) {
    double mx = -1e30, z = 0;
    for (int k = 0; k < 4; ++k) mx = std::max(mx, double(cv[size_t(i * 4 + k)]));
    for (int k = 0; k < 4; ++k) z += std::exp(cv[size_t(i * 4 + k)] - mx);
    ce += -(cv[size_t(i * 4 + labels[size_t(i)])] - mx - std::log(z));
    if (labels[size_t(i)] == 0) continue;
    for (int j = 0; j < 4; ++j)
      rsl1 += sl1_ref(bv[size_t(i * 16 + labels[size_t(i)] * 4 + j)] - bt[size_t(i * 4 + j)], 1.0);
  }
  CHECK(check_close("roi cls", {rl.cls.item()}, {ce / 5}, {1}, Tol::golden_grad(ce / 5)));
  CHECK(check_close("roi box", {rl.box.item()}, {rsl1 / 5}, {1}, Tol::golden_grad(rsl1 / 5)));
  // Bad input.
  CHECK_THROWS_AS(det::roi_loss(cls, box, {2, 0, 4, 0, 1}, bt, det::RoiHeadsOptions{}), Error);
  CHECK_THROWS_AS(det::roi_loss(cls, box.narrow(1, 0, 12), labels, bt, det::RoiHeadsOptions{}), Error);
  det::Targets bad = t;
  bad.boxes[2] = 0;  // zero width
  CHECK_THROWS_AS(det::rpn_loss(obj, del, anchors, {bad, det::Targets{}}, ro, rng), Error);
  CHECK_THROWS_AS(det::rpn_loss(obj, del, anchors, {t}, ro, rng), Error);
}

TEST_CASE("fpn: multi-scale RoIAlign picks the level and scale of each RoI, gradient reaches that level only") {
  std::vector<Tensor> f = {random_tensor({2, 3, 32, 32}, 1), random_tensor({2, 3, 16, 16}, 2),
                           random_tensor({2, 3, 8, 8}, 3), random_tensor({2, 3, 4, 4}, 4)};
  for (auto& x : f) x.requires_grad_();
  // RoI 0: sqrt(100*224) = 150 -> level 3 (index 1); RoIs 1 and 2 -> level 2 (index 0).
  std::vector<float> rois = {1, 0, 0, 100, 224, 0, 4, 4, 40, 40, 1, 10, 20, 30, 50};
  std::vector<int64_t> order;
  rt::ops::RoiAlignParams p;
  Tensor y = det::multiscale_roi_align(f, rois, p, &order);
  REQUIRE(order == std::vector<int64_t>{1, 2, 0});
  REQUIRE(y.shape() == rt::Shape{3, 3, 7, 7});
  for (int i = 0; i < 3; ++i) {
    const int64_t r = order[size_t(i)];
    const int64_t lvl = det::fpn_roi_level(rois.data() + r * 5 + 1) - 2;
    rt::ops::RoiAlignParams q = p;
    q.spatial_scale = 1.0f / float(4 << lvl);
    Tensor ref = rt::ops::roi_align(
        f[size_t(lvl)].detach(),
        Tensor::from_vector({1, 5}, std::vector<float>(rois.begin() + r * 5, rois.begin() + r * 5 + 5)), q);
    Tensor got = y.narrow(0, i, 1).contiguous();
    CHECK(check_close("roi " + std::to_string(r), to_double(got.to_vector()), to_double(ref.to_vector()), got.shape(),
                      Tol::exact()));
  }
  rt::backward(rt::ops::sum(y));
  CHECK(f[0].grad().defined());
  CHECK(f[1].grad().defined());
  CHECK_FALSE(f[2].grad().defined());
  CHECK_FALSE(f[3].grad().defined());
}

TEST_CASE("fpn: FPN with BN, P6 = max-pool k1 s2 of P5, detector shapes, names and bad input") {
  Rng rng(3);
  det::FpnBn fpn({{8, 16, 24, 32}, 12}, rng);
  std::vector<Tensor> c = {random_tensor({2, 8, 24, 32}, 1), random_tensor({2, 16, 12, 16}, 2),
                           random_tensor({2, 24, 6, 8}, 3), random_tensor({2, 32, 3, 4}, 4)};
  auto p = fpn.forward(c);
  REQUIRE(p.size() == 5);
  CHECK(p[0].shape() == rt::Shape{2, 12, 24, 32});
  CHECK(p[3].shape() == rt::Shape{2, 12, 3, 4});
  CHECK(p[4].shape() == rt::Shape{2, 12, 2, 2});
  auto p5 = p[3].to_vector(), p6 = p[4].to_vector();
  // P6[y][x] = P5[2y][2x].
  for (int n = 0; n < 2; ++n)
    for (int ch = 0; ch < 12; ++ch)
      for (int y = 0; y < 2; ++y)
        for (int x = 0; x < 2; ++x)
          CHECK(p6[size_t(((n * 12 + ch) * 2 + y) * 2 + x)] == p5[size_t(((n * 12 + ch) * 3 + 2 * y) * 4 + 2 * x)]);
  // P5 = BN(conv3x3(BN(conv1x1(C5)))) in train mode (batch statistics).
  std::map<std::string, Tensor> w;
  for (auto& pr : fpn.parameters()) w[pr.name] = pr.tensor;
  CHECK(w.size() == 24);  // 8 convs (no bias) + 8 BNs (weight, bias)
  Tensor rm = Tensor::zeros({12}), rv = Tensor::full({12}, 1.0f);
  Tensor l5 =
      rt::ops::batch_norm(rt::ops::conv2d(c[3], w["lateral5.conv.weight"], Tensor(), {1, 0, 1}),
                          w["lateral5.bn.weight"], w["lateral5.bn.bias"], rm, rv, rt::ops::BatchNormMode::Train);
  Tensor o5 = rt::ops::batch_norm(rt::ops::conv2d(l5, w["output5.conv.weight"], Tensor(), {1, 1, 1}),
                                  w["output5.bn.weight"], w["output5.bn.bias"], rm, rv, rt::ops::BatchNormMode::Train);
  CHECK(check_close("P5", to_double(p5), to_double(o5.to_vector()), o5.shape(), Tol::exact()));
  CHECK_THROWS_AS(fpn.forward({c[0], c[1], c[2]}), Error);
  CHECK_THROWS_AS(fpn.forward({c[1], c[1], c[2], c[3]}), Error);

  det::FasterRcnn net(tiny_backbone(nn::NetKind::Supernet, 1), small_options(3, 16, 1, 32));
  CHECK(std::string(net.kind()) == "fpn");
  data::Image a(70, 45, data::bgr(10, 200, 30)), b(33, 97, data::bgr(90, 0, 255));
  Tensor x = data::batch_to_tensor({&a, &b});
  REQUIRE(x.shape() == rt::Shape{2, 3, 96, 128});
  auto r = net.forward_rpn(x, kTinyPath);
  const int64_t hs[5] = {24, 12, 6, 3, 2}, ws[5] = {32, 16, 8, 4, 2};
  for (int l = 0; l < 5; ++l) {
    CHECK(r.feature_sizes[size_t(l)].h == hs[l]);
    CHECK(r.feature_sizes[size_t(l)].w == ws[l]);
    CHECK(r.objectness[size_t(l)].shape() == rt::Shape{2, hs[l] * ws[l] * 3, 1});
    CHECK(r.deltas[size_t(l)].shape() == rt::Shape{2, hs[l] * ws[l] * 3, 4});
    // Anchor of location (y, x), ratio a: cell anchor + stride * (x, y); P6 stride 64.
    const float s = float(4 << l);
    const float* cell = net.anchor_generator().cell_anchors(l).data();
    const float* an = r.anchors[size_t(l)].data() + ((hs[l] - 1) * ws[l] + 1) * 3 * 4 + 2 * 4;
    CHECK(an[0] == cell[8] + s);
    CHECK(an[3] == cell[11] + s * float(hs[l] - 1));
  }
  std::set<std::string> names;
  for (auto& pr : net.parameters()) names.insert(pr.name);
  for (const char* n : {"backbone.stem.conv.weight", "fpn.lateral2.conv.weight", "fpn.output5.bn.bias",
                        "rpn.conv.weight", "rpn.cls_logits.bias", "rpn.bbox_pred.weight", "box_head.conv.0.bn.weight",
                        "box_head.fc6.weight", "box_head.cls_score.weight", "box_head.bbox_pred.bias"})
    CHECK_MESSAGE(names.count(n) == 1, n);
  det::DetLosses l = net.forward_train(x, {det::Targets{{5, 5, 40, 30}, {2}}, det::Targets{}}, kTinyPath);
  rt::clear_tape();
  CHECK(l.parts.size() == 4);
  for (const char* n : {"rpn_cls", "rpn_box", "roi_cls", "roi_box"}) CHECK(std::isfinite(l.part(n).item()));
  // Bad input.
  CHECK_THROWS_AS(net.forward_rpn(Tensor::zeros({1, 3, 100, 96}), kTinyPath), Error);
  CHECK_THROWS_AS(net.forward_train(x, {det::Targets{}}, kTinyPath), Error);
  CHECK_THROWS_AS(net.forward_train(x, {det::Targets{{5, 5, 40, 30}, {3}}, det::Targets{}}, kTinyPath), Error);
  CHECK_THROWS_AS(net.forward_train(x, {det::Targets{{5, 5, 5, 30}, {1}}, det::Targets{}}, kTinyPath), Error);
  rt::clear_tape();
  CHECK_THROWS_AS(net.detect(x, {det::ImageMeta{1, 70, 45, 1, 1}}, kTinyPath), Error);
  CHECK_THROWS_AS(net.detect(x, {det::ImageMeta{1, 170, 45, 1, 1}, det::ImageMeta{2, 33, 97, 1, 1}}, kTinyPath), Error);
  // make_detector builds it from a DetectorConfig.
  det::DetectorConfig dc;
  dc.kind = "fpn";
  dc.num_classes = 3;
  dc.fpn_channels = 8;
  dc.head_depth = 2;
  dc.fc_dim = 16;
  auto d = det::make_detector(tiny_backbone(nn::NetKind::Supernet, 1), dc);
  CHECK(std::string(d->kind()) == "fpn");
  dc.kind = "ssd";
  CHECK_THROWS_AS(det::make_detector(tiny_backbone(nn::NetKind::Supernet, 1), dc), Error);
}

TEST_CASE("fpn: forward_features re-estimates every BN the inference path uses; detect restores the mode") {
  det::FasterRcnn net(tiny_backbone(nn::NetKind::Standalone, 1), small_options(3, 16, 2, 32));
  SynthBatch b = synth_batch({0}, 64);
  nn::reset_bn_stats(net);
  net.set_mode(nn::Mode::Recalibrate);
  {
    rt::NoGradGuard ng;
    net.forward_features(b.images, nn::Arch{});
  }
  int changed = 0, total = 0;
  for (auto& buf : net.buffers())
    if (buf.name.find("running_mean") != std::string::npos) {
      ++total;
      bool moved = false;
      for (float v : buf.tensor.to_vector()) moved |= v != 0.0f;
      changed += moved;
      CHECK_MESSAGE(moved, buf.name);
    }
  CHECK(changed == total);
  auto dets = net.detect(b.images, {det::ImageMeta{1, 64, 64, 1, 1}}, nn::Arch{});
  CHECK(dets.size() == 1);
  CHECK(net.mode() == nn::Mode::Recalibrate);
}

TEST_CASE("fpn: supernet with a fixed path equals the standalone detector (losses and gradients)") {
  det::FasterRcnnOptions o = small_options(5, 16, 2, 32);
  det::FasterRcnn sn(tiny_backbone(nn::NetKind::Supernet, 3), o);
  o.seed = 77;  // different init: every weight must come from load_from
  det::FasterRcnn st(tiny_backbone(nn::NetKind::Standalone, 99), o);
  st.load_from(sn);
  *st.sampler_rng() = *sn.sampler_rng();
  SynthBatch b = synth_batch({0, 1}, 64);
  det::DetLosses a = sn.forward_train(b.images, b.targets, kTinyPath);
  rt::backward(a.total);
  det::DetLosses c = st.forward_train(b.images, b.targets, nn::Arch{});
  rt::backward(c.total);
  for (const char* n : {"rpn_cls", "rpn_box", "roi_cls", "roi_box"}) {
    INFO(n);
    CHECK(a.part(n).item() > 0);
    CHECK(check_close(n, {a.part(n).item()}, {c.part(n).item()}, {1}, Tol::elementwise()));
  }
  CHECK_THROWS_AS(a.part("cls"), Error);
  auto grad_of = [](det::FasterRcnn& net, const std::string& name) {
    for (auto& p : net.parameters())
      if (p.name == name) return to_double(p.tensor.grad().to_vector());
    FAIL("no parameter ", name);
    return std::vector<double>{};
  };
  for (const char* name :
       {"box_head.cls_score.weight", "box_head.bbox_pred.bias", "box_head.conv.0.conv.weight", "rpn.cls_logits.weight",
        "rpn.bbox_pred.bias", "fpn.lateral2.conv.weight", "fpn.output4.bn.weight",
        "backbone.stage1.1.choice3.main.dw1.weight", "backbone.stem.conv.weight"}) {
    auto ga = grad_of(sn, name), gc = grad_of(st, name);
    REQUIRE(ga.size() == gc.size());
    CHECK(check_close(name, ga, gc, {int64_t(ga.size())}, Tol::elementwise()));
  }
}

namespace {

std::vector<double> train_steps(det::FasterRcnn& net, const SynthBatch& b, int steps, double lr, int warmup) {
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

TEST_CASE("fpn: the loss decreases over a few SGD steps") {
  det::FasterRcnn net(tiny_backbone(nn::NetKind::Standalone, 1), small_options(5, 16, 1, 32));
  SynthBatch b = synth_batch({0, 1}, 64);
  std::vector<double> l = train_steps(net, b, 15, 0.02, 1);
  MESSAGE("loss ", l.front(), " -> ", l.back());
  CHECK(l.back() < 0.8 * l.front());
}

TEST_CASE("fpn: overfits two synthetic images to AP > 0.9") {
  auto t0 = std::chrono::steady_clock::now();
  det::FasterRcnnOptions o = small_options(5, 16, 1, 64);
  o.roi.batch_size_per_image = 32;
  det::FasterRcnn net(tiny_backbone(nn::NetKind::Standalone, 1), o);
  SynthBatch b = synth_batch({3, 0}, 128);
  std::vector<double> l = train_steps(net, b, 300, 0.03, 30);
  std::vector<det::ImageMeta> metas;
  for (size_t i = 0; i < b.samples.size(); ++i) metas.push_back({int64_t(i + 1), 128, 128, 1.0, 1.0});
  auto dets = net.detect(b.images, metas, nn::Arch{});
  auto res = data::coco_evaluate(b.gt, det::to_coco_detections(dets, b.gt.label_to_category));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE("loss ", l.front(), " -> ", l.back(), ", AP ", res.stats[0], ", AP50 ", res.stats[1], ", ", secs, " s");
  CHECK(res.stats[0] > 0.9);
}
