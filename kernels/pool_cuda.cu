// CUDA pooling and nearest-upsampling kernels over kernels/pool.h
// (pool_window_range, maxpool_argmax) and kernels/upsample.h
// (upsample_nearest_src, upsample_nearest_dst_range). Grid-stride loops; the
// backward kernels gather per input element in the CPU's (oh, ow) scan order.
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

// Outputs [lo, hi) along one axis whose window contains input index v.
__device__ __forceinline__ void windows_containing(int64_t v, int64_t out, const PoolWindow& w, int64_t* lo,
                                                   int64_t* hi) {
  const int64_t a = v + w.P - w.K + 1;  // o*S >= a
  int64_t l = a <= 0 ? 0 : (a + w.S - 1) / w.S;
  int64_t h = (v + w.P) / w.S + 1;  // o*S <= v + P
  if (h > out) h = out;
  *lo = l;
  *hi = h > l ? h : l;
}

__global__ void max_pool_backward_kernel(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, PoolWindow win,
                                         const float* __restrict__ x, const float* __restrict__ dy,
                                         float* __restrict__ dx, GradientMode mode) {
  const int64_t total = planes * H * W;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t r = i % (H * W), pl = i / (H * W);
    const float* xp = x + pl * H * W;
    const float* dyp = dy + pl * Ho * Wo;
    int64_t oh0, oh1, ow0, ow1;
    windows_containing(r / W, Ho, win, &oh0, &oh1);
    windows_containing(r % W, Wo, win, &ow0, &ow1);
    float acc = mode == GradientMode::Accumulate ? dx[i] : 0.0f;
    for (int64_t oh = oh0; oh < oh1; ++oh)
      for (int64_t ow = ow0; ow < ow1; ++ow)
        if (maxpool_argmax(xp, H, W, oh, ow, win) == r) acc += dyp[oh * Wo + ow];
    dx[i] = acc;
  }
}

__global__ void global_avg_pool_forward_kernel(int64_t planes, int64_t HW, const float* __restrict__ x,
                                               float* __restrict__ y) {
  for (int64_t pl = global_thread(); pl < planes; pl += global_stride()) {
    const float* p = x + pl * HW;
    double s = 0;
    for (int64_t i = 0; i < HW; ++i) s += double(p[i]);
    y[pl] = float(s / double(HW));
  }
}

__global__ void global_avg_pool_backward_kernel(int64_t planes, int64_t HW, const float* __restrict__ dy,
                                                float* __restrict__ dx, GradientMode mode) {
  const int64_t total = planes * HW;
  for (int64_t i = global_thread(); i < total; i += global_stride())
    write_grad(dx + i, float(double(dy[i / HW]) / double(HW)), mode);
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
  const bool x2 = Ho == 2 * H && Wo == 2 * W;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t w = i % W, h = (i / W) % H, pl = i / (H * W);
    const float* dyp = dy + pl * Ho * Wo;
    float acc;
    if (x2) {  // the CPU's 2x2 grouping
      const float* r0 = dyp + 2 * h * Wo;
      const float* r1 = r0 + Wo;
      const float s = (r0[2 * w] + r0[2 * w + 1]) + (r1[2 * w] + r1[2 * w + 1]);
      acc = mode == GradientMode::Accumulate ? dx[i] + s : s;
    } else {
      int64_t oh0, oh1, ow0, ow1;
      upsample_nearest_dst_range(h, H, Ho, &oh0, &oh1);
      upsample_nearest_dst_range(w, W, Wo, &ow0, &ow1);
      acc = mode == GradientMode::Accumulate ? dx[i] : 0.0f;
      for (int64_t oh = oh0; oh < oh1; ++oh)
        for (int64_t ow = ow0; ow < ow1; ++ow) acc += dyp[oh * Wo + ow];
    }
    dx[i] = acc;
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
  DETNAS_LAUNCH(global_avg_pool_backward_kernel, cuda_plan::grid_1d(planes * HW, kBlock), kBlock, 0, stream, planes,
                HW, dy, dx, mode);
  DETNAS_CUDA_CHECK_LAUNCH("global_avg_pool_backward_kernel");
}

void upsample_nearest2d_forward(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, const float* x, float* y,
                                cudaStream_t stream) {
  const int64_t total = planes * Ho * Wo;
  if (total == 0) return;
  DETNAS_LAUNCH(upsample_nearest_forward_kernel, cuda_plan::grid_1d(total, kBlock), kBlock, 0, stream, planes, H, W,
                Ho, Wo, x, y);
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
