// Loss kernels and ops: golden cases (focal, smooth L1, GIoU), naive double loops,
// central differences in double through the templated kernels, numerical
// stability at extreme logits, reductions, autograd wiring and bad input.
#include <doctest/doctest.h>
#include <omp.h>

#include <cmath>

#include "kernels/loss.h"
#include "runtime/autograd.h"
#include "runtime/ops_elementwise.h"
#include "runtime/ops_loss.h"
#include "tests/golden.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::rt;
using namespace detnas::test;
namespace kc = detnas::kernels::cpu;
using kernels::LossGrad;

namespace {

std::vector<double> dvec(int64_t n, double fill = 0.0) { return std::vector<double>(static_cast<size_t>(n), fill); }
Tensor from_golden(const GoldenTensor& g) { return Tensor::from_vector(g.shape, g.as_float()); }
Tensor tensor(const Shape& s, const std::vector<double>& v) {
  return Tensor::from_vector(s, std::vector<float>(v.begin(), v.end()));
}

Reduction parse_reduction(const std::string& s) {
  if (s == "none") return Reduction::None;
  if (s == "mean") return Reduction::Mean;
  REQUIRE_MESSAGE(s == "sum", "unknown reduction '" << s << "'");
  return Reduction::Sum;
}

// sum(w * y) with its backward: a test-only op that stands for the golden
// files' d(sum(upstream * output)) / d(input).
Tensor weighted_sum(const Tensor& y, const Tensor& w) {
  REQUIRE(y.numel() == w.numel());
  std::vector<float> yv = y.to_vector(), wv = w.to_vector();
  double s = 0;
  for (size_t i = 0; i < yv.size(); ++i) s += double(yv[i]) * wv[i];
  Tensor out = Tensor::scalar(float(s));
  if (wants_grad({&y})) {
    record({&out}, [y, out, wv]() {
      Tensor g = out.grad();
      if (!g.defined()) return;
      GradSlot slot = grad_slot(y);
      for (size_t i = 0; i < wv.size(); ++i) kernels::write_grad(slot.ptr + i, g.item() * wv[i], slot.mode);
    });
  }
  return out;
}

// Loss output check: per-element values with the forward tolerance, a reduced
// loss with the gradient/reduced-loss tolerance (README).
void check_loss_output(const GoldenCase& c, const Tensor& y, Reduction r) {
  const GoldenTensor& ref = c.out("loss");
  CHECK(y.shape() == Shape(ref.shape));
  if (r == Reduction::None)
    check_golden_forward(c, "loss", y.to_vector(), ref);
  else
    check_golden_grad(c, "loss", y.to_vector(), ref);
}

// Random values with |v| in [lo, hi) and random sign.
std::vector<double> away_from_zero(int64_t n, uint64_t seed, double lo, double hi) {
  std::vector<double> u = randn(n, seed), v = dvec(n);
  for (size_t i = 0; i < v.size(); ++i) {
    double m = lo + (hi - lo) * (0.5 + 0.5 * std::tanh(u[i]));
    v[i] = (i % 3 == 1) ? -m : m;
  }
  return v;
}

std::vector<double> random_01(int64_t n, uint64_t seed) {
  std::vector<double> u = randn(n, seed), v = dvec(n);
  for (size_t i = 0; i < v.size(); ++i) v[i] = u[i] > 0.6 ? 1.0 : 0.0;
  return v;
}

// Overlapping box pairs without equal coordinates (no max/min ties).
void overlapping_boxes(int64_t N, uint64_t seed, std::vector<double>& a, std::vector<double>& b) {
  std::vector<double> r = randn(8 * N, seed);
  a.assign(static_cast<size_t>(4 * N), 0);
  b.assign(static_cast<size_t>(4 * N), 0);
  for (int64_t i = 0; i < N; ++i) {
    const double* q = &r[size_t(8 * i)];
    double x = 50 + 10 * q[0], y = 40 + 10 * q[1], w = 20 + 4 * std::fabs(q[2]), h = 15 + 4 * std::fabs(q[3]);
    double* A = &a[size_t(4 * i)];
    double* B = &b[size_t(4 * i)];
    A[0] = x, A[1] = y, A[2] = x + w, A[3] = y + h;
    B[0] = x + 0.3 * w * q[4] + 0.37, B[1] = y + 0.3 * h * q[5] - 0.23;
    B[2] = B[0] + w * (0.8 + 0.1 * std::tanh(q[6])), B[3] = B[1] + h * (0.9 + 0.1 * std::tanh(q[7]));
  }
}

double naive_giou_loss(const double* a, const double* b, double eps) {
  double iw = std::min(a[2], b[2]) - std::max(a[0], b[0]), ih = std::min(a[3], b[3]) - std::max(a[1], b[1]);
  double inter = (iw > 0 && ih > 0) ? iw * ih : 0;
  double u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  double c = (std::max(a[2], b[2]) - std::min(a[0], b[0])) * (std::max(a[3], b[3]) - std::min(a[1], b[1]));
  return 1 - (inter / (u + eps) - (c - u) / (c + eps));
}

}  // namespace

