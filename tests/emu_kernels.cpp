// Hand-written CUDA kernels run through the CPU SIMT emulator (tests/emu) against
// their CPU twins, in all three thread orders (DETNAS_EMU_KERNEL_TEST). The .cu
// sources are compiled a second time by the host compiler for this (Makefile rule
// for $(BUILD)/emu/%.o); here `cuda` is spelled `cuda_emu` (tests/emu/emu.h), so
// these calls reach the emulated twins, never the nvcc objects.
// A new __global__ kernel needs a DETNAS_EMU_KERNEL_TEST naming it (here or in a
// file of its own), or "emu: every __global__ kernel ..." fails.
// clang-format off
#include "tests/emu/emu.h"  // first: it renames namespace cuda and defines DETNAS_EMU for the headers below
// clang-format on

#include <cmath>
#include <vector>

#include "kernels/elementwise.h"
#include "kernels/elementwise_cuda.h"
#include "kernels/launch.h"
#include "tests/emu/emu_test.h"
#include "tests/test_util.h"

namespace detnas::kernels::cuda {  // the kernels of elementwise_cuda.cu, launched directly below
__global__ void relu_forward_kernel(int64_t n, const float* x, float* y);
__global__ void relu_backward_kernel(int64_t n, const float* x, const float* dy, float* dx, GradientMode mode);
__global__ void add_forward_kernel(int64_t n, const float* a, const float* b, float* y);
__global__ void scale_backward_kernel(int64_t n, float alpha, const float* dy, float* dx, GradientMode mode);
}  // namespace detnas::kernels::cuda

using namespace detnas;
namespace kc = detnas::kernels::cuda;
namespace kcpu = detnas::kernels::cpu;

namespace {

// Odd lengths around the block size (256) and warp size; 765 = 3 * 15 * 17.
const int64_t kLengths[] = {1, 7, 31, 33, 255, 256, 257, 765, 1000};
// A small grid and a block that is not a multiple of 32, so the grid-stride loops
// run several iterations per thread (the host wrappers size the grid to n).
constexpr unsigned kSmallGrid = 2, kOddBlock = 48;

std::vector<float> input(int64_t n, uint64_t seed) {
  std::vector<float> x = test::randn_f(n, seed);
  for (int64_t i = 0; i < n; i += 5) x[size_t(i)] = 0.0f;  // the ReLU kink
  return x;
}

using test::same;

const GradientMode kModes[] = {GradientMode::Overwrite, GradientMode::Accumulate};

}  // namespace

DETNAS_EMU_KERNEL_TEST("relu_forward_kernel", "relu_forward_kernel matches cpu::relu_forward") {
  for (int64_t n : kLengths) {
    CAPTURE(n);
    const std::vector<float> x = input(n, 1);
    std::vector<float> ref(static_cast<size_t>(n)), y(size_t(n), NAN), y2(size_t(n), NAN);
    kcpu::relu_forward(n, x.data(), ref.data());
    kc::relu_forward(n, x.data(), y.data(), nullptr);
    CHECK(same("relu_forward", y, ref, test::Tol::exact()));
    DETNAS_LAUNCH(kc::relu_forward_kernel, kSmallGrid, kOddBlock, 0, nullptr, n, x.data(), y2.data());
    CHECK(same("relu_forward_kernel <<<2, 48>>>", y2, ref, test::Tol::exact()));
  }
}

DETNAS_EMU_KERNEL_TEST("relu_backward_kernel", "relu_backward_kernel matches cpu::relu_backward") {
  for (int64_t n : kLengths) {
    CAPTURE(n);
    const std::vector<float> x = input(n, 2), dy = test::randn_f(n, 3), dx0 = test::randn_f(n, 4);
    for (GradientMode mode : kModes) {
      CAPTURE(int(mode));
      std::vector<float> ref = dx0, dx = dx0, dx2 = dx0;
      kcpu::relu_backward(n, x.data(), dy.data(), ref.data(), mode);
      kc::relu_backward(n, x.data(), dy.data(), dx.data(), mode, nullptr);
      CHECK(same("relu_backward", dx, ref, test::Tol::exact()));
      DETNAS_LAUNCH(kc::relu_backward_kernel, kSmallGrid, kOddBlock, 0, nullptr, n, x.data(), dy.data(), dx2.data(),
                    mode);
      CHECK(same("relu_backward_kernel <<<2, 48>>>", dx2, ref, test::Tol::exact()));
    }
    std::vector<float> untouched = dx0;  // Ignore: the wrapper launches nothing
    kc::relu_backward(n, x.data(), dy.data(), untouched.data(), GradientMode::Ignore, nullptr);
    CHECK(untouched == dx0);
  }
}

DETNAS_EMU_KERNEL_TEST("add_forward_kernel", "add_forward_kernel matches cpu::add_forward") {
  for (int64_t n : kLengths) {
    CAPTURE(n);
    const std::vector<float> a = test::randn_f(n, 5), b = test::randn_f(n, 6);
    std::vector<float> ref(static_cast<size_t>(n)), y(size_t(n), NAN), y2(size_t(n), NAN);
    kcpu::add_forward(n, a.data(), b.data(), ref.data());
    kc::add_forward(n, a.data(), b.data(), y.data(), nullptr);
    CHECK(same("add_forward", y, ref, test::Tol::exact()));
    DETNAS_LAUNCH(kc::add_forward_kernel, kSmallGrid, kOddBlock, 0, nullptr, n, a.data(), b.data(), y2.data());
    CHECK(same("add_forward_kernel <<<2, 48>>>", y2, ref, test::Tol::exact()));
  }
}

DETNAS_EMU_KERNEL_TEST("scale_backward_kernel", "scale_backward_kernel matches cpu::scale_backward") {
  const float alpha = -0.37f;
  for (int64_t n : kLengths) {
    CAPTURE(n);
    const std::vector<float> dy = test::randn_f(n, 7), dx0 = test::randn_f(n, 8);
    for (GradientMode mode : kModes) {
      CAPTURE(int(mode));
      const test::Tol tol = test::Tol::exact();  // same math, same compiler, no FMA contraction (Makefile)
      std::vector<float> ref = dx0, dx = dx0, dx2 = dx0;
      kcpu::scale_backward(n, alpha, dy.data(), ref.data(), mode);
      kc::scale_backward(n, alpha, dy.data(), dx.data(), mode, nullptr);
      CHECK(same("scale_backward", dx, ref, tol));
      DETNAS_LAUNCH(kc::scale_backward_kernel, kSmallGrid, kOddBlock, 0, nullptr, n, alpha, dy.data(), dx2.data(),
                    mode);
      CHECK(same("scale_backward_kernel <<<2, 48>>>", dx2, ref, tol));
    }
    std::vector<float> untouched = dx0;
    kc::scale_backward(n, alpha, dy.data(), untouched.data(), GradientMode::Ignore, nullptr);
    CHECK(untouched == dx0);
  }
}
