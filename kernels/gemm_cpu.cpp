// cblas wrappers. Sizes are checked to fit the int that cblas takes.
// Not here: the choice of OpenBLAS core, OMP_WAIT_POLICY and the thread count
// (runtime/threads.h); this file never reads the environment.
#include <cblas.h>

#include <algorithm>
#include <climits>

#include "core/error.h"
#include "kernels/gemm.h"

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

}  // namespace detnas::kernels::cpu
