// Data movement and pooling tests ("shape:"): channel shuffle, even/odd split,
// concat, max pool, global average pool, nearest upsample. Golden torch cases,
// naive loops, central differences and adjoint identities through the double
// kernels, overwrite/accumulate modes, odd shapes, autograd plumbing, bad input.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "kernels/pool.h"
#include "kernels/shuffle.h"
#include "kernels/upsample.h"
#include "runtime/autograd.h"
#include "runtime/ops_elementwise.h"
#include "runtime/ops_shape.h"
#include "tests/golden.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::rt;
using namespace detnas::test;
namespace kc = detnas::kernels::cpu;

namespace {

// Test-local scalar op l = sum(u * y): seeds an arbitrary upstream gradient.
Tensor weighted_sum(const Tensor& y, const std::vector<float>& u) {
  REQUIRE(int64_t(u.size()) == y.numel());
  return ops::sum(ops::mul(y, Tensor::from_vector(y.shape(), u)));
}

std::vector<double> vd(const Tensor& t) { return to_double(t.to_vector()); }

using Fwd = std::function<void(const double* x, double* y)>;
using Bwd = std::function<void(const double* dy, double* dx, GradientMode mode)>;

// Checks a backward kernel (double) against central differences of <u, fwd(x)>;
// that Overwrite writes every element (dx pre-filled with NaN) and Accumulate
// adds; for linear ops also the adjoint identity <fwd(x), g> == <x, bwd(g)>.
enum class Linear { No, Yes };
void check_backward(const char* what, int64_t nx, int64_t ny, const Fwd& fwd, const Bwd& bwd, Linear linear,
                    uint64_t seed, std::vector<double> x = {}) {
  const std::string name = what;
  CAPTURE(name);
  if (x.empty()) x = randn(nx, seed);
  std::vector<double> u = randn(ny, seed + 1);
  auto f = [&](const std::vector<double>& xx) {
    std::vector<double> y(static_cast<size_t>(ny));
    fwd(xx.data(), y.data());
    return dot(u, y);
  };
  std::vector<double> dx(static_cast<size_t>(nx), std::numeric_limits<double>::quiet_NaN());
  bwd(u.data(), dx.data(), GradientMode::Overwrite);
  check_close(std::string(what) + " backward vs central differences", dx, numeric_grad(f, x), {nx}, Tol::finite_diff());
  std::vector<double> acc = randn(nx, seed + 2), expect(static_cast<size_t>(nx));
  for (int64_t i = 0; i < nx; ++i) expect[size_t(i)] = acc[size_t(i)] + dx[size_t(i)];
  bwd(u.data(), acc.data(), GradientMode::Accumulate);
  // Scatter kernels (max pool, upsample) add their terms one by one into the
  // accumulator, so acc + (a + b) vs (acc + a) + b: a few double ulps.
  check_close(std::string(what) + " accumulate", acc, expect, {nx}, Tol{1e-14, 1e-14});
  std::vector<double> untouched = acc;
  bwd(u.data(), acc.data(), GradientMode::Ignore);
  CHECK(acc == untouched);
  if (linear == Linear::Yes) {
    std::vector<double> xr = randn(nx, seed + 3), g = randn(ny, seed + 4), y(static_cast<size_t>(ny)),
                        bx(static_cast<size_t>(nx));
    fwd(xr.data(), y.data());
    bwd(g.data(), bx.data(), GradientMode::Overwrite);
    // Two double dot products of the same terms in different orders.
    check_close(std::string(what) + " adjoint <op(x),g> == <x,op'(g)>", {dot(y, g)}, {dot(xr, bx)}, {1},
                Tol{1e-12, 1e-12});
  }
}

// Naive references, written from the definitions.
std::vector<double> naive_shuffle(int64_t N, int64_t C, int64_t HW, int64_t G, const std::vector<double>& x) {
  // view (N, G, C/G, HW) -> transpose -> (N, C/G, G, HW): y[n, j*G + g] = x[n, g*(C/G) + j]
  std::vector<double> y(x.size());
  const int64_t Cg = C / G;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < G; ++g)
      for (int64_t j = 0; j < Cg; ++j)
        for (int64_t i = 0; i < HW; ++i)
          y[size_t(((n * C) + j * G + g) * HW + i)] = x[size_t(((n * C) + g * Cg + j) * HW + i)];
  return y;
}

