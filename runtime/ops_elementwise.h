// Autograd-aware elementwise ops on tensors: relu, add, sum, mul_scalar.
#pragma once
#include "runtime/tensor.h"

namespace detnas::rt::ops {

Tensor relu(const Tensor& x);
Tensor add(const Tensor& a, const Tensor& b);    // same shapes
Tensor mul_scalar(const Tensor& x, float alpha);
Tensor sum(const Tensor& x);                     // scalar; double accumulation

}  // namespace detnas::rt::ops
