// Process-wide thread and BLAS policy: the OpenMP thread count, and the one
// start-up restart that picks OpenBLAS's kernels and OpenMP's wait policy. The
// binaries (cli/, bench/, tests/) and the embedding API (api/runtime.h) call
// these; the kernels never read the environment or set a thread count
// themselves. Results never depend on the thread count (kernels/gemm.h: the
// GEMM panels; every other parallel loop writes each output from one thread).
// Not here: OpenBLAS's own thread count, which gemm keeps at 1 (kernels/gemm_cpu.cpp).
#pragma once
#include <string>

namespace detnas::rt {

// Threads of the OpenMP regions that follow (n >= 1; checked).
void set_num_threads(int n);
// The thread count the next OpenMP region will use (omp_get_max_threads).
int num_threads();

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
// The CPU's "model name" from /proc/cpuinfo ("unknown" when there is none): what
// bench reports and latency tables record as the machine.
std::string cpu_model();

}  // namespace detnas::rt
