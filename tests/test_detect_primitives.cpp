// detect/ primitives: anchor generator, matcher and box coder against the golden
// cases (anchors and matches exactly) and naive references written here; the
// RetinaNet / RPN presets; edge cases and bad input.
#include <doctest/doctest.h>

#include <cmath>

#include "detect/anchors.h"
#include "detect/box_coder.h"
#include "detect/matcher.h"
#include "runtime/rng.h"
#include "tests/golden.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::test;
using detnas::rt::Tensor;

namespace {

std::vector<std::vector<float>> to_float2(const std::vector<std::vector<double>>& v) {
  std::vector<std::vector<float>> out;
  for (auto& r : v) out.emplace_back(r.begin(), r.end());
  return out;
}

std::vector<det::HW> to_hw(const std::vector<std::vector<double>>& v) {
  std::vector<det::HW> out;
  for (auto& r : v) out.push_back({int64_t(r[0]), int64_t(r[1])});
  return out;
}

}  // namespace

DETNAS_GOLDEN_OP("anchor_generator") {
  det::AnchorGenerator gen(to_float2(c.list2("sizes")), to_float2(c.list2("aspect_ratios")));
  std::vector<float> cells;
  for (int64_t l = 0; l < gen.num_levels(); ++l)
    cells.insert(cells.end(), gen.cell_anchors(l).begin(), gen.cell_anchors(l).end());
  check_golden_exact(c, "cell_anchors", to_double(cells), c.out("cell_anchors"));
  auto fm = to_hw(c.list2("feature_map_sizes_hw"));
  check_golden_exact(c, "anchors (explicit strides)", to_double(gen.grid_anchors(fm, to_hw(c.list2("strides_hw")))),
                     c.out("anchors"));
  auto img = c.list("image_size_hw");
  Tensor a = gen.anchors({int64_t(img[0]), int64_t(img[1])}, fm);
  check_golden_exact(c, "anchors (image size)", to_double(a.to_vector()), c.out("anchors"));
  CHECK(a.size(0) == gen.num_anchors(fm));
}

DETNAS_GOLDEN_OP("matcher") {
  det::MatcherParams p;
  p.high_threshold = float(c.num("high_threshold"));
  p.low_threshold = float(c.num("low_threshold"));
  p.low_quality = c.flag("allow_low_quality_matches") ? det::LowQualityMatches::Allow : det::LowQualityMatches::Drop;
  const GoldenTensor& q = c.in("match_quality_matrix");
  auto m = det::match(Tensor::from_vector(q.shape, q.as_float()), p);
  check_golden_exact(c, "matches", to_double(m), c.out("matches"));
}

DETNAS_GOLDEN_OP("box_coder") {
  auto w = c.list("weights");
  det::BoxCoder coder({float(w[0]), float(w[1]), float(w[2]), float(w[3])}, c.num("bbox_xform_clip"));
  const GoldenTensor& a = c.in("anchors");
  Tensor anchors = Tensor::from_vector(a.shape, a.as_float());
  Tensor gt = Tensor::from_vector(c.in("gt_boxes").shape, c.in("gt_boxes").as_float());
  Tensor codes = Tensor::from_vector(c.in("rel_codes").shape, c.in("rel_codes").as_float());
  check_golden_forward(c, "encoded", coder.encode(anchors, gt).to_vector(), c.out("encoded"));
  check_golden_forward(c, "decoded", coder.decode(anchors, codes).to_vector(), c.out("decoded"));
}

TEST_CASE("detect: anchor presets (RetinaNet 9 per location, RPN 3) and rounding") {
  auto retina = det::AnchorGenerator::retinanet();
  REQUIRE(retina.num_levels() == 5);
  const float expect_sizes[5][3] = {{32, 40, 50}, {64, 80, 101}, {128, 161, 203}, {256, 322, 406}, {512, 645, 812}};
  for (int64_t l = 0; l < 5; ++l) {
    CHECK(retina.num_anchors_per_location(l) == 9);
    // ratio 1 is the middle ratio: cell anchors 3..5 are the squares of the three sizes.
    for (int s = 0; s < 3; ++s) {
      const float* a = &retina.cell_anchors(l)[size_t((3 + s) * 4)];
      CHECK(a[2] - a[0] == doctest::Approx(expect_sizes[l][s]).epsilon(0.02));
    }
  }
  auto rpn = det::AnchorGenerator::rpn();
  CHECK(rpn.num_levels() == 5);
  for (int64_t l = 0; l < 5; ++l) CHECK(rpn.num_anchors_per_location(l) == 3);
  // Image 64x64 with P3..P7 maps 8,4,2,1,1 (strides 8..64 from image // size).
  std::vector<det::HW> fm = {{8, 8}, {4, 4}, {2, 2}, {1, 1}, {1, 1}};
  CHECK(retina.num_anchors(fm) == 9 * (64 + 16 + 4 + 1 + 1));
  CHECK(retina.anchors({64, 64}, fm).shape() == rt::Shape{9 * 86, 4});
  // Round half to even: size 101, ratio 1 gives +-50.5 -> +-50; size 3 gives +-1.5 -> +-2.
  CHECK(det::make_cell_anchors({101}, {1.0f}) == std::vector<float>{-50, -50, 50, 50});
  CHECK(det::make_cell_anchors({3}, {1.0f}) == std::vector<float>{-2, -2, 2, 2});
  // Layout: location (y=1, x=2) of a 2x3 map with stride 16 is anchor block 5.
  det::AnchorGenerator one({{32}}, {{1.0f}});
  auto g = one.grid_anchors({{2, 3}}, {{16, 16}});
  CHECK(std::vector<float>(g.begin() + 20, g.begin() + 24) == std::vector<float>{16, 0, 48, 32});
  CHECK(one.grid_anchors({{0, 3}}, {{16, 16}}).empty());
}