// ---- golden cases ------------------------------------------------------------

DETNAS_GOLDEN_OP("sigmoid_focal_loss") {
  Tensor x = from_golden(c.in("logits"));
  x.requires_grad_();
  Tensor t = from_golden(c.in("targets"));
  FocalParams p{float(c.num("alpha")), float(c.num("gamma"))};
  Reduction r = parse_reduction(c.str("reduction"));
  Tensor y = ops::sigmoid_focal_loss(x, t, p, r);
  check_loss_output(c, y, r);
  backward(weighted_sum(y, from_golden(c.upstream("loss"))));
  check_golden_grad(c, "grad logits", x.grad().to_vector(), c.grad("logits"));
}

DETNAS_GOLDEN_OP("smooth_l1_loss") {
  Tensor x = from_golden(c.in("input"));
  x.requires_grad_();
  Tensor t = from_golden(c.in("target"));
  float beta = float(c.num("beta"));
  if (c.has_param("beta_expr") && c.str("beta_expr") == "1/9") beta = float(1.0 / 9.0);
  Reduction r = parse_reduction(c.str("reduction"));
  Tensor y = ops::smooth_l1_loss(x, t, beta, r);
  check_loss_output(c, y, r);
  backward(weighted_sum(y, from_golden(c.upstream("loss"))));
  check_golden_grad(c, "grad input", x.grad().to_vector(), c.grad("input"));
}

DETNAS_GOLDEN_OP("generalized_box_iou_loss") {
  Tensor a = from_golden(c.in("boxes1")), b = from_golden(c.in("boxes2"));
  a.requires_grad_();
  b.requires_grad_();
  Reduction r = parse_reduction(c.str("reduction"));
  Tensor y = ops::giou_loss(a, b, r, float(c.num("eps")));
  check_loss_output(c, y, r);
  backward(weighted_sum(y, from_golden(c.upstream("loss"))));
  check_golden_grad(c, "grad boxes1", a.grad().to_vector(), c.grad("boxes1"));
  check_golden_grad(c, "grad boxes2", b.grad().to_vector(), c.grad("boxes2"));
}

// ---- cross-entropy -------------------------------------------------------------

TEST_CASE("loss: softmax cross-entropy matches a naive log-softmax loop (K = 1, 3, 15)") {
  for (int64_t K : {1, 3, 15})
    for (double eps : {0.0, 0.1}) {
      const int64_t N = 7;
      std::vector<double> x = randn(N * K, 11 + uint64_t(K), 3.0);
      std::vector<int64_t> labels(static_cast<size_t>(N));
      for (int64_t i = 0; i < N; ++i) labels[size_t(i)] = i == 2 ? -1 : (i * 5) % K;
      Tensor xt = tensor({N, K}, x);
      Tensor none = ops::softmax_cross_entropy(xt, labels, float(eps), Reduction::None);
      std::vector<double> ref = dvec(N, 0.0);
      double total = 0;
      for (int64_t i = 0; i < N; ++i) {
        const double* xi = &x[size_t(i * K)];
        double se = 0;
        for (int64_t j = 0; j < K; ++j) se += std::exp(double(float(xi[j])));
        const double lse = std::log(se);
        if (labels[size_t(i)] < 0) continue;
        for (int64_t j = 0; j < K; ++j) {
          double target = eps / double(K) + (j == labels[size_t(i)] ? 1.0 - eps : 0.0);
          ref[size_t(i)] -= target * (double(float(xi[j])) - lse);
        }
        total += ref[size_t(i)];
      }
      check_close("xent rows", to_double(none.to_vector()), ref, {N}, Tol::elementwise());
      Tensor mean = ops::softmax_cross_entropy(xt, labels, float(eps), Reduction::Mean);
      Tensor sum = ops::softmax_cross_entropy(xt, labels, float(eps), Reduction::Sum);
      CHECK(mean.dim() == 0);
      check_close("xent mean (6 counted rows)", {mean.item()}, {total / 6.0}, {}, Tol::reduction(N, 10));
      check_close("xent sum", {sum.item()}, {total}, {}, Tol::reduction(N, 10));
    }
}

