// Nearest-neighbour 2-D upsampling (NCHW) to an output size (Ho, Wo), torch's
// "nearest" mode: src = min(floor(dst * scale), in - 1) with scale = in / out
// computed in float, plus torch's exact shortcuts for out == in and out == 2*in.
// The backward sums the upstream gradient over all copies of a source pixel. The
// index rule and the backward sums are DETNAS_HD functions shared by the CPU
// kernels (kernels/upsample_cpu.cpp) and the CUDA kernels (kernels/pool_cuda.cu).
// Not here: bilinear modes, align_corners, "nearest-exact".
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/common.h"

namespace detnas::kernels {

// Source index along one axis (in -> out). Float arithmetic on purpose: torch
// computes float(in)/float(out) and multiplies in float; the exact rational
// floor(dst*in/out) differs at some positions (2 -> 82: dst 41 reads 0, not 1).
DETNAS_HD int64_t upsample_nearest_src(int64_t dst, int64_t in, int64_t out) {
  if (out == in) return dst;
  if (out == 2 * in) return dst >> 1;
  const float scale = float(in) / float(out);
  const int64_t s = int64_t(floorf(float(dst) * scale));
  return s < in - 1 ? s : in - 1;
}

// The destination indices [*lo, *hi) along one axis that read source index src
// (upsample_nearest_src is non-decreasing in dst, so they are one run; empty when
// no destination reads it). For a gather-form backward.
DETNAS_HD void upsample_nearest_dst_range(int64_t src, int64_t in, int64_t out, int64_t* lo, int64_t* hi) {
  int64_t d = in > 0 ? src * out / in : 0;
  if (d > out) d = out;
  while (d > 0 && upsample_nearest_src(d - 1, in, out) >= src) --d;
  while (d < out && upsample_nearest_src(d, in, out) < src) ++d;
  int64_t e = d;
  while (e < out && upsample_nearest_src(e, in, out) == src) ++e;
  *lo = d;
  *hi = e;
}

// Whether a plane is upsampled by exactly 2 along both axes (the fast paths).
DETNAS_HD bool upsample_nearest_is_x2(int64_t H, int64_t W, int64_t Ho, int64_t Wo) {
  return Ho == 2 * H && Wo == 2 * W;
}

// Exact x2: dx[h][w] of one plane as the sum of its 2x2 copies, grouped
// (dy[2h][2w] + dy[2h][2w+1]) + (dy[2h+1][2w] + dy[2h+1][2w+1]).
template <typename T>
DETNAS_HD T upsample_nearest_x2_grad(const T* dyp, int64_t Wo, int64_t h, int64_t w) {
  const T* r0 = dyp + 2 * h * Wo;
  const T* r1 = r0 + Wo;
  return (r0[2 * w] + r0[2 * w + 1]) + (r1[2 * w] + r1[2 * w + 1]);
}

// Other sizes: dx[h][w] of one plane as acc + the dy of its copies, added one by
// one in (oh, ow) scan order (the order in which the CPU's scatter over dy reaches it).
template <typename T>
DETNAS_HD T upsample_nearest_grad_gather(const T* dyp, int64_t H, int64_t W, int64_t Ho, int64_t Wo, int64_t h,
                                         int64_t w, T acc) {
  int64_t oh0, oh1, ow0, ow1;
  upsample_nearest_dst_range(h, H, Ho, &oh0, &oh1);
  upsample_nearest_dst_range(w, W, Wo, &ow0, &ow1);
  for (int64_t oh = oh0; oh < oh1; ++oh)
    for (int64_t ow = ow0; ow < ow1; ++ow) acc += dyp[oh * Wo + ow];
  return acc;
}

namespace cpu {

// x (P,H,W)  y (P,Ho,Wo) =   (P = N*C planes)
template <typename T>
void upsample_nearest2d_forward(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, const T* x, T* y);
// dy (P,Ho,Wo)  dx (P,H,W) = or += sum of dy over the copies of each pixel
template <typename T>
void upsample_nearest2d_backward_input(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, const T* dy, T* dx,
                                       GradientMode mode);

}  // namespace cpu
}  // namespace detnas::kernels