std::vector<double> naive_max_pool(int64_t P, int64_t H, int64_t W, int64_t K, int64_t S, int64_t Pd,
                                   const std::vector<double>& x, std::vector<int64_t>* arg) {
  const int64_t Ho = (H + 2 * Pd - K) / S + 1, Wo = (W + 2 * Pd - K) / S + 1;
  std::vector<double> y(static_cast<size_t>(P * Ho * Wo));
  if (arg) arg->assign(y.size(), -1);
  for (int64_t p = 0; p < P; ++p)
    for (int64_t oh = 0; oh < Ho; ++oh)
      for (int64_t ow = 0; ow < Wo; ++ow) {
        double best = -INFINITY;
        int64_t bi = -1;
        for (int64_t kh = 0; kh < K; ++kh)
          for (int64_t kw = 0; kw < K; ++kw) {
            const int64_t h = oh * S - Pd + kh, w = ow * S - Pd + kw;
            if (h < 0 || h >= H || w < 0 || w >= W) continue;  // padding: -inf never wins
            const double v = x[size_t((p * H + h) * W + w)];
            if (bi < 0 || v > best) {
              best = v;
              bi = h * W + w;
            }
          }
        y[size_t((p * Ho + oh) * Wo + ow)] = best;
        if (arg) (*arg)[size_t((p * Ho + oh) * Wo + ow)] = bi;
      }
  return y;
}

int64_t naive_nearest(int64_t dst, int64_t in, int64_t out) {
  if (out == 2 * in) return dst / 2;
  const float scale = float(in) / float(out);  // torch: float scale, float product
  return std::min(int64_t(std::floor(float(dst) * scale)), in - 1);
}

std::vector<double> naive_upsample(int64_t P, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                                   const std::vector<double>& x) {
  std::vector<double> y(static_cast<size_t>(P * Ho * Wo));
  for (int64_t p = 0; p < P; ++p)
    for (int64_t oh = 0; oh < Ho; ++oh)
      for (int64_t ow = 0; ow < Wo; ++ow)
        y[size_t((p * Ho + oh) * Wo + ow)] =
            x[size_t((p * H + naive_nearest(oh, H, Ho)) * W + naive_nearest(ow, W, Wo))];
  return y;
}

std::vector<double> naive_upsample_grad(int64_t P, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                                        const std::vector<double>& dy) {
  std::vector<double> dx(static_cast<size_t>(P * H * W), 0.0);
  for (int64_t p = 0; p < P; ++p)
    for (int64_t oh = 0; oh < Ho; ++oh)
      for (int64_t ow = 0; ow < Wo; ++ow)
        dx[size_t((p * H + naive_nearest(oh, H, Ho)) * W + naive_nearest(ow, W, Wo))] +=
            dy[size_t((p * Ho + oh) * Wo + ow)];
  return dx;
}

const std::vector<std::array<int64_t, 4>> kOddShapes = {{1, 1, 1, 1}, {2, 3, 7, 17},  {1, 15, 17, 7},
                                                        {3, 1, 7, 1}, {2, 15, 1, 17}, {1, 3, 17, 17}};

}  // namespace

// ---------------------------------------------------------------- golden cases

DETNAS_GOLDEN_OP("channel_shuffle") {
  const GoldenTensor& xin = c.in("input");
  const int64_t groups = int64_t(c.num("groups"));
  Tensor x = Tensor::from_vector(xin.shape, xin.as_float());
  x.requires_grad_();
  Tensor y = ops::channel_shuffle(x, groups);
  check_golden_exact(c, "output", vd(y), c.out("output"));
  if (c.upstream_grads.count("output")) {
    backward(weighted_sum(y, c.upstream("output").as_float()));
    check_golden_exact(c, "grad input", vd(x.grad()), c.grad("input"));
  }
  clear_tape();
}

DETNAS_GOLDEN_OP("upsample_nearest2d") {
  const GoldenTensor& xin = c.in("input");
  REQUIRE(xin.shape.size() == 4);
  int64_t Ho, Wo;
  if (c.has_param("size")) {
    std::vector<double> s = c.list("size");
    REQUIRE(s.size() == 2);
    Ho = int64_t(s[0]);
    Wo = int64_t(s[1]);
  } else {
    const double f = c.num("scale_factor");
    Ho = int64_t(std::floor(double(xin.shape[2]) * f));
    Wo = int64_t(std::floor(double(xin.shape[3]) * f));
  }
  Tensor x = Tensor::from_vector(xin.shape, xin.as_float());
  x.requires_grad_();
  Tensor y = ops::upsample_nearest(x, Ho, Wo);
  CHECK(y.shape() == Shape(c.out("output").shape));
  check_golden_exact(c, "output", vd(y), c.out("output"));
  if (c.upstream_grads.count("output")) {
    backward(weighted_sum(y, c.upstream("output").as_float()));
    check_golden_grad(c, "grad input", x.grad().to_vector(), c.grad("input"));
  }
  clear_tape();
}

