// GEMM on the CPU through OpenBLAS (cblas), row-major, templated for float and
// double so gradient checks can run the same code path in double.
// Call it from outside OpenMP parallel regions: OpenBLAS threads itself.
#pragma once
#include <cstdint>

#include "kernels/common.h"

namespace detnas::kernels::cpu {

// C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C; row-major, leading dims given.
template <typename T>
void gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// Number of threads OpenBLAS uses (set once from the CLI / bench --threads).
void set_blas_threads(int n);

}  // namespace detnas::kernels::cpu
