// CUDA BatchNorm2d kernels over the shared math of kernels/batchnorm.h (the
// functions the CPU loops call; only the summation schedule differs).
//  bn_stats_kernel        one block per channel: mean, then the sum of bn_sq_dev
//                         (double, block_sum); bn_finish_batch_stats (saves,
//                         running update); (mean, invstd) in double into the workspace;
//  bn_eval_stats_kernel   per channel bn_save_running_stats;
//  bn_apply_kernel        y = bn_normalize(x) per element with the workspace stats;
//  bn_backward_reduce_kernel  one block per channel: sum(dy), sum of bn_dy_xc;
//                         bn_backward_channel (dgamma/dbeta, the two means for dx);
//  bn_backward_dx_kernel  dx = bn_train_dx per element.
#include "kernels/batchnorm.h"
#include "kernels/batchnorm_cuda.h"
#include "kernels/cuda_check.h"
#include "kernels/cuda_reduce.cuh"
#include "kernels/launch.h"

namespace detnas::kernels::cuda {

constexpr int kBlock = 256;

__global__ void __launch_bounds__(cuda_plan::kBnBlock)
    bn_stats_kernel(int64_t N, int64_t C, int64_t HW, const float* __restrict__ x, double eps, double factor,
                    float* __restrict__ save_mean, float* __restrict__ save_invstd, float* __restrict__ running_mean,
                    float* __restrict__ running_var, double* __restrict__ stats) {
  __shared__ double red[cuda_plan::kBnBlock];
  const int64_t c = blockIdx.x, n = N * HW;
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += double(x[nchw_channel_element(i, c, C, HW)]);
  const double mean = block_sum<cuda_plan::kBnBlock>(s, red) / double(n);
  double ss = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    ss += bn_sq_dev(double(x[nchw_channel_element(i, c, C, HW)]), mean);
  const double var = block_sum<cuda_plan::kBnBlock>(ss, red) / double(n);
  if (threadIdx.x == 0) {
    const double invstd =
        bn_finish_batch_stats(C, c, mean, var, n, eps, factor, save_mean, save_invstd, running_mean, running_var);
    stats[2 * c] = mean;
    stats[2 * c + 1] = invstd;
  }
}

__global__ void bn_eval_stats_kernel(int64_t C, const float* __restrict__ running_mean,
                                     const float* __restrict__ running_var, double eps, float* __restrict__ save_mean,
                                     float* __restrict__ save_invstd, double* __restrict__ stats) {
  for (int64_t c = global_thread(); c < C; c += global_stride()) {
    const double invstd = bn_save_running_stats(C, c, running_mean, running_var, eps, save_mean, save_invstd);
    stats[2 * c] = double(running_mean[c]);
    stats[2 * c + 1] = invstd;
  }
}

__global__ void bn_apply_kernel(int64_t N, int64_t C, int64_t HW, const float* __restrict__ x,
                                const float* __restrict__ gamma, const float* __restrict__ beta,
                                const double* __restrict__ stats, float* __restrict__ y) {
  const int64_t total = N * C * HW;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t c = nchw_channel_of(i, C, HW);
    y[i] = float(bn_normalize(double(x[i]), stats[2 * c], stats[2 * c + 1], double(gamma[c]), double(beta[c])));
  }
}

// stats out: (mean_dy, mean_dy_xhat) per channel, 0 in eval mode.
__global__ void __launch_bounds__(cuda_plan::kBnBlock)
    bn_backward_reduce_kernel(int64_t N, int64_t C, int64_t HW, const float* __restrict__ x,
                              const float* __restrict__ dy, const float* __restrict__ save_mean,
                              const float* __restrict__ save_invstd, int batch_stats, float* dgamma,
                              GradientMode dgamma_mode, float* dbeta, GradientMode dbeta_mode,
                              double* __restrict__ stats) {
  __shared__ double red[cuda_plan::kBnBlock];
  const int64_t c = blockIdx.x, n = N * HW;
  const double mean = bn_join_mean(save_mean[c], save_mean[C + c]), invstd = double(save_invstd[c]);
  double sd = 0, sdx = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const int64_t e = nchw_channel_element(i, c, C, HW);
    sd += double(dy[e]);
    sdx += bn_dy_xc(double(dy[e]), double(x[e]), mean);
  }
  const double sum_dy = block_sum<cuda_plan::kBnBlock>(sd, red);
  const double sum_dy_xc = block_sum<cuda_plan::kBnBlock>(sdx, red);
  if (threadIdx.x == 0) {
    const BnDxMeans m =
        bn_backward_channel(c, sum_dy, sum_dy_xc, invstd, n, batch_stats != 0, dgamma, dgamma_mode, dbeta, dbeta_mode);
    stats[2 * c] = m.mean_dy;
    stats[2 * c + 1] = m.mean_dy_xhat;
  }
}

