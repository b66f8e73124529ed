// Synchronized BatchNorm2d kernels over NCHW (statistics per channel over every
// rank's N*H*W values). The kernels only produce and consume per-channel sums;
// the sums are added over the ranks by the op (runtime/ops_norm.cpp, host MPI
// allreduce) between the two halves of the forward and of the backward:
//   forward:  bn_sync_forward_sums (local sum x, sum x^2)  -> allreduce with the
//             count -> bn_sync_moments, invstd, running update (host) ->
//             bn_sync_normalize;
//   backward: bn_sync_backward_sums (local sum dy, sum dy*xhat; writes the LOCAL
//             dgamma/dbeta) -> allreduce -> bn_sync_backward_input (dx from the
//             GLOBAL sums and the global count m).
// The per-channel statistics are doubles on the kernel's device: mean (C) and
// invstd (C), computed once on the host from the global sums, so the backward
// uses exactly the forward's statistics (no float rounding of mean or invstd).
// The defining math is in the DETNAS_HD functions below; the CPU kernels
// (kernels/bn_sync_cpu.cpp) and the CUDA kernels (kernels/bn_sync_cuda.cu) call
// them and differ only in how they sum. invstd, the unbiased variance and the
// running update are the plain BatchNorm's (kernels/batchnorm.h), so one rank
// reproduces ops::batch_norm to float rounding.
//
// Precision: the variance comes from sum x^2 / m - mean^2 in double, which loses
// about log10(mean^2 / var) of double's 16 digits to cancellation (fine for
// activations; a channel with |mean| = 1e4 * std still keeps 8 digits). It is
// clamped at 0.
#pragma once
#include <cstdint>

#include "kernels/batchnorm.h"
#include "kernels/common.h"

namespace detnas::kernels {

// ---- forward ----

// The per-element terms of the forward sums: x (into sums[c]) and x^2 (into sums[C + c]).
DETNAS_HD double bn_sync_sq(double x) { return x * x; }

// Mean and biased variance of a channel from its global sums over m values.
struct BnSyncMoments {
  double mean, var;
};
DETNAS_HD BnSyncMoments bn_sync_moments(double sum, double sum_sq, double m) {
  BnSyncMoments r;
  r.mean = sum / m;
  const double var = sum_sq / m - r.mean * r.mean;
  r.var = var > 0.0 ? var : 0.0;
  return r;
}

// Running statistics of channel c after a batch with (global) mean and biased
// variance var over m values: running = (1-f)*running + f*(mean, unbiased var),
// as the plain op (bn_running_update, bn_unbiased; f = momentum or 1/k).
template <typename T>
DETNAS_HD void bn_sync_update_running(int64_t c, double mean, double var, int64_t m, double factor, T* running_mean,
                                      T* running_var) {
  running_mean[c] = T(bn_running_update(double(running_mean[c]), mean, factor));
  running_var[c] = T(bn_running_update(double(running_var[c]), bn_unbiased(var, m), factor));
}

// xhat = (x - mean) * invstd;  y = xhat * gamma + beta (the plain op's order).
DETNAS_HD double bn_sync_xhat(double x, double mean, double invstd) { return (x - mean) * invstd; }
DETNAS_HD double bn_sync_normalize_value(double x, double mean, double invstd, double gamma, double beta) {
  return bn_sync_xhat(x, mean, invstd) * gamma + beta;
}

// ---- backward ----

// The per-element terms of the backward sums: dy (into sums[c]) and dy * xhat (into sums[C + c]).
DETNAS_HD double bn_sync_dy_xhat(double dy, double x, double mean, double invstd) {
  return dy * bn_sync_xhat(x, mean, invstd);
}

// The parameter gradients of channel c from its LOCAL sums: dgamma[c] = sum(dy*xhat),
// dbeta[c] = sum(dy), each skipped with mode Ignore (pointer may then be null).
template <typename T>
DETNAS_HD void bn_sync_param_grads(int64_t c, double sum_dy, double sum_dy_xhat, T* dgamma, GradientMode dgamma_mode,
                                   T* dbeta, GradientMode dbeta_mode) {
  if (dgamma_mode != GradientMode::Ignore) write_grad(dgamma + c, T(sum_dy_xhat), dgamma_mode);
  if (dbeta_mode != GradientMode::Ignore) write_grad(dbeta + c, T(sum_dy), dbeta_mode);
}

// The per-channel factors of dx from the GLOBAL sums over m values.
struct BnSyncDx {
  double scale, mean_dy, mean_dy_xhat;  // gamma*invstd, sum(dy)/m, sum(dy*xhat)/m
};
DETNAS_HD BnSyncDx bn_sync_dx_channel(double gamma, double invstd, double sum_dy, double sum_dy_xhat, int64_t m) {
  BnSyncDx d;
  d.scale = gamma * invstd;
  d.mean_dy = sum_dy / double(m);
  d.mean_dy_xhat = sum_dy_xhat / double(m);
  return d;
}
// dx = gamma*invstd*(dy - sum(dy)/m - xhat*sum(dy*xhat)/m) for one element (bn_train_dx).
DETNAS_HD double bn_sync_dx(double dy, double x, double mean, double invstd, const BnSyncDx& d) {
  return bn_train_dx(dy, bn_sync_xhat(x, mean, invstd), d.mean_dy, d.mean_dy_xhat, d.scale);
}

namespace cpu {

// Shapes: x, y, dy, dx (N,C,HW); gamma, beta, mean, invstd (C); sums (2C) doubles.
// T = float (the op) or double (the finite-difference tests).

// sums[c] = sum of x over channel c's N*HW values, sums[C + c] = sum of x^2 (double).
template <typename T>
void bn_sync_forward_sums(int64_t N, int64_t C, int64_t HW, const T* x, double* sums);

// y = (x - mean[c]) * invstd[c] * gamma[c] + beta[c].
template <typename T>
void bn_sync_normalize(int64_t N, int64_t C, int64_t HW, const T* x, const double* mean, const double* invstd,
                       const T* gamma, const T* beta, T* y);

// sums[c] = sum of dy, sums[C + c] = sum of dy * xhat over channel c (LOCAL, double);
// dgamma = or += sums[C + c], dbeta = or += sums[c] (per mode; Ignore: untouched).
template <typename T>
void bn_sync_backward_sums(int64_t N, int64_t C, int64_t HW, const T* x, const T* dy, const double* mean,
                           const double* invstd, double* sums, T* dgamma, GradientMode dgamma_mode, T* dbeta,
                           GradientMode dbeta_mode);

// dx = or += gamma*invstd*(dy - g[c]/m - xhat*g[C + c]/m), g = global_sums (2C) of
// bn_sync_backward_sums added over the ranks, m = the global count per channel.
template <typename T>
void bn_sync_backward_input(int64_t N, int64_t C, int64_t HW, const T* x, const T* dy, const T* gamma,
                            const double* mean, const double* invstd, const double* global_sums, int64_t m, T* dx,
                            GradientMode mode);

}  // namespace cpu
}  // namespace detnas::kernels
