// CPU depthwise conv: OpenMP over (sample, channel) planes for forward and input
// gradient, over channels for the weight gradient (a reduction over the batch).
// Forward and the stride-1 input gradient are one plane correlation,
// out[oh][ow] = bias + sum over taps of k[kh][kw] * in[oh*S-P+kh][ow*S-P+kw]
// (dwconv_output_value of kernels/dwconv.h; the input gradient correlates dy with
// the flipped kernel at padding K-1-P: dwconv_input_grad_corr_shape).
// Paths, all without bounds checks in inner loops:
//  - stride 1, K = 3/5/7, plane fits the stack: zero-padded copy, then every row
//    runs as register blocks of kV outputs with the taps unrolled;
//  - stride 1, K = 3/5/7, larger planes: register blocks on the interior, whole-row
//    axpys over each tap's output range (conv_out_range) on the top/bottom rows,
//    dwconv_output_value itself on the few border columns and a short tail;
//  - stride 2, K = 7 (and K = 5 up to 40 outputs wide): a zero-padded copy of
//    the plane with the even and odd columns of every row split apart
//    (thread-local buffer), so tap kw of output ow reads phase kw%2 at column
//    ow + kw/2: stride-1 register blocks again;
//  - stride-2 input gradient, K = 3/5/7: per output parity (a, b) = (ih%2, iw%2)
//    only the taps kh = a+P (mod 2), kw = b+P (mod 2) reach dx[ih][iw], and they
//    read dy[ih/2 + const - t][iw/2 + const - u]: a stride-1 correlation of a
//    zero-padded dy with that sub-kernel, both column parities of a row computed
//    as register blocks and stored interleaved (no scatter, no % S tests);
//  - anything else: whole-row axpys; the other input gradients: row scatter.
// Each path is a faster schedule of the shared sums of kernels/dwconv.h; the
// order it adds in (bit-level results depend on it; padded zeros add exact zeros;
// tests/test_kernel_math.cpp checks these bit for bit):
//  - forward: every path adds each output's taps onto the bias in (kh, kw)
//    order, as dwconv_output_value;
//  - stride-1 input gradient: dwconv_output_value of the flipped correlation, so
//    the reaching taps in decreasing (kh, kw) order (as the CUDA tile kernel);
//    in Accumulate mode the register-block rows add that sum to dx, the
//    whole-row-axpy rows add the taps to dx one by one;
//  - stride-2 input gradient, K = 3/5/7: dwconv_input_grad_value in the order
//    DwGradOrder::TapsAscending (as the CUDA gather), the sum then added to dx;
//  - row scatter: dwconv_input_grad_value in the order
//    DwGradOrder::OutputRowsAscending, onto the existing dx;
//  - weight gradient: dwconv_weight_grad_term summed in T per row (or per lane of
//    a register block), the partial sums added in double.
#include <cstddef>
#include <vector>

#include "kernels/dwconv.h"

namespace detnas::kernels::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 13;  // multiply-adds below which threads cost more than they save
constexpr int kV = 16;                     // outputs per register block in the fast path

// One plane correlation: in (Hin,Win), kernel wk (K,K), out (Hout,Wout).
template <typename T>
struct Plane {
  const T* in;
  int64_t Hin, Win;
  const T* wk;
  int64_t K, S, P;
  T bias;
  T* out;
  int64_t Hout, Wout;
  GradientMode mode;  // Overwrite or Accumulate
  // The correlation as one plane of kernels/dwconv.h (for dwconv_output_value).
  DwconvShape shape() const {
    DwconvShape s;
    s.N = 1, s.C = 1, s.H = Hin, s.W = Win, s.K = K, s.S = S, s.P = P, s.x_batch_stride = Hin * Win;
    return s;
  }
};

