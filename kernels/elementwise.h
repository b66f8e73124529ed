// Elementwise kernels: ReLU, add, scale, product. Defining math as DETNAS_HD functions;
// the CPU loops below and the CUDA kernels (kernels/elementwise_cuda.cu) share it.
#pragma once
#include <cstdint>

#include "kernels/common.h"

namespace detnas::kernels {

template <typename T>
DETNAS_HD T relu_value(T x) { return x > T(0) ? x : T(0); }
// Subgradient choice at the kink: 0 at x == 0 (as torch).
template <typename T>
DETNAS_HD T relu_grad(T x, T dy) { return x > T(0) ? dy : T(0); }
// Product y = a * b; its gradient for one factor is dy times the other factor
// (the runtime's mul, the dropout mask and mul_scalar use these on CUDA).
template <typename T>
DETNAS_HD T mul_value(T a, T b) { return a * b; }
template <typename T>
DETNAS_HD T mul_grad(T dy, T other) { return dy * other; }

namespace cpu {
// x (n)  y (n) =            (in-place allowed: y == x)
template <typename T> void relu_forward(int64_t n, const T* x, T* y);
// x (n) forward input  dy (n)  dx (n) = or += (mode)
template <typename T> void relu_backward(int64_t n, const T* x, const T* dy, T* dx, GradientMode mode);
// a (n)  b (n)  y (n) = a + b
template <typename T> void add_forward(int64_t n, const T* a, const T* b, T* y);
// dy (n)  dx (n) = or += alpha * dy
template <typename T> void scale_backward(int64_t n, T alpha, const T* dy, T* dx, GradientMode mode);
}  // namespace cpu

}  // namespace detnas::kernels
