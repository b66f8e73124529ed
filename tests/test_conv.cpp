// Convolution and linear tests: golden depthwise cases (torch), naive 7-loop
// conv oracles, finite differences and adjoint identities in double through the
// double kernels, the in-place channel-slice input path, and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/dwconv.h"
#include "runtime/ops_conv.h"
#include "runtime/runtime.h"
#include "tests/golden.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::rt;
using namespace detnas::test;
namespace kc = detnas::kernels::cpu;
using kernels::Conv2dShape;
using kernels::DwconvShape;

namespace {

// <y, g> as a scalar with a recorded backward that seeds y's gradient with g:
// backward(dot_loss(y, g)) gives every input the gradient for upstream g.
Tensor dot_loss(const Tensor& y, const Tensor& g) {
  check_same_shape("dot_loss", y, g);
  Tensor yc = y.contiguous();
  std::vector<float> yv = yc.to_vector(), gv = g.to_vector();
  double acc = 0;
  for (size_t i = 0; i < yv.size(); ++i) acc += double(yv[i]) * gv[i];
  Tensor l = Tensor::scalar(float(acc));
  if (wants_grad({&yc})) {
    record({&l}, [yc, g, l]() {
      Tensor gl = l.grad();
      if (!gl.defined()) return;
      float seed = *gl.data();
      GradSlot s = grad_slot(yc);
      const float* gp = g.data();
      for (int64_t i = 0, n = yc.numel(); i < n; ++i) kernels::write_grad(s.ptr + i, seed * gp[i], s.mode);
    });
  }
  return l;
}

Tensor tensor_of(const Shape& shape, const std::vector<float>& v) { return Tensor::from_vector(shape, v); }

// Dense conv configuration for the naive oracle.
struct Cfg {
  int64_t N, C, H, W, Cout, KH, KW, S, P, G;
  int64_t Ho() const { return (H + 2 * P - KH) / S + 1; }
  int64_t Wo() const { return (W + 2 * P - KW) / S + 1; }
  int64_t nx() const { return N * C * H * W; }
  int64_t nw() const { return Cout * (C / G) * KH * KW; }
  int64_t ny() const { return N * Cout * Ho() * Wo(); }
  Conv2dShape shape() const {
    Conv2dShape s;
    s.N = N, s.C = C, s.H = H, s.W = W, s.Cout = Cout, s.KH = KH, s.KW = KW, s.S = S, s.P = P, s.G = G;
    s.x_batch_stride = C * H * W;
    return s;
  }
  std::string str() const {
    return detail::cat("x [", N, ",", C, ",", H, ",", W, "] w [", Cout, ",", C / G, ",", KH, ",", KW, "] s", S, " p", P,
                       " g", G);
  }
};

// The 7-loop oracle (n, o, oh, ow, ci, kh, kw) in double: forward, and the same
// loops scattering dy into dx, dw, db.
std::vector<double> naive_forward(const Cfg& c, const std::vector<double>& x, const std::vector<double>& w,
                                  const std::vector<double>* b) {
  const int64_t Cg = c.C / c.G, Og = c.Cout / c.G, Ho = c.Ho(), Wo = c.Wo();
  std::vector<double> y(size_t(c.ny()));
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t o = 0; o < c.Cout; ++o)
      for (int64_t oh = 0; oh < Ho; ++oh)
        for (int64_t ow = 0; ow < Wo; ++ow) {
          double acc = b ? (*b)[size_t(o)] : 0.0;
          const int64_t g = o / Og;
          for (int64_t ci = 0; ci < Cg; ++ci)
            for (int64_t kh = 0; kh < c.KH; ++kh)
              for (int64_t kw = 0; kw < c.KW; ++kw) {
                int64_t ih = oh * c.S - c.P + kh, iw = ow * c.S - c.P + kw;
                if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
                acc += w[size_t(((o * Cg + ci) * c.KH + kh) * c.KW + kw)] *
                       x[size_t(((n * c.C + g * Cg + ci) * c.H + ih) * c.W + iw)];
              }
          y[size_t(((n * c.Cout + o) * Ho + oh) * Wo + ow)] = acc;
        }
  return y;
}

struct NaiveGrads {
  std::vector<double> dx, dw, db;
};
NaiveGrads naive_backward(const Cfg& c, const std::vector<double>& x, const std::vector<double>& w,
                          const std::vector<double>& dy) {
  const int64_t Cg = c.C / c.G, Og = c.Cout / c.G, Ho = c.Ho(), Wo = c.Wo();
  NaiveGrads r{std::vector<double>(size_t(c.nx())), std::vector<double>(size_t(c.nw())),
               std::vector<double>(size_t(c.Cout))};
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t o = 0; o < c.Cout; ++o)
      for (int64_t oh = 0; oh < Ho; ++oh)
        for (int64_t ow = 0; ow < Wo; ++ow) {
          const double g = dy[size_t(((n * c.Cout + o) * Ho + oh) * Wo + ow)];
          r.db[size_t(o)] += g;
          for (int64_t ci = 0; ci < Cg; ++ci)
            for (int64_t kh = 0; kh < c.KH; ++kh)
              for (int64_t kw = 0; kw < c.KW; ++kw) {
                int64_t ih = oh * c.S - c.P + kh, iw = ow * c.S - c.P + kw;
                if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
                size_t wi = size_t(((o * Cg + ci) * c.KH + kh) * c.KW + kw);
                size_t xi = size_t(((n * c.C + (o / Og) * Cg + ci) * c.H + ih) * c.W + iw);
                r.dx[xi] += w[wi] * g;
                r.dw[wi] += x[xi] * g;
              }
        }
  return r;
}

