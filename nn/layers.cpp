// Basic layers.
#include "nn/layers.h"

#include <cmath>
#include <cstdlib>
#include <string>

#include "runtime/autograd.h"
#include "runtime/ops_conv.h"
#include "runtime/ops_elementwise.h"

namespace detnas::nn {

static void fill_normal(rt::Tensor& t, double std, Rng& rng) {
  float* p = t.data();
  for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = float(rng.normal() * std);
}

Conv2d::Conv2d(const ConvOptions& o, Rng& rng) : o_(o) {
  DETNAS_CHECK(o.in > 0 && o.out > 0 && o.kernel > 0 && o.groups > 0 && o.in % o.groups == 0 && o.out % o.groups == 0,
               "Conv2d: bad options in=", o.in, " out=", o.out, " kernel=", o.kernel, " groups=", o.groups);
  if (o_.padding < 0) o_.padding = o.kernel / 2;
  const int64_t cin_g = o.in / o.groups;
  rt::Tensor w = rt::Tensor::zeros({o.out, cin_g, o.kernel, o.kernel});
  if (o.init == ConvInit::FanIn)
    fill_normal(w, 1.0 / double(cin_g), rng);
  else if (o.init == ConvInit::FixedStd)
    fill_normal(w, o.init_std, rng);
  weight = register_param("weight", w, ParamKind::ConvWeight);
  if (o.bias == Bias::With) bias = register_param("bias", rt::Tensor::full({o.out}, o.bias_init), ParamKind::Bias);
}

rt::Tensor Conv2d::forward(const rt::Tensor& x) const {
  return rt::ops::conv2d(x, weight, bias, rt::ops::Conv2dParams{o_.stride, o_.padding, o_.groups});
}

BatchNorm2d::BatchNorm2d(int64_t channels, float momentum, float eps) : momentum_(momentum), eps_(eps) {
  weight = register_param("weight", rt::Tensor::full({channels}, 1.0f), ParamKind::NormWeight);
  bias = register_param("bias", rt::Tensor::full({channels}, 1e-4f), ParamKind::NormBias);
  running_mean = register_buffer("running_mean", rt::Tensor::zeros({channels}));
  running_var = register_buffer("running_var", rt::Tensor::full({channels}, 1.0f));
}

rt::Tensor BatchNorm2d::forward(const rt::Tensor& x) {
  rt::ops::BatchNormMode m = mode() == Mode::Train  ? rt::ops::BatchNormMode::Train
                             : mode() == Mode::Eval ? rt::ops::BatchNormMode::Eval
                                                    : rt::ops::BatchNormMode::Recalibrate;
  rt::ops::BatchNormParams p;
  p.eps = eps_;
  p.momentum = momentum_;
  p.sync = sync_;
  return rt::ops::batch_norm(x, weight, bias, running_mean, running_var, m, p, &recal_batches_);
}

void BatchNorm2d::reset_running_stats() {
  running_mean.fill_(0.0f);
  running_var.fill_(1.0f);
  recal_batches_ = 0;
}

void reset_bn_stats(Module& root) {
  root.apply([](Module& m) {
    if (auto* bn = dynamic_cast<BatchNorm2d*>(&m)) bn->reset_running_stats();
  });
}

void set_bn_momentum(Module& root, float momentum) {
  root.apply([momentum](Module& m) {
    if (auto* bn = dynamic_cast<BatchNorm2d*>(&m)) bn->set_momentum(momentum);
  });
}

void set_sync_bn(Module& root, bool on) {
  root.apply([on](Module& m) {
    if (auto* bn = dynamic_cast<BatchNorm2d*>(&m)) bn->set_sync(on);
  });
}

Linear::Linear(int64_t in, int64_t out, Bias b, Rng& rng, float init_std) {
  rt::Tensor w = rt::Tensor::zeros({out, in});
  fill_normal(w, init_std, rng);
  weight = register_param("weight", w, ParamKind::LinearWeight);
  if (b == Bias::With) bias = register_param("bias", rt::Tensor::zeros({out}), ParamKind::Bias);
}

rt::Tensor Linear::forward(const rt::Tensor& x) const { return rt::ops::linear(x, weight, bias); }

ConvBn::ConvBn(const ConvOptions& o, Act act, Rng& rng, float bn_momentum) : act_(act) {
  conv = register_module("conv", std::make_unique<Conv2d>(o, rng));
  bn = register_module("bn", std::make_unique<BatchNorm2d>(o.out, bn_momentum));
}

// DETNAS_BN_FOLD=0 keeps conv -> BN -> ReLU in inference too (read once).
static bool fold_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("DETNAS_BN_FOLD");
    return !(e && std::string(e) == "0");
  }();
  return on;
}

rt::Tensor conv_bn_act(const Conv2d& conv, BatchNorm2d& bn, Act act, const rt::Tensor& x) {
  if (fold_enabled() && bn.mode() == Mode::Eval && !rt::grad_enabled() && x.device() == rt::Device::CPU &&
      conv.weight.device() == rt::Device::CPU) {
    const auto [w, b] =
        rt::ops::fold_batch_norm(conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps());
    const ConvOptions& o = conv.options();
    rt::Tensor y = rt::ops::conv2d(x, w, b, rt::ops::Conv2dParams{o.stride, o.padding, o.groups});
    return act == Act::Relu ? rt::ops::relu_(y) : y;
  }
  rt::Tensor y = bn.forward(conv.forward(x));
  return act == Act::Relu ? rt::ops::relu(y) : y;
}

rt::Tensor ConvBn::forward(const rt::Tensor& x) { return conv_bn_act(*conv, *bn, act_, x); }

}  // namespace detnas::nn