// ---------------------------------------------------------------- channel shuffle / split / concat

TEST_CASE("shape: channel shuffle matches the view-transpose definition; backward exact") {
  for (auto [N, C, H, W] :
       std::vector<std::array<int64_t, 4>>{{2, 8, 3, 4}, {1, 2, 1, 1}, {3, 14, 7, 17}, {2, 16, 17, 1}, {1, 30, 7, 7}}) {
    for (int64_t G : {int64_t(1), int64_t(2), C / 2 > 1 && C % 3 == 0 ? int64_t(3) : int64_t(2), C}) {
      CAPTURE(N);
      CAPTURE(C);
      CAPTURE(G);
      const int64_t HW = H * W, n = N * C * HW;
      std::vector<float> xf = randn_f(n, uint64_t(n + G));
      Tensor x = Tensor::from_vector({N, C, H, W}, xf);
      x.requires_grad_();
      Tensor y = ops::channel_shuffle(x, G);
      check_close("shuffle forward", vd(y), naive_shuffle(N, C, HW, G, to_double(xf)), {N, C, H, W}, Tol::exact());
      // backward is the inverse permutation: shuffling u back reproduces it.
      std::vector<float> u = randn_f(n, 77);
      backward(weighted_sum(y, u));
      check_close("shuffle backward", naive_shuffle(N, C, HW, G, vd(x.grad())), to_double(u), {N, C, H, W},
                  Tol::exact());
    }
  }
  // Known permutations for C = 6.
  Tensor x = Tensor::from_vector({1, 6, 1, 1}, {0, 1, 2, 3, 4, 5});
  CHECK(ops::channel_shuffle(x, 2).to_vector() == std::vector<float>{0, 3, 1, 4, 2, 5});
  CHECK(ops::channel_shuffle(x, 3).to_vector() == std::vector<float>{0, 2, 4, 1, 3, 5});
}

TEST_CASE("shape: even/odd split and concat match naive loops; halves without a gradient count as zero") {
  for (auto [N, C, H, W] : std::vector<std::array<int64_t, 4>>{{1, 2, 1, 1}, {2, 6, 7, 17}, {3, 30, 1, 7}}) {
    CAPTURE(C);
    const int64_t HW = H * W, n = N * C * HW;
    std::vector<float> xf = randn_f(n, 5 + uint64_t(n));
    Tensor x = Tensor::from_vector({N, C, H, W}, xf);
    x.requires_grad_();
    auto [ev, od] = ops::split_even_odd(x);
    CHECK(ev.shape() == Shape{N, C / 2, H, W});
    std::vector<float> e = ev.to_vector(), o = od.to_vector();
    bool ok = true;
    for (int64_t b = 0; b < N; ++b)
      for (int64_t k = 0; k < C / 2; ++k)
        for (int64_t i = 0; i < HW; ++i) {
          ok = ok && e[size_t((b * C / 2 + k) * HW + i)] == xf[size_t((b * C + 2 * k) * HW + i)];
          ok = ok && o[size_t((b * C / 2 + k) * HW + i)] == xf[size_t((b * C + 2 * k + 1) * HW + i)];
        }
    CHECK(ok);
    // Only the odd half feeds the loss: even channels get exact zeros.
    std::vector<float> u = randn_f(n / 2, 9);
    backward(weighted_sum(od, u));
    std::vector<float> gx = x.grad().to_vector();
    ok = true;
    for (int64_t b = 0; b < N; ++b)
      for (int64_t k = 0; k < C / 2; ++k)
        for (int64_t i = 0; i < HW; ++i) {
          ok = ok && gx[size_t((b * C + 2 * k) * HW + i)] == 0.f;
          ok = ok && gx[size_t((b * C + 2 * k + 1) * HW + i)] == u[size_t((b * C / 2 + k) * HW + i)];
        }
    CHECK(ok);
    clear_tape();
    // concat(even, odd) followed by the inverse interleave restores x.
    x.reset_grad();
    auto [e2, o2] = ops::split_even_odd(x);
    Tensor cat = ops::concat({e2, o2});
    std::vector<float> cv = cat.to_vector();
    ok = true;
    for (int64_t b = 0; b < N; ++b)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t i = 0; i < HW; ++i) {
          const int64_t src = c < C / 2 ? 2 * c : 2 * (c - C / 2) + 1;
          ok = ok && cv[size_t((b * C + c) * HW + i)] == xf[size_t((b * C + src) * HW + i)];
        }
    CHECK(ok);
    std::vector<float> uc = randn_f(n, 10);
    backward(weighted_sum(cat, uc));
    std::vector<float> g2 = x.grad().to_vector();
    ok = true;
    for (int64_t b = 0; b < N; ++b)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t i = 0; i < HW; ++i) {
          const int64_t src = c < C / 2 ? 2 * c : 2 * (c - C / 2) + 1;
          ok = ok && g2[size_t((b * C + src) * HW + i)] == uc[size_t((b * C + c) * HW + i)];
        }
    CHECK(ok);
  }
}