// Float32 reduction tolerance for sums of K products a*b (STYLE.md policy), scaled
// by the largest possible product.
Tol red_tol(int64_t K, const std::vector<double>& a, const std::vector<double>& b) {
  return Tol::reduction(K, max_abs(a) * max_abs(b));
}

// Runs the conv2d op with autograd on float data and checks y and all three
// gradients against the naive double loops.
void check_op_against_naive(const Cfg& c, bool with_bias, uint64_t seed) {
  CAPTURE(c.str());
  std::vector<float> xf = randn_f(c.nx(), seed), wf = randn_f(c.nw(), seed + 1, 0.5), bf = randn_f(c.Cout, seed + 2),
                     gf = randn_f(c.ny(), seed + 3);
  Tensor x = tensor_of({c.N, c.C, c.H, c.W}, xf), w = tensor_of({c.Cout, c.C / c.G, c.KH, c.KW}, wf);
  Tensor b = with_bias ? tensor_of({c.Cout}, bf) : Tensor();
  x.requires_grad_();
  w.requires_grad_();
  if (with_bias) b.requires_grad_();
  Tensor y = ops::conv2d(x, w, b, {c.S, c.P, c.G});
  REQUIRE(y.shape() == Shape{c.N, c.Cout, c.Ho(), c.Wo()});
  backward(dot_loss(y, tensor_of(y.shape(), gf)));

  std::vector<double> xd = to_double(xf), wd = to_double(wf), bd = to_double(bf), gd = to_double(gf);
  std::vector<double> yref = naive_forward(c, xd, wd, with_bias ? &bd : nullptr);
  NaiveGrads ref = naive_backward(c, xd, wd, gd);
  const int64_t Cg = c.C / c.G, Og = c.Cout / c.G;
  check_close("conv2d output", to_double(y.to_vector()), yref, y.shape(), red_tol(Cg * c.KH * c.KW + 1, xd, wd));
  check_close("conv2d grad input", to_double(x.grad().to_vector()), ref.dx, x.shape(),
              red_tol(Og * c.KH * c.KW, wd, gd));
  check_close("conv2d grad weight", to_double(w.grad().to_vector()), ref.dw, w.shape(),
              red_tol(c.N * c.Ho() * c.Wo(), xd, gd));
  if (with_bias)
    check_close("conv2d grad bias", to_double(b.grad().to_vector()), ref.db, b.shape(), Tol::elementwise());
}

const std::vector<Cfg>& dense_cfgs() {
  static const std::vector<Cfg> v = {
      // N  C   H   W  Cout KH KW S  P  G
      {2, 3, 7, 7, 4, 3, 3, 1, 1, 1},      // 3x3
      {2, 15, 17, 17, 6, 3, 3, 2, 1, 3},   // groups 3, stride 2
      {2, 4, 7, 17, 6, 1, 1, 1, 0, 2},     // pointwise, groups 2 (GEMM on the input slab)
      {2, 15, 17, 17, 15, 1, 1, 1, 0, 1},  // pointwise dispatch
      {2, 3, 17, 17, 8, 7, 7, 2, 3, 1},    // stem-like 7x7 s2
      {1, 1, 1, 7, 3, 3, 3, 1, 1, 1},      // C = 1, H = 1
      {2, 3, 7, 7, 5, 1, 1, 2, 0, 1},      // 1x1 stride 2 (im2col)
      {2, 6, 7, 17, 4, 3, 5, 1, 2, 2},     // non-square kernel, groups 2
      {2, 3, 1, 1, 4, 3, 3, 1, 1, 1},      // 1x1 map, 3x3 padded
      {3, 6, 17, 7, 6, 3, 3, 2, 1, 6},     // groups == C == Cout: depthwise dispatch
      {2, 3, 7, 7, 3, 3, 1, 1, 1, 3},      // non-square depthwise (im2col)
      {2, 4, 7, 7, 8, 3, 3, 1, 0, 4},      // channel multiplier 2 (im2col)
      {1, 3, 17, 17, 2, 3, 3, 3, 2, 1},    // stride 3, padding 2
  };
  return v;
}

}  // namespace

