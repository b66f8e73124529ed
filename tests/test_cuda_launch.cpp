// Host-side launch logic of the CUDA kernels, tested on the CPU: grid sizes and
// their hardware caps, the deterministic sum split, the depthwise tile plan
// (coverage, halo, shared-memory bytes and its limit), the input-gradient
// correlation shape, float4 eligibility, NMS/BN workspace sizes, and the caching
// device allocator over a fake backend (reuse, counters, retry after OOM).
#include <doctest/doctest.h>

#include <cstdlib>
#include <vector>

#include "core/error.h"
#include "kernels/batchnorm_cuda.h"
#include "kernels/box_ops_cuda.h"
#include "kernels/cuda_plan.h"
#include "kernels/dwconv_cuda.h"
#include "kernels/loss_cuda.h"
#include "kernels/shuffle_cuda.h"
#include "runtime/device_allocator.h"

using namespace detnas;
namespace plan = detnas::kernels::cuda_plan;

TEST_CASE("cuda launch: 1-d grids are capped and never empty") {
  CHECK(plan::grid_1d(0, 256) == 1);
  CHECK(plan::grid_1d(1, 256) == 1);
  CHECK(plan::grid_1d(256, 256) == 1);
  CHECK(plan::grid_1d(257, 256) == 2);
  CHECK(plan::grid_1d(int64_t(1) << 40, 256) == 65535u * 8u);
  CHECK_THROWS_AS(plan::grid_1d(10, 2048), Error);
  CHECK_THROWS_AS(plan::grid_1d(-1, 256), Error);
  CHECK(plan::grid_yz(0) == 1);
  CHECK(plan::grid_yz(70000) == 65535);
  CHECK(plan::fits_int32(2147483647));
  CHECK_FALSE(plan::fits_int32(2147483648LL));
}

TEST_CASE("cuda launch: the two-pass sum split covers n exactly and depends only on n") {
  for (int64_t n :
       {int64_t(0), int64_t(1), int64_t(1023), int64_t(1024), int64_t(1025), int64_t(1000003), int64_t(1) << 33}) {
    CAPTURE(n);
    const plan::SumPlan p = plan::sum_plan(n);
    CHECK(p.chunks >= 1);
    CHECK(p.chunks <= plan::kMaxChunks);
    CHECK(p.chunk >= 1);
    CHECK(p.chunks * p.chunk >= n);
    if (n > 0) CHECK((p.chunks - 1) * p.chunk < n);  // no empty chunk
    CHECK(plan::sum_workspace_bytes(n) == size_t(p.chunks) * 8 + 64);
  }
}

TEST_CASE("cuda launch: depthwise tile plan covers the output with its halo") {
  struct S {
    int64_t NC, Ho, Wo, K, S;
  };
  for (S s : {S{6, 7, 9, 3, 1}, S{1, 112, 112, 3, 2}, S{100000, 14, 14, 5, 1}, S{3, 1, 1, 7, 2}, S{2, 40, 17, 7, 1}}) {
    CAPTURE(s.Ho);
    CAPTURE(s.Wo);
    CAPTURE(s.K);
    CAPTURE(s.S);
    const plan::DwTilePlan p = plan::dw_tile_plan(s.NC, s.Ho, s.Wo, s.K, s.S);
    CHECK(p.tile_w * p.tile_h <= 256);
    CHECK(p.tile_w % 8 == 0);
    CHECK(int64_t(p.tiles_w) * p.tile_w >= s.Wo);
    CHECK(int64_t(p.grid_x / p.tiles_w) * p.tile_h >= s.Ho);
    CHECK(p.grid_x % p.tiles_w == 0);
    CHECK(p.in_w == (p.tile_w - 1) * s.S + s.K);
    CHECK(p.in_h == (p.tile_h - 1) * s.S + s.K);
    CHECK(p.shmem == size_t(p.in_w * p.in_h + s.K * s.K) * sizeof(float));
    CHECK(int64_t(p.shmem) <= plan::kMaxStaticShared);
    CHECK(p.grid_y == unsigned(s.NC < 65535 ? s.NC : 65535));
  }
  // A kernel whose tile would not fit 48 KB of shared memory fails by name.
  CHECK_THROWS_WITH_AS(plan::dw_tile_plan(1, 64, 64, 61, 3), doctest::Contains("shared memory"), Error);
  CHECK(plan::dw_weight_grid(24, 3) == 24u * 9u);
}