TEST_CASE("loss: softmax cross-entropy backward matches central differences (double, label smoothing)") {
  for (int64_t K : {1, 3, 15})
    for (double eps : {0.0, 0.1}) {
      const int64_t N = 5;
      std::vector<double> x = randn(N * K, 21 + uint64_t(K), 2.0), dy = randn(N, 5);
      std::vector<int64_t> labels = {0, K - 1, -1, K / 2, 0};
      std::vector<double> loss = dvec(N), lse = dvec(N);
      auto f = [&](const std::vector<double>& xs) {
        std::vector<double> l = dvec(N), s = dvec(N);
        kc::softmax_xent_forward<double>(N, K, xs.data(), labels.data(), eps, l.data(), s.data());
        return dot(l, dy);
      };
      kc::softmax_xent_forward<double>(N, K, x.data(), labels.data(), eps, loss.data(), lse.data());
      std::vector<double> dx = dvec(N * K, 1.0);
      kc::softmax_xent_backward<double>(N, K, x.data(), labels.data(), eps, lse.data(), {dy.data(), 1, 1.0}, dx.data(),
                                        GradientMode::Accumulate);
      for (double& v : dx) v -= 1.0;
      check_close("xent grad", dx, numeric_grad(f, x), {N, K}, Tol::finite_diff());
    }
}

TEST_CASE("loss: softmax cross-entropy op gradient, ignore label and mean count") {
  const int64_t N = 6, K = 4;
  std::vector<double> x = randn(N * K, 3);
  std::vector<int64_t> labels = {1, -1, 3, 0, -1, 2};
  Tensor xt = tensor({N, K}, x);
  xt.requires_grad_();
  backward(ops::softmax_cross_entropy(xt, labels, 0.1f, Reduction::Mean));
  std::vector<double> loss = dvec(N), lse = dvec(N), ones = dvec(N, 1.0), dx = dvec(N * K);
  std::vector<double> xf = to_double(xt.to_vector());
  kc::softmax_xent_forward<double>(N, K, xf.data(), labels.data(), 0.1, loss.data(), lse.data());
  kc::softmax_xent_backward<double>(N, K, xf.data(), labels.data(), 0.1, lse.data(), {ones.data(), 0, 0.25}, dx.data(),
                                    GradientMode::Overwrite);
  check_close("xent op grad (mean over 4 rows)", to_double(xt.grad().to_vector()), dx, {N, K}, Tol::elementwise());
  for (int64_t j = 0; j < K; ++j) CHECK(xt.grad().to_vector()[size_t(K + j)] == 0.0f);  // ignored row

  // All rows ignored: the mean is 0 with zero gradient (torch would give NaN).
  Tensor z = tensor({2, K}, randn(2 * K, 4));
  z.requires_grad_();
  Tensor l = ops::softmax_cross_entropy(z, {-1, -1}, 0.0f, Reduction::Mean);
  CHECK(l.item() == 0.0f);
  backward(l);
  for (float g : z.grad().to_vector()) CHECK(g == 0.0f);

  // A non-contiguous view of the logits gets its gradient through contiguous().
  Tensor base = tensor({N, K + 2}, randn(N * (K + 2), 9));
  base.requires_grad_();
  backward(ops::softmax_cross_entropy(base.narrow(1, 1, K), labels, 0.0f, Reduction::Sum));
  std::vector<float> gb = base.grad().to_vector();
  CHECK(gb[0] == 0.0f);
  CHECK(gb[size_t(K + 1)] == 0.0f);
  double row0 = 0;
  for (int64_t j = 1; j <= K; ++j) row0 += gb[size_t(j)];
  CHECK(std::fabs(row0) < 1e-6);  // softmax - onehot sums to 0 per row
}

TEST_CASE("loss: accuracy_top1 counts first arg-max, skips ignored rows") {
  Tensor x = Tensor::from_vector({4, 3}, {0, 2, 1, 5, 5, 1, 0, 0, 9, 1, 2, 3});
  CHECK(ops::accuracy_top1(x, {1, 0, 2, 0}) == doctest::Approx(0.75));
  CHECK(ops::accuracy_top1(x, {1, 1, -1, -1}) == doctest::Approx(0.5));  // tie at row 1 -> class 0
  CHECK(ops::accuracy_top1(x, {-1, -1, -1, -1}) == 0.0f);
  CHECK_THROWS_WITH_AS(ops::accuracy_top1(x, {0, 1, 3, 0}), doctest::Contains("label[2] = 3"), Error);
}

