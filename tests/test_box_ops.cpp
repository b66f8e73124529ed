// Box IoU / GIoU matrices, NMS and batched NMS: golden cases, naive references
// written here (IoU in double, greedy NMS with a stable sort on random boxes with
// tied scores and duplicates), class separation, empty and bad input.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/box_ops.h"
#include "runtime/ops_box.h"
#include "runtime/rng.h"
#include "tests/golden.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::rt;
using namespace detnas::test;

namespace {

std::vector<double> as_double(const std::vector<int64_t>& v) { return std::vector<double>(v.begin(), v.end()); }

// Naive greedy NMS: stable sort by decreasing score, IoU in float32 with the
// README's formula, suppression when IoU > threshold.
std::vector<int64_t> naive_nms(const std::vector<float>& b, const std::vector<float>& s,
                               const std::vector<int64_t>& subset, float thr) {
  std::vector<int64_t> order = subset;
  std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) { return s[size_t(i)] > s[size_t(j)]; });
  std::vector<int64_t> keep;
  for (int64_t i : order) {
    bool ok = true;
    for (int64_t k : keep) {
      const float* p = &b[size_t(i * 4)];
      const float* q = &b[size_t(k * 4)];
      float iw = std::max(0.0f, std::min(p[2], q[2]) - std::max(p[0], q[0]));
      float ih = std::max(0.0f, std::min(p[3], q[3]) - std::max(p[1], q[1]));
      float inter = iw * ih;
      float ap = (p[2] - p[0]) * (p[3] - p[1]), aq = (q[2] - q[0]) * (q[3] - q[1]);
      if (inter / (aq + ap - inter) > thr) ok = false;
    }
    if (ok) keep.push_back(i);
  }
  return keep;
}

std::vector<int64_t> naive_batched_nms(const std::vector<float>& b, const std::vector<float>& s,
                                       const std::vector<int64_t>& cls, float thr) {
  std::vector<int64_t> all;
  std::vector<int64_t> classes = cls;
  std::sort(classes.begin(), classes.end());
  classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
  for (int64_t c : classes) {
    std::vector<int64_t> subset;
    for (size_t i = 0; i < cls.size(); ++i)
      if (cls[i] == c) subset.push_back(int64_t(i));
    for (int64_t k : naive_nms(b, s, subset, thr)) all.push_back(k);
  }
  std::sort(all.begin(), all.end());
  std::stable_sort(all.begin(), all.end(), [&](int64_t i, int64_t j) { return s[size_t(i)] > s[size_t(j)]; });
  return all;
}

// Clusters of overlapping boxes, exact duplicates, scores on a coarse grid (ties).
void random_detections(int64_t K, uint64_t seed, std::vector<float>* boxes, std::vector<float>* scores) {
  Rng r(seed);
  boxes->clear();
  scores->clear();
  for (int64_t k = 0; k < K; ++k) {
    if (k > 0 && r.uniform() < 0.15) {  // duplicate an earlier box
      int64_t j = int64_t(r.below(uint64_t(k)));
      for (int d = 0; d < 4; ++d) boxes->push_back((*boxes)[size_t(j * 4 + d)]);
    } else {
      float cx = float(int(r.below(4)) * 30 + r.uniform(0, 10)), cy = float(int(r.below(3)) * 30 + r.uniform(0, 10));
      float w = float(r.uniform(5, 30)), h = float(r.uniform(5, 30));
      boxes->insert(boxes->end(), {cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2});
    }
    scores->push_back(float(r.below(10)) / 10.0f);
  }
}

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

}  // namespace

DETNAS_GOLDEN_OP("box_iou") {
  const GoldenTensor& a = c.in("boxes1");
  const GoldenTensor& b = c.in("boxes2");
  Tensor ta = Tensor::from_vector(a.shape, a.as_float()), tb = Tensor::from_vector(b.shape, b.as_float());
  check_golden_forward(c, "iou", ops::box_iou(ta, tb).to_vector(), c.out("iou"));
  check_golden_forward(c, "giou", ops::generalized_box_iou(ta, tb).to_vector(), c.out("giou"));
}

DETNAS_GOLDEN_OP("nms") {
  const GoldenTensor& b = c.in("boxes");
  const GoldenTensor& s = c.in("scores");
  auto keep = ops::nms(Tensor::from_vector(b.shape, b.as_float()), Tensor::from_vector(s.shape, s.as_float()),
                       float(c.num("iou_threshold")));
  check_golden_exact(c, "keep", as_double(keep), c.out("keep"));
}