// Output row oh by whole-row axpys: for each valid tap, out[o] += k * in_row[o*S + kw - P]
// over the outputs that tap reaches. kS > 0: stride known at compile time.
template <int kS, typename T>
void row_axpys(const Plane<T>& p, int64_t oh) {
  const int64_t st = kS > 0 ? kS : p.S;
  T* __restrict yr = p.out + oh * p.Wout;
  if (p.mode == GradientMode::Overwrite) {
    for (int64_t ow = 0; ow < p.Wout; ++ow) yr[ow] = p.bias;
  } else if (p.bias != T(0)) {
    for (int64_t ow = 0; ow < p.Wout; ++ow) yr[ow] += p.bias;
  }
  int64_t kh_lo, kh_hi;
  conv_tap_range(oh, p.K, st, p.P, p.Hin, &kh_lo, &kh_hi);
  for (int64_t kh = kh_lo; kh < kh_hi; ++kh) {
    const T* __restrict xr = p.in + conv_in_index(oh, kh, st, p.P) * p.Win;
    for (int64_t kw = 0; kw < p.K; ++kw) {
      int64_t lo, hi;
      conv_out_range(kw, st, p.P, p.Win, p.Wout, &lo, &hi);
      const T a = p.wk[kh * p.K + kw];
      const int64_t off = kw - p.P;
#pragma omp simd
      for (int64_t o = lo; o < hi; ++o) yr[o] += a * xr[o * st + off];
    }
  }
}

template <int kS, typename T>
void plane_generic(const Plane<T>& p) {
  for (int64_t oh = 0; oh < p.Hout; ++oh) row_axpys<kS>(p, oh);
}

// Planes up to this many elements (32 KB float / 64 KB double) get a zero-padded
// copy on the stack in the stride-1 fast paths.
constexpr int64_t kPadMax = 8192;

// buf (Hp,Wp) = in (Hin,Win) placed at offset (P,P), zeros elsewhere.
template <typename T>
void pad_plane(const T* in, int64_t Hin, int64_t Win, int64_t P, T* buf, int64_t Hp, int64_t Wp) {
  for (int64_t i = 0; i < Hp; ++i) {
    T* row = buf + i * Wp;
    const int64_t ih = i - P;
    if (ih < 0 || ih >= Hin) {
      for (int64_t j = 0; j < Wp; ++j) row[j] = T(0);
      continue;
    }
    const T* src = in + ih * Win;
    for (int64_t j = 0; j < P; ++j) row[j] = T(0);
    for (int64_t j = 0; j < Win; ++j) row[P + j] = src[j];
    for (int64_t j = P + Win; j < Wp; ++j) row[j] = T(0);
  }
}

// Stride-1 fast path for planes that fit a zero-padded copy on the stack: with the
// padding materialised every output is "interior", so whole rows run as register
// blocks (the padded rows are rounded up to whole blocks; the extra outputs are
// dropped). The zero taps add exact zeros, so the sums equal the other paths'.
template <int kK, typename T>
bool plane_padded(const Plane<T>& p) {
  // For 3x3 on rows of two blocks or more the borders are cheap and the copy is not
  // (measured: 40x40 planes are ~25% faster without it; 10x10 ones 2.5x slower).
  if (kK == 3 && p.Wout >= 2 * kV) return false;
  const int64_t Wb = (p.Wout + kV - 1) / kV * kV, Wp = Wb + kK - 1, Hp = p.Hout + kK - 1;
  if (Hp * Wp > kPadMax || p.Hin + 2 * p.P != Hp || p.Win + 2 * p.P > Wp) return false;
  alignas(64) T buf[kPadMax];
  pad_plane(p.in, p.Hin, p.Win, p.P, buf, Hp, Wp);
  T wk[kK * kK];
  for (int i = 0; i < kK * kK; ++i) wk[i] = p.wk[i];
  const bool acc_mode = p.mode == GradientMode::Accumulate;
  for (int64_t oh = 0; oh < p.Hout; ++oh) {
    T* yr = p.out + oh * p.Wout;
    for (int64_t ob = 0; ob < Wb; ob += kV) {
      T acc[kV];
      for (int v = 0; v < kV; ++v) acc[v] = p.bias;
      for (int kh = 0; kh < kK; ++kh) {
        const T* r = buf + (oh + kh) * Wp + ob;
#pragma GCC unroll 7
        for (int kw = 0; kw < kK; ++kw) {
          const T a = wk[kh * kK + kw];
          for (int v = 0; v < kV; ++v) acc[v] += a * r[v + kw];
        }
      }
      const int64_t n = p.Wout - ob < kV ? p.Wout - ob : kV;
      if (acc_mode)
        for (int64_t v = 0; v < n; ++v) yr[ob + v] += acc[v];
      else
        for (int64_t v = 0; v < n; ++v) yr[ob + v] = acc[v];
    }
  }
  return true;
}

