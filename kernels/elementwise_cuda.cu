// CUDA elementwise kernels: grid-stride loops over the shared math of
// kernels/elementwise.h (relu_value, relu_grad, add_value, scale_value, mul_value,
// mul_grad, write_grad).
#include "kernels/cuda_check.h"
#include "kernels/elementwise.h"
#include "kernels/elementwise_cuda.h"
#include "kernels/launch.h"

namespace detnas::kernels::cuda {

constexpr int kBlock = 256;

__global__ void relu_forward_kernel(int64_t n, const float* __restrict__ x, float* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = relu_value(x[i]);
}

__global__ void relu_backward_kernel(int64_t n, const float* __restrict__ x, const float* __restrict__ dy,
                                     float* __restrict__ dx, GradientMode mode) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    write_grad(dx + i, relu_grad(x[i], dy[i]), mode);
}

__global__ void add_forward_kernel(int64_t n, const float* __restrict__ a, const float* __restrict__ b,
                                   float* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = add_value(a[i], b[i]);
}

__global__ void scale_backward_kernel(int64_t n, float alpha, const float* __restrict__ dy, float* __restrict__ dx,
                                      GradientMode mode) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    write_grad(dx + i, scale_value(alpha, dy[i]), mode);
}

__global__ void mul_forward_kernel(int64_t n, const float* __restrict__ a, const float* __restrict__ b,
                                   float* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = mul_value(a[i], b[i]);
}

__global__ void mul_backward_kernel(int64_t n, const float* __restrict__ dy, const float* __restrict__ other,
                                    float* __restrict__ dx, GradientMode mode) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    write_grad(dx + i, mul_grad(dy[i], other[i]), mode);
}

// No __restrict__: used in place (gradient clipping).
__global__ void scale_kernel(int64_t n, float alpha, const float* x, float* y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = scale_value(alpha, x[i]);
}

__global__ void broadcast_scalar_kernel(int64_t n, const float* __restrict__ s, float* __restrict__ dx,
                                        GradientMode mode) {
  const float v = *s;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    write_grad(dx + i, v, mode);
}

void relu_forward(int64_t n, const float* x, float* y, cudaStream_t stream) {
  if (n == 0) return;
  DETNAS_LAUNCH(relu_forward_kernel, grid_for(n, kBlock), kBlock, 0, stream, n, x, y);
  DETNAS_CUDA_CHECK_LAUNCH("relu_forward_kernel");
}

void relu_backward(int64_t n, const float* x, const float* dy, float* dx, GradientMode mode, cudaStream_t stream) {
  if (n == 0 || mode == GradientMode::Ignore) return;
  DETNAS_LAUNCH(relu_backward_kernel, grid_for(n, kBlock), kBlock, 0, stream, n, x, dy, dx, mode);
  DETNAS_CUDA_CHECK_LAUNCH("relu_backward_kernel");
}

void add_forward(int64_t n, const float* a, const float* b, float* y, cudaStream_t stream) {
  if (n == 0) return;
  DETNAS_LAUNCH(add_forward_kernel, grid_for(n, kBlock), kBlock, 0, stream, n, a, b, y);
  DETNAS_CUDA_CHECK_LAUNCH("add_forward_kernel");
}

void scale_backward(int64_t n, float alpha, const float* dy, float* dx, GradientMode mode, cudaStream_t stream) {
  if (n == 0 || mode == GradientMode::Ignore) return;
  DETNAS_LAUNCH(scale_backward_kernel, grid_for(n, kBlock), kBlock, 0, stream, n, alpha, dy, dx, mode);
  DETNAS_CUDA_CHECK_LAUNCH("scale_backward_kernel");
}

void mul_forward(int64_t n, const float* a, const float* b, float* y, cudaStream_t stream) {
  if (n == 0) return;
  DETNAS_LAUNCH(mul_forward_kernel, grid_for(n, kBlock), kBlock, 0, stream, n, a, b, y);
  DETNAS_CUDA_CHECK_LAUNCH("mul_forward_kernel");
}

void mul_backward(int64_t n, const float* dy, const float* other, float* dx, GradientMode mode, cudaStream_t stream) {
  if (n == 0 || mode == GradientMode::Ignore) return;
  DETNAS_LAUNCH(mul_backward_kernel, grid_for(n, kBlock), kBlock, 0, stream, n, dy, other, dx, mode);
  DETNAS_CUDA_CHECK_LAUNCH("mul_backward_kernel");
}

void scale(int64_t n, float alpha, const float* x, float* y, cudaStream_t stream) {
  if (n == 0) return;
  DETNAS_LAUNCH(scale_kernel, grid_for(n, kBlock), kBlock, 0, stream, n, alpha, x, y);
  DETNAS_CUDA_CHECK_LAUNCH("scale_kernel");
}

void broadcast_scalar(int64_t n, const float* s, float* dx, GradientMode mode, cudaStream_t stream) {
  if (n == 0 || mode == GradientMode::Ignore) return;
  DETNAS_LAUNCH(broadcast_scalar_kernel, grid_for(n, kBlock), kBlock, 0, stream, n, s, dx, mode);
  DETNAS_CUDA_CHECK_LAUNCH("broadcast_scalar_kernel");
}

}  // namespace detnas::kernels::cuda
