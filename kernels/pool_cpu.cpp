// CPU max pooling and global average pooling, OpenMP over (n, c) planes, over the
// shared math of kernels/pool.h. The max pool backward recomputes each window's
// arg-max from the forward input instead of storing indices (no index tensor;
// same tie rule by construction) and scatters dy to it window by window: the
// schedule of maxpool_input_grad_value (the CUDA gather) with each arg-max found
// once, adding in the same (oh, ow) order.
#include <cstring>

#include "kernels/pool.h"

namespace detnas::kernels::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 14;
}

template <typename T>
void max_pool2d_forward(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, const PoolWindow& win, const T* x,
                        T* y) {
#pragma omp parallel for schedule(static) if (planes * Ho * Wo * win.K * win.K > kParallelMin)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* xp = x + pl * H * W;
    T* yp = y + pl * Ho * Wo;
    for (int64_t oh = 0; oh < Ho; ++oh)
      for (int64_t ow = 0; ow < Wo; ++ow) yp[oh * Wo + ow] = xp[maxpool_argmax(xp, H, W, oh, ow, win)];
  }
}

template <typename T>
void max_pool2d_backward_input(int64_t planes, int64_t H, int64_t W, int64_t Ho, int64_t Wo, const PoolWindow& win,
                               const T* x, const T* dy, T* dx, GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
    // Windows overlap, so the scatter stays within one plane per thread.
#pragma omp parallel for schedule(static) if (planes * Ho * Wo * win.K * win.K > kParallelMin)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* xp = x + pl * H * W;
    const T* dyp = dy + pl * Ho * Wo;
    T* dxp = dx + pl * H * W;
    if (mode == GradientMode::Overwrite) std::memset(dxp, 0, sizeof(T) * size_t(H * W));
    for (int64_t oh = 0; oh < Ho; ++oh)
      for (int64_t ow = 0; ow < Wo; ++ow) dxp[maxpool_argmax(xp, H, W, oh, ow, win)] += dyp[oh * Wo + ow];
  }
}

template <typename T>
void global_avg_pool_forward(int64_t planes, int64_t HW, const T* x, T* y) {
#pragma omp parallel for schedule(static) if (planes * HW > kParallelMin)
  for (int64_t pl = 0; pl < planes; ++pl) {
    y[pl] = global_avg_pool_value(x + pl * HW, HW);
  }
}

template <typename T>
void global_avg_pool_backward_input(int64_t planes, int64_t HW, const T* dy, T* dx, GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
#pragma omp parallel for schedule(static) if (planes * HW > kParallelMin)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T v = global_avg_pool_grad(dy[pl], HW);
    T* d = dx + pl * HW;
    if (mode == GradientMode::Accumulate)
      for (int64_t i = 0; i < HW; ++i) d[i] += v;
    else
      for (int64_t i = 0; i < HW; ++i) d[i] = v;
  }
}

#define DETNAS_INST(T)                                                                                                 \
  template void max_pool2d_forward<T>(int64_t, int64_t, int64_t, int64_t, int64_t, const PoolWindow&, const T*, T*);   \
  template void max_pool2d_backward_input<T>(int64_t, int64_t, int64_t, int64_t, int64_t, const PoolWindow&, const T*, \
                                             const T*, T*, GradientMode);                                              \
  template void global_avg_pool_forward<T>(int64_t, int64_t, const T*, T*);                                            \
  template void global_avg_pool_backward_input<T>(int64_t, int64_t, const T*, T*, GradientMode);
DETNAS_INST(float)
DETNAS_INST(double)
#undef DETNAS_INST

}  // namespace detnas::kernels::cpu
