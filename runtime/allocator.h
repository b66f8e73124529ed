// Caching allocators. Host blocks are 64-byte aligned and recycled by size, so a
// training loop that repeats the same shapes reaches a steady state with zero
// system allocations. Counters are exposed for tests and the bench.
// Not here: device memory (runtime/cuda_*), tensor semantics (runtime/tensor.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>

namespace detnas::rt {

struct AllocStats {
  int64_t bytes_in_use = 0;    // bytes of live blocks (rounded sizes)
  int64_t high_water = 0;      // max of bytes_in_use since the last reset_high_water()
  int64_t bytes_reserved = 0;  // bytes held from the system (live + cached)
  int64_t system_allocs = 0;   // calls to the system allocator since start
  int64_t system_frees = 0;
  int64_t cache_hits = 0;
};

class CachingHostAllocator {
 public:
  static constexpr size_t kAlign = 64;
  void* allocate(size_t bytes);  // never returns nullptr for bytes > 0; throws on OOM
  void release(void* ptr);       // returns the block to the cache
  void empty_cache();            // gives all cached blocks back to the system
  AllocStats stats() const;
  void reset_high_water();
  // Size actually reserved for a request (the caching granularity).
  static size_t round_size(size_t bytes);

 private:
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;  // size -> cached block
  std::map<void*, size_t> live_;       // block -> size
  AllocStats st_;
};

CachingHostAllocator& host_allocator();

}  // namespace detnas::rt
