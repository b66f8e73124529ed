// CPU dense conv2d and linear: im2col/col2im loops (OpenMP over column rows /
// input channels, `omp simd` row copies and adds) around OpenBLAS GEMMs, which
// are always called outside parallel regions. Pointwise convs skip im2col: the sample's channel slab is
// the (C/G, H*W) matrix itself, whatever the batch stride. Not here: the
// depthwise kernel (kernels/dwconv_cpu.cpp). Dense 3x3 stride-1 pad-1 float convs
// that are large enough go to Winograd (kernels/winograd_cpu.h) for forward and
// backward-data; backward-weight always uses im2col + GEMM.
#include <algorithm>
#include <type_traits>

#include "kernels/conv2d.h"
#include "kernels/gemm.h"
#include "kernels/winograd_cpu.h"

namespace detnas::kernels::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 14;  // elements below which a parallel region costs more than it saves

// col (C/G*KH*KW, Ho*Wo) = im2col of one (sample, group); xg at the group's channel 0.
template <typename T>
void im2col(const Conv2dShape& s, const T* xg, T* col) {
  const int64_t Ho = s.Ho(), Wo = s.Wo(), L = Ho * Wo, KK = s.KH * s.KW, rows = (s.C / s.G) * KK;
#pragma omp parallel for schedule(static) if (rows * L > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = r / KK, kh = (r / s.KW) % s.KH, kw = r % s.KW, off = kw - s.P;
    const T* xc = xg + c * s.H * s.W;
    T* row = col + r * L;
    int64_t oh_lo, oh_hi, ow_lo, ow_hi;
    conv_out_range(kh, s.S, s.P, s.H, Ho, &oh_lo, &oh_hi);
    conv_out_range(kw, s.S, s.P, s.W, Wo, &ow_lo, &ow_hi);
    for (int64_t oh = 0; oh < Ho; ++oh) {
      T* __restrict o = row + oh * Wo;
      if (oh < oh_lo || oh >= oh_hi) {
#pragma omp simd
        for (int64_t ow = 0; ow < Wo; ++ow) o[ow] = T(0);
        continue;
      }
      const T* __restrict xr = xc + conv_in_index(oh, kh, s.S, s.P) * s.W;
      for (int64_t ow = 0; ow < ow_lo; ++ow) o[ow] = T(0);
      if (s.S == 1) {
#pragma omp simd
        for (int64_t ow = ow_lo; ow < ow_hi; ++ow) o[ow] = xr[ow + off];
      } else {
#pragma omp simd
        for (int64_t ow = ow_lo; ow < ow_hi; ++ow) o[ow] = xr[ow * s.S + off];
      }
      for (int64_t ow = ow_hi; ow < Wo; ++ow) o[ow] = T(0);
    }
  }
}

// dxg (C/G,H,W) = or += col2im(col): the adjoint of im2col. One thread per input
// channel, so every element is written by one thread in a fixed order.
template <typename T>
void col2im(const Conv2dShape& s, const T* col, T* dxg, GradientMode mode) {
  const int64_t Ho = s.Ho(), Wo = s.Wo(), L = Ho * Wo, Cg = s.C / s.G, HW = s.H * s.W;
#pragma omp parallel for schedule(static) if (Cg * s.KH * s.KW * L > kParallelMin)
  for (int64_t c = 0; c < Cg; ++c) {
    T* dxc = dxg + c * HW;
    if (mode == GradientMode::Overwrite) {
#pragma omp simd
      for (int64_t i = 0; i < HW; ++i) dxc[i] = T(0);
    }
    for (int64_t kh = 0; kh < s.KH; ++kh) {
      int64_t oh_lo, oh_hi;
      conv_out_range(kh, s.S, s.P, s.H, Ho, &oh_lo, &oh_hi);
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        int64_t ow_lo, ow_hi;
        conv_out_range(kw, s.S, s.P, s.W, Wo, &ow_lo, &ow_hi);
        const int64_t off = kw - s.P;
        const T* row = col + ((c * s.KH + kh) * s.KW + kw) * L;
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
          T* __restrict xr = dxc + conv_in_index(oh, kh, s.S, s.P) * s.W;
          const T* __restrict o = row + oh * Wo;
          if (s.S == 1) {
#pragma omp simd
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) xr[ow + off] += o[ow];
          } else {
#pragma omp simd
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) xr[ow * s.S + off] += o[ow];
          }
        }
      }
    }
  }
}