// ---- sigmoid focal loss ------------------------------------------------------------

TEST_CASE("loss: sigmoid focal loss matches the torchvision formula in double (N = 1, 7, 17)") {
  for (int64_t N : {1, 7, 17})
    for (int64_t K : {1, 3, 15}) {
      std::vector<double> x = randn(N * K, 40 + uint64_t(N * K), 3.0), t = random_01(N * K, 7);
      std::vector<double> rw = randn(N, 8);
      for (double& w : rw) w = std::fabs(w);
      rw[0] = 0.0;
      Tensor xt = tensor({N, K}, x), tt = tensor({N, K}, t), wt = tensor({N}, rw);
      Tensor none = ops::sigmoid_focal_loss(xt, tt, {0.25f, 2.0f}, Reduction::None, wt);
      std::vector<double> ref = dvec(N * K);
      for (int64_t i = 0; i < N * K; ++i) {
        double xi = double(float(x[size_t(i)])), ti = t[size_t(i)];
        double p = 1 / (1 + std::exp(-xi));
        double ce = -(ti * std::log(p) + (1 - ti) * std::log(1 - p));
        double pt = p * ti + (1 - p) * (1 - ti), at = 0.25 * ti + 0.75 * (1 - ti);
        ref[size_t(i)] = double(float(rw[size_t(i / K)])) * at * ce * (1 - pt) * (1 - pt);
      }
      check_close("focal elements", to_double(none.to_vector()), ref, {N, K}, Tol::elementwise());
      double s = 0;
      for (float v : none.to_vector()) s += v;
      Tensor sum = ops::sigmoid_focal_loss(xt, tt, {0.25f, 2.0f}, Reduction::Sum, wt);
      Tensor mean = ops::sigmoid_focal_loss(xt, tt, {0.25f, 2.0f}, Reduction::Mean, wt);
      CHECK(sum.item() == float(s));
      CHECK(mean.item() == float(s / double(N * K)));
    }
}

TEST_CASE("loss: sigmoid focal backward matches central differences (double, moderate logits)") {
  struct Cfg {
    float alpha, gamma;
  };
  for (Cfg cfg : {Cfg{0.25f, 2.0f}, Cfg{0.25f, 1.5f}, Cfg{-1.0f, 0.0f}, Cfg{0.5f, 1.0f}, Cfg{0.25f, 3.0f}}) {
    const int64_t N = 6, K = 3;
    std::vector<double> x = randn(N * K, 51, 2.0), t = random_01(N * K, 52), dy = randn(N * K, 53);
    t[4] = 0.3;  // soft targets use the same formula
    std::vector<double> rw = {1.0, 0.0, 0.5, 2.0, 1.0, 1.0};
    FocalParams p{cfg.alpha, cfg.gamma};
    auto f = [&](const std::vector<double>& xs) {
      std::vector<double> l = dvec(N * K);
      kc::sigmoid_focal_forward<double>(N, K, xs.data(), t.data(), rw.data(), p, l.data());
      return dot(l, dy);
    };
    std::vector<double> dx = dvec(N * K);
    kc::sigmoid_focal_backward<double>(N, K, x.data(), t.data(), rw.data(), p, {dy.data(), 1, 1.0}, dx.data(),
                                       GradientMode::Overwrite);
    CAPTURE(cfg.gamma);
    check_close("focal grad", dx, numeric_grad(f, x), {N, K}, Tol::finite_diff());
  }
}