TEST_CASE("shape: concat of three inputs, rank 2 and rank 4, reads channel slices in place") {
  // three inputs with C = 1, 3, 15 and H, W = 7, 17
  const int64_t N = 2, H = 7, W = 17, HW = H * W;
  std::vector<int64_t> Cs = {1, 3, 15};
  std::vector<Tensor> xs;
  std::vector<std::vector<float>> vals;
  for (size_t i = 0; i < Cs.size(); ++i) {
    vals.push_back(randn_f(N * Cs[i] * HW, 60 + i));
    xs.push_back(Tensor::from_vector({N, Cs[i], H, W}, vals.back()));
    xs.back().requires_grad_();
  }
  Tensor y = ops::concat(xs);
  CHECK(y.shape() == Shape{N, 19, H, W});
  std::vector<float> yv = y.to_vector(), ref;
  for (int64_t b = 0; b < N; ++b)
    for (size_t i = 0; i < Cs.size(); ++i)
      ref.insert(ref.end(), vals[i].begin() + b * Cs[i] * HW, vals[i].begin() + (b + 1) * Cs[i] * HW);
  CHECK(yv == ref);
  std::vector<float> u = randn_f(y.numel(), 70);
  backward(weighted_sum(y, u));
  int64_t off = 0;
  for (size_t i = 0; i < Cs.size(); ++i) {
    std::vector<float> g = xs[i].grad().to_vector(), gr;
    for (int64_t b = 0; b < N; ++b)
      gr.insert(gr.end(), u.begin() + (b * 19 + off) * HW, u.begin() + (b * 19 + off + Cs[i]) * HW);
    CHECK(g == gr);
    off += Cs[i];
  }
  // rank 2 (N, C): the classification head's feature concat.
  Tensor a = Tensor::from_vector({2, 2}, {1, 2, 3, 4}), b = Tensor::from_vector({2, 1}, {5, 6});
  CHECK(ops::concat({a, b}).to_vector() == std::vector<float>{1, 2, 5, 3, 4, 6});
  // The ShuffleNetV2 pattern: a pass-through half (a channel slice, not contiguous
  // for N > 1) concatenated with a branch output; the slice is read in place and
  // its gradient reaches the base tensor through narrow.
  Tensor base = Tensor::from_vector({2, 4, 1, 2}, randn_f(16, 71));
  base.requires_grad_();
  Tensor half = base.narrow(1, 2, 2);
  CHECK_FALSE(half.is_contiguous());
  Tensor other = Tensor::from_vector({2, 1, 1, 2}, {9, 8, 7, 6});
  Tensor z = ops::concat({half, other});
  std::vector<float> bv = base.to_vector();
  CHECK(z.to_vector() == std::vector<float>{bv[4], bv[5], bv[6], bv[7], 9, 8, bv[12], bv[13], bv[14], bv[15], 7, 6});
  std::vector<float> uz = randn_f(12, 72);
  backward(weighted_sum(z, uz));
  CHECK(base.grad().to_vector() ==
        std::vector<float>{0, 0, 0, 0, uz[0], uz[1], uz[2], uz[3], 0, 0, 0, 0, uz[6], uz[7], uz[8], uz[9]});
}

