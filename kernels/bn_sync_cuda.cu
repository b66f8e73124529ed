// CUDA synchronized-BatchNorm kernels over the shared math of kernels/bn_sync.h
// (the functions the CPU loops call; only the summation schedule differs).
//  bn_sync_forward_sums_kernel    one block per channel: sum x, sum x^2 (double, block_sum);
//  bn_sync_normalize_kernel       y = bn_sync_normalize_value per element;
//  bn_sync_backward_sums_kernel   one block per channel: sum dy, sum dy*xhat; the local
//                                 dgamma/dbeta (bn_sync_param_grads);
//  bn_sync_backward_input_kernel  dx = bn_sync_dx per element from the global sums.
#include "kernels/bn_sync.h"
#include "kernels/bn_sync_cuda.h"
#include "kernels/cuda_check.h"
#include "kernels/cuda_reduce.cuh"
#include "kernels/launch.h"

namespace detnas::kernels::cuda {

namespace {
constexpr int kBlock = 256;  // elementwise kernels
}

__global__ void __launch_bounds__(cuda_plan::kBnSyncBlock)
    bn_sync_forward_sums_kernel(int64_t N, int64_t C, int64_t HW, const float* __restrict__ x,
                                double* __restrict__ sums) {
  __shared__ double red[cuda_plan::kBnSyncBlock];
  const int64_t c = blockIdx.x, n = N * HW;
  double s = 0, ss = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const double v = double(x[nchw_channel_element(i, c, C, HW)]);
    s += v;
    ss += bn_sync_sq(v);
  }
  const double sum = block_sum<cuda_plan::kBnSyncBlock>(s, red);
  const double sum_sq = block_sum<cuda_plan::kBnSyncBlock>(ss, red);
  if (threadIdx.x == 0) {
    sums[c] = sum;
    sums[C + c] = sum_sq;
  }
}

__global__ void bn_sync_normalize_kernel(int64_t N, int64_t C, int64_t HW, const float* __restrict__ x,
                                         const double* __restrict__ mean, const double* __restrict__ invstd,
                                         const float* __restrict__ gamma, const float* __restrict__ beta,
                                         float* __restrict__ y) {
  const int64_t total = N * C * HW;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t c = nchw_channel_of(i, C, HW);
    y[i] = float(bn_sync_normalize_value(double(x[i]), mean[c], invstd[c], double(gamma[c]), double(beta[c])));
  }
}

__global__ void __launch_bounds__(cuda_plan::kBnSyncBlock)
    bn_sync_backward_sums_kernel(int64_t N, int64_t C, int64_t HW, const float* __restrict__ x,
                                 const float* __restrict__ dy, const double* __restrict__ mean,
                                 const double* __restrict__ invstd, double* __restrict__ sums, float* dgamma,
                                 GradientMode dgamma_mode, float* dbeta, GradientMode dbeta_mode) {
  __shared__ double red[cuda_plan::kBnSyncBlock];
  const int64_t c = blockIdx.x, n = N * HW;
  const double mu = mean[c], is = invstd[c];
  double sd = 0, sdx = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const int64_t e = nchw_channel_element(i, c, C, HW);
    sd += double(dy[e]);
    sdx += bn_sync_dy_xhat(double(dy[e]), double(x[e]), mu, is);
  }
  const double sum_dy = block_sum<cuda_plan::kBnSyncBlock>(sd, red);
  const double sum_dy_xhat = block_sum<cuda_plan::kBnSyncBlock>(sdx, red);
  if (threadIdx.x == 0) {
    sums[c] = sum_dy;
    sums[C + c] = sum_dy_xhat;
    bn_sync_param_grads(c, sum_dy, sum_dy_xhat, dgamma, dgamma_mode, dbeta, dbeta_mode);
  }
}

__global__ void bn_sync_backward_input_kernel(int64_t N, int64_t C, int64_t HW, const float* __restrict__ x,
                                              const float* __restrict__ dy, const float* __restrict__ gamma,
                                              const double* __restrict__ mean, const double* __restrict__ invstd,
                                              const double* __restrict__ global_sums, int64_t m, float* __restrict__ dx,
                                              GradientMode mode) {
  const int64_t total = N * C * HW;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t c = nchw_channel_of(i, C, HW);
    const BnSyncDx k = bn_sync_dx_channel(double(gamma[c]), invstd[c], global_sums[c], global_sums[C + c], m);
    write_grad(dx + i, float(bn_sync_dx(double(dy[i]), double(x[i]), mean[c], invstd[c], k)), mode);
  }
}

void bn_sync_forward_sums(int64_t N, int64_t C, int64_t HW, const float* x, double* sums, cudaStream_t stream) {
  if (C == 0) return;
  DETNAS_LAUNCH(bn_sync_forward_sums_kernel, cuda_plan::bn_sync_channel_grid(C), cuda_plan::kBnSyncBlock, 0, stream, N,
                C, HW, x, sums);
  DETNAS_CUDA_CHECK_LAUNCH("bn_sync_forward_sums_kernel");
}

void bn_sync_normalize(int64_t N, int64_t C, int64_t HW, const float* x, const double* mean, const double* invstd,
                       const float* gamma, const float* beta, float* y, cudaStream_t stream) {
  const int64_t total = N * C * HW;
  if (total == 0) return;
  DETNAS_LAUNCH(bn_sync_normalize_kernel, cuda_plan::grid_1d(total, kBlock), kBlock, 0, stream, N, C, HW, x, mean,
                invstd, gamma, beta, y);
  DETNAS_CUDA_CHECK_LAUNCH("bn_sync_normalize_kernel");
}

void bn_sync_backward_sums(int64_t N, int64_t C, int64_t HW, const float* x, const float* dy, const double* mean,
                           const double* invstd, double* sums, float* dgamma, GradientMode dgamma_mode, float* dbeta,
                           GradientMode dbeta_mode, cudaStream_t stream) {
  if (C == 0) return;
  DETNAS_LAUNCH(bn_sync_backward_sums_kernel, cuda_plan::bn_sync_channel_grid(C), cuda_plan::kBnSyncBlock, 0, stream, N,
                C, HW, x, dy, mean, invstd, sums, dgamma, dgamma_mode, dbeta, dbeta_mode);
  DETNAS_CUDA_CHECK_LAUNCH("bn_sync_backward_sums_kernel");
}

void bn_sync_backward_input(int64_t N, int64_t C, int64_t HW, const float* x, const float* dy, const float* gamma,
                            const double* mean, const double* invstd, const double* global_sums, int64_t m, float* dx,
                            GradientMode mode, cudaStream_t stream) {
  const int64_t total = N * C * HW;
  if (mode == GradientMode::Ignore || total == 0) return;
  DETNAS_LAUNCH(bn_sync_backward_input_kernel, cuda_plan::grid_1d(total, kBlock), kBlock, 0, stream, N, C, HW, x, dy,
                gamma, mean, invstd, global_sums, m, dx, mode);
  DETNAS_CUDA_CHECK_LAUNCH("bn_sync_backward_input_kernel");
}

}  // namespace detnas::kernels::cuda
