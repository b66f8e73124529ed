// RetinaNet FPN: composition of conv2d, upsample_nearest, add and relu ops.
#include "detect/fpn.h"

#include <cmath>
#include <functional>
#include <memory>
#include <string>

#include "runtime/ops_elementwise.h"
#include "runtime/ops_shape.h"

namespace detnas::det {

void kaiming_uniform_a1(rt::Tensor& weight, Rng& rng) {
  DETNAS_CHECK(weight.dim() == 4, "kaiming_uniform_a1: expected a conv weight, got ", rt::shape_str(weight.shape()));
  const int64_t fan_in = weight.size(1) * weight.size(2) * weight.size(3);
  const double bound = std::sqrt(3.0 / double(fan_in));
  float* p = weight.data();
  for (int64_t i = 0, n = weight.numel(); i < n; ++i) p[i] = float(rng.uniform(-bound, bound));
}

static nn::Conv2d* make_conv(const std::string& name, int64_t in, int64_t out, int64_t k, int64_t stride, Rng& rng,
                             const std::function<nn::Conv2d*(const std::string&, std::unique_ptr<nn::Conv2d>)>& reg) {
  nn::ConvOptions co;
  co.in = in;
  co.out = out;
  co.kernel = k;
  co.stride = stride;
  co.bias = nn::Bias::With;
  co.init = nn::ConvInit::Zeros;
  auto conv = std::make_unique<nn::Conv2d>(co, rng);
  kaiming_uniform_a1(conv->weight, rng);
  return reg(name, std::move(conv));
}

RetinaFpn::RetinaFpn(const RetinaFpnOptions& o, Rng& rng) : o_(o) {
  DETNAS_CHECK(o.in_channels.size() == 3, "RetinaFpn: expected 3 input widths (C3..C5), got ", o.in_channels.size());
  DETNAS_CHECK(o.channels > 0, "RetinaFpn: channels must be positive, got ", o.channels);
  auto reg = [this](const std::string& n, std::unique_ptr<nn::Conv2d> m) { return register_module(n, std::move(m)); };
  for (int l = 0; l < 3; ++l)
    lateral_.push_back(make_conv("lateral" + std::to_string(l + 3), o.in_channels[l], o.channels, 1, 1, rng, reg));
  for (int l = 0; l < 3; ++l)
    output_.push_back(make_conv("output" + std::to_string(l + 3), o.channels, o.channels, 3, 1, rng, reg));
  p6_ = make_conv("p6", o.channels, o.channels, 3, 2, rng, reg);
  p7_ = make_conv("p7", o.channels, o.channels, 3, 2, rng, reg);
}

std::vector<rt::Tensor> RetinaFpn::forward(const std::vector<rt::Tensor>& c) const {
  DETNAS_CHECK(c.size() == 3, "RetinaFpn: expected 3 feature maps (C3..C5), got ", c.size());
  for (int l = 0; l < 3; ++l)
    DETNAS_CHECK(c[l].dim() == 4 && c[l].size(1) == o_.in_channels[l], "RetinaFpn: C", l + 3, " has shape ",
                 rt::shape_str(c[l].shape()), ", expected ", o_.in_channels[l], " channels");
  std::vector<rt::Tensor> p = fpn_top_down(lateral_, output_, c);
  p.push_back(p6_->forward(p[2]));
  p.push_back(p7_->forward(rt::ops::relu(p[3])));
  return p;
}

}  // namespace detnas::det
