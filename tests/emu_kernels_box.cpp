// Emulated box kernels (kernels/box_ops_cuda.cu) against the CPU twins
// (kernels/box_ops_cpu.cpp): IoU and GIoU matrices (disjoint, touching, nested,
// zero-area boxes), plain and batched bitmask NMS on clustered boxes with tied
// scores, for box counts around the 64-box tile.
// clang-format off
#include "tests/emu/emu.h"  // first: renames namespace cuda and defines DETNAS_EMU
// clang-format on

#include <cmath>
#include <vector>

#include "kernels/box_ops.h"
#include "kernels/box_ops_cuda.h"
#include "tests/emu/emu_test.h"
#include "tests/test_util.h"

using namespace detnas;
namespace kc = detnas::kernels::cuda;
namespace kcpu = detnas::kernels::cpu;
namespace plan = detnas::kernels::cuda_plan;

namespace {
// K boxes in a few clusters (so NMS suppresses), sizes 1..5.
std::vector<float> clustered_boxes(int64_t K, uint64_t seed) {
  const std::vector<float> r = test::randn_f(4 * K, seed);
  std::vector<float> b(static_cast<size_t>(4 * K));
  for (int64_t i = 0; i < K; ++i) {
    const float cx = float(i % 5) * 6.0f + r[size_t(4 * i)], cy = float(i % 3) * 6.0f + r[size_t(4 * i + 1)];
    const float w = 1.0f + 2.0f * std::fabs(r[size_t(4 * i + 2)]), h = 1.0f + 2.0f * std::fabs(r[size_t(4 * i + 3)]);
    b[size_t(4 * i)] = cx - w, b[size_t(4 * i + 1)] = cy - h, b[size_t(4 * i + 2)] = cx + w,
                 b[size_t(4 * i + 3)] = cy + h;
  }
  return b;
}
}  // namespace

DETNAS_EMU_KERNEL_TEST("box_iou_kernel", "box_iou_kernel matches cpu IoU and GIoU matrices") {
  const int64_t N = 9, M = 13;
  std::vector<float> a = clustered_boxes(N, 121), b = clustered_boxes(M, 122);
  for (int k = 0; k < 4; ++k) b[size_t(k)] = a[size_t(k)];    // identical
  b[4] = a[2], b[5] = a[1], b[6] = a[2] + 1.0f, b[7] = a[3];  // touching
  b[8] = 1.0f, b[9] = 1.0f, b[10] = 1.0f, b[11] = 3.0f;       // zero area
  std::vector<float> ref(static_cast<size_t>(N * M)), got(static_cast<size_t>(N * M));
  kcpu::box_iou_forward(N, M, a.data(), b.data(), ref.data());
  kc::box_iou_forward(N, M, a.data(), b.data(), got.data(), nullptr);
  CHECK(test::check_close("iou", test::to_double(got), test::to_double(ref), {N, M}, test::Tol::exact()));
  kcpu::generalized_box_iou_forward(N, M, a.data(), b.data(), ref.data());
  kc::generalized_box_iou_forward(N, M, a.data(), b.data(), got.data(), nullptr);
  CHECK(test::check_close("giou", test::to_double(got), test::to_double(ref), {N, M}, test::Tol::exact()));
}

DETNAS_EMU_KERNEL_TEST("nms_rank_kernel nms_mask_kernel", "bitmask nms matches cpu nms and batched_nms") {
  for (int64_t K : {int64_t(1), int64_t(17), int64_t(64), int64_t(65), int64_t(150)}) {
    CAPTURE(K);
    const std::vector<float> boxes = clustered_boxes(K, 123);
    std::vector<float> scores = test::randn_f(K, 124);
    for (int64_t i = 3; i < K; i += 7) scores[size_t(i)] = scores[size_t(i - 3)];  // ties: by index
    std::vector<int64_t> classes(static_cast<size_t>(K));
    for (int64_t i = 0; i < K; ++i) classes[size_t(i)] = (i * 7) % 3;
    std::vector<char> ws_gpu(plan::nms_workspace_bytes(K) + 64);
    void* wg = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws_gpu.data()) + 63) / 64 * 64);
    std::vector<char> ws_cpu(kcpu::batched_nms_workspace_bytes(K) + kcpu::nms_workspace_bytes(K) + 64);
    void* wc = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws_cpu.data()) + 63) / 64 * 64);
    for (float thr : {0.3f, 0.5f, 0.0f}) {
      CAPTURE(thr);
      std::vector<int64_t> rk(static_cast<size_t>(K), -1), gk(static_cast<size_t>(K), -1);
      const int64_t rn = kcpu::nms(K, boxes.data(), scores.data(), thr, wc, rk.data());
      const int64_t gn = kc::nms(K, boxes.data(), scores.data(), thr, wg, gk.data(), nullptr);
      CHECK(gn == rn);
      CHECK(gk == rk);
      if (K > 17) CHECK(rn < K);  // the clusters do suppress
      std::fill(rk.begin(), rk.end(), -1), std::fill(gk.begin(), gk.end(), -1);
      const int64_t rb = kcpu::batched_nms(K, boxes.data(), scores.data(), classes.data(), thr, wc, rk.data());
      const int64_t gb = kc::batched_nms(K, boxes.data(), scores.data(), classes.data(), thr, wg, gk.data(), nullptr);
      CHECK(gb == rb);
      CHECK(gk == rk);
    }
  }
}
