// CPU BatchNorm2d: per-channel statistics in double (two passes: mean, then the
// centred sum of squares), normalisation, running-statistics update and backward,
// as loops over the math of kernels/batchnorm.h (shared with the CUDA kernels).
// Channels are independent, so OpenMP splits over channels for the reductions
// (each channel is reduced by one thread in a fixed order: deterministic) and
// over (n, c) planes for the elementwise pass. Every loop is an `omp simd` loop:
// the double sums run in vector lanes (a fixed lane order set at compile time,
// so still deterministic and independent of the thread count) instead of one
// serial chain of dependent adds, and the per-element double math of
// kernels/batchnorm.h vectorises with float <-> double conversions.
#include <cmath>

#include "kernels/batchnorm.h"

namespace detnas::kernels::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 14;  // elements below which threads cost more than they save
}

template <typename T>
void batchnorm_forward_batch(int64_t N, int64_t C, int64_t HW, const T* x, const T* gamma, const T* beta, double eps,
                             double update_factor, T* y, T* save_mean, T* save_invstd, T* running_mean,
                             T* running_var) {
  const int64_t n = N * HW;
  const int64_t CHW = C * HW;
#pragma omp parallel for schedule(static) if (n * C > kParallelMin)
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t b = 0; b < N; ++b) {
      const T* __restrict p = x + b * CHW + c * HW;
      double sb = 0;
#pragma omp simd reduction(+ : sb)
      for (int64_t i = 0; i < HW; ++i) sb += double(p[i]);
      s += sb;
    }
    const double mean = s / double(n);
    double ss = 0;
    for (int64_t b = 0; b < N; ++b) {
      const T* __restrict p = x + b * CHW + c * HW;
      double sb = 0;
#pragma omp simd reduction(+ : sb)
      for (int64_t i = 0; i < HW; ++i) sb += bn_sq_dev(double(p[i]), mean);
      ss += sb;
    }
    const double var = ss / double(n);
    const double invstd = bn_finish_batch_stats(C, c, mean, var, n, eps, update_factor, save_mean, save_invstd,
                                                running_mean, running_var);
    const double gm = double(gamma[c]), bt = double(beta[c]);
    for (int64_t b = 0; b < N; ++b) {
      const T* __restrict p = x + b * CHW + c * HW;
      T* __restrict q = y + b * CHW + c * HW;
#pragma omp simd
      for (int64_t i = 0; i < HW; ++i) q[i] = T(bn_normalize(double(p[i]), mean, invstd, gm, bt));
    }
  }
}

template <typename T>
void batchnorm_forward_eval(int64_t N, int64_t C, int64_t HW, const T* x, const T* gamma, const T* beta,
                            const T* running_mean, const T* running_var, double eps, T* y, T* save_mean,
                            T* save_invstd) {
  for (int64_t c = 0; c < C; ++c) bn_save_running_stats(C, c, running_mean, running_var, eps, save_mean, save_invstd);
  const int64_t planes = N * C;
#pragma omp parallel for schedule(static) if (planes * HW > kParallelMin)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const int64_t c = pl % C;
    const double mean = double(running_mean[c]);
    const double invstd = bn_invstd(double(running_var[c]), eps);
    const double gm = double(gamma[c]), bt = double(beta[c]);
    const T* __restrict p = x + pl * HW;
    T* __restrict q = y + pl * HW;
#pragma omp simd
    for (int64_t i = 0; i < HW; ++i) q[i] = T(bn_normalize(double(p[i]), mean, invstd, gm, bt));
  }
}

template <typename T>
void batchnorm_fold(int64_t C, int64_t per_out, const T* w, const T* b, const T* gamma, const T* beta,
                    const T* running_mean, const T* running_var, double eps, T* w_out, T* b_out) {
  for (int64_t c = 0; c < C; ++c) {
    const double sc = double(gamma[c]) * bn_invstd(double(running_var[c]), eps);
    const T* __restrict p = w + c * per_out;
    T* __restrict q = w_out + c * per_out;
    for (int64_t i = 0; i < per_out; ++i) q[i] = T(double(p[i]) * sc);
    b_out[c] = T((b ? double(b[c]) : 0.0) * sc + double(beta[c]) - double(running_mean[c]) * sc);
  }
}

