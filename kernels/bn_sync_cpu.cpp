// CPU synchronized-BatchNorm kernels: loops over the math of kernels/bn_sync.h
// (shared with the CUDA kernels). The sums run per channel in double, one thread
// per channel in a fixed order (deterministic, independent of the thread count),
// the inner loops as `omp simd` reductions like kernels/batchnorm_cpu.cpp; the
// elementwise passes split over (n, c) planes.
#include "kernels/bn_sync.h"

namespace detnas::kernels::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 14;  // elements below which threads cost more than they save
}

template <typename T>
void bn_sync_forward_sums(int64_t N, int64_t C, int64_t HW, const T* x, double* sums) {
  const int64_t CHW = C * HW;
#pragma omp parallel for schedule(static) if (N * CHW > kParallelMin)
  for (int64_t c = 0; c < C; ++c) {
    double s = 0, ss = 0;
    for (int64_t b = 0; b < N; ++b) {
      const T* __restrict p = x + b * CHW + c * HW;
      double s0 = 0, s1 = 0;
#pragma omp simd reduction(+ : s0, s1)
      for (int64_t i = 0; i < HW; ++i) {
        const double v = double(p[i]);
        s0 += v;
        s1 += bn_sync_sq(v);
      }
      s += s0;
      ss += s1;
    }
    sums[c] = s;
    sums[C + c] = ss;
  }
}

template <typename T>
void bn_sync_normalize(int64_t N, int64_t C, int64_t HW, const T* x, const double* mean, const double* invstd,
                       const T* gamma, const T* beta, T* y) {
  const int64_t planes = N * C;
#pragma omp parallel for schedule(static) if (planes * HW > kParallelMin)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const int64_t c = pl % C;
    const double mu = mean[c], is = invstd[c], gm = double(gamma[c]), bt = double(beta[c]);
    const T* __restrict p = x + pl * HW;
    T* __restrict q = y + pl * HW;
#pragma omp simd
    for (int64_t i = 0; i < HW; ++i) q[i] = T(bn_sync_normalize_value(double(p[i]), mu, is, gm, bt));
  }
}

template <typename T>
void bn_sync_backward_sums(int64_t N, int64_t C, int64_t HW, const T* x, const T* dy, const double* mean,
                           const double* invstd, double* sums, T* dgamma, GradientMode dgamma_mode, T* dbeta,
                           GradientMode dbeta_mode) {
  const int64_t CHW = C * HW;
#pragma omp parallel for schedule(static) if (N * CHW > kParallelMin)
  for (int64_t c = 0; c < C; ++c) {
    const double mu = mean[c], is = invstd[c];
    double sd = 0, sdx = 0;
    for (int64_t b = 0; b < N; ++b) {
      const T* __restrict p = x + b * CHW + c * HW;
      const T* __restrict d = dy + b * CHW + c * HW;
      double s0 = 0, s1 = 0;
#pragma omp simd reduction(+ : s0, s1)
      for (int64_t i = 0; i < HW; ++i) {
        s0 += double(d[i]);
        s1 += bn_sync_dy_xhat(double(d[i]), double(p[i]), mu, is);
      }
      sd += s0;
      sdx += s1;
    }
    sums[c] = sd;
    sums[C + c] = sdx;
    bn_sync_param_grads(c, sd, sdx, dgamma, dgamma_mode, dbeta, dbeta_mode);
  }
}

template <typename T>
void bn_sync_backward_input(int64_t N, int64_t C, int64_t HW, const T* x, const T* dy, const T* gamma,
                            const double* mean, const double* invstd, const double* global_sums, int64_t m, T* dx,
                            GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
  const int64_t planes = N * C;
#pragma omp parallel for schedule(static) if (planes * HW > kParallelMin)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const int64_t c = pl % C;
    const double mu = mean[c], is = invstd[c];
    const BnSyncDx k = bn_sync_dx_channel(double(gamma[c]), is, global_sums[c], global_sums[C + c], m);
    const T* __restrict p = x + pl * HW;
    const T* __restrict d = dy + pl * HW;
    T* __restrict o = dx + pl * HW;
    if (mode == GradientMode::Accumulate) {
#pragma omp simd
      for (int64_t i = 0; i < HW; ++i) o[i] += T(bn_sync_dx(double(d[i]), double(p[i]), mu, is, k));
    } else {
#pragma omp simd
      for (int64_t i = 0; i < HW; ++i) o[i] = T(bn_sync_dx(double(d[i]), double(p[i]), mu, is, k));
    }
  }
}

#define DETNAS_INST(T)                                                                                                \
  template void bn_sync_forward_sums<T>(int64_t, int64_t, int64_t, const T*, double*);                                \
  template void bn_sync_normalize<T>(int64_t, int64_t, int64_t, const T*, const double*, const double*, const T*,     \
                                     const T*, T*);                                                                   \
  template void bn_sync_backward_sums<T>(int64_t, int64_t, int64_t, const T*, const T*, const double*, const double*, \
                                         double*, T*, GradientMode, T*, GradientMode);                                \
  template void bn_sync_backward_input<T>(int64_t, int64_t, int64_t, const T*, const T*, const T*, const double*,     \
                                          const double*, const double*, int64_t, T*, GradientMode);
DETNAS_INST(float)
DETNAS_INST(double)
#undef DETNAS_INST

}  // namespace detnas::kernels::cpu
