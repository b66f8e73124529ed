// Emulated kernels behind the CUDA paths of the runtime's mul / mul_scalar / sum /
// dropout (kernels/elementwise_cuda.cu), BCE-with-logits and the sum of squares
// of gradient clipping (kernels/loss_cuda.cu), against their CPU twins: the
// product and scale loops written out here in float (as ops_elementwise.cpp does
// on the CPU), cpu::bce_logits_forward/backward, and a double sum of squares.
// Odd lengths, a small odd launch (grid-stride loops), both gradient modes.
// clang-format off
#include "tests/emu/emu.h"  // first: renames namespace cuda and defines DETNAS_EMU
// clang-format on

#include <cmath>
#include <vector>

#include "kernels/elementwise.h"
#include "kernels/elementwise_cuda.h"
#include "kernels/launch.h"
#include "kernels/loss.h"
#include "kernels/loss_cuda.h"
#include "tests/emu/emu_test.h"
#include "tests/test_util.h"

namespace detnas::kernels::cuda {
__global__ void mul_forward_kernel(int64_t n, const float* a, const float* b, float* y);
__global__ void mul_backward_kernel(int64_t n, const float* dy, const float* other, float* dx, GradientMode mode);
__global__ void scale_kernel(int64_t n, float alpha, const float* x, float* y);
__global__ void broadcast_scalar_kernel(int64_t n, const float* s, float* dx, GradientMode mode);
}  // namespace detnas::kernels::cuda

using namespace detnas;
using kernels::LossGrad;
namespace kc = detnas::kernels::cuda;
namespace kcpu = detnas::kernels::cpu;
namespace plan = detnas::kernels::cuda_plan;

namespace {
const int64_t kLengths[] = {1, 7, 33, 255, 257, 765};
constexpr unsigned kSmallGrid = 2, kOddBlock = 48;
const GradientMode kModes[] = {GradientMode::Overwrite, GradientMode::Accumulate};

using test::same;
// Reference gradient write: = or += v.
void put(float& d, float v, GradientMode m) { d = m == GradientMode::Overwrite ? v : d + v; }
std::vector<char> workspace(int64_t n) { return std::vector<char>(plan::loss_workspace_bytes(n) + 64); }
void* ws_ptr(std::vector<char>& w) {
  uintptr_t p = reinterpret_cast<uintptr_t>(w.data());
  return reinterpret_cast<void*>((p + 63) / 64 * 64);
}
}  // namespace

DETNAS_EMU_KERNEL_TEST("mul_forward_kernel mul_backward_kernel",
                       "mul kernels match the product and its gradient written out in float") {
  for (int64_t n : kLengths) {
    CAPTURE(n);
    const std::vector<float> a = test::randn_f(n, 301), b = test::randn_f(n, 302), dy = test::randn_f(n, 303),
                             dx0 = test::randn_f(n, 304);
    std::vector<float> ref(static_cast<size_t>(n)), y(size_t(n), NAN), y2(size_t(n), NAN);
    for (size_t i = 0; i < size_t(n); ++i) ref[i] = a[i] * b[i];
    kc::mul_forward(n, a.data(), b.data(), y.data(), nullptr);
    CHECK(same("mul_forward", y, ref, test::Tol::exact()));
    DETNAS_LAUNCH(kc::mul_forward_kernel, kSmallGrid, kOddBlock, 0, nullptr, n, a.data(), b.data(), y2.data());
    CHECK(same("mul_forward_kernel <<<2, 48>>>", y2, ref, test::Tol::exact()));
    for (GradientMode mode : kModes) {
      CAPTURE(int(mode));
      std::vector<float> r = dx0, g = dx0, g2 = dx0;
      for (size_t i = 0; i < size_t(n); ++i) put(r[i], dy[i] * b[i], mode);
      kc::mul_backward(n, dy.data(), b.data(), g.data(), mode, nullptr);
      CHECK(same("mul_backward", g, r, test::Tol::exact()));
      DETNAS_LAUNCH(kc::mul_backward_kernel, kSmallGrid, kOddBlock, 0, nullptr, n, dy.data(), b.data(), g2.data(),
                    mode);
      CHECK(same("mul_backward_kernel <<<2, 48>>>", g2, r, test::Tol::exact()));
    }
    std::vector<float> untouched = dx0;
    kc::mul_backward(n, dy.data(), b.data(), untouched.data(), GradientMode::Ignore, nullptr);
    CHECK(untouched == dx0);
  }
}

