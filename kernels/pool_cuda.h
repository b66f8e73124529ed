// CUDA twins of kernels/pool.h (max pooling, global average pooling) and
// kernels/upsample.h (nearest upsampling), float, device pointers. Every backward
// is a gather (one thread per input element: maxpool_input_grad_value,
// global_avg_pool_grad, upsample_nearest_x2_grad / upsample_nearest_grad_gather,
// contributions added in the CPU's scan order), so results are deterministic and
// equal the CPU's bit for bit.
#pragma once
#include <cstdint>

#include "kernels/common.h"
#include "kernels/pool.h"
#include "kernels/upsample.h"

typedef struct CUstream_st* cudaStream_t;

namespace detnas::kernels::cuda {
void max_pool2d_forward(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, const PoolWindow& win,
                        const float* x, float* y, cudaStream_t stream);
void max_pool2d_backward_input(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, const PoolWindow& win,
                               const float* x, const float* dy, float* dx, GradientMode mode, cudaStream_t stream);
void global_avg_pool_forward(int64_t planes, int64_t HW, const float* x, float* y, cudaStream_t stream);
void global_avg_pool_backward_input(int64_t planes, int64_t HW, const float* dy, float* dx, GradientMode mode,
                                    cudaStream_t stream);
void upsample_nearest2d_forward(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, const float* x, float* y,
                                cudaStream_t stream);
void upsample_nearest2d_backward_input(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, const float* dy,
                                       float* dx, GradientMode mode, cudaStream_t stream);
}  // namespace detnas::kernels::cuda