// Fast path with K and S fixed at compile time.
template <int kK, int kS, typename T>
void plane_fast(const Plane<T>& p) {
  if (kS == 1 && plane_padded<kK>(p)) return;
  T wk[kK * kK];
  for (int i = 0; i < kK * kK; ++i) wk[i] = p.wk[i];
  // Columns [c_lo, c_hi) have all kK column taps inside the input row.
  int64_t c_lo, c_hi, unused;
  conv_out_range(0, kS, p.P, p.Win, p.Wout, &c_lo, &unused);
  conv_out_range(kK - 1, kS, p.P, p.Win, p.Wout, &unused, &c_hi);
  if (c_hi < c_lo) c_hi = c_lo;
  const bool acc_mode = p.mode == GradientMode::Accumulate;
  const DwconvShape ps = p.shape();
  for (int64_t oh = 0; oh < p.Hout; ++oh) {
    int64_t kh_lo, kh_hi;
    conv_tap_range(oh, kK, kS, p.P, p.Hin, &kh_lo, &kh_hi);
    if (kh_lo != 0 || kh_hi != kK) {
      row_axpys<kS>(p, oh);
      continue;
    }
    T* __restrict yr = p.out + oh * p.Wout;
    const T* rows[kK];
    for (int kh = 0; kh < kK; ++kh) rows[kh] = p.in + conv_in_index(oh, kh, kS, p.P) * p.Win;
    // Border columns and the short tail: the per-output tap sum itself.
    auto single = [&](int64_t ow) {
      const T v = dwconv_output_value(p.in, p.wk, p.bias, ps, oh, ow);
      yr[ow] = acc_mode ? yr[ow] + v : v;
    };
    for (int64_t ow = 0; ow < c_lo; ++ow) single(ow);
    // Interior: blocks of kV outputs accumulate in registers (the v loops vectorise).
    auto block = [&](int64_t ow) {
      T acc[kV];
      for (int v = 0; v < kV; ++v) acc[v] = p.bias;
      for (int kh = 0; kh < kK; ++kh) {
        const T* __restrict r = rows[kh] + (ow * kS - p.P);
#pragma GCC unroll 7
        for (int kw = 0; kw < kK; ++kw) {
          const T a = wk[kh * kK + kw];
          for (int v = 0; v < kV; ++v) acc[v] += a * r[v * kS + kw];
        }
      }
      if (acc_mode)
        for (int v = 0; v < kV; ++v) yr[ow + v] += acc[v];
      else
        for (int v = 0; v < kV; ++v) yr[ow + v] = acc[v];
    };
    int64_t ow = c_lo;
    for (; ow + kV <= c_hi; ow += kV) block(ow);
    if (ow < c_hi && !acc_mode && c_hi - c_lo >= kV) {
      // The tail as one more block overlapping the previous one: the overlap is
      // recomputed with the same operations, so it is written with the same values.
      block(c_hi - kV);
      ow = c_hi;
    }
    for (; ow < p.Wout; ++ow) single(ow);  // the short tail, then the right border
  }
}

// A per-thread scratch buffer of at least n elements (kept between calls).
template <typename T>
T* scratch(int64_t n) {
  static thread_local std::vector<T> buf;
  if (int64_t(buf.size()) < n) buf.resize(static_cast<std::size_t>(n));
  return buf.data();
}

