// Emulated loss kernels (kernels/loss_cuda.cu) against the CPU twins
// (kernels/loss_cpu.cpp): focal loss (extreme logits, soft targets, zero row
// weights, alpha off, gamma 0/1/1.5/2), smooth L1 (beta 0 and > 0, weights),
// softmax cross-entropy (ignored and out-of-range labels, smoothing), GIoU
// (disjoint, nested, touching boxes), both gradient modes, the first non-finite
// index, and the two-pass sum (close to the CPU's, identical across thread orders).
// clang-format off
#include "tests/emu/emu.h"  // first: renames namespace cuda and defines DETNAS_EMU
// clang-format on

#include <cmath>
#include <vector>

#include "kernels/launch.h"
#include "kernels/loss.h"
#include "kernels/loss_cuda.h"
#include "tests/emu/emu_test.h"
#include "tests/test_util.h"

namespace detnas::kernels::cuda {
__global__ void loss_sum_final_kernel(int64_t chunks, const double* partial, double scale, double* out_d, float* out_f);
}

using namespace detnas;
using kernels::LossGrad;
namespace kc = detnas::kernels::cuda;
namespace kcpu = detnas::kernels::cpu;
namespace plan = detnas::kernels::cuda_plan;

namespace {
using test::same;
const GradientMode kModes[] = {GradientMode::Overwrite, GradientMode::Accumulate};
std::vector<char> workspace(int64_t n) { return std::vector<char>(plan::loss_workspace_bytes(n) + 64); }
void* ws_ptr(std::vector<char>& w) {  // 64-byte aligned start, as a device allocation
  uintptr_t p = reinterpret_cast<uintptr_t>(w.data());
  return reinterpret_cast<void*>((p + 63) / 64 * 64);
}
// Upstream gradients: a reduced (stride 0, scale) and an unreduced (stride 1) one.
struct Up {
  std::vector<float> dy;
  LossGrad<float> g;
};
std::vector<Up> upstreams(int64_t n) {
  std::vector<Up> u(2);
  u[0].dy = {0.7f};
  u[1].dy = test::randn_f(n, 99);
  return u;
}
LossGrad<float> grad_of(const Up& u, int which, int64_t n) {
  LossGrad<float> g;
  g.dy = u.dy.data();
  g.stride = which == 0 ? 0 : 1;
  g.scale = which == 0 ? 1.0f / float(n) : 1.0f;
  return g;
}
}  // namespace

DETNAS_EMU_KERNEL_TEST("focal_forward_kernel focal_backward_kernel", "focal loss kernels match cpu focal fwd/bwd") {
  const int64_t N = 13, K = 7, n = N * K;
  std::vector<float> x = test::randn_f(n, 51, 3.0), t(static_cast<size_t>(n)), rw = test::randn_f(N, 52);
  for (int64_t i = 0; i < n; ++i) t[size_t(i)] = i % 3 == 0 ? 1.0f : (i % 7 == 0 ? 0.3f : 0.0f);
  x[3] = 100.0f, x[4] = -100.0f, x[5] = 0.0f, x[6] = 30.0f;
  rw[2] = 0.0f;
  for (FocalParams p :
       {FocalParams{0.25f, 2.0f}, FocalParams{-1.0f, 0.0f}, FocalParams{0.5f, 1.0f}, FocalParams{0.25f, 1.5f}})
    for (const float* w : {static_cast<const float*>(nullptr), static_cast<const float*>(rw.data())}) {
      CAPTURE(p.alpha);
      CAPTURE(p.gamma);
      std::vector<float> ref(static_cast<size_t>(n)), loss(size_t(n), NAN);
      std::vector<char> ws = workspace(n);
      CHECK(kcpu::sigmoid_focal_forward(N, K, x.data(), t.data(), w, p, ref.data()) == -1);
      CHECK(kc::sigmoid_focal_forward(N, K, x.data(), t.data(), w, p, loss.data(), ws_ptr(ws), nullptr) == -1);
      CHECK(same("focal forward", loss, ref, test::Tol::exact()));
      std::vector<Up> ups = upstreams(n);
      for (int which = 0; which < 2; ++which)
        for (GradientMode mode : kModes) {
          const std::vector<float> dx0 = test::randn_f(n, 53);
          std::vector<float> r = dx0, g = dx0;
          kcpu::sigmoid_focal_backward(N, K, x.data(), t.data(), w, p, grad_of(ups[size_t(which)], which, n), r.data(),
                                       mode);
          kc::sigmoid_focal_backward(N, K, x.data(), t.data(), w, p, grad_of(ups[size_t(which)], which, n), g.data(),
                                     mode, nullptr);
          CHECK(same("focal backward", g, r, test::Tol::exact()));
        }
    }
  // First non-finite index: the smallest flat index, whichever thread saw it first.
  x[40] = NAN, t[17] = INFINITY, x[80] = -INFINITY;
  std::vector<float> ref(static_cast<size_t>(n)), loss(static_cast<size_t>(n));
  std::vector<char> ws = workspace(n);
  const int64_t want = kcpu::sigmoid_focal_forward(N, K, x.data(), t.data(), static_cast<const float*>(nullptr),
                                                   FocalParams{}, ref.data());
  CHECK(want == 17);
  CHECK(kc::sigmoid_focal_forward(N, K, x.data(), t.data(), nullptr, FocalParams{}, loss.data(), ws_ptr(ws), nullptr) ==
        want);
}