template <typename T>
void batchnorm_backward(int64_t N, int64_t C, int64_t HW, const T* x, const T* dy, const T* gamma, const T* save_mean,
                        const T* save_invstd, BatchNormMode mode, const BatchNormGrads<T>& g) {
  const int64_t n = N * HW;
  const int64_t CHW = C * HW;
  const bool batch_stats = mode != BatchNormMode::Eval;
#pragma omp parallel for schedule(static) if (n * C > kParallelMin)
  for (int64_t c = 0; c < C; ++c) {
    const double mean = bn_join_mean(save_mean[c], save_mean[C + c]);
    const double invstd = double(save_invstd[c]);
    double sum_dy = 0, sum_dy_xc = 0;  // sum(dy), sum(dy * (x - mean))
    for (int64_t b = 0; b < N; ++b) {
      const T* __restrict p = x + b * CHW + c * HW;
      const T* __restrict d = dy + b * CHW + c * HW;
      double s0 = 0, s1 = 0;
#pragma omp simd reduction(+ : s0, s1)
      for (int64_t i = 0; i < HW; ++i) {
        s0 += double(d[i]);
        s1 += bn_dy_xc(double(d[i]), double(p[i]), mean);
      }
      sum_dy += s0;
      sum_dy_xc += s1;
    }
    const BnDxMeans m = bn_backward_channel(c, sum_dy, sum_dy_xc, invstd, n, batch_stats, g.dgamma, g.dgamma_mode,
                                            g.dbeta, g.dbeta_mode);
    if (g.dx_mode == GradientMode::Ignore) continue;
    const double scale = bn_dx_scale(double(gamma[c]), invstd);
    const double mean_dy = m.mean_dy, mean_dy_xhat = m.mean_dy_xhat;
    for (int64_t b = 0; b < N; ++b) {
      const T* __restrict p = x + b * CHW + c * HW;
      const T* __restrict d = dy + b * CHW + c * HW;
      T* __restrict o = g.dx + b * CHW + c * HW;
      if (g.dx_mode == GradientMode::Accumulate) {
#pragma omp simd
        for (int64_t i = 0; i < HW; ++i)
          o[i] += T(bn_train_dx(double(d[i]), bn_xhat(double(p[i]), mean, invstd), mean_dy, mean_dy_xhat, scale));
      } else {
#pragma omp simd
        for (int64_t i = 0; i < HW; ++i)
          o[i] = T(bn_train_dx(double(d[i]), bn_xhat(double(p[i]), mean, invstd), mean_dy, mean_dy_xhat, scale));
      }
    }
  }
}

template <typename T>
void batchnorm_reset_running(int64_t C, T* running_mean, T* running_var) {
  for (int64_t c = 0; c < C; ++c) {
    running_mean[c] = T(0);
    running_var[c] = T(1);
  }
}

#define DETNAS_INST(T)                                                                                                 \
  template void batchnorm_forward_batch<T>(int64_t, int64_t, int64_t, const T*, const T*, const T*, double, double,    \
                                           T*, T*, T*, T*, T*);                                                        \
  template void batchnorm_forward_eval<T>(int64_t, int64_t, int64_t, const T*, const T*, const T*, const T*, const T*, \
                                          double, T*, T*, T*);                                                         \
  template void batchnorm_fold<T>(int64_t, int64_t, const T*, const T*, const T*, const T*, const T*, const T*,        \
                                  double, T*, T*);                                                                     \
  template void batchnorm_backward<T>(int64_t, int64_t, int64_t, const T*, const T*, const T*, const T*, const T*,     \
                                      BatchNormMode, const BatchNormGrads<T>&);                                        \
  template void batchnorm_reset_running<T>(int64_t, T*, T*);
DETNAS_INST(float)
DETNAS_INST(double)
#undef DETNAS_INST

}  // namespace detnas::kernels::cpu
