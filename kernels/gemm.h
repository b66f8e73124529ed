// GEMM on the CPU through OpenBLAS (cblas), row-major, templated for float and
// double so gradient checks can run the same code path in double.
// Threads: OpenMP, over panels of C cut by shape alone (gemm_cpu.cpp), so the
// result is bitwise the same on any thread count; inside a parallel region the
// panels run serially on the calling thread. OpenBLAS itself runs single-threaded.
// Not here: the thread count and the OpenBLAS core choice (runtime/threads.h).
#pragma once
#include <cstdint>

#include "kernels/common.h"

namespace detnas::kernels::cpu {

// C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C; row-major, leading dims given.
template <typename T>
void gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc);

}  // namespace detnas::kernels::cpu
