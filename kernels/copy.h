// Strided N-d copy (rank <= 5): the one data-movement primitive behind
// contiguous(), narrow backward and views. Defining math: the element offset of
// a multi-index under a stride vector.
#pragma once
#include "kernels/common.h"

namespace detnas::kernels {

constexpr int kMaxRank = 5;

struct StridedLayout {
  int rank = 0;
  int64_t shape[kMaxRank] = {0, 0, 0, 0, 0};
  int64_t src_stride[kMaxRank] = {0, 0, 0, 0, 0};
  int64_t dst_stride[kMaxRank] = {0, 0, 0, 0, 0};
};

// Offsets of linear element i (row-major over shape) in src and dst.
DETNAS_HD void strided_offsets(const StridedLayout& L, int64_t i, int64_t* src_off, int64_t* dst_off) {
  int64_t s = 0, d = 0;
  for (int k = L.rank - 1; k >= 0; --k) {
    int64_t idx = i % L.shape[k];
    i /= L.shape[k];
    s += idx * L.src_stride[k];
    d += idx * L.dst_stride[k];
  }
  *src_off = s;
  *dst_off = d;
}

// The same offsets for a layout of exactly kRank dims (a compile-time loop, so a
// GPU keeps the layout in registers). A layout of lower rank is first padded with
// leading size-1 dims (pad_layout), which leaves every offset unchanged.
template <int kRank>
DETNAS_HD void strided_offsets_fixed(const StridedLayout& L, int64_t i, int64_t* src_off, int64_t* dst_off) {
  int64_t s = 0, d = 0;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int k = kRank - 1; k >= 0; --k) {
    int64_t idx = i % L.shape[k];
    i /= L.shape[k];
    s += idx * L.src_stride[k];
    d += idx * L.dst_stride[k];
  }
  *src_off = s;
  *dst_off = d;
}
inline StridedLayout pad_layout(const StridedLayout& L) {
  StridedLayout P;
  P.rank = kMaxRank;
  const int pad = kMaxRank - L.rank;
  for (int k = 0; k < kMaxRank; ++k) {
    const bool real = k >= pad;
    P.shape[k] = real ? L.shape[k - pad] : 1;
    P.src_stride[k] = real ? L.src_stride[k - pad] : 0;
    P.dst_stride[k] = real ? L.dst_stride[k - pad] : 0;
  }
  return P;
}

namespace cpu {
// src (shape, src_stride)  dst (shape, dst_stride)  =, or += with Accumulate
template <typename T>
void strided_copy(const StridedLayout& L, const T* src, T* dst, GradientMode mode);
}  // namespace cpu

}  // namespace detnas::kernels
