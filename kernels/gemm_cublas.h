// GEMM and the linear layer on the GPU through cuBLAS (float, row-major like
// kernels/gemm.h, device pointers). TF32 tensor-core math is off unless
// set_tf32(true) (`--precision tf32`): the default is exact fp32 FMA math
// (CUBLAS_DEFAULT_MATH; cuDNN convs use CUDNN_FMA_MATH, see conv2d_cudnn.h).
// Compiled by nvcc only (CUDA builds); the CPU SIMT emulator skips *_cublas.cu, so
// these run only in the `cuda` test suite on a GPU. Not here: the bias kernels
// (kernels/bias_cuda.h, emulated).
#pragma once
#include <cstdint>
#include <string>

#include "kernels/common.h"

typedef struct CUstream_st* cudaStream_t;

namespace detnas::kernels::cuda {

// Whether cuBLAS could be loaded (it is opened on first use, not linked); when
// not, *why says why. Device selection asks before it picks the GPU.
bool cublas_available(std::string* why);

// Process-wide math mode of cuBLAS and cuDNN (default false: no TF32).
void set_tf32(bool on);
bool tf32_enabled();

// C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C; row-major, leading dims given.
void gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
          int64_t ldb, float beta, float* C, int64_t ldc, cudaStream_t stream);

// Same contracts as kernels::cpu::linear_* (kernels/conv2d.h).
void linear_forward(int64_t N, int64_t Cin, int64_t Cout, const float* x, const float* w, const float* b, float* y,
                    cudaStream_t stream);
void linear_backward_input(int64_t N, int64_t Cin, int64_t Cout, const float* w, const float* dy, float* dx,
                           GradientMode mode, cudaStream_t stream);
void linear_backward_weight(int64_t N, int64_t Cin, int64_t Cout, const float* x, const float* dy, float* dw,
                            GradientMode mode, cudaStream_t stream);
void linear_backward_bias(int64_t N, int64_t Cout, const float* dy, float* db, GradientMode mode, cudaStream_t stream);

}  // namespace detnas::kernels::cuda
