// FPN with BN: composition of the ConvBn module, upsample_nearest, add and max_pool2d.
#include "detect/fpn_bn.h"

#include <memory>
#include <string>

#include "detect/fpn.h"
#include "runtime/ops_shape.h"

namespace detnas::det {

static std::unique_ptr<nn::ConvBn> make_conv_bn(int64_t in, int64_t out, int64_t k, float momentum, Rng& rng) {
  nn::ConvOptions co;
  co.in = in;
  co.out = out;
  co.kernel = k;
  co.bias = nn::Bias::None;
  co.init = nn::ConvInit::Zeros;
  auto m = std::make_unique<nn::ConvBn>(co, nn::Act::None, rng, momentum);
  kaiming_uniform_a1(m->conv->weight, rng);
  return m;
}

FpnBn::FpnBn(const FpnBnOptions& o, Rng& rng) : o_(o) {
  DETNAS_CHECK(o.in_channels.size() == 4, "FpnBn: expected 4 input widths (C2..C5), got ", o.in_channels.size());
  DETNAS_CHECK(o.channels > 0, "FpnBn: channels must be positive, got ", o.channels);
  for (size_t l = 0; l < 4; ++l)
    DETNAS_CHECK(o.in_channels[l] > 0, "FpnBn: C", l + 2, " width must be positive, got ", o.in_channels[l]);
  for (int l = 0; l < 4; ++l)
    lateral_.push_back(register_module("lateral" + std::to_string(l + 2),
                                       make_conv_bn(o.in_channels[size_t(l)], o.channels, 1, o.bn_momentum, rng)));
  for (int l = 0; l < 4; ++l)
    output_.push_back(
        register_module("output" + std::to_string(l + 2), make_conv_bn(o.channels, o.channels, 3, o.bn_momentum, rng)));
}

std::vector<rt::Tensor> FpnBn::forward(const std::vector<rt::Tensor>& c) {
  DETNAS_CHECK(c.size() == 4, "FpnBn: expected 4 feature maps (C2..C5), got ", c.size());
  for (size_t l = 0; l < 4; ++l)
    DETNAS_CHECK(c[l].dim() == 4 && c[l].size(1) == o_.in_channels[l], "FpnBn: C", l + 2, " has shape ",
                 rt::shape_str(c[l].shape()), ", expected ", o_.in_channels[l], " channels");
  std::vector<rt::Tensor> p = fpn_top_down(lateral_, output_, c);
  p.push_back(rt::ops::max_pool2d(p[3], {1, 2, 0}));
  return p;
}

}  // namespace detnas::det
