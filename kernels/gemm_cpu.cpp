// cblas wrappers. Sizes are checked to fit the int that cblas takes.
#include "kernels/gemm.h"

#include <cblas.h>

#include <unistd.h>

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

template <>
void gemm<float>(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  check_int(M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), int(M), int(N), int(K), alpha, A, int(lda), B, int(ldb), beta, C,
              int(ldc));
}

template <>
void gemm<double>(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
                  const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  check_int(M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  cblas_dgemm(CblasRowMajor, tr(ta), tr(tb), int(M), int(N), int(K), alpha, A, int(lda), B, int(ldb), beta, C,
              int(ldc));
}

void set_blas_threads(int n) { openblas_set_num_threads(n); }

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