DETNAS_EMU_KERNEL_TEST("loss_sum_partial_kernel loss_sum_final_kernel",
                       "two-pass loss sum matches cpu::loss_sum and is identical in every order") {
  static double first_seen[5];
  const int64_t lengths[] = {1, 255, 256, 1025, 20000};
  for (int li = 0; li < 5; ++li) {
    const int64_t n = lengths[li];
    CAPTURE(n);
    const std::vector<float> v = test::randn_f(n, 54, 10.0);
    std::vector<char> ws = workspace(n);
    const double got = kc::loss_sum(n, v.data(), ws_ptr(ws), nullptr);
    const double ref = kcpu::loss_sum(n, v.data());
    CHECK(std::fabs(got - ref) <= 1e-12 * (1.0 + std::fabs(ref)) * std::sqrt(double(n)));
    // Bit-identical across thread orders (the split and the tree depend only on n).
    if (order == emu::ThreadOrder::Forward) first_seen[li] = got;
    CHECK(got == first_seen[li]);
    float out = NAN;
    kc::loss_sum_to(n, v.data(), 0.5, &out, ws_ptr(ws), nullptr);
    CHECK(out == float(0.5 * got));
  }
  // More chunks than threads in the final block (up to kMaxChunks): each thread adds several partials.
  const std::vector<double> partial = test::randn(700, 55);
  double ref = 0, out_d = NAN;
  for (double v : partial) ref += v;
  DETNAS_LAUNCH(kc::loss_sum_final_kernel, 1, int(plan::kSumBlock), 0, nullptr, int64_t(700), partial.data(), 1.0,
                &out_d, static_cast<float*>(nullptr));
  CHECK(std::fabs(out_d - ref) <= 1e-12 * 700);
}

