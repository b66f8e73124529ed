// RoIAlign (torchvision semantics, golden README "roi_align"): the parameter
// struct, the per-box geometry, the sample points of a bin, the bilinear taps of
// one sample point, the 4-tap bilinear sum (forward) and each tap's share of the
// gradient (backward) as DETNAS_HD functions shared by the CPU kernels
// (kernels/roi_align_cpu.cpp) and the CUDA kernels (kernels/roi_align_cuda.cu),
// and the CPU kernel declarations.
// Not here: input validation (batch index range, finite boxes: runtime/ops_box.cpp),
// multi-level RoI assignment (detect/).
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/common.h"

namespace detnas::kernels {

// Legacy: box width/height clamped to >= 1 feature pixel (Detectron / Faster R-CNN
// FPN default). Aligned: coordinates shifted by -0.5 after scaling, no clamp.
enum class RoiAlignMode { Legacy, Aligned };

struct RoiAlignParams {
  int64_t pooled_h = 7, pooled_w = 7;  // PH, PW
  float spatial_scale = 1.0f;          // image coordinates -> feature coordinates
  int64_t sampling_ratio = 2;          // > 0: fixed grid per bin; <= 0: adaptive ceil(roi/PH)
  RoiAlignMode mode = RoiAlignMode::Legacy;
};

// One box mapped onto the feature map.
template <typename T>
struct RoiGeometry {
  T start_h, start_w;  // top-left in feature coordinates
  T bin_h, bin_w;      // bin size
  int grid_h, grid_w;  // samples per bin along each axis (may be <= 0: no samples)
  T count;             // divisor: max(grid_h * grid_w, 1)
};

// box = (batch_index, x1, y1, x2, y2) in image coordinates.
template <typename T>
DETNAS_HD RoiGeometry<T> roi_align_geometry(const RoiAlignParams& p, const T* box) {
  const T scale = T(p.spatial_scale);
  const T offset = p.mode == RoiAlignMode::Aligned ? T(0.5) : T(0);
  RoiGeometry<T> g;
  g.start_w = box[1] * scale - offset;
  g.start_h = box[2] * scale - offset;
  const T end_w = box[3] * scale - offset;
  const T end_h = box[4] * scale - offset;
  T roi_w = end_w - g.start_w;
  T roi_h = end_h - g.start_h;
  if (p.mode == RoiAlignMode::Legacy) {
    roi_w = roi_w > T(1) ? roi_w : T(1);
    roi_h = roi_h > T(1) ? roi_h : T(1);
  }
  g.bin_h = roi_h / T(p.pooled_h);
  g.bin_w = roi_w / T(p.pooled_w);
  g.grid_h = p.sampling_ratio > 0 ? int(p.sampling_ratio) : int(std::ceil(roi_h / T(p.pooled_h)));
  g.grid_w = p.sampling_ratio > 0 ? int(p.sampling_ratio) : int(std::ceil(roi_w / T(p.pooled_w)));
  const int n = g.grid_h * g.grid_w;
  g.count = T(n > 1 ? n : 1);
  return g;
}

// Sample coordinate iy (of grid_h) in bin ph: start + ph*bin + (iy+0.5)*bin/grid.
template <typename T>
DETNAS_HD T roi_align_sample_coord(T start, T bin, int64_t pbin, int i, int grid) {
  return start + T(pbin) * bin + T(i + 0.5) * bin / T(grid);
}

// The four bilinear taps of one sample point: offsets into an H x W plane and
// their weights. A point outside [-1, H] x [-1, W] has all weights 0 and offsets 0.
template <typename T>
struct BilinearTaps {
  int64_t off[4];  // (y_low,x_low), (y_low,x_high), (y_high,x_low), (y_high,x_high)
  T w[4];
  bool valid;
};

template <typename T>
DETNAS_HD BilinearTaps<T> roi_align_bilinear(int64_t H, int64_t W, T y, T x) {
  BilinearTaps<T> t;
  if (y < T(-1) || y > T(H) || x < T(-1) || x > T(W)) {
    for (int k = 0; k < 4; ++k) {
      t.off[k] = 0;
      t.w[k] = T(0);
    }
    t.valid = false;
    return t;
  }
  if (y <= T(0)) y = T(0);
  if (x <= T(0)) x = T(0);
  int64_t y_low = int64_t(y), x_low = int64_t(x), y_high, x_high;
  if (y_low >= H - 1) {
    y_high = y_low = H - 1;
    y = T(y_low);
  } else {
    y_high = y_low + 1;
  }
  if (x_low >= W - 1) {
    x_high = x_low = W - 1;
    x = T(x_low);
  } else {
    x_high = x_low + 1;
  }
  const T ly = y - T(y_low), lx = x - T(x_low);
  const T hy = T(1) - ly, hx = T(1) - lx;
  t.off[0] = y_low * W + x_low;
  t.off[1] = y_low * W + x_high;
  t.off[2] = y_high * W + x_low;
  t.off[3] = y_high * W + x_high;
  t.w[0] = hy * hx;
  t.w[1] = hy * lx;
  t.w[2] = ly * hx;
  t.w[3] = ly * lx;
  t.valid = true;
  return t;
}

// The bilinear value of one sample point over an H x W plane: the 4-tap sum.
template <typename T>
DETNAS_HD T roi_align_tap_sum(const BilinearTaps<T>& t, const T* plane) {
  return t.w[0] * plane[t.off[0]] + t.w[1] * plane[t.off[1]] + t.w[2] * plane[t.off[2]] + t.w[3] * plane[t.off[3]];
}

// The share of the upstream gradient dy of a bin that tap k of one of its sample
// points receives: dy * w[k] / count.
template <typename T>
DETNAS_HD T roi_align_tap_share(const BilinearTaps<T>& t, int k, T dy, T count) {
  return dy * t.w[k] / count;
}

// Calls f(taps) for every sample point of bin (ph, pw) that lies on the plane
// (invalid points dropped), in (iy, ix) order.
template <typename T, typename F>
DETNAS_HD void roi_align_bin_taps(const RoiGeometry<T>& g, int64_t H, int64_t W, int64_t ph, int64_t pw, F&& f) {
  for (int iy = 0; iy < g.grid_h; ++iy) {
    const T y = roi_align_sample_coord(g.start_h, g.bin_h, ph, iy, g.grid_h);
    for (int ix = 0; ix < g.grid_w; ++ix) {
      const T x = roi_align_sample_coord(g.start_w, g.bin_w, pw, ix, g.grid_w);
      const BilinearTaps<T> t = roi_align_bilinear(H, W, y, x);
      if (t.valid) f(t);
    }
  }
}

// Output value of bin (ph, pw) of one box over one H x W plane: the tap sums of its
// sample points added in (iy, ix) order, divided by count.
template <typename T>
DETNAS_HD T roi_align_bin(const RoiGeometry<T>& g, int64_t H, int64_t W, int64_t ph, int64_t pw, const T* plane) {
  T sum = T(0);
  roi_align_bin_taps(g, H, W, ph, pw, [&](const BilinearTaps<T>& t) { sum += roi_align_tap_sum(t, plane); });
  return sum / g.count;
}

// The backward of bin (ph, pw): every tap's share of dy handed to add(offset, share)
// (the CPU adds it into its plane; a CUDA kernel passes an atomicAdd).
template <typename T, typename Add>
DETNAS_HD void roi_align_bin_scatter(const RoiGeometry<T>& g, int64_t H, int64_t W, int64_t ph, int64_t pw, T dy,
                                     const Add& add) {
  roi_align_bin_taps(g, H, W, ph, pw, [&](const BilinearTaps<T>& t) {
    for (int k = 0; k < 4; ++k) add(t.off[k], roi_align_tap_share(t, k, dy, g.count));
  });
}

namespace cpu {
// Boxes must be validated by the caller: batch index an integer in [0, N), all
// coordinates finite.
// x (N,C,H,W)  boxes (K,5)  y (K,C,PH,PW) =
template <typename T>
void roi_align_forward(const RoiAlignParams& p, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, const T* x,
                       const T* boxes, T* y);
// dy (K,C,PH,PW)  boxes (K,5)  dx (N,C,H,W) = or += (mode). Parallel over channels:
// each thread owns whole channel planes, so the scatter is race-free and deterministic.
template <typename T>
void roi_align_backward_input(const RoiAlignParams& p, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                              const T* dy, const T* boxes, T* dx, GradientMode mode);
}  // namespace cpu

}  // namespace detnas::kernels
