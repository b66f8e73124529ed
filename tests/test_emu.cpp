// Self-tests of the CPU SIMT emulator (tests/emu): barrier semantics and a race
// that reordering must expose, shared memory (static, dynamic, guard bytes),
// warp intrinsics with full and partial masks, atomics under contention, launch
// checks, divergent barriers. Then the coverage check: every __global__ kernel in
// the .cu sources must have an emulated kernel-vs-CPU test (tests/emu_kernels.cpp).
// The kernels launched here are in tests/emu/selftest_kernels.cu.
// clang-format off
#include "tests/emu/emu.h"  // first: it renames namespace cuda and defines DETNAS_EMU for the headers below
// clang-format on

#include <cmath>
#include <cstdio>
#include <numeric>
#include <vector>

#include "kernels/launch.h"
#include "tests/emu/emu_test.h"
#include "tests/emu/selftest_kernels.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::emu_selftest;
using emu::ThreadOrder;

namespace {

std::vector<float> small_ints(int n, int seed) {  // exact in float sums of any order
  std::vector<float> x(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) x[size_t(i)] = float(1 + (i * 37 + seed) % 9);
  return x;
}

std::vector<float> block_sums(const std::vector<float>& x, int block) {
  const int n = int(x.size()), nb = (n + block - 1) / block;
  std::vector<float> s(static_cast<size_t>(nb), 0.0f);
  for (int i = 0; i < n; ++i) s[size_t(i / block)] += x[size_t(i)];
  return s;
}

}  // namespace

TEST_CASE("emu: block reduction in shared memory is right in every thread order") {
  for (int n : {1, 255, 256, 1000}) {
    std::vector<float> x = small_ints(n, n), ref = block_sums(x, kSumBlock);
    for (ThreadOrder order : emu::kAllOrders) {
      CAPTURE(std::string(emu::order_name(order)));
      emu::ScopedThreadOrder scope(order, 7);
      std::vector<float> out(ref.size(), NAN);
      DETNAS_LAUNCH(block_sum_kernel, unsigned(ref.size()), kSumBlock, 0, nullptr, x.data(), out.data(), n);
      CHECK(test::check_close("block_sum_kernel", test::to_double(out), test::to_double(ref), {int64_t(ref.size())},
                              test::Tol::exact()));
      std::vector<float> dout(ref.size(), NAN);
      DETNAS_LAUNCH(dynamic_sum_kernel, unsigned(ref.size()), kSumBlock, kSumBlock * sizeof(float), nullptr, x.data(),
                    dout.data(), n);
      CHECK(dout == ref);
    }
  }
}

TEST_CASE("emu: a reduction missing a __syncthreads is caught by some thread order") {
  const int n = 1000;
  std::vector<float> x = small_ints(n, 3), ref = block_sums(x, kSumBlock);
  int wrong = 0;
  for (ThreadOrder order : emu::kAllOrders) {
    emu::ScopedThreadOrder scope(order, 7);
    std::vector<float> out(ref.size(), NAN);
    DETNAS_LAUNCH(block_sum_racy_kernel, unsigned(ref.size()), kSumBlock, 0, nullptr, x.data(), out.data(), n);
    const bool ok = out == ref;
    const std::string name = emu::order_name(order);
    MESSAGE("racy reduction in " << name << " order: " << (ok ? "right" : "wrong"));
    wrong += !ok;
  }
  CHECK(wrong >= 1);  // the race must be detected
}

TEST_CASE("emu: dynamic shared memory is poisoned per block and overruns are detected") {
  std::vector<float> out(64, 0.0f);
  DETNAS_LAUNCH(dynamic_read_unwritten_kernel, 2, 64, 64 * sizeof(float), nullptr, out.data());
  for (float v : out) CHECK(std::isnan(v));
  DETNAS_LAUNCH(dynamic_write_kernel, 3, 64, 64 * sizeof(float), nullptr, 64);  // exactly fits
  DETNAS_LAUNCH(dynamic_write_kernel, 3, 64, 0, nullptr, 0);
  CHECK_THROWS_WITH_AS(DETNAS_LAUNCH(dynamic_write_kernel, 3, 64, 63 * sizeof(float), nullptr, 64),
                       doctest::Contains("wrote past the end of its 252 bytes of dynamic shared memory (at byte "
                                         "offset 252)"),
                       Error);
  CHECK_THROWS_WITH_AS(DETNAS_LAUNCH(dynamic_write_kernel, 1, 32, 0, nullptr, 1),
                       doctest::Contains("wrote past the end of its 0 bytes"), Error);
  // 48 KB without opt-in; more after cudaFuncSetAttribute, up to 227 KB.
  CHECK_THROWS_WITH_AS(DETNAS_LAUNCH(dynamic_read_unwritten_kernel, 1, 32, 48 * 1024 + 4, nullptr, out.data()),
                       doctest::Contains("limit of 49152 bytes"), Error);
  CHECK(cudaFuncSetAttribute(dynamic_read_unwritten_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024) ==
        cudaSuccess);
  DETNAS_LAUNCH(dynamic_read_unwritten_kernel, 1, 32, 100 * 1024, nullptr, out.data());
  CHECK(cudaFuncSetAttribute(dynamic_read_unwritten_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 228 * 1024) ==
        cudaErrorInvalidValue);
}