DETNAS_GOLDEN_OP("batched_nms") {
  const GoldenTensor& b = c.in("boxes");
  const GoldenTensor& s = c.in("scores");
  const GoldenTensor& idx = c.in("idxs");
  std::vector<int64_t> classes(idx.data.begin(), idx.data.end());
  auto keep = ops::batched_nms(Tensor::from_vector(b.shape, b.as_float()), Tensor::from_vector(s.shape, s.as_float()),
                               classes, float(c.num("iou_threshold")));
  check_golden_exact(c, "keep", as_double(keep), c.out("keep"));
}

TEST_CASE("box: IoU and GIoU matrices match a naive double reference") {
  Rng r(5);
  for (auto nm : {std::pair<int64_t, int64_t>{1, 1}, {7, 3}, {17, 15}, {90, 70}}) {
    const int64_t N = nm.first, M = nm.second;
    std::vector<float> a, b;
    auto gen = [&](std::vector<float>& v, int64_t n) {
      for (int64_t i = 0; i < n; ++i) {
        float x = float(r.uniform(0, 50)), y = float(r.uniform(0, 50));
        float w = i % 5 == 4 ? 0.0f : float(r.uniform(1, 40)), h = float(r.uniform(1, 40));
        v.insert(v.end(), {x, y, x + w, y + h});
      }
    };
    gen(a, N);
    gen(b, M);
    if (N >= 3 && M >= 3) {  // identical, contained and edge-touching pairs
      for (int d = 0; d < 4; ++d) b[size_t(d)] = a[size_t(d)];
      b[4] = a[4 + 0] + 1, b[5] = a[4 + 1] + 1, b[6] = a[4 + 0] + 2, b[7] = a[4 + 1] + 2;
      b[8] = a[10], b[9] = a[9], b[10] = a[10] + 5, b[11] = a[11];
    }
    std::vector<double> iou, giou;
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < M; ++j) {
        const float* p = &a[size_t(i * 4)];
        const float* q = &b[size_t(j * 4)];
        double iw = std::max(0.0, double(std::min(p[2], q[2])) - std::max(p[0], q[0]));
        double ih = std::max(0.0, double(std::min(p[3], q[3])) - std::max(p[1], q[1]));
        double ap = (double(p[2]) - p[0]) * (double(p[3]) - p[1]), aq = (double(q[2]) - q[0]) * (double(q[3]) - q[1]);
        double u = ap + aq - iw * ih;
        double cw = double(std::max(p[2], q[2])) - std::min(p[0], q[0]);
        double ch = double(std::max(p[3], q[3])) - std::min(p[1], q[1]);
        iou.push_back(iw * ih / u);
        giou.push_back(iw * ih / u - (cw * ch - u) / (cw * ch));
      }
    Tensor ta = Tensor::from_vector({N, 4}, a), tb = Tensor::from_vector({M, 4}, b);
    check_close("box_iou", to_double(ops::box_iou(ta, tb).to_vector()), iou, {N, M}, Tol::elementwise());
    check_close("giou", to_double(ops::generalized_box_iou(ta, tb).to_vector()), giou, {N, M}, Tol::elementwise());
  }
  // Empty sides give empty matrices; two identical zero-area boxes give NaN (as torchvision).
  CHECK(ops::box_iou(Tensor::zeros({0, 4}), Tensor::zeros({3, 4})).shape() == Shape{0, 3});
  CHECK(std::isnan(ops::box_iou(Tensor::zeros({1, 4}), Tensor::zeros({1, 4})).item()));
}

TEST_CASE("box: NMS matches a naive greedy NMS on random boxes with ties and duplicates") {
  std::vector<float> b, s;
  for (int64_t K : {1, 2, 17, 150, 400})
    for (float thr : {0.0f, 0.3f, 0.5f, 0.7f, 1.0f}) {
      random_detections(K, uint64_t(K * 7 + int(thr * 10)), &b, &s);
      CAPTURE(K);
      CAPTURE(thr);
      auto keep = ops::nms(Tensor::from_vector({K, 4}, b), Tensor::from_vector({K}, s), thr);
      auto ref = naive_nms(b, s, iota(K), thr);
      check_close("nms keep", as_double(keep), as_double(ref), {int64_t(ref.size())}, Tol::exact());
    }
  // IoU exactly at the threshold is kept; just above is suppressed.
  Tensor bx = Tensor::from_vector({4, 4}, {0, 0, 3, 1, 1, 0, 4, 1, 10, 0, 12, 1, 10, 0, 13, 1});
  // pair 1: inter 2, union 4 -> IoU 0.5; pair 2: inter 2, union 3 -> 0.667
  auto keep = ops::nms(bx, Tensor::from_vector({4}, {0.9f, 0.8f, 0.7f, 0.7f}), 0.5f);
  CHECK(keep == std::vector<int64_t>{0, 1, 2});
  CHECK(ops::nms(Tensor::zeros({0, 4}), Tensor::zeros({0}), 0.5f).empty());
}

