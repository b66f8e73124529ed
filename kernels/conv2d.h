// Dense 2-D convolution (cross-correlation like torch: no kernel flip, zero
// padding, groups, optional bias) and the linear layer, on raw pointers.
// The index math that defines the result (output size, which taps of an output
// land inside the input, which outputs a tap reaches) is written once here as
// DETNAS_HD functions; the depthwise kernel (kernels/dwconv.h) uses it too.
// CPU: im2col + GEMM per (sample, group), no im2col at all for pointwise convs
// (1x1, stride 1, pad 0); linear is one GEMM. Not here: depthwise conv
// (kernels/dwconv.h), Tensor checks and autograd (runtime/ops_conv.h).
#pragma once
#include <cstdint>

#include "kernels/common.h"

namespace detnas::kernels {

// Output size along one axis: (in + 2p - k) / s + 1. The caller checks in + 2p >= k.
DETNAS_HD int64_t conv_out_size(int64_t in, int64_t k, int64_t s, int64_t p) { return (in + 2 * p - k) / s + 1; }

// Input coordinate read by output o at tap k (may lie in the padding: < 0 or >= in).
DETNAS_HD int64_t conv_in_index(int64_t o, int64_t k, int64_t s, int64_t p) { return o * s - p + k; }

// Taps [*lo, *hi) of output o that land inside the input: 0 <= o*s - p + k < in, 0 <= k < K.
DETNAS_HD void conv_tap_range(int64_t o, int64_t K, int64_t s, int64_t p, int64_t in, int64_t* lo, int64_t* hi) {
  int64_t i0 = o * s - p;
  int64_t a = i0 < 0 ? -i0 : 0;
  int64_t b = in - i0 < K ? in - i0 : K;
  *lo = a;
  *hi = b > a ? b : a;
}

// Outputs [*lo, *hi) among [0, out) whose tap k lands inside the input: 0 <= o*s - p + k < in.
DETNAS_HD void conv_out_range(int64_t k, int64_t s, int64_t p, int64_t in, int64_t out, int64_t* lo, int64_t* hi) {
  int64_t a = p - k;  // need o*s >= a
  int64_t l = a <= 0 ? 0 : (a + s - 1) / s;
  int64_t t = in - 1 + p - k;  // need o*s <= t
  int64_t h = t < 0 ? 0 : t / s + 1;
  if (h > out) h = out;
  if (l > h) l = h;
  *lo = l;
  *hi = h;
}

// Geometry of one dense conv. x (N,C,H,W) with samples x_batch_stride elements
// apart (C*H*W when contiguous; larger for a channel slice of a wider tensor);
// each sample is contiguous. w (Cout, C/G, KH, KW); y (N,Cout,Ho,Wo) contiguous.
struct Conv2dShape {
  int64_t N = 0, C = 0, H = 0, W = 0;
  int64_t Cout = 0, KH = 1, KW = 1;
  int64_t S = 1, P = 0, G = 1;
  int64_t x_batch_stride = 0;
  DETNAS_HD int64_t Ho() const { return conv_out_size(H, KH, S, P); }
  DETNAS_HD int64_t Wo() const { return conv_out_size(W, KW, S, P); }
  // A 1x1 stride-1 unpadded conv: the input plane is already the column matrix.
  DETNAS_HD bool pointwise() const { return KH == 1 && KW == 1 && S == 1 && P == 0; }
};

// im2col of one (sample, group): row r = (c, kh, kw) over the group's C/G channels,
// column (oh, ow); the value is the input at the tap, 0 in the padding. xg points at
// channel 0 of the group in the sample.
template <typename T>
DETNAS_HD T im2col_value(const T* xg, const Conv2dShape& s, int64_t r, int64_t col) {
  int64_t kw = r % s.KW, kh = (r / s.KW) % s.KH, c = r / (s.KW * s.KH);
  int64_t Wo = s.Wo();
  int64_t ih = conv_in_index(col / Wo, kh, s.S, s.P), iw = conv_in_index(col % Wo, kw, s.S, s.P);
  if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) return T(0);
  return xg[(c * s.H + ih) * s.W + iw];
}

namespace cpu {

// Scratch elements (of T) that conv2d_* need: one column matrix (C/G*KH*KW, Ho*Wo),
// or the Winograd buffers when larger; 0 for pointwise convs.
int64_t conv2d_workspace_size(const Conv2dShape& s);
// What conv2d_forward<T> alone needs (<= conv2d_workspace_size): a float conv that
// runs as Winograd needs no column matrix in the forward (the weight gradient does;
// double convs always take im2col).
template <typename T>
int64_t conv2d_forward_workspace_size(const Conv2dShape& s);

// x (N,C,H,W) batch stride s.x_batch_stride  w (Cout,C/G,KH,KW)  b (Cout) or null
// y (N,Cout,Ho,Wo) =          ws: conv2d_forward_workspace_size(s) elements
template <typename T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y, T* ws);
// w (Cout,C/G,KH,KW)  dy (N,Cout,Ho,Wo)  dx (N,C,H,W) contiguous = or += (mode)
template <typename T>
void conv2d_backward_input(const Conv2dShape& s, const T* w, const T* dy, T* dx, GradientMode mode, T* ws);
// x (N,C,H,W) batch stride s.x_batch_stride  dy (N,Cout,Ho,Wo)
// dw (Cout,C/G,KH,KW) = or += (mode), summed over the batch
template <typename T>
void conv2d_backward_weight(const Conv2dShape& s, const T* x, const T* dy, T* dw, GradientMode mode, T* ws);
// dy (N,Cout,Ho,Wo)  db (Cout) = or += sum over N, Ho, Wo (accumulated in double)
template <typename T>
void conv2d_backward_bias(const Conv2dShape& s, const T* dy, T* db, GradientMode mode);

// x (N,Cin)  w (Cout,Cin)  b (Cout) or null  y (N,Cout) = x w^T + b
template <typename T>
void linear_forward(int64_t N, int64_t Cin, int64_t Cout, const T* x, const T* w, const T* b, T* y);
// w (Cout,Cin)  dy (N,Cout)  dx (N,Cin) = or += dy w
template <typename T>
void linear_backward_input(int64_t N, int64_t Cin, int64_t Cout, const T* w, const T* dy, T* dx, GradientMode mode);
// x (N,Cin)  dy (N,Cout)  dw (Cout,Cin) = or += dy^T x
template <typename T>
void linear_backward_weight(int64_t N, int64_t Cin, int64_t Cout, const T* x, const T* dy, T* dw, GradientMode mode);
// dy (N,Cout)  db (Cout) = or += sum over N (accumulated in double)
template <typename T>
void linear_backward_bias(int64_t N, int64_t Cout, const T* dy, T* db, GradientMode mode);

}  // namespace cpu
}  // namespace detnas::kernels
