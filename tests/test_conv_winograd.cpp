// Winograd F(4x4,3x3) conv (kernels/winograd_cpu.h) against a direct conv in
// double: forward (with and without bias, wide batch stride) and backward-data
// (= and +=) on odd shapes (planes not multiples of the 4x4 tile, 1x1/2x2/3x3
// planes, odd channel counts, several tile blocks), the conv2d_* dispatch and its
// switch, and bitwise equality of 1-thread and 2-thread results.
// Not here: the im2col path and the conv op (tests/test_conv.cpp).
#include <doctest/doctest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/gemm.h"
#include "kernels/winograd_cpu.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::test;
namespace kc = detnas::kernels::cpu;
using kernels::Conv2dShape;

namespace {

Conv2dShape shape3x3(int64_t N, int64_t C, int64_t H, int64_t W, int64_t Cout, int64_t extra_stride = 0) {
  Conv2dShape s;
  s.N = N, s.C = C, s.H = H, s.W = W, s.Cout = Cout, s.KH = 3, s.KW = 3, s.S = 1, s.P = 1, s.G = 1;
  s.x_batch_stride = C * H * W + extra_stride;
  return s;
}

// Tolerance for one output of Winograd F(4,3) in float against the exact value.
// The transforms multiply by constants up to 8 (A^T), 5 (B^T) and 1/24 (G) and
// the 36 products mix all 36 inputs of a 6x6 patch, so the rounding error scales
// with the magnitudes inside the whole patch, not with the 9 taps' sum of |w x|
// that bounds a direct conv: `scale` is sum_c max|x in the patch| * sum|w_c|
// (the inputs' size seen by the output through any Winograd path). On top of
// the usual 4*sqrt(K)*2^-24 for a K-term float reduction we allow a factor of 4
// for the rounding inside the transforms (each of the 36 products carries the
// roundings of B^T d B and G g G^T, and A^T M A sums them with weights up to 8*8).
// Measured worst over these cases: 0.38 of this bound (the MESSAGE lines), i.e.
// 1.5x the plain reduction bound with this scale.
Tol wino_tol(int64_t K, double scale) { return {4.0 * 4.0 * std::sqrt(double(K)) * 5.960464477539063e-08 * scale, 0}; }

// Direct conv in double: y (N,Cout,H,W), and per output the tolerance scale.
void ref_forward(const Conv2dShape& s, const std::vector<float>& x, const std::vector<float>& w, const float* b,
                 std::vector<double>* y, std::vector<double>* scale) {
  const int64_t H = s.H, W = s.W;
  y->assign(size_t(s.N * s.Cout * H * W), 0.0);
  scale->assign(y->size(), 0.0);
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t co = 0; co < s.Cout; ++co)
      for (int64_t oh = 0; oh < H; ++oh)
        for (int64_t ow = 0; ow < W; ++ow) {
          double acc = b ? double(b[co]) : 0.0, sc = b ? std::fabs(double(b[co])) : 0.0;
          const int64_t ph = oh / 4 * 4 - 1, pw = ow / 4 * 4 - 1;  // 6x6 patch of the tile
          for (int64_t c = 0; c < s.C; ++c) {
            const float* xc = x.data() + n * s.x_batch_stride + c * H * W;
            const float* wc = w.data() + (co * s.C + c) * 9;
            double xmax = 0, wsum = 0;
            for (int64_t i = 0; i < 6; ++i)
              for (int64_t j = 0; j < 6; ++j) {
                const int64_t ih = ph + i, iw = pw + j;
                if (ih >= 0 && ih < H && iw >= 0 && iw < W) xmax = std::fmax(xmax, std::fabs(xc[ih * W + iw]));
              }
            for (int64_t kh = 0; kh < 3; ++kh)
              for (int64_t kw = 0; kw < 3; ++kw) {
                wsum += std::fabs(wc[kh * 3 + kw]);
                const int64_t ih = oh - 1 + kh, iw = ow - 1 + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc += double(wc[kh * 3 + kw]) * double(xc[ih * W + iw]);
              }
            sc += xmax * wsum;
          }
          (*y)[size_t(((n * s.Cout + co) * H + oh) * W + ow)] = acc;
          (*scale)[size_t(((n * s.Cout + co) * H + oh) * W + ow)] = sc;
        }
}

