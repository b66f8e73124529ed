// CPU RoIAlign: loops over the shared math in kernels/roi_align.h.
// Forward: OpenMP over (box, channel) pairs, each output bin summed in a fixed
// order. Backward: OpenMP over channels so every thread owns whole input-gradient
// planes (no two threads write the same element, results do not depend on the
// thread count). Not here: validation (runtime/ops_box.cpp).
#include "kernels/roi_align.h"

namespace detnas::kernels::cpu {

template <typename T>
void roi_align_forward(const RoiAlignParams& p, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, const T* x,
                       const T* boxes, T* y) {
  const int64_t PH = p.pooled_h, PW = p.pooled_w, HW = H * W;
#pragma omp parallel for collapse(2) schedule(static) if (K * C > 1)
  for (int64_t k = 0; k < K; ++k) {
    for (int64_t c = 0; c < C; ++c) {
      const T* box = boxes + k * 5;
      const int64_t n = int64_t(box[0]);
      const RoiGeometry<T> g = roi_align_geometry(p, box);
      const T* plane = x + (n * C + c) * HW;
      T* out = y + (k * C + c) * PH * PW;
      for (int64_t ph = 0; ph < PH; ++ph)
        for (int64_t pw = 0; pw < PW; ++pw) out[ph * PW + pw] = roi_align_bin(g, H, W, ph, pw, plane);
    }
  }
  (void)N;
}

template <typename T>
void roi_align_backward_input(const RoiAlignParams& p, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                              const T* dy, const T* boxes, T* dx, GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
  const int64_t PH = p.pooled_h, PW = p.pooled_w, HW = H * W;
#pragma omp parallel for schedule(static) if (C > 1)
  for (int64_t c = 0; c < C; ++c) {
    if (mode == GradientMode::Overwrite)
      for (int64_t n = 0; n < N; ++n) {
        T* plane = dx + (n * C + c) * HW;
        for (int64_t i = 0; i < HW; ++i) plane[i] = T(0);
      }
    for (int64_t k = 0; k < K; ++k) {
      const T* box = boxes + k * 5;
      const int64_t n = int64_t(box[0]);
      const RoiGeometry<T> g = roi_align_geometry(p, box);
      T* dplane = dx + (n * C + c) * HW;
      const T* gy = dy + (k * C + c) * PH * PW;
      for (int64_t ph = 0; ph < PH; ++ph)
        for (int64_t pw = 0; pw < PW; ++pw) roi_align_bin_backward(g, H, W, ph, pw, gy[ph * PW + pw], dplane);
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