DETNAS_GOLDEN_OP("depthwise_conv2d") {
  if (c.has_param("dilation")) REQUIRE(c.num("dilation") == 1);
  const GoldenTensor &xin = c.in("input"), &win = c.in("weight");
  Tensor x = tensor_of(xin.shape, xin.as_float()), w = tensor_of(win.shape, win.as_float());
  x.requires_grad_();
  w.requires_grad_();
  ops::Conv2dParams p{int64_t(c.num("stride")), int64_t(c.num("padding")), int64_t(c.num("groups"))};
  Tensor y = ops::conv2d(x, w, Tensor(), p);
  check_golden_forward(c, "output", y.to_vector(), c.out("output"));
  const GoldenTensor& up = c.upstream("output");
  backward(dot_loss(y, tensor_of(up.shape, up.as_float())));
  check_golden_grad(c, "grad input", x.grad().to_vector(), c.grad("input"));
  check_golden_grad(c, "grad weight", w.grad().to_vector(), c.grad("weight"));
}

TEST_CASE("conv: dense conv2d op matches the naive 7-loop conv (output and all grads)") {
  clear_tape();
  uint64_t seed = 100;
  for (size_t i = 0; i < dense_cfgs().size(); ++i) check_op_against_naive(dense_cfgs()[i], i % 2 == 1, seed += 10);
}

TEST_CASE("conv: depthwise conv2d op matches the naive conv on odd shapes") {
  clear_tape();
  const int64_t hw[][2] = {{1, 1}, {1, 7}, {7, 17}, {17, 17}, {17, 1}};
  uint64_t seed = 500;
  for (int64_t C : {1, 3, 15})
    for (auto& d : hw)
      for (int64_t K : {3, 5, 7})
        for (int64_t S : {1, 2}) {
          Cfg c{2, C, d[0], d[1], C, K, K, S, K / 2, C};
          seed += 10;
          check_op_against_naive(c, (seed / 10) % 3 == 0, seed);
        }
}

TEST_CASE("conv: linear op matches a naive loop (output and grads, batched leading dims)") {
  clear_tape();
  const int64_t N = 6, Cin = 15, Cout = 7;
  std::vector<float> xf = randn_f(N * Cin, 1), wf = randn_f(Cout * Cin, 2), bf = randn_f(Cout, 3),
                     gf = randn_f(N * Cout, 4);
  Tensor x = tensor_of({2, 3, Cin}, xf), w = tensor_of({Cout, Cin}, wf), b = tensor_of({Cout}, bf);
  x.requires_grad_();
  w.requires_grad_();
  b.requires_grad_();
  Tensor y = ops::linear(x, w, b);
  REQUIRE(y.shape() == Shape{2, 3, Cout});
  backward(dot_loss(y, tensor_of(y.shape(), gf)));
  std::vector<double> yr(size_t(N * Cout)), dx(size_t(N * Cin)), dw(size_t(Cout * Cin)), db(static_cast<size_t>(Cout));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < Cout; ++o) {
      double acc = bf[size_t(o)], g = gf[size_t(n * Cout + o)];
      for (int64_t i = 0; i < Cin; ++i) {
        acc += double(xf[size_t(n * Cin + i)]) * wf[size_t(o * Cin + i)];
        dx[size_t(n * Cin + i)] += g * wf[size_t(o * Cin + i)];
        dw[size_t(o * Cin + i)] += g * xf[size_t(n * Cin + i)];
      }
      yr[size_t(n * Cout + o)] = acc;
      db[size_t(o)] += g;
    }
  auto xd = to_double(xf), wd = to_double(wf), gd = to_double(gf);
  check_close("linear output", to_double(y.to_vector()), yr, y.shape(), red_tol(Cin + 1, xd, wd));
  check_close("linear grad input", to_double(x.grad().to_vector()), dx, x.shape(), red_tol(Cout, wd, gd));
  check_close("linear grad weight", to_double(w.grad().to_vector()), dw, w.shape(), red_tol(N, xd, gd));
  check_close("linear grad bias", to_double(b.grad().to_vector()), db, b.shape(), Tol::elementwise());
}

// ---- double-precision checks through the kernels -------------------------------

