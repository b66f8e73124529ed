// CUDA pooling and nearest-upsampling kernels over kernels/pool.h
// (maxpool_argmax, maxpool_input_grad_value, global_avg_pool_value / _grad) and
// kernels/upsample.h (upsample_nearest_src, upsample_nearest_x2_grad,
// upsample_nearest_grad_gather). Grid-stride loops; the backward kernels gather
// per input element in the CPU's (oh, ow) scan order.
#include "kernels/cuda_check.h"
#include "kernels/cuda_plan.h"
#include "kernels/cuda_reduce.cuh"
#include "kernels/launch.h"
#include "kernels/pool.h"
#include "kernels/pool_cuda.h"
#include "kernels/upsample.h"

namespace detnas::kernels::cuda {

constexpr int kBlock = 256;

__global__ void max_pool_forward_kernel(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, PoolWindow win,
                                        const float* __restrict__ x, float* __restrict__ y) {
  const int64_t total = planes * Ho * Wo;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t ow = i % Wo, oh = (i / Wo) % Ho, pl = i / (Ho * Wo);
    const float* xp = x + pl * H * W;
    y[i] = xp[maxpool_argmax(xp, H, W, oh, ow, win)];
  }
}

__global__ void max_pool_backward_kernel(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, PoolWindow win,
                                         const float* __restrict__ x, const float* __restrict__ dy,
                                         float* __restrict__ dx, GradientMode mode) {
  const int64_t total = planes * H * W;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t r = i % (H * W), pl = i / (H * W);
    dx[i] = maxpool_input_grad_value(x + pl * H * W, dy + pl * Ho * Wo, H, W, Ho, Wo, win, r,
                                     mode == GradientMode::Accumulate ? dx[i] : 0.0f);
  }
}

__global__ void global_avg_pool_forward_kernel(int64_t planes, int64_t HW, const float* __restrict__ x,
                                               float* __restrict__ y) {
  for (int64_t pl = global_thread(); pl < planes; pl += global_stride()) y[pl] = global_avg_pool_value(x + pl * HW, HW);
}

__global__ void global_avg_pool_backward_kernel(int64_t planes, int64_t HW, const float* __restrict__ dy,
                                                float* __restrict__ dx, GradientMode mode) {
  const int64_t total = planes * HW;
  for (int64_t i = global_thread(); i < total; i += global_stride())
    write_grad(dx + i, global_avg_pool_grad(dy[i / HW], HW), mode);
}

__global__ void upsample_nearest_forward_kernel(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                                                const float* __restrict__ x, float* __restrict__ y) {
  const int64_t total = planes * Ho * Wo;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t ow = i % Wo, oh = (i / Wo) % Ho, pl = i / (Ho * Wo);
    y[i] = x[pl * H * W + upsample_nearest_src(oh, H, Ho) * W + upsample_nearest_src(ow, W, Wo)];
  }
}

__global__ void upsample_nearest_backward_kernel(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                                                 const float* __restrict__ dy, float* __restrict__ dx,
                                                 GradientMode mode) {
  const int64_t total = planes * H * W;
  const bool x2 = upsample_nearest_is_x2(H, W, Ho, Wo);
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t w = i % W, h = (i / W) % H, pl = i / (H * W);
    const float* dyp = dy + pl * Ho * Wo;
    if (x2)  // the CPU's 2x2 grouping
      write_grad(dx + i, upsample_nearest_x2_grad(dyp, Wo, h, w), mode);
    else
      dx[i] = upsample_nearest_grad_gather(dyp, H, W, Ho, Wo, h, w, mode == GradientMode::Accumulate ? dx[i] : 0.0f);
  }
}

void max_pool2d_forward(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, const PoolWindow& win,
                        const float* x, float* y, cudaStream_t stream) {
  const int64_t total = planes * Ho * Wo;
  if (total == 0) return;
  DETNAS_LAUNCH(max_pool_forward_kernel, cuda_plan::grid_1d(total, kBlock), kBlock, 0, stream, planes, H, W, Ho, Wo,
                win, x, y);
  DETNAS_CUDA_CHECK_LAUNCH("max_pool_forward_kernel");
}

void max_pool2d_backward_input(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, const PoolWindow& win,
                               const float* x, const float* dy, float* dx, GradientMode mode, cudaStream_t stream) {
  const int64_t total = planes * H * W;
  if (total == 0 || mode == GradientMode::Ignore) return;
  DETNAS_LAUNCH(max_pool_backward_kernel, cuda_plan::grid_1d(total, kBlock), kBlock, 0, stream, planes, H, W, Ho, Wo,
                win, x, dy, dx, mode);
  DETNAS_CUDA_CHECK_LAUNCH("max_pool_backward_kernel");
}

void global_avg_pool_forward(int64_t planes, int64_t HW, const float* x, float* y, cudaStream_t stream) {
  if (planes == 0) return;
  DETNAS_LAUNCH(global_avg_pool_forward_kernel, cuda_plan::grid_1d(planes, 128), 128, 0, stream, planes, HW, x, y);
  DETNAS_CUDA_CHECK_LAUNCH("global_avg_pool_forward_kernel");
}

void global_avg_pool_backward_input(int64_t planes, int64_t HW, const float* dy, float* dx, GradientMode mode,
                                    cudaStream_t stream) {
  if (planes * HW == 0 || mode == GradientMode::Ignore) return;
  DETNAS_LAUNCH(global_avg_pool_backward_kernel, cuda_plan::grid_1d(planes * HW, kBlock), kBlock, 0, stream, planes, HW,
                dy, dx, mode);
  DETNAS_CUDA_CHECK_LAUNCH("global_avg_pool_backward_kernel");
}

void upsample_nearest2d_forward(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, const float* x, float* y,
                                cudaStream_t stream) {
  const int64_t total = planes * Ho * Wo;
  if (total == 0) return;
  DETNAS_LAUNCH(upsample_nearest_forward_kernel, cuda_plan::grid_1d(total, kBlock), kBlock, 0, stream, planes, H, W, Ho,
                Wo, x, y);
  DETNAS_CUDA_CHECK_LAUNCH("upsample_nearest_forward_kernel");
}

void upsample_nearest2d_backward_input(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, const float* dy,
                                       float* dx, GradientMode mode, cudaStream_t stream) {
  const int64_t total = planes * H * W;
  if (total == 0 || mode == GradientMode::Ignore) return;
  DETNAS_LAUNCH(upsample_nearest_backward_kernel, cuda_plan::grid_1d(total, kBlock), kBlock, 0, stream, planes, H, W,
                Ho, Wo, dy, dx, mode);
  DETNAS_CUDA_CHECK_LAUNCH("upsample_nearest_backward_kernel");
}

}  // namespace detnas::kernels::cuda