TEST_CASE("cuda launch: the stride-1 input gradient is a correlation producing H x W") {
  kernels::DwconvShape s;
  s.N = 2, s.C = 3, s.H = 11, s.W = 6;
  for (int64_t K : {1, 3, 5, 7})
    for (int64_t P = 0; P < K; ++P) {
      s.K = K, s.P = P, s.S = 1;
      if (s.H + 2 * P < K || s.W + 2 * P < K) continue;
      CHECK(plan::dw_input_grad_as_corr(s));
      const kernels::DwconvShape t = plan::dw_input_grad_corr_shape(s);
      CHECK(t.Ho() == s.H);
      CHECK(t.Wo() == s.W);
      CHECK(t.x_batch_stride == s.C * s.Ho() * s.Wo());
    }
  s.K = 3, s.P = 3;
  CHECK_FALSE(plan::dw_input_grad_as_corr(s));  // padding >= K: the gather kernel
  s.P = 1, s.S = 2;
  CHECK_FALSE(plan::dw_input_grad_as_corr(s));
}

TEST_CASE("cuda launch: float4 rows need 16-byte aligned starts and lengths") {
  alignas(16) float buf[64];
  CHECK(plan::rows_vec4(buf, 16, buf + 4, 32, 8));
  CHECK_FALSE(plan::rows_vec4(buf + 1, 16, buf, 32, 8));
  CHECK_FALSE(plan::rows_vec4(buf, 18, buf, 32, 8));
  CHECK_FALSE(plan::rows_vec4(buf, 16, buf, 32, 6));
}

TEST_CASE("cuda launch: workspace sizes") {
  CHECK(plan::nms_col_blocks(1) == 1);
  CHECK(plan::nms_col_blocks(64) == 1);
  CHECK(plan::nms_col_blocks(65) == 2);
  CHECK(plan::nms_workspace_bytes(65) == 768 + 65 * 2 * 8);
  CHECK_THROWS_AS(plan::nms_workspace_bytes(65535LL * 64 + 1), Error);
  CHECK(plan::batchnorm_workspace_bytes(7) == 112);
  CHECK(plan::bn_channel_grid(7) == 7u);
  CHECK(plan::loss_workspace_bytes(10) == 72);
}

namespace {
int g_mallocs = 0, g_frees = 0, g_fail_next = 0;
void* fake_malloc(size_t n) {
  if (g_fail_next > 0) {
    --g_fail_next;
    DETNAS_FAIL("fake device: out of memory");
  }
  ++g_mallocs;
  return std::malloc(n);
}
void fake_free(void* p) {
  ++g_frees;
  std::free(p);
}
}  // namespace

TEST_CASE("cuda launch: the caching device allocator reuses blocks and counts like the host one") {
  g_mallocs = g_frees = g_fail_next = 0;
  {
    rt::CachingDeviceAllocator a({&fake_malloc, &fake_free});
    void* p = a.allocate(1000);
    void* q = a.allocate(5000);
    CHECK(g_mallocs == 2);
    a.release(p);
    void* p2 = a.allocate(900);  // same size class: the cached block
    CHECK(p2 == p);
    CHECK(g_mallocs == 2);
    CHECK(a.stats().cache_hits == 1);
    a.release(p2);
    a.release(q);
    // A steady-state loop makes no new system allocations.
    for (int step = 0; step < 5; ++step) {
      void* x = a.allocate(1000);
      void* y = a.allocate(5000);
      a.release(y);
      a.release(x);
    }
    CHECK(g_mallocs == 2);
    rt::AllocStats st = a.stats();
    CHECK(st.bytes_in_use == 0);
    CHECK(st.bytes_reserved ==
          int64_t(rt::CachingDeviceAllocator::round_size(1000) + rt::CachingDeviceAllocator::round_size(5000)));
    CHECK(st.high_water == st.bytes_reserved);
    // Out of memory: the cache is emptied and the request retried once.
    g_fail_next = 1;
    void* big = a.allocate(1 << 20);
    CHECK(g_frees == 2);
    CHECK(a.stats().system_frees == 2);
    a.release(big);
    g_fail_next = 2;
    CHECK_THROWS_WITH_AS(a.allocate(1 << 22), doctest::Contains("out of memory"), Error);
    CHECK_THROWS_AS(a.release(&g_mallocs), Error);
    CHECK_THROWS_AS(a.allocate(0), Error);
  }
  CHECK(g_frees == g_mallocs);  // the destructor gives the cache back
}
