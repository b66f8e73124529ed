// BatchNorm2d tests ("norm:"): golden torch cases, a naive double loop, central
// differences through the double kernels (with a large mean offset), the
// recalibration average, autograd plumbing, odd shapes and bad input.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <vector>

#include "kernels/batchnorm.h"
#include "runtime/autograd.h"
#include "runtime/ops_elementwise.h"
#include "runtime/ops_norm.h"
#include "tests/golden.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::rt;
using namespace detnas::test;
namespace kc = detnas::kernels::cpu;

namespace {

// Test-local scalar op l = sum(u * y): lets backward() seed an arbitrary upstream
// gradient u into y.
Tensor weighted_sum(const Tensor& y, const std::vector<float>& u) {
  REQUIRE(int64_t(u.size()) == y.numel());
  return ops::sum(ops::mul(y, Tensor::from_vector(y.shape(), u)));
}

std::vector<double> vd(const Tensor& t) { return to_double(t.to_vector()); }

// Naive batch statistics in double: per channel mean, biased variance.
void naive_stats(int64_t N, int64_t C, int64_t HW, const std::vector<double>& x, std::vector<double>& mean,
                 std::vector<double>& var) {
  mean.assign(static_cast<size_t>(C), 0.0);
  var.assign(static_cast<size_t>(C), 0.0);
  const double n = double(N * HW);
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t b = 0; b < N; ++b)
      for (int64_t i = 0; i < HW; ++i) s += x[size_t((b * C + c) * HW + i)];
    const double m = s / n;
    double ss = 0;
    for (int64_t b = 0; b < N; ++b)
      for (int64_t i = 0; i < HW; ++i) {
        const double d = x[size_t((b * C + c) * HW + i)] - m;
        ss += d * d;
      }
    mean[size_t(c)] = m;
    var[size_t(c)] = ss / n;
  }
}

std::vector<double> naive_normalize(int64_t N, int64_t C, int64_t HW, const std::vector<double>& x,
                                    const std::vector<double>& mean, const std::vector<double>& var,
                                    const std::vector<double>& gamma, const std::vector<double>& beta, double eps) {
  std::vector<double> y(x.size());
  for (int64_t b = 0; b < N; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < HW; ++i) {
        const size_t k = size_t((b * C + c) * HW + i);
        y[k] = (x[k] - mean[size_t(c)]) / std::sqrt(var[size_t(c)] + eps) * gamma[size_t(c)] + beta[size_t(c)];
      }
  return y;
}

// Double forward through the kernels; returns y, writes running stats in place.
std::vector<double> kernel_forward(int64_t N, int64_t C, int64_t HW, const std::vector<double>& x,
                                   const std::vector<double>& gamma, const std::vector<double>& beta,
                                   kernels::BatchNormMode mode, std::vector<double>& rm, std::vector<double>& rv,
                                   std::vector<double>& save_mean, std::vector<double>& save_invstd) {
  std::vector<double> y(x.size());
  save_mean.assign(static_cast<size_t>(2 * C), 0.0);
  save_invstd.assign(static_cast<size_t>(C), 0.0);
  if (mode == kernels::BatchNormMode::Eval)
    kc::batchnorm_forward_eval(N, C, HW, x.data(), gamma.data(), beta.data(), rm.data(), rv.data(), 1e-5, y.data(),
                               save_mean.data(), save_invstd.data());
  else
    kc::batchnorm_forward_batch(N, C, HW, x.data(), gamma.data(), beta.data(), 1e-5, 0.1, y.data(), save_mean.data(),
                                save_invstd.data(), rm.data(), rv.data());
  return y;
}

