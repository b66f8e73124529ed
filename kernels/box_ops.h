// Box geometry kernels (torchvision formulas, golden README "box_iou", "nms",
// "batched_nms"): pairwise IoU / generalized IoU matrices and greedy NMS, plain
// and per class. Boxes are (x1, y1, x2, y2), area = (x2-x1)*(y2-y1) (no +1).
// The IoU formulas, the NMS visiting order and the suppression test are DETNAS_HD
// functions shared by the CPU kernels (kernels/box_ops_cpu.cpp) and the CUDA
// kernels (kernels/box_ops_cuda.cu).
// Scratch memory: NMS needs a sort order and suppression flags; the kernels take
// a caller-provided workspace of <op>_workspace_bytes(K) bytes (the op layer
// allocates it as a Tensor, so the caching allocator makes repeated calls free)
// and do no allocation themselves; the CUDA NMS takes its workspace the same way
// (cuda_plan::nms_workspace_bytes, kernels/box_ops_cuda.h).
// Not here: input validation (finite values, matching lengths: runtime/ops_box.cpp).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/common.h"

namespace detnas::kernels {

template <typename T>
DETNAS_HD T box_area(const T* b) {
  return (b[2] - b[0]) * (b[3] - b[1]);
}

// Intersection area of two boxes (0 when disjoint or touching).
template <typename T>
DETNAS_HD T box_intersection(const T* a, const T* b) {
  const T lx = a[0] > b[0] ? a[0] : b[0];
  const T ly = a[1] > b[1] ? a[1] : b[1];
  const T rx = a[2] < b[2] ? a[2] : b[2];
  const T ry = a[3] < b[3] ? a[3] : b[3];
  const T w = rx - lx > T(0) ? rx - lx : T(0);
  const T h = ry - ly > T(0) ? ry - ly : T(0);
  return w * h;
}

// IoU = inter / (area_a + area_b - inter), evaluated in this order (as torchvision's
// box_iou and nms). Two zero-area boxes give 0/0 = NaN, as torchvision.
template <typename T>
DETNAS_HD T box_iou_value(const T* a, const T* b, T area_a, T area_b) {
  const T inter = box_intersection(a, b);
  return inter / (area_a + area_b - inter);
}

// Generalized IoU = iou - (C - U) / C, C = area of the smallest enclosing box.
template <typename T>
DETNAS_HD T generalized_box_iou_value(const T* a, const T* b, T area_a, T area_b) {
  const T inter = box_intersection(a, b);
  const T uni = area_a + area_b - inter;
  const T iou = inter / uni;
  const T lx = a[0] < b[0] ? a[0] : b[0];
  const T ly = a[1] < b[1] ? a[1] : b[1];
  const T rx = a[2] > b[2] ? a[2] : b[2];
  const T ry = a[3] > b[3] ? a[3] : b[3];
  const T w = rx - lx > T(0) ? rx - lx : T(0);
  const T h = ry - ly > T(0) ? ry - ly : T(0);
  const T enclosing = w * h;
  return iou - (enclosing - uni) / enclosing;
}

// NMS visiting order: decreasing score, equal scores by increasing index (a strict
// total order, so an unstable sort gives the stable-sort result).
template <typename T>
DETNAS_HD bool nms_before(const T* scores, int64_t i, int64_t j) {
  return scores[i] > scores[j] || (scores[i] == scores[j] && i < j);
}

// Whether kept box a (area_a) suppresses a later box b (area_b) in greedy NMS:
// IoU > iou_threshold, strictly (a NaN IoU suppresses nothing).
template <typename T>
DETNAS_HD bool nms_suppresses(const T* a, T area_a, const T* b, T area_b, T iou_threshold) {
  return box_iou_value(a, b, area_a, area_b) > iou_threshold;
}

namespace cpu {
// a (N,4)  b (M,4)  iou (N,M) =
template <typename T>
void box_iou_forward(int64_t N, int64_t M, const T* a, const T* b, T* iou);
// a (N,4)  b (M,4)  giou (N,M) =
template <typename T>
void generalized_box_iou_forward(int64_t N, int64_t M, const T* a, const T* b, T* giou);

// Workspace sizes in bytes (64-byte aligned workspace expected).
size_t nms_workspace_bytes(int64_t K);
size_t batched_nms_workspace_bytes(int64_t K);

// boxes (K,4)  scores (K)  keep (K) = first `return value` entries: kept indices in
// decreasing score order (ties by increasing index). A box is suppressed by an
// earlier kept box when IoU > iou_threshold (strictly). Scores must not be NaN.
template <typename T>
int64_t nms(int64_t K, const T* boxes, const T* scores, T iou_threshold, void* workspace, int64_t* keep);
// As nms, independently per class (classes (K)); boxes of different classes never
// suppress each other. keep = kept indices of all classes in decreasing score
// order, ties by increasing index. OpenMP over classes.
template <typename T>
int64_t batched_nms(int64_t K, const T* boxes, const T* scores, const int64_t* classes, T iou_threshold,
                    void* workspace, int64_t* keep);
}  // namespace cpu

}  // namespace detnas::kernels
