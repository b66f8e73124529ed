// Caching device allocator and the per-device stream. Device blocks are recycled
// by size (the host allocator's size classes, best fit within 2x), so a training
// step that repeats shapes makes no cudaMalloc after the first step; counters as
// on the host (AllocStats). All kernels of a device run on its one stream, so a
// block released on the host can be handed out again at once: any later use is
// ordered after the earlier kernels on that stream.
// The system calls are a Backend (function pointers), so the caching logic is
// unit-tested on the CPU with a fake backend (tests/test_cuda_launch.cpp); the
// global device_allocator() uses rt::cuda_malloc / rt::cuda_free (runtime/device.h).
// Not here: tensors (runtime/tensor.h), host memory (runtime/allocator.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>

#include "runtime/allocator.h"

typedef struct CUstream_st* cudaStream_t;

namespace detnas::rt {

class CachingDeviceAllocator {
 public:
  struct Backend {
    void* (*malloc)(size_t bytes) = nullptr;  // throws on failure
    void (*free)(void* p) = nullptr;
  };
  explicit CachingDeviceAllocator(Backend backend) : be_(backend) {}
  ~CachingDeviceAllocator();  // frees the cached blocks (live blocks are the owner's)
  CachingDeviceAllocator(const CachingDeviceAllocator&) = delete;
  CachingDeviceAllocator& operator=(const CachingDeviceAllocator&) = delete;

  // Never nullptr for bytes > 0. On a failed system allocation the cache is
  // emptied and the allocation retried once; then the backend's error propagates.
  void* allocate(size_t bytes);
  void release(void* ptr);  // back to the cache
  void empty_cache();
  AllocStats stats() const;
  void reset_high_water();
  static size_t round_size(size_t bytes) { return CachingHostAllocator::round_size(bytes); }

 private:
  Backend be_;
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;
  std::map<void*, size_t> live_;
  AllocStats st_;
};

// The allocator of device 0 (the only device detnas uses); throws on use in a
// build without CUDA (rt::cuda_malloc does).
CachingDeviceAllocator& device_allocator();

// The one stream of device 0, created on first use (CUDA builds; nullptr, the
// legacy default stream, otherwise). Every CUDA kernel wrapper receives it.
cudaStream_t cuda_stream();

}  // namespace detnas::rt