// Central differences of sum(u * bn(x, gamma, beta)) against the double backward
// kernel, for x, gamma and beta. offset shifts x's mean (numerical stability).
void fd_check(int64_t N, int64_t C, int64_t H, int64_t W, kernels::BatchNormMode mode, double offset, uint64_t seed) {
  CAPTURE(N);
  CAPTURE(C);
  CAPTURE(H);
  CAPTURE(W);
  CAPTURE(offset);
  const int64_t HW = H * W, n = N * C * HW;
  std::vector<double> x = randn(n, seed, 1.5);
  for (auto& v : x) v += offset;
  std::vector<double> gamma = randn(C, seed + 1, 0.5), beta = randn(C, seed + 2);
  for (auto& g : gamma) g += 1.0;
  std::vector<double> u = randn(n, seed + 3);
  std::vector<double> rm0 = randn(C, seed + 4), rv0(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) rv0[size_t(c)] = 0.5 + 0.1 * double(c);
  auto f = [&](const std::vector<double>& xx, const std::vector<double>& gg, const std::vector<double>& bb) {
    std::vector<double> rm = rm0, rv = rv0, sm, si;
    return dot(u, kernel_forward(N, C, HW, xx, gg, bb, mode, rm, rv, sm, si));
  };
  std::vector<double> rm = rm0, rv = rv0, sm, si;
  kernel_forward(N, C, HW, x, gamma, beta, mode, rm, rv, sm, si);
  std::vector<double> dx(static_cast<size_t>(n), 7.0), dg(static_cast<size_t>(C)), db(static_cast<size_t>(C));
  kc::BatchNormGrads<double> g;
  g.dx = dx.data();
  g.dx_mode = GradientMode::Overwrite;
  g.dgamma = dg.data();
  g.dgamma_mode = GradientMode::Overwrite;
  g.dbeta = db.data();
  g.dbeta_mode = GradientMode::Overwrite;
  kc::batchnorm_backward(N, C, HW, x.data(), u.data(), gamma.data(), sm.data(), si.data(), mode, g);
  // A large offset costs digits in the finite difference itself (x + h is rounded
  // at |x| ~ 1e3), so the step grows with the offset; the bound stays finite_diff.
  const double h = std::fabs(offset) > 100 ? 1e-5 : 1e-6;
  check_close("bn dx vs central differences", dx,
              numeric_grad([&](const std::vector<double>& xx) { return f(xx, gamma, beta); }, x, h), {N, C, H, W},
              Tol::finite_diff());
  check_close("bn dgamma vs central differences", dg,
              numeric_grad([&](const std::vector<double>& gg) { return f(x, gg, beta); }, gamma), {C},
              Tol::finite_diff());
  check_close("bn dbeta vs central differences", db,
              numeric_grad([&](const std::vector<double>& bb) { return f(x, gamma, bb); }, beta), {C},
              Tol::finite_diff());
  // Accumulate adds exactly the overwrite result.
  std::vector<double> dx2 = dx, dg2 = dg, db2 = db;
  g.dx = dx2.data();
  g.dgamma = dg2.data();
  g.dbeta = db2.data();
  g.dx_mode = g.dgamma_mode = g.dbeta_mode = GradientMode::Accumulate;
  kc::batchnorm_backward(N, C, HW, x.data(), u.data(), gamma.data(), sm.data(), si.data(), mode, g);
  std::vector<double> twice(dx.size());
  for (size_t i = 0; i < dx.size(); ++i) twice[i] = 2 * dx[i];
  check_close("bn dx accumulate", dx2, twice, {N, C, H, W}, Tol::exact());
}

}  // namespace