// Worst |got - ref| / tolerance over all elements; reports the index.
double worst_ratio(const float* got, const std::vector<double>& ref, const std::vector<double>& scale, int64_t K,
                   double* max_abs_err, double* max_rel_err) {
  double worst = 0;
  *max_abs_err = 0, *max_rel_err = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double e = std::fabs(double(got[i]) - ref[i]);
    const Tol t = wino_tol(K, scale[i]);
    worst = std::fmax(worst, e / std::fmax(t.atol, 1e-300));
    if (!(e == e)) worst = std::numeric_limits<double>::infinity();
    *max_abs_err = std::fmax(*max_abs_err, e);
    if (scale[i] > 0) *max_rel_err = std::fmax(*max_rel_err, e / scale[i]);
  }
  return worst;
}

// Backward-data as a forward conv of dy with the rotated, channel-transposed filter.
void ref_backward_input(const Conv2dShape& s, const std::vector<float>& w, const std::vector<float>& dy,
                        std::vector<double>* dx, std::vector<double>* scale) {
  Conv2dShape t = shape3x3(s.N, s.Cout, s.H, s.W, s.C);
  std::vector<float> wt(w.size());
  for (int64_t co = 0; co < s.Cout; ++co)
    for (int64_t c = 0; c < s.C; ++c)
      for (int64_t q = 0; q < 9; ++q) wt[size_t((c * s.Cout + co) * 9 + q)] = w[size_t((co * s.C + c) * 9 + 8 - q)];
  ref_forward(t, dy, wt, nullptr, dx, scale);
}

struct Case {
  int64_t N, C, H, W, Cout, extra;
};

const std::vector<Case>& odd_cases() {
  static const std::vector<Case> cases = {
      {2, 5, 7, 9, 3, 0},     // H, W not multiples of 4
      {1, 3, 1, 1, 4, 0},     // 1x1 plane
      {3, 4, 2, 2, 5, 7},     // 2x2 plane, N = 3, wider batch stride
      {1, 3, 3, 3, 2, 0},     // 3x3 plane
      {2, 7, 13, 10, 6, 11},  // several tiles, odd C, wider batch stride
      {1, 3, 74, 58, 5, 0},   // 19x15 = 285 tiles: two blocks of 143, the boundary inside a tile row
      {3, 2, 37, 41, 3, 5},   // 3x10x11 = 330 tiles: two blocks, the boundary inside a sample
      {2, 33, 9, 6, 17, 0},   // odd channel counts above the dispatch threshold
      // Short tile rows (lanes gathered across rows and samples, winograd_cpu.cpp):
      {20, 16, 7, 7, 16, 0},  // box-head RoI features: 80 tiles of 2x2 per sample, 5 lane blocks
      {37, 3, 7, 5, 4, 2},    // 148 tiles: two blocks of 74, the boundary inside a sample; a partial last lane block
      {5, 6, 30, 3, 5, 0},    // one tile per row, 8 rows per sample
  };
  return cases;
}

}  // namespace

TEST_CASE("conv winograd: forward matches a direct conv in double on odd shapes (bias, wide batch stride)") {
  uint64_t seed = 900;
  double worst = 0, max_abs = 0, max_rel = 0;
  for (const Case& c : odd_cases()) {
    for (bool with_bias : {false, true}) {
      const Conv2dShape s = shape3x3(c.N, c.C, c.H, c.W, c.Cout, c.extra);
      std::vector<float> x = randn_f(s.N * s.x_batch_stride, ++seed), w = randn_f(s.Cout * s.C * 9, ++seed),
                         b = randn_f(s.Cout, ++seed);
      std::vector<float> y(size_t(s.N * s.Cout * s.H * s.W), std::numeric_limits<float>::quiet_NaN());
      std::vector<float> ws(size_t(kc::winograd_workspace_size(s)));
      kc::winograd_forward<float>(s, x.data(), w.data(), with_bias ? b.data() : nullptr, y.data(), ws.data());
      std::vector<double> ref, scale;
      ref_forward(s, x, w, with_bias ? b.data() : nullptr, &ref, &scale);
      double ea, er;
      const double r = worst_ratio(y.data(), ref, scale, s.C * 9, &ea, &er);
      CHECK_MESSAGE(r <= 1.0, "shape N", c.N, " C", c.C, " ", c.H, "x", c.W, " Cout", c.Cout, ": error / tol ", r);
      worst = std::fmax(worst, r), max_abs = std::fmax(max_abs, ea), max_rel = std::fmax(max_rel, er);
    }
  }
  MESSAGE("winograd forward: worst error/tol ", worst, ", max abs err ", max_abs, ", max err/scale ", max_rel);
}

