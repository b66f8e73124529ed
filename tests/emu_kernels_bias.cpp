// Emulated bias kernels (kernels/bias_cuda.cu) against the CPU bias gradients of
// conv2d and linear (kernels/conv2d_cpu.cpp) and a hand-computed bias add.
// clang-format off
#include "tests/emu/emu.h"  // first: renames namespace cuda and defines DETNAS_EMU
// clang-format on

#include <vector>

#include "kernels/bias_cuda.h"
#include "kernels/conv2d.h"
#include "tests/emu/emu_test.h"
#include "tests/test_util.h"

using namespace detnas;
namespace kc = detnas::kernels::cuda;
namespace kcpu = detnas::kernels::cpu;

DETNAS_EMU_KERNEL_TEST("bias_add_kernel", "bias_add_kernel adds b[c] to every element of channel c") {
  const int64_t N = 3, C = 5, HW = 7;
  const std::vector<float> y0 = test::randn_f(N * C * HW, 131), b = test::randn_f(C, 132);
  std::vector<float> y = y0, ref = y0;
  for (int64_t i = 0; i < N * C * HW; ++i) ref[size_t(i)] += b[size_t((i / HW) % C)];
  kc::bias_add(N, C, HW, b.data(), y.data(), nullptr);
  CHECK(test::check_close("bias_add", test::to_double(y), test::to_double(ref), {N, C, HW}, test::Tol::exact()));
}

DETNAS_EMU_KERNEL_TEST("bias_grad_kernel", "bias_grad_kernel matches the cpu conv2d and linear bias gradients") {
  kernels::Conv2dShape s;
  s.N = 3, s.C = 2, s.H = 9, s.W = 11, s.Cout = 5, s.KH = 3, s.KW = 3, s.S = 1, s.P = 1;
  const int64_t HW = s.Ho() * s.Wo();
  const std::vector<float> dy = test::randn_f(s.N * s.Cout * HW, 133), db0 = test::randn_f(s.Cout, 134);
  for (GradientMode mode : {GradientMode::Overwrite, GradientMode::Accumulate}) {
    std::vector<float> r = db0, g = db0, rl = db0, gl = db0;
    kcpu::conv2d_backward_bias(s, dy.data(), r.data(), mode);
    kc::bias_backward(s.N, s.Cout, HW, dy.data(), g.data(), mode, nullptr);
    CHECK(test::check_close("conv bias grad", test::to_double(g), test::to_double(r), {s.Cout},
                            test::Tol::elementwise()));
    kcpu::linear_backward_bias(s.N * HW, s.Cout, dy.data(), rl.data(), mode);
    kc::bias_backward(s.N * HW, s.Cout, 1, dy.data(), gl.data(), mode, nullptr);
    CHECK(test::check_close("linear bias grad", test::to_double(gl), test::to_double(rl), {s.Cout},
                            test::Tol::elementwise()));
  }
}
