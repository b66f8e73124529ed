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

}  // namespace kernels
}  // namespace detnas
