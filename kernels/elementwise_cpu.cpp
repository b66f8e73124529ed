// CPU elementwise loops (OpenMP over elements for large n) over the shared math
// of kernels/elementwise.h, and the two sums whose order is fixed on purpose.
#include <algorithm>

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
  for (int64_t i = 0; i < n; ++i) y[i] = add_value(a[i], b[i]);
}

template <typename T>
void scale_backward(int64_t n, T alpha, const T* dy, T* dx, GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
  if (mode == GradientMode::Accumulate) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) dx[i] += scale_value(alpha, dy[i]);
  } else {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) dx[i] = scale_value(alpha, dy[i]);
  }
}

template <typename T>
void mul_forward(int64_t n, const T* a, const T* b, T* y) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = mul_value(a[i], b[i]);
}

template <typename T>
void mul_backward(int64_t n, const T* dy, const T* other, T* dx, GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
  if (mode == GradientMode::Accumulate) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) dx[i] += mul_grad(dy[i], other[i]);
  } else {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) dx[i] = mul_grad(dy[i], other[i]);
  }
}

// In place allowed (y == x): mul_scalar and the optimizer's in-place scale_.
template <typename T>
void scale(int64_t n, T alpha, const T* x, T* y) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = scale_value(alpha, x[i]);
}

template <typename T>
void sum_forward(int64_t n, const T* x, T* y) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i];
  *y = T(s);
}

template <typename T>
void broadcast_scalar(int64_t n, const T* s, T* dx, GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
  const T v = *s;
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) write_grad(dx + i, v, mode);
}

template <typename T>
double sum_squares(int64_t n, const T* x) {
  // An OpenMP reduction's order follows the thread count; these chunks do not.
  constexpr int64_t kMaxChunks = 256;
  const int64_t chunk = std::max<int64_t>(65536, (n + kMaxChunks - 1) / kMaxChunks), nc = (n + chunk - 1) / chunk;
  double part[kMaxChunks];
#pragma omp parallel for schedule(static) if (nc > 1)
  for (int64_t c = 0; c < nc; ++c) {
    double s = 0;
    for (int64_t i = c * chunk, e = std::min(n, i + chunk); i < e; ++i) s += double(x[i]) * double(x[i]);
    part[c] = s;
  }
  double sq = 0;
  for (int64_t c = 0; c < nc; ++c) sq += part[c];
  return sq;
}

#define DETNAS_INST(T)                                                           \
  template void relu_forward<T>(int64_t, const T*, T*);                          \
  template void relu_backward<T>(int64_t, const T*, const T*, T*, GradientMode); \
  template void add_forward<T>(int64_t, const T*, const T*, T*);                 \
  template void scale_backward<T>(int64_t, T, const T*, T*, GradientMode);       \
  template void mul_forward<T>(int64_t, const T*, const T*, T*);                 \
  template void mul_backward<T>(int64_t, const T*, const T*, T*, GradientMode);  \
  template void scale<T>(int64_t, T, const T*, T*);                              \
  template void sum_forward<T>(int64_t, const T*, T*);                           \
  template void broadcast_scalar<T>(int64_t, const T*, T*, GradientMode);        \
  template double sum_squares<T>(int64_t, const T*);
DETNAS_INST(float)
DETNAS_INST(double)
#undef DETNAS_INST

}  // namespace detnas::kernels::cpu
