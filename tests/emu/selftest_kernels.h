// Kernels that test the CPU SIMT emulator itself (tests/emu/selftest_kernels.cu,
// compiled only by the emulated build; tests/test_emu.cpp launches them). They
// are valid CUDA, but nvcc never compiles them. Include tests/emu/emu.h first.
#pragma once

namespace detnas::emu_selftest {

constexpr int kSumBlock = 256;  // block size of the sum kernels (power of 2)

// x (n)  out (gridDim.x) =  per-block sum through a shared-memory tree
__global__ void block_sum_kernel(const float* x, float* out, int n);
// the same tree with the __syncthreads between levels left out (a race)
__global__ void block_sum_racy_kernel(const float* x, float* out, int n);
// the same tree in dynamic shared memory (blockDim.x floats)
__global__ void dynamic_sum_kernel(const float* x, float* out, int n);
// threads t < count write element t of the dynamic shared array
__global__ void dynamic_write_kernel(int count);
// out (blockDim.x) = dynamic shared memory read before anything was written
__global__ void dynamic_read_unwritten_kernel(float* out);

// Per thread t (nthreads = blockDim.x, a multiple of 32), out[k * nthreads + t] =
//   k=0 warp sum by __shfl_down_sync (valid in lane 0)   k=1 warp sum by __shfl_xor_sync
//   k=2 lane 3's value (__shfl_sync)                      k=3 inclusive warp scan (__shfl_up_sync)
//   k=4 sum over an 8-lane segment (width 8)              k=5 double shuffle of x+0.5 from lane^1
//   k=6 64-bit integer shuffle from lane 31 - lane
__global__ void warp_ops_kernel(const int* x, double* out);
// Lanes 0-15 and 16-31 sum over their half with disjoint masks; out (blockDim.x)
__global__ void half_warp_sum_kernel(const int* x, int* out);
// Lanes >= 16 exit; the rest read lane ^ 16 with a full mask; out (blockDim.x)
__global__ void shfl_from_exited_kernel(float* out);
// Lanes < 16 shuffle with a full mask while lanes >= 16 wait at __syncthreads
__global__ void shfl_deadlock_kernel(float* out);
// A shuffle whose mask does not name the calling lane
__global__ void shfl_bad_mask_kernel(float* out);
// Odd lanes reach __syncwarp, even lanes __shfl_sync, both with a full mask
__global__ void warp_op_mismatch_kernel(float* out);

// ballot (warps), any (warps), all (warps) over pred (blockDim.x)
__global__ void ballot_kernel(const int* pred, unsigned* ballot, int* any, int* all);
// Every thread updates the same counters; hist (nbins) counts global ids mod nbins.
struct AtomicCounters {
  int count, imax, imin, cas_count, cas_retries;
  unsigned long long id_sum;
  float fsum;
  double dsum;
};
__global__ void atomics_kernel(AtomicCounters* c, unsigned* hist, int nbins);
// Threads with threadIdx.x < limit reach a __syncthreads, the others exit.
__global__ void divergent_barrier_kernel(int limit);
// out (total threads) = linear global id written by each thread; dims (6) = blockDim, gridDim
__global__ void index_kernel(int* out, unsigned* dims);
// out (gridDim.x) = a static __shared__ int as thread 0 finds it, then set to blockIdx.x + 1
__global__ void shared_fresh_kernel(int* out);
// out (3) = __syncthreads_count/and/or of (threadIdx.x % 3 == 0), from thread 0
__global__ void syncthreads_count_kernel(int* out);
// __constant__ table set from the host; out (blockDim.x) = table[t % 4] * out
void set_table(const float* values);  // 4 values
__global__ void table_kernel(float* out);
__global__ void empty_kernel();

}  // namespace detnas::emu_selftest
