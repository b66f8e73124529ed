// CPU nearest upsampling, OpenMP over (n, c) planes, over the shared math of
// kernels/upsample.h. Exact x2 has a fast path (row duplication forward,
// upsample_nearest_x2_grad backward); other sizes use the index rule per element
// and a scatter-add backward within each plane, in scan order (deterministic):
// the schedule of upsample_nearest_grad_gather (the CUDA gather) without the
// per-element search for the copies, adding in the same order.
#include <cstring>

#include "kernels/upsample.h"

namespace detnas::kernels::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 15;
}

template <typename T>
void upsample_nearest2d_forward(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, const T* x, T* y) {
  const bool x2 = upsample_nearest_is_x2(H, W, Ho, Wo);
#pragma omp parallel for schedule(static) if (planes * Ho * Wo > kParallelMin)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* xp = x + pl * H * W;
    T* yp = y + pl * Ho * Wo;
    if (x2) {
      for (int64_t h = 0; h < H; ++h) {
        const T* src = xp + h * W;
        T* row = yp + 2 * h * Wo;
        for (int64_t w = 0; w < W; ++w) row[2 * w] = row[2 * w + 1] = src[w];
        std::memcpy(row + Wo, row, sizeof(T) * size_t(Wo));
      }
      continue;
    }
    for (int64_t oh = 0; oh < Ho; ++oh) {
      const T* src = xp + upsample_nearest_src(oh, H, Ho) * W;
      T* row = yp + oh * Wo;
      for (int64_t ow = 0; ow < Wo; ++ow) row[ow] = src[upsample_nearest_src(ow, W, Wo)];
    }
  }
}

template <typename T>
void upsample_nearest2d_backward_input(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, const T* dy, T* dx,
                                       GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
  const bool x2 = upsample_nearest_is_x2(H, W, Ho, Wo);
  const bool acc = mode == GradientMode::Accumulate;
#pragma omp parallel for schedule(static) if (planes * Ho * Wo > kParallelMin)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* dyp = dy + pl * Ho * Wo;
    T* dxp = dx + pl * H * W;
    if (x2) {
      for (int64_t h = 0; h < H; ++h) {
        T* d = dxp + h * W;
        for (int64_t w = 0; w < W; ++w) {
          const T s = upsample_nearest_x2_grad(dyp, Wo, h, w);
          d[w] = acc ? d[w] + s : s;
        }
      }
      continue;
    }
    if (!acc) std::memset(dxp, 0, sizeof(T) * size_t(H * W));
    for (int64_t oh = 0; oh < Ho; ++oh) {
      T* drow = dxp + upsample_nearest_src(oh, H, Ho) * W;
      const T* g = dyp + oh * Wo;
      for (int64_t ow = 0; ow < Wo; ++ow) drow[upsample_nearest_src(ow, W, Wo)] += g[ow];
    }
  }
}

#define DETNAS_INST(T)                                                                                          \
  template void upsample_nearest2d_forward<T>(int64_t, int64_t, int64_t, int64_t, int64_t, const T*, T*);       \
  template void upsample_nearest2d_backward_input<T>(int64_t, int64_t, int64_t, int64_t, int64_t, const T*, T*, \
                                                     GradientMode);
DETNAS_INST(float)
DETNAS_INST(double)
#undef DETNAS_INST

}  // namespace detnas::kernels::cpu
