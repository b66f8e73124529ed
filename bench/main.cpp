// bench: kernel throughput against this machine's measured ceilings.
// This first version measures the ceilings (--roofline): memory bandwidth with a
// large copy and peak FLOP/s with a large sgemm. Kernel entries are added in
// bench/ as the kernels land (issue: ./bench).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/gemm.h"
#include "runtime/tensor.h"

using namespace detnas;
using Clock = std::chrono::steady_clock;

static double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

template <class F>
static std::pair<double, double> time_min_median(F&& f, int reps) {
  std::vector<double> t;
  f();  // warm-up
  for (int i = 0; i < reps; ++i) {
    auto t0 = Clock::now();
    f();
    t.push_back(seconds_since(t0));
  }
  std::sort(t.begin(), t.end());
  return {t.front(), t[t.size() / 2]};
}

static void roofline() {
  const int64_t n = int64_t(64) << 20;  // 256 MiB per buffer
  rt::Tensor a = rt::Tensor::full({n}, 1.0f), b = rt::Tensor::zeros({n});
  auto [cmin, cmed] = time_min_median(
      [&] {
        const float* s = a.data();
        float* d = b.data();
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; ++i) d[i] = s[i];
      },
      5);
  double bytes = 2.0 * double(n) * sizeof(float);  // read + write
  std::printf("roofline  copy   %.0f MiB  min %.3f ms  median %.3f ms  %.2f GB/s (bytes read+written / min time)\n",
              double(n) * 4 / (1 << 20), cmin * 1e3, cmed * 1e3, bytes / cmin * 1e-9);
  const int64_t M = 2048;
  rt::Tensor A = rt::Tensor::full({M, M}, 0.5f), B = rt::Tensor::full({M, M}, 0.25f), C = rt::Tensor::zeros({M, M});
  auto [gmin, gmed] = time_min_median(
      [&] { kernels::cpu::gemm<float>(Trans::No, Trans::No, M, M, M, 1.f, A.data(), M, B.data(), M, 0.f, C.data(), M); },
      5);
  double flops = 2.0 * double(M) * M * M;
  std::printf("roofline  sgemm  %lldx%lldx%lld  min %.3f ms  median %.3f ms  %.2f GFLOP/s (2*M*N*K / min time)\n",
              (long long)M, (long long)M, (long long)M, gmin * 1e3, gmed * 1e3, flops / gmin * 1e-9);
}

int main(int argc, char** argv) {
  bool want_roofline = false;
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--roofline") {
      want_roofline = true;
    } else if (a == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (a == "--help" || a == "-h") {
      std::printf("usage: bench [--roofline] [--threads N]\n");
      return 0;
    } else {
      std::fprintf(stderr, "bench: unknown argument '%s' (try --help)\n", a.c_str());
      return 2;
    }
  }
  if (threads > 0) {
    omp_set_num_threads(threads);
    kernels::cpu::set_blas_threads(threads);
  }
  std::printf("bench: %d OpenMP threads, build %s, rev %s\n", omp_get_max_threads(), DETNAS_BUILD_FLAGS, DETNAS_GIT_REV);
  if (want_roofline) roofline();
  return 0;
}
