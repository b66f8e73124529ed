// Shared definitions for kernels: the host/device qualifier, the gradient write
// mode, and small helpers. Kernels take raw pointers and sizes only: no Tensor,
// no allocation, no I/O.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define DETNAS_HD __host__ __device__ __forceinline__
#else
#define DETNAS_HD inline
#endif

namespace detnas {

// How a backward kernel writes a gradient output:
//   Ignore     the output is not wanted (pointer may be null): skip it;
//   Overwrite  out  = result (every element is written);
//   Accumulate out += result.
enum class GradientMode { Ignore, Overwrite, Accumulate };

// Whether a GEMM operand is transposed.
enum class Trans { No, Yes };

namespace kernels {

template <typename T>
DETNAS_HD void write_grad(T* out, T value, GradientMode mode) {
  if (mode == GradientMode::Accumulate)
    *out += value;
  else
    *out = value;
}

// (N,C,HW) layout, for kernels that walk one channel or find an element's channel:
// the channel of flat element e, and the flat index of the i-th element
// (i in [0, N*HW), samples in order) of channel c.
DETNAS_HD int64_t nchw_channel_of(int64_t e, int64_t C, int64_t HW) { return (e / HW) % C; }
DETNAS_HD int64_t nchw_channel_element(int64_t i, int64_t c, int64_t C, int64_t HW) {
  return ((i / HW) * C + c) * HW + i % HW;
}

}  // namespace kernels
}  // namespace detnas
