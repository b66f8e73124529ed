// Inference form of conv -> BN -> ReLU ("bn fold:"): rt::ops::fold_batch_norm
// against a double-precision conv + BN computed here, the nn modules' folded
// forward (Eval, autograd off) against their three-op forward, the modes that
// must not fold, relu_ and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "nn/blocks.h"
#include "nn/layers.h"
#include "runtime/autograd.h"
#include "runtime/ops_conv.h"
#include "runtime/ops_elementwise.h"
#include "runtime/ops_norm.h"
#include "runtime/rng.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::test;
using detnas::rt::Tensor;

namespace {

std::vector<float> randn(size_t n, Rng& rng, double scale, double offset = 0) {
  std::vector<float> v(n);
  for (float& x : v) x = float(offset + scale * rng.normal());
  return v;
}

struct ConvCase {
  int64_t N, C, H, W, Cout, K, S, P, G;
  bool bias;
};

// BN(conv(x, w) + b) in double from the float inputs, and the largest sum of
// |terms| of any output (the scale of its float rounding).
std::vector<double> reference(const ConvCase& c, const std::vector<float>& x, const std::vector<float>& w,
                              const std::vector<float>& b, const std::vector<float>& gamma,
                              const std::vector<float>& beta, const std::vector<float>& mean,
                              const std::vector<float>& var, double eps, double* scale) {
  const int64_t Ho = (c.H + 2 * c.P - c.K) / c.S + 1, Wo = (c.W + 2 * c.P - c.K) / c.S + 1;
  const int64_t Cg = c.C / c.G, Og = c.Cout / c.G;
  std::vector<double> y(size_t(c.N * c.Cout * Ho * Wo));
  *scale = 0;
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t o = 0; o < c.Cout; ++o) {
      const double s = double(gamma[size_t(o)]) / std::sqrt(double(var[size_t(o)]) + eps);
      for (int64_t i = 0; i < Ho; ++i)
        for (int64_t j = 0; j < Wo; ++j) {
          double acc = c.bias ? double(b[size_t(o)]) : 0.0, mag = std::fabs(acc);
          for (int64_t ci = 0; ci < Cg; ++ci)
            for (int64_t ki = 0; ki < c.K; ++ki)
              for (int64_t kj = 0; kj < c.K; ++kj) {
                const int64_t yy = i * c.S - c.P + ki, xx = j * c.S - c.P + kj;
                if (yy < 0 || yy >= c.H || xx < 0 || xx >= c.W) continue;
                const int64_t cin = (o / Og) * Cg + ci;
                const double t = double(w[size_t(((o * Cg + ci) * c.K + ki) * c.K + kj)]) *
                                 double(x[size_t(((n * c.C + cin) * c.H + yy) * c.W + xx)]);
                acc += t;
                mag += std::fabs(t);
              }
          y[size_t(((n * c.Cout + o) * Ho + i) * Wo + j)] =
              (acc - double(mean[size_t(o)])) * s + double(beta[size_t(o)]);
          *scale = std::max(
              *scale, (mag + std::fabs(double(mean[size_t(o)]))) * std::fabs(s) + std::fabs(double(beta[size_t(o)])));
        }
    }
  return y;
}

}  // namespace

TEST_CASE("bn fold: the folded conv equals conv -> BN (eval) computed in double") {
  const std::vector<ConvCase> cases = {
      {2, 4, 7, 6, 5, 3, 1, 1, 1, true},   // 3x3 with a conv bias (im2col + GEMM)
      {2, 6, 9, 9, 6, 3, 2, 1, 6, false},  // depthwise, stride 2
      {3, 8, 5, 4, 3, 1, 1, 0, 1, false},  // pointwise (GEMM only)
      {1, 4, 6, 6, 4, 5, 1, 2, 2, true},   // grouped 5x5
  };
  Rng rng(41);
  for (const ConvCase& c : cases) {
    CAPTURE(c.C);
    CAPTURE(c.K);
    CAPTURE(c.G);
    const int64_t Cg = c.C / c.G;
    const auto x = randn(size_t(c.N * c.C * c.H * c.W), rng, 1.0, 0.5);
    const auto w = randn(size_t(c.Cout * Cg * c.K * c.K), rng, 0.3);
    const auto b = randn(size_t(c.Cout), rng, 0.2);
    const auto gamma = randn(size_t(c.Cout), rng, 0.5, 1.0), beta = randn(size_t(c.Cout), rng, 0.3);
    const auto mean = randn(size_t(c.Cout), rng, 0.5);
    std::vector<float> var = randn(size_t(c.Cout), rng, 0.5);
    for (float& v : var) v = v * v + 0.05f;
    const double eps = 1e-5;
    double scale = 0;
    const std::vector<double> ref = reference(c, x, w, b, gamma, beta, mean, var, eps, &scale);

    const Tensor X = Tensor::from_vector({c.N, c.C, c.H, c.W}, x), Wt = Tensor::from_vector({c.Cout, Cg, c.K, c.K}, w);
    const Tensor B = c.bias ? Tensor::from_vector({c.Cout}, b) : Tensor();
    const Tensor G = Tensor::from_vector({c.Cout}, gamma), Be = Tensor::from_vector({c.Cout}, beta);
    const Tensor M = Tensor::from_vector({c.Cout}, mean), V = Tensor::from_vector({c.Cout}, var);
    rt::ops::Conv2dParams p{c.S, c.P, c.G};
    rt::NoGradGuard ng;
    const auto [wf, bf] = rt::ops::fold_batch_norm(Wt, B, G, Be, M, V, eps);
    CHECK(!wf.requires_grad());
    const Tensor folded = rt::ops::conv2d(X, wf, bf, p);
    Tensor mv = M.clone(), vv = V.clone();
    const Tensor three = rt::ops::batch_norm(rt::ops::conv2d(X, Wt, B, p), G, Be, mv, vv, rt::ops::BatchNormMode::Eval,
                                             rt::ops::BatchNormParams{eps});
    // Both are float sums of Cg*K*K products of the folded or unfolded terms; the
    // bound is the reduction policy at the scale of the largest sum of |terms|.
    const Tol tol = Tol::reduction(Cg * c.K * c.K + 2, scale);
    CHECK(check_close("folded", to_double(folded.to_vector()), ref, folded.shape(), tol));
    CHECK(check_close("conv then BN", to_double(three.to_vector()), ref, three.shape(), tol));
  }
}