// Stride-2 forward: padded row r (= input row r - P) is stored as its even
// columns then its odd columns (padded column c = input column c - P), each Wq
// long, so output ow, tap kw reads phase kw & 1 at index ow + kw / 2.
template <int kK, typename T>
void plane_s2(const Plane<T>& p) {
  const int64_t Wb = (p.Wout + kV - 1) / kV * kV, Wq = Wb + kK / 2 + 1;
  const int64_t Hp = 2 * (p.Hout - 1) + kK;  // padded rows the outputs read
  T* buf = scratch<T>(Hp * 2 * Wq);
  for (int64_t r = 0; r < Hp; ++r) {
    const int64_t ih = r - p.P;
    T* e = buf + r * 2 * Wq;
    T* o = e + Wq;
    if (ih < 0 || ih >= p.Hin) {
      for (int64_t j = 0; j < 2 * Wq; ++j) e[j] = T(0);
      continue;
    }
    const T* src = p.in + ih * p.Win;
    // Columns j in [j_lo, j_hi) have both 2j-P and 2j+1-P inside the row: a
    // branch-free even/odd split there, the checked form on the few others.
    const int64_t j_lo = (p.P + 1) / 2, j_hi_raw = (p.Win + p.P) / 2;
    const int64_t j_hi = j_hi_raw < Wq ? (j_hi_raw > j_lo ? j_hi_raw : j_lo) : Wq;
    auto edge = [&](int64_t j) {
      const int64_t c0 = 2 * j - p.P, c1 = c0 + 1;
      e[j] = c0 >= 0 && c0 < p.Win ? src[c0] : T(0);
      o[j] = c1 >= 0 && c1 < p.Win ? src[c1] : T(0);
    };
    for (int64_t j = 0; j < j_lo && j < Wq; ++j) edge(j);
    const T* __restrict s0 = src - p.P;
    T* __restrict ee = e;
    T* __restrict oo = o;
#pragma omp simd
    for (int64_t j = j_lo; j < j_hi; ++j) {
      ee[j] = s0[2 * j];
      oo[j] = s0[2 * j + 1];
    }
    for (int64_t j = j_hi > j_lo ? j_hi : j_lo; j < Wq; ++j) edge(j);
  }
  T wk[kK * kK];
  for (int i = 0; i < kK * kK; ++i) wk[i] = p.wk[i];
  const bool acc_mode = p.mode == GradientMode::Accumulate;
  for (int64_t oh = 0; oh < p.Hout; ++oh) {
    T* yr = p.out + oh * p.Wout;
    for (int64_t ob = 0; ob < Wb; ob += kV) {
      T acc[kV];
      for (int v = 0; v < kV; ++v) acc[v] = p.bias;
      for (int kh = 0; kh < kK; ++kh) {
        const T* row = buf + (2 * oh + kh) * 2 * Wq + ob;
#pragma GCC unroll 7
        for (int kw = 0; kw < kK; ++kw) {
          const T a = wk[kh * kK + kw];
          const T* r = row + (kw & 1) * Wq + (kw >> 1);
          for (int v = 0; v < kV; ++v) acc[v] += a * r[v];
        }
      }
      const int64_t n = p.Wout - ob < kV ? p.Wout - ob : kV;
      if (acc_mode)
        for (int64_t v = 0; v < n; ++v) yr[ob + v] += acc[v];
      else
        for (int64_t v = 0; v < n; ++v) yr[ob + v] = acc[v];
    }
  }
}

