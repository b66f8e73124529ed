// cblas wrappers. Sizes are checked to fit the int that cblas takes.
#include "kernels/gemm.h"

#include <cblas.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <string>

#include "runtime/error.h"
#include "runtime/log.h"

extern "C" void openblas_set_num_threads(int);

namespace detnas::kernels::cpu {

namespace {
CBLAS_TRANSPOSE tr(Trans t) { return t == Trans::Yes ? CblasTrans : CblasNoTrans; }
void check_int(int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc) {
  DETNAS_CHECK(M >= 0 && N >= 0 && K >= 0 && M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && lda <= INT_MAX &&
                   ldb <= INT_MAX && ldc <= INT_MAX,
               "gemm: sizes exceed int range: M=", M, " N=", N, " K=", K);
}
}  // namespace

// Thread-count-independent results. OpenBLAS's own threads are never used: on
// its AVX2 (Haswell/Zen) sgemm kernels an element's accumulation order depends on
// where it falls in the blocks of the call, so cutting C differently (2 threads
// instead of 1, or one call split in two) changes about 1 element in 8 by an ulp.
// Instead OpenBLAS runs on one thread, and C is cut into panels of the larger of
// M and N whose boundaries depend on (M, N) alone; the panels are computed by
// separate single-threaded calls in an OpenMP loop (serial inside a parallel
// region). Every element is then computed by the same call on any thread count.
// Panels of at least 128 rows/columns keep the re-packing of the other operand
// small; at most ~16 panels per call.
namespace {
constexpr int64_t kPanelMin = 128;

void blas_single_thread() {
  static const bool once = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)once;
}

template <typename F>
void panels(int64_t M, int64_t N, const F& call) {
  blas_single_thread();
  const bool split_n = N >= M;
  const int64_t D = split_n ? N : M;
  if (D < 2 * kPanelMin) return call(0, M, 0, N);
  const int64_t P = std::max<int64_t>(kPanelMin, ((D + 15) / 16 + 63) / 64 * 64), np = (D + P - 1) / P;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t p = 0; p < np; ++p) {
    const int64_t lo = p * P, hi = std::min(D, lo + P);
    if (split_n)
      call(0, M, lo, hi);
    else
      call(lo, hi, 0, N);
  }
}
}  // namespace

template <>
void gemm<float>(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  check_int(M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  panels(M, N, [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    const float* a = ta == Trans::Yes ? A + m0 : A + m0 * lda;
    const float* b = tb == Trans::Yes ? B + n0 * ldb : B + n0;
    cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), int(m1 - m0), int(n1 - n0), int(K), alpha, a, int(lda), b, int(ldb),
                beta, C + m0 * ldc + n0, int(ldc));
  });
}

template <>
void gemm<double>(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
                  const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  check_int(M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  panels(M, N, [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    const double* a = ta == Trans::Yes ? A + m0 : A + m0 * lda;
    const double* b = tb == Trans::Yes ? B + n0 * ldb : B + n0;
    cblas_dgemm(CblasRowMajor, tr(ta), tr(tb), int(m1 - m0), int(n1 - n0), int(K), alpha, a, int(lda), b, int(ldb),
                beta, C + m0 * ldc + n0, int(ldc));
  });
}

const char* blas_core_name() { return openblas_get_corename(); }

void ensure_blas_core(char** argv) {
  if (std::getenv("DETNAS_BLAS_CORE")) return;  // "keep": set by the user, or by us before the restart
  const char* want = nullptr;
  if (!std::getenv("OPENBLAS_CORETYPE")) {
    std::string core = blas_core_name();
    for (char& c : core) c = char(std::tolower((unsigned char)c));
    // Cores without AVX2 that OpenBLAS uses as fallbacks for unknown CPUs.
    static const char* const kGeneric[] = {"prescott", "core2", "penryn", "dunnington", "nehalem",
                                           "atom", "katmai", "northwood", "banias", "unknown"};
    bool generic = false;
    for (const char* g : kGeneric) generic = generic || core == g;
    if (generic && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
      want = "SkylakeX";
    else if (generic && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
      want = "Haswell";
  }
  // OpenMP workers that spin after a parallel region take the cores from
  // OpenBLAS's own threads (two thread pools on the same cores): passive waiting.
  const bool set_wait = std::getenv("OMP_WAIT_POLICY") == nullptr;
  if (!want && !set_wait) return;
  if (want)
    log_info("blas: OpenBLAS does not know this CPU and chose its generic '", blas_core_name(),
             "' kernels; restarting with OPENBLAS_CORETYPE=", want,
             " (set OPENBLAS_CORETYPE or DETNAS_BLAS_CORE=keep to choose yourself)");
  else
    log_debug("threads: restarting with OMP_WAIT_POLICY=passive (set OMP_WAIT_POLICY or DETNAS_BLAS_CORE=keep to choose yourself)");
  if (want) setenv("OPENBLAS_CORETYPE", want, 1);
  if (set_wait) setenv("OMP_WAIT_POLICY", "passive", 1);
  setenv("DETNAS_BLAS_CORE", "keep", 1);  // never loop
  execv("/proc/self/exe", argv);
  log_warn("blas: restart failed; continuing with the defaults");
}

}  // namespace detnas::kernels::cpu
