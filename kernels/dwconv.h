// Depthwise 2-D convolution (groups == C, weight (C,1,K,K), any K, stride and
// padding; cross-correlation with zero padding, as torch) on raw pointers.
// Direct kernels, never a GEMM per channel: the valid tap range of each output
// row / column is computed once (kernels/conv2d.h: conv_tap_range,
// conv_out_range) so inner loops have no bounds checks. The per-element gather
// forms below define the result and are what a CUDA kernel runs per thread; the
// CPU loops reach the same sums row by row. Not here: dense conv (kernels/conv2d.h),
// Tensor checks and autograd (runtime/ops_conv.h).
#pragma once
#include <cstdint>

#include "kernels/common.h"
#include "kernels/conv2d.h"

namespace detnas::kernels {

// x (N,C,H,W): samples x_batch_stride elements apart (C*H*W when contiguous; more
// for a channel slice of a wider tensor), each sample contiguous.
// w (C,1,K,K); y (N,C,Ho,Wo) contiguous.
struct DwconvShape {
  int64_t N = 0, C = 0, H = 0, W = 0;
  int64_t K = 3, S = 1, P = 1;
  int64_t x_batch_stride = 0;
  DETNAS_HD int64_t Ho() const { return conv_out_size(H, K, S, P); }
  DETNAS_HD int64_t Wo() const { return conv_out_size(W, K, S, P); }
};

// y[oh][ow] of one plane: bias + sum over valid taps (kh outer, kw inner) of
// w[kh][kw] * x[oh*S-P+kh][ow*S-P+kw]. xc, wc point at the channel's plane / kernel.
template <typename T>
DETNAS_HD T dwconv_output_value(const T* xc, const T* wc, T bias, const DwconvShape& s, int64_t oh, int64_t ow) {
  int64_t kh_lo, kh_hi, kw_lo, kw_hi;
  conv_tap_range(oh, s.K, s.S, s.P, s.H, &kh_lo, &kh_hi);
  conv_tap_range(ow, s.K, s.S, s.P, s.W, &kw_lo, &kw_hi);
  T acc = bias;
  for (int64_t kh = kh_lo; kh < kh_hi; ++kh) {
    const T* xr = xc + conv_in_index(oh, kh, s.S, s.P) * s.W;
    for (int64_t kw = kw_lo; kw < kw_hi; ++kw) acc += wc[kh * s.K + kw] * xr[conv_in_index(ow, kw, s.S, s.P)];
  }
  return acc;
}

// dx[ih][iw] of one plane: sum over the outputs (oh, ow) that read it, i.e.
// oh*S - P + kh == ih, of w[kh][kw] * dy[oh][ow]. dyc, wc point at the channel.
template <typename T>
DETNAS_HD T dwconv_input_grad_value(const T* dyc, const T* wc, const DwconvShape& s, int64_t ih, int64_t iw) {
  const int64_t Ho = s.Ho(), Wo = s.Wo();
  T acc = T(0);
  for (int64_t kh = 0; kh < s.K; ++kh) {
    int64_t th = ih + s.P - kh;
    if (th < 0 || th % s.S != 0 || th / s.S >= Ho) continue;
    for (int64_t kw = 0; kw < s.K; ++kw) {
      int64_t tw = iw + s.P - kw;
      if (tw < 0 || tw % s.S != 0 || tw / s.S >= Wo) continue;
      acc += wc[kh * s.K + kw] * dyc[(th / s.S) * Wo + tw / s.S];
    }
  }
  return acc;
}

namespace cpu {

// x (N,C,H,W) batch stride s.x_batch_stride  w (C,1,K,K)  b (C) or null  y (N,C,Ho,Wo) =
template <typename T>
void dwconv_forward(const DwconvShape& s, const T* x, const T* w, const T* b, T* y);
// w (C,1,K,K)  dy (N,C,Ho,Wo)  dx (N,C,H,W) contiguous = or += (mode)
template <typename T>
void dwconv_backward_input(const DwconvShape& s, const T* w, const T* dy, T* dx, GradientMode mode);
// x (N,C,H,W) batch stride s.x_batch_stride  dy (N,C,Ho,Wo)
// dw (C,1,K,K) = or += (mode), summed over the batch (rows accumulated in double)
template <typename T>
void dwconv_backward_weight(const DwconvShape& s, const T* x, const T* dy, T* dw, GradientMode mode);

}  // namespace cpu
}  // namespace detnas::kernels
