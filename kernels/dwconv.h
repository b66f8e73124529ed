// Depthwise 2-D convolution (groups == C, weight (C,1,K,K), any K, stride and
// padding; cross-correlation with zero padding, as torch) on raw pointers.
// Direct kernels, never a GEMM per channel. The terms that define the result are
// written once below as DETNAS_HD functions and called by the CPU kernels
// (kernels/dwconv_cpu.cpp) and the CUDA kernels (kernels/dwconv_cuda.cu):
//   - the valid-tap test (dwconv_tap_input / dwconv_outputs_reading; conv_tap_range and
//     conv_out_range of kernels/conv2d.h solve the same test for a range of taps or
//     outputs, so inner loops need no bounds checks);
//   - the per-output tap sum (dwconv_output_value), also the stride-1 input
//     gradient as a correlation of dy with the flipped kernel
//     (dwconv_input_grad_as_corr, dwconv_input_grad_corr_shape, dwconv_flipped_tap);
//   - the per-input gradient sum (dwconv_input_grad_value, in a stated tap order);
//   - the per-weight gradient term (dwconv_weight_grad_term).
// The CPU's register-blocked and whole-row loops are faster schedules of these
// sums (the order each one adds in is stated in kernels/dwconv_cpu.cpp).
// Not here: dense conv (kernels/conv2d.h), Tensor checks and autograd (runtime/ops_conv.h).
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

// ---- valid-tap test ----------------------------------------------------------

// Along one axis: the input coordinate that tap k of output o reads, or -1 when it
// lies in the padding (outside [0, in)).
DETNAS_HD int64_t dwconv_tap_input(int64_t o, int64_t k, int64_t S, int64_t P, int64_t in) {
  const int64_t i = conv_in_index(o, k, S, P);
  return i >= 0 && i < in ? i : -1;
}

// The same test seen from the input: the outputs [*lo, *hi) among [0, out) that
// read input coordinate i with one of their taps, output o with tap
// k = i + P - o*S (0 <= k < K). P >= 0.
DETNAS_HD void dwconv_outputs_reading(int64_t i, int64_t K, int64_t S, int64_t P, int64_t out, int64_t* lo,
                                      int64_t* hi) {
  const int64_t t = i + P, a = t - K + 1;  // need a <= o*S <= t
  int64_t h = t / S + 1;
  if (h > out) h = out;
  int64_t l = a <= 0 ? 0 : (a + S - 1) / S;
  if (l > h) l = h;
  *lo = l;
  *hi = h;
}

// ---- per-output tap sum ----------------------------------------------------------

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

// Stride 1 with P <= K-1: the input gradient of a plane is the correlation of the
// dy plane with the flipped kernel (tap i reads w[dwconv_flipped_tap(i, K)]) at
// padding K-1-P, i.e. dwconv_output_value over dwconv_input_grad_corr_shape(s)
// with bias 0. Its sum adds the reaching taps in decreasing (kh, kw) order.
DETNAS_HD bool dwconv_input_grad_as_corr(const DwconvShape& s) { return s.S == 1 && s.P <= s.K - 1; }
DETNAS_HD int64_t dwconv_flipped_tap(int64_t i, int64_t K) { return K * K - 1 - i; }
// The correlation's shape: dy planes (Ho x Wo, contiguous) as input, stride 1,
// padding K-1-P; its output size is H x W.
DETNAS_HD DwconvShape dwconv_input_grad_corr_shape(const DwconvShape& s) {
  DwconvShape t = s;
  t.H = s.Ho();
  t.W = s.Wo();
  t.S = 1;
  t.P = s.K - 1 - s.P;
  t.x_batch_stride = s.C * t.H * t.W;
  return t;
}

// ---- per-input gradient sum ------------------------------------------------------

// The order in which dwconv_input_grad_value adds the taps that reach one input:
//   TapsAscending       kh ascending, then kw ascending;
//   OutputRowsAscending output rows oh ascending (kh descending), then kw ascending:
//                       the order in which a scatter over output rows reaches it.
enum class DwGradOrder { TapsAscending, OutputRowsAscending };

// dx[ih][iw] of one plane: acc + the sum, over the outputs (oh, ow) that read it
// (dwconv_outputs_reading) with tap (kh, kw), of w[kh][kw] * dy[oh][ow], added one
// by one onto acc in the given order. dyc, wc point at the channel.
template <typename T>
DETNAS_HD T dwconv_input_grad_value(const T* dyc, const T* wc, const DwconvShape& s, int64_t ih, int64_t iw,
                                    T acc = T(0), DwGradOrder order = DwGradOrder::TapsAscending) {
  const int64_t Wo = s.Wo(), th = ih + s.P, tw = iw + s.P;
  int64_t oh_lo, oh_hi, ow_lo, ow_hi;
  dwconv_outputs_reading(ih, s.K, s.S, s.P, s.Ho(), &oh_lo, &oh_hi);
  dwconv_outputs_reading(iw, s.K, s.S, s.P, Wo, &ow_lo, &ow_hi);
  for (int64_t n = 0; n < oh_hi - oh_lo; ++n) {
    const int64_t oh = order == DwGradOrder::TapsAscending ? oh_hi - 1 - n : oh_lo + n;
    const T* wr = wc + (th - oh * s.S) * s.K;  // kernel row kh = ih + P - oh*S
    const T* dyr = dyc + oh * Wo;
    for (int64_t ow = ow_hi - 1; ow >= ow_lo; --ow) acc += wr[tw - ow * s.S] * dyr[ow];  // kw ascending
  }
  return acc;
}

// ---- per-weight gradient term -----------------------------------------------------

// What output (oh, ow) of one plane adds to dw[kh][kw] when its tap (kh, kw) reads
// x[ih][iw] inside the plane (dwconv_tap_input; nothing when it reads padding):
// dy[oh][ow] * x[ih][iw], in T. Both backends sum these terms in double over the
// batch, in different groupings (CPU: T-precision row or lane partial sums;
// CUDA: every term widened to double).
template <typename T>
DETNAS_HD T dwconv_weight_grad_term(T dy, T x) {
  return dy * x;
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