TEST_CASE("conv winograd: backward-data matches a direct transposed conv in double (= and +=)") {
  uint64_t seed = 950;
  double worst = 0, max_abs = 0, max_rel = 0;
  for (const Case& c : odd_cases()) {
    for (GradientMode mode : {GradientMode::Overwrite, GradientMode::Accumulate}) {
      const Conv2dShape s = shape3x3(c.N, c.C, c.H, c.W, c.Cout, c.extra);
      const int64_t nx = s.N * s.C * s.H * s.W;
      std::vector<float> w = randn_f(s.Cout * s.C * 9, ++seed), dy = randn_f(s.N * s.Cout * s.H * s.W, ++seed);
      std::vector<float> prior = randn_f(nx, ++seed);
      std::vector<float> dx = mode == GradientMode::Accumulate
                                  ? prior
                                  : std::vector<float>(size_t(nx), std::numeric_limits<float>::quiet_NaN());
      std::vector<float> ws(size_t(kc::winograd_workspace_size(s)));
      kc::winograd_backward_input<float>(s, w.data(), dy.data(), dx.data(), mode, ws.data());
      std::vector<double> ref, scale;
      ref_backward_input(s, w, dy, &ref, &scale);
      if (mode == GradientMode::Accumulate)
        for (size_t i = 0; i < ref.size(); ++i) ref[i] += prior[i], scale[i] += std::fabs(prior[i]);
      double ea, er;
      const double r = worst_ratio(dx.data(), ref, scale, s.Cout * 9, &ea, &er);
      CHECK_MESSAGE(r <= 1.0, "shape N", c.N, " C", c.C, " ", c.H, "x", c.W, " Cout", c.Cout, " accumulate ",
                    mode == GradientMode::Accumulate, ": error / tol ", r);
      worst = std::fmax(worst, r), max_abs = std::fmax(max_abs, ea), max_rel = std::fmax(max_rel, er);
    }
  }
  MESSAGE("winograd backward-data: worst error/tol ", worst, ", max abs err ", max_abs, ", max err/scale ", max_rel);
}

