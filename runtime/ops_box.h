// Detection ops on tensors: RoIAlign (autograd-aware w.r.t. its input), pairwise
// box IoU / generalized IoU matrices, NMS and per-class (batched) NMS.
// Boxes are (x1, y1, x2, y2) rows; all semantics follow torchvision as pinned by
// the golden README. The IoU matrices and NMS are not differentiable: they take
// tensors and return plain data (indices as std::vector<int64_t>).
// Not here: the kernels (kernels/roi_align.h, kernels/box_ops.h), anchors,
// matching and box coding (detect/).
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/roi_align.h"
#include "runtime/tensor.h"

namespace detnas::rt::ops {

using kernels::RoiAlignMode;
using kernels::RoiAlignParams;

// input (N,C,H,W), boxes (K,5) rows (batch_index, x1, y1, x2, y2) in image
// coordinates -> (K,C,PH,PW). Gradient flows to `input` only. Errors on a wrong
// boxes shape, a batch index that is not an integer in [0, N), non-finite boxes,
// H or W == 0, PH or PW < 1, or a non-positive spatial_scale.
Tensor roi_align(const Tensor& input, const Tensor& boxes, const RoiAlignParams& p);

// a (N,4), b (M,4) -> (N,M). No gradient. NaN coordinates propagate to NaN entries.
Tensor box_iou(const Tensor& a, const Tensor& b);
Tensor generalized_box_iou(const Tensor& a, const Tensor& b);

// boxes (K,4), scores (K) -> kept indices in decreasing score order (ties by
// increasing index); a box is suppressed by a kept box when IoU > iou_threshold.
// K == 0 gives an empty result; NaN/inf boxes or scores are errors.
std::vector<int64_t> nms(const Tensor& boxes, const Tensor& scores, float iou_threshold);
// As nms, independently per class; classes.size() == K.
std::vector<int64_t> batched_nms(const Tensor& boxes, const Tensor& scores, const std::vector<int64_t>& classes,
                                 float iou_threshold);

}  // namespace detnas::rt::ops
