// RoIAlign: golden cases (forward and input gradient), a naive double reference
// written from the golden README's definition, finite differences and the adjoint
// identity in double, thread-count determinism of the backward, bad input.
#include <doctest/doctest.h>
#include <omp.h>

#include <cmath>

#include "kernels/roi_align.h"
#include "runtime/autograd.h"
#include "runtime/ops_box.h"
#include "runtime/rng.h"
#include "tests/golden.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::rt;
using namespace detnas::test;
namespace kc = detnas::kernels::cpu;

namespace {

// loss = sum(u * y) with u constant: records its own backward (dy = u * dloss).
Tensor dot_with(const Tensor& y, const std::vector<float>& u) {
  const float* yp = y.data();
  double s = 0;
  for (size_t i = 0; i < u.size(); ++i) s += double(u[i]) * yp[i];
  Tensor loss = Tensor::scalar(float(s));
  if (wants_grad({&y})) {
    record({&loss}, [y, u, loss]() {
      Tensor gl = loss.grad();
      if (!gl.defined()) return;
      GradSlot g = grad_slot(y);
      const float v = *gl.data();
      for (size_t i = 0; i < u.size(); ++i) kernels::write_grad(g.ptr + i, u[i] * v, g.mode);
    });
  }
  return loss;
}

// Naive RoIAlign in double, straight from the README text.
double naive_bilinear(const std::vector<double>& x, int64_t base, int64_t H, int64_t W, double y, double xx) {
  if (y < -1.0 || y > double(H) || xx < -1.0 || xx > double(W)) return 0.0;
  y = std::max(y, 0.0);
  xx = std::max(xx, 0.0);
  int64_t y0 = int64_t(std::floor(y)), x0 = int64_t(std::floor(xx)), y1, x1;
  if (y0 >= H - 1)
    y0 = y1 = H - 1, y = double(H - 1);
  else
    y1 = y0 + 1;
  if (x0 >= W - 1)
    x0 = x1 = W - 1, xx = double(W - 1);
  else
    x1 = x0 + 1;
  double ly = y - double(y0), lx = xx - double(x0);
  auto at = [&](int64_t r, int64_t c) { return x[size_t(base + r * W + c)]; };
  return (1 - ly) * (1 - lx) * at(y0, x0) + (1 - ly) * lx * at(y0, x1) + ly * (1 - lx) * at(y1, x0) +
         ly * lx * at(y1, x1);
}

std::vector<double> naive_roi_align(const kernels::RoiAlignParams& p, int64_t N, int64_t C, int64_t H, int64_t W,
                                    const std::vector<double>& x, const std::vector<double>& boxes) {
  const int64_t K = int64_t(boxes.size() / 5), PH = p.pooled_h, PW = p.pooled_w;
  std::vector<double> y(size_t(K * C * PH * PW), 0.0);
  const bool aligned = p.mode == kernels::RoiAlignMode::Aligned;
  for (int64_t k = 0; k < K; ++k) {
    const double* b = &boxes[size_t(k * 5)];
    const double off = aligned ? 0.5 : 0.0, s = p.spatial_scale;
    double x1 = b[1] * s - off, y1 = b[2] * s - off, x2 = b[3] * s - off, y2 = b[4] * s - off;
    double rw = x2 - x1, rh = y2 - y1;
    if (!aligned) rw = std::max(rw, 1.0), rh = std::max(rh, 1.0);
    double bh = rh / double(PH), bw = rw / double(PW);
    int64_t gh = p.sampling_ratio > 0 ? p.sampling_ratio : int64_t(std::ceil(rh / double(PH)));
    int64_t gw = p.sampling_ratio > 0 ? p.sampling_ratio : int64_t(std::ceil(rw / double(PW)));
    double count = double(std::max<int64_t>(gh * gw, 1));
    int64_t n = int64_t(b[0]);
    for (int64_t c = 0; c < C; ++c)
      for (int64_t ph = 0; ph < PH; ++ph)
        for (int64_t pw = 0; pw < PW; ++pw) {
          double acc = 0;
          for (int64_t iy = 0; iy < gh; ++iy)
            for (int64_t ix = 0; ix < gw; ++ix) {
              double yy = y1 + ph * bh + (iy + 0.5) * bh / double(gh);
              double xx = x1 + pw * bw + (ix + 0.5) * bw / double(gw);
              acc += naive_bilinear(x, (n * C + c) * H * W, H, W, yy, xx);
            }
          y[size_t(((k * C + c) * PH + ph) * PW + pw)] = acc / count;
        }
  }
  return y;
}

// Random boxes in image coordinates over a feature map of H x W at `scale`:
// inside, partly outside, fully outside, zero width / height / both.
std::vector<float> random_boxes(int64_t K, int64_t N, int64_t H, int64_t W, float scale, uint64_t seed) {
  Rng r(seed);
  const double iw = W / scale, ih = H / scale;
  std::vector<float> b;
  for (int64_t k = 0; k < K; ++k) {
    double x1 = r.uniform(-0.3 * iw, 1.1 * iw), y1 = r.uniform(-0.3 * ih, 1.1 * ih);
    double x2 = x1 + r.uniform(0, 0.8 * iw), y2 = y1 + r.uniform(0, 0.8 * ih);
    switch (k % 7) {
      case 3:
        x2 = x1;
        break;
      case 4:
        y2 = y1;
        break;
      case 5:
        x2 = x1, y2 = y1;
        break;
      case 6:
        x1 = iw + 5, x2 = iw + 20;
        break;  // fully outside
      default:
        break;
    }
    b.insert(b.end(), {float(r.below(uint64_t(N))), float(x1), float(y1), float(x2), float(y2)});
  }
  return b;
}

kernels::RoiAlignParams params(int64_t ph, int64_t pw, float scale, int64_t sr, kernels::RoiAlignMode m) {
  kernels::RoiAlignParams p;
  p.pooled_h = ph;
  p.pooled_w = pw;
  p.spatial_scale = scale;
  p.sampling_ratio = sr;
  p.mode = m;
  return p;
}

}  // namespace

