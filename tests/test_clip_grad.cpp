// nn::Sgd::clip_grad_norm: the global L2 norm over every parameter's gradient
// (gradients made through the ops: d/dw sum(w * c) = c), scaling to max_norm
// when above it, untouched when below, parameters without a gradient left out.
#include <doctest/doctest.h>

#include <cmath>

#include "nn/optimizer.h"
#include "runtime/autograd.h"
#include "runtime/ops_elementwise.h"

using namespace detnas;

TEST_CASE("sgd: clip_grad_norm computes the global norm and rescales above the limit") {
  rt::Tensor w1 = rt::Tensor::full({3}, 1.0f), w2 = rt::Tensor::full({2, 2}, 2.0f), w3 = rt::Tensor::full({2}, 0.5f);
  w1.requires_grad_();
  w2.requires_grad_();
  w3.requires_grad_();
  const std::vector<float> c1 = {3, 0, -4}, c2 = {1, 2, 2, -1};  // |c1|^2 = 25, |c2|^2 = 10
  auto run = [&] {
    rt::Tensor l = rt::ops::add(rt::ops::sum(rt::ops::mul(w1, rt::Tensor::from_vector({3}, c1))),
                                rt::ops::sum(rt::ops::mul(w2, rt::Tensor::from_vector({2, 2}, c2))));
    rt::backward(l);  // w3 gets no gradient
  };
  std::vector<nn::ParamRef> ps = {{"w1", w1, nn::ParamKind::ConvWeight},
                                  {"w2", w2, nn::ParamKind::ConvWeight},
                                  {"w3", w3, nn::ParamKind::ConvWeight}};
  nn::Sgd sgd(ps, nn::SgdConfig::detection());
  run();
  CHECK(sgd.clip_grad_norm(0) == doctest::Approx(std::sqrt(35.0)).epsilon(1e-12));
  CHECK(w1.grad().to_vector() == c1);  // max_norm 0: no change
  CHECK(sgd.clip_grad_norm(100) == doctest::Approx(std::sqrt(35.0)).epsilon(1e-12));
  CHECK(w2.grad().to_vector() == c2);  // below the limit: no change
  CHECK(sgd.clip_grad_norm(1.0) == doctest::Approx(std::sqrt(35.0)).epsilon(1e-12));
  const double s = 1.0 / std::sqrt(35.0);
  for (size_t i = 0; i < 3; ++i) CHECK(w1.grad().to_vector()[i] == doctest::Approx(c1[i] * s).epsilon(1e-6));
  for (size_t i = 0; i < 4; ++i) CHECK(w2.grad().to_vector()[i] == doctest::Approx(c2[i] * s).epsilon(1e-6));
  CHECK(sgd.clip_grad_norm(0) == doctest::Approx(1.0).epsilon(1e-6));
  CHECK_FALSE(w3.grad().defined());
}