DETNAS_GOLDEN_OP("batch_norm2d_train") {
  const GoldenTensor& xin = c.in("input");
  const int64_t C = xin.shape.at(1);
  ops::BatchNormParams p;
  if (c.has_param("eps")) p.eps = c.num("eps");
  if (c.has_param("momentum")) p.momentum = c.num("momentum");
  Tensor x = Tensor::from_vector(xin.shape, xin.as_float());
  Tensor gamma = Tensor::from_vector({C}, c.in("weight").as_float());
  Tensor beta = Tensor::from_vector({C}, c.in("bias").as_float());
  Tensor rm = Tensor::from_vector({C}, c.in("running_mean").as_float());
  Tensor rv = Tensor::from_vector({C}, c.in("running_var").as_float());
  x.requires_grad_();
  gamma.requires_grad_();
  beta.requires_grad_();
  Tensor y = ops::batch_norm(x, gamma, beta, rm, rv, ops::BatchNormMode::Train, p);
  check_golden_forward(c, "output", y.to_vector(), c.out("output"));
  check_golden_forward(c, "running_mean", rm.to_vector(), c.out("running_mean"));
  check_golden_forward(c, "running_var", rv.to_vector(), c.out("running_var"));
  if (c.upstream_grads.count("output")) {
    backward(weighted_sum(y, c.upstream("output").as_float()));
    check_golden_grad(c, "grad input", x.grad().to_vector(), c.grad("input"));
    check_golden_grad(c, "grad weight", gamma.grad().to_vector(), c.grad("weight"));
    check_golden_grad(c, "grad bias", beta.grad().to_vector(), c.grad("bias"));
  }
  clear_tape();
}

TEST_CASE("norm: train forward and running update match a naive double loop") {
  for (auto [N, C, H, W] :
       std::vector<std::array<int64_t, 4>>{{2, 3, 7, 5}, {1, 1, 1, 2}, {2, 15, 1, 1}, {3, 1, 17, 7}, {1, 3, 17, 17}}) {
    CAPTURE(N);
    CAPTURE(C);
    CAPTURE(H);
    CAPTURE(W);
    const int64_t HW = H * W, n = N * C * HW;
    std::vector<float> xf = randn_f(n, 11 + n, 2.0), gf = randn_f(C, 12), bf = randn_f(C, 13);
    for (auto& v : xf) v += 3.0f;
    std::vector<float> rmf = randn_f(C, 14), rvf(static_cast<size_t>(C), 0.75f);
    Tensor x = Tensor::from_vector({N, C, H, W}, xf), gamma = Tensor::from_vector({C}, gf),
           beta = Tensor::from_vector({C}, bf), rm = Tensor::from_vector({C}, rmf), rv = Tensor::from_vector({C}, rvf);
    ops::BatchNormParams p;
    p.momentum = 0.25;
    Tensor y = ops::batch_norm(x, gamma, beta, rm, rv, ops::BatchNormMode::Train, p);
    std::vector<double> mean, var;
    naive_stats(N, C, HW, to_double(xf), mean, var);
    std::vector<double> ref = naive_normalize(N, C, HW, to_double(xf), mean, var, to_double(gf), to_double(bf), 1e-5);
    check_close("train output", vd(y), ref, {N, C, H, W}, Tol::elementwise());
    std::vector<double> rm_ref(static_cast<size_t>(C)), rv_ref(static_cast<size_t>(C));
    const double cnt = double(N * HW);
    for (int64_t c = 0; c < C; ++c) {
      rm_ref[size_t(c)] = 0.75 * rmf[size_t(c)] + 0.25 * mean[size_t(c)];
      rv_ref[size_t(c)] = 0.75 * rvf[size_t(c)] + 0.25 * var[size_t(c)] * cnt / (cnt - 1);
    }
    check_close("running_mean", vd(rm), rm_ref, {C}, Tol::elementwise());
    check_close("running_var", vd(rv), rv_ref, {C}, Tol::elementwise());
  }
}