__global__ void bn_backward_dx_kernel(int64_t N, int64_t C, int64_t HW, const float* __restrict__ x,
                                      const float* __restrict__ dy, const float* __restrict__ gamma,
                                      const float* __restrict__ save_mean, const float* __restrict__ save_invstd,
                                      const double* __restrict__ stats, float* __restrict__ dx, GradientMode mode) {
  const int64_t total = N * C * HW;
  for (int64_t i = global_thread(); i < total; i += global_stride()) {
    const int64_t c = nchw_channel_of(i, C, HW);
    const double mean = bn_join_mean(save_mean[c], save_mean[C + c]), invstd = double(save_invstd[c]);
    const double v = bn_train_dx(double(dy[i]), bn_xhat(double(x[i]), mean, invstd), stats[2 * c], stats[2 * c + 1],
                                 bn_dx_scale(double(gamma[c]), invstd));
    write_grad(dx + i, float(v), mode);
  }
}

void batchnorm_forward_batch(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma, const float* beta,
                             double eps, double update_factor, float* y, float* save_mean, float* save_invstd,
                             float* running_mean, float* running_var, void* workspace, cudaStream_t stream) {
  DETNAS_CHECK(N * HW > 1, "batch_norm (cuda): batch statistics need more than one value per channel (N*HW = ", N * HW,
               ")");
  DETNAS_CHECK(workspace != nullptr, "batch_norm (cuda): null workspace");
  double* stats = static_cast<double*>(workspace);
  DETNAS_LAUNCH(bn_stats_kernel, cuda_plan::bn_channel_grid(C), cuda_plan::kBnBlock, 0, stream, N, C, HW, x, eps,
                update_factor, save_mean, save_invstd, running_mean, running_var, stats);
  DETNAS_CUDA_CHECK_LAUNCH("bn_stats_kernel");
  DETNAS_LAUNCH(bn_apply_kernel, cuda_plan::grid_1d(N * C * HW, kBlock), kBlock, 0, stream, N, C, HW, x, gamma, beta,
                stats, y);
  DETNAS_CUDA_CHECK_LAUNCH("bn_apply_kernel");
}

void batchnorm_forward_eval(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var, double eps, float* y, float* save_mean,
                            float* save_invstd, void* workspace, cudaStream_t stream) {
  if (C == 0) return;
  DETNAS_CHECK(workspace != nullptr, "batch_norm (cuda): null workspace");
  double* stats = static_cast<double*>(workspace);
  DETNAS_LAUNCH(bn_eval_stats_kernel, cuda_plan::grid_1d(C, kBlock), kBlock, 0, stream, C, running_mean, running_var,
                eps, save_mean, save_invstd, stats);
  DETNAS_CUDA_CHECK_LAUNCH("bn_eval_stats_kernel");
  if (N * HW == 0) return;
  DETNAS_LAUNCH(bn_apply_kernel, cuda_plan::grid_1d(N * C * HW, kBlock), kBlock, 0, stream, N, C, HW, x, gamma, beta,
                stats, y);
  DETNAS_CUDA_CHECK_LAUNCH("bn_apply_kernel");
}

void batchnorm_backward(int64_t N, int64_t C, int64_t HW, const float* x, const float* dy, const float* gamma,
                        const float* save_mean, const float* save_invstd, BatchNormMode mode,
                        const cpu::BatchNormGrads<float>& g, void* workspace, cudaStream_t stream) {
  if (C == 0) return;
  if (g.dx_mode == GradientMode::Ignore && g.dgamma_mode == GradientMode::Ignore &&
      g.dbeta_mode == GradientMode::Ignore)
    return;
  DETNAS_CHECK(workspace != nullptr, "batch_norm (cuda): null workspace");
  double* stats = static_cast<double*>(workspace);
  DETNAS_LAUNCH(bn_backward_reduce_kernel, cuda_plan::bn_channel_grid(C), cuda_plan::kBnBlock, 0, stream, N, C, HW, x,
                dy, save_mean, save_invstd, mode != BatchNormMode::Eval ? 1 : 0, g.dgamma, g.dgamma_mode, g.dbeta,
                g.dbeta_mode, stats);
  DETNAS_CUDA_CHECK_LAUNCH("bn_backward_reduce_kernel");
  if (g.dx_mode == GradientMode::Ignore || N * HW == 0) return;
  DETNAS_LAUNCH(bn_backward_dx_kernel, cuda_plan::grid_1d(N * C * HW, kBlock), kBlock, 0, stream, N, C, HW, x, dy,
                gamma, save_mean, save_invstd, stats, g.dx, g.dx_mode);
  DETNAS_CUDA_CHECK_LAUNCH("bn_backward_dx_kernel");
}

}  // namespace detnas::kernels::cuda
