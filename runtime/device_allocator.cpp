// Caching device allocator (same policy as the host one: size classes from
// CachingHostAllocator::round_size, best fit among cached blocks no more than
// twice the request) over a malloc/free backend, and the per-device stream.
#include "runtime/device_allocator.h"

#include <vector>

#include "core/error.h"
#include "runtime/device.h"

#ifdef DETNAS_CUDA
#include <cuda_runtime.h>
#endif

namespace detnas::rt {

CachingDeviceAllocator::~CachingDeviceAllocator() {
  try {
    empty_cache();
  } catch (...) {
    // The CUDA context may already be gone at exit; nothing useful to report.
  }
}

void* CachingDeviceAllocator::allocate(size_t bytes) {
  DETNAS_CHECK(bytes > 0, "device allocator: zero-byte request");
  DETNAS_CHECK(be_.malloc && be_.free, "device allocator: no backend");
  size_t size = round_size(bytes);
  std::unique_lock<std::mutex> lock(mu_);
  void* p = nullptr;
  auto it = free_.lower_bound(size);
  if (it != free_.end() && it->first <= 2 * size) {
    size = it->first;
    p = it->second;
    free_.erase(it);
    st_.cache_hits++;
  } else {
    try {
      p = be_.malloc(size);
    } catch (const Error&) {
      // Give the cached blocks back and retry once.
      for (auto& kv : free_) {
        be_.free(kv.second);
        st_.bytes_reserved -= int64_t(kv.first);
        st_.system_frees++;
      }
      free_.clear();
      p = be_.malloc(size);
    }
    DETNAS_CHECK(p != nullptr, "device allocator: backend returned null for ", size, " bytes");
    st_.system_allocs++;
    st_.bytes_reserved += int64_t(size);
  }
  live_[p] = size;
  st_.bytes_in_use += int64_t(size);
#ifdef DETNAS_EMU_GPU
  // Emulated GPU (tests/emu/gpu): every block handed out, fresh or cached, reads as
  // NaN until written, so code that reads a new tensor before writing it (or
  // accumulates into it) fails its comparison instead of seeing old data or zeros.
  if (be_.malloc == &cuda_malloc) cudaMemset(p, 0xFF, size);
#endif
  if (st_.bytes_in_use > st_.high_water) st_.high_water = st_.bytes_in_use;
  return p;
}

void CachingDeviceAllocator::release(void* ptr) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(ptr);
  DETNAS_CHECK(it != live_.end(), "device allocator: release of a pointer it did not allocate");
  st_.bytes_in_use -= int64_t(it->second);
  free_.emplace(it->second, ptr);
  live_.erase(it);
}

void CachingDeviceAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& kv : free_) {
    be_.free(kv.second);
    st_.bytes_reserved -= int64_t(kv.first);
    st_.system_frees++;
  }
  free_.clear();
}

AllocStats CachingDeviceAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return st_;
}

void CachingDeviceAllocator::reset_high_water() {
  std::lock_guard<std::mutex> lock(mu_);
  st_.high_water = st_.bytes_in_use;
}

CachingDeviceAllocator& device_allocator() {
  // Leaked on purpose: freeing device memory after the CUDA runtime shut down at exit fails.
  static CachingDeviceAllocator* a = new CachingDeviceAllocator({&cuda_malloc, &cuda_free});
  return *a;
}

cudaStream_t cuda_stream() {
#ifdef DETNAS_CUDA
  static cudaStream_t s = [] {
    DETNAS_CHECK(cuda_usable(), "cuda stream: ", cuda_probe_message());
    cudaStream_t st = nullptr;
    // A blocking stream: the synchronous cudaMemcpy of Tensor::to (legacy default
    // stream) waits for its kernels, and they wait for it.
    const cudaError_t e = cudaStreamCreate(&st);
    DETNAS_CHECK(e == cudaSuccess, "cuda stream: cudaStreamCreate failed: ", cudaGetErrorString(e));
    return st;
  }();
  return s;
#else
  return nullptr;
#endif
}

}  // namespace detnas::rt