TEST_CASE("detect: anchor generator bad input") {
  CHECK_THROWS_WITH_AS(det::AnchorGenerator({{32}, {64}}, {{1.0f}}),
                       doctest::Contains("2 levels of sizes but 1 levels of aspect ratios"), Error);
  CHECK_THROWS_WITH_AS(det::AnchorGenerator({{32}}, {{}}), doctest::Contains("level 0 has no sizes"), Error);
  CHECK_THROWS_WITH_AS(det::AnchorGenerator({{-4}}, {{1.0f}}), doctest::Contains("size -4 must be positive"), Error);
  CHECK_THROWS_WITH_AS(det::AnchorGenerator({{4}}, {{NAN}}), doctest::Contains("aspect ratio"), Error);
  det::AnchorGenerator g({{32}}, {{1.0f}});
  CHECK_THROWS_WITH_AS(g.anchors({64, 64}, {{8, 8}, {4, 4}}), doctest::Contains("2 feature maps for 1 levels"), Error);
  CHECK_THROWS_WITH_AS(g.anchors({4, 64}, {{8, 8}}), doctest::Contains("smaller than level 0 feature map"), Error);
  CHECK_THROWS_WITH_AS(g.grid_anchors({{8, 8}}, {{0, 8}}), doctest::Contains("must be >= 1"), Error);
  CHECK_THROWS_WITH_AS(g.cell_anchors(1), doctest::Contains("level 1 out of range [0, 1)"), Error);
}

TEST_CASE("detect: matcher thresholds, low-quality ties, empty and bad input") {
  // 2 gt x 5 predictions.
  std::vector<float> q = {0.5f, 0.4f,  0.39f, 0.1f, 0.2f,  //
                          0.1f, 0.45f, 0.2f,  0.3f, 0.3f};
  det::MatcherParams p;  // 0.5 / 0.4, allow
  p.low_quality = det::LowQualityMatches::Drop;
  // best value exactly 0.5 -> matched; 0.45 -> between; 0.39 -> below
  CHECK(det::match(q.data(), 2, 5, p) == std::vector<int64_t>{0, -2, -1, -1, -1});
  p.low_quality = det::LowQualityMatches::Allow;
  // gt 1's maximum 0.45 at prediction 1 -> argmax of column 1 is gt 1.
  CHECK(det::match(q.data(), 2, 5, p) == std::vector<int64_t>{0, 1, -1, -1, -1});
  // Ties in a row maximum: both predictions get their column argmax, which may be
  // another gt (prediction 0's column argmax is gt 0 although gt 1 ties with it).
  std::vector<float> t = {0.30f, 0.10f, 0.05f,  //
                          0.20f, 0.20f, 0.20f};
  CHECK(det::match(t.data(), 2, 3, p) == std::vector<int64_t>{0, 1, 1});
  // No ground truth: every prediction is background.
  CHECK(det::match(nullptr, 0, 4, p) == std::vector<int64_t>(4, det::kBelowLow));
  CHECK(det::match(Tensor::zeros({3, 0}), p).empty());
  // Naive check of the threshold bands on random matrices (no low-quality rule).
  Rng r(3);
  p.low_quality = det::LowQualityMatches::Drop;
  for (int trial = 0; trial < 5; ++trial) {
    const int64_t M = 1 + int64_t(r.below(6)), N = 1 + int64_t(r.below(40));
    std::vector<float> m(size_t(M * N));
    for (auto& v : m) v = float(r.below(11)) / 10.0f;  // many exact ties and threshold values
    auto got = det::match(m.data(), M, N, p);
    for (int64_t n = 0; n < N; ++n) {
      int64_t best = 0;
      for (int64_t g = 1; g < M; ++g)
        if (m[size_t(g * N + n)] > m[size_t(best * N + n)]) best = g;
      float v = m[size_t(best * N + n)];
      int64_t want = v >= 0.5f ? best : v >= 0.4f ? -2 : -1;
      CHECK(got[size_t(n)] == want);
    }
  }
  std::vector<float> bad = {0.1f, NAN};
  CHECK_THROWS_WITH_AS(det::match(bad.data(), 1, 2, p),
                       doctest::Contains("NaN in the quality matrix at gt 0, prediction 1"), Error);
  p.low_threshold = 0.6f;
  CHECK_THROWS_WITH_AS(det::match(q.data(), 2, 5, p), doctest::Contains("low_threshold 0.6 must be <= high_threshold"),
                       Error);
  CHECK_THROWS_WITH_AS(det::match(Tensor::zeros({4}), det::MatcherParams{}),
                       doctest::Contains("must be (M gt, N predictions), got [4]"), Error);
}