TEST_CASE("bn fold: ConvBn and Branch fold only in Eval with autograd off, equal to the three ops") {
  Rng rng(3);
  nn::ConvOptions o;
  o.in = 8;
  o.out = 8;
  o.kernel = 3;
  nn::ConvBn unit(o, nn::Act::Relu, rng);
  nn::Branch branch({{"pw1", "bn1", {8, 16, 1, 1, 0, 1}, nn::Act::Relu},
                     {"dw", "bn2", {16, 16, 3, 1, 1, 16}, nn::Act::None},
                     {"pw2", "bn3", {16, 8, 1, 1, 0, 1}, nn::Act::Relu}},
                    rng, 0.1f);
  // Non-trivial running statistics and affine parameters.
  for (nn::Module* m : {static_cast<nn::Module*>(&unit), static_cast<nn::Module*>(&branch)})
    for (auto& b : m->buffers()) {
      auto v = randn(size_t(b.tensor.numel()), rng, 0.3, 0.0);
      if (b.name.find("running_var") != std::string::npos)
        for (float& e : v) e = e * e + 0.1f;
      b.tensor.copy_from(Tensor::from_vector(b.tensor.shape(), v));
    }
  const Tensor x = Tensor::from_vector({2, 8, 6, 5}, randn(2 * 8 * 6 * 5, rng, 1.0, 0.2));
  for (nn::Module* m : {static_cast<nn::Module*>(&unit), static_cast<nn::Module*>(&branch)}) {
    auto run = [&](const Tensor& in) { return m == &unit ? unit.forward(in) : branch.forward(in); };
    m->set_mode(nn::Mode::Eval);
    const Tensor with_grad = run(x);  // autograd on: conv, BN and ReLU ops
    Tensor folded;
    {
      rt::NoGradGuard ng;
      folded = run(x);
    }
    // Float rounding of two orders of the same sums (K <= 9 * 16 terms per output).
    CHECK(same("folded vs three ops", folded.to_vector(), with_grad.to_vector(), Tol{2e-5, 2e-5}));
    // Train mode under NoGrad must still use (and update) batch statistics.
    m->set_mode(nn::Mode::Train);
    std::vector<float> before;
    for (auto& b : m->buffers()) {
      auto v = b.tensor.to_vector();
      before.insert(before.end(), v.begin(), v.end());
    }
    {
      rt::NoGradGuard ng;
      run(x);
    }
    std::vector<float> after;
    for (auto& b : m->buffers()) {
      auto v = b.tensor.to_vector();
      after.insert(after.end(), v.begin(), v.end());
    }
    CHECK(before != after);
  }
}

TEST_CASE("bn fold: relu_ works in place and refuses tensors in an autograd graph; bad fold input") {
  Tensor t = Tensor::from_vector({4}, {-1.0f, 2.0f, -0.0f, 3.5f});
  const float* p = t.data();
  rt::ops::relu_(t);
  CHECK(t.data() == p);
  CHECK(t.to_vector() == std::vector<float>{0.0f, 2.0f, 0.0f, 3.5f});
  Tensor g = Tensor::from_vector({2}, {1.0f, -1.0f});
  g.requires_grad_(true);
  CHECK_THROWS_WITH_AS(rt::ops::relu_(g), doctest::Contains("requires grad"), Error);
  const Tensor w = Tensor::zeros({3, 2, 1, 1}), v3 = Tensor::full({3}, 1.0f), v2 = Tensor::full({2}, 1.0f);
  CHECK_THROWS_WITH_AS(rt::ops::fold_batch_norm(w, Tensor(), v3, v2, v3, v3, 1e-5), doctest::Contains("[3]"), Error);
  CHECK_THROWS_WITH_AS(rt::ops::fold_batch_norm(w, v2, v3, v3, v3, v3, 1e-5), doctest::Contains("conv bias"), Error);
  CHECK_THROWS_WITH_AS(rt::ops::fold_batch_norm(w, Tensor(), v3, v3, v3, v3, 0.0), doctest::Contains("eps"), Error);
}