DETNAS_GOLDEN_OP("roi_align") {
  auto os = c.list("output_size");
  auto p = params(int64_t(os[0]), int64_t(os[1]), float(c.num("spatial_scale")), int64_t(c.num("sampling_ratio")),
                  c.flag("aligned") ? kernels::RoiAlignMode::Aligned : kernels::RoiAlignMode::Legacy);
  const GoldenTensor& gi = c.in("input");
  const GoldenTensor& gb = c.in("boxes");
  Tensor x = Tensor::from_vector(gi.shape, gi.as_float());
  x.requires_grad_();
  Tensor boxes = Tensor::from_vector(gb.shape, gb.as_float());
  Tensor y = ops::roi_align(x, boxes, p);
  check_golden_forward(c, "output", y.to_vector(), c.out("output"));
  backward(dot_with(y, c.upstream("output").as_float()));
  check_golden_grad(c, "grad input", x.grad().to_vector(), c.grad("input"));
}

TEST_CASE("roi_align: matches a naive double reference on odd shapes, all modes") {
  int64_t seed = 1;
  for (int64_t C : {1, 3, 15})
    for (auto hw : {std::pair<int64_t, int64_t>{1, 1}, {7, 7}, {17, 7}, {1, 17}}) {
      const int64_t N = 2, H = hw.first, W = hw.second, K = 9;
      for (auto mode : {kernels::RoiAlignMode::Legacy, kernels::RoiAlignMode::Aligned})
        for (int64_t sr : {2, 0, -1}) {
          CAPTURE(C);
          CAPTURE(H);
          CAPTURE(W);
          CAPTURE(sr);
          CAPTURE(int(mode));
          const float scale = seed % 2 ? 0.25f : 0.125f;
          auto p = params(seed % 3 == 0 ? 3 : 7, seed % 3 == 0 ? 2 : 5, scale, sr, mode);
          std::vector<float> xf = randn_f(N * C * H * W, uint64_t(seed) * 11);
          std::vector<float> bf = random_boxes(K, N, H, W, scale, uint64_t(seed) * 13);
          ++seed;
          std::vector<double> xd = to_double(xf), bd = to_double(bf);
          std::vector<double> ref = naive_roi_align(p, N, C, H, W, xd, bd);
          std::vector<double> yd(ref.size());
          kc::roi_align_forward(p, N, C, H, W, K, xd.data(), bd.data(), yd.data());
          check_close("roi_align double vs naive", yd, ref, {K, C, p.pooled_h, p.pooled_w}, Tol::elementwise());
          // float32 kernel vs a float64 reference of the same float32 inputs: the golden
          // forward policy (sample coordinates carry float32 rounding).
          Tensor y = ops::roi_align(Tensor::from_vector({N, C, H, W}, xf), Tensor::from_vector({K, 5}, bf), p);
          check_close("roi_align float vs naive", to_double(y.to_vector()), ref, y.shape(),
                      Tol::golden_forward(max_abs(ref)));
        }
    }
}