namespace {

// Dense conv in double through the kernels: y = conv(x, w) + b.
std::vector<double> dense_fwd_d(const Cfg& c, const std::vector<double>& x, const std::vector<double>& w,
                                const std::vector<double>* b) {
  Conv2dShape s = c.shape();
  std::vector<double> y(size_t(c.ny())), ws(size_t(std::max<int64_t>(1, kc::conv2d_workspace_size(s))));
  kc::conv2d_forward(s, x.data(), w.data(), b ? b->data() : nullptr, y.data(), ws.data());
  return y;
}

struct DwCfg {
  int64_t N, C, H, W, K, S;
  DwconvShape shape() const {
    DwconvShape s;
    s.N = N, s.C = C, s.H = H, s.W = W, s.K = K, s.S = S, s.P = K / 2, s.x_batch_stride = C * H * W;
    return s;
  }
  Cfg dense() const { return {N, C, H, W, C, K, K, S, K / 2, C}; }
};

std::vector<double> dw_fwd_d(const DwCfg& c, const std::vector<double>& x, const std::vector<double>& w,
                             const std::vector<double>* b) {
  std::vector<double> y(size_t(c.dense().ny()));
  kc::dwconv_forward(c.shape(), x.data(), w.data(), b ? b->data() : nullptr, y.data());
  return y;
}

// Compares an analytic gradient with central differences, in Overwrite mode and in
// Accumulate mode on top of ones.
void check_fd(const std::string& what, const std::function<double(const std::vector<double>&)>& f,
              const std::vector<double>& at, const std::function<void(double*, GradientMode)>& grad) {
  std::vector<double> num = numeric_grad(f, at);
  std::vector<double> got(at.size(), std::numeric_limits<double>::quiet_NaN());
  grad(got.data(), GradientMode::Overwrite);
  check_close(what + " (overwrite)", got, num, {int64_t(at.size())}, Tol::finite_diff());
  std::vector<double> acc(at.size(), 1.0), num1(num);
  for (double& v : num1) v += 1.0;
  grad(acc.data(), GradientMode::Accumulate);
  check_close(what + " (accumulate)", acc, num1, {int64_t(at.size())}, Tol::finite_diff());
}

const std::vector<Cfg>& fd_cfgs() {
  static const std::vector<Cfg> v = {
      {2, 3, 5, 6, 4, 3, 3, 1, 1, 1},  // 3x3
      {1, 6, 5, 5, 4, 3, 3, 2, 1, 2},  // groups 2, stride 2
      {2, 4, 3, 5, 6, 1, 1, 1, 0, 2},  // pointwise groups 2
      {2, 3, 3, 4, 2, 1, 1, 1, 0, 1},  // pointwise
      {1, 2, 7, 7, 3, 5, 5, 2, 2, 1},  // stem-like
      {1, 3, 1, 7, 3, 3, 3, 1, 1, 3},  // H = 1, groups 3
  };
  return v;
}

const std::vector<DwCfg>& dw_fd_cfgs() {
  static const std::vector<DwCfg> v = {
      {2, 3, 7, 6, 3, 1}, {1, 2, 7, 7, 5, 2}, {1, 1, 1, 7, 7, 1}, {2, 3, 6, 5, 3, 2}, {1, 2, 5, 9, 7, 2}};
  return v;
}

}  // namespace

TEST_CASE("conv: finite differences in double for every backward (dense, depthwise, linear)") {
  uint64_t seed = 900;
  for (const Cfg& c : fd_cfgs()) {
    CAPTURE(c.str());
    Conv2dShape s = c.shape();
    auto x = randn(c.nx(), ++seed), w = randn(c.nw(), ++seed), b = randn(c.Cout, ++seed), g = randn(c.ny(), ++seed);
    std::vector<double> ws(size_t(std::max<int64_t>(1, kc::conv2d_workspace_size(s))));
    check_fd(
        "dense dx", [&](const std::vector<double>& v) { return dot(dense_fwd_d(c, v, w, &b), g); }, x,
        [&](double* out, GradientMode m) { kc::conv2d_backward_input(s, w.data(), g.data(), out, m, ws.data()); });
    check_fd(
        "dense dw", [&](const std::vector<double>& v) { return dot(dense_fwd_d(c, x, v, &b), g); }, w,
        [&](double* out, GradientMode m) { kc::conv2d_backward_weight(s, x.data(), g.data(), out, m, ws.data()); });
    check_fd(
        "dense db", [&](const std::vector<double>& v) { return dot(dense_fwd_d(c, x, w, &v), g); }, b,
        [&](double* out, GradientMode m) { kc::conv2d_backward_bias(s, g.data(), out, m); });
  }
  for (const DwCfg& c : dw_fd_cfgs()) {
    CAPTURE(c.dense().str());
    Cfg d = c.dense();
    DwconvShape s = c.shape();
    auto x = randn(d.nx(), ++seed), w = randn(d.nw(), ++seed), b = randn(d.Cout, ++seed), g = randn(d.ny(), ++seed);
    check_fd(
        "dw dx", [&](const std::vector<double>& v) { return dot(dw_fwd_d(c, v, w, &b), g); }, x,
        [&](double* out, GradientMode m) { kc::dwconv_backward_input(s, w.data(), g.data(), out, m); });
    check_fd(
        "dw dw", [&](const std::vector<double>& v) { return dot(dw_fwd_d(c, x, v, &b), g); }, w,
        [&](double* out, GradientMode m) { kc::dwconv_backward_weight(s, x.data(), g.data(), out, m); });
  }
  {
    const int64_t N = 3, Cin = 5, Cout = 4;
    auto x = randn(N * Cin, ++seed), w = randn(Cout * Cin, ++seed), b = randn(Cout, ++seed),
         g = randn(N * Cout, ++seed);
    auto fwd = [&](const std::vector<double>& xv, const std::vector<double>& wv, const std::vector<double>& bv) {
      std::vector<double> y(size_t(N * Cout));
      kc::linear_forward(N, Cin, Cout, xv.data(), wv.data(), bv.data(), y.data());
      return dot(y, g);
    };
    check_fd(
        "linear dx", [&](const std::vector<double>& v) { return fwd(v, w, b); }, x,
        [&](double* out, GradientMode m) { kc::linear_backward_input(N, Cin, Cout, w.data(), g.data(), out, m); });
    check_fd(
        "linear dw", [&](const std::vector<double>& v) { return fwd(x, v, b); }, w,
        [&](double* out, GradientMode m) { kc::linear_backward_weight(N, Cin, Cout, x.data(), g.data(), out, m); });
    check_fd(
        "linear db", [&](const std::vector<double>& v) { return fwd(x, w, v); }, b,
        [&](double* out, GradientMode m) { kc::linear_backward_bias(N, Cout, g.data(), out, m); });
  }
}

