// CPU SIMT emulator (test build only), device side: the CUDA dialect our kernels
// use, defined for the host compiler, so a .cu source compiles unchanged as C++.
// The Makefile force-includes this header into every emulated .cu object and puts
// tests/emu/include first on its include path (<cuda_runtime.h> is the stub there).
// Also the host API the tests use: thread order, launch log, the launch itself.
// It is not a CUDA runtime: there is no device memory (pointers are host pointers),
// streams are ignored and every launch runs synchronously. See tests/emu/README.md.
//
// In every file that includes this header the namespace detnas::kernels::cuda is
// spelled detnas::kernels::cuda_emu (the macro at the end), so the emulated twins
// of the .cu functions never collide with the nvcc objects in the same test binary.
#pragma once
#include <math.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "core/error.h"

#ifndef DETNAS_EMU
#define DETNAS_EMU 1
#endif

// ---- qualifiers -------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// A block-scope thread_local is static storage shared by every fiber of the
// block (they all run on one OS thread); the emulator poisons it before each block.
// `extern __shared__ T name[]` becomes an undefined thread_local symbol that
// tests/emu/postprocess.sh redirects to the per-block dynamic buffer.
#define __shared__ thread_local

// ---- built-in types ----------------------------------------------------------
struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return {x, y, z}; }
};
#define DETNAS_EMU_VEC2(T, N)          \
  struct alignas(2 * sizeof(T)) N##2 { \
    T x, y;                            \
  };                                   \
  inline N##2 make_##N##2(T x, T y) { return {x, y}; }
#define DETNAS_EMU_VEC4(T, N)          \
  struct alignas(4 * sizeof(T)) N##4 { \
    T x, y, z, w;                      \
  };                                   \
  inline N##4 make_##N##4(T x, T y, T z, T w) { return {x, y, z, w}; }
DETNAS_EMU_VEC2(float, float)
DETNAS_EMU_VEC4(float, float)
DETNAS_EMU_VEC2(double, double)
DETNAS_EMU_VEC2(int, int)
DETNAS_EMU_VEC4(int, int)
DETNAS_EMU_VEC2(unsigned, uint)
DETNAS_EMU_VEC4(unsigned, uint)
#undef DETNAS_EMU_VEC2
#undef DETNAS_EMU_VEC4
struct float3 {
  float x, y, z;
};
inline float3 make_float3(float x, float y, float z) { return {x, y, z}; }
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return {x, y, z}; }

// ---- runtime API types (shared with the emulated-GPU build) ---------------------
#include "tests/emu/cuda_types.h"
#if defined(DETNAS_EMU_GPU)
// Emulated-GPU build: the runtime functions (cudaMalloc, cudaMemcpy, ...) come from
// tests/emu/gpu (declared there, defined in tests/emu/gpu/cudart.cpp), not inline here.
#include "tests/emu/gpu/include/cuda_runtime.h"
#endif

namespace detnas::emu {

// The order in which a block's ready fibers are resumed between barriers, and the
// order in which the blocks of a grid run. Random draws a new permutation per
// round from the seed and, in addition, may preempt a thread at each atomic.
enum class ThreadOrder { Forward, Reverse, Random };
constexpr ThreadOrder kAllOrders[] = {ThreadOrder::Forward, ThreadOrder::Reverse, ThreadOrder::Random};
const char* order_name(ThreadOrder order);
void set_thread_order(ThreadOrder order, uint64_t seed = 1);
ThreadOrder thread_order();
// RAII: sets the order for a scope, restores the previous one.
class ScopedThreadOrder {
 public:
  explicit ScopedThreadOrder(ThreadOrder order, uint64_t seed = 1);
  ~ScopedThreadOrder();
  ScopedThreadOrder(const ScopedThreadOrder&) = delete;
  ScopedThreadOrder& operator=(const ScopedThreadOrder&) = delete;