TEST_CASE("loss: sigmoid focal loss is stable at logits +-30 .. +-100") {
  std::vector<double> xs, ts;
  for (double m : {30.0, 50.0, 88.0, 89.0, 100.0})
    for (double s : {1.0, -1.0})
      for (double t : {0.0, 1.0}) xs.push_back(s * m), ts.push_back(t);
  const int64_t n = int64_t(xs.size());
  Tensor x = tensor({n, 1}, xs), t = tensor({n, 1}, ts);
  x.requires_grad_();
  Tensor none = ops::sigmoid_focal_loss(x, t, {0.25f, 2.0f}, Reduction::None);
  backward(ops::sum(none));
  std::vector<float> l = none.to_vector(), g = x.grad().to_vector();
  for (int64_t i = 0; i < n; ++i) {
    CAPTURE(xs[size_t(i)]);
    CAPTURE(ts[size_t(i)]);
    REQUIRE(std::isfinite(l[size_t(i)]));
    REQUIRE(std::isfinite(g[size_t(i)]));
    const bool wrong = (xs[size_t(i)] > 0) != (ts[size_t(i)] > 0);
    if (wrong) {  // loss ~ alpha_t * |x|, gradient ~ +-alpha_t
      double at = ts[size_t(i)] > 0 ? 0.25 : 0.75;
      CHECK(l[size_t(i)] == doctest::Approx(at * std::fabs(xs[size_t(i)])).epsilon(1e-6));
      CHECK(g[size_t(i)] == doctest::Approx(ts[size_t(i)] > 0 ? -at : at).epsilon(1e-5));
    } else {  // confident and right: (1-p_t)^2 * BCE underflows
      CHECK(l[size_t(i)] >= 0.0f);
      CHECK(l[size_t(i)] < 1e-30f);
      CHECK(std::fabs(g[size_t(i)]) < 1e-30f);
    }
  }
}

// ---- smooth L1 and BCE ------------------------------------------------------------

TEST_CASE("loss: smooth L1 matches a naive loop; backward matches central differences away from |d| = beta") {
  for (double beta : {1.0 / 9.0, 0.5, 0.0}) {
    const int64_t n = 60;
    std::vector<double> t = randn(n, 61), d = away_from_zero(n, 62, 0.001, 1.0), w = randn(n, 63);
    std::vector<double> x = dvec(n);
    for (int64_t i = 0; i < n; ++i) {
      if (std::fabs(std::fabs(d[size_t(i)]) - beta) < 1e-3) d[size_t(i)] += 2e-3;
      x[size_t(i)] = t[size_t(i)] + d[size_t(i)];
    }
    // naive loop (float32 inputs widened), per element with weights
    Tensor xt = tensor({n / 4, 4}, x), tt = tensor({n / 4, 4}, t), wt = tensor({n / 4, 4}, w);
    std::vector<double> ref = dvec(n);
    for (int64_t i = 0; i < n; ++i) {
      double di = std::fabs(double(float(x[size_t(i)])) - double(float(t[size_t(i)])));
      ref[size_t(i)] = double(float(w[size_t(i)])) * (di < beta ? 0.5 * di * di / beta : di - 0.5 * beta);
    }
    Tensor none = ops::smooth_l1_loss(xt, tt, float(beta), Reduction::None, wt);
    check_close("smooth l1 elements", to_double(none.to_vector()), ref, {n / 4, 4}, Tol::elementwise());

    auto f = [&](const std::vector<double>& xs) {
      std::vector<double> l = dvec(n);
      kc::smooth_l1_forward<double>(n, xs.data(), t.data(), w.data(), beta, l.data());
      double s = 0;
      for (double v : l) s += v;
      return s;
    };
    std::vector<double> dx = dvec(n), dt = dvec(n), one = {1.0};
    kc::smooth_l1_backward<double>(n, x.data(), t.data(), w.data(), beta, {one.data(), 0, 1.0}, dx.data(),
                                   GradientMode::Overwrite, dt.data(), GradientMode::Overwrite);
    CAPTURE(beta);
    check_close("smooth l1 grad", dx, numeric_grad(f, x), {n}, Tol::finite_diff());
    for (int64_t i = 0; i < n; ++i) CHECK(dt[size_t(i)] == -dx[size_t(i)]);
  }
}

TEST_CASE("loss: smooth L1 op gradients w.r.t. input and target, mean over elements") {
  Tensor x = Tensor::from_vector({2, 2}, {0.0f, 1.0f, 2.0f, -1.0f});
  Tensor t = Tensor::from_vector({2, 2}, {0.05f, 0.0f, 2.0f, 1.0f});
  x.requires_grad_();
  t.requires_grad_();
  Tensor l = ops::smooth_l1_loss(x, t, 0.1f, Reduction::Mean);
  // elements: 0.5*0.05^2/0.1, 1-0.05, 0, 2-0.05
  CHECK(l.item() == doctest::Approx((0.0125 + 0.95 + 0.0 + 1.95) / 4).epsilon(1e-6));
  backward(l);
  std::vector<float> gx = x.grad().to_vector(), gt = t.grad().to_vector();
  CHECK(gx[0] == doctest::Approx(-0.5 / 4));
  CHECK(gx[1] == doctest::Approx(0.25));
  CHECK(gx[2] == 0.0f);  // d == 0
  CHECK(gx[3] == doctest::Approx(-0.25));
  for (int i = 0; i < 4; ++i) CHECK(gt[size_t(i)] == -gx[size_t(i)]);
}