// Stride-2 input gradient of one plane (see the file comment):
// dx[2i+a][2j+b] = sum_t sum_u w[ka+2t][kb+2u] * dy[i+Ai-t][j+Bj-u],
// ka = (a+P)&1, Ai = (a+P)>>1 (kb, Bj likewise from b), dy zero outside.
template <int kK, typename T>
void plane_s2_input_grad(const DwconvShape& s, const T* wc, const T* dyc, T* dxc, GradientMode mode) {
  const int64_t Ho = s.Ho(), Wo = s.Wo(), H = s.H, W = s.W, P = s.P;
  constexpr int64_t M = (kK + 1) / 2;  // zero margin above / left of dy
  const int64_t J = (W + 1) / 2, Jb = (J + kV - 1) / kV * kV;
  const int64_t I = (H + 1) / 2;
  const int64_t rows = M + (Ho > I + kK ? Ho : I + kK) + 1, Wd = M + (Wo > Jb + kK ? Wo : Jb + kK) + 1;
  T* buf = scratch<T>(rows * Wd);
  for (int64_t r = 0; r < rows; ++r) {
    T* d = buf + r * Wd;
    const int64_t oh = r - M;
    if (oh < 0 || oh >= Ho) {
      for (int64_t j = 0; j < Wd; ++j) d[j] = T(0);
      continue;
    }
    for (int64_t j = 0; j < M; ++j) d[j] = T(0);
    const T* __restrict src = dyc + oh * Wo;
    T* __restrict dst = d + M;
#pragma omp simd
    for (int64_t j = 0; j < Wo; ++j) dst[j] = src[j];
    for (int64_t j = M + Wo; j < Wd; ++j) d[j] = T(0);
  }
  const bool acc_mode = mode == GradientMode::Accumulate;
  for (int64_t ih = 0; ih < H; ++ih) {
    const int64_t a = ih & 1, i = ih >> 1, ka = (a + P) & 1, Ai = (a + P) >> 1;
    T* xr = dxc + ih * W;
    for (int64_t jb = 0; jb < Jb; jb += kV) {
      T acc[2][kV];
      for (int b = 0; b < 2; ++b) {
        const int64_t kb = (b + P) & 1, Bj = (b + P) >> 1;
        for (int v = 0; v < kV; ++v) acc[b][v] = T(0);
        for (int64_t kh = ka, t = 0; kh < kK; kh += 2, ++t) {
          const T* dr = buf + (i + Ai - t + M) * Wd + M + jb + Bj;
          for (int64_t kw = kb, u = 0; kw < kK; kw += 2, ++u) {
            const T wv = wc[kh * kK + kw];
            const T* d = dr - u;
            for (int v = 0; v < kV; ++v) acc[b][v] += wv * d[v];
          }
        }
      }
      const int64_t iw0 = 2 * jb;
      if (iw0 + 2 * kV <= W) {
        T* o = xr + iw0;
        if (acc_mode)
          for (int v = 0; v < kV; ++v) {
            o[2 * v] += acc[0][v];
            o[2 * v + 1] += acc[1][v];
          }
        else
          for (int v = 0; v < kV; ++v) {
            o[2 * v] = acc[0][v];
            o[2 * v + 1] = acc[1][v];
          }
      } else {
        for (int64_t q = iw0; q < W; ++q) {
          const T val = acc[q & 1][(q - iw0) >> 1];
          xr[q] = acc_mode ? xr[q] + val : val;
        }
      }
    }
  }
}

// Picks the compiled variant for (K, S).
template <typename T>
void plane_corr(const Plane<T>& p) {
  if (p.P >= 0 && p.P < p.K) {
    if (p.S == 1) {
      if (p.K == 3) return plane_fast<3, 1>(p);
      if (p.K == 5) return plane_fast<5, 1>(p);
      if (p.K == 7) return plane_fast<7, 1>(p);
      return plane_generic<1>(p);
    }
    if (p.S == 2) {
      // The phase-split copy pays off with enough taps per copied element; 3x3
      // (and 5x5 on wide rows) stays memory-bound and is faster as strided row
      // axpys straight from the input (measured on the 300M / 1.3G shapes).
      if (p.K == 7) return plane_s2<7>(p);
      if (p.K == 5 && p.Wout <= 40) return plane_s2<5>(p);
      return plane_generic<2>(p);
    }
  }
  plane_generic<0>(p);
}

// Input gradient by scatter (the shapes the paths above do not cover), added into
// dx: dx_row[o*S + off] += k * dy_row[o] over output rows oh, valid taps kh, taps kw
// and their output range, i.e. dwconv_input_grad_value in the order
// DwGradOrder::OutputRowsAscending onto the existing dx, as whole-row axpys (a
// per-element gather measured 2x (K 9, stride 1) to 8x (stride 3) slower).
template <typename T>
void plane_scatter(const DwconvShape& s, const T* wc, const T* dyc, T* dxc) {
  const int64_t Ho = s.Ho(), Wo = s.Wo(), K = s.K, S = s.S;
  for (int64_t oh = 0; oh < Ho; ++oh) {
    const T* __restrict dyr = dyc + oh * Wo;
    int64_t kh_lo, kh_hi;
    conv_tap_range(oh, K, S, s.P, s.H, &kh_lo, &kh_hi);
    for (int64_t kh = kh_lo; kh < kh_hi; ++kh) {
      T* __restrict dxr = dxc + conv_in_index(oh, kh, S, s.P) * s.W;
      for (int64_t kw = 0; kw < K; ++kw) {
        int64_t lo, hi;
        conv_out_range(kw, S, s.P, s.W, Wo, &lo, &hi);
        const T a = wc[kh * K + kw];
        const int64_t off = kw - s.P;
#pragma omp simd
        for (int64_t o = lo; o < hi; ++o) dxr[o * S + off] += a * dyr[o];
      }
    }
  }
}

