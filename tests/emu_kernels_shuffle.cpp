// Emulated channel data-movement kernels (kernels/shuffle_cuda.cu) against the
// CPU twins (kernels/shuffle_cpu.cpp): bit-exact, odd plane sizes, both gradient
// modes, null halves, concat slices with wider sample strides, and the float4
// path next to the scalar one.
// clang-format off
#include "tests/emu/emu.h"  // first: renames namespace cuda and defines DETNAS_EMU
// clang-format on

#include <cmath>
#include <vector>

#include "kernels/launch.h"
#include "kernels/shuffle.h"
#include "kernels/shuffle_cuda.h"
#include "tests/emu/emu_test.h"
#include "tests/test_util.h"

namespace detnas::kernels::cuda {
__global__ void copy_rows_kernel(int64_t N, int64_t L, const float* src, int64_t src_stride, float* dst,
                                 int64_t dst_stride, GradientMode mode);
}

using namespace detnas;
namespace kc = detnas::kernels::cuda;
namespace kcpu = detnas::kernels::cpu;

namespace {
using test::same;
const GradientMode kModes[] = {GradientMode::Overwrite, GradientMode::Accumulate};
struct Dims {
  int64_t N, C, HW, G;
};
const Dims kDims[] = {{1, 2, 1, 2}, {2, 6, 7, 2}, {3, 6, 5, 3}, {2, 12, 9, 4}, {1, 8, 33, 2}, {2, 4, 16, 4}};
}  // namespace

DETNAS_EMU_KERNEL_TEST("channel_shuffle_kernel", "channel_shuffle_kernel matches cpu channel shuffle fwd/bwd") {
  for (const Dims& d : kDims) {
    CAPTURE(d.N);
    CAPTURE(d.C);
    CAPTURE(d.HW);
    CAPTURE(d.G);
    const int64_t n = d.N * d.C * d.HW;
    const std::vector<float> x = test::randn_f(n, 41), dx0 = test::randn_f(n, 42);
    std::vector<float> ref(static_cast<size_t>(n)), y(size_t(n), NAN);
    kcpu::channel_shuffle_forward(d.N, d.C, d.HW, d.G, x.data(), ref.data());
    kc::channel_shuffle_forward(d.N, d.C, d.HW, d.G, x.data(), y.data(), nullptr);
    CHECK(same("channel_shuffle_forward", y, ref));
    for (GradientMode mode : kModes) {
      std::vector<float> r = dx0, g = dx0;
      kcpu::channel_shuffle_backward_input(d.N, d.C, d.HW, d.G, x.data(), r.data(), mode);
      kc::channel_shuffle_backward_input(d.N, d.C, d.HW, d.G, x.data(), g.data(), mode, nullptr);
      CHECK(same("channel_shuffle_backward_input", g, r));
    }
  }
  std::vector<float> y(12);
  CHECK_THROWS_AS(kc::channel_shuffle_forward(1, 6, 2, 4, y.data(), y.data(), nullptr), Error);
}

DETNAS_EMU_KERNEL_TEST("split_even_odd_kernel split_even_odd_backward_kernel",
                       "split_even_odd kernels match the cpu split fwd/bwd") {
  for (const Dims& d : kDims) {
    CAPTURE(d.N);
    CAPTURE(d.C);
    CAPTURE(d.HW);
    const int64_t n = d.N * d.C * d.HW, h = n / 2;
    const std::vector<float> x = test::randn_f(n, 43), de = test::randn_f(h, 44), dod = test::randn_f(h, 45),
                             dx0 = test::randn_f(n, 46);
    std::vector<float> re(static_cast<size_t>(h)), ro(static_cast<size_t>(h)), e(size_t(h), NAN), o(size_t(h), NAN);
    kcpu::split_even_odd_forward(d.N, d.C, d.HW, x.data(), re.data(), ro.data());
    kc::split_even_odd_forward(d.N, d.C, d.HW, x.data(), e.data(), o.data(), nullptr);
    CHECK(same("split even", e, re));
    CHECK(same("split odd", o, ro));
    for (GradientMode mode : kModes)
      for (int nulls = 0; nulls < 3; ++nulls) {
        CAPTURE(int(mode));
        CAPTURE(nulls);
        const float* pe = nulls == 1 ? nullptr : de.data();
        const float* po = nulls == 2 ? nullptr : dod.data();
        std::vector<float> r = dx0, g = dx0;
        kcpu::split_even_odd_backward_input(d.N, d.C, d.HW, pe, po, r.data(), mode);
        kc::split_even_odd_backward_input(d.N, d.C, d.HW, pe, po, g.data(), mode, nullptr);
        CHECK(same("split_even_odd_backward_input", g, r));
      }
  }
}

