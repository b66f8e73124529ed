// Pooling kernels over NCHW planes: 2-D max pooling (square window, torch
// semantics) and global average pooling (N,C,H,W) -> (N,C,1,1). The window
// bounds, the arg-max rule, the max-pool gradient gather and the global-average
// value and gradient are DETNAS_HD functions that the CPU kernels
// (kernels/pool_cpu.cpp) and the CUDA kernels (kernels/pool_cuda.cu) share.
// Not here: ceil_mode, dilation, average pooling with a window.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/common.h"

namespace detnas::kernels {

// Square pooling window: kernel K, stride S, padding P (padding counts as -inf).
struct PoolWindow {
  int64_t K = 1, S = 1, P = 0;
};

// floor((in + 2P - K) / S) + 1 (torch, ceil_mode = false).
DETNAS_HD int64_t pool_out_size(int64_t in, const PoolWindow& w) { return (in + 2 * w.P - w.K) / w.S + 1; }

// Valid input range [lo, hi) of output position o along an axis of size `in`.
DETNAS_HD void pool_window_range(int64_t o, int64_t in, const PoolWindow& w, int64_t* lo, int64_t* hi) {
  int64_t a = o * w.S - w.P;
  int64_t b = a + w.K;
  *lo = a < 0 ? 0 : a;
  *hi = b > in ? in : b;
}

// Outputs [*lo, *hi) among [0, out) whose window contains input index v along one
// axis (o*S - P <= v < o*S - P + K): the inverse of pool_window_range.
DETNAS_HD void pool_windows_containing(int64_t v, int64_t out, const PoolWindow& w, int64_t* lo, int64_t* hi) {
  const int64_t a = v + w.P - w.K + 1;  // o*S >= a
  int64_t l = a <= 0 ? 0 : (a + w.S - 1) / w.S;
  int64_t h = (v + w.P) / w.S + 1;  // o*S <= v + P
  if (h > out) h = out;
  *lo = l;
  *hi = h > l ? h : l;
}

// Index (h*W + w) of the maximum of the window of (oh, ow) in one plane. Padding
// is -inf. Ties: the first maximum in row-major scan order; a NaN counts as the
// maximum (the last NaN in scan order wins, as torch). The window is never empty
// when P <= K/2 (checked by the op).
template <typename T>
DETNAS_HD int64_t maxpool_argmax(const T* plane, int64_t H, int64_t W, int64_t oh, int64_t ow, const PoolWindow& win) {
  int64_t h0, h1, w0, w1;
  pool_window_range(oh, H, win, &h0, &h1);
  pool_window_range(ow, W, win, &w0, &w1);
  int64_t best = h0 * W + w0;
  T bestv = T(-HUGE_VAL);
  for (int64_t h = h0; h < h1; ++h)
    for (int64_t w = w0; w < w1; ++w) {
      const T v = plane[h * W + w];
      if (v > bestv || v != v) {
        bestv = v;
        best = h * W + w;
      }
    }
  return best;
}

// dx of input element r (= h*W + w) of one plane: acc + the dy of every window
// whose arg-max is r, added in (oh, ow) scan order (the order in which the CPU's
// per-window scatter reaches it). xp, dyp point at the plane.
template <typename T>
DETNAS_HD T maxpool_input_grad_value(const T* xp, const T* dyp, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                                     const PoolWindow& win, int64_t r, T acc) {
  int64_t oh0, oh1, ow0, ow1;
  pool_windows_containing(r / W, Ho, win, &oh0, &oh1);
  pool_windows_containing(r % W, Wo, win, &ow0, &ow1);
  for (int64_t oh = oh0; oh < oh1; ++oh)
    for (int64_t ow = ow0; ow < ow1; ++ow)
      if (maxpool_argmax(xp, H, W, oh, ow, win) == r) acc += dyp[oh * Wo + ow];
  return acc;
}

// Global average of one plane of HW values (summed in double, in order), and the
// gradient every element of the plane gets from the output's dy.
template <typename T>
DETNAS_HD T global_avg_pool_value(const T* p, int64_t HW) {
  double s = 0;
  for (int64_t i = 0; i < HW; ++i) s += double(p[i]);
  return T(s / double(HW));
}
template <typename T>
DETNAS_HD T global_avg_pool_grad(T dy, int64_t HW) {
  return T(double(dy) / double(HW));
}

namespace cpu {

// x (P,H,W)  y (P,Ho,Wo) =   (P = N*C planes)
template <typename T>
void max_pool2d_forward(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, const PoolWindow& win, const T* x,
                        T* y);
// x (P,H,W) forward input  dy (P,Ho,Wo)  dx (P,H,W) = or +=  (each dy goes to its window's arg-max)
template <typename T>
void max_pool2d_backward_input(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, const PoolWindow& win,
                               const T* x, const T* dy, T* dx, GradientMode mode);

// x (P,HW)  y (P) = mean over HW (double accumulation)
template <typename T>
void global_avg_pool_forward(int64_t planes, int64_t HW, const T* x, T* y);
// dy (P)  dx (P,HW) = or += dy / HW
template <typename T>
void global_avg_pool_backward_input(int64_t planes, int64_t HW, const T* dy, T* dx, GradientMode mode);

}  // namespace cpu
}  // namespace detnas::kernels