TEST_CASE("emu: static shared memory is poisoned at the start of every block") {
  for (ThreadOrder order : emu::kAllOrders) {
    emu::ScopedThreadOrder scope(order);
    std::vector<int> out(5, 0);
    DETNAS_LAUNCH(shared_fresh_kernel, 5, 32, 0, nullptr, out.data());
    CHECK(out == std::vector<int>(5, -1));  // 0xFF bytes, never another block's value
  }
}

TEST_CASE("emu: warp shuffles with full masks") {
  const int nt = 64;
  std::vector<int> x(nt);
  for (int t = 0; t < nt; ++t) x[size_t(t)] = (t * 13 + 5) % 23 - 11;
  for (ThreadOrder order : emu::kAllOrders) {
    CAPTURE(std::string(emu::order_name(order)));
    emu::ScopedThreadOrder scope(order, 3);
    std::vector<double> out(7 * nt, NAN);
    DETNAS_LAUNCH(warp_ops_kernel, 1, nt, 0, nullptr, x.data(), out.data());
    for (int t = 0; t < nt; ++t) {
      CAPTURE(t);
      const int w0 = t / 32 * 32, lane = t % 32, s0 = t / 8 * 8;
      const int warp_sum = std::accumulate(x.begin() + w0, x.begin() + w0 + 32, 0);
      if (lane == 0) CHECK(out[size_t(0 * nt + t)] == warp_sum);
      CHECK(out[size_t(1 * nt + t)] == warp_sum);
      CHECK(out[size_t(2 * nt + t)] == x[size_t(w0 + 3)]);
      CHECK(out[size_t(3 * nt + t)] == std::accumulate(x.begin() + w0, x.begin() + t + 1, 0));
      CHECK(out[size_t(4 * nt + t)] == std::accumulate(x.begin() + s0, x.begin() + s0 + 8, 0));
      CHECK(out[size_t(5 * nt + t)] == x[size_t(w0 + (lane ^ 1))] + 0.5);
      CHECK(out[size_t(6 * nt + t)] == x[size_t(w0 + 31 - lane)]);
    }
  }
}

TEST_CASE("emu: warp shuffles with partial masks, exited lanes and deadlocks") {
  for (int nt : {64, 48}) {  // 48: the second warp has only 16 lanes
    std::vector<int> x(static_cast<size_t>(nt));
    for (int t = 0; t < nt; ++t) x[size_t(t)] = t * t % 11;
    for (ThreadOrder order : emu::kAllOrders) {
      CAPTURE(std::string(emu::order_name(order)));
      emu::ScopedThreadOrder scope(order, 5);
      std::vector<int> out(x.size(), -99);
      DETNAS_LAUNCH(half_warp_sum_kernel, 1, nt, 0, nullptr, x.data(), out.data());
      for (int t = 0; t < nt; ++t) {
        const int h = t / 16 * 16;
        CHECK(out[size_t(t)] == std::accumulate(x.begin() + h, x.begin() + h + 16, 0));
      }
    }
  }
  // Exited lanes may be named in a mask (CUDA allows it); what is read from them is poison.
  std::vector<float> f(64, 0.0f);
  DETNAS_LAUNCH(shfl_from_exited_kernel, 1, 64, 0, nullptr, f.data());
  for (int t = 0; t < 64; ++t) {
    if (t % 32 < 16)
      CHECK(std::isnan(f[size_t(t)]));
    else
      CHECK(f[size_t(t)] == -1.0f);
  }
  for (ThreadOrder order : emu::kAllOrders) {
    emu::ScopedThreadOrder scope(order, 9);
    CHECK_THROWS_WITH_AS(DETNAS_LAUNCH(shfl_deadlock_kernel, 1, 64, 0, nullptr, f.data()),
                         doctest::Contains("__shfl_xor_sync with mask 0xffffffff in warp 0 cannot complete: lanes "
                                           "0-15 arrived, lanes 16-31 named in the mask did not"),
                         Error);
    CHECK_THROWS_WITH_AS(DETNAS_LAUNCH(shfl_bad_mask_kernel, 1, 32, 0, nullptr, f.data()),
                         doctest::Contains("that does not name its own lane"), Error);
    CHECK_THROWS_WITH_AS(DETNAS_LAUNCH(warp_op_mismatch_kernel, 1, 32, 0, nullptr, f.data()),
                         doctest::Contains("reached different warp intrinsics with mask 0xffffffff"), Error);
  }
}

