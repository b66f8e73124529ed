// CUDA RoIAlign kernels over the shared geometry, sample points and bilinear
// taps of kernels/roi_align.h. Forward: one thread per (box, channel, bin), the
// bin summed in the CPU's order. Backward: one thread per (box, channel, bin),
// shares added with atomicAdd into the box's input-gradient plane.
#include "kernels/cuda_check.h"
#include "kernels/cuda_plan.h"
#include "kernels/cuda_reduce.cuh"
#include "kernels/launch.h"
#include "kernels/roi_align.h"
#include "kernels/roi_align_cuda.h"

namespace detnas::kernels::cuda {

constexpr int kBlock = 256;

__global__ void roi_align_forward_kernel(RoiAlignParams p, int64_t C, int64_t H, int64_t W, int64_t K,
                                         const float* __restrict__ x, const float* __restrict__ boxes,
                                         float* __restrict__ y) {
  const int64_t PH = p.pooled_h, PW = p.pooled_w, total = K * C * PH * PW;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t pw = i % PW, ph = (i / PW) % PH, kc = i / (PW * PH), c = kc % C, k = kc / C;
    const float* box = boxes + k * 5;
    const int64_t n = int64_t(box[0]);
    const RoiGeometry<float> g = roi_align_geometry(p, box);
    y[i] = roi_align_bin(g, H, W, ph, pw, x + (n * C + c) * H * W);
  }
}

struct AtomicAddTo {
  float* plane;
  __device__ void operator()(int64_t off, float v) const { atomicAdd(plane + off, v); }
};

__global__ void roi_align_backward_kernel(RoiAlignParams p, int64_t C, int64_t H, int64_t W, int64_t K,
                                          const float* __restrict__ dy, const float* __restrict__ boxes, float* dx) {
  const int64_t PH = p.pooled_h, PW = p.pooled_w, total = K * C * PH * PW;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t pw = i % PW, ph = (i / PW) % PH, kc = i / (PW * PH), c = kc % C, k = kc / C;
    const float* box = boxes + k * 5;
    const int64_t n = int64_t(box[0]);
    const RoiGeometry<float> g = roi_align_geometry(p, box);
    roi_align_bin_scatter(g, H, W, ph, pw, dy[i], AtomicAddTo{dx + (n * C + c) * H * W});
  }
}

void roi_align_forward(const RoiAlignParams& p, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, const float* x,
                       const float* boxes, float* y, cudaStream_t stream) {
  const int64_t total = K * C * p.pooled_h * p.pooled_w;
  if (total == 0) return;
  DETNAS_LAUNCH(roi_align_forward_kernel, cuda_plan::grid_1d(total, kBlock), kBlock, 0, stream, p, C, H, W, K, x, boxes,
                y);
  DETNAS_CUDA_CHECK_LAUNCH("roi_align_forward_kernel");
}

void roi_align_backward_input(const RoiAlignParams& p, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                              const float* dy, const float* boxes, float* dx, GradientMode mode, cudaStream_t stream) {
  if (mode == GradientMode::Ignore) return;
  if (mode == GradientMode::Overwrite && N * C * H * W > 0)
    DETNAS_CUDA_CHECK(cudaMemsetAsync(dx, 0, size_t(N * C * H * W) * sizeof(float), stream));
  const int64_t total = K * C * p.pooled_h * p.pooled_w;
  if (total == 0) return;
  DETNAS_LAUNCH(roi_align_backward_kernel, cuda_plan::grid_1d(total, kBlock), kBlock, 0, stream, p, C, H, W, K, dy,
                boxes, dx);
  DETNAS_CUDA_CHECK_LAUNCH("roi_align_backward_kernel");
}

}  // namespace detnas::kernels::cuda