TEST_CASE("roi_align: finite differences and the adjoint identity in double") {
  const int64_t N = 2, C = 3, H = 7, W = 9, K = 8;
  for (auto mode : {kernels::RoiAlignMode::Legacy, kernels::RoiAlignMode::Aligned})
    for (int64_t sr : {2, -1}) {
      auto p = params(3, 4, 0.5f, sr, mode);
      std::vector<double> x = randn(N * C * H * W, 21);
      std::vector<double> boxes = to_double(random_boxes(K, N, H, W, 0.5f, 22));
      const int64_t ny = K * C * 3 * 4;
      std::vector<double> u = randn(ny, 23);
      auto loss = [&](const std::vector<double>& xv) {
        std::vector<double> y(static_cast<size_t>(ny));
        kc::roi_align_forward(p, N, C, H, W, K, xv.data(), boxes.data(), y.data());
        return dot(y, u);
      };
      std::vector<double> gx(x.size(), 123.0);  // Overwrite must replace this
      kc::roi_align_backward_input(p, N, C, H, W, K, u.data(), boxes.data(), gx.data(), GradientMode::Overwrite);
      check_close("roi_align grad vs finite differences", gx, numeric_grad(loss, x), {N, C, H, W}, Tol::finite_diff());
      // Adjoint: <A x, u> == <x, A^T u>.
      const double lhs = loss(x), rhs = dot(x, gx);
      CHECK(std::fabs(lhs - rhs) <= 1e-12 * (1 + std::fabs(lhs)));
      // Accumulate adds onto what is there.
      std::vector<double> acc(x.size(), 1.0);
      kc::roi_align_backward_input(p, N, C, H, W, K, u.data(), boxes.data(), acc.data(), GradientMode::Accumulate);
      for (auto& v : acc) v -= 1.0;
      check_close("roi_align accumulate", acc, gx, {N, C, H, W}, Tol::elementwise());
    }
}

TEST_CASE("roi_align: backward is deterministic across thread counts; autograd accumulates") {
  const int64_t N = 2, C = 5, H = 11, W = 13, K = 40;
  auto p = params(7, 7, 0.25f, 2, kernels::RoiAlignMode::Legacy);
  std::vector<float> xf = randn_f(N * C * H * W, 31);
  std::vector<float> bf = random_boxes(K, N, H, W, 0.25f, 32);
  std::vector<float> u = randn_f(K * C * 49, 33);
  std::vector<float> g1(xf.size()), g2(xf.size());
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  kc::roi_align_backward_input(p, N, C, H, W, K, u.data(), bf.data(), g1.data(), GradientMode::Overwrite);
  omp_set_num_threads(std::max(2, threads));
  kc::roi_align_backward_input(p, N, C, H, W, K, u.data(), bf.data(), g2.data(), GradientMode::Overwrite);
  omp_set_num_threads(threads);
  check_close("roi_align backward 1 vs n threads", to_double(g1), to_double(g2), {N, C, H, W}, Tol::exact());

  // Two uses of one input: gradients add up through the tape.
  Tensor x = Tensor::from_vector({N, C, H, W}, xf);
  x.requires_grad_();
  Tensor boxes = Tensor::from_vector({K, 5}, bf);
  Tensor l1 = dot_with(ops::roi_align(x, boxes, p), u);
  backward(l1);
  backward(dot_with(ops::roi_align(x, boxes, p), u));
  std::vector<double> twice(g1.size());
  for (size_t i = 0; i < g1.size(); ++i) twice[i] = 2.0 * g1[i];
  check_close("roi_align grad accumulated twice", to_double(x.grad().to_vector()), twice, {N, C, H, W},
              Tol::elementwise());
  CHECK(tape_size() == 0);
}

