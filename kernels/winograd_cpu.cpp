// Winograd F(4x4,3x3) for dense 3x3 stride-1 pad-1 convs (forward, backward-data):
// filter transform U = G g G^T (in double, rounded once), input transform
// V = B^T d B of each 6x6 patch, 36 GEMMs M = U V over blocks of tiles, output
// transform Y = A^T M A. Transforms run over 16 tiles at a time (`omp simd`
// lanes: one AVX-512 register of floats) and are parallel over channels; the
// 36 GEMMs of a block are parallel over the frequencies. Matrices: Lavin & Gray 2015,
// interpolation points 0, +-1, +-2, infinity.
// Not here: the decision to use it (winograd_preferred, called by conv2d_cpu.cpp).
#include "kernels/winograd_cpu.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels/gemm.h"

namespace detnas::kernels::cpu {

namespace {

constexpr int64_t kVL = 16;          // tiles per transform step (simd lanes)
constexpr int64_t kTileBlock = 128;  // tiles per GEMM block (32..2048 ran within noise; smaller = less workspace)

std::atomic<int> g_enabled{-1};  // -1: not read from the environment yet

struct Geo {
  int64_t N, Ci, Co, H, W, th_n, tw_n, T;
};

Geo geometry(int64_t N, int64_t Ci, int64_t Co, int64_t H, int64_t W) {
  Geo g{N, Ci, Co, H, W, (H + 3) / 4, (W + 3) / 4, 0};
  g.T = N * g.th_n * g.tw_n;
  return g;
}

// r = B^T d along one axis for kVL lanes: d[i*ds + k], r[i*rs + k], i < 6.
template <typename T>
inline void bt_1d(const T* d, int64_t ds, T* r, int64_t rs) {
#pragma omp simd
  for (int64_t k = 0; k < kVL; ++k) {
    const T d0 = d[k], d1 = d[ds + k], d2 = d[2 * ds + k], d3 = d[3 * ds + k], d4 = d[4 * ds + k], d5 = d[5 * ds + k];
    r[k] = T(4) * d0 - T(5) * d2 + d4;
    r[rs + k] = (d3 + d4) - T(4) * (d1 + d2);
    r[2 * rs + k] = T(4) * (d1 - d2) + (d4 - d3);
    r[3 * rs + k] = T(2) * (d3 - d1) + (d4 - d2);
    r[4 * rs + k] = T(2) * (d1 - d3) + (d4 - d2);
    r[5 * rs + k] = T(4) * d1 - T(5) * d3 + d5;
  }
}

// o = A^T m along one axis for kVL lanes: m[i*ms + k] (i < 6), o[i*os + k] (i < 4).
template <typename T>
inline void at_1d(const T* m, int64_t ms, T* o, int64_t os) {
#pragma omp simd
  for (int64_t k = 0; k < kVL; ++k) {
    const T m0 = m[k], m1 = m[ms + k], m2 = m[2 * ms + k], m3 = m[3 * ms + k], m4 = m[4 * ms + k], m5 = m[5 * ms + k];
    const T s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
    o[k] = m0 + s12 + s34;
    o[os + k] = d12 + T(2) * d34;
    o[2 * os + k] = s12 + T(4) * s34;
    o[3 * os + k] = d12 + T(8) * d34 + m5;
  }
}

// u = G g G^T for kVL filters at once: g[q][k] (q = 3*kh + kw), u[xi][k] (xi = 6*i + j).
// In double (rounded once when stored), so U carries one float rounding.
inline void filter_transform(const double (&g)[9][kVL], double (&u)[36][kVL]) {
  constexpr double s6 = 1.0 / 6, s12 = 1.0 / 12, s24 = 1.0 / 24;
  double t[6][3][kVL];
  for (int j = 0; j < 3; ++j) {
#pragma omp simd
    for (int64_t k = 0; k < kVL; ++k) {
      const double a = g[j][k], b = g[3 + j][k], c = g[6 + j][k];
      t[0][j][k] = a * 0.25;
      t[1][j][k] = -(a + b + c) * s6;
      t[2][j][k] = -(a - b + c) * s6;
      t[3][j][k] = a * s24 + b * s12 + c * s6;
      t[4][j][k] = a * s24 - b * s12 + c * s6;
      t[5][j][k] = c;
    }
  }
  for (int i = 0; i < 6; ++i) {
#pragma omp simd
    for (int64_t k = 0; k < kVL; ++k) {
      const double a = t[i][0][k], b = t[i][1][k], c = t[i][2][k];
      u[i * 6 + 0][k] = a * 0.25;
      u[i * 6 + 1][k] = -(a + b + c) * s6;
      u[i * 6 + 2][k] = -(a - b + c) * s6;
      u[i * 6 + 3][k] = a * s24 + b * s12 + c * s6;
      u[i * 6 + 4][k] = a * s24 - b * s12 + c * s6;
      u[i * 6 + 5][k] = c;
    }
  }
}

// U[o * uR + xi * uF + i] for the conv whose filter is w (Co,Ci,3,3) (flip == false),
// or for the backward-data conv: Co = C, Ci = Cout, filter w'(c,co) = w(co,c) rotated 180.
template <typename T>
void transform_filters(const T* w, int64_t Co, int64_t Ci, bool flip, T* U, int64_t uR, int64_t uF) {
#pragma omp parallel for schedule(static) if (Co * Ci > 64)
  for (int64_t o = 0; o < Co; ++o) {
    alignas(64) double g[9][kVL], u[36][kVL];
    for (int64_t i0 = 0; i0 < Ci; i0 += kVL) {
      const int64_t nk = std::min(kVL, Ci - i0);
      for (int64_t k = 0; k < kVL; ++k) {
        const int64_t i = i0 + std::min(k, nk - 1);
        const T* src = flip ? w + (i * Co + o) * 9 : w + (o * Ci + i) * 9;
        for (int q = 0; q < 9; ++q) g[q][k] = double(src[flip ? 8 - q : q]);
      }
      filter_transform(g, u);
      for (int64_t xi = 0; xi < 36; ++xi) {
        T* dst = U + o * uR + xi * uF + i0;
        if (nk == kVL) {
#pragma omp simd
          for (int64_t k = 0; k < kVL; ++k) dst[k] = T(u[xi][k]);
        } else {
          for (int64_t k = 0; k < nk; ++k) dst[k] = T(u[xi][k]);
        }
      }
    }
  }
}

// Calls f(n, th, tw_lo, tw_hi, t_of_tw_lo) for each tile row segment inside tiles [t0, t1).
template <typename F>
void for_rows(const Geo& g, int64_t t0, int64_t t1, F&& f) {
  for (int64_t r = t0 / g.tw_n; r * g.tw_n < t1; ++r) {
    const int64_t lo = std::max<int64_t>(t0 - r * g.tw_n, 0), hi = std::min<int64_t>(t1 - r * g.tw_n, g.tw_n);
    if (lo < hi) f(r / g.th_n, r % g.th_n, lo, hi, r * g.tw_n + lo);
  }
}

// Short tile rows (small planes, e.g. the box head's 7x7 RoI features: 2 tiles
// per row) would leave most of the kVL lanes of a row-wise transform idle; their
// transforms take kVL consecutive tiles of the block instead, across rows and
// samples, each lane gathering its own patch (scattering its own outputs). The
// arithmetic of every tile is the same in both forms, so the results are too.
inline bool gather_lanes(const Geo& g) { return g.tw_n < kVL / 2; }

// Sample, tile row and tile column of tile t.
struct TilePos {
  int64_t n, th, tw;
};
inline TilePos tile_pos(const Geo& g, int64_t t) {
  const int64_t per = g.th_n * g.tw_n, r = t % per;
  return {t / per, r / g.tw_n, r % g.tw_n};
}

// input_transform for gather_lanes(g): the planes of the samples the block
// touches are first copied into zero-padded planes, so that every lane gathers
// its 6x6 patch without bounds checks.
template <typename T>
void input_transform_gathered(const Geo& g, const T* x, int64_t x_bs, int64_t t0, int64_t t1, T* V, int64_t vR,
                              int64_t ld) {
  const int64_t per = g.th_n * g.tw_n, n0 = t0 / per, n1 = (t1 - 1) / per + 1;
  const int64_t Pw = 4 * g.tw_n + 2, plane = (4 * g.th_n + 2) * Pw;
#pragma omp parallel if (g.Ci * (t1 - t0) * 36 > (1 << 14))
  {
    std::vector<T> pad(size_t((n1 - n0) * plane));
    alignas(64) T d[6][6][kVL], t[6][6][kVL], v[6][6][kVL];
#pragma omp for schedule(static)
    for (int64_t c = 0; c < g.Ci; ++c) {
      std::fill(pad.begin(), pad.end(), T(0));
      for (int64_t n = n0; n < n1; ++n) {  // padded(r, q) = x(r - 1, q - 1)
        const T* xc = x + n * x_bs + c * g.H * g.W;
        T* P = pad.data() + (n - n0) * plane;
        for (int64_t h = 0; h < g.H; ++h) std::memcpy(P + (h + 1) * Pw + 1, xc + h * g.W, size_t(g.W) * sizeof(T));
      }
      for (int64_t tb = t0; tb < t1; tb += kVL) {
        const int64_t nk = std::min(kVL, t1 - tb);
        for (int64_t k = 0; k < kVL; ++k) {
          // Lanes past the block repeat its last tile (their values land in the row's unused tail).
          const TilePos p = tile_pos(g, tb + std::min(k, nk - 1));
          const T* src = pad.data() + (p.n - n0) * plane + 4 * p.th * Pw + 4 * p.tw;
          for (int64_t i = 0; i < 6; ++i)
            for (int64_t j = 0; j < 6; ++j) d[i][j][k] = src[i * Pw + j];
        }
        for (int64_t j = 0; j < 6; ++j) bt_1d(&d[0][j][0], 6 * kVL, &t[0][j][0], 6 * kVL);
        for (int64_t i = 0; i < 6; ++i) bt_1d(&t[i][0][0], kVL, &v[i][0][0], kVL);
        T* dst = V + c * vR + (tb - t0);
        for (int64_t xi = 0; xi < 36; ++xi) std::memcpy(dst + xi * ld, &v[xi / 6][xi % 6][0], sizeof(T) * kVL);
      }
    }
  }
}

// V[c * vR + xi * ld + t - t0] for tiles [t0, t1): the transformed 6x6 input patches.
template <typename T>
void input_transform(const Geo& g, const T* x, int64_t x_bs, int64_t t0, int64_t t1, T* V, int64_t vR, int64_t ld) {
  if (gather_lanes(g)) return input_transform_gathered(g, x, x_bs, t0, t1, V, vR, ld);
  const int64_t Lw = 4 * g.tw_n + 2 + 4 * kVL;  // padded row, room for a full last lane block
#pragma omp parallel if (g.Ci * (t1 - t0) * 36 > (1 << 14))
  {
    std::vector<T> lines(size_t(6 * Lw));
    alignas(64) T d[6][6][kVL], t[6][6][kVL], v[6][6][kVL];
#pragma omp for schedule(static)
    for (int64_t c = 0; c < g.Ci; ++c) {
      for_rows(g, t0, t1, [&](int64_t n, int64_t th, int64_t lo, int64_t hi, int64_t tstart) {
        const T* xc = x + n * x_bs + c * g.H * g.W;
        // Six zero-padded input rows: line[i][p] = x(4*th - 1 + i, p - 1).
        for (int64_t i = 0; i < 6; ++i) {
          T* L = lines.data() + i * Lw;
          const int64_t ih = 4 * th - 1 + i;
          if (ih >= 0 && ih < g.H) {
            L[0] = T(0);
            std::memcpy(L + 1, xc + ih * g.W, size_t(g.W) * sizeof(T));
            for (int64_t p = g.W + 1; p < Lw; ++p) L[p] = T(0);
          } else {
            for (int64_t p = 0; p < Lw; ++p) L[p] = T(0);
          }
        }
        for (int64_t tw0 = lo; tw0 < hi; tw0 += kVL) {
          for (int64_t i = 0; i < 6; ++i) {
            const T* L = lines.data() + i * Lw + 4 * tw0;
            for (int64_t j = 0; j < 6; ++j) {
#pragma omp simd
              for (int64_t k = 0; k < kVL; ++k) d[i][j][k] = L[4 * k + j];
            }
          }
          for (int64_t j = 0; j < 6; ++j) bt_1d(&d[0][j][0], 6 * kVL, &t[0][j][0], 6 * kVL);
          for (int64_t i = 0; i < 6; ++i) bt_1d(&t[i][0][0], kVL, &v[i][0][0], kVL);
          T* dst = V + c * vR + (tstart - t0) + (tw0 - lo);
          for (int64_t xi = 0; xi < 36; ++xi) {
            T* p = dst + xi * ld;
            const T* s = &v[xi / 6][xi % 6][0];
            std::memcpy(p, s, sizeof(T) * kVL);  // all lanes (see Layout): one or two vector moves
          }
        }
      });
    }
  }
}

// output_transform for gather_lanes(g).
template <typename T>
void output_transform_gathered(const Geo& g, const T* M, int64_t mR, int64_t ld, int64_t t0, int64_t t1, const T* bias,
                               bool acc, T* y) {
#pragma omp parallel if (g.Co * (t1 - t0) * 36 > (1 << 14))
  {
    alignas(64) T m[6][6][kVL], t[4][6][kVL], o[4][4][kVL];
#pragma omp for schedule(static)
    for (int64_t co = 0; co < g.Co; ++co) {
      const T bv = bias ? bias[co] : T(0);
      for (int64_t tb = t0; tb < t1; tb += kVL) {
        const int64_t nk = std::min(kVL, t1 - tb);
        const T* src = M + co * mR + (tb - t0);
        for (int64_t xi = 0; xi < 36; ++xi) {
          T* q = &m[xi / 6][xi % 6][0];
          std::memcpy(q, src + xi * ld, sizeof(T) * kVL);
          for (int64_t k = nk; k < kVL; ++k) q[k] = T(0);
        }
        for (int64_t j = 0; j < 6; ++j) at_1d(&m[0][j][0], 6 * kVL, &t[0][j][0], 6 * kVL);
        for (int64_t i = 0; i < 4; ++i) at_1d(&t[i][0][0], kVL, &o[i][0][0], kVL);
        for (int64_t k = 0; k < nk; ++k) {
          const TilePos p = tile_pos(g, tb + k);
          T* yc = y + (p.n * g.Co + co) * g.H * g.W;
          for (int64_t i = 0; i < 4 && 4 * p.th + i < g.H; ++i) {
            T* row = yc + (4 * p.th + i) * g.W + 4 * p.tw;
            const int64_t nw = std::min<int64_t>(4, g.W - 4 * p.tw);
            for (int64_t j = 0; j < nw; ++j) row[j] = acc ? row[j] + o[i][j][k] : bv + o[i][j][k];
          }
        }
      }
    }
  }
}

// y tiles [t0, t1) from M[co * mR + xi * ld + t - t0]: y = bias + A^T M A, or y += A^T M A.
template <typename T>
void output_transform(const Geo& g, const T* M, int64_t mR, int64_t ld, int64_t t0, int64_t t1, const T* bias, bool acc,
                      T* y) {
  if (gather_lanes(g)) return output_transform_gathered(g, M, mR, ld, t0, t1, bias, acc, y);
#pragma omp parallel if (g.Co * (t1 - t0) * 36 > (1 << 14))
  {
    alignas(64) T m[6][6][kVL], t[4][6][kVL], o[4][4][kVL];
#pragma omp for schedule(static)
    for (int64_t co = 0; co < g.Co; ++co) {
      const T bv = bias ? bias[co] : T(0);
      for_rows(g, t0, t1, [&](int64_t n, int64_t th, int64_t lo, int64_t hi, int64_t tstart) {
        T* yc = y + (n * g.Co + co) * g.H * g.W;
        for (int64_t tw0 = lo; tw0 < hi; tw0 += kVL) {
          const int64_t nk = std::min<int64_t>(kVL, hi - tw0);
          const T* src = M + co * mR + (tstart - t0) + (tw0 - lo);
          for (int64_t xi = 0; xi < 36; ++xi) {
            const T* p = src + xi * ld;
            T* q = &m[xi / 6][xi % 6][0];
            std::memcpy(q, p, sizeof(T) * kVL);              // lanes >= nk: other tiles or padding, never stored
            for (int64_t k = nk; k < kVL; ++k) q[k] = T(0);  // (padding is uninitialised: no denormal stalls)
          }
          for (int64_t j = 0; j < 6; ++j) at_1d(&m[0][j][0], 6 * kVL, &t[0][j][0], 6 * kVL);
          for (int64_t i = 0; i < 4; ++i) at_1d(&t[i][0][0], kVL, &o[i][0][0], kVL);
          const int64_t ow0 = 4 * tw0, nw = std::min<int64_t>(4 * nk, g.W - ow0);
          for (int64_t i = 0; i < 4; ++i) {
            const int64_t oh = 4 * th + i;
            if (oh >= g.H) break;
            T* __restrict row = yc + oh * g.W + ow0;
            const T* oi = &o[i][0][0];  // output column q = 4k + j is oi[j*kVL + k]
            if (nw == 4 * kVL) {
              if (acc) {
#pragma omp simd
                for (int64_t q = 0; q < 4 * kVL; ++q) row[q] += oi[(q & 3) * kVL + (q >> 2)];
              } else {
#pragma omp simd
                for (int64_t q = 0; q < 4 * kVL; ++q) row[q] = bv + oi[(q & 3) * kVL + (q >> 2)];
              }
            } else if (acc) {
              for (int64_t q = 0; q < nw; ++q) row[q] += oi[(q & 3) * kVL + (q >> 2)];
            } else {
              for (int64_t q = 0; q < nw; ++q) row[q] = bv + oi[(q & 3) * kVL + (q >> 2)];
            }
          }
        }
      });
    }
  }
}

// Workspace layout. The frequency is the middle index of U (o, xi, i), V (c, xi, t)
// and M (co, xi, t), so a transform touches one contiguous run of 36 rows
// (frequency xi's GEMM operands are the strided matrices starting at row xi);
// with the frequency outermost the 36 rows would lie a whole matrix apart,
// costing a TLB miss per row once U/V/M outgrow the TLB's reach. U's rows are
// padded by kPad so power-of-two channel counts do not put the 36 rows a
// multiple of 4 KiB apart (one L1 set). The transforms move all kVL lanes even when fewer
// tiles are left in a tile row: ld >= tiles + kVL keeps the extra lanes inside
// the channel's own row of V (where the same thread writes the right values
// later, or in the unused tail) and inside the workspace when reading M.
constexpr int64_t kPad = 16;
struct Layout {
  int64_t Co, Ci, ld, uF;  // ld: row length of V and M (tiles), uF: row length of U
  int64_t size() const { return 36 * (Co * uF + (Ci + Co) * ld); }
};
Layout layout(const Geo& g) {
  Layout l;
  l.ld = (std::min(g.T, kTileBlock) + kVL - 1) / kVL * kVL + kVL;
  l.Co = g.Co, l.Ci = g.Ci;
  l.uF = g.Ci + kPad;
  return l;
}

// out (N,Co,H,W) = or += conv(in, filter w or its backward-data form), block of tiles by block.
template <typename T>
void run(const Geo& g, const T* in, int64_t in_bs, const T* w, bool flip, const T* bias, bool acc, T* out, T* ws) {
  const Layout l = layout(g);
  T* U = ws;
  T* V = U + 36 * g.Co * l.uF;
  T* M = V + 36 * g.Ci * l.ld;
  transform_filters(w, g.Co, g.Ci, flip, U, 36 * l.uF, l.uF);
  const int64_t blocks = (g.T + kTileBlock - 1) / kTileBlock, step = (g.T + blocks - 1) / blocks;  // equal blocks
  for (int64_t t0 = 0; t0 < g.T; t0 += step) {
    const int64_t t1 = std::min(g.T, t0 + step), nt = t1 - t0;
    input_transform(g, in, in_bs, t0, t1, V, 36 * l.ld, l.ld);
    // One GEMM per frequency, the frequencies spread over the threads (each GEMM
    // is then one serial call whatever the thread count: bitwise-stable results).
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t xi = 0; xi < 36; ++xi)
      gemm<T>(Trans::No, Trans::No, g.Co, nt, g.Ci, T(1), U + xi * l.uF, 36 * l.uF, V + xi * l.ld, 36 * l.ld, T(0),
              M + xi * l.ld, 36 * l.ld);
    output_transform(g, M, 36 * l.ld, l.ld, t0, t1, bias, acc, out);
  }
}

}  // namespace

