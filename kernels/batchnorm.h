// BatchNorm2d kernels over NCHW, statistics per channel (reduced over N, H, W).
// The defining math (the terms the statistics and backward sums add up, the
// per-channel statistics saved and the running update, normalisation, the
// backward's per-channel terms and per-element dx) is in the DETNAS_HD functions
// below; the CPU kernels (kernels/batchnorm_cpu.cpp) and the CUDA kernels
// (kernels/batchnorm_cuda.cu) call them and differ only in how they sum. Not here:
// the mode bookkeeping (momentum vs. cumulative average, the batch counter) and
// autograd, which live in runtime/ops_norm.cpp.
//
// Saved statistics: the batch mean is kept as an unevaluated sum hi + lo of two
// T values (save_mean is (2,C): row 0 = hi, row 1 = lo), so a float tensor still
// carries the double-precision mean into backward; this keeps x - mean exact
// enough for inputs whose mean is large relative to their spread.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/common.h"

namespace detnas::kernels {

// Train: batch statistics, running stats updated with momentum.
// Eval: running statistics, nothing updated.
// Recalibrate: batch statistics, running stats updated as a cumulative average
// (the caller passes the averaging factor 1/k for the k-th batch since a reset).
enum class BatchNormMode { Train, Eval, Recalibrate };

DETNAS_HD double bn_invstd(double var, double eps) { return 1.0 / std::sqrt(var + eps); }

// xhat = (x - mean) * invstd.
DETNAS_HD double bn_xhat(double x, double mean, double invstd) { return (x - mean) * invstd; }

// y = xhat * gamma + beta, in double.
DETNAS_HD double bn_normalize(double x, double mean, double invstd, double gamma, double beta) {
  return bn_xhat(x, mean, invstd) * gamma + beta;
}

// The terms the reductions add up, in double: (x - mean)^2 for the biased
// variance (second pass, after the mean), dy * (x - mean) for the backward.
DETNAS_HD double bn_sq_dev(double x, double mean) {
  const double d = x - mean;
  return d * d;
}
DETNAS_HD double bn_dy_xc(double dy, double x, double mean) { return dy * (x - mean); }

// running = (1 - factor) * running + factor * stat (factor = momentum, or 1/k).
DETNAS_HD double bn_running_update(double running, double stat, double factor) {
  return (1.0 - factor) * running + factor * stat;
}

// The unbiased variance used for the running estimate (n = N*H*W > 1).
DETNAS_HD double bn_unbiased(double biased_var, int64_t n) { return biased_var * double(n) / double(n - 1); }

// Split a double mean into hi + lo in T.
template <typename T>
DETNAS_HD void bn_split_mean(double mean, T* hi, T* lo) {
  *hi = T(mean);
  *lo = T(mean - double(*hi));
}
template <typename T>
DETNAS_HD double bn_join_mean(T hi, T lo) {
  return double(hi) + double(lo);
}

// Batch statistics of channel c (mean and biased variance of its n values) done:
// saves (save_mean (2,C) as hi/lo, save_invstd (C)), updates the running
// statistics with factor (mean, unbiased variance) and returns invstd.
template <typename T>
DETNAS_HD double bn_finish_batch_stats(int64_t C, int64_t c, double mean, double var, int64_t n, double eps,
                                       double factor, T* save_mean, T* save_invstd, T* running_mean, T* running_var) {
  const double invstd = bn_invstd(var, eps);
  bn_split_mean(mean, save_mean + c, save_mean + C + c);
  save_invstd[c] = T(invstd);
  running_mean[c] = T(bn_running_update(double(running_mean[c]), mean, factor));
  running_var[c] = T(bn_running_update(double(running_var[c]), bn_unbiased(var, n), factor));
  return invstd;
}

// Eval mode, channel c: saves the running statistics (save_mean = (running_mean, 0),
// save_invstd = 1/sqrt(running_var + eps)) and returns that invstd.
template <typename T>
DETNAS_HD double bn_save_running_stats(int64_t C, int64_t c, const T* running_mean, const T* running_var, double eps,
                                       T* save_mean, T* save_invstd) {
  const double invstd = bn_invstd(double(running_var[c]), eps);
  save_mean[c] = running_mean[c];
  save_mean[C + c] = T(0);
  save_invstd[c] = T(invstd);
  return invstd;
}

// The per-channel means of the train-mode dx (both 0 in eval mode, where the
// statistics are constants): mean_dy = sum(dy)/n, mean_dy_xhat = sum(dy*xhat)/n.
struct BnDxMeans {
  double mean_dy, mean_dy_xhat;
};

// The per-channel part of the backward for channel c from its sums over its n
// values, sum_dy and sum_dy_xc = sum of bn_dy_xc: writes dgamma[c] = sum(dy*xhat)
// = sum_dy_xc * invstd and dbeta[c] = sum_dy (each skipped with mode Ignore, when
// its pointer may be null) and returns the means for bn_train_dx.
template <typename T>
DETNAS_HD BnDxMeans bn_backward_channel(int64_t c, double sum_dy, double sum_dy_xc, double invstd, int64_t n,
                                        bool batch_stats, T* dgamma, GradientMode dgamma_mode, T* dbeta,
                                        GradientMode dbeta_mode) {
  const double sum_dy_xhat = sum_dy_xc * invstd;
  if (dgamma_mode != GradientMode::Ignore) write_grad(dgamma + c, T(sum_dy_xhat), dgamma_mode);
  if (dbeta_mode != GradientMode::Ignore) write_grad(dbeta + c, T(sum_dy), dbeta_mode);
  BnDxMeans m;
  m.mean_dy = batch_stats ? sum_dy / double(n) : 0.0;
  m.mean_dy_xhat = batch_stats ? sum_dy_xhat / double(n) : 0.0;
  return m;
}

// dx of BN for one element: scale * (dy - mean_dy - xhat * mean_dy_xhat), scale =
// bn_dx_scale = gamma * invstd (eval mode: the means are 0, so scale * dy).
DETNAS_HD double bn_dx_scale(double gamma, double invstd) { return gamma * invstd; }
DETNAS_HD double bn_train_dx(double dy, double xhat, double mean_dy, double mean_dy_xhat, double scale) {
  return scale * (dy - mean_dy - xhat * mean_dy_xhat);
}

namespace cpu {

// Batch-statistics forward (modes Train and Recalibrate).
//   x (N,C,HW)  gamma (C)  beta (C)  y (N,C,HW) =
//   save_mean (2,C) = (hi, lo)   save_invstd (C) = 1/sqrt(biased_var + eps)
//   running_mean (C), running_var (C) = (1-f)*running + f*(batch mean, unbiased var)
// f = update_factor; requires N*HW > 1. Two passes in double per channel.
template <typename T>
void batchnorm_forward_batch(int64_t N, int64_t C, int64_t HW, const T* x, const T* gamma, const T* beta, double eps,
                             double update_factor, T* y, T* save_mean, T* save_invstd, T* running_mean, T* running_var);

// Running-statistics forward (mode Eval).
//   x (N,C,HW)  gamma, beta, running_mean, running_var (C)  y (N,C,HW) =
//   save_mean (2,C) = (running_mean, 0)   save_invstd (C) = 1/sqrt(running_var + eps)
template <typename T>
void batchnorm_forward_eval(int64_t N, int64_t C, int64_t HW, const T* x, const T* gamma, const T* beta,
                            const T* running_mean, const T* running_var, double eps, T* y, T* save_mean,
                            T* save_invstd);

// Eval-mode BN folded into the conv before it (inference): per output channel c,
//   s = gamma[c] / sqrt(running_var[c] + eps)   (in double, as the eval forward)
//   w_out[c, :] = w[c, :] * s   (per_out weights each)
//   b_out[c] = (b ? b[c] : 0) * s + beta[c] - running_mean[c] * s
// so conv(x, w_out) + b_out equals BN(conv(x, w) + b) up to float rounding.
template <typename T>
void batchnorm_fold(int64_t C, int64_t per_out, const T* w, const T* b, const T* gamma, const T* beta,
                    const T* running_mean, const T* running_var, double eps, T* w_out, T* b_out);

// Gradient outputs of batchnorm_backward; any pointer may be null with mode Ignore.
template <typename T>
struct BatchNormGrads {
  T* dx = nullptr;  // (N,C,HW)
  GradientMode dx_mode = GradientMode::Ignore;
  T* dgamma = nullptr;  // (C)  sum(dy * xhat)
  GradientMode dgamma_mode = GradientMode::Ignore;
  T* dbeta = nullptr;  // (C)  sum(dy)
  GradientMode dbeta_mode = GradientMode::Ignore;
};

// Backward through the statistics saved by the forward of the same mode.
//   x (N,C,HW) forward input  dy (N,C,HW)  gamma (C)  save_mean (2,C)  save_invstd (C)
//   Train/Recalibrate: dx = or += gamma*invstd*(dy - mean(dy) - xhat*mean(dy*xhat))
//   Eval:              dx = or += gamma*invstd*dy
//   dgamma = or += sum(dy*xhat)   dbeta = or += sum(dy)   (sums in double)
template <typename T>
void batchnorm_backward(int64_t N, int64_t C, int64_t HW, const T* x, const T* dy, const T* gamma, const T* save_mean,
                        const T* save_invstd, BatchNormMode mode, const BatchNormGrads<T>& g);

// running_mean (C) = 0   running_var (C) = 1
template <typename T>
void batchnorm_reset_running(int64_t C, T* running_mean, T* running_var);

}  // namespace cpu
}  // namespace detnas::kernels
