// CUDA twin of kernels/copy.h: the strided N-d copy (rank <= 5) behind
// contiguous(), narrow backward and device-side views, one thread per element
// through strided_offsets_fixed. Float, device pointers. Used by runtime/tensor.cpp
// for CUDA tensors: copy_from / clone / contiguous() of strided views, the
// backwards of contiguous(), narrow and reshape, and rt::permute.
#pragma once
#include "kernels/common.h"
#include "kernels/copy.h"

typedef struct CUstream_st* cudaStream_t;

namespace detnas::kernels::cuda {
// src (shape, src_stride)  dst (shape, dst_stride)  =, or += with Accumulate
void strided_copy(const StridedLayout& L, const float* src, float* dst, GradientMode mode, cudaStream_t stream);
}  // namespace detnas::kernels::cuda