TEST_CASE("roi_align: empty box list and zero-size aligned boxes") {
  Tensor x = Tensor::full({1, 2, 4, 4}, 1.0f);
  x.requires_grad_();
  auto p = params(2, 2, 1.0f, -1, kernels::RoiAlignMode::Aligned);
  Tensor y = ops::roi_align(x, Tensor::zeros({0, 5}), p);
  CHECK(y.shape() == Shape{0, 2, 2, 2});
  // A zero-width aligned box with adaptive sampling has no samples: output 0;
  // in legacy mode the width is clamped to 1 and samples the constant map.
  Tensor b = Tensor::from_vector({1, 5}, {0, 1.5f, 0.5f, 1.5f, 3.0f});
  for (float v : ops::roi_align(x, b, p).to_vector()) CHECK(v == 0.0f);
  p.mode = kernels::RoiAlignMode::Legacy;
  for (float v : ops::roi_align(x, b, p).to_vector()) CHECK(v == doctest::Approx(1.0f));
  clear_tape();
}

TEST_CASE("roi_align: bad input raises clear errors") {
  Tensor x = Tensor::zeros({2, 3, 5, 5});
  auto p = params(7, 7, 0.5f, 2, kernels::RoiAlignMode::Legacy);
  CHECK_THROWS_WITH_AS(ops::roi_align(x, Tensor::zeros({4, 4}), p),
                       doctest::Contains("boxes must be (K,5) rows (batch_index,x1,y1,x2,y2), got [4, 4]"), Error);
  CHECK_THROWS_WITH_AS(ops::roi_align(x, Tensor::from_vector({1, 5}, {2, 0, 0, 4, 4}), p),
                       doctest::Contains("batch index 2 is not an integer in [0, 2)"), Error);
  CHECK_THROWS_WITH_AS(ops::roi_align(x, Tensor::from_vector({1, 5}, {-1, 0, 0, 4, 4}), p),
                       doctest::Contains("batch index -1"), Error);
  CHECK_THROWS_WITH_AS(ops::roi_align(x, Tensor::from_vector({1, 5}, {0.5f, 0, 0, 4, 4}), p),
                       doctest::Contains("batch index 0.5"), Error);
  CHECK_THROWS_WITH_AS(ops::roi_align(x, Tensor::from_vector({1, 5}, {0, 0, NAN, 4, 4}), p),
                       doctest::Contains("box 0 has a non-finite coordinate"), Error);
  CHECK_THROWS_WITH_AS(ops::roi_align(Tensor::zeros({3, 5, 5}), Tensor::zeros({1, 5}), p),
                       doctest::Contains("input must be (N,C,H,W), got [3, 5, 5]"), Error);
  CHECK_THROWS_WITH_AS(ops::roi_align(Tensor::zeros({0, 3, 5, 5}), Tensor::zeros({1, 5}), p),
                       doctest::Contains("not an integer in [0, 0)"), Error);
  CHECK_THROWS_WITH_AS(ops::roi_align(Tensor::zeros({1, 3, 0, 5}), Tensor::zeros({1, 5}), p),
                       doctest::Contains("spatial size must be >= 1"), Error);
  CHECK_THROWS_WITH_AS(ops::roi_align(x, Tensor::zeros({1, 5}), params(0, 7, 0.5f, 2, kernels::RoiAlignMode::Legacy)),
                       doctest::Contains("output size must be >= 1"), Error);
  CHECK_THROWS_WITH_AS(ops::roi_align(x, Tensor::zeros({1, 5}), params(7, 7, 0.0f, 2, kernels::RoiAlignMode::Legacy)),
                       doctest::Contains("spatial_scale must be > 0"), Error);
  CHECK_THROWS_AS(ops::roi_align(x, Tensor(), p), Error);
}
