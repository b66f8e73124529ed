// Autograd-aware elementwise ops on tensors: relu, add, mul_scalar, mul, sum,
// dropout. Inputs may be strided (made contiguous first); outputs live on the
// inputs' device, and inputs on different devices fail naming the op.
// Not here: the kernels (kernels/elementwise.h), device dispatch (runtime/backend.h).
#pragma once
#include "runtime/rng.h"
#include "runtime/tensor.h"

namespace detnas::rt::ops {

Tensor relu(const Tensor& x);
// x <- max(x, 0) in place, for inference: x must be contiguous and must not
// take part in autograd (wants_grad false: checked). Returns x.
Tensor& relu_(Tensor& x);
Tensor add(const Tensor& a, const Tensor& b);  // same shapes
Tensor mul_scalar(const Tensor& x, float alpha);
Tensor mul(const Tensor& a, const Tensor& b);  // elementwise product, same shapes
Tensor sum(const Tensor& x);                   // scalar; double accumulation
// Inverted dropout: zeroes each element with probability p and scales the rest
// by 1/(1-p); the mask comes from `rng`: one rng.uniform() per element in flat
// order, dropped when < p (data-parallel ranks rely on this order:
// nn::Backbone::set_batch_part). p == 0 draws nothing. `mask_out` (debug dumps):
// when given, receives the host mask (0 or 1/(1-p), x's shape; all 1 for p == 0).
Tensor dropout(const Tensor& x, float p, Rng& rng, Tensor* mask_out = nullptr);

}  // namespace detnas::rt::ops