TEST_CASE("detect: box coder matches the formulas in double, round-trips and clips") {
  Rng r(8);
  const int64_t n = 50;
  std::vector<float> anchors, gt;
  for (int64_t i = 0; i < n; ++i) {
    float x = float(r.uniform(-20, 100)), y = float(r.uniform(-20, 100));
    anchors.insert(anchors.end(), {x, y, x + float(r.uniform(2, 60)), y + float(r.uniform(2, 60))});
    x = float(r.uniform(-20, 100)), y = float(r.uniform(-20, 100));
    gt.insert(gt.end(), {x, y, x + float(r.uniform(2, 60)), y + float(r.uniform(2, 60))});
  }
  det::BoxCoder coder({10, 10, 5, 5});
  Tensor ta = Tensor::from_vector({n, 4}, anchors), tg = Tensor::from_vector({n, 4}, gt);
  Tensor codes = coder.encode(ta, tg);
  std::vector<double> ref;
  for (int64_t i = 0; i < n; ++i) {
    double aw = double(anchors[size_t(i * 4 + 2)]) - anchors[size_t(i * 4)];
    double ah = double(anchors[size_t(i * 4 + 3)]) - anchors[size_t(i * 4 + 1)];
    double gw = double(gt[size_t(i * 4 + 2)]) - gt[size_t(i * 4)];
    double gh = double(gt[size_t(i * 4 + 3)]) - gt[size_t(i * 4 + 1)];
    double acx = anchors[size_t(i * 4)] + 0.5 * aw, acy = anchors[size_t(i * 4 + 1)] + 0.5 * ah;
    double gcx = gt[size_t(i * 4)] + 0.5 * gw, gcy = gt[size_t(i * 4 + 1)] + 0.5 * gh;
    ref.insert(ref.end(), {10 * (gcx - acx) / aw, 10 * (gcy - acy) / ah, 5 * std::log(gw / aw), 5 * std::log(gh / ah)});
  }
  // float32 math vs a float64 reference of the same inputs: the golden forward policy.
  check_close("encode vs double formula", to_double(codes.to_vector()), ref, {n, 4}, Tol::golden_forward(max_abs(ref)));
  check_close("decode(encode(gt)) == gt", to_double(coder.decode(ta, codes).to_vector()), to_double(gt), {n, 4},
              Tol::golden_forward(100.0));
  // dw beyond the clip is clamped to log(1000/16): width exp(clip) * aw = 62.5 * aw.
  std::vector<float> big = {0, 0, 100, 100};
  Tensor box = coder.decode(Tensor::from_vector({1, 4}, {0, 0, 2, 4}), Tensor::from_vector({1, 4}, big));
  auto v = box.to_vector();
  CHECK(v[2] - v[0] == doctest::Approx(125.0).epsilon(1e-5));
  CHECK(v[3] - v[1] == doctest::Approx(250.0).epsilon(1e-5));
  CHECK(coder.encode(Tensor::zeros({0, 4}), Tensor::zeros({0, 4})).shape() == rt::Shape{0, 4});
  CHECK_THROWS_WITH_AS(
      coder.encode(ta, Tensor::zeros({n - 1, 4})),
      doctest::Contains("box_coder.encode: anchors and gt_boxes must both be (N,4), got [50, 4] vs [49, 4]"), Error);
  CHECK_THROWS_WITH_AS(coder.decode(Tensor::zeros({2, 5}), Tensor::zeros({2, 5})),
                       doctest::Contains("box_coder.decode"), Error);
  CHECK_THROWS_WITH_AS(det::BoxCoder({0, 1, 1, 1}), doctest::Contains("weights must be positive"), Error);
}