DETNAS_EMU_KERNEL_TEST("smooth_l1_forward_kernel smooth_l1_backward_kernel",
                       "smooth L1 kernels match cpu smooth L1 fwd/bwd") {
  const int64_t n = 301;
  std::vector<float> x = test::randn_f(n, 55), t = test::randn_f(n, 56), w = test::randn_f(n, 57);
  t[7] = x[7];  // d == 0
  for (float beta : {0.0f, 1.0f / 9.0f, 1.0f})
    for (const float* wp : {static_cast<const float*>(nullptr), static_cast<const float*>(w.data())}) {
      CAPTURE(beta);
      std::vector<float> ref(static_cast<size_t>(n)), loss(static_cast<size_t>(n));
      std::vector<char> ws = workspace(n);
      CHECK(kcpu::smooth_l1_forward(n, x.data(), t.data(), wp, beta, ref.data()) == -1);
      CHECK(kc::smooth_l1_forward(n, x.data(), t.data(), wp, beta, loss.data(), ws_ptr(ws), nullptr) == -1);
      CHECK(same("smooth_l1 forward", loss, ref, test::Tol::exact()));
      std::vector<Up> ups = upstreams(n);
      for (int which = 0; which < 2; ++which)
        for (GradientMode mx : {GradientMode::Ignore, GradientMode::Overwrite, GradientMode::Accumulate})
          for (GradientMode mt : {GradientMode::Ignore, GradientMode::Overwrite, GradientMode::Accumulate}) {
            const std::vector<float> dx0 = test::randn_f(n, 58), dt0 = test::randn_f(n, 59);
            std::vector<float> rx = dx0, rt = dt0, gx = dx0, gt = dt0;
            const LossGrad<float> g = grad_of(ups[size_t(which)], which, n);
            kcpu::smooth_l1_backward(n, x.data(), t.data(), wp, beta, g, rx.data(), mx, rt.data(), mt);
            kc::smooth_l1_backward(n, x.data(), t.data(), wp, beta, g, gx.data(), mx, gt.data(), mt, nullptr);
            CHECK(same("smooth_l1 dx", gx, rx, test::Tol::exact()));
            CHECK(same("smooth_l1 dt", gt, rt, test::Tol::exact()));
          }
    }
  x[200] = NAN, t[150] = NAN;
  std::vector<float> loss(static_cast<size_t>(n));
  std::vector<char> ws = workspace(n);
  CHECK(kc::smooth_l1_forward(n, x.data(), t.data(), nullptr, 1.0f, loss.data(), ws_ptr(ws), nullptr) == 150);
}

DETNAS_EMU_KERNEL_TEST("softmax_xent_forward_kernel softmax_xent_backward_kernel",
                       "softmax cross-entropy kernels match cpu softmax_xent fwd/bwd") {
  const int64_t N = 37, K = 11, n = N * K;
  std::vector<float> x = test::randn_f(n, 60, 4.0);
  std::vector<int64_t> labels(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) labels[size_t(i)] = i % 9 == 4 ? kernels::kIgnoreLabel : (i * 5) % K;
  labels[6] = K;  // out of range: treated as ignored
  x[0] = 80.0f, x[1] = -80.0f;
  for (float eps : {0.0f, 0.1f}) {
    CAPTURE(eps);
    std::vector<float> rl(static_cast<size_t>(N)), rlse(static_cast<size_t>(N)), l(static_cast<size_t>(N)),
        lse(static_cast<size_t>(N));
    std::vector<char> ws = workspace(N);
    CHECK(kcpu::softmax_xent_forward(N, K, x.data(), labels.data(), eps, rl.data(), rlse.data()) == -1);
    CHECK(kc::softmax_xent_forward(N, K, x.data(), labels.data(), eps, l.data(), lse.data(), ws_ptr(ws), nullptr) ==
          -1);
    CHECK(same("softmax_xent loss", l, rl, test::Tol::exact()));
    CHECK(same("softmax_xent lse", lse, rlse, test::Tol::exact()));
    std::vector<Up> ups = upstreams(N);
    for (int which = 0; which < 2; ++which)
      for (GradientMode mode : kModes) {
        const std::vector<float> dx0 = test::randn_f(n, 61);
        std::vector<float> r = dx0, g = dx0;
        const LossGrad<float> up = grad_of(ups[size_t(which)], which, N);
        kcpu::softmax_xent_backward(N, K, x.data(), labels.data(), eps, rlse.data(), up, r.data(), mode);
        kc::softmax_xent_backward(N, K, x.data(), labels.data(), eps, lse.data(), up, g.data(), mode, nullptr);
        CHECK(same("softmax_xent dx", g, r, test::Tol::exact()));
      }
  }
  x[5 * K + 3] = INFINITY, x[20 * K + 1] = NAN;
  std::vector<float> rl(static_cast<size_t>(N)), rlse(static_cast<size_t>(N)), l(static_cast<size_t>(N)),
      lse(static_cast<size_t>(N));
  std::vector<char> ws = workspace(N);
  const int64_t want = kcpu::softmax_xent_forward(N, K, x.data(), labels.data(), 0.0f, rl.data(), rlse.data());
  CHECK(want == 5 * K + 3);
  CHECK(kc::softmax_xent_forward(N, K, x.data(), labels.data(), 0.0f, l.data(), lse.data(), ws_ptr(ws), nullptr) ==
        want);
}

