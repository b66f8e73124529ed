// CUDA bias kernels: a grid-stride add and a per-channel fixed-order reduction
// (block_sum in double).
#include "kernels/bias_cuda.h"
#include "kernels/cuda_check.h"
#include "kernels/cuda_plan.h"
#include "kernels/cuda_reduce.cuh"
#include "kernels/launch.h"

namespace detnas::kernels::cuda {

constexpr int kBlock = 256;

__global__ void bias_add_kernel(int64_t N, int64_t C, int64_t HW, const float* __restrict__ b, float* __restrict__ y) {
  const int64_t total = N * C * HW;
  for (int64_t i = global_thread(); i < total; i += global_stride()) y[i] += b[nchw_channel_of(i, C, HW)];
}

__global__ void __launch_bounds__(kBlock)
    bias_grad_kernel(int64_t N, int64_t C, int64_t HW, const float* __restrict__ dy, float* __restrict__ db,
                     GradientMode mode) {
  __shared__ double red[kBlock];
  const int64_t c = blockIdx.x, n = N * HW;
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += double(dy[nchw_channel_element(i, c, C, HW)]);
  s = block_sum<kBlock>(s, red);
  if (threadIdx.x == 0) write_grad(db + c, float(s), mode);
}

void bias_add(int64_t N, int64_t C, int64_t HW, const float* b, float* y, cudaStream_t stream) {
  if (N * C * HW == 0 || !b) return;
  DETNAS_LAUNCH(bias_add_kernel, cuda_plan::grid_1d(N * C * HW, kBlock), kBlock, 0, stream, N, C, HW, b, y);
  DETNAS_CUDA_CHECK_LAUNCH("bias_add_kernel");
}

void bias_backward(int64_t N, int64_t C, int64_t HW, const float* dy, float* db, GradientMode mode,
                   cudaStream_t stream) {
  if (C == 0 || mode == GradientMode::Ignore) return;
  DETNAS_CHECK(C <= cuda_plan::kMaxGridX, "bias_backward (cuda): ", C, " channels");
  DETNAS_LAUNCH(bias_grad_kernel, unsigned(C), kBlock, 0, stream, N, C, HW, dy, db, mode);
  DETNAS_CUDA_CHECK_LAUNCH("bias_grad_kernel");
}

}  // namespace detnas::kernels::cuda
