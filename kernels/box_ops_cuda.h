// CUDA twins of kernels/box_ops.h (float): IoU / GIoU matrices (one thread per
// pair) and bitmask NMS: ranks by the strict order nms_before (one thread per box,
// O(K^2) comparisons, no sort library), a 64x64-tile kernel that writes for each
// box a bit row of the later boxes it suppresses (IoU > threshold, same class for
// batched NMS), then the greedy pass over the bit rows on the host (one copy back).
// The kept set and order equal the CPU's greedy NMS exactly.
// Pointers are device pointers except `keep`, which is host memory (the indices
// are wanted on the host by postprocessing). workspace: nms_workspace_bytes(K).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/box_ops.h"
#include "kernels/cuda_plan.h"

typedef struct CUstream_st* cudaStream_t;

namespace detnas::kernels::cuda_plan {
constexpr int64_t kNmsTile = 64;
inline int64_t nms_col_blocks(int64_t K) { return (K + kNmsTile - 1) / kNmsTile; }
// order (K int64) then the mask (K x col_blocks uint64), 256-byte aligned parts.
inline size_t nms_order_bytes(int64_t K) { return (size_t(K) * 8 + 255) / 256 * 256; }
inline size_t nms_workspace_bytes(int64_t K) {
  DETNAS_CHECK(K >= 0 && K <= kMaxGridYZ * kNmsTile, "nms (cuda): ", K, " boxes (max ", kMaxGridYZ * kNmsTile, ")");
  return nms_order_bytes(K) + size_t(K) * size_t(nms_col_blocks(K)) * 8;
}
}  // namespace detnas::kernels::cuda_plan

namespace detnas::kernels::cuda {
// a (N,4)  b (M,4)  iou (N,M) =
void box_iou_forward(int64_t N, int64_t M, const float* a, const float* b, float* iou, cudaStream_t stream);
void generalized_box_iou_forward(int64_t N, int64_t M, const float* a, const float* b, float* giou,
                                 cudaStream_t stream);
// boxes (K,4)  scores (K)  [classes (K) or null]  keep (host, K) = kept indices; returns their count.
int64_t nms(int64_t K, const float* boxes, const float* scores, float iou_threshold, void* workspace, int64_t* keep,
            cudaStream_t stream);
int64_t batched_nms(int64_t K, const float* boxes, const float* scores, const int64_t* classes, float iou_threshold,
                    void* workspace, int64_t* keep, cudaStream_t stream);
}  // namespace detnas::kernels::cuda