 private:
  ThreadOrder saved_order_;
  uint64_t saved_seed_;
};

// Launch log: how many launches of a kernel (bare name: no namespace, template
// arguments or parentheses) ran in a given order since the program started.
int64_t launch_count(const std::string& kernel, ThreadOrder order);
std::string bare_kernel_name(const std::string& launched_as);

// Hardware limits checked at launch (sm_90).
constexpr int kWarpSize = 32;
constexpr int kMaxThreadsPerBlock = 1024;
constexpr size_t kDefaultSharedLimit = 48 * 1024;      // static, and dynamic without opt-in
constexpr size_t kMaxDynamicSharedOptIn = 227 * 1024;  // cudaFuncAttributeMaxDynamicSharedMemorySize

namespace detail {
using Thunk = void (*)(void*);
void run_grid(const char* name, const void* kernel, dim3 grid, dim3 block, size_t shmem, Thunk thunk, void* ctx);
const uint3& thread_idx();
const uint3& block_idx();
const dim3& block_dim();
const dim3& grid_dim();
int block_barrier(int pred, const char* what);
enum class WarpOp { Sync, Idx, Up, Down, Xor, Ballot, Any, All };
struct WarpResult {
  uint64_t bits;
  bool valid;  // false: the source lane did not take part (exited or not in mask)
};
WarpResult warp_collective(WarpOp op, unsigned mask, uint64_t bits, int arg, int width, int size, const char* what);
void atomic_point();  // a possible preemption point (Random order)
void set_max_dynamic_shared(const void* kernel, int bytes);
#if defined(DETNAS_EMU_GPU)
// tests/emu/gpu/cudart.cpp: throws detnas::Error when a kernel's pointer argument
// (parameter `index`) is neither null nor inside a live device allocation.
void check_launch_pointer(const char* kernel, int index, const void* p);
template <class T>
void check_param(const char* kernel, int index, const T& v) {
  if constexpr (std::is_pointer_v<T>) check_launch_pointer(kernel, index, static_cast<const void*>(v));
}
#endif

template <class T>
T poison() {
  if constexpr (std::is_floating_point_v<T>) {
    return std::numeric_limits<T>::quiet_NaN();
  } else {
    T v;
    std::memset(&v, 0xA5, sizeof v);
    return v;
  }
}
template <class T>
T shuffle(WarpOp op, unsigned mask, T var, int arg, int width, const char* what) {
  static_assert(std::is_arithmetic_v<T> && sizeof(T) <= 8, "emu: warp shuffle of an unsupported type");
  uint64_t bits = 0;
  std::memcpy(&bits, &var, sizeof(T));
  WarpResult r = warp_collective(op, mask, bits, arg, width, int(sizeof(T)), what);
  if (!r.valid) return poison<T>();
  T out;
  std::memcpy(&out, &r.bits, sizeof(T));
  return out;
}
}  // namespace detail

// Runs `kernel` over the grid on the CPU (what DETNAS_LAUNCH expands to under
// DETNAS_EMU). Arguments are converted to the kernel's parameter types once, as
// CUDA does, and every thread gets its own copy. Errors throw detnas::Error.
template <class... P, class... A>
void launch(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, size_t shmem, cudaStream_t stream,
            A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "emu: kernel launched with the wrong number of arguments");
  static_assert((std::is_trivially_copyable_v<std::decay_t<P>> && ...),
                "emu: kernel parameters must be trivially copyable");
  (void)stream;
  struct Ctx {
    void (*k)(P...);
    std::tuple<std::decay_t<P>...> params;
  };
  Ctx ctx{kernel, std::tuple<std::decay_t<P>...>(std::forward<A>(args)...)};
#if defined(DETNAS_EMU_GPU)
  // Every pointer parameter must point into a live cudaMalloc allocation (or be null).
  std::apply(
      [name](const auto&... v) {
        int i = 0;
        (detail::check_param(name, i++, v), ...);
      },
      ctx.params);
#endif
  detail::run_grid(
      name, reinterpret_cast<const void*>(kernel), grid, block, shmem,
      [](void* c) {
        Ctx* x = static_cast<Ctx*>(c);
        std::apply(x->k, x->params);  // by value: each thread may modify its parameters
      },
      &ctx);
}

}  // namespace detnas::emu

// ---- built-in variables ------------------------------------------------------
#define threadIdx (::detnas::emu::detail::thread_idx())
#define blockIdx (::detnas::emu::detail::block_idx())
#define blockDim (::detnas::emu::detail::block_dim())
#define gridDim (::detnas::emu::detail::grid_dim())
constexpr int warpSize = 32;

// ---- barriers and fences -----------------------------------------------------
inline void __syncthreads() { ::detnas::emu::detail::block_barrier(0, "__syncthreads"); }
inline int __syncthreads_count(int pred) {
  return ::detnas::emu::detail::block_barrier(pred != 0, "__syncthreads_count");
}
inline int __syncthreads_and(int pred) {
  return ::detnas::emu::detail::block_barrier(pred != 0, "__syncthreads_and") ==
         int(blockDim.x * blockDim.y * blockDim.z);
}
inline int __syncthreads_or(int pred) {
  return ::detnas::emu::detail::block_barrier(pred != 0, "__syncthreads_or") > 0;
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ::detnas::emu::detail::warp_collective(::detnas::emu::detail::WarpOp::Sync, mask, 0, 0, 32, 0, "__syncwarp");
}
// Fibers of a block share one OS thread and blocks run one at a time: memory is
// sequentially consistent, fences have nothing to order.
inline void __threadfence() {}
inline void __threadfence_block() {}
inline void __threadfence_system() {}