// sum over o in [lo, hi) of the weight-gradient terms y[o] * x[o*S + off] (vector
// reduction order fixed at compile time).
template <int kS, typename T>
inline T row_dot(int64_t lo, int64_t hi, int64_t S, int64_t off, const T* __restrict y, const T* __restrict x) {
  const int64_t st = kS > 0 ? kS : S;
  T acc = T(0);
#pragma omp simd reduction(+ : acc)
  for (int64_t o = lo; o < hi; ++o) acc += dwconv_weight_grad_term(y[o], x[o * st + off]);
  return acc;
}

// Weight gradient of channel c, stride 1, K fixed, over the batch: for each sample
// a zero-padded copy of the x plane, then blocks of kV outputs: each dy block is
// loaded once and multiplied into the K*K tap accumulators (kV float lanes, summed
// in double per sample). Returns false when the plane does not fit.
template <int kK, typename T>
bool weight_padded(const DwconvShape& s, int64_t c, const T* x, const T* dy, double* dacc) {
  const int64_t Ho = s.Ho(), Wo = s.Wo();
  const int64_t Wb = (Wo + kV - 1) / kV * kV, Wp = Wb + kK - 1, Hp = Ho + kK - 1;
  if (Hp * Wp > kPadMax || s.H + 2 * s.P != Hp || s.W + 2 * s.P > Wp) return false;
  alignas(64) T buf[kPadMax];
  alignas(64) T acc[kK * kK][kV];
  for (int t = 0; t < kK * kK; ++t) dacc[t] = 0;
  for (int64_t n = 0; n < s.N; ++n) {
    pad_plane(x + n * s.x_batch_stride + c * s.H * s.W, s.H, s.W, s.P, buf, Hp, Wp);
    const T* dyc = dy + (n * s.C + c) * Ho * Wo;
    for (int t = 0; t < kK * kK; ++t)
      for (int v = 0; v < kV; ++v) acc[t][v] = T(0);
    for (int64_t oh = 0; oh < Ho; ++oh) {
      const T* dyr = dyc + oh * Wo;
      for (int64_t ob = 0; ob < Wb; ob += kV) {
        alignas(64) T d[kV];
        const int64_t nv = Wo - ob < kV ? Wo - ob : kV;
        for (int64_t v = 0; v < nv; ++v) d[v] = dyr[ob + v];
        for (int64_t v = nv; v < kV; ++v) d[v] = T(0);
        for (int kh = 0; kh < kK; ++kh) {
          const T* r = buf + (oh + kh) * Wp + ob;
          for (int kw = 0; kw < kK; ++kw) {
            T* __restrict a = acc[kh * kK + kw];
            for (int v = 0; v < kV; ++v) a[v] += dwconv_weight_grad_term(d[v], r[v + kw]);
          }
        }
      }
    }
    for (int t = 0; t < kK * kK; ++t) {
      double sum = 0;
      for (int v = 0; v < kV; ++v) sum += double(acc[t][v]);
      dacc[t] += sum;
    }
  }
  return true;
}

template <int kS, typename T>
void backward_weight_impl(const DwconvShape& s, const T* x, const T* dy, T* dw, GradientMode mode) {
  const int64_t Ho = s.Ho(), Wo = s.Wo(), K = s.K;
#pragma omp parallel for schedule(static) if (s.N * s.C * Ho * Wo * K * K > kParallelMin)
  for (int64_t c = 0; c < s.C; ++c) {
    if (kS == 1 && s.P < K) {
      double dacc[49];
      bool done = (K == 3 && weight_padded<3>(s, c, x, dy, dacc)) || (K == 5 && weight_padded<5>(s, c, x, dy, dacc)) ||
                  (K == 7 && weight_padded<7>(s, c, x, dy, dacc));
      if (done) {
        for (int64_t t = 0; t < K * K; ++t) write_grad(dw + c * K * K + t, T(dacc[t]), mode);
        continue;
      }
    }
    for (int64_t kh = 0; kh < K; ++kh) {
      int64_t oh_lo, oh_hi;
      conv_out_range(kh, s.S, s.P, s.H, Ho, &oh_lo, &oh_hi);
      for (int64_t kw = 0; kw < K; ++kw) {
        int64_t lo, hi;
        conv_out_range(kw, s.S, s.P, s.W, Wo, &lo, &hi);
        double acc = 0;
        for (int64_t n = 0; n < s.N; ++n) {
          const T* xc = x + n * s.x_batch_stride + c * s.H * s.W;
          const T* dyc = dy + (n * s.C + c) * Ho * Wo;
          for (int64_t oh = oh_lo; oh < oh_hi; ++oh)
            acc +=
                double(row_dot<kS>(lo, hi, s.S, kw - s.P, dyc + oh * Wo, xc + conv_in_index(oh, kh, s.S, s.P) * s.W));
        }
        write_grad(dw + (c * K + kh) * K + kw, T(acc), mode);
      }
    }
  }
}

}  // namespace