TEST_CASE("emu: ballot, any and all") {
  const int nt = 96;
  std::vector<int> pred(nt, 0);
  for (int t = 0; t < 32; ++t) pred[size_t(t)] = 1;      // warp 0: all
  for (int t = 64; t < 96; t += 3) pred[size_t(t)] = t;  // warp 2: some
  std::vector<unsigned> ballot(3, 7);
  std::vector<int> any(3, 7), all(3, 7);
  for (ThreadOrder order : emu::kAllOrders) {
    emu::ScopedThreadOrder scope(order);
    DETNAS_LAUNCH(ballot_kernel, 1, nt, 0, nullptr, pred.data(), ballot.data(), any.data(), all.data());
    unsigned some = 0;
    for (int l = 0; l < 32; l += 3) some |= 1u << l;
    CHECK(ballot == std::vector<unsigned>{0xffffffffu, 0u, some});
    CHECK(any == std::vector<int>{1, 0, 1});
    CHECK(all == std::vector<int>{1, 0, 0});
  }
}

TEST_CASE("emu: atomics under contention give exact totals in every order") {
  const int blocks = 5, threads = 192, n = blocks * threads, nbins = 7;
  int64_t retries_random = 0, retries_other = 0;
  for (ThreadOrder order : emu::kAllOrders) {
    CAPTURE(std::string(emu::order_name(order)));
    emu::ScopedThreadOrder scope(order, 11);
    AtomicCounters c{0, -1000000, 1000000, 0, 0, 0, 0.0f, 0.0};
    std::vector<unsigned> hist(nbins, 0);
    DETNAS_LAUNCH(atomics_kernel, blocks, threads, 0, nullptr, &c, hist.data(), nbins);
    int imax = -1000000, imin = 1000000;
    std::vector<unsigned> href(nbins, 0);
    for (int g = 0; g < n; ++g) {
      imax = std::max(imax, (g * 7919) % 1000);
      imin = std::min(imin, (g * 7919) % 1000 - 500);
      href[size_t(g % nbins)]++;
    }
    CHECK(c.count == n);
    CHECK(c.id_sum == uint64_t(n) * (n - 1) / 2);
    CHECK(c.fsum == float(n));
    CHECK(c.dsum == 0.25 * n);
    CHECK(c.imax == imax);
    CHECK(c.imin == imin);
    CHECK(c.cas_count == n);
    CHECK(hist == href);
    (order == ThreadOrder::Random ? retries_random : retries_other) += c.cas_retries;
  }
  CHECK(retries_other == 0);  // forward/reverse: a thread runs uninterrupted between barriers
  CHECK(retries_random > 0);  // random order preempts at atomics: the CAS loop must retry
}

TEST_CASE("emu: out-of-range launch configurations are rejected") {
  auto bad = [](dim3 grid, dim3 block, size_t shmem, const char* why) {
    CAPTURE(why);
    CHECK_THROWS_WITH_AS(DETNAS_LAUNCH(empty_kernel, grid, block, shmem, nullptr),
                         doctest::Contains("emu: kernel empty_kernel: invalid launch configuration"), Error);
  };
  bad(1, 1025, 0, "block of 1025 threads");
  bad(1, dim3(32, 33), 0, "block of 1056 threads");
  bad(1, dim3(1, 1, 65), 0, "block z over 64");
  bad(1, 0, 0, "zero block");
  bad(dim3(1, 0), 32, 0, "zero grid dimension");
  bad(dim3(1, 65536), 32, 0, "grid y over 65535");
  bad(1, 32, 48 * 1024 + 1, "dynamic shared memory over 48 KB");
  bad(1, -1, 0, "negative block size");
  DETNAS_LAUNCH(empty_kernel, 1, 1024, 0, nullptr);
  DETNAS_LAUNCH(empty_kernel, dim3(2, 2, 2), dim3(32, 32), 48 * 1024, nullptr);
  CHECK_THROWS_WITH_AS(__syncthreads(), doctest::Contains("__syncthreads called outside an emulated kernel"), Error);
}

