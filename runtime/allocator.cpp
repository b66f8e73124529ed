// Host caching allocator: best fit among cached blocks no more than twice the
// request, otherwise a fresh aligned block from the system.
#include "runtime/allocator.h"

#include <cstdlib>

#include "core/error.h"

namespace detnas::rt {

size_t CachingHostAllocator::round_size(size_t bytes) {
  if (bytes <= 512) return 512;
  if (bytes <= (size_t(1) << 20)) return (bytes + 511) & ~size_t(511);
  // Above 1 MiB: round up to one of 8 steps per power of two (<= 12.5% waste).
  size_t p = size_t(1) << (63 - __builtin_clzll(bytes));
  size_t step = p / 8;
  return (bytes + step - 1) / step * step;
}

void* CachingHostAllocator::allocate(size_t bytes) {
  DETNAS_CHECK(bytes > 0, "host allocator: zero-byte request");
  size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  void* p = nullptr;
  auto it = free_.lower_bound(size);
  if (it != free_.end() && it->first <= 2 * size) {
    size = it->first;
    p = it->second;
    free_.erase(it);
    st_.cache_hits++;
  } else {
    p = std::aligned_alloc(kAlign, size);
    if (!p) {
      // Give the cache back and try once more before failing.
      for (auto& kv : free_) {
        std::free(kv.second);
        st_.bytes_reserved -= int64_t(kv.first);
        st_.system_frees++;
      }
      free_.clear();
      p = std::aligned_alloc(kAlign, size);
    }
    DETNAS_CHECK(p != nullptr, "host allocator: out of memory allocating ", size, " bytes (", st_.bytes_in_use,
                 " bytes in use)");
    st_.system_allocs++;
    st_.bytes_reserved += int64_t(size);
  }
  live_[p] = size;
  st_.bytes_in_use += int64_t(size);
  if (st_.bytes_in_use > st_.high_water) st_.high_water = st_.bytes_in_use;
  return p;
}

void CachingHostAllocator::release(void* ptr) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(ptr);
  DETNAS_CHECK(it != live_.end(), "host allocator: release of a pointer it did not allocate");
  st_.bytes_in_use -= int64_t(it->second);
  free_.emplace(it->second, ptr);
  live_.erase(it);
}

void CachingHostAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& kv : free_) {
    std::free(kv.second);
    st_.bytes_reserved -= int64_t(kv.first);
    st_.system_frees++;
  }
  free_.clear();
}

AllocStats CachingHostAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return st_;
}

void CachingHostAllocator::reset_high_water() {
  std::lock_guard<std::mutex> lock(mu_);
  st_.high_water = st_.bytes_in_use;
}

CachingHostAllocator& host_allocator() {
  // Leaked on purpose: tensors with static lifetime may outlive any destructor order.
  static CachingHostAllocator* a = new CachingHostAllocator();
  return *a;
}

}  // namespace detnas::rt
