// Device helpers shared by the .cu kernels: a fixed-order block sum in double
// (a tree over shared memory, so the result depends only on the block size and
// the values, never on thread timing) and grid-stride index helpers.
// Included by .cu files only (nvcc, or the emulated build of tests/emu).
#pragma once
#include <cstdint>

namespace detnas::kernels::cuda {

// Sum of v over the block (blockDim.x threads, a power of two <= kN, 1-d block).
// sh: kN doubles of shared memory. Every thread gets the total. Contains barriers:
// call from all threads of the block.
template <int kN>
__device__ __forceinline__ double block_sum(double v, double* sh) {
  const unsigned t = threadIdx.x;
  sh[t] = v;
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
    if (t < s) sh[t] += sh[t + s];
    __syncthreads();
  }
  const double total = sh[0];
  __syncthreads();  // sh may be reused right after
  return total;
}

__device__ __forceinline__ int64_t global_thread() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t global_stride() { return int64_t(gridDim.x) * blockDim.x; }

}  // namespace detnas::kernels::cuda