TEST_CASE("norm: eval uses the running statistics and updates nothing") {
  const int64_t N = 2, C = 3, H = 7, W = 1, HW = H * W;
  std::vector<float> xf = randn_f(N * C * HW, 21), gf = {1.5f, -0.5f, 2.0f}, bf = {0.1f, 0.2f, -0.3f};
  std::vector<float> rmf = {0.3f, -1.0f, 2.0f}, rvf = {0.5f, 2.0f, 1.25f};
  Tensor x = Tensor::from_vector({N, C, H, W}, xf), gamma = Tensor::from_vector({C}, gf),
         beta = Tensor::from_vector({C}, bf), rm = Tensor::from_vector({C}, rmf), rv = Tensor::from_vector({C}, rvf);
  Tensor y = ops::batch_norm(x, gamma, beta, rm, rv, ops::BatchNormMode::Eval);
  std::vector<double> ref =
      naive_normalize(N, C, HW, to_double(xf), to_double(rmf), to_double(rvf), to_double(gf), to_double(bf), 1e-5);
  check_close("eval output", vd(y), ref, {N, C, H, W}, Tol::elementwise());
  CHECK(rm.to_vector() == rmf);
  CHECK(rv.to_vector() == rvf);
  // Eval works with a single value per channel.
  Tensor x1 = Tensor::from_vector({1, C, 1, 1}, {1.f, 2.f, 3.f});
  Tensor y1 = ops::batch_norm(x1, gamma, beta, rm, rv, ops::BatchNormMode::Eval);
  CHECK(std::fabs(y1.to_vector()[0] - float((1.0 - 0.3) / std::sqrt(0.5 + 1e-5) * 1.5 + 0.1)) < 1e-6);
}

TEST_CASE("norm: backward matches central differences in double (train, recalibrate, eval; large mean offset)") {
  using M = kernels::BatchNormMode;
  fd_check(2, 3, 4, 5, M::Train, 0.0, 101);
  fd_check(2, 3, 4, 5, M::Train, 1000.0, 102);  // mean >> spread
  fd_check(4, 2, 3, 3, M::Train, -250.0, 103);
  fd_check(2, 1, 1, 1, M::Train, 0.0, 104);   // N*H*W = 2
  fd_check(1, 15, 1, 2, M::Train, 5.0, 105);  // N*H*W = 2
  fd_check(1, 3, 7, 17, M::Train, 0.0, 106);
  fd_check(2, 3, 4, 5, M::Recalibrate, 50.0, 107);
  fd_check(2, 3, 4, 5, M::Eval, 0.0, 108);
  fd_check(1, 1, 1, 1, M::Eval, 2.0, 109);
}

TEST_CASE("norm: float train with a large mean offset keeps the double-kernel accuracy") {
  // mean 1e4, spread 1: a float mean would shift x - mean by up to 5e-4.
  const int64_t N = 2, C = 2, H = 6, W = 6, HW = H * W, n = N * C * HW;
  std::vector<float> xf = randn_f(n, 31);
  for (auto& v : xf) v += 1.0e4f;
  std::vector<float> u = randn_f(n, 32);
  Tensor x = Tensor::from_vector({N, C, H, W}, xf), gamma = Tensor::full({C}, 1.0f), beta = Tensor::zeros({C});
  Tensor rm = Tensor::zeros({C}), rv = Tensor::full({C}, 1.0f);
  x.requires_grad_();
  gamma.requires_grad_();
  Tensor y = ops::batch_norm(x, gamma, beta, rm, rv, ops::BatchNormMode::Train);
  backward(weighted_sum(y, u));
  std::vector<double> xd = to_double(xf), g1(static_cast<size_t>(C), 1.0), b0(static_cast<size_t>(C), 0.0),
                      rmd(static_cast<size_t>(C), 0.0), rvd(static_cast<size_t>(C), 1.0), sm, si;
  std::vector<double> yd = kernel_forward(N, C, HW, xd, g1, b0, kernels::BatchNormMode::Train, rmd, rvd, sm, si);
  std::vector<double> dx(static_cast<size_t>(n)), dg(static_cast<size_t>(C));
  kc::BatchNormGrads<double> g;
  g.dx = dx.data();
  g.dx_mode = GradientMode::Overwrite;
  g.dgamma = dg.data();
  g.dgamma_mode = GradientMode::Overwrite;
  std::vector<double> ud = to_double(u);
  kc::batchnorm_backward(N, C, HW, xd.data(), ud.data(), g1.data(), sm.data(), si.data(), kernels::BatchNormMode::Train,
                         g);
  check_close("offset output", vd(y), yd, {N, C, H, W}, Tol::elementwise());
  check_close("offset dx", vd(x.grad()), dx, {N, C, H, W}, Tol::golden_grad(max_abs(dx)));
  check_close("offset dgamma", vd(gamma.grad()), dg, {C}, Tol::golden_grad(max_abs(dg)));
  check_close("offset running_mean", vd(rm), std::vector<double>(rmd), {C}, Tol::elementwise());
}