TEST_CASE("loss: BCE with logits matches a naive loop, is stable, and its backward matches central differences") {
  const int64_t n = 45;
  std::vector<double> x = randn(n, 71, 3.0), t = random_01(n, 72), w = randn(n, 73), dy = randn(n, 74);
  t[3] = 0.25;
  Tensor xt = tensor({3, 15}, x), tt = tensor({3, 15}, t), wt = tensor({3, 15}, w);
  Tensor none = ops::bce_with_logits(xt, tt, Reduction::None, wt);
  std::vector<double> ref = dvec(n);
  for (int64_t i = 0; i < n; ++i) {
    double xi = double(float(x[size_t(i)])), ti = double(float(t[size_t(i)])), p = 1 / (1 + std::exp(-xi));
    ref[size_t(i)] = -double(float(w[size_t(i)])) * (ti * std::log(p) + (1 - ti) * std::log(1 - p));
  }
  check_close("bce elements", to_double(none.to_vector()), ref, {3, 15}, Tol::elementwise());
  Tensor mean = ops::bce_with_logits(xt, tt, Reduction::Mean, wt);
  double s = 0;
  for (float v : none.to_vector()) s += v;
  CHECK(mean.item() == float(s / double(n)));

  auto f = [&](const std::vector<double>& v, int which) {
    std::vector<double> l = dvec(n);
    kc::bce_logits_forward<double>(n, which == 0 ? v.data() : x.data(), which == 1 ? v.data() : t.data(), w.data(),
                                   l.data());
    return dot(l, dy);
  };
  std::vector<double> dx = dvec(n), dt = dvec(n);
  kc::bce_logits_backward<double>(n, x.data(), t.data(), w.data(), {dy.data(), 1, 1.0}, dx.data(),
                                  GradientMode::Overwrite, dt.data(), GradientMode::Overwrite);
  check_close("bce grad x", dx, numeric_grad([&](const std::vector<double>& v) { return f(v, 0); }, x), {n},
              Tol::finite_diff());
  check_close("bce grad t", dt, numeric_grad([&](const std::vector<double>& v) { return f(v, 1); }, t), {n},
              Tol::finite_diff());

  Tensor big = Tensor::from_vector({4}, {100.0f, -100.0f, 100.0f, -100.0f});
  Tensor bt = Tensor::from_vector({4}, {0.0f, 1.0f, 1.0f, 0.0f});
  big.requires_grad_();
  Tensor lb = ops::bce_with_logits(big, bt, Reduction::None);
  backward(ops::sum(lb));
  std::vector<float> lv = lb.to_vector(), gv = big.grad().to_vector();
  CHECK(lv[0] == 100.0f);
  CHECK(lv[1] == 100.0f);
  CHECK(gv[0] == 1.0f);
  CHECK(gv[1] == -1.0f);
  for (int i : {2, 3}) {  // confident and right: exp(-100) survives as a float32 subnormal or 0
    CHECK(lv[size_t(i)] >= 0.0f);
    CHECK(lv[size_t(i)] < 1e-30f);
    CHECK(std::fabs(gv[size_t(i)]) < 1e-30f);
  }
}

// ---- GIoU --------------------------------------------------------------------------

