// Emulated depthwise conv kernels (kernels/dwconv_cuda.cu) against the CPU twin
// (kernels/dwconv_cpu.cpp) on small odd shapes: K 1/3/5/7, strides 1/2/3,
// paddings 0, K/2, K-1 and beyond, a strided channel slice as input, tiles that
// straddle the plane edge, and a grid smaller than the plane count.
// clang-format off
#include "tests/emu/emu.h"  // first: renames namespace cuda and defines DETNAS_EMU
// clang-format on

#include <cmath>
#include <vector>

#include "kernels/dwconv.h"
#include "kernels/dwconv_cuda.h"
#include "kernels/launch.h"
#include "tests/emu/emu_test.h"
#include "tests/test_util.h"

namespace detnas::kernels::cuda {
__global__ void dwconv_tile_kernel(DwconvShape s, const float* x, const float* w, const float* b, int flip, float* y,
                                   GradientMode mode, int in_w, int in_h, int tiles_w);
__global__ void dwconv_input_grad_kernel(DwconvShape s, const float* w, const float* dy, float* dx, GradientMode mode);
}  // namespace detnas::kernels::cuda

using namespace detnas;
using kernels::DwconvShape;
namespace kc = detnas::kernels::cuda;
namespace kcpu = detnas::kernels::cpu;

namespace {

struct Case {
  int64_t N, C, H, W, K, S, P, extra_channels;  // extra_channels > 0: x is a slice of a wider tensor
};
// Odd sizes, planes smaller and larger than one tile (8/16/32 wide), every K/S of the brief.
const Case kCases[] = {
    {2, 3, 7, 9, 3, 1, 1, 0},  {1, 2, 5, 5, 3, 2, 1, 1},   {2, 2, 9, 17, 5, 1, 2, 0}, {1, 3, 11, 6, 5, 2, 2, 0},
    {1, 2, 8, 33, 7, 1, 3, 2}, {1, 1, 13, 13, 7, 2, 3, 0}, {2, 2, 6, 7, 3, 1, 0, 0},  {1, 2, 6, 7, 3, 1, 2, 0},
    {1, 2, 4, 5, 1, 1, 0, 0},  {1, 2, 9, 10, 3, 3, 1, 0},  {1, 1, 3, 3, 3, 1, 3, 0},  {1, 1, 20, 3, 5, 2, 4, 0},
};

DwconvShape shape_of(const Case& c) {
  DwconvShape s;
  s.N = c.N, s.C = c.C, s.H = c.H, s.W = c.W, s.K = c.K, s.S = c.S, s.P = c.P;
  s.x_batch_stride = (c.C + c.extra_channels) * c.H * c.W;
  return s;
}

using test::same;

}  // namespace

DETNAS_EMU_KERNEL_TEST("dwconv_tile_kernel", "dwconv_tile_kernel matches cpu::dwconv_forward") {
  for (const Case& c : kCases) {
    const DwconvShape s = shape_of(c);
    CAPTURE(s.N);
    CAPTURE(s.C);
    CAPTURE(s.H);
    CAPTURE(s.W);
    CAPTURE(s.K);
    CAPTURE(s.S);
    CAPTURE(s.P);
    const std::vector<float> x = test::randn_f(s.N * s.x_batch_stride, 11), w = test::randn_f(s.C * s.K * s.K, 12),
                             b = test::randn_f(s.C, 13);
    const int64_t ny = s.N * s.C * s.Ho() * s.Wo();
    for (bool bias : {true, false}) {
      std::vector<float> ref(size_t(ny), NAN), y(size_t(ny), NAN);
      kcpu::dwconv_forward(s, x.data(), w.data(), bias ? b.data() : nullptr, ref.data());
      kc::dwconv_forward(s, x.data(), w.data(), bias ? b.data() : nullptr, y.data(), nullptr);
      // Same taps in the same (kh, kw) order, padded taps add exact zeros.
      CHECK(same("dwconv_forward", y, ref, test::Tol::exact()));
    }
    // Fewer grid rows than planes: the kernel strides over planes, reusing shared memory.
    const kernels::cuda_plan::DwTilePlan p = kernels::cuda_plan::dw_tile_plan(s.N * s.C, s.Ho(), s.Wo(), s.K, s.S);
    std::vector<float> ref(static_cast<size_t>(ny)), y2(size_t(ny), NAN);
    kcpu::dwconv_forward(s, x.data(), w.data(), b.data(), ref.data());
    DETNAS_LAUNCH(kc::dwconv_tile_kernel, dim3(p.grid_x, 1), dim3(p.tile_w, p.tile_h), p.shmem, nullptr, s, x.data(),
                  w.data(), b.data(), 0, y2.data(), GradientMode::Overwrite, p.in_w, p.in_h, p.tiles_w);
    CHECK(same("dwconv_tile_kernel grid.y=1", y2, ref, test::Tol::exact()));
  }
}

