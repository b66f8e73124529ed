// CPU RoIAlign: loops over the shared math in kernels/roi_align.h.
// The bilinear taps of a box depend only on the box, not on the channel, so
// they are computed once per box (roi_align_geometry, roi_align_bin_taps: invalid
// sample points dropped) and then applied to every channel: the forward adds
// roi_align_tap_sum in (iy, ix) order and divides by count, as roi_align_bin; the
// backward adds each roi_align_tap_share into the plane, as roi_align_bin_scatter.
// Forward: OpenMP over boxes (each writes its own (C,PH,PW) output block).
// Backward: the taps of all boxes first, then OpenMP over channels so every
// thread owns whole input-gradient planes (no two threads write the same
// element, results do not depend on the thread count).
// Not here: validation (runtime/ops_box.cpp).
#include <cstddef>
#include <vector>

#include "kernels/roi_align.h"

namespace detnas::kernels::cpu {

namespace {

// The valid taps of one box, bin by bin: bin b (= ph*PW + pw) owns
// taps[start[b], start[b+1]).
template <typename T>
struct BoxTaps {
  std::vector<BilinearTaps<T>> taps;
  std::vector<int64_t> start;
  T count = T(1);
  int64_t n = 0;  // batch index
};

// Appends the taps of box `box` to `out` (its bins' starts are offsets into out.taps).
template <typename T>
void box_taps(const RoiAlignParams& p, int64_t H, int64_t W, const T* box, BoxTaps<T>* out) {
  const RoiGeometry<T> g = roi_align_geometry(p, box);
  out->count = g.count;
  out->n = int64_t(box[0]);
  for (int64_t ph = 0; ph < p.pooled_h; ++ph)
    for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
      out->start.push_back(int64_t(out->taps.size()));
      roi_align_bin_taps(g, H, W, ph, pw, [out](const BilinearTaps<T>& t) { out->taps.push_back(t); });
    }
  out->start.push_back(int64_t(out->taps.size()));
}

}  // namespace

template <typename T>
void roi_align_forward(const RoiAlignParams& p, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, const T* x,
                       const T* boxes, T* y) {
  const int64_t PHW = p.pooled_h * p.pooled_w, HW = H * W;
#pragma omp parallel if (K > 1)
  {
    BoxTaps<T> bt;
#pragma omp for schedule(static)
    for (int64_t k = 0; k < K; ++k) {
      bt.taps.clear();
      bt.start.clear();
      box_taps(p, H, W, boxes + k * 5, &bt);
      const BilinearTaps<T>* taps = bt.taps.data();
      const int64_t* start = bt.start.data();
      for (int64_t c = 0; c < C; ++c) {
        const T* plane = x + (bt.n * C + c) * HW;
        T* out = y + (k * C + c) * PHW;
        for (int64_t b = 0; b < PHW; ++b) {
          T sum = T(0);
          for (int64_t i = start[b]; i < start[b + 1]; ++i) sum += roi_align_tap_sum(taps[i], plane);
          out[b] = sum / bt.count;
        }
      }
    }
  }
  (void)N;
}

template <typename T>
void roi_align_backward_input(const RoiAlignParams& p, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                              const T* dy, const T* boxes, T* dx, GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
  const int64_t PHW = p.pooled_h * p.pooled_w, HW = H * W;
  std::vector<BoxTaps<T>> all(static_cast<std::size_t>(K));
#pragma omp parallel for schedule(static) if (K > 1)
  for (int64_t k = 0; k < K; ++k) box_taps(p, H, W, boxes + k * 5, &all[std::size_t(k)]);
#pragma omp parallel for schedule(static) if (C > 1)
  for (int64_t c = 0; c < C; ++c) {
    if (mode == GradientMode::Overwrite)
      for (int64_t n = 0; n < N; ++n) {
        T* plane = dx + (n * C + c) * HW;
        for (int64_t i = 0; i < HW; ++i) plane[i] = T(0);
      }
    for (int64_t k = 0; k < K; ++k) {
      const BoxTaps<T>& bt = all[std::size_t(k)];
      T* dplane = dx + (bt.n * C + c) * HW;
      const T* gy = dy + (k * C + c) * PHW;
      for (int64_t b = 0; b < PHW; ++b) {
        const T g = gy[b];
        for (int64_t i = bt.start[b]; i < bt.start[b + 1]; ++i) {
          const BilinearTaps<T>& t = bt.taps[i];
          for (int q = 0; q < 4; ++q) dplane[t.off[q]] += roi_align_tap_share(t, q, g, bt.count);
        }
      }
    }
  }
}

#define DETNAS_INST(T)                                                                                             \
  template void roi_align_forward<T>(const RoiAlignParams&, int64_t, int64_t, int64_t, int64_t, int64_t, const T*, \
                                     const T*, T*);                                                                \
  template void roi_align_backward_input<T>(const RoiAlignParams&, int64_t, int64_t, int64_t, int64_t, int64_t,    \
                                            const T*, const T*, T*, GradientMode);
DETNAS_INST(float)
DETNAS_INST(double)
#undef DETNAS_INST

}  // namespace detnas::kernels::cpu