DETNAS_EMU_KERNEL_TEST("giou_forward_kernel giou_backward_kernel", "GIoU loss kernels match cpu giou fwd/bwd") {
  const int64_t N = 29;
  std::vector<float> a(static_cast<size_t>(4 * N)), b(static_cast<size_t>(4 * N));
  const std::vector<float> r = test::randn_f(8 * N, 62, 3.0);
  for (int64_t i = 0; i < N; ++i) {
    float ax = r[size_t(8 * i)], ay = r[size_t(8 * i + 1)], bx = r[size_t(8 * i + 2)], by = r[size_t(8 * i + 3)];
    a[size_t(4 * i)] = ax, a[size_t(4 * i + 1)] = ay;
    a[size_t(4 * i + 2)] = ax + 1.0f + std::fabs(r[size_t(8 * i + 4)]),
                     a[size_t(4 * i + 3)] = ay + 0.5f + std::fabs(r[size_t(8 * i + 5)]);
    b[size_t(4 * i)] = bx, b[size_t(4 * i + 1)] = by;
    b[size_t(4 * i + 2)] = bx + 1.0f + std::fabs(r[size_t(8 * i + 6)]),
                     b[size_t(4 * i + 3)] = by + 0.5f + std::fabs(r[size_t(8 * i + 7)]);
  }
  for (int k = 0; k < 4; ++k) b[size_t(k)] = a[size_t(k)];    // identical boxes: ties in every max/min
  b[4] = a[6], b[5] = a[5], b[6] = a[6] + 2.0f, b[7] = a[7];  // touching
  const float eps = 1e-7f;
  std::vector<float> ref(static_cast<size_t>(N)), loss(static_cast<size_t>(N));
  std::vector<char> ws = workspace(N);
  CHECK(kcpu::giou_loss_forward(N, a.data(), b.data(), eps, ref.data()) == -1);
  CHECK(kc::giou_loss_forward(N, a.data(), b.data(), eps, loss.data(), ws_ptr(ws), nullptr) == -1);
  CHECK(same("giou forward", loss, ref, test::Tol::exact()));
  std::vector<Up> ups = upstreams(N);
  for (int which = 0; which < 2; ++which)
    for (GradientMode ma : {GradientMode::Ignore, GradientMode::Overwrite, GradientMode::Accumulate})
      for (GradientMode mb : kModes) {
        const std::vector<float> da0 = test::randn_f(4 * N, 63), db0 = test::randn_f(4 * N, 64);
        std::vector<float> ra = da0, rb = db0, ga = da0, gb = db0;
        const LossGrad<float> up = grad_of(ups[size_t(which)], which, N);
        kcpu::giou_loss_backward(N, a.data(), b.data(), eps, up, ra.data(), ma, rb.data(), mb);
        kc::giou_loss_backward(N, a.data(), b.data(), eps, up, ga.data(), ma, gb.data(), mb, nullptr);
        CHECK(same("giou da", ga, ra, test::Tol::exact()));
        CHECK(same("giou db", gb, rb, test::Tol::exact()));
      }
  a[4 * 9 + 2] = NAN;
  CHECK(kc::giou_loss_forward(N, a.data(), b.data(), eps, loss.data(), ws_ptr(ws), nullptr) == 4 * 9 + 2);
}