// ---- warp-synchronous intrinsics ------------------------------------------------
template <class T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize) {
  return ::detnas::emu::detail::shuffle(::detnas::emu::detail::WarpOp::Idx, mask, var, src_lane, width, "__shfl_sync");
}
template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return ::detnas::emu::detail::shuffle(::detnas::emu::detail::WarpOp::Up, mask, var, int(delta), width,
                                        "__shfl_up_sync");
}
template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return ::detnas::emu::detail::shuffle(::detnas::emu::detail::WarpOp::Down, mask, var, int(delta), width,
                                        "__shfl_down_sync");
}
template <class T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
  return ::detnas::emu::detail::shuffle(::detnas::emu::detail::WarpOp::Xor, mask, var, lane_mask, width,
                                        "__shfl_xor_sync");
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  return unsigned(::detnas::emu::detail::warp_collective(::detnas::emu::detail::WarpOp::Ballot, mask, pred != 0, 0, 32,
                                                         4, "__ballot_sync")
                      .bits);
}
inline int __any_sync(unsigned mask, int pred) {
  return int(::detnas::emu::detail::warp_collective(::detnas::emu::detail::WarpOp::Any, mask, pred != 0, 0, 32, 4,
                                                    "__any_sync")
                 .bits);
}
inline int __all_sync(unsigned mask, int pred) {
  return int(::detnas::emu::detail::warp_collective(::detnas::emu::detail::WarpOp::All, mask, pred != 0, 0, 32, 4,
                                                    "__all_sync")
                 .bits);
}

// ---- atomics (return the old value, as CUDA) ----------------------------------------
#define DETNAS_EMU_ATOMIC_INT(T)                                                               \
  inline T atomicAdd(T* a, T v) {                                                              \
    return ::detnas::emu::detail::atomic_point(), __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST);  \
  }                                                                                            \
  inline T atomicSub(T* a, T v) {                                                              \
    return ::detnas::emu::detail::atomic_point(), __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST);  \
  }                                                                                            \
  inline T atomicAnd(T* a, T v) {                                                              \
    return ::detnas::emu::detail::atomic_point(), __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST);  \
  }                                                                                            \
  inline T atomicOr(T* a, T v) {                                                               \
    return ::detnas::emu::detail::atomic_point(), __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST);   \
  }                                                                                            \
  inline T atomicXor(T* a, T v) {                                                              \
    return ::detnas::emu::detail::atomic_point(), __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST);  \
  }                                                                                            \
  inline T atomicExch(T* a, T v) {                                                             \
    return ::detnas::emu::detail::atomic_point(), __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); \
  }                                                                                            \
  inline T atomicCAS(T* a, T compare, T v) {                                                   \
    ::detnas::emu::detail::atomic_point();                                                     \
    __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);    \
    return compare;                                                                            \
  }                                                                                            \
  inline T atomicMax(T* a, T v) {                                                              \
    return ::detnas::emu::detail::atomic_update(a, [v](T o) { return o > v ? o : v; });        \
  }                                                                                            \
  inline T atomicMin(T* a, T v) {                                                              \
    return ::detnas::emu::detail::atomic_update(a, [v](T o) { return o < v ? o : v; });        \
  }

