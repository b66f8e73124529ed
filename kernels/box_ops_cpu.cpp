// CPU box kernels: IoU / GIoU matrices (OpenMP over rows) and greedy NMS.
// NMS sorts an index array in the caller's workspace with std::sort under the
// strict total order nms_before (no allocation; the order is unique so the
// result equals a stable sort). Batched NMS groups boxes by class in the same
// array and runs the greedy pass per class segment in parallel: each segment
// writes only the flags of its own boxes.
#include <algorithm>

#include "kernels/box_ops.h"

namespace detnas::kernels::cpu {

template <typename T>
void box_iou_forward(int64_t N, int64_t M, const T* a, const T* b, T* iou) {
#pragma omp parallel for schedule(static) if (N * M > 4096)
  for (int64_t i = 0; i < N; ++i) {
    const T* ai = a + i * 4;
    const T area_a = box_area(ai);
    for (int64_t j = 0; j < M; ++j) iou[i * M + j] = box_iou_value(ai, b + j * 4, area_a, box_area(b + j * 4));
  }
}

template <typename T>
void generalized_box_iou_forward(int64_t N, int64_t M, const T* a, const T* b, T* giou) {
#pragma omp parallel for schedule(static) if (N * M > 4096)
  for (int64_t i = 0; i < N; ++i) {
    const T* ai = a + i * 4;
    const T area_a = box_area(ai);
    for (int64_t j = 0; j < M; ++j)
      giou[i * M + j] = generalized_box_iou_value(ai, b + j * 4, area_a, box_area(b + j * 4));
  }
}

namespace {
constexpr size_t kAlign = 64;
size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Greedy suppression over the boxes order[0..n) (already in visiting order):
// suppressed[] is indexed by original box index and must be cleared for them.
template <typename T>
void greedy_suppress(const int64_t* order, int64_t n, const T* boxes, T iou_threshold, unsigned char* suppressed) {
  for (int64_t a = 0; a < n; ++a) {
    const int64_t i = order[a];
    if (suppressed[i]) continue;
    const T* bi = boxes + i * 4;
    const T area_i = box_area(bi);
    for (int64_t b = a + 1; b < n; ++b) {
      const int64_t j = order[b];
      if (suppressed[j]) continue;
      const T* bj = boxes + j * 4;
      if (nms_suppresses(bi, area_i, bj, box_area(bj), iou_threshold)) suppressed[j] = 1;
    }
  }
}

// Writes the unsuppressed entries of order[0..K) to keep; returns their count.
int64_t collect(const int64_t* order, int64_t K, const unsigned char* suppressed, int64_t* keep) {
  int64_t n = 0;
  for (int64_t a = 0; a < K; ++a)
    if (!suppressed[order[a]]) keep[n++] = order[a];
  return n;
}
}  // namespace

size_t nms_workspace_bytes(int64_t K) { return round_up(size_t(K) * sizeof(int64_t)) + round_up(size_t(K)); }

size_t batched_nms_workspace_bytes(int64_t K) {
  return round_up(size_t(K) * sizeof(int64_t)) + round_up(size_t(K + 1) * sizeof(int64_t)) + round_up(size_t(K));
}

template <typename T>
int64_t nms(int64_t K, const T* boxes, const T* scores, T iou_threshold, void* workspace, int64_t* keep) {
  if (K <= 0) return 0;
  auto* base = static_cast<unsigned char*>(workspace);
  auto* order = reinterpret_cast<int64_t*>(base);
  auto* suppressed = base + round_up(size_t(K) * sizeof(int64_t));
  for (int64_t i = 0; i < K; ++i) {
    order[i] = i;
    suppressed[i] = 0;
  }
  std::sort(order, order + K, [scores](int64_t i, int64_t j) { return nms_before(scores, i, j); });
  greedy_suppress(order, K, boxes, iou_threshold, suppressed);
  return collect(order, K, suppressed, keep);
}

template <typename T>
int64_t batched_nms(int64_t K, const T* boxes, const T* scores, const int64_t* classes, T iou_threshold,
                    void* workspace, int64_t* keep) {
  if (K <= 0) return 0;
  auto* base = static_cast<unsigned char*>(workspace);
  auto* order = reinterpret_cast<int64_t*>(base);
  auto* seg_start = reinterpret_cast<int64_t*>(base + round_up(size_t(K) * sizeof(int64_t)));
  auto* suppressed = base + round_up(size_t(K) * sizeof(int64_t)) + round_up(size_t(K + 1) * sizeof(int64_t));
  for (int64_t i = 0; i < K; ++i) {
    order[i] = i;
    suppressed[i] = 0;
  }
  // Group by class, each group in NMS visiting order.
  std::sort(order, order + K, [scores, classes](int64_t i, int64_t j) {
    if (classes[i] != classes[j]) return classes[i] < classes[j];
    return nms_before(scores, i, j);
  });
  int64_t segments = 0;
  for (int64_t a = 0; a < K; ++a)
    if (a == 0 || classes[order[a]] != classes[order[a - 1]]) seg_start[segments++] = a;
  seg_start[segments] = K;
#pragma omp parallel for schedule(dynamic, 1) if (segments > 1 && K > 256)
  for (int64_t s = 0; s < segments; ++s)
    greedy_suppress(order + seg_start[s], seg_start[s + 1] - seg_start[s], boxes, iou_threshold, suppressed);
  // All kept boxes in decreasing score order, ties by increasing index.
  std::sort(order, order + K, [scores](int64_t i, int64_t j) { return nms_before(scores, i, j); });
  return collect(order, K, suppressed, keep);
}

#define DETNAS_INST(T)                                                                    \
  template void box_iou_forward<T>(int64_t, int64_t, const T*, const T*, T*);             \
  template void generalized_box_iou_forward<T>(int64_t, int64_t, const T*, const T*, T*); \
  template int64_t nms<T>(int64_t, const T*, const T*, T, void*, int64_t*);               \
  template int64_t batched_nms<T>(int64_t, const T*, const T*, const int64_t*, T, void*, int64_t*);
DETNAS_INST(float)
DETNAS_INST(double)
#undef DETNAS_INST

}  // namespace detnas::kernels::cpu