TEST_CASE("conv: adjoint identities in double (conv is linear in x and in w)") {
  uint64_t seed = 1300;
  auto check_scalar = [](const std::string& what, double got, double ref) {
    check_close(what, {got}, {ref}, {1}, Tol::finite_diff());
  };
  for (const Cfg& c : dense_cfgs()) {
    CAPTURE(c.str());
    Conv2dShape s = c.shape();
    auto x = randn(c.nx(), ++seed), w = randn(c.nw(), ++seed), g = randn(c.ny(), ++seed);
    std::vector<double> ws(size_t(std::max<int64_t>(1, kc::conv2d_workspace_size(s))));
    std::vector<double> dx(x.size()), dw(w.size());
    kc::conv2d_backward_input(s, w.data(), g.data(), dx.data(), GradientMode::Overwrite, ws.data());
    kc::conv2d_backward_weight(s, x.data(), g.data(), dw.data(), GradientMode::Overwrite, ws.data());
    double lhs = dot(dense_fwd_d(c, x, w, nullptr), g);
    check_scalar("dense <conv(x), g> vs <x, conv^T g>", dot(x, dx), lhs);
    check_scalar("dense <conv(x), g> vs <w, dW(g)>", dot(w, dw), lhs);
  }
  for (const DwCfg& c : dw_fd_cfgs()) {
    Cfg d = c.dense();
    CAPTURE(d.str());
    auto x = randn(d.nx(), ++seed), w = randn(d.nw(), ++seed), g = randn(d.ny(), ++seed);
    std::vector<double> dx(x.size()), dw(w.size());
    kc::dwconv_backward_input(c.shape(), w.data(), g.data(), dx.data(), GradientMode::Overwrite);
    kc::dwconv_backward_weight(c.shape(), x.data(), g.data(), dw.data(), GradientMode::Overwrite);
    double lhs = dot(dw_fwd_d(c, x, w, nullptr), g);
    check_scalar("depthwise <conv(x), g> vs <x, conv^T g>", dot(x, dx), lhs);
    check_scalar("depthwise <conv(x), g> vs <w, dW(g)>", dot(w, dw), lhs);
  }
  const int64_t N = 4, Cin = 7, Cout = 3;
  auto x = randn(N * Cin, ++seed), w = randn(Cout * Cin, ++seed), g = randn(N * Cout, ++seed);
  std::vector<double> y(size_t(N * Cout)), dx(x.size()), dw(w.size());
  kc::linear_forward(N, Cin, Cout, x.data(), w.data(), static_cast<const double*>(nullptr), y.data());
  kc::linear_backward_input(N, Cin, Cout, w.data(), g.data(), dx.data(), GradientMode::Overwrite);
  kc::linear_backward_weight(N, Cin, Cout, x.data(), g.data(), dw.data(), GradientMode::Overwrite);
  check_scalar("linear <xW^T, g> vs <x, gW>", dot(x, dx), dot(y, g));
  check_scalar("linear <xW^T, g> vs <W, g^T x>", dot(w, dw), dot(y, g));
}

TEST_CASE("conv: every depthwise kernel path (large planes, any K, stride 3) matches the naive conv in double") {
  // Small planes take the stack-padded fast path; these also cover the large-plane
  // register blocks with border columns, the generic row path (K not 3/5/7, stride
  // 3), the scatter input gradient (stride 2, 3) and Accumulate mode on each.
  struct P {
    int64_t N, C, H, W, K, S, Pad;
  };
  const P cases[] = {{1, 2, 97, 83, 3, 1, 1}, {1, 2, 97, 83, 5, 1, 2}, {1, 2, 90, 100, 7, 1, 3},
                     {2, 2, 97, 83, 3, 2, 1}, {1, 2, 9, 11, 9, 1, 4},  {2, 3, 7, 9, 1, 1, 0},
                     {1, 2, 17, 13, 3, 3, 1}, {1, 2, 8, 10, 4, 1, 1},  {1, 2, 9, 8, 4, 2, 2},
                     {1, 1, 97, 41, 7, 1, 0}, {1, 1, 41, 97, 3, 1, 2}};
  uint64_t seed = 3100;
  for (const P& k : cases) {
    Cfg c{k.N, k.C, k.H, k.W, k.C, k.K, k.K, k.S, k.Pad, k.C};
    CAPTURE(c.str());
    DwconvShape s;
    s.N = k.N, s.C = k.C, s.H = k.H, s.W = k.W, s.K = k.K, s.S = k.S, s.P = k.Pad, s.x_batch_stride = k.C * k.H * k.W;
    REQUIRE(s.Ho() == c.Ho());
    auto x = randn(c.nx(), ++seed), w = randn(c.nw(), ++seed), b = randn(c.C, ++seed), g = randn(c.ny(), ++seed);
    std::vector<double> y(size_t(c.ny()));
    kc::dwconv_forward(s, x.data(), w.data(), b.data(), y.data());
    NaiveGrads ref = naive_backward(c, x, w, g);
    check_close("dwconv forward", y, naive_forward(c, x, w, &b), {c.N, c.C, c.Ho(), c.Wo()}, Tol::finite_diff());
    for (GradientMode m : {GradientMode::Overwrite, GradientMode::Accumulate}) {
      const double base = m == GradientMode::Accumulate ? 0.5 : 0.0;
      std::vector<double> dx(x.size(), base), dw(w.size(), base), rx = ref.dx, rw = ref.dw;
      for (auto& v : rx) v += base;
      for (auto& v : rw) v += base;
      kc::dwconv_backward_input(s, w.data(), g.data(), dx.data(), m);
      kc::dwconv_backward_weight(s, x.data(), g.data(), dw.data(), m);
      check_close("dwconv grad input", dx, rx, {c.N, c.C, c.H, c.W}, Tol::finite_diff());
      check_close("dwconv grad weight", dw, rw, {c.C, 1, c.KH, c.KW}, Tol::finite_diff());
    }
  }
}