TEST_CASE("emu: a barrier reached by only part of a block is reported") {
  for (ThreadOrder order : emu::kAllOrders) {
    emu::ScopedThreadOrder scope(order);
    CHECK_THROWS_WITH_AS(DETNAS_LAUNCH(divergent_barrier_kernel, 2, 256, 0, nullptr, 100),
                         doctest::Contains("__syncthreads reached by only 100 of 256 threads; 156 exited"), Error);
    DETNAS_LAUNCH(divergent_barrier_kernel, 2, 256, 0, nullptr, 256);
    DETNAS_LAUNCH(divergent_barrier_kernel, 2, 256, 0, nullptr, 0);
  }
}

TEST_CASE("emu: built-in indices cover a 3D grid of 3D blocks exactly once") {
  const dim3 grid(3, 2, 2), block(5, 3, 2);
  const int n = 12 * 30;
  for (ThreadOrder order : emu::kAllOrders) {
    emu::ScopedThreadOrder scope(order);
    std::vector<int> out(n, 0), ref(n);
    std::vector<unsigned> dims(6, 0);
    DETNAS_LAUNCH(index_kernel, grid, block, 0, nullptr, out.data(), dims.data());
    std::iota(ref.begin(), ref.end(), 1);
    CHECK(out == ref);
    CHECK(dims == std::vector<unsigned>{5, 3, 2, 3, 2, 2});
  }
}

TEST_CASE("emu: __syncthreads_count, _and, _or") {
  std::vector<int> out(3, -1);
  DETNAS_LAUNCH(syncthreads_count_kernel, 1, 100, 0, nullptr, out.data());
  CHECK(out == std::vector<int>{34, 0, 1});
}

TEST_CASE("emu: __constant__ memory, cudaMemcpyToSymbol and __ldg") {
  const float table[4] = {1, -2, 0.5f, 3};
  set_table(table);
  std::vector<float> out(10, 2.0f);
  DETNAS_LAUNCH(table_kernel, 1, 10, 0, nullptr, out.data());
  CHECK(out == std::vector<float>{2, -4, 1, 6, 2, -4, 1, 6, 2, -4});
}

TEST_CASE("emu: kernel names from launches and from the source scan") {
  CHECK(emu::bare_kernel_name("(ns::cuda::foo_kernel<float, 3>)") == "foo_kernel");
  CHECK(emu::bare_kernel_name("relu_forward_kernel") == "relu_forward_kernel");
  const char* src = R"(
    // __global__ void commented_kernel(int n);
    /* __global__ void block_comment_kernel() {} */
    const char* s = "__global__ void string_kernel(";
    template <int K>
    __global__ void __launch_bounds__(256) tiled_kernel(const float* x) {}
    __global__ void plain_kernel(int n);
    __global__ void plain_kernel(int n) {}
    static __global__ void
        split_line_kernel (int n) {}
    __device__ void helper(int n) {}
  )";
  CHECK(emu::test::global_kernels_in(src) ==
        std::set<std::string>{"plain_kernel", "split_line_kernel", "tiled_kernel"});
}

// Every __global__ kernel in the sources the Makefile compiles (CU_SRCS) must be
// covered by a DETNAS_EMU_KERNEL_TEST. Runs from the repository root.
TEST_CASE("emu: every __global__ kernel in the .cu sources has an emulated test") {
  const auto found = emu::test::find_global_kernels({"kernels", "runtime", "nn", "detect", "data", "search"});
  const auto& covered = emu::test::covered_kernels();
  int n = 0;
  for (const auto& [name, file] : found) {
    if (covered.count(name))
      ++n;
    else
      FAIL_CHECK("emu: __global__ kernel " << name << " (" << file
                                           << ") has no emulated test (DETNAS_EMU_KERNEL_TEST)");
  }
  for (const std::string& name : covered)
    if (!found.count(name)) FAIL_CHECK("emu: a test registers kernel " << name << ", not found in any .cu file");
  std::printf("emu: %d of %d CUDA kernels covered\n", n, int(found.size()));
  MESSAGE("emu: " << n << " of " << found.size() << " CUDA kernels covered");
  CHECK_MESSAGE(!found.empty(), "no .cu sources found: run the tests from the repository root");
}