TEST_CASE("norm: recalibration gives the exact average of batch means and unbiased variances") {
  const int64_t N = 2, C = 3, H = 5, W = 3, HW = H * W, n = N * C * HW;
  Tensor gamma = Tensor::full({C}, 1.0f), beta = Tensor::zeros({C});
  Tensor rm = Tensor::from_vector({C}, {5.f, 6.f, 7.f}), rv = Tensor::from_vector({C}, {9.f, 9.f, 9.f});
  int64_t batches = 17;
  ops::reset_running_stats(rm, rv, &batches);
  CHECK(batches == 0);
  CHECK(rm.to_vector() == std::vector<float>(static_cast<size_t>(C), 0.f));
  CHECK(rv.to_vector() == std::vector<float>(static_cast<size_t>(C), 1.f));
  const int K = 5;
  std::vector<double> sum_mean(static_cast<size_t>(C), 0.0), sum_var(static_cast<size_t>(C), 0.0);
  NoGradGuard ng;
  for (int k = 0; k < K; ++k) {
    std::vector<float> xf = randn_f(n, 40 + uint64_t(k), 1.0 + k);
    for (auto& v : xf) v += float(k) - 2.0f;
    Tensor x = Tensor::from_vector({N, C, H, W}, xf);
    Tensor y = ops::batch_norm(x, gamma, beta, rm, rv, ops::BatchNormMode::Recalibrate, {}, &batches);
    CHECK(batches == k + 1);
    std::vector<double> mean, var;
    naive_stats(N, C, HW, to_double(xf), mean, var);
    // Normalised with the batch statistics, like train mode.
    check_close("recalibrate output", vd(y),
                naive_normalize(N, C, HW, to_double(xf), mean, var, std::vector<double>(static_cast<size_t>(C), 1.0),
                                std::vector<double>(static_cast<size_t>(C), 0.0), 1e-5),
                {N, C, H, W}, Tol::elementwise());
    for (int64_t c = 0; c < C; ++c) {
      sum_mean[size_t(c)] += mean[size_t(c)];
      sum_var[size_t(c)] += var[size_t(c)] * double(N * HW) / double(N * HW - 1);
    }
    std::vector<double> avg_m(static_cast<size_t>(C)), avg_v(static_cast<size_t>(C));
    for (int64_t c = 0; c < C; ++c) {
      avg_m[size_t(c)] = sum_mean[size_t(c)] / (k + 1);
      avg_v[size_t(c)] = sum_var[size_t(c)] / (k + 1);
    }
    // Each step rounds the running value to float once: elementwise bound.
    check_close("recalibrated running_mean", vd(rm), avg_m, {C}, Tol::elementwise());
    check_close("recalibrated running_var", vd(rv), avg_v, {C}, Tol::elementwise());
  }
  CHECK(tape_size() == 0);
  // A second reset starts a new average.
  ops::reset_running_stats(rm, rv, &batches);
  CHECK(batches == 0);
  Tensor x = Tensor::from_vector({1, C, 1, 2}, {1.f, 3.f, -2.f, 2.f, 10.f, 10.f});
  ops::batch_norm(x, gamma, beta, rm, rv, ops::BatchNormMode::Recalibrate, {}, &batches);
  CHECK(rm.to_vector() == std::vector<float>{2.f, 0.f, 10.f});
  CHECK(rv.to_vector() == std::vector<float>{2.f, 8.f, 0.f});
}

