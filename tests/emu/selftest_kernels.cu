// Kernels that test the CPU SIMT emulator itself: barriers, shared memory, warp
// intrinsics, atomics and the errors the emulator must report. Declarations and
// output layouts in tests/emu/selftest_kernels.h; compiled only by the emulated
// build (Makefile rule for $(BUILD)/emu/%.o), launched by tests/test_emu.cpp.
#include "tests/emu/selftest_kernels.h"

namespace detnas::emu_selftest {

__global__ void block_sum_kernel(const float* x, float* out, int n) {
  __shared__ float buf[kSumBlock];
  const int t = threadIdx.x, i = blockIdx.x * blockDim.x + threadIdx.x;
  buf[t] = i < n ? x[i] : 0.0f;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (t < s) buf[t] += buf[t + s];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = buf[0];
}

__global__ void block_sum_racy_kernel(const float* x, float* out, int n) {
  __shared__ float buf[kSumBlock];
  const int t = threadIdx.x, i = blockIdx.x * blockDim.x + threadIdx.x;
  buf[t] = i < n ? x[i] : 0.0f;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1)
    if (t < s) buf[t] += buf[t + s];  // missing __syncthreads: reads a level not yet summed
  if (t == 0) out[blockIdx.x] = buf[0];
}

__global__ void dynamic_sum_kernel(const float* x, float* out, int n) {
  extern __shared__ float dyn[];
  const int t = threadIdx.x, i = blockIdx.x * blockDim.x + threadIdx.x;
  dyn[t] = i < n ? x[i] : 0.0f;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (t < s) dyn[t] += dyn[t + s];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = dyn[0];
}

__global__ void dynamic_write_kernel(int count) {
  extern __shared__ float dyn[];
  if (int(threadIdx.x) < count) dyn[threadIdx.x] = 1.0f;
}

__global__ void dynamic_read_unwritten_kernel(float* out) {
  extern __shared__ float dyn[];
  out[threadIdx.x] = dyn[threadIdx.x];
}

__global__ void warp_ops_kernel(const int* x, double* out) {
  const int t = threadIdx.x, lane = t % 32, nt = blockDim.x;
  const int v = x[t];
  int down = v, bfly = v, seg = v, scan = v;
  for (int o = 16; o > 0; o >>= 1) down += __shfl_down_sync(0xffffffffu, down, o);
  for (int o = 16; o > 0; o >>= 1) bfly += __shfl_xor_sync(0xffffffffu, bfly, o);
  for (int o = 4; o > 0; o >>= 1) seg += __shfl_xor_sync(0xffffffffu, seg, o, 8);
  for (int o = 1; o < 32; o <<= 1) {
    int up = __shfl_up_sync(0xffffffffu, scan, o);
    if (lane >= o) scan += up;
  }
  const int bcast = __shfl_sync(0xffffffffu, v, 3);
  const double d = __shfl_sync(0xffffffffu, v + 0.5, lane ^ 1);
  const long long big = __shfl_sync(0xffffffffu, (long long)v * (1LL << 33), 31 - lane);
  out[0 * nt + t] = down;
  out[1 * nt + t] = bfly;
  out[2 * nt + t] = bcast;
  out[3 * nt + t] = scan;
  out[4 * nt + t] = seg;
  out[5 * nt + t] = d;
  out[6 * nt + t] = double(big / (1LL << 33));
}

__global__ void half_warp_sum_kernel(const int* x, int* out) {
  const int t = threadIdx.x, lane = t % 32;
  const unsigned mask = lane < 16 ? 0x0000ffffu : 0xffff0000u;
  int v = x[t];
  for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(mask, v, o);
  out[t] = v;
}

__global__ void shfl_from_exited_kernel(float* out) {
  const int lane = threadIdx.x % 32;
  out[threadIdx.x] = -1.0f;
  if (lane >= 16) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, float(lane), 16);
}

__global__ void shfl_deadlock_kernel(float* out) {
  const int lane = threadIdx.x % 32;
  float v = float(lane);
  if (lane < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
  __syncthreads();
  out[threadIdx.x] = v;
}

__global__ void shfl_bad_mask_kernel(float* out) {
  out[threadIdx.x] = __shfl_sync(0x1u, 1.0f, 0);  // lanes other than 0 are not named
}

__global__ void warp_op_mismatch_kernel(float* out) {
  const int lane = threadIdx.x % 32;
  float v = float(lane);
  if (lane % 2)
    __syncwarp();
  else
    v = __shfl_sync(0xffffffffu, v, 0);
  out[threadIdx.x] = v;
}

__global__ void ballot_kernel(const int* pred, unsigned* ballot, int* any, int* all) {
  const int t = threadIdx.x, w = t / 32;
  const unsigned b = __ballot_sync(0xffffffffu, pred[t]);
  const int a = __any_sync(0xffffffffu, pred[t]);
  const int l = __all_sync(0xffffffffu, pred[t]);
  if (t % 32 == 0) {
    ballot[w] = b;
    any[w] = a;
    all[w] = l;
  }
}

__global__ void atomics_kernel(AtomicCounters* c, unsigned* hist, int nbins) {
  const int g = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(&c->count, 1);
  atomicAdd(&c->id_sum, (unsigned long long)g);
  atomicAdd(&c->fsum, 1.0f);
  atomicAdd(&c->dsum, 0.25);
  atomicMax(&c->imax, (g * 7919) % 1000);
  atomicMin(&c->imin, (g * 7919) % 1000 - 500);
  int old = c->cas_count, assumed;  // an increment as a compare-and-swap loop
  do {
    assumed = old;
    old = atomicCAS(&c->cas_count, assumed, assumed + 1);
    if (old != assumed) atomicAdd(&c->cas_retries, 1);
  } while (old != assumed);
  atomicAdd(&hist[g % nbins], 1u);
}

__global__ void divergent_barrier_kernel(int limit) {
  if (int(threadIdx.x) < limit) __syncthreads();
}

__global__ void index_kernel(int* out, unsigned* dims) {
  const int bx = blockDim.x, by = blockDim.y, bz = blockDim.z;
  const int block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const int thread = threadIdx.x + bx * (threadIdx.y + by * threadIdx.z);
  out[block * bx * by * bz + thread] += block * bx * by * bz + thread + 1;
  if (block == 0 && thread == 0) {
    dims[0] = blockDim.x, dims[1] = blockDim.y, dims[2] = blockDim.z;
    dims[3] = gridDim.x, dims[4] = gridDim.y, dims[5] = gridDim.z;
  }
}

__global__ void shared_fresh_kernel(int* out) {
  __shared__ int s;
  if (threadIdx.x == 0) {
    out[blockIdx.x] = s;
    s = blockIdx.x + 1;
  }
}

__global__ void syncthreads_count_kernel(int* out) {
  const int p = threadIdx.x % 3 == 0;
  const int c = __syncthreads_count(p), a = __syncthreads_and(p), o = __syncthreads_or(p);
  if (threadIdx.x == 0) out[0] = c, out[1] = a, out[2] = o;
}

__constant__ float kTable[4];

void set_table(const float* values) { cudaMemcpyToSymbol(kTable, values, sizeof kTable); }

__global__ void table_kernel(float* out) { out[threadIdx.x] = kTable[threadIdx.x % 4] * __ldg(&out[threadIdx.x]); }

__global__ void empty_kernel() {}

}  // namespace detnas::emu_selftest
