// Winograd F(4x4,3x3) dense 3x3 convolution on the CPU: forward and backward-data
// for stride 1, padding 1, groups 1 (output plane = input plane). Each 4x4 output
// tile reads a 6x6 input patch; the 36 transformed frequencies are multiplied as
// 36 GEMMs (Cout,C) x (C,tiles) through OpenBLAS, over blocks of tiles so the
// transformed data stays small. Every output element is computed by one thread
// in a fixed order, so results do not depend on the thread count.
// Accuracy: float error about 10x that of im2col + GEMM (head conv, 256 channels:
// max |err| / sum|w x| 2.4e-6 vs 7.8e-8), still within the 4*sqrt(K)*2^-24 bound
// for a K-term reduction. A NaN or Inf in the input turns the outputs of every
// 4x4 tile whose 6x6 patch holds it into NaN (not only the 3x3 window's outputs).
// Not here: the dispatch (kernels/conv2d_cpu.cpp decides when this path is used),
// backward-weight (stays im2col + GEMM), other strides/paddings/groups.
#pragma once
#include <cstdint>

#include "kernels/common.h"
#include "kernels/conv2d.h"

namespace detnas::kernels::cpu {

// The shapes this kernel handles: KH == KW == 3, S == 1, P == 1, G == 1.
bool winograd_applicable(const Conv2dShape& s);
// applicable, enabled (winograd_enabled) and large enough to be faster than
// im2col + GEMM on this machine (see the heuristic in winograd_cpu.cpp).
bool winograd_preferred(const Conv2dShape& s);
// Whether conv2d_* may take the Winograd path: false when the environment variable
// DETNAS_CONV_WINOGRAD is "0" at first use; set_winograd_enabled overrides it
// (bench and tests compare both paths). Not synchronised: set it between calls.
bool winograd_enabled();
void set_winograd_enabled(bool on);

// Scratch elements (of T) that winograd_forward / winograd_backward_input need.
int64_t winograd_workspace_size(const Conv2dShape& s);

// x (N,C,H,W) batch stride s.x_batch_stride  w (Cout,C,3,3)  b (Cout) or null
// y (N,Cout,H,W) =.  Requires winograd_applicable(s).
template <typename T>
void winograd_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y, T* ws);
// w (Cout,C,3,3)  dy (N,Cout,H,W)  dx (N,C,H,W) contiguous, = or += (mode).
template <typename T>
void winograd_backward_input(const Conv2dShape& s, const T* w, const T* dy, T* dx, GradientMode mode, T* ws);

}  // namespace detnas::kernels::cpu
