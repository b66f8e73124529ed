// CUDA bias helpers for the cuBLAS/cuDNN paths (dense conv, linear): add a
// per-channel bias to an (N,C,HW) output, and the bias gradient as one block per
// channel summing N*HW values in double in a fixed order (deterministic).
// Float, device pointers. Not here: the GEMM/conv itself (gemm_cublas.cu,
// conv2d_cudnn.cu).
#pragma once
#include <cstdint>

#include "kernels/common.h"

typedef struct CUstream_st* cudaStream_t;

namespace detnas::kernels::cuda {
// y (N,C,HW) += b[c]
void bias_add(int64_t N, int64_t C, int64_t HW, const float* b, float* y, cudaStream_t stream);
// dy (N,C,HW)  db (C) = or += sum over N and HW (double accumulation)
void bias_backward(int64_t N, int64_t C, int64_t HW, const float* dy, float* db, GradientMode mode,
                   cudaStream_t stream);
}  // namespace detnas::kernels::cuda