TEST_CASE("conv: per-element gather forms (the CUDA reference) match the CPU kernels") {
  uint64_t seed = 1700;
  for (const DwCfg& c : dw_fd_cfgs()) {
    Cfg d = c.dense();
    CAPTURE(d.str());
    DwconvShape s = c.shape();
    auto x = randn(d.nx(), ++seed), w = randn(d.nw(), ++seed), b = randn(d.C, ++seed), g = randn(d.ny(), ++seed);
    std::vector<double> y = dw_fwd_d(c, x, w, &b), dx(x.size());
    kc::dwconv_backward_input(s, w.data(), g.data(), dx.data(), GradientMode::Overwrite);
    std::vector<double> yg(y.size()), dxg(x.size());
    const int64_t Ho = d.Ho(), Wo = d.Wo();
    for (int64_t n = 0; n < d.N; ++n)
      for (int64_t ch = 0; ch < d.C; ++ch) {
        const int64_t nc = n * d.C + ch;
        for (int64_t oh = 0; oh < Ho; ++oh)
          for (int64_t ow = 0; ow < Wo; ++ow)
            yg[size_t((nc * Ho + oh) * Wo + ow)] = kernels::dwconv_output_value(
                x.data() + nc * d.H * d.W, w.data() + ch * d.KH * d.KW, b[size_t(ch)], s, oh, ow);
        for (int64_t ih = 0; ih < d.H; ++ih)
          for (int64_t iw = 0; iw < d.W; ++iw)
            dxg[size_t((nc * d.H + ih) * d.W + iw)] =
                kernels::dwconv_input_grad_value(g.data() + nc * Ho * Wo, w.data() + ch * d.KH * d.KW, s, ih, iw);
      }
    // Same terms, possibly another association (the CPU scatter adds per tap): double round-off only.
    check_close("dwconv_output_value", yg, y, {d.N, d.C, Ho, Wo}, Tol::finite_diff());
    check_close("dwconv_input_grad_value", dxg, dx, {d.N, d.C, d.H, d.W}, Tol::finite_diff());
  }
  for (const Cfg& c : fd_cfgs()) {
    CAPTURE(c.str());
    Conv2dShape s = c.shape();
    if (s.pointwise()) continue;
    auto x = randn(c.nx(), ++seed);
    // im2col of (sample 1 or 0, last group) times an identity-like weight: compare
    // against the element form through one conv with a one-hot weight per row.
    const int64_t Cg = c.C / c.G, Kc = Cg * c.KH * c.KW, L = c.Ho() * c.Wo();
    const int64_t n = c.N - 1, g = c.G - 1;
    Cfg one{1, Cg, c.H, c.W, Kc, c.KH, c.KW, c.S, c.P, 1};
    std::vector<double> eye(size_t(Kc * Kc));
    for (int64_t r = 0; r < Kc; ++r) eye[size_t(r * Kc + r)] = 1;
    std::vector<double> xs(x.begin() + (n * c.C + g * Cg) * c.H * c.W,
                           x.begin() + (n * c.C + (g + 1) * Cg) * c.H * c.W);
    std::vector<double> cols = dense_fwd_d(one, xs, eye, nullptr), ref(size_t(Kc * L));
    for (int64_t r = 0; r < Kc; ++r)
      for (int64_t col = 0; col < L; ++col)
        ref[size_t(r * L + col)] = kernels::im2col_value(x.data() + (n * c.C + g * Cg) * c.H * c.W, s, r, col);
    check_close("im2col_value", cols, ref, {Kc, L}, Tol::exact());
  }
}