TEST_CASE("shape: shuffle, split and concat backward kernels: central differences, adjoint, write modes") {
  for (auto [N, C, H, W] : std::vector<std::array<int64_t, 4>>{{2, 6, 7, 1}, {1, 2, 1, 1}, {1, 30, 1, 17}}) {
    CAPTURE(C);
    const int64_t HW = H * W, n = N * C * HW;
    for (int64_t G : {int64_t(2), int64_t(3)}) {
      if (C % G) continue;
      check_backward(
          "channel_shuffle", n, n, [&](const double* x, double* y) { kc::channel_shuffle_forward(N, C, HW, G, x, y); },
          [&](const double* dy, double* dx, GradientMode m) {
            kc::channel_shuffle_backward_input(N, C, HW, G, dy, dx, m);
          },
          Linear::Yes, 200 + uint64_t(G));
    }
    const int64_t nh = n / 2;
    check_backward(
        "split_even_odd", n, n, [&](const double* x, double* y) { kc::split_even_odd_forward(N, C, HW, x, y, y + nh); },
        [&](const double* dy, double* dx, GradientMode m) {
          kc::split_even_odd_backward_input(N, C, HW, dy, dy + nh, dx, m);
        },
        Linear::Yes, 210);
    // One missing half: the odd channels' gradient is zero.
    check_backward(
        "split_even_odd (even only)", n, nh,
        [&](const double* x, double* y) {
          std::vector<double> odd(static_cast<size_t>(nh));
          kc::split_even_odd_forward(N, C, HW, x, y, odd.data());
        },
        [&](const double* dy, double* dx, GradientMode m) {
          kc::split_even_odd_backward_input<double>(N, C, HW, dy, nullptr, dx, m);
        },
        Linear::Yes, 220);
    // concat of a (N, C, HW) input at offset 1 into (N, C + 3, HW)
    const int64_t Ct = C + 3, ny = N * Ct * HW;
    check_backward(
        "concat", n, ny,
        [&](const double* x, double* y) {
          for (int64_t i = 0; i < ny; ++i) y[i] = 0;
          kc::concat_forward(N, C, Ct, HW, 1, x, C * HW, y);
        },
        [&](const double* dy, double* dx, GradientMode m) { kc::concat_backward_input(N, C, Ct, HW, 1, dy, dx, m); },
        Linear::Yes, 230);
  }
}

// ---------------------------------------------------------------- pooling

TEST_CASE("shape: max pool matches a naive loop on odd shapes; gradient to the first maximum") {
  for (auto [N, C, H, W] : kOddShapes) {
    for (auto [K, S, P] : std::vector<std::array<int64_t, 3>>{{3, 2, 1}, {2, 2, 0}, {3, 1, 1}, {1, 1, 0}, {5, 3, 2}}) {
      if (H + 2 * P < K || W + 2 * P < K) continue;
      CAPTURE(N);
      CAPTURE(C);
      CAPTURE(H);
      CAPTURE(W);
      CAPTURE(K);
      CAPTURE(S);
      CAPTURE(P);
      const int64_t n = N * C * H * W;
      // Values on a coarse grid so windows contain ties.
      std::vector<float> xf = randn_f(n, uint64_t(n * K + S));
      for (auto& v : xf) v = std::round(v * 2.0f) / 2.0f;
      Tensor x = Tensor::from_vector({N, C, H, W}, xf);
      x.requires_grad_();
      Tensor y = ops::max_pool2d(x, {K, S, P});
      std::vector<int64_t> arg;
      std::vector<double> ref = naive_max_pool(N * C, H, W, K, S, P, to_double(xf), &arg);
      const int64_t Ho = (H + 2 * P - K) / S + 1, Wo = (W + 2 * P - K) / S + 1;
      REQUIRE(y.shape() == Shape{N, C, Ho, Wo});
      check_close("max pool forward", vd(y), ref, {N, C, Ho, Wo}, Tol::exact());
      std::vector<float> u = randn_f(y.numel(), 81);
      backward(weighted_sum(y, u));
      std::vector<double> gref(static_cast<size_t>(n), 0.0);
      for (int64_t p = 0; p < N * C; ++p)
        for (int64_t o = 0; o < Ho * Wo; ++o)
          gref[size_t(p * H * W + arg[size_t(p * Ho * Wo + o)])] += u[size_t(p * Ho * Wo + o)];
      // Overlapping windows add a few float gradients: K*K terms at most.
      check_close("max pool backward", vd(x.grad()), gref, {N, C, H, W}, Tol::reduction(K * K, max_abs(gref)));
    }
  }
}

