// CUDA twins of kernels/elementwise.h (same names, same argument order, plus a
// stream). Pointers are device pointers. The plain sum and the sum of squares run
// on the device as the deterministic two-pass sums of kernels/loss_cuda.h.
#pragma once
#include <cstdint>

#include "kernels/common.h"

typedef struct CUstream_st* cudaStream_t;

namespace detnas::kernels::cuda {
// x (n)  y (n) =
void relu_forward(int64_t n, const float* x, float* y, cudaStream_t stream);
// x (n)  dy (n)  dx (n) = or += (mode)
void relu_backward(int64_t n, const float* x, const float* dy, float* dx, GradientMode mode, cudaStream_t stream);
// a (n)  b (n)  y (n) = a + b (add_value)
void add_forward(int64_t n, const float* a, const float* b, float* y, cudaStream_t stream);
// dy (n)  dx (n) = or += alpha * dy (scale_value)
void scale_backward(int64_t n, float alpha, const float* dy, float* dx, GradientMode mode, cudaStream_t stream);
// a (n)  b (n)  y (n) = a * b (mul_value)
void mul_forward(int64_t n, const float* a, const float* b, float* y, cudaStream_t stream);
// dy (n)  other (n)  dx (n) = or += dy * other (mul_grad): mul's and dropout's backward
void mul_backward(int64_t n, const float* dy, const float* other, float* dx, GradientMode mode, cudaStream_t stream);
// x (n)  y (n) = alpha * x (scale_value); in place allowed (y == x)
void scale(int64_t n, float alpha, const float* x, float* y, cudaStream_t stream);
// s (one device float)  dx (n) = or += *s: sum's backward
void broadcast_scalar(int64_t n, const float* s, float* dx, GradientMode mode, cudaStream_t stream);
}  // namespace detnas::kernels::cuda