// db (C) = or += sum over n and the plane of dy (N,C,L), in double.
template <typename T>
void bias_grad(int64_t N, int64_t C, int64_t L, const T* dy, T* db, GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
#pragma omp parallel for schedule(static) if (N * C * L > kParallelMin)
  for (int64_t c = 0; c < C; ++c) {
    double acc = 0;
    for (int64_t n = 0; n < N; ++n) {
      const T* __restrict p = dy + (n * C + c) * L;
      double a = 0;
#pragma omp simd reduction(+ : a)
      for (int64_t i = 0; i < L; ++i) a += double(p[i]);
      acc += a;
    }
    write_grad(db + c, T(acc), mode);
  }
}

}  // namespace

int64_t conv2d_workspace_size(const Conv2dShape& s) {
  if (s.pointwise()) return 0;
  const int64_t cols = (s.C / s.G) * s.KH * s.KW * s.Ho() * s.Wo();
  return winograd_preferred(s) ? std::max(cols, winograd_workspace_size(s)) : cols;
}

template <typename T>
int64_t conv2d_forward_workspace_size(const Conv2dShape& s) {
  if (s.pointwise()) return 0;
  if (std::is_same_v<T, float> && winograd_preferred(s)) return winograd_workspace_size(s);
  return (s.C / s.G) * s.KH * s.KW * s.Ho() * s.Wo();
}

template <typename T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y, T* ws) {
  if (std::is_same_v<T, float> && winograd_preferred(s)) return winograd_forward(s, x, w, b, y, ws);
  const int64_t L = s.Ho() * s.Wo(), Cg = s.C / s.G, Og = s.Cout / s.G, Kc = Cg * s.KH * s.KW;
  if (b) {
#pragma omp parallel for schedule(static) if (s.N * s.Cout * L > kParallelMin)
    for (int64_t nc = 0; nc < s.N * s.Cout; ++nc) {
      T* p = y + nc * L;
      const T bv = b[nc % s.Cout];
#pragma omp simd
      for (int64_t i = 0; i < L; ++i) p[i] = bv;
    }
  }
  const T beta = b ? T(1) : T(0);
  for (int64_t n = 0; n < s.N; ++n) {
    for (int64_t g = 0; g < s.G; ++g) {
      const T* xg = x + n * s.x_batch_stride + g * Cg * s.H * s.W;
      const T* cols = xg;
      if (!s.pointwise()) {
        im2col(s, xg, ws);
        cols = ws;
      }
      gemm<T>(Trans::No, Trans::No, Og, L, Kc, T(1), w + g * Og * Kc, Kc, cols, L, beta, y + (n * s.Cout + g * Og) * L,
              L);
    }
  }
}

template <typename T>
void conv2d_backward_input(const Conv2dShape& s, const T* w, const T* dy, T* dx, GradientMode mode, T* ws) {
  if (mode == GradientMode::Ignore) return;
  if (std::is_same_v<T, float> && winograd_preferred(s)) return winograd_backward_input(s, w, dy, dx, mode, ws);
  const int64_t L = s.Ho() * s.Wo(), Cg = s.C / s.G, Og = s.Cout / s.G, Kc = Cg * s.KH * s.KW, HW = s.H * s.W;
  for (int64_t n = 0; n < s.N; ++n) {
    for (int64_t g = 0; g < s.G; ++g) {
      T* dxg = dx + (n * s.C + g * Cg) * HW;
      const T* dyg = dy + (n * s.Cout + g * Og) * L;
      const T* wg = w + g * Og * Kc;
      if (s.pointwise()) {
        // dx_g (Cg, HW) = w_g^T (Cg, Og) dy_g (Og, HW)
        const T beta = mode == GradientMode::Accumulate ? T(1) : T(0);
        gemm<T>(Trans::Yes, Trans::No, Cg, L, Og, T(1), wg, Kc, dyg, L, beta, dxg, L);
      } else {
        gemm<T>(Trans::Yes, Trans::No, Kc, L, Og, T(1), wg, Kc, dyg, L, T(0), ws, L);
        col2im(s, ws, dxg, mode);
      }
    }
  }
}