bool winograd_enabled() {
  if (g_enabled < 0) {
    const char* e = std::getenv("DETNAS_CONV_WINOGRAD");
    g_enabled = (e && e[0] == '0' && e[1] == 0) ? 0 : 1;
  }
  return g_enabled == 1;
}

void set_winograd_enabled(bool on) { g_enabled = on ? 1 : 0; }

bool winograd_applicable(const Conv2dShape& s) {
  return s.KH == 3 && s.KW == 3 && s.S == 1 && s.P == 1 && s.G == 1 && s.N > 0 && s.H > 0 && s.W > 0;
}

bool winograd_preferred(const Conv2dShape& s) {
  if (!winograd_applicable(s) || !winograd_enabled()) return false;
  // Fixed costs: the filter transform and reading U (4x the filter) in 36 GEMMs,
  // whatever the plane; the saving grows with the tiles. Measured on the head's
  // 256->256 convs at batch 2 (Xeon, 1 and 2 threads): slower up to 50 tiles
  // (20x20), break-even around 100 (25x25 .. 28x28), 1.5x at 128 (32x32) and
  // about 2x from 200 (40x40) up; 64 channels behave alike.
  const int64_t tiles = s.N * ((s.H + 3) / 4) * ((s.W + 3) / 4);
  return s.C >= 32 && s.Cout >= 32 && tiles >= 128;
}

