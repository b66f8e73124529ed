// Feature pyramid of RetinaNet (DETNAS.md "Detectors"): C3..C5 -> lateral 1x1
// convs, top-down nearest upsampling (to the lateral's exact size) and sum, 3x3
// output convs -> P3..P5; P6 = conv3x3 s2 on the P5 output (maskrcnn-benchmark's
// LastLevelP6P7 with in == out channels), P7 = conv3x3 s2 on ReLU(P6). No norm.
// Init as maskrcnn-benchmark's FPN: kaiming-uniform with a = 1 (U(-b, b),
// b = sqrt(3/fan_in)), bias 0. Also the top-down pathway both FPNs share.
// Not here: the FPN with BN of the two-stage detector, the heads (detect/retinanet.h).
#pragma once
#include <cstdint>
#include <vector>

#include "nn/layers.h"
#include "runtime/ops_elementwise.h"
#include "runtime/ops_shape.h"

namespace detnas::det {

struct RetinaFpnOptions {
  std::vector<int64_t> in_channels;  // widths of C3, C4, C5
  int64_t channels = 256;            // width of every P level
};

// Parameter names (below the owner's prefix): lateral{3,4,5}.*, output{3,4,5}.*, p6.*, p7.*.
class RetinaFpn : public nn::Module {
 public:
  RetinaFpn(const RetinaFpnOptions& o, Rng& rng);
  // {C3, C4, C5} -> {P3, P4, P5, P6, P7}.
  std::vector<rt::Tensor> forward(const std::vector<rt::Tensor>& c3to5) const;
  const RetinaFpnOptions& options() const { return o_; }

 private:
  RetinaFpnOptions o_;
  std::vector<nn::Conv2d*> lateral_, output_;
  nn::Conv2d* p6_ = nullptr;
  nn::Conv2d* p7_ = nullptr;
};

// Top-down pathway over c (C_0..C_top, finest first) with one lateral and one
// output module per level (Conv2d or ConvBn): inner = lateral_top(C_top), then
// down the levels inner = lateral_l(C_l) + upsample_nearest(inner, to C_l's lateral
// size); P_l = output_l(inner). Returns {P_0..P_top}.
template <class Conv>
std::vector<rt::Tensor> fpn_top_down(const std::vector<Conv*>& lateral, const std::vector<Conv*>& output,
                                     const std::vector<rt::Tensor>& c) {
  const size_t top = c.size() - 1;
  std::vector<rt::Tensor> p(c.size());
  rt::Tensor inner = lateral[top]->forward(c[top]);
  p[top] = output[top]->forward(inner);
  for (size_t l = top; l-- > 0;) {
    rt::Tensor lat = lateral[l]->forward(c[l]);
    rt::Tensor up = rt::ops::upsample_nearest(inner, lat.size(2), lat.size(3));
    inner = rt::ops::add(lat, up);
    p[l] = output[l]->forward(inner);
  }
  return p;
}

// Fills a conv weight with kaiming_uniform_(a=1): U(-sqrt(3/fan_in), sqrt(3/fan_in)).
void kaiming_uniform_a1(rt::Tensor& weight, Rng& rng);

}  // namespace detnas::det
