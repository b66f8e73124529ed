// cblas wrappers. Sizes are checked to fit the int that cblas takes.
#include "kernels/gemm.h"

#include <cblas.h>

#include <climits>

#include "runtime/error.h"

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

}  // namespace detnas::kernels::cpu