DETNAS_EMU_KERNEL_TEST("scale_kernel broadcast_scalar_kernel",
                       "scale (also in place) and scalar broadcast kernels match float loops") {
  const float alpha = -0.37f, s = 1.625f;
  for (int64_t n : kLengths) {
    CAPTURE(n);
    const std::vector<float> x = test::randn_f(n, 305), dx0 = test::randn_f(n, 306);
    std::vector<float> ref(static_cast<size_t>(n)), y(size_t(n), NAN), inplace = x, y2(size_t(n), NAN);
    for (size_t i = 0; i < size_t(n); ++i) ref[i] = alpha * x[i];
    kc::scale(n, alpha, x.data(), y.data(), nullptr);
    CHECK(same("scale", y, ref, test::Tol::exact()));
    kc::scale(n, alpha, inplace.data(), inplace.data(), nullptr);
    CHECK(same("scale in place", inplace, ref, test::Tol::exact()));
    DETNAS_LAUNCH(kc::scale_kernel, kSmallGrid, kOddBlock, 0, nullptr, n, alpha, x.data(), y2.data());
    CHECK(same("scale_kernel <<<2, 48>>>", y2, ref, test::Tol::exact()));
    for (GradientMode mode : kModes) {
      std::vector<float> r = dx0, g = dx0, g2 = dx0;
      for (size_t i = 0; i < size_t(n); ++i) put(r[i], s, mode);
      kc::broadcast_scalar(n, &s, g.data(), mode, nullptr);
      CHECK(same("broadcast_scalar", g, r, test::Tol::exact()));
      DETNAS_LAUNCH(kc::broadcast_scalar_kernel, kSmallGrid, kOddBlock, 0, nullptr, n, &s, g2.data(), mode);
      CHECK(same("broadcast_scalar_kernel <<<2, 48>>>", g2, r, test::Tol::exact()));
    }
  }
}

DETNAS_EMU_KERNEL_TEST("bce_logits_forward_kernel bce_logits_backward_kernel",
                       "BCE-with-logits kernels match cpu bce_logits fwd/bwd") {
  const int64_t n = 301;
  std::vector<float> x = test::randn_f(n, 311, 4.0), t(static_cast<size_t>(n)), w = test::randn_f(n, 313);
  const std::vector<float> u = test::randn_f(n, 312);
  for (size_t i = 0; i < size_t(n); ++i) t[i] = i % 3 == 0 ? 0.5f + 0.4f * std::tanh(u[i]) : float(i % 2);
  x[3] = 40.0f, x[4] = -40.0f, x[5] = 0.0f;  // saturated logits and the kink of max(x, 0)
  for (const float* wp : {static_cast<const float*>(nullptr), static_cast<const float*>(w.data())}) {
    std::vector<float> ref(static_cast<size_t>(n)), loss(size_t(n), NAN);
    std::vector<char> ws = workspace(n);
    CHECK(kcpu::bce_logits_forward(n, x.data(), t.data(), wp, ref.data()) == -1);
    CHECK(kc::bce_logits_forward(n, x.data(), t.data(), wp, loss.data(), ws_ptr(ws), nullptr) == -1);
    CHECK(same("bce forward", loss, ref, test::Tol::exact()));
    const std::vector<float> dys = test::randn_f(n, 314), reduced = {0.7f};
    for (int which = 0; which < 2; ++which) {
      LossGrad<float> g;
      g.dy = which == 0 ? reduced.data() : dys.data();
      g.stride = which;
      g.scale = which == 0 ? 1.0f / float(n) : 1.0f;
      for (GradientMode mx : {GradientMode::Ignore, GradientMode::Overwrite, GradientMode::Accumulate})
        for (GradientMode mt : {GradientMode::Ignore, GradientMode::Overwrite, GradientMode::Accumulate}) {
          const std::vector<float> dx0 = test::randn_f(n, 315), dt0 = test::randn_f(n, 316);
          std::vector<float> rx = dx0, rt = dt0, gx = dx0, gt = dt0;
          kcpu::bce_logits_backward(n, x.data(), t.data(), wp, g, rx.data(), mx, rt.data(), mt);
          kc::bce_logits_backward(n, x.data(), t.data(), wp, g, gx.data(), mx, gt.data(), mt, nullptr);
          CHECK(same("bce dx", gx, rx, test::Tol::exact()));
          CHECK(same("bce dt", gt, rt, test::Tol::exact()));
        }
    }
  }
  x[200] = NAN, t[150] = INFINITY;
  std::vector<float> loss(static_cast<size_t>(n));
  std::vector<char> ws = workspace(n);
  CHECK(kc::bce_logits_forward(n, x.data(), t.data(), nullptr, loss.data(), ws_ptr(ws), nullptr) == 150);
}

DETNAS_EMU_KERNEL_TEST("sum_squares_partial_kernel loss_sum_final_kernel",
                       "two-pass sum of squares matches a double sum and is identical in every order") {
  static double first_seen[4];
  const int64_t lengths[] = {1, 257, 1025, 20000};
  for (int li = 0; li < 4; ++li) {
    const int64_t n = lengths[li];
    CAPTURE(n);
    const std::vector<float> v = test::randn_f(n, 321, 3.0);
    double ref = 0;
    for (float e : v) ref += double(e) * double(e);
    std::vector<char> ws = workspace(n);
    const double got = kc::sum_squares(n, v.data(), ws_ptr(ws), nullptr);
    CHECK(std::fabs(got - ref) <= 1e-13 * ref * std::sqrt(double(n)));
    if (order == emu::ThreadOrder::Forward) first_seen[li] = got;
    CHECK(got == first_seen[li]);
  }
  std::vector<char> ws = workspace(0);
  CHECK(kc::sum_squares(0, nullptr, ws_ptr(ws), nullptr) == 0.0);
}
