// Optimizer ops behind nn::Sgd: the SGD-with-momentum update, the sum of
// squares of a gradient and its in-place scaling (step, clip_grad_norm). They
// work in place on parameters, gradients and momentum buffers and are never
// recorded on the tape. Each runs the kernel of its tensors' device
// (runtime/backend.h); tensors on different devices fail naming the op.
// Not here: which parameters are stepped, per-kind learning-rate multipliers and
// weight decay, momentum-buffer bookkeeping (nn/optimizer.h).
#pragma once
#include "kernels/sgd.h"
#include "runtime/tensor.h"

namespace detnas::rt::ops {

// param (contiguous) updated in place from grad (same shape, contiguous);
// momentum_buf (same shape, contiguous) = the new buffer, or undefined when
// params.momentum == 0 (kernels/sgd.h: torch.optim.SGD semantics).
void sgd_update_(Tensor& param, const Tensor& grad, Tensor& momentum_buf, const SgdParams& params);
// Sum of x[i]^2, squared and added in double, in an order fixed by x.numel()
// alone: the same value on any thread count and run to run (x contiguous).
double sum_squares(const Tensor& x);
// x (contiguous) *= s, in place.
void scale_(Tensor& x, float s);

}  // namespace detnas::rt::ops