TEST_CASE("loss: GIoU matches a naive loop; backward matches central differences on overlapping boxes") {
  const int64_t N = 17;
  std::vector<double> a, b;
  overlapping_boxes(N, 81, a, b);
  // make two pairs disjoint (intersection 0, enclosing-box term only)
  for (int k : {0, 2}) b[size_t(4 * 3 + k)] += 60, b[size_t(4 * 3 + k + 1)] += 45;
  for (int k : {0, 2}) b[size_t(4 * 9 + k)] -= 70;
  const double eps = 1e-7;
  Tensor at = tensor({N, 4}, a), bt = tensor({N, 4}, b);
  Tensor none = ops::giou_loss(at, bt, Reduction::None, float(eps));
  std::vector<double> ref = dvec(N);
  std::vector<double> af = to_double(at.to_vector()), bf = to_double(bt.to_vector());
  for (int64_t i = 0; i < N; ++i) ref[size_t(i)] = naive_giou_loss(&af[size_t(4 * i)], &bf[size_t(4 * i)], eps);
  check_close("giou elements", to_double(none.to_vector()), ref, {N}, Tol::elementwise());
  CHECK(ref[3] > 1.0);  // disjoint pair

  std::vector<double> dy = randn(N, 82);
  auto f = [&](const std::vector<double>& v, int which) {
    std::vector<double> l = dvec(N);
    kc::giou_loss_forward<double>(N, which == 0 ? v.data() : a.data(), which == 1 ? v.data() : b.data(), eps, l.data());
    return dot(l, dy);
  };
  std::vector<double> da = dvec(4 * N), db = dvec(4 * N);
  kc::giou_loss_backward<double>(N, a.data(), b.data(), eps, {dy.data(), 1, 1.0}, da.data(), GradientMode::Overwrite,
                                 db.data(), GradientMode::Overwrite);
  // Coordinates are ~50, so a step of 1e-6 relative to them is 1e-4 absolute.
  auto fa = [&](const std::vector<double>& v) { return f(v, 0); };
  auto fb = [&](const std::vector<double>& v) { return f(v, 1); };
  check_close("giou grad boxes1", da, numeric_grad(fa, a, 1e-4), {N, 4}, Tol::finite_diff());
  check_close("giou grad boxes2", db, numeric_grad(fb, b, 1e-4), {N, 4}, Tol::finite_diff());
}

TEST_CASE("loss: GIoU gradient splits on tied coordinates like torch.maximum/minimum") {
  // At a tie max(a,b) / min(a,b) send half the gradient to each operand. Each
  // side of the tie is smooth, so the half split equals the mean of the two
  // one-sided derivatives, which is what a central difference measures (up to
  // O(h) times the curvature jump, hence the small step).
  const int64_t N = 3;
  std::vector<double> a = {10, 20, 40, 50, /**/ 10, 20, 40, 50, /**/ 0, 0, 2, 3};
  std::vector<double> b = {10, 25, 45, 50, /**/ 15, 20, 40, 45, /**/ 0, 0, 2, 3};  // x1,y2; y1,x2; all tied
  std::vector<double> dy = {1.0, -0.5, 2.0}, da = dvec(4 * N), db = dvec(4 * N);
  kc::giou_loss_backward<double>(N, a.data(), b.data(), 1e-7, {dy.data(), 1, 1.0}, da.data(), GradientMode::Overwrite,
                                 db.data(), GradientMode::Overwrite);
  auto f = [&](const std::vector<double>& va, const std::vector<double>& vb) {
    std::vector<double> l = dvec(N);
    kc::giou_loss_forward<double>(N, va.data(), vb.data(), 1e-7, l.data());
    return dot(l, dy);
  };
  auto fa = [&](const std::vector<double>& v) { return f(v, b); };
  auto fb = [&](const std::vector<double>& v) { return f(a, v); };
  check_close("giou tie grad boxes1", da, numeric_grad(fa, a, 1e-7), {N, 4}, Tol::finite_diff());
  check_close("giou tie grad boxes2", db, numeric_grad(fb, b, 1e-7), {N, 4}, Tol::finite_diff());
  for (int k = 0; k < 4; ++k) CHECK(da[size_t(8 + k)] == doctest::Approx(db[size_t(8 + k)]));
}

// ---- reductions, determinism and bad input -----------------------------------------

TEST_CASE("loss: loss_sum is the same for any thread count") {
  std::vector<float> v = randn_f(300007, 91);
  int prev = omp_get_max_threads();
  omp_set_num_threads(1);
  double s1 = kc::loss_sum(int64_t(v.size()), v.data());
  omp_set_num_threads(2);
  double s2 = kc::loss_sum(int64_t(v.size()), v.data());
  omp_set_num_threads(3);
  double s3 = kc::loss_sum(int64_t(v.size()), v.data());
  omp_set_num_threads(prev);
  CHECK(s1 == s2);
  CHECK(s1 == s3);
  double naive = 0;
  for (float x : v) naive += x;
  CHECK(std::fabs(s1 - naive) < 1e-9);
}