TEST_CASE("box: batched NMS matches per-class naive NMS; classes never suppress each other") {
  std::vector<float> b, s;
  for (int64_t K : {1, 13, 64, 600}) {  // 600 takes the parallel per-class path
    random_detections(K, uint64_t(K + 99), &b, &s);
    Rng r(static_cast<uint64_t>(K));
    std::vector<int64_t> cls;
    for (int64_t i = 0; i < K; ++i) cls.push_back(int64_t(r.below(5)) * 3 - 4);  // negative ids allowed
    CAPTURE(K);
    auto keep = ops::batched_nms(Tensor::from_vector({K, 4}, b), Tensor::from_vector({K}, s), cls, 0.5f);
    auto ref = naive_batched_nms(b, s, cls, 0.5f);
    check_close("batched_nms keep", as_double(keep), as_double(ref), {int64_t(ref.size())}, Tol::exact());
    // One class for all boxes is plain NMS.
    std::vector<int64_t> same(size_t(K), 7);
    auto k1 = ops::batched_nms(Tensor::from_vector({K, 4}, b), Tensor::from_vector({K}, s), same, 0.5f);
    CHECK(k1 == ops::nms(Tensor::from_vector({K, 4}, b), Tensor::from_vector({K}, s), 0.5f));
  }
  // Identical boxes with equal scores: kept once per class, ordered by index.
  Tensor bx = Tensor::from_vector({4, 4}, {0, 0, 10, 10, 0, 0, 10, 10, 0, 0, 10, 10, 0, 0, 10, 10});
  Tensor sc = Tensor::from_vector({4}, {0.5f, 0.5f, 0.5f, 0.5f});
  CHECK(ops::batched_nms(bx, sc, {2, 1, 2, 1}, 0.5f) == std::vector<int64_t>{0, 1});
  CHECK(ops::batched_nms(bx, sc, {0, 1, 2, 3}, 0.5f) == std::vector<int64_t>{0, 1, 2, 3});
  CHECK(ops::batched_nms(Tensor::zeros({0, 4}), Tensor::zeros({0}), {}, 0.5f).empty());
}

TEST_CASE("box: bad input raises clear errors") {
  Tensor b = Tensor::from_vector({2, 4}, {0, 0, 1, 1, 0, 0, 2, 2});
  Tensor s = Tensor::from_vector({2}, {0.1f, 0.2f});
  CHECK_THROWS_WITH_AS(ops::nms(Tensor::zeros({2, 5}), s, 0.5f),
                       doctest::Contains("nms: boxes must be (K,4) boxes (x1,y1,x2,y2), got [2, 5]"), Error);
  CHECK_THROWS_WITH_AS(ops::nms(b, Tensor::zeros({3}), 0.5f),
                       doctest::Contains("nms: scores must be (K) for boxes [2, 4], got [3]"), Error);
  CHECK_THROWS_WITH_AS(ops::nms(Tensor::from_vector({2, 4}, {0, 0, 1, NAN, 0, 0, 2, 2}), s, 0.5f),
                       doctest::Contains("nms: boxes row 0 has a non-finite value"), Error);
  CHECK_THROWS_WITH_AS(ops::nms(b, Tensor::from_vector({2}, {0.1f, NAN}), 0.5f),
                       doctest::Contains("nms: scores row 1 has a non-finite value"), Error);
  CHECK_THROWS_WITH_AS(ops::nms(b, s, NAN), doctest::Contains("iou_threshold is NaN"), Error);
  CHECK_THROWS_WITH_AS(ops::batched_nms(b, s, {0, 1, 2}, 0.5f),
                       doctest::Contains("batched_nms: 3 class indices for boxes [2, 4]"), Error);
  CHECK_THROWS_WITH_AS(ops::batched_nms(b, Tensor::zeros({2, 1}), {0, 1}, 0.5f),
                       doctest::Contains("batched_nms: scores must be (K)"), Error);
  CHECK_THROWS_WITH_AS(ops::box_iou(b, Tensor::zeros({3, 3})),
                       doctest::Contains("box_iou: boxes2 must be (K,4) boxes (x1,y1,x2,y2), got [3, 3]"), Error);
  CHECK_THROWS_WITH_AS(ops::generalized_box_iou(Tensor::zeros({4}), b),
                       doctest::Contains("generalized_box_iou: boxes1 must be (K,4)"), Error);
}