DETNAS_EMU_KERNEL_TEST("copy_rows_kernel copy_rows_vec4_kernel", "concat kernels match the cpu concat fwd/bwd") {
  struct C {
    int64_t N, Ci, Ctot, HW, off, extra;  // extra: the input's sample stride is (Ci + extra) * HW
  };
  const C cases[] = {
      {2, 3, 7, 5, 2, 0}, {3, 2, 6, 4, 4, 2}, {1, 1, 1, 9, 0, 0}, {2, 4, 8, 16, 0, 4}, {2, 1, 3, 7, 1, 1}};
  bool saw_vec = false, saw_scalar = false;
  for (const C& c : cases) {
    CAPTURE(c.N);
    CAPTURE(c.Ci);
    CAPTURE(c.Ctot);
    CAPTURE(c.HW);
    CAPTURE(c.off);
    const int64_t xs = (c.Ci + c.extra) * c.HW, ny = c.N * c.Ctot * c.HW, nx = c.N * c.Ci * c.HW;
    std::vector<float> xbuf = test::randn_f(c.N * xs + 4, 47);
    const float* x = xbuf.data() + 4;  // 16-byte aligned like the vector itself
    const std::vector<float> y0 = test::randn_f(ny, 48), dx0 = test::randn_f(nx, 49);
    std::vector<float> ref = y0, y = y0;
    kcpu::concat_forward(c.N, c.Ci, c.Ctot, c.HW, c.off, x, xs, ref.data());
    kc::concat_forward(c.N, c.Ci, c.Ctot, c.HW, c.off, x, xs, y.data(), nullptr);
    CHECK(same("concat_forward", y, ref));
    const bool vec = kernels::cuda_plan::rows_vec4(x, xs, y.data() + c.off * c.HW, c.Ctot * c.HW, c.Ci * c.HW);
    (vec ? saw_vec : saw_scalar) = true;
    for (GradientMode mode : kModes) {
      std::vector<float> r = dx0, g = dx0;
      kcpu::concat_backward_input(c.N, c.Ci, c.Ctot, c.HW, c.off, y0.data(), r.data(), mode);
      kc::concat_backward_input(c.N, c.Ci, c.Ctot, c.HW, c.off, y0.data(), g.data(), mode, nullptr);
      CHECK(same("concat_backward_input", g, r));
    }
  }
  CHECK(saw_vec);
  CHECK(saw_scalar);
  // The scalar kernel on a row layout the wrapper would vectorise.
  const std::vector<float> src = test::randn_f(3 * 8, 50);
  std::vector<float> dst(3 * 12, 0.0f), ref(3 * 12, 0.0f);
  for (int n = 0; n < 3; ++n)
    for (int j = 0; j < 8; ++j) ref[size_t(n * 12 + j)] = src[size_t(n * 8 + j)];
  DETNAS_LAUNCH(kc::copy_rows_kernel, 2, 5, 0, nullptr, int64_t(3), int64_t(8), src.data(), int64_t(8), dst.data(),
                int64_t(12), GradientMode::Overwrite);
  CHECK(same("copy_rows_kernel <<<2, 5>>>", dst, ref));
}