int64_t winograd_workspace_size(const Conv2dShape& s) {
  if (!winograd_applicable(s)) return 0;
  // Forward, and backward-data (input and output channels swapped).
  return std::max(layout(geometry(s.N, s.C, s.Cout, s.H, s.W)).size(),
                  layout(geometry(s.N, s.Cout, s.C, s.H, s.W)).size());
}

template <typename T>
void winograd_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y, T* ws) {
  run(geometry(s.N, s.C, s.Cout, s.H, s.W), x, s.x_batch_stride, w, false, b, false, y, ws);
}

template <typename T>
void winograd_backward_input(const Conv2dShape& s, const T* w, const T* dy, T* dx, GradientMode mode, T* ws) {
  if (mode == GradientMode::Ignore) return;
  // The transposed conv: dy (Cout channels) -> dx (C channels), rotated filters.
  run(geometry(s.N, s.Cout, s.C, s.H, s.W), dy, s.Cout * s.H * s.W, w, true, static_cast<const T*>(nullptr),
      mode == GradientMode::Accumulate, dx, ws);
}

#define DETNAS_INST(T)                                                                         \
  template void winograd_forward<T>(const Conv2dShape&, const T*, const T*, const T*, T*, T*); \
  template void winograd_backward_input<T>(const Conv2dShape&, const T*, const T*, T*, GradientMode, T*);
DETNAS_INST(float)
DETNAS_INST(double)
#undef DETNAS_INST

}  // namespace detnas::kernels::cpu
