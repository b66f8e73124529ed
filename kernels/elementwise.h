// Elementwise kernels: ReLU, add, scale, product, the plain sum and its scalar
// broadcast, and the fixed-order sum of squares. The per-element math is written
// once as DETNAS_HD functions; the CPU loops below and the CUDA kernels
// (kernels/elementwise_cuda.cu) share it.
// Not here: device dispatch and autograd (runtime/ops_elementwise.h,
// runtime/ops_optim.h), the loss reductions (kernels/loss.h).
#pragma once
#include <cstdint>

#include "kernels/common.h"

namespace detnas::kernels {

template <typename T>
DETNAS_HD T relu_value(T x) {
  return x > T(0) ? x : T(0);
}
// Subgradient choice at the kink: 0 at x == 0 (as torch).
template <typename T>
DETNAS_HD T relu_grad(T x, T dy) {
  return x > T(0) ? dy : T(0);
}
template <typename T>
DETNAS_HD T add_value(T a, T b) {
  return a + b;
}
// alpha * x: mul_scalar, add's and mul_scalar's backward, in-place scaling.
template <typename T>
DETNAS_HD T scale_value(T alpha, T x) {
  return alpha * x;
}
// Product y = a * b; its gradient for one factor is dy times the other factor
// (the runtime's mul and the dropout mask).
template <typename T>
DETNAS_HD T mul_value(T a, T b) {
  return a * b;
}
template <typename T>
DETNAS_HD T mul_grad(T dy, T other) {
  return dy * other;
}

namespace cpu {
// x (n)  y (n) =            (in-place allowed: y == x)
template <typename T>
void relu_forward(int64_t n, const T* x, T* y);
// x (n) forward input  dy (n)  dx (n) = or += (mode)
template <typename T>
void relu_backward(int64_t n, const T* x, const T* dy, T* dx, GradientMode mode);
// a (n)  b (n)  y (n) = a + b
template <typename T>
void add_forward(int64_t n, const T* a, const T* b, T* y);
// dy (n)  dx (n) = or += alpha * dy
template <typename T>
void scale_backward(int64_t n, T alpha, const T* dy, T* dx, GradientMode mode);
// a (n)  b (n)  y (n) = a * b (mul_value)
template <typename T>
void mul_forward(int64_t n, const T* a, const T* b, T* y);
// dy (n)  other (n)  dx (n) = or += dy * other (mul_grad): mul's and dropout's backward
template <typename T>
void mul_backward(int64_t n, const T* dy, const T* other, T* dx, GradientMode mode);
// x (n)  y (n) = alpha * x; in place allowed (y == x)
template <typename T>
void scale(int64_t n, T alpha, const T* x, T* y);
// x (n)  y (1) = the sum of x added in double serially in index order, rounded once
template <typename T>
void sum_forward(int64_t n, const T* x, T* y);
// s (1)  dx (n) = or += *s: sum's backward
template <typename T>
void broadcast_scalar(int64_t n, const T* s, T* dx, GradientMode mode);
// x (n) -> sum of x[i]^2, squared and added in double in an order fixed by n
// alone (at most 256 chunks of at least 64Ki elements, chunk sums added in
// order): the same value on any thread count and run to run.
template <typename T>
double sum_squares(int64_t n, const T* x);
}  // namespace cpu

}  // namespace detnas::kernels
