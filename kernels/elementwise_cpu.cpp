// CPU elementwise loops (OpenMP over elements for large n).
#include "kernels/elementwise.h"

namespace detnas::kernels::cpu {

constexpr int64_t kParallelMin = 1 << 15;

template <typename T>
void relu_forward(int64_t n, const T* x, T* y) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = relu_value(x[i]);
}

template <typename T>
void relu_backward(int64_t n, const T* x, const T* dy, T* dx, GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
  if (mode == GradientMode::Accumulate) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) dx[i] += relu_grad(x[i], dy[i]);
  } else {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) dx[i] = relu_grad(x[i], dy[i]);
  }
}

template <typename T>
void add_forward(int64_t n, const T* a, const T* b, T* y) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

template <typename T>
void scale_backward(int64_t n, T alpha, const T* dy, T* dx, GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
  if (mode == GradientMode::Accumulate) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) dx[i] += alpha * dy[i];
  } else {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) dx[i] = alpha * dy[i];
  }
}

#define DETNAS_INST(T)                                                                   \
  template void relu_forward<T>(int64_t, const T*, T*);                                  \
  template void relu_backward<T>(int64_t, const T*, const T*, T*, GradientMode);         \
  template void add_forward<T>(int64_t, const T*, const T*, T*);                         \
  template void scale_backward<T>(int64_t, T, const T*, T*, GradientMode);
DETNAS_INST(float)
DETNAS_INST(double)
#undef DETNAS_INST

}  // namespace detnas::kernels::cpu
