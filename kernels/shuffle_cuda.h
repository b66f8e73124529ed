// CUDA twins of kernels/shuffle.h (channel shuffle, even/odd split, concat),
// float, device pointers, one pass each. Concat (and its backward) is a copy of N
// contiguous runs of Ci*HW floats, with float4 loads/stores when the run length,
// both sample strides and both pointers are 16-byte aligned (cuda_plan::rows_vec4).
// Not here: the half split (a view), Tensor checks (runtime/ops_shape.cpp).
#pragma once
#include <cstdint>

#include "kernels/common.h"
#include "kernels/cuda_plan.h"
#include "kernels/shuffle.h"

typedef struct CUstream_st* cudaStream_t;

namespace detnas::kernels::cuda_plan {
// Whether a copy of rows (length L, source/destination strides in floats) can move
// float4s: every row start 16-byte aligned and L a multiple of 4.
inline bool rows_vec4(const void* src, int64_t src_stride, const void* dst, int64_t dst_stride, int64_t L) {
  return L % 4 == 0 && src_stride % 4 == 0 && dst_stride % 4 == 0 && reinterpret_cast<uintptr_t>(src) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(dst) % 16 == 0;
}
}  // namespace detnas::kernels::cuda_plan

namespace detnas::kernels::cuda {
void channel_shuffle_forward(int64_t N, int64_t C, int64_t HW, int64_t G, const float* x, float* y,
                             cudaStream_t stream);
void channel_shuffle_backward_input(int64_t N, int64_t C, int64_t HW, int64_t G, const float* dy, float* dx,
                                    GradientMode mode, cudaStream_t stream);
void split_even_odd_forward(int64_t N, int64_t C, int64_t HW, const float* x, float* even, float* odd,
                            cudaStream_t stream);
void split_even_odd_backward_input(int64_t N, int64_t C, int64_t HW, const float* d_even, const float* d_odd, float* dx,
                                   GradientMode mode, cudaStream_t stream);
void concat_forward(int64_t N, int64_t Ci, int64_t Ctot, int64_t HW, int64_t c_offset, const float* x,
                    int64_t x_stride_n, float* y, cudaStream_t stream);
void concat_backward_input(int64_t N, int64_t Ci, int64_t Ctot, int64_t HW, int64_t c_offset, const float* dy,
                           float* dx, GradientMode mode, cudaStream_t stream);
}  // namespace detnas::kernels::cuda
