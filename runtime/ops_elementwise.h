// Autograd-aware elementwise ops on tensors: relu, add, sum, mul_scalar.
#pragma once
#include "runtime/rng.h"
#include "runtime/tensor.h"

namespace detnas::rt::ops {

Tensor relu(const Tensor& x);
Tensor add(const Tensor& a, const Tensor& b);    // same shapes
Tensor mul_scalar(const Tensor& x, float alpha);
Tensor mul(const Tensor& a, const Tensor& b);    // elementwise product, same shapes
Tensor sum(const Tensor& x);                     // scalar; double accumulation
// Inverted dropout: zeroes each element with probability p and scales the rest
// by 1/(1-p); the mask comes from `rng` (deterministic per stream).
Tensor dropout(const Tensor& x, float p, Rng& rng);

}  // namespace detnas::rt::ops
