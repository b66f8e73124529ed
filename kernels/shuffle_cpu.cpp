// CPU channel shuffle, even/odd split and channel concat: plane copies
// (memcpy for overwrite, an add loop for accumulate), OpenMP over (n, c) planes.
#include <cstring>

#include "kernels/shuffle.h"

namespace detnas::kernels::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 15;

template <typename T>
inline void plane_write(const T* src, T* dst, int64_t HW, GradientMode mode) {
  if (mode == GradientMode::Accumulate) {
    for (int64_t i = 0; i < HW; ++i) dst[i] += src[i];
  } else {
    std::memcpy(dst, src, sizeof(T) * size_t(HW));
  }
}
}  // namespace

template <typename T>
void channel_shuffle_forward(int64_t N, int64_t C, int64_t HW, int64_t G, const T* x, T* y) {
  const int64_t planes = N * C;
#pragma omp parallel for schedule(static) if (planes * HW > kParallelMin)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const int64_t b = pl / C, c = pl % C;
    std::memcpy(y + pl * HW, x + (b * C + shuffle_src_channel(c, C, G)) * HW, sizeof(T) * size_t(HW));
  }
}

template <typename T>
void channel_shuffle_backward_input(int64_t N, int64_t C, int64_t HW, int64_t G, const T* dy, T* dx,
                                    GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
  const int64_t planes = N * C;
  // The map is a permutation, so every dx plane is written exactly once.
#pragma omp parallel for schedule(static) if (planes * HW > kParallelMin)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const int64_t b = pl / C, c = pl % C;
    plane_write(dy + pl * HW, dx + (b * C + shuffle_src_channel(c, C, G)) * HW, HW, mode);
  }
}

template <typename T>
void split_even_odd_forward(int64_t N, int64_t C, int64_t HW, const T* x, T* even, T* odd) {
  const int64_t Ch = C / 2, planes = N * Ch;
#pragma omp parallel for schedule(static) if (planes * HW > kParallelMin)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const int64_t b = pl / Ch, k = pl % Ch;
    std::memcpy(even + pl * HW, x + (b * C + even_odd_src_channel(k, 0)) * HW, sizeof(T) * size_t(HW));
    std::memcpy(odd + pl * HW, x + (b * C + even_odd_src_channel(k, 1)) * HW, sizeof(T) * size_t(HW));
  }
}

template <typename T>
void split_even_odd_backward_input(int64_t N, int64_t C, int64_t HW, const T* d_even, const T* d_odd, T* dx,
                                   GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
  const int64_t Ch = C / 2, planes = N * Ch;
#pragma omp parallel for schedule(static) if (planes * HW > kParallelMin)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const int64_t b = pl / Ch, k = pl % Ch;
    for (int64_t half = 0; half < 2; ++half) {
      const T* src = half == 0 ? d_even : d_odd;
      T* dst = dx + (b * C + even_odd_src_channel(k, half)) * HW;
      if (src)
        plane_write(src + pl * HW, dst, HW, mode);
      else if (mode == GradientMode::Overwrite)
        std::memset(dst, 0, sizeof(T) * size_t(HW));
    }
  }
}

template <typename T>
void concat_forward(int64_t N, int64_t Ci, int64_t Ctot, int64_t HW, int64_t c_offset, const T* x, int64_t x_stride_n,
                    T* y) {
  // Each sample's Ci planes are one contiguous run on both sides.
  const int64_t run = Ci * HW;
#pragma omp parallel for schedule(static) if (N * run > kParallelMin)
  for (int64_t b = 0; b < N; ++b)
    std::memcpy(y + (b * Ctot + c_offset) * HW, x + b * x_stride_n, sizeof(T) * size_t(run));
}

template <typename T>
void concat_backward_input(int64_t N, int64_t Ci, int64_t Ctot, int64_t HW, int64_t c_offset, const T* dy, T* dx,
                           GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
  const int64_t run = Ci * HW;
#pragma omp parallel for schedule(static) if (N * run > kParallelMin)
  for (int64_t b = 0; b < N; ++b) plane_write(dy + (b * Ctot + c_offset) * HW, dx + b * run, run, mode);
}

#define DETNAS_INST(T)                                                                                             \
  template void channel_shuffle_forward<T>(int64_t, int64_t, int64_t, int64_t, const T*, T*);                      \
  template void channel_shuffle_backward_input<T>(int64_t, int64_t, int64_t, int64_t, const T*, T*, GradientMode); \
  template void split_even_odd_forward<T>(int64_t, int64_t, int64_t, const T*, T*, T*);                            \
  template void split_even_odd_backward_input<T>(int64_t, int64_t, int64_t, const T*, const T*, T*, GradientMode); \
  template void concat_forward<T>(int64_t, int64_t, int64_t, int64_t, int64_t, const T*, int64_t, T*);             \
  template void concat_backward_input<T>(int64_t, int64_t, int64_t, int64_t, int64_t, const T*, T*, GradientMode);
DETNAS_INST(float)
DETNAS_INST(double)
#undef DETNAS_INST

}  // namespace detnas::kernels::cpu