DETNAS_EMU_KERNEL_TEST("dwconv_tile_kernel dwconv_input_grad_kernel",
                       "dwconv input-gradient kernels match cpu::dwconv_backward_input") {
  for (const Case& c : kCases) {
    DwconvShape s = shape_of(c);
    s.x_batch_stride = s.C * s.H * s.W;
    CAPTURE(s.N);
    CAPTURE(s.C);
    CAPTURE(s.H);
    CAPTURE(s.W);
    CAPTURE(s.K);
    CAPTURE(s.S);
    CAPTURE(s.P);
    const std::vector<float> w = test::randn_f(s.C * s.K * s.K, 21),
                             dy = test::randn_f(s.N * s.C * s.Ho() * s.Wo(), 22);
    const int64_t nx = s.N * s.C * s.H * s.W;
    const std::vector<float> dx0 = test::randn_f(nx, 23);
    for (GradientMode mode : {GradientMode::Overwrite, GradientMode::Accumulate}) {
      CAPTURE(int(mode));
      std::vector<float> ref = dx0, dx = dx0;
      kcpu::dwconv_backward_input(s, w.data(), dy.data(), ref.data(), mode);
      kc::dwconv_backward_input(s, w.data(), dy.data(), dx.data(), mode, nullptr);
      // Up to K*K terms, possibly summed in another order than the CPU's path.
      CHECK(same("dwconv_backward_input", dx, ref, test::Tol::reduction(s.K * s.K + 1, 4.0)));
    }
    std::vector<float> untouched = dx0;
    kc::dwconv_backward_input(s, w.data(), dy.data(), untouched.data(), GradientMode::Ignore, nullptr);
    CHECK(untouched == dx0);
  }
  // The gather kernel on a stride-1 shape too (the wrapper sends those to the tile kernel).
  DwconvShape s = shape_of(kCases[0]);
  s.x_batch_stride = s.C * s.H * s.W;
  const std::vector<float> w = test::randn_f(s.C * s.K * s.K, 24), dy = test::randn_f(s.N * s.C * s.Ho() * s.Wo(), 25);
  std::vector<float> ref(size_t(s.N * s.C * s.H * s.W)), dx(ref.size(), NAN);
  kcpu::dwconv_backward_input(s, w.data(), dy.data(), ref.data(), GradientMode::Overwrite);
  DETNAS_LAUNCH(kc::dwconv_input_grad_kernel, 2, 64, 0, nullptr, s, w.data(), dy.data(), dx.data(),
                GradientMode::Overwrite);
  CHECK(same("dwconv_input_grad_kernel <<<2, 64>>>", dx, ref, test::Tol::reduction(s.K * s.K, 4.0)));
}

DETNAS_EMU_KERNEL_TEST("dwconv_weight_grad_kernel", "dwconv_weight_grad_kernel matches cpu::dwconv_backward_weight") {
  for (const Case& c : kCases) {
    const DwconvShape s = shape_of(c);
    // One block of 256 threads per (channel, tap): the larger cases run in the forward order only.
    if (s.C * s.K * s.K > 50 && order != emu::ThreadOrder::Forward) continue;
    CAPTURE(s.N);
    CAPTURE(s.C);
    CAPTURE(s.H);
    CAPTURE(s.W);
    CAPTURE(s.K);
    CAPTURE(s.S);
    CAPTURE(s.P);
    const std::vector<float> x = test::randn_f(s.N * s.x_batch_stride, 31),
                             dy = test::randn_f(s.N * s.C * s.Ho() * s.Wo(), 32),
                             dw0 = test::randn_f(s.C * s.K * s.K, 33);
    for (GradientMode mode : {GradientMode::Overwrite, GradientMode::Accumulate}) {
      if (mode == GradientMode::Accumulate && s.K > 3) continue;  // the write mode is K-independent; keep it fast
      CAPTURE(int(mode));
      std::vector<float> ref = dw0, dw = dw0;
      kcpu::dwconv_backward_weight(s, x.data(), dy.data(), ref.data(), mode);
      kc::dwconv_backward_weight(s, x.data(), dy.data(), dw.data(), mode, nullptr);
      CHECK(same("dwconv_backward_weight", dw, ref, test::Tol::reduction(s.N * s.Ho() * s.Wo(), 4.0)));
    }
  }
}