namespace detnas::emu::detail {
// Read-modify-write by compare-and-swap (bitwise compare, so it works for float).
template <class T, class F>
T atomic_update(T* a, F f) {
  atomic_point();
  T old;
  __atomic_load(a, &old, __ATOMIC_SEQ_CST);
  T desired = f(old);
  while (!__atomic_compare_exchange(a, &old, &desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) desired = f(old);
  return old;
}
}  // namespace detnas::emu::detail

DETNAS_EMU_ATOMIC_INT(int)
DETNAS_EMU_ATOMIC_INT(unsigned)
DETNAS_EMU_ATOMIC_INT(unsigned long long)
#undef DETNAS_EMU_ATOMIC_INT
inline long long atomicMax(long long* a, long long v) {
  return ::detnas::emu::detail::atomic_update(a, [v](long long o) { return o > v ? o : v; });
}
inline long long atomicMin(long long* a, long long v) {
  return ::detnas::emu::detail::atomic_update(a, [v](long long o) { return o < v ? o : v; });
}
inline float atomicAdd(float* a, float v) {
  return ::detnas::emu::detail::atomic_update(a, [v](float o) { return o + v; });
}
inline double atomicAdd(double* a, double v) {
  return ::detnas::emu::detail::atomic_update(a, [v](double o) { return o + v; });
}
inline float atomicExch(float* a, float v) {
  return ::detnas::emu::detail::atomic_update(a, [v](float) { return v; });
}
// CUDA's wrapping increment/decrement.
inline unsigned atomicInc(unsigned* a, unsigned m) {
  return ::detnas::emu::detail::atomic_update(a, [m](unsigned o) { return o >= m ? 0u : o + 1; });
}
inline unsigned atomicDec(unsigned* a, unsigned m) {
  return ::detnas::emu::detail::atomic_update(a, [m](unsigned o) { return (o == 0 || o > m) ? m : o - 1; });
}

// ---- loads and math intrinsics ---------------------------------------------------
// The fast-math intrinsics map to the correctly rounded host functions, so the
// emulated kernel matches its CPU twin; on a GPU __expf & co. are approximations.
template <class T>
inline T __ldg(const T* p) {
  return *p;
}
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __log2f(float x) { return std::log2(x); }
inline float __log10f(float x) { return std::log10(x); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __tanf(float x) { return std::tan(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }  // NaN -> 0
inline int __float2int_rn(float x) { return int(std::nearbyint(x)); }
inline int __float2int_rz(float x) { return int(x); }
inline int __float2int_rd(float x) { return int(std::floor(x)); }
inline int __float2int_ru(float x) { return int(std::ceil(x)); }
inline int __float_as_int(float x) {
  int i;
  std::memcpy(&i, &x, 4);
  return i;
}
inline unsigned __float_as_uint(float x) {
  unsigned i;
  std::memcpy(&i, &x, 4);
  return i;
}
inline float __int_as_float(int i) {
  float x;
  std::memcpy(&x, &i, 4);
  return x;
}
inline float __uint_as_float(unsigned i) {
  float x;
  std::memcpy(&x, &i, 4);
  return x;
}
inline long long __double_as_longlong(double x) {
  long long i;
  std::memcpy(&i, &x, 8);
  return i;
}
inline double __longlong_as_double(long long i) {
  double x;
  std::memcpy(&x, &i, 8);
  return x;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
// CUDA's device-side min/max overloads.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }

// ---- runtime API functions ----------------------------------------------------------
#if !defined(DETNAS_EMU_GPU)
// Launch errors throw at the launch itself (detnas::Error naming the kernel), so
// there is never a pending error to report here.
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaPeekAtLastError() { return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline const char* cudaGetErrorString(cudaError_t e) { return ::detnas::emu::cuda_error_string(e); }
inline const char* cudaGetErrorName(cudaError_t e) { return ::detnas::emu::cuda_error_name(e); }
// Device memory is host memory in the emulated build.
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind) {
  if (n) std::memmove(dst, src, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind k, cudaStream_t = nullptr) {
  return cudaMemcpy(dst, src, n, k);
}
inline cudaError_t cudaMemset(void* dst, int value, size_t n) {
  if (n) std::memset(dst, value, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* dst, int value, size_t n, cudaStream_t = nullptr) {
  return cudaMemset(dst, value, n);
}
#endif  // !DETNAS_EMU_GPU
// __constant__ and __device__ variables are ordinary globals here.
template <class T>
cudaError_t cudaMemcpyToSymbol(T& symbol, const void* src, size_t n, size_t offset = 0,
                               cudaMemcpyKind = cudaMemcpyHostToDevice) {
  if (offset + n > sizeof(T)) return cudaErrorInvalidValue;
  if (n) std::memcpy(reinterpret_cast<unsigned char*>(&symbol) + offset, src, n);
  return cudaSuccess;
}
template <class T>
cudaError_t cudaMemcpyToSymbolAsync(T& symbol, const void* src, size_t n, size_t offset = 0,
                                    cudaMemcpyKind kind = cudaMemcpyHostToDevice, cudaStream_t = nullptr) {
  return cudaMemcpyToSymbol(symbol, src, n, offset, kind);
}
template <class F>
cudaError_t cudaFuncSetAttribute(F* kernel, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
      size_t(value) > ::detnas::emu::kMaxDynamicSharedOptIn)
    return cudaErrorInvalidValue;
  ::detnas::emu::detail::set_max_dynamic_shared(reinterpret_cast<const void*>(kernel), value);
  return cudaSuccess;
}

// Emulated twins live in their own namespace (see the top of this file), except in
// the emulated-GPU build (DETNAS_EMU_KEEP_NAMESPACE), where the library calls them.
#if !defined(DETNAS_EMU_KEEP_NAMESPACE)
#define cuda cuda_emu
#endif