template <typename T>
void dwconv_forward(const DwconvShape& s, const T* x, const T* w, const T* b, T* y) {
  const int64_t Ho = s.Ho(), Wo = s.Wo(), K = s.K, NC = s.N * s.C;
#pragma omp parallel for schedule(static) if (NC * Ho * Wo * K * K > kParallelMin)
  for (int64_t nc = 0; nc < NC; ++nc) {
    const int64_t n = nc / s.C, c = nc % s.C;
    Plane<T> p;
    p.in = x + n * s.x_batch_stride + c * s.H * s.W, p.Hin = s.H, p.Win = s.W;
    p.wk = w + c * K * K, p.K = K, p.S = s.S, p.P = s.P, p.bias = b ? b[c] : T(0);
    p.out = y + nc * Ho * Wo, p.Hout = Ho, p.Wout = Wo, p.mode = GradientMode::Overwrite;
    plane_corr(p);
  }
}

template <typename T>
void dwconv_backward_input(const DwconvShape& s, const T* w, const T* dy, T* dx, GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
  const int64_t Ho = s.Ho(), Wo = s.Wo(), K = s.K, NC = s.N * s.C, HW = s.H * s.W;
  // Stride 1 (P <= K-1): correlation of dy with the flipped kernel, padding K-1-P.
  const bool as_corr = dwconv_input_grad_as_corr(s);
  const DwconvShape t = dwconv_input_grad_corr_shape(s);
#pragma omp parallel for schedule(static) if (NC * Ho * Wo * K * K > kParallelMin)
  for (int64_t nc = 0; nc < NC; ++nc) {
    const T* wc = w + (nc % s.C) * K * K;
    const T* dyc = dy + nc * Ho * Wo;
    T* dxc = dx + nc * HW;
    if (as_corr && K <= 7) {
      T flip[49];
      for (int64_t i = 0; i < K * K; ++i) flip[i] = wc[dwconv_flipped_tap(i, K)];
      plane_corr(Plane<T>{dyc, t.H, t.W, flip, t.K, t.S, t.P, T(0), dxc, t.Ho(), t.Wo(), mode});
    } else if (s.S == 2 && s.P >= 0 && s.P < K && (K == 3 || K == 5 || K == 7)) {
      if (K == 3) plane_s2_input_grad<3>(s, wc, dyc, dxc, mode);
      if (K == 5) plane_s2_input_grad<5>(s, wc, dyc, dxc, mode);
      if (K == 7) plane_s2_input_grad<7>(s, wc, dyc, dxc, mode);
    } else {
      if (mode == GradientMode::Overwrite)
        for (int64_t i = 0; i < HW; ++i) dxc[i] = T(0);
      plane_scatter(s, wc, dyc, dxc);
    }
  }
}

template <typename T>
void dwconv_backward_weight(const DwconvShape& s, const T* x, const T* dy, T* dw, GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
  if (s.S == 1)
    backward_weight_impl<1>(s, x, dy, dw, mode);
  else if (s.S == 2)
    backward_weight_impl<2>(s, x, dy, dw, mode);
  else
    backward_weight_impl<0>(s, x, dy, dw, mode);
}

#define DETNAS_INST(T)                                                                              \
  template void dwconv_forward<T>(const DwconvShape&, const T*, const T*, const T*, T*);            \
  template void dwconv_backward_input<T>(const DwconvShape&, const T*, const T*, T*, GradientMode); \
  template void dwconv_backward_weight<T>(const DwconvShape&, const T*, const T*, T*, GradientMode);
DETNAS_INST(float)
DETNAS_INST(double)
#undef DETNAS_INST

}  // namespace detnas::kernels::cpu
