// Host-side launch planning shared by the CUDA kernels: grid sizes with the
// hardware limits, int32 guards, and the fixed block/chunk counts that make the
// device reductions deterministic (they depend only on the problem size, never on
// the device). Plain host code: compiled into every build and unit-tested on the
// CPU (tests/test_cuda_launch.cpp). Not here: the kernels (kernels/*_cuda.cu).
// The namespace is cuda_plan (not cuda), so the emulated build, which renames
// `cuda`, shares these functions with the nvcc build.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/error.h"

namespace detnas::kernels::cuda_plan {

constexpr int64_t kMaxGridX = 2147483647;  // 2^31 - 1
constexpr int64_t kMaxGridYZ = 65535;
constexpr int64_t kMaxBlock = 1024;
constexpr int64_t kMaxStaticShared = 48 * 1024;  // bytes without the opt-in attribute

// Blocks for a grid-stride loop over n items with `block` threads, capped.
inline unsigned grid_1d(int64_t n, int64_t block, int64_t max_blocks = 65535 * 8) {
  DETNAS_CHECK(n >= 0 && block > 0 && block <= kMaxBlock, "cuda_plan: bad 1-d launch n=", n, " block=", block);
  int64_t g = (n + block - 1) / block;
  if (g < 1) g = 1;
  return unsigned(g > max_blocks ? max_blocks : g);
}

// The value fits a non-negative int32 (index math done in 32 bits on the device).
inline bool fits_int32(int64_t v) { return v >= 0 && v <= 2147483647; }

// Blocks of a grid dimension y or z that strides over `n` items (n >= 1).
inline unsigned grid_yz(int64_t n) { return unsigned(n < 1 ? 1 : (n > kMaxGridYZ ? kMaxGridYZ : n)); }

// Deterministic two-pass sum of n values: pass 1 sums `chunks` fixed contiguous
// chunks of `chunk` elements (one block each, fixed tree order), pass 2 adds the
// chunk sums in order in one block. The split depends only on n.
struct SumPlan {
  int64_t chunk = 1;   // elements per chunk
  int64_t chunks = 1;  // pass-1 blocks (<= kMaxChunks)
};
constexpr int64_t kSumBlock = 256;
constexpr int64_t kMaxChunks = 1024;
inline SumPlan sum_plan(int64_t n) {
  DETNAS_CHECK(n >= 0, "cuda_plan: sum of ", n, " elements");
  SumPlan p;
  const int64_t min_chunk = 4 * kSumBlock;
  p.chunks = (n + min_chunk - 1) / min_chunk;
  if (p.chunks < 1) p.chunks = 1;
  if (p.chunks > kMaxChunks) p.chunks = kMaxChunks;
  p.chunk = (n + p.chunks - 1) / p.chunks;
  if (p.chunk < 1) p.chunk = 1;
  p.chunks = (n + p.chunk - 1) / p.chunk;  // no empty trailing chunk
  if (p.chunks < 1) p.chunks = 1;
  return p;
}
// Device workspace of a two-pass sum: chunk partials (double) + the first-non-finite flag.
inline size_t sum_workspace_bytes(int64_t n) { return size_t(sum_plan(n).chunks) * sizeof(double) + 64; }

}  // namespace detnas::kernels::cuda_plan