TEST_CASE("shape: max pool ties, -inf and NaN follow torch") {
  // all equal: each 2x2 window's gradient goes to its top-left element
  Tensor x = Tensor::full({1, 1, 4, 4}, 1.0f);
  x.requires_grad_();
  Tensor y = ops::max_pool2d(x, {2, 2, 0});
  backward(ops::sum(y));
  CHECK(x.grad().to_vector() == std::vector<float>{1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0});
  // all -inf: output -inf, gradient to the first valid element of each window
  const float ninf = -std::numeric_limits<float>::infinity();
  Tensor xi = Tensor::full({1, 1, 2, 2}, ninf);
  xi.requires_grad_();
  Tensor yi = ops::max_pool2d(xi, {3, 2, 1});
  CHECK(yi.to_vector() == std::vector<float>{ninf});
  backward(ops::sum(yi));
  CHECK(xi.grad().to_vector() == std::vector<float>{1, 0, 0, 0});
  // NaN is the maximum and takes the gradient
  Tensor xn = Tensor::from_vector({1, 1, 2, 2}, {1.f, NAN, 3.f, 2.f});
  xn.requires_grad_();
  Tensor yn = ops::max_pool2d(xn, {2, 2, 0});
  CHECK(std::isnan(yn.to_vector()[0]));
  backward(weighted_sum(yn, {1.0f}));
  CHECK(xn.grad().to_vector() == std::vector<float>{0, 1, 0, 0});
}

TEST_CASE("shape: global average pool matches a naive mean on odd shapes") {
  for (auto [N, C, H, W] : kOddShapes) {
    CAPTURE(C);
    CAPTURE(H);
    CAPTURE(W);
    const int64_t HW = H * W, n = N * C * HW;
    std::vector<float> xf = randn_f(n, 90 + uint64_t(n));
    Tensor x = Tensor::from_vector({N, C, H, W}, xf);
    x.requires_grad_();
    Tensor y = ops::global_avg_pool(x);
    REQUIRE(y.shape() == Shape{N, C, 1, 1});
    std::vector<double> ref(static_cast<size_t>(N * C), 0.0);
    for (int64_t p = 0; p < N * C; ++p) {
      for (int64_t i = 0; i < HW; ++i) ref[size_t(p)] += xf[size_t(p * HW + i)];
      ref[size_t(p)] /= double(HW);
    }
    // Double accumulation, one float rounding: elementwise bound.
    check_close("avg pool forward", vd(y), ref, {N, C, 1, 1}, Tol::elementwise());
    std::vector<float> u = randn_f(N * C, 91);
    backward(weighted_sum(y, u));
    std::vector<double> gref(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) gref[size_t(i)] = double(u[size_t(i / HW)]) / double(HW);
    check_close("avg pool backward", vd(x.grad()), gref, {N, C, H, W}, Tol::elementwise());
  }
}

TEST_CASE("shape: pooling backward kernels: central differences, adjoint (avg), write modes") {
  for (auto [N, C, H, W] : std::vector<std::array<int64_t, 4>>{{1, 3, 7, 7}, {2, 1, 1, 17}, {1, 1, 1, 1}}) {
    const int64_t P = N * C, n = P * H * W;
    check_backward(
        "global_avg_pool", n, P, [&](const double* x, double* y) { kc::global_avg_pool_forward(P, H * W, x, y); },
        [&](const double* dy, double* dx, GradientMode m) { kc::global_avg_pool_backward_input(P, H * W, dy, dx, m); },
        Linear::Yes, 300);
    for (auto [K, S, Pd] : std::vector<std::array<int64_t, 3>>{{3, 2, 1}, {3, 1, 1}, {2, 2, 0}}) {
      if (H + 2 * Pd < K || W + 2 * Pd < K) continue;
      kernels::PoolWindow win{K, S, Pd};
      const int64_t Ho = kernels::pool_out_size(H, win), Wo = kernels::pool_out_size(W, win);
      // Distinct values 0.1 apart: no two within the finite-difference step.
      std::vector<double> x(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) x[size_t(i)] = 0.1 * double((i * 7919) % n) - 0.05 * double(n);
      check_backward(
          "max_pool2d", n, P * Ho * Wo,
          [&](const double* xx, double* y) { kc::max_pool2d_forward(P, H, W, Ho, Wo, win, xx, y); },
          [&](const double* dy, double* dx, GradientMode m) {
            kc::max_pool2d_backward_input(P, H, W, Ho, Wo, win, x.data(), dy, dx, m);
          },
          Linear::No, 310, x);
    }
  }
}