TEST_CASE("norm: op gradients equal the kernel's, accumulate on a second backward, skip running stats") {
  const int64_t N = 3, C = 15, H = 1, W = 7, HW = H * W, n = N * C * HW;
  std::vector<float> xf = randn_f(n, 51, 3.0), u = randn_f(n, 52);
  Tensor x = Tensor::from_vector({N, C, H, W}, xf), gamma = Tensor::from_vector({C}, randn_f(C, 53)),
         beta = Tensor::from_vector({C}, randn_f(C, 54)), rm = Tensor::zeros({C}), rv = Tensor::full({C}, 1.0f);
  x.requires_grad_();
  gamma.requires_grad_();
  beta.requires_grad_();
  auto run = [&](ops::BatchNormMode mode) {
    int64_t cnt = 0;
    backward(weighted_sum(ops::batch_norm(x, gamma, beta, rm, rv, mode, {}, &cnt), u));
  };
  run(ops::BatchNormMode::Train);
  CHECK_FALSE(rm.requires_grad());
  CHECK_FALSE(rm.grad().defined());
  std::vector<float> gx = x.grad().to_vector(), gg = gamma.grad().to_vector(), gb = beta.grad().to_vector();
  // Recalibrate differentiates through the batch statistics exactly as Train.
  x.reset_grad();
  gamma.reset_grad();
  beta.reset_grad();
  run(ops::BatchNormMode::Recalibrate);
  CHECK(x.grad().to_vector() == gx);
  CHECK(gamma.grad().to_vector() == gg);
  run(ops::BatchNormMode::Train);
  std::vector<double> twice(gx.size());
  for (size_t i = 0; i < gx.size(); ++i) twice[i] = 2.0 * gx[i];
  check_close("accumulated dx", vd(x.grad()), twice, {N, C, H, W}, Tol::elementwise());
  // dbeta = sum of u per channel.
  std::vector<double> db(static_cast<size_t>(C), 0.0);
  for (int64_t b = 0; b < N; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < HW; ++i) db[size_t(c)] += u[size_t((b * C + c) * HW + i)];
  check_close("dbeta", to_double(gb), db, {C}, Tol::reduction(N * HW, max_abs(db)));
  // Only gamma requires grad: x gets none, gamma still does.
  Tensor x2 = Tensor::from_vector({N, C, H, W}, xf);
  gamma.reset_grad();
  backward(weighted_sum(ops::batch_norm(x2, gamma, beta, rm, rv, ops::BatchNormMode::Train), u));
  CHECK_FALSE(x2.grad().defined());
  CHECK(gamma.grad().defined());
}

TEST_CASE("norm: non-contiguous running statistics are updated in place") {
  const int64_t C = 3;
  Tensor rmv = Tensor::zeros({C, 2}), rvv = Tensor::full({C, 2}, 1.0f);
  // Every other element of a (C,2) buffer (as a checkpoint loader might hand over).
  Tensor rm_strided = make_view(rmv, {C}, {2}, 0), rv_strided = make_view(rvv, {C}, {2}, 1);
  CHECK_FALSE(rm_strided.is_contiguous());
  Tensor x = Tensor::from_vector({1, C, 1, 2}, {1.f, 3.f, -2.f, 2.f, 10.f, 10.f});
  ops::batch_norm(x, Tensor::full({C}, 1.f), Tensor::zeros({C}), rm_strided, rv_strided, ops::BatchNormMode::Train);
  CHECK(rmv.to_vector() == std::vector<float>{0.2f, 0.f, 0.f, 0.f, 1.0f, 0.f});
  std::vector<float> rvvals = rvv.to_vector();
  CHECK(rvvals[0] == 1.f);
  CHECK(rvvals[1] == doctest::Approx(0.9 + 0.1 * 2.0));
  CHECK(rvvals[3] == doctest::Approx(0.9 + 0.1 * 8.0));
  CHECK(rvvals[5] == doctest::Approx(0.9));
}

