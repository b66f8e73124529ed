// CUDA synchronized-BatchNorm kernels (twins of kernels/bn_sync.h's cpu
// functions, float data, device pointers, plus a stream): the per-channel sums
// by one block per channel reducing in double through shared memory (fixed tree
// order: deterministic), the normalisation and dx as grid-stride elementwise
// kernels. mean, invstd and the sums are device doubles. The math is the CPU's,
// from kernels/bn_sync.h. Not here: the allreduce and the running update
// (runtime/ops_norm.cpp).
#pragma once
#include <cstdint>

#include "kernels/common.h"
#include "kernels/cuda_plan.h"

typedef struct CUstream_st* cudaStream_t;

namespace detnas::kernels::cuda_plan {
constexpr int kBnSyncBlock = 256;  // threads of a per-channel reduction block (a power of two)
inline unsigned bn_sync_channel_grid(int64_t C) {
  DETNAS_CHECK(C >= 1 && C <= kMaxGridX, "sync batch_norm (cuda): ", C, " channels");
  return unsigned(C);
}
}  // namespace detnas::kernels::cuda_plan

namespace detnas::kernels::cuda {
// x (N,C,HW)  sums (2C) = (sum x, sum x^2) per channel
void bn_sync_forward_sums(int64_t N, int64_t C, int64_t HW, const float* x, double* sums, cudaStream_t stream);
// y (N,C,HW) = (x - mean) * invstd * gamma + beta
void bn_sync_normalize(int64_t N, int64_t C, int64_t HW, const float* x, const double* mean, const double* invstd,
                       const float* gamma, const float* beta, float* y, cudaStream_t stream);
// sums (2C) = (sum dy, sum dy*xhat) per channel; dgamma, dbeta (C) = or += (per mode) the local sums
void bn_sync_backward_sums(int64_t N, int64_t C, int64_t HW, const float* x, const float* dy, const double* mean,
                           const double* invstd, double* sums, float* dgamma, GradientMode dgamma_mode, float* dbeta,
                           GradientMode dbeta_mode, cudaStream_t stream);
// dx (N,C,HW) = or += gamma*invstd*(dy - g[c]/m - xhat*g[C+c]/m), g = global_sums (2C)
void bn_sync_backward_input(int64_t N, int64_t C, int64_t HW, const float* x, const float* dy, const float* gamma,
                            const double* mean, const double* invstd, const double* global_sums, int64_t m, float* dx,
                            GradientMode mode, cudaStream_t stream);
}  // namespace detnas::kernels::cuda