// ---------------------------------------------------------------- upsample

TEST_CASE("shape: nearest upsample matches torch's float index rule on odd sizes") {
  CHECK(kernels::upsample_nearest_src(41, 2, 82) == 0);  // exact rational floor(41*2/82) would be 1
  for (auto [H, W, Ho, Wo] : std::vector<std::array<int64_t, 4>>{
           {7, 5, 13, 10}, {2, 3, 82, 7}, {5, 7, 10, 14}, {1, 1, 7, 17}, {7, 17, 3, 5}, {5, 5, 5, 5}, {17, 1, 34, 3}}) {
    for (auto [N, C] : std::vector<std::array<int64_t, 2>>{{1, 1}, {2, 3}, {1, 15}}) {
      CAPTURE(H);
      CAPTURE(W);
      CAPTURE(Ho);
      CAPTURE(Wo);
      CAPTURE(C);
      const int64_t P = N * C, n = P * H * W;
      std::vector<float> xf = randn_f(n, 400 + uint64_t(n));
      Tensor x = Tensor::from_vector({N, C, H, W}, xf);
      x.requires_grad_();
      Tensor y = ops::upsample_nearest(x, Ho, Wo);
      check_close("upsample forward", vd(y), naive_upsample(P, H, W, Ho, Wo, to_double(xf)), {N, C, Ho, Wo},
                  Tol::exact());
      std::vector<float> u = randn_f(y.numel(), 401);
      backward(weighted_sum(y, u));
      const int64_t copies = ((Ho + H - 1) / H) * ((Wo + W - 1) / W);
      std::vector<double> gref = naive_upsample_grad(P, H, W, Ho, Wo, to_double(u));
      check_close("upsample backward", vd(x.grad()), gref, {N, C, H, W}, Tol::reduction(copies, max_abs(gref)));
      if (P == 1) {
        check_backward(
            "upsample_nearest2d", n, Ho * Wo,
            [&](const double* xx, double* yy) { kc::upsample_nearest2d_forward(P, H, W, Ho, Wo, xx, yy); },
            [&](const double* dy, double* dx, GradientMode m) {
              kc::upsample_nearest2d_backward_input(P, H, W, Ho, Wo, dy, dx, m);
            },
            Linear::Yes, 410);
      }
    }
  }
}

// ---------------------------------------------------------------- bad input and autograd state