template <typename T>
void conv2d_backward_weight(const Conv2dShape& s, const T* x, const T* dy, T* dw, GradientMode mode, T* ws) {
  if (mode == GradientMode::Ignore) return;
  const int64_t L = s.Ho() * s.Wo(), Cg = s.C / s.G, Og = s.Cout / s.G, Kc = Cg * s.KH * s.KW;
  for (int64_t n = 0; n < s.N; ++n) {
    const T beta = (n == 0 && mode == GradientMode::Overwrite) ? T(0) : T(1);
    for (int64_t g = 0; g < s.G; ++g) {
      const T* xg = x + n * s.x_batch_stride + g * Cg * s.H * s.W;
      const T* cols = xg;
      if (!s.pointwise()) {
        im2col(s, xg, ws);
        cols = ws;
      }
      // dw_g (Og, Kc) += dy_g (Og, L) cols^T (L, Kc)
      gemm<T>(Trans::No, Trans::Yes, Og, Kc, L, T(1), dy + (n * s.Cout + g * Og) * L, L, cols, L, beta,
              dw + g * Og * Kc, Kc);
    }
  }
}

template <typename T>
void conv2d_backward_bias(const Conv2dShape& s, const T* dy, T* db, GradientMode mode) {
  bias_grad(s.N, s.Cout, s.Ho() * s.Wo(), dy, db, mode);
}

template <typename T>
void linear_forward(int64_t N, int64_t Cin, int64_t Cout, const T* x, const T* w, const T* b, T* y) {
  if (b) {
#pragma omp parallel for schedule(static) if (N * Cout > kParallelMin)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < Cout; ++o) y[n * Cout + o] = b[o];
  }
  gemm<T>(Trans::No, Trans::Yes, N, Cout, Cin, T(1), x, Cin, w, Cin, b ? T(1) : T(0), y, Cout);
}

template <typename T>
void linear_backward_input(int64_t N, int64_t Cin, int64_t Cout, const T* w, const T* dy, T* dx, GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
  gemm<T>(Trans::No, Trans::No, N, Cin, Cout, T(1), dy, Cout, w, Cin, mode == GradientMode::Accumulate ? T(1) : T(0),
          dx, Cin);
}

template <typename T>
void linear_backward_weight(int64_t N, int64_t Cin, int64_t Cout, const T* x, const T* dy, T* dw, GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
  gemm<T>(Trans::Yes, Trans::No, Cout, Cin, N, T(1), dy, Cout, x, Cin, mode == GradientMode::Accumulate ? T(1) : T(0),
          dw, Cin);
}

template <typename T>
void linear_backward_bias(int64_t N, int64_t Cout, const T* dy, T* db, GradientMode mode) {
  bias_grad(N, Cout, int64_t(1), dy, db, mode);
}

#define DETNAS_INST(T)                                                                                      \
  template int64_t conv2d_forward_workspace_size<T>(const Conv2dShape&);                                    \
  template void conv2d_forward<T>(const Conv2dShape&, const T*, const T*, const T*, T*, T*);                \
  template void conv2d_backward_input<T>(const Conv2dShape&, const T*, const T*, T*, GradientMode, T*);     \
  template void conv2d_backward_weight<T>(const Conv2dShape&, const T*, const T*, T*, GradientMode, T*);    \
  template void conv2d_backward_bias<T>(const Conv2dShape&, const T*, T*, GradientMode);                    \
  template void linear_forward<T>(int64_t, int64_t, int64_t, const T*, const T*, const T*, T*);             \
  template void linear_backward_input<T>(int64_t, int64_t, int64_t, const T*, const T*, T*, GradientMode);  \
  template void linear_backward_weight<T>(int64_t, int64_t, int64_t, const T*, const T*, T*, GradientMode); \
  template void linear_backward_bias<T>(int64_t, int64_t, const T*, T*, GradientMode);
DETNAS_INST(float)
DETNAS_INST(double)
#undef DETNAS_INST

}  // namespace detnas::kernels::cpu
