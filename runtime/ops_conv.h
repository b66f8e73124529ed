// Autograd-aware convolution and linear ops on tensors.
// conv2d dispatches to the pointwise GEMM path (1x1, stride 1, pad 0, groups 1),
// the direct depthwise kernel (groups == Cin == Cout, weight (C,1,K,K)) or
// im2col + GEMM; an input that is contiguous within each sample (e.g. the
// ShuffleNetV2 channel split: narrow along dim 1) is read in place through its
// batch stride, anything else is made contiguous first.
// Not here: the kernels (kernels/conv2d.h, kernels/dwconv.h), modules (nn/).
#pragma once
#include <cstdint>

#include "runtime/tensor.h"

namespace detnas::rt::ops {

struct Conv2dParams {
  int64_t stride = 1, padding = 0, groups = 1;
};

// x (N,Cin,H,W)  w (Cout,Cin/groups,KH,KW)  bias (Cout) or undefined  ->  (N,Cout,Ho,Wo),
// Ho = (H + 2*padding - KH) / stride + 1. Cross-correlation with zero padding (as torch).
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p);

// x (..., Cin)  w (Cout,Cin)  bias (Cout) or undefined  ->  (..., Cout) = x w^T + bias.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias);

}  // namespace detnas::rt::ops
