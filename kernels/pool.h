// Pooling kernels over NCHW planes: 2-D max pooling (square window, torch
// semantics) and global average pooling (N,C,H,W) -> (N,C,1,1). The window
// bounds and the arg-max rule are DETNAS_HD functions shared with CUDA.
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
