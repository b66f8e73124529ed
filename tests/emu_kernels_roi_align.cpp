// Emulated RoIAlign kernels (kernels/roi_align_cuda.cu) against the CPU twin
// (kernels/roi_align_cpu.cpp): aligned and legacy boxes, fixed and adaptive
// sampling, boxes partly or wholly outside the map, sub-pixel boxes, two images,
// non-square bins; the atomic backward in both gradient modes.
// clang-format off
#include "tests/emu/emu.h"  // first: renames namespace cuda and defines DETNAS_EMU
// clang-format on

#include <cmath>
#include <vector>

#include "kernels/roi_align.h"
#include "kernels/roi_align_cuda.h"
#include "tests/emu/emu_test.h"
#include "tests/test_util.h"

using namespace detnas;
using kernels::RoiAlignMode;
using kernels::RoiAlignParams;
namespace kc = detnas::kernels::cuda;
namespace kcpu = detnas::kernels::cpu;

namespace {
using test::same;
// (batch, x1, y1, x2, y2) in image coordinates (scale 0.5 maps onto a 9 x 7 map).
const std::vector<float> kBoxes = {
    0, 2.0f,  3.0f,  10.0f, 9.0f,   // inside
    1, -4.0f, -3.0f, 6.0f,  5.0f,   // over the top-left edge
    0, 15.0f, 10.0f, 24.0f, 19.0f,  // over the bottom-right edge
    1, 5.0f,  5.0f,  5.6f,  5.3f,   // sub-pixel (legacy clamps it to 1)
    0, 30.0f, 30.0f, 40.0f, 36.0f,  // entirely outside
    1, 0.0f,  0.0f,  17.9f, 13.9f,  // the whole map (adaptive sampling: several samples per bin)
};
}  // namespace

DETNAS_EMU_KERNEL_TEST("roi_align_forward_kernel roi_align_backward_kernel",
                       "roi_align kernels match cpu roi_align fwd/bwd") {
  const int64_t N = 2, C = 3, H = 7, W = 9, K = int64_t(kBoxes.size() / 5);
  const std::vector<float> x = test::randn_f(N * C * H * W, 71);
  for (RoiAlignMode mode : {RoiAlignMode::Legacy, RoiAlignMode::Aligned})
    for (int64_t sr : {int64_t(2), int64_t(0), int64_t(1)}) {
      RoiAlignParams p;
      p.pooled_h = 3, p.pooled_w = 2, p.spatial_scale = 0.5f, p.sampling_ratio = sr, p.mode = mode;
      CAPTURE(int(mode));
      CAPTURE(sr);
      const int64_t ny = K * C * p.pooled_h * p.pooled_w;
      std::vector<float> ref(static_cast<size_t>(ny)), y(size_t(ny), NAN);
      kcpu::roi_align_forward(p, N, C, H, W, K, x.data(), kBoxes.data(), ref.data());
      kc::roi_align_forward(p, N, C, H, W, K, x.data(), kBoxes.data(), y.data(), nullptr);
      CHECK(same("roi_align forward", y, ref, test::Tol::exact()));
      const std::vector<float> dy = test::randn_f(ny, 72), dx0 = test::randn_f(N * C * H * W, 73);
      for (GradientMode gm : {GradientMode::Overwrite, GradientMode::Accumulate}) {
        std::vector<float> r = dx0, g = dx0;
        kcpu::roi_align_backward_input(p, N, C, H, W, K, dy.data(), kBoxes.data(), r.data(), gm);
        kc::roi_align_backward_input(p, N, C, H, W, K, dy.data(), kBoxes.data(), g.data(), gm, nullptr);
        // Atomic adds in thread order: a few dozen shares per pixel, any order.
        CHECK(same("roi_align backward", g, r, test::Tol::reduction(64, 4.0)));
      }
    }
}