TEST_CASE("conv winograd: conv2d_* dispatch to it for large 3x3 convs, and the switch turns it off") {
  const Conv2dShape s = shape3x3(2, 32, 31, 29, 40);  // 2x8x8 = 128 tiles: the smallest preferred
  const bool was = kc::winograd_enabled();
  kc::set_winograd_enabled(true);
  CHECK(kc::winograd_preferred(s));
  Conv2dShape s2 = s;
  s2.S = 2;
  CHECK_FALSE(kc::winograd_preferred(s2));
  CHECK_FALSE(kc::winograd_preferred(shape3x3(2, 3, 31, 29, 40)));   // too few input channels
  CHECK_FALSE(kc::winograd_preferred(shape3x3(2, 32, 28, 29, 40)));  // 2x7x8 tiles: too few
  std::vector<float> x = randn_f(s.N * s.x_batch_stride, 1), w = randn_f(s.Cout * s.C * 9, 2), b = randn_f(s.Cout, 3),
                     dy = randn_f(s.N * s.Cout * s.H * s.W, 4);
  std::vector<float> ws(size_t(kc::conv2d_workspace_size(s)));
  CHECK(int64_t(ws.size()) >= kc::winograd_workspace_size(s));
  std::vector<float> y_on(size_t(s.N * s.Cout * s.H * s.W)), dx_on(size_t(s.N * s.C * s.H * s.W));
  std::vector<float> y_w(y_on.size()), dx_w(dx_on.size()), y_off(y_on.size()), dx_off(dx_on.size());
  kc::conv2d_forward<float>(s, x.data(), w.data(), b.data(), y_on.data(), ws.data());
  kc::conv2d_backward_input<float>(s, w.data(), dy.data(), dx_on.data(), GradientMode::Overwrite, ws.data());
  // The forward alone needs only the Winograd buffers, not the column matrix of
  // the weight gradient: the same result from a workspace of exactly that size
  // (a heap block of its own, so ASan sees any overrun).
  const int64_t fws = kc::conv2d_forward_workspace_size<float>(s);
  CHECK(fws == kc::winograd_workspace_size(s));
  CHECK(fws <= kc::conv2d_workspace_size(s));
  CHECK(kc::conv2d_forward_workspace_size<double>(s) == s.C * 9 * s.H * s.W);  // double: im2col's columns
  {
    std::vector<float> small(static_cast<size_t>(fws)), y_small(y_on.size());
    kc::conv2d_forward<float>(s, x.data(), w.data(), b.data(), y_small.data(), small.data());
    CHECK(std::memcmp(y_on.data(), y_small.data(), y_on.size() * sizeof(float)) == 0);
  }
  kc::winograd_forward<float>(s, x.data(), w.data(), b.data(), y_w.data(), ws.data());
  kc::winograd_backward_input<float>(s, w.data(), dy.data(), dx_w.data(), GradientMode::Overwrite, ws.data());
  CHECK(std::memcmp(y_on.data(), y_w.data(), y_on.size() * sizeof(float)) == 0);
  CHECK(std::memcmp(dx_on.data(), dx_w.data(), dx_on.size() * sizeof(float)) == 0);
  kc::set_winograd_enabled(false);
  CHECK_FALSE(kc::winograd_preferred(s));
  kc::conv2d_forward<float>(s, x.data(), w.data(), b.data(), y_off.data(), ws.data());
  kc::conv2d_backward_input<float>(s, w.data(), dy.data(), dx_off.data(), GradientMode::Overwrite, ws.data());
  kc::set_winograd_enabled(was);
  // Both paths agree within the Winograd tolerance (the im2col one is far tighter).
  std::vector<double> ref, scale;
  ref_forward(s, x, w, b.data(), &ref, &scale);
  double ea, er;
  CHECK(worst_ratio(y_off.data(), ref, scale, s.C * 9, &ea, &er) <= 1.0);
  CHECK(worst_ratio(y_on.data(), ref, scale, s.C * 9, &ea, &er) <= 1.0);
  CHECK(std::memcmp(y_on.data(), y_off.data(), y_on.size() * sizeof(float)) != 0);  // really another path
  ref_backward_input(s, w, dy, &ref, &scale);
  CHECK(worst_ratio(dx_off.data(), ref, scale, s.Cout * 9, &ea, &er) <= 1.0);
  CHECK(worst_ratio(dx_on.data(), ref, scale, s.Cout * 9, &ea, &er) <= 1.0);
}

TEST_CASE("conv winograd: 1-thread and 2-thread results are bitwise identical") {
  // A small odd shape and the RetinaNet head's P3 conv at 320 (256 channels, 40x40, batch 2:
  // OpenBLAS's large-matrix path, two tile blocks), and box-head RoI features (7x7 planes: lanes gathered).
  for (const Conv2dShape& s :
       {shape3x3(2, 48, 23, 21, 40, 5), shape3x3(2, 256, 40, 40, 256), shape3x3(40, 32, 7, 7, 32)}) {
    std::vector<float> x = randn_f(s.N * s.x_batch_stride, 7), w = randn_f(s.Cout * s.C * 9, 8), b = randn_f(s.Cout, 9),
                       dy = randn_f(s.N * s.Cout * s.H * s.W, 10);
    std::vector<float> ws(size_t(kc::winograd_workspace_size(s)));
    std::vector<float> y[2], dx[2];
    const int before = omp_get_max_threads();
    for (int t = 0; t < 2; ++t) {
      omp_set_num_threads(t + 1);
      y[t].assign(size_t(s.N * s.Cout * s.H * s.W), 0.f);
      dx[t] = randn_f(s.N * s.C * s.H * s.W, 11);
      kc::winograd_forward<float>(s, x.data(), w.data(), b.data(), y[t].data(), ws.data());
      kc::winograd_backward_input<float>(s, w.data(), dy.data(), dx[t].data(), GradientMode::Accumulate, ws.data());
    }
    omp_set_num_threads(before);
    CHECK(std::memcmp(y[0].data(), y[1].data(), y[0].size() * sizeof(float)) == 0);
    CHECK(std::memcmp(dx[0].data(), dx[1].data(), dx[0].size() * sizeof(float)) == 0);
  }
}