TEST_CASE("conv: a channel slice (narrow along dim 1) is read in place and its grad lands in the base") {
  clear_tape();
  const int64_t N = 2, C = 5, H = 7, W = 9;
  struct Case {
    const char* name;
    Shape wshape;
    ops::Conv2dParams p;
  };
  const Case cases[] = {{"pointwise", {7, C, 1, 1}, {1, 0, 1}},
                        {"depthwise k3 s1", {C, 1, 3, 3}, {1, 1, C}},
                        {"depthwise k5 s2", {C, 1, 5, 5}, {2, 2, C}},
                        {"dense 3x3 s2", {4, C, 3, 3}, {2, 1, 1}}};
  uint64_t seed = 2100;
  for (const Case& k : cases) {
    CAPTURE(k.name);
    Tensor base = tensor_of({N, 2 * C, H, W}, randn_f(N * 2 * C * H * W, ++seed));
    base.requires_grad_();
    Tensor w = tensor_of(k.wshape, randn_f(shape_numel(k.wshape), ++seed));
    w.requires_grad_();
    Tensor xs = base.narrow(1, C, C);  // second half: batch stride 2*C*H*W
    REQUIRE_FALSE(xs.is_contiguous());
    size_t tape0 = tape_size();
    Tensor y = ops::conv2d(xs, w, Tensor(), k.p);
    CHECK_MESSAGE(tape_size() == tape0 + 1, "conv2d copied its sliced input (an extra tape entry)");
    Tensor g = tensor_of(y.shape(), randn_f(y.numel(), ++seed));
    backward(dot_loss(y, g));

    Tensor xc = xs.clone();  // the same values, contiguous, no autograd link to base
    xc.requires_grad_();
    Tensor w2 = w.clone();
    w2.requires_grad_();
    Tensor yc = ops::conv2d(xc, w2, Tensor(), k.p);
    backward(dot_loss(yc, g));
    check_close("sliced output", to_double(y.to_vector()), to_double(yc.to_vector()), y.shape(), Tol::exact());
    check_close("sliced grad weight", to_double(w.grad().to_vector()), to_double(w2.grad().to_vector()), w.shape(),
                Tol::exact());
    std::vector<float> gb = base.grad().to_vector(), gx = xc.grad().to_vector();
    std::vector<double> first, second;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < C * H * W; ++i) {
        first.push_back(gb[size_t(n * 2 * C * H * W + i)]);
        second.push_back(gb[size_t(n * 2 * C * H * W + C * H * W + i)]);
      }
    check_close("base grad, untouched half", first, std::vector<double>(first.size(), 0.0), {N, C, H, W}, Tol::exact());
    check_close("base grad, sliced half", second, to_double(gx), {N, C, H, W}, Tol::exact());
  }
  // A slice that is not contiguous within a sample (narrow along W) is copied first and still correct.
  Tensor base = tensor_of({2, 3, 5, 8}, randn_f(2 * 3 * 5 * 8, 77));
  Tensor xs = base.narrow(3, 2, 5);
  Tensor w = tensor_of({3, 1, 3, 3}, randn_f(27, 78));
  Tensor y = ops::conv2d(xs, w, Tensor(), {1, 1, 3}), yc = ops::conv2d(xs.clone(), w, Tensor(), {1, 1, 3});
  check_close("narrow along W", to_double(y.to_vector()), to_double(yc.to_vector()), y.shape(), Tol::exact());
}

TEST_CASE("conv: gradients accumulate across backward passes; inputs without grad get none") {
  clear_tape();
  for (ops::Conv2dParams p : {ops::Conv2dParams{1, 1, 4}, ops::Conv2dParams{1, 0, 1}, ops::Conv2dParams{2, 1, 2}}) {
    Shape ws = p.groups == 4 ? Shape{4, 1, 3, 3} : p.padding == 0 ? Shape{6, 4, 1, 1} : Shape{6, 2, 3, 3};
    Tensor x = tensor_of({2, 4, 7, 7}, randn_f(2 * 4 * 49, 5));
    Tensor w = tensor_of(ws, randn_f(shape_numel(ws), 6));
    Tensor b = tensor_of({ws[0]}, randn_f(ws[0], 7));
    w.requires_grad_();
    b.requires_grad_();
    Tensor y = ops::conv2d(x, w, b, p);
    Tensor g = tensor_of(y.shape(), randn_f(y.numel(), 8));
    backward(dot_loss(y, g));
    std::vector<float> w1 = w.grad().to_vector(), b1 = b.grad().to_vector();
    backward(dot_loss(ops::conv2d(x, w, b, p), g));
    std::vector<double> w2 = to_double(w1), b2 = to_double(b1);
    for (auto& v : w2) v *= 2;
    for (auto& v : b2) v *= 2;
    check_close("weight grad after two passes", to_double(w.grad().to_vector()), w2, w.shape(), Tol::elementwise());
    check_close("bias grad after two passes", to_double(b.grad().to_vector()), b2, b.shape(), Tol::elementwise());
    CHECK_FALSE(x.grad().defined());
  }
  NoGradGuard ng;
  Tensor w = tensor_of({3, 1, 3, 3}, randn_f(27, 9));
  w.requires_grad_();
  ops::conv2d(Tensor::zeros({1, 3, 5, 5}), w, Tensor(), {1, 1, 3});
  CHECK(tape_size() == 0);
}

