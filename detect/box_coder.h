// Box coder (torchvision BoxCoder, golden README "box_coder"): regression targets
// of ground-truth boxes relative to anchors/proposals and the inverse, with
// weights (wx, wy, ww, wh) and dw/dh clipped at bbox_xform_clip = log(1000/16)
// before exp when decoding. Per-box math: kernels/box_coder.h.
// Not differentiable: targets are constants of the loss and decoding happens at
// inference. Not here: clipping boxes to the image (postprocess).
#pragma once
#include <cstdint>

#include "kernels/box_coder.h"
#include "runtime/tensor.h"

namespace detnas::det {

struct BoxCoderWeights {
  float wx = 1, wy = 1, ww = 1, wh = 1;
};

class BoxCoder {
 public:
  // RetinaNet and the Fast R-CNN head use (10, 10, 5, 5); the RPN (1, 1, 1, 1).
  explicit BoxCoder(BoxCoderWeights w = {}, double bbox_xform_clip = 4.135166556742356);

  // anchors (n,4), gt (n,4) -> codes (n,4) =
  void encode(int64_t n, const float* anchors, const float* gt, float* codes) const;
  // anchors (n,4), codes (n,4) -> boxes (n,4) =
  void decode(int64_t n, const float* anchors, const float* codes, float* boxes) const;

  // Tensor forms: (N,4) and (N,4) -> (N,4). Shape errors name both shapes.
  rt::Tensor encode(const rt::Tensor& anchors, const rt::Tensor& gt) const;
  rt::Tensor decode(const rt::Tensor& anchors, const rt::Tensor& codes) const;

  const kernels::BoxCoderParams& params() const { return p_; }

 private:
  kernels::BoxCoderParams p_;
};

}  // namespace detnas::det