TEST_CASE("norm: bad input raises clear errors") {
  Tensor g3 = Tensor::full({3}, 1.f), b3 = Tensor::zeros({3}), rm = Tensor::zeros({3}), rv = Tensor::full({3}, 1.f);
  using M = ops::BatchNormMode;
  CHECK_THROWS_WITH_AS(ops::batch_norm(Tensor::zeros({1, 3, 1, 1}), g3, b3, rm, rv, M::Train),
                       doctest::Contains("more than one value per channel"), Error);
  CHECK_THROWS_WITH_AS(ops::batch_norm(Tensor::zeros({1, 3, 1, 1}), g3, b3, rm, rv, M::Train),
                       doctest::Contains("[1, 3, 1, 1]"), Error);
  CHECK_THROWS_WITH_AS(ops::batch_norm(Tensor::zeros({0, 3, 2, 2}), g3, b3, rm, rv, M::Train),
                       doctest::Contains("batch_norm: empty input [0, 3, 2, 2]"), Error);
  CHECK_THROWS_WITH_AS(ops::batch_norm(Tensor::zeros({2, 4, 2, 2}), g3, b3, rm, rv, M::Train),
                       doctest::Contains("weight (gamma) has shape [3], expected [4] for input [2, 4, 2, 2]"), Error);
  Tensor rv4 = Tensor::zeros({4});
  CHECK_THROWS_WITH_AS(ops::batch_norm(Tensor::zeros({2, 3, 2, 2}), g3, b3, rm, rv4, M::Eval),
                       doctest::Contains("running_var has shape [4]"), Error);
  CHECK_THROWS_WITH_AS(ops::batch_norm(Tensor::zeros({2, 3, 4}), g3, b3, rm, rv, M::Train),
                       doctest::Contains("expected an (N,C,H,W) input, got shape [2, 3, 4]"), Error);
  CHECK_THROWS_WITH_AS(ops::batch_norm(Tensor::zeros({2, 3, 2, 2}), g3, b3, rm, rv, M::Recalibrate),
                       doctest::Contains("batch counter"), Error);
  CHECK_THROWS_WITH_AS(ops::batch_norm(Tensor(), g3, b3, rm, rv, M::Train), doctest::Contains("input is undefined"),
                       Error);
  // NaN input propagates (no silent repair) and still updates the statistics with NaN.
  Tensor xn = Tensor::from_vector({1, 3, 1, 2}, {NAN, 1.f, 2.f, 3.f, 4.f, 5.f});
  Tensor y = ops::batch_norm(xn, g3, b3, rm, rv, M::Train);
  CHECK(std::isnan(y.to_vector()[0]));
  CHECK(std::isnan(rm.to_vector()[0]));
  CHECK_FALSE(std::isnan(y.to_vector()[2]));
}

TEST_CASE("norm: sizes above the OpenMP threshold give the same results as the naive loop") {
  const int64_t N = 4, C = 32, H = 17, W = 17, HW = H * W, n = N * C * HW;
  std::vector<float> xf = randn_f(n, 61, 2.0), gf = randn_f(C, 62), bf = randn_f(C, 63);
  Tensor x = Tensor::from_vector({N, C, H, W}, xf), gamma = Tensor::from_vector({C}, gf),
         beta = Tensor::from_vector({C}, bf), rm = Tensor::zeros({C}), rv = Tensor::full({C}, 1.0f);
  Tensor y = ops::batch_norm(x, gamma, beta, rm, rv, ops::BatchNormMode::Train);
  std::vector<double> mean, var;
  naive_stats(N, C, HW, to_double(xf), mean, var);
  check_close("large train output", vd(y),
              naive_normalize(N, C, HW, to_double(xf), mean, var, to_double(gf), to_double(bf), 1e-5), {N, C, H, W},
              Tol::elementwise());
  Tensor ye = ops::batch_norm(x, gamma, beta, rm, rv, ops::BatchNormMode::Eval);
  std::vector<double> rmd = vd(rm), rvd = vd(rv);
  check_close("large eval output", vd(ye),
              naive_normalize(N, C, HW, to_double(xf), rmd, rvd, to_double(gf), to_double(bf), 1e-5), {N, C, H, W},
              Tol::elementwise());
}
