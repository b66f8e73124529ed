// Dense and strided 2-D convolutions on the GPU through cuDNN (float, NCHW,
// device pointers), same contracts as kernels::cpu::conv2d_* (kernels/conv2d.h),
// including groups and an input that is a channel slice (x_batch_stride).
// Per shape, descriptors and the forward / backward-data / backward-filter
// algorithms are chosen once (cuDNN heuristics; the backward ones restricted to
// deterministic algorithms) and cached; math is CUDNN_FMA_MATH (no TF32) unless
// set_tf32(true) (kernels/gemm_cublas.h). The caller passes a device workspace of
// conv2d_cudnn_workspace_bytes(s) bytes (from rt::device_allocator()).
// Compiled by nvcc only; not emulated (needs a GPU). Bias: kernels/bias_cuda.h.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/common.h"
#include "kernels/conv2d.h"

typedef struct CUstream_st* cudaStream_t;

namespace detnas::kernels::cuda {

// The largest workspace any of the three chosen algorithms needs for this shape
// (chooses and caches them on first use).
size_t conv2d_cudnn_workspace_bytes(const Conv2dShape& s);

// x (N,C,H,W) batch stride s.x_batch_stride  w (Cout,C/G,KH,KW)  b (Cout) or null  y (N,Cout,Ho,Wo) =
void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y, void* ws,
                    size_t ws_bytes, cudaStream_t stream);
// w  dy (N,Cout,Ho,Wo)  dx (N,C,H,W) contiguous = or += (mode)
void conv2d_backward_input(const Conv2dShape& s, const float* w, const float* dy, float* dx, GradientMode mode,
                           void* ws, size_t ws_bytes, cudaStream_t stream);
// x  dy  dw (Cout,C/G,KH,KW) = or += (mode)
void conv2d_backward_weight(const Conv2dShape& s, const float* x, const float* dy, float* dw, GradientMode mode,
                            void* ws, size_t ws_bytes, cudaStream_t stream);
// dy  db (Cout) = or += sum over N, Ho, Wo (deterministic, kernels/bias_cuda.h)
void conv2d_backward_bias(const Conv2dShape& s, const float* dy, float* db, GradientMode mode, cudaStream_t stream);

}  // namespace detnas::kernels::cuda
