// Choice units. Weight init per DETNAS.md through ConvInit::FanIn (depthwise
// convs get std 1 because their fan-in per group is 1).
#include "nn/blocks.h"

#include "runtime/ops_elementwise.h"
#include "runtime/ops_shape.h"

namespace detnas::nn {

Branch::Branch(const std::vector<Step>& steps, Rng& rng, float bn_momentum) {
  for (const Step& s : steps) {
    Conv2d* c = register_module(s.conv_name, std::make_unique<Conv2d>(s.conv, rng));
    BatchNorm2d* b = register_module(s.bn_name, std::make_unique<BatchNorm2d>(s.conv.out, bn_momentum));
    layers_.push_back({c, b});
    acts_.push_back(s.act);
  }
}

rt::Tensor Branch::forward(const rt::Tensor& x) {
  rt::Tensor y = x;
  for (size_t i = 0; i < layers_.size(); ++i) y = conv_bn_act(*layers_[i].first, *layers_[i].second, acts_[i], y);
  return y;
}

static ConvOptions pw(int64_t in, int64_t out) {
  ConvOptions o;
  o.in = in;
  o.out = out;
  o.kernel = 1;
  o.padding = 0;
  return o;
}
static ConvOptions dw(int64_t c, int64_t k, int64_t stride) {
  ConvOptions o;
  o.in = o.out = o.groups = c;
  o.kernel = k;
  o.stride = stride;
  o.padding = k / 2;
  return o;
}

ChoiceUnit::ChoiceUnit(const BlockSpec& spec, int choice, ChannelSplit split, Rng& rng, float bn_momentum)
    : spec_(spec), choice_(choice), split_(split) {
  const int64_t cin = spec.main_in, mid = spec.mid_channels, cout = spec.main_out, s = spec.stride;
  std::vector<Branch::Step> steps;
  if (choice_kind(choice) == BlockKind::Shuffle) {
    const int64_t k = choice_kernel(choice);
    steps = {{"pw1", "bn1", pw(cin, mid), Act::Relu},
             {"dw", "bn2", dw(mid, k, s), Act::None},
             {"pw2", "bn3", pw(mid, cout), Act::Relu}};
  } else {
    steps = {{"dw1", "bn1", dw(cin, 3, s), Act::None}, {"pw1", "bn2", pw(cin, mid), Act::Relu},
             {"dw2", "bn3", dw(mid, 3, 1), Act::None}, {"pw2", "bn4", pw(mid, mid), Act::Relu},
             {"dw3", "bn5", dw(mid, 3, 1), Act::None}, {"pw3", "bn6", pw(mid, cout), Act::Relu}};
  }
  main_ = register_module("main", std::make_unique<Branch>(steps, rng, bn_momentum));
  if (spec.stride == 2) {
    const int64_t c = spec.proj_channels, k = choice_kernel(choice);
    std::vector<Branch::Step> p = {{"dw", "bn1", dw(c, k, 2), Act::None}, {"pw", "bn2", pw(c, c), Act::Relu}};
    proj_ = register_module("proj", std::make_unique<Branch>(p, rng, bn_momentum));
  }
}

rt::Tensor ChoiceUnit::forward(const rt::Tensor& x) {
  DETNAS_CHECK(x.dim() == 4 && x.size(1) == spec_.in_channels, "block ", spec_.index, " (stage ", spec_.stage + 1,
               "): expected ", spec_.in_channels, " input channels, got shape ", rt::shape_str(x.shape()));
  if (spec_.stride == 2) return rt::ops::concat({proj_->forward(x), main_->forward(x)});
  const int64_t half = spec_.in_channels / 2;
  rt::Tensor pass, rest;
  if (split_ == ChannelSplit::ShuffleHalve) {
    rt::Tensor s = rt::ops::channel_shuffle(x, 2);
    pass = s.narrow(1, 0, half);
    rest = s.narrow(1, half, half);
  } else {
    auto eo = rt::ops::split_even_odd(x);
    pass = eo.first;
    rest = eo.second;
  }
  return rt::ops::concat({pass, main_->forward(rest)});
}

}  // namespace detnas::nn