TEST_CASE("loss: bad input gives clear errors") {
  Tensor x = Tensor::zeros({3, 4});
  CHECK_THROWS_WITH_AS(ops::softmax_cross_entropy(x, {0, 7, 1}, 0.0f, Reduction::Mean),
                       doctest::Contains("softmax_cross_entropy: label[1] = 7 is outside [0, 4)"), Error);
  CHECK_THROWS_WITH_AS(ops::softmax_cross_entropy(x, {0, -2, 1}, 0.0f, Reduction::Mean),
                       doctest::Contains("label[1] = -2"), Error);
  CHECK_THROWS_WITH_AS(ops::softmax_cross_entropy(x, {0, 1}, 0.0f, Reduction::Mean),
                       doctest::Contains("2 labels for logits [3, 4]"), Error);
  CHECK_THROWS_WITH_AS(ops::softmax_cross_entropy(Tensor::zeros({0, 4}), {}, 0.0f, Reduction::Mean),
                       doctest::Contains("'mean' of an empty input"), Error);
  Tensor nan = Tensor::zeros({3, 4});
  nan.data()[6] = NAN;
  CHECK_THROWS_WITH_AS(
      ops::softmax_cross_entropy(nan, {0, 1, 2}, 0.0f, Reduction::Mean),
      doctest::Contains("softmax_cross_entropy: non-finite value nan in logits [3, 4] cpu at index [1, 2]"), Error);
  CHECK_THROWS_WITH_AS(ops::sigmoid_focal_loss(nan, x, {}, Reduction::Sum),
                       doctest::Contains("sigmoid_focal_loss: non-finite value nan in logits"), Error);
  Tensor inf_t = Tensor::zeros({3, 4});
  inf_t.data()[11] = INFINITY;
  CHECK_THROWS_WITH_AS(ops::sigmoid_focal_loss(x, inf_t, {}, Reduction::Sum),
                       doctest::Contains("in targets [3, 4] cpu at index [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(ops::sigmoid_focal_loss(x, Tensor::zeros({4, 3}), {}, Reduction::Sum),
                       doctest::Contains("sigmoid_focal_loss: shape mismatch [3, 4] vs [4, 3]"), Error);
  CHECK_THROWS_WITH_AS(ops::sigmoid_focal_loss(x, x, {}, Reduction::Sum, Tensor::full({4}, 1.0f)),
                       doctest::Contains("row_weight [4] does not match logits [3, 4]"), Error);
  CHECK_THROWS_WITH_AS(ops::smooth_l1_loss(x, Tensor::zeros({12}), 0.1f, Reduction::Sum),
                       doctest::Contains("smooth_l1_loss: shape mismatch [3, 4] vs [12]"), Error);
  CHECK_THROWS_WITH_AS(ops::smooth_l1_loss(nan, x, 0.1f, Reduction::Sum), doctest::Contains("index [1, 2]"), Error);
  CHECK_THROWS_WITH_AS(ops::smooth_l1_loss(x, x, -1.0f, Reduction::Sum), doctest::Contains("beta -1"), Error);
  CHECK_THROWS_WITH_AS(ops::bce_with_logits(x, nan, Reduction::Mean), doctest::Contains("in targets"), Error);
  CHECK_THROWS_WITH_AS(ops::giou_loss(x, Tensor::zeros({3, 5}), Reduction::Sum),
                       doctest::Contains("giou_loss: shape mismatch [3, 4] vs [3, 5]"), Error);
  CHECK_THROWS_WITH_AS(ops::giou_loss(Tensor::zeros({4, 3}), Tensor::zeros({4, 3}), Reduction::Sum),
                       doctest::Contains("boxes1 must be (N,4), got [4, 3]"), Error);
  CHECK_THROWS_WITH_AS(ops::giou_loss(x, nan, Reduction::Sum), doctest::Contains("boxes2"), Error);
  Tensor w = Tensor::full({3, 4}, 1.0f);
  w.requires_grad_();
  CHECK_THROWS_WITH_AS(ops::bce_with_logits(x, x, Reduction::Sum, w), doctest::Contains("weight requires grad"), Error);
  CHECK_THROWS_WITH_AS(ops::sigmoid_focal_loss(x, w, {}, Reduction::Sum), doctest::Contains("targets requires grad"),
                       Error);
  // Sum over an empty input is 0; None is empty.
  CHECK(ops::smooth_l1_loss(Tensor::zeros({0, 4}), Tensor::zeros({0, 4}), 0.1f, Reduction::Sum).item() == 0.0f);
  CHECK(ops::giou_loss(Tensor::zeros({0, 4}), Tensor::zeros({0, 4}), Reduction::None).numel() == 0);
}
