// CUDA RoIAlign (twin of kernels/roi_align.h, float, device pointers): forward
// one thread per output bin (roi_align_bin), backward one thread per upstream bin
// scattering with atomicAdd (roi_align_bin_scatter). Aligned and legacy boxes,
// fixed and adaptive sampling, as the CPU. The backward's float atomics make its
// summation order run-dependent (results equal the CPU's up to rounding).
// Boxes must be validated by the caller (runtime/ops_box.cpp), as for the CPU.
#pragma once
#include <cstdint>

#include "kernels/common.h"
#include "kernels/roi_align.h"

typedef struct CUstream_st* cudaStream_t;

namespace detnas::kernels::cuda {
// x (N,C,H,W)  boxes (K,5)  y (K,C,PH,PW) =
void roi_align_forward(const RoiAlignParams& p, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, const float* x,
                       const float* boxes, float* y, cudaStream_t stream);
// dy (K,C,PH,PW)  boxes (K,5)  dx (N,C,H,W) = (zeroed first) or += (mode)
void roi_align_backward_input(const RoiAlignParams& p, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                              const float* dy, const float* boxes, float* dx, GradientMode mode, cudaStream_t stream);
}  // namespace detnas::kernels::cuda
