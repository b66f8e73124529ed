// Emulated-GPU build: the CUDA runtime subset of include/cuda_runtime.h on the CPU.
// One device ("detnas SIMT emulator", sm_90-like limits). cudaMalloc returns
// 256-byte aligned host memory filled with 0xFF bytes (NaN as float: reads of
// never-written device memory show) and records it in a registry of live device
// allocations, so every copy, memset, library call and kernel launch can check
// that a "device" pointer really is one: a host/device mix-up throws
// detnas::Error naming the call and the pointer instead of passing silently.
// Streams exist only as handles (every call is synchronous); no events, no
// asynchronous errors, no peer access, no unified memory.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "core/error.h"
#include "tests/emu/emu.h"
#include "tests/emu/gpu/pkeys.h"

namespace detnas::emu::gpu {
namespace {

constexpr size_t kAlign = 256;
constexpr size_t kTotalMemory = size_t(16) << 30;

std::mutex g_mu;
std::map<uintptr_t, size_t> g_allocs;  // base -> bytes
size_t g_live_bytes = 0;
std::set<cudaStream_t> g_streams;
thread_local cudaError_t t_last_error = cudaSuccess;

cudaError_t fail(cudaError_t e) {
  t_last_error = e;
  return e;
}

// The allocation holding p (end pointer included when allow_end), or g_allocs.end().
std::map<uintptr_t, size_t>::const_iterator find_alloc(const void* p, bool allow_end) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocs.upper_bound(a);
  if (it == g_allocs.begin()) return g_allocs.end();
  --it;
  const uintptr_t end = it->first + it->second;
  if (a < end || (allow_end && a == end)) return it;
  return g_allocs.end();
}

std::string hex(const void* p) { return ::detnas::detail::cat(p); }

const char* kind_name(cudaMemcpyKind k) {
  switch (k) {
    case cudaMemcpyHostToHost:
      return "cudaMemcpyHostToHost";
    case cudaMemcpyHostToDevice:
      return "cudaMemcpyHostToDevice";
    case cudaMemcpyDeviceToHost:
      return "cudaMemcpyDeviceToHost";
    case cudaMemcpyDeviceToDevice:
      return "cudaMemcpyDeviceToDevice";
    case cudaMemcpyDefault:
      return "cudaMemcpyDefault";
  }
  return "(bad kind)";
}

void require_host(const char* api, const char* what, const void* p) {
  DETNAS_CHECK(p != nullptr, api, ": ", what, " is null");
  DETNAS_CHECK(!is_device_pointer(p), api, ": ", what, " ", hex(p),
               " is a device pointer where the copy kind says host memory (host/device mix-up)");
}

}  // namespace

void require_device(const char* api, const char* what, const void* p, size_t bytes) {
  DETNAS_CHECK(p != nullptr, api, ": ", what, " is null");
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = find_alloc(p, bytes == 0);
  DETNAS_CHECK(it != g_allocs.end(), api, ": ", what, " ", hex(p),
               " is not inside a live device allocation (a host pointer, or device memory already freed)");
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  DETNAS_CHECK(a + bytes <= it->first + it->second, api, ": ", what, " ", hex(p), " + ", bytes,
               " bytes runs past the end of its device allocation (", it->second, " bytes at ",
               reinterpret_cast<const void*>(it->first), ")");
}

bool is_device_pointer(const void* p) {
  std::lock_guard<std::mutex> lock(g_mu);
  return find_alloc(p, false) != g_allocs.end();
}

void require_stream(const char* api, cudaStream_t stream) {
  if (stream == nullptr) return;
  std::lock_guard<std::mutex> lock(g_mu);
  DETNAS_CHECK(g_streams.count(stream) == 1, api, ": stream ", static_cast<const void*>(stream),
               " was not created by cudaStreamCreate (or was destroyed)");
}

size_t live_allocations() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_allocs.size();
}

size_t live_bytes() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_live_bytes;
}

}  // namespace detnas::emu::gpu

namespace detnas::emu::detail {
void check_launch_pointer(const char* kernel, int index, const void* p) {
  if (p == nullptr) return;
  const std::string what = ::detnas::detail::cat("pointer parameter ", index);
  gpu::require_device(kernel, what.c_str(), p, 0);
}
}  // namespace detnas::emu::detail

using namespace detnas::emu::gpu;
namespace g = detnas::emu::gpu;

cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return g::fail(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (!prop) return g::fail(cudaErrorInvalidValue);
  if (device != 0) return g::fail(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof *prop);
  std::strncpy(prop->name, "detnas SIMT emulator", sizeof prop->name - 1);
  prop->totalGlobalMem = g::kTotalMemory;
  prop->sharedMemPerBlock = detnas::emu::kDefaultSharedLimit;
  prop->sharedMemPerBlockOptin = detnas::emu::kMaxDynamicSharedOptIn;
  prop->sharedMemPerMultiprocessor = 228 * 1024;
  prop->regsPerBlock = 65536;
  prop->warpSize = detnas::emu::kWarpSize;
  prop->maxThreadsPerBlock = detnas::emu::kMaxThreadsPerBlock;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 2147483647;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->maxThreadsPerMultiProcessor = 2048;
  prop->multiProcessorCount = 132;
  prop->major = 9;
  prop->minor = 0;
  prop->l2CacheSize = 50 << 20;
  prop->totalConstMem = 64 * 1024;
  prop->unifiedAddressing = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : g::fail(cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int* device) {
  if (!device) return g::fail(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }  // every call already completed

cudaError_t cudaGetLastError() {
  const cudaError_t e = g::t_last_error;
  g::t_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return g::t_last_error; }
const char* cudaGetErrorString(cudaError_t e) { return detnas::emu::cuda_error_string(e); }
const char* cudaGetErrorName(cudaError_t e) { return detnas::emu::cuda_error_name(e); }

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  if (!ptr) return g::fail(cudaErrorInvalidValue);
  *ptr = nullptr;
  if (bytes == 0) return cudaSuccess;  // as CUDA: a null pointer, no error
  const size_t rounded = (bytes + g::kAlign - 1) / g::kAlign * g::kAlign;
  {
    std::lock_guard<std::mutex> lock(g::g_mu);
    if (g::g_live_bytes + rounded > g::kTotalMemory) return g::fail(cudaErrorMemoryAllocation);
  }
  void* p = g::device_pages_alloc(rounded);  // whole pages, host access denied (pkeys.h)
  if (!p) return g::fail(cudaErrorMemoryAllocation);
  {
    g::DeviceAccess access;
    std::memset(p, 0xFF, rounded);
  }
  std::lock_guard<std::mutex> lock(g::g_mu);
  g::g_allocs[reinterpret_cast<uintptr_t>(p)] = bytes;  // the requested size: accesses past it are caught
  g::g_live_bytes += bytes;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  size_t bytes = 0;
  {
    std::lock_guard<std::mutex> lock(g::g_mu);
    auto it = g::g_allocs.find(reinterpret_cast<uintptr_t>(ptr));
    DETNAS_CHECK(it != g::g_allocs.end(), "cudaFree: ", ptr,
                 " is not the start of a live device allocation (double free, or a host pointer)");
    g::g_live_bytes -= it->second;
    bytes = it->second;
    g::g_allocs.erase(it);
  }
  g::device_pages_free(ptr, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  if (!free_bytes || !total_bytes) return g::fail(cudaErrorInvalidValue);
  *total_bytes = g::kTotalMemory;
  *free_bytes = g::kTotalMemory - g::live_bytes();
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  const char* api = g::kind_name(kind);
  switch (kind) {
    case cudaMemcpyHostToHost:
      g::require_host(api, "dst", dst);
      g::require_host(api, "src", src);
      break;
    case cudaMemcpyHostToDevice:
      require_device(api, "dst", dst, bytes);
      g::require_host(api, "src", src);
      break;
    case cudaMemcpyDeviceToHost:
      g::require_host(api, "dst", dst);
      require_device(api, "src", src, bytes);
      break;
    case cudaMemcpyDeviceToDevice:
      require_device(api, "dst", dst, bytes);
      require_device(api, "src", src, bytes);
      break;
    case cudaMemcpyDefault:
      if (is_device_pointer(dst)) require_device(api, "dst", dst, bytes);
      if (is_device_pointer(src)) require_device(api, "src", src, bytes);
      break;
    default:
      return g::fail(cudaErrorInvalidMemcpyDirection);
  }
  g::DeviceAccess access;
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  require_stream("cudaMemcpyAsync", stream);
  return cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t cudaMemset(void* dst, int value, size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  require_device("cudaMemset", "dst", dst, bytes);
  g::DeviceAccess access;
  std::memset(dst, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream) {
  require_stream("cudaMemsetAsync", stream);
  return cudaMemset(dst, value, bytes);
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  if (!stream) return g::fail(cudaErrorInvalidValue);
  // A distinct, never-dereferenced address per stream.
  *stream = reinterpret_cast<cudaStream_t>(new char[1]);
  std::lock_guard<std::mutex> lock(g::g_mu);
  g::g_streams.insert(*stream);
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (stream == nullptr) return g::fail(cudaErrorInvalidResourceHandle);
  {
    std::lock_guard<std::mutex> lock(g::g_mu);
    if (g::g_streams.erase(stream) == 0) return g::fail(cudaErrorInvalidResourceHandle);
  }
  delete[] reinterpret_cast<char*>(stream);
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  require_stream("cudaStreamSynchronize", stream);
  return cudaSuccess;
}