TEST_CASE("shape: bad input raises clear errors") {
  CHECK_THROWS_WITH_AS(ops::split_even_odd(Tensor::zeros({1, 3, 2, 2})),
                       doctest::Contains("split_even_odd: needs an even channel count, got input [1, 3, 2, 2]"), Error);
  CHECK_THROWS_WITH_AS(
      ops::channel_shuffle(Tensor::zeros({2, 15, 2, 2}), 2),
      doctest::Contains("channel_shuffle: 15 channels of input [2, 15, 2, 2] are not divisible by groups = 2"), Error);
  CHECK_THROWS_WITH_AS(ops::channel_shuffle(Tensor::zeros({2, 4, 2, 2}), 0), doctest::Contains("groups = 0"), Error);
  CHECK_THROWS_WITH_AS(
      ops::concat({Tensor::zeros({2, 3, 4, 4}), Tensor::zeros({2, 5, 4, 5})}),
      doctest::Contains("concat: input 1 shape [2, 5, 4, 5] does not match input 0 shape [2, 3, 4, 4] outside dim 1"),
      Error);
  CHECK_THROWS_WITH_AS(ops::concat({Tensor::zeros({2, 3, 4, 4}), Tensor::zeros({1, 3, 4, 4})}),
                       doctest::Contains("[1, 3, 4, 4] does not match input 0 shape [2, 3, 4, 4]"), Error);
  CHECK_THROWS_WITH_AS(ops::concat({Tensor::zeros({2, 3, 4, 4}), Tensor::zeros({2, 3, 16})}),
                       doctest::Contains("[2, 3, 16] does not match input 0 shape [2, 3, 4, 4]"), Error);
  CHECK_THROWS_WITH_AS(ops::concat({}), doctest::Contains("concat: empty list"), Error);
  CHECK_THROWS_WITH_AS(ops::concat({Tensor::zeros({2, 3, 4, 4}), Tensor::zeros({2, 0, 4, 4})}),
                       doctest::Contains("concat: input 1 is empty: [2, 0, 4, 4]"), Error);
  CHECK_THROWS_WITH_AS(ops::channel_shuffle(Tensor::zeros({0, 4, 2, 2}), 2),
                       doctest::Contains("channel_shuffle: empty input [0, 4, 2, 2]"), Error);
  CHECK_THROWS_WITH_AS(ops::split_even_odd(Tensor::zeros({2, 4, 0, 2})),
                       doctest::Contains("split_even_odd: empty input [2, 4, 0, 2]"), Error);
  CHECK_THROWS_WITH_AS(ops::global_avg_pool(Tensor::zeros({2, 4, 2, 0})), doctest::Contains("empty input"), Error);
  CHECK_THROWS_WITH_AS(ops::upsample_nearest(Tensor::zeros({1, 1, 0, 2}), 4, 4), doctest::Contains("empty input"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::upsample_nearest(Tensor::zeros({1, 1, 2, 2}), 0, 4),
                       doctest::Contains("invalid output size (0, 4) for input [1, 1, 2, 2]"), Error);
  CHECK_THROWS_WITH_AS(ops::max_pool2d(Tensor::zeros({1, 1, 4, 4}), {3, 1, 2}),
                       doctest::Contains("padding 2 must be at most half the kernel 3"), Error);
  CHECK_THROWS_WITH_AS(ops::max_pool2d(Tensor::zeros({1, 1, 2, 2}), {5, 1, 1}),
                       doctest::Contains("input [1, 1, 2, 2] is smaller than the kernel 5"), Error);
  CHECK_THROWS_WITH_AS(ops::max_pool2d(Tensor::zeros({1, 1, 4, 4}), {3, 0, 1}), doctest::Contains("stride 0"), Error);
  CHECK_THROWS_WITH_AS(ops::global_avg_pool(Tensor::zeros({4, 4})),
                       doctest::Contains("global_avg_pool: expected an (N,C,H,W) input, got shape [4, 4]"), Error);
  CHECK_THROWS_WITH_AS(ops::channel_shuffle(Tensor(), 2), doctest::Contains("channel_shuffle: input is undefined"),
                       Error);
}

TEST_CASE("shape: no-grad records nothing; inputs without grad stay without") {
  Tensor x = Tensor::from_vector({1, 4, 2, 2}, randn_f(16, 500));
  x.requires_grad_();
  {
    NoGradGuard ng;
    auto [e, o] = ops::split_even_odd(ops::channel_shuffle(x, 2));
    Tensor y = ops::upsample_nearest(ops::max_pool2d(ops::concat({e, o}), {2, 2, 0}), 2, 2);
    (void)ops::global_avg_pool(y);
    CHECK(tape_size() == 0);
    CHECK_FALSE(y.requires_grad());
  }
  // concat of a grad and a no-grad input: only the first gets a gradient
  Tensor c = Tensor::zeros({1, 2, 2, 2});
  backward(ops::sum(ops::concat({x, c})));
  CHECK(x.grad().to_vector() == std::vector<float>(16, 1.0f));
  CHECK_FALSE(c.grad().defined());
}

TEST_CASE("shape: sizes above the OpenMP thresholds give the same results as the naive loops") {
  const int64_t N = 4, C = 32, H = 17, W = 17, HW = H * W, n = N * C * HW;
  std::vector<float> xf = randn_f(n, 600);
  Tensor x = Tensor::from_vector({N, C, H, W}, xf);
  check_close("large shuffle", vd(ops::channel_shuffle(x, 2)), naive_shuffle(N, C, HW, 2, to_double(xf)), {N, C, H, W},
              Tol::exact());
  check_close("large max pool", vd(ops::max_pool2d(x, {3, 2, 1})),
              naive_max_pool(N * C, H, W, 3, 2, 1, to_double(xf), nullptr), {N, C, 9, 9}, Tol::exact());
  check_close("large upsample", vd(ops::upsample_nearest(x, 34, 34)),
              naive_upsample(N * C, H, W, 34, 34, to_double(xf)), {N, C, 34, 34}, Tol::exact());
  check_close("large upsample (general)", vd(ops::upsample_nearest(x, 30, 41)),
              naive_upsample(N * C, H, W, 30, 41, to_double(xf)), {N, C, 30, 41}, Tol::exact());
  auto [e, o] = ops::split_even_odd(x);
  Tensor back = ops::channel_shuffle(ops::concat({e, o}), 2);  // interleave restores x
  CHECK(back.to_vector() == xf);
}
