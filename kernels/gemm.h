// GEMM on the CPU through OpenBLAS (cblas), row-major, templated for float and
// double so gradient checks can run the same code path in double.
// Threads: OpenMP, over panels of C cut by shape alone (gemm_cpu.cpp), so the
// result is bitwise the same on any thread count; inside a parallel region the
// panels run serially on the calling thread. OpenBLAS itself runs single-threaded.
#pragma once
#include <cstdint>

#include "kernels/common.h"

namespace detnas::kernels::cpu {

// C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C; row-major, leading dims given.
template <typename T>
void gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

}  // namespace detnas::kernels::cpu

namespace detnas::kernels::cpu {

// OpenBLAS picks its kernels at load time from the CPU model. A release that
// does not know the CPU (OpenBLAS 0.3.21 on Sapphire/Emerald Rapids) falls back
// to the generic "Prescott" kernels: 8x slower sgemm on an AVX-512 machine.
// The choice can only be changed before the library loads (OPENBLAS_CORETYPE),
// so ensure_blas_core() re-executes the program (/proc/self/exe, same argv)
// with OPENBLAS_CORETYPE set to the best core the CPU supports (SkylakeX with
// AVX-512 F/BW/VL/DQ, else Haswell with AVX2+FMA) when OpenBLAS chose a
// pre-AVX2 core, logging one line. The same restart sets OMP_WAIT_POLICY=passive
// when it is unset (silently, also on CPUs OpenBLAS knows): with OpenMP's default
// spinning, our OpenMP kernels and OpenBLAS's own thread pool fight for the
// same cores between regions (bench --e2e --quick on a quiet 2-core Xeon: a
// 320 training step took 3.32 s spinning, 2.11 s passive).
// It returns normally when there is nothing to do, when DETNAS_BLAS_CORE=keep
// is set (OPENBLAS_CORETYPE / OMP_WAIT_POLICY set by the user are kept), or
// when the exec fails. Call it first thing in main(), before any thread exists; the
// library never calls it on its own.
void ensure_blas_core(char** argv);
// The core OpenBLAS is running ("SkylakeX", "Prescott", ...).
const char* blas_core_name();

}  // namespace detnas::kernels::cpu