TEST_CASE("conv: NaN in the input reaches exactly the outputs whose window covers it") {
  NoGradGuard ng;
  for (ops::Conv2dParams p : {ops::Conv2dParams{1, 1, 3}, ops::Conv2dParams{2, 1, 1}}) {
    const int64_t H = 7, W = 7, ih = 3, iw = 4, cn = 1;
    Tensor x = tensor_of({2, 3, H, W}, randn_f(2 * 3 * H * W, 11));
    x.data()[(0 * 3 + cn) * H * W + ih * W + iw] = std::numeric_limits<float>::quiet_NaN();
    Shape ws = p.groups == 3 ? Shape{3, 1, 3, 3} : Shape{4, 3, 3, 3};
    Tensor y = ops::conv2d(x, tensor_of(ws, randn_f(shape_numel(ws), 12)), Tensor(), p);
    std::vector<float> yv = y.to_vector();
    const int64_t Co = y.size(1), Ho = y.size(2), Wo = y.size(3);
    int64_t wrong = 0;
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t o = 0; o < Co; ++o)
        for (int64_t oh = 0; oh < Ho; ++oh)
          for (int64_t ow = 0; ow < Wo; ++ow) {
            int64_t dh = ih - (oh * p.stride - p.padding), dw = iw - (ow * p.stride - p.padding);
            bool covers = n == 0 && (p.groups == 1 || o == cn) && dh >= 0 && dh < 3 && dw >= 0 && dw < 3;
            if (std::isnan(yv[size_t(((n * Co + o) * Ho + oh) * Wo + ow)]) != covers) wrong++;
          }
    CHECK_MESSAGE(wrong == 0, wrong, " outputs with the wrong NaN state (groups ", p.groups, ")");
  }
}

TEST_CASE("conv: bad input raises clear errors") {
  auto z = [](const Shape& s) { return Tensor::zeros(s); };
  CHECK_THROWS_WITH_AS(ops::conv2d(z({1, 3, 8, 8}), z({16, 4, 3, 3}), Tensor(), {}),
                       doctest::Contains("conv2d: input has 3 channels but weight [16, 4, 3, 3] expects 4 (groups 1)"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(z({1, 6, 8, 8}), z({6, 2, 3, 3}), Tensor(), {1, 1, 2}),
                       doctest::Contains("expects 4 (groups 2)"), Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(z({1, 3, 2, 2}), z({4, 3, 5, 5}), Tensor(), {}),
                       doctest::Contains("conv2d: kernel 5x5 larger than padded input 2x2"), Error);
  CHECK_NOTHROW(ops::conv2d(z({1, 3, 2, 2}), z({4, 3, 5, 5}), Tensor(), {1, 2, 1}));
  CHECK_THROWS_WITH_AS(ops::conv2d(z({0, 3, 4, 4}), z({4, 3, 3, 3}), Tensor(), {}),
                       doctest::Contains("conv2d: empty input [0, 3, 4, 4]"), Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(z({1, 3, 4, 4}), z({0, 3, 3, 3}), Tensor(), {}),
                       doctest::Contains("conv2d: empty weight [0, 3, 3, 3]"), Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(z({3, 4, 4}), z({4, 3, 3, 3}), Tensor(), {}),
                       doctest::Contains("conv2d: input must be 4-D (N,C,H,W), got [3, 4, 4]"), Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(z({1, 3, 4, 4}), z({4, 27}), Tensor(), {}),
                       doctest::Contains("conv2d: weight must be 4-D"), Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(z({1, 4, 4, 4}), z({6, 1, 3, 3}), Tensor(), {1, 1, 4}),
                       doctest::Contains("6 output channels, not divisible by groups 4"), Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(z({1, 3, 4, 4}), z({4, 3, 3, 3}), z({3}), {}),
                       doctest::Contains("conv2d: bias must have shape [4] for weight [4, 3, 3, 3], got [3]"), Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(z({1, 3, 4, 4}), z({4, 3, 3, 3}), Tensor(), {0, 1, 1}),
                       doctest::Contains("conv2d: stride must be >= 1, got 0"), Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(z({1, 3, 4, 4}), z({4, 3, 3, 3}), Tensor(), {1, -1, 1}),
                       doctest::Contains("conv2d: padding must be >= 0"), Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(z({1, 3, 4, 4}), z({4, 3, 3, 3}), Tensor(), {1, 1, 0}),
                       doctest::Contains("conv2d: groups must be >= 1"), Error);
  CHECK_THROWS_WITH_AS(ops::conv2d(Tensor(), z({4, 3, 3, 3}), Tensor(), {}),
                       doctest::Contains("conv2d: input is undefined"), Error);
  CHECK_THROWS_WITH_AS(ops::linear(z({2, 5}), z({3, 4}), Tensor()),
                       doctest::Contains("linear: input [2, 5] has 5 features but weight [3, 4] expects 4"), Error);
  CHECK_THROWS_WITH_AS(ops::linear(z({2, 4}), z({3, 4}), z({4})), doctest::Contains("linear: bias must have shape [3]"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::linear(z({0, 4}), z({3, 4}), Tensor()), doctest::Contains("linear: empty input [0, 4]"),
                       Error);
  CHECK_THROWS_WITH_AS(ops::linear(z({2, 4}), z({12}), Tensor()), doctest::Contains("linear: weight must be 2-D"),
                       Error);
}
