// Feature pyramid of the two-stage detector (DETNAS.md "FPN Faster R-CNN"):
// C2..C5 -> lateral 1x1 conv + BN, top-down nearest upsampling (to the lateral's
// exact size) and sum, 3x3 output conv + BN -> P2..P5; P6 = max-pool kernel 1
// stride 2 of P5 (maskrcnn-benchmark LastLevelMaxPool), used by the RPN only.
// Every FPN conv is followed by BN (DetNAS trains the FPN with BN), so the convs
// have no bias; conv weights kaiming-uniform a = 1 as maskrcnn-benchmark's FPN.
// Not here: RetinaNet's FPN without norm (detect/fpn.h), the heads.
#pragma once
#include <cstdint>
#include <vector>

#include "nn/layers.h"

namespace detnas::det {

struct FpnBnOptions {
  std::vector<int64_t> in_channels;  // widths of C2, C3, C4, C5
  int64_t channels = 256;            // width of every P level
  float bn_momentum = 0.1f;
};

// Parameter names (below the owner's prefix): lateral{2..5}.{conv,bn}.*, output{2..5}.{conv,bn}.*.
class FpnBn : public nn::Module {
 public:
  FpnBn(const FpnBnOptions& o, Rng& rng);
  // {C2, C3, C4, C5} -> {P2, P3, P4, P5, P6}. Uses the module mode for the BNs.
  std::vector<rt::Tensor> forward(const std::vector<rt::Tensor>& c2to5);
  const FpnBnOptions& options() const { return o_; }

 private:
  FpnBnOptions o_;
  std::vector<nn::ConvBn*> lateral_, output_;
};

}  // namespace detnas::det
