// CUDA BatchNorm2d (twin of kernels/batchnorm.h, float, device pointers):
// per-channel statistics by one block per channel (two passes in double, fixed
// tree order: deterministic), the normalisation as an elementwise kernel, and the
// backward as a per-channel reduction plus an elementwise dx kernel. The math is
// the CPU's, from kernels/batchnorm.h (bn_sq_dev, bn_finish_batch_stats,
// bn_save_running_stats, bn_normalize, bn_dy_xc, bn_backward_channel, bn_train_dx). workspace:
// batchnorm_workspace_bytes(C) bytes of device memory (per-channel doubles handed from the reduction to the elementwise
// pass). Not here: mode bookkeeping and autograd (runtime/ops_norm.cpp).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/batchnorm.h"
#include "kernels/common.h"
#include "kernels/cuda_plan.h"

typedef struct CUstream_st* cudaStream_t;

namespace detnas::kernels::cuda_plan {
constexpr int kBnBlock = 256;
inline size_t batchnorm_workspace_bytes(int64_t C) { return size_t(2 * C) * sizeof(double); }
inline unsigned bn_channel_grid(int64_t C) {
  DETNAS_CHECK(C >= 1 && C <= kMaxGridX, "batch_norm (cuda): ", C, " channels");
  return unsigned(C);
}
}  // namespace detnas::kernels::cuda_plan

namespace detnas::kernels::cuda {
void batchnorm_forward_batch(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma, const float* beta,
                             double eps, double update_factor, float* y, float* save_mean, float* save_invstd,
                             float* running_mean, float* running_var, void* workspace, cudaStream_t stream);
void batchnorm_forward_eval(int64_t N, int64_t C, int64_t HW, const float* x, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var, double eps, float* y, float* save_mean,
                            float* save_invstd, void* workspace, cudaStream_t stream);
void batchnorm_backward(int64_t N, int64_t C, int64_t HW, const float* x, const float* dy, const float* gamma,
                        const float* save_mean, const float* save_invstd, BatchNormMode mode,
                        const cpu::BatchNormGrads<float>& g, void* workspace, cudaStream_t stream);
}  // namespace detnas::kernels::cuda
