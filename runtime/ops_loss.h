// Autograd-aware loss ops: softmax cross-entropy (label smoothing, ignore label),
// sigmoid focal loss, smooth L1, BCE with logits, generalized IoU loss; plus the
// non-autograd top-1 accuracy. Losses are reduced deterministically (fixed
// order, double accumulation); a reduced loss is a 0-d tensor.
// NaN or Inf in a loss input is an error naming the op and the first bad index.
// Weights are constants: an op fails if a weight tensor requires grad.
// Not here: the detection-level loss bookkeeping (matching, normalisation by
// the number of foreground anchors) that lives in detect/.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/loss.h"
#include "runtime/tensor.h"

namespace detnas::rt::ops {

using detnas::FocalParams;
using detnas::Reduction;
using detnas::kernels::kIgnoreLabel;

// logits (N,K), labels (N) in [0,K) or kIgnoreLabel (-1: contributes nothing
// and is excluded from the Mean count). Target = (1-eps)*onehot + eps/K.
// None gives per-row losses (N) (0 for ignored rows); Mean over no counted row
// gives 0 (with zero gradient). Gradient w.r.t. logits.
Tensor softmax_cross_entropy(const Tensor& logits, const std::vector<int64_t>& labels, float label_smoothing,
                             Reduction reduction);

// logits (N,K), targets (N,K) (0/1, or soft in [0,1]), row_weight (N) or
// undefined: each row's losses are scaled by its weight (0 = ignored row, e.g.
// anchors between the IoU thresholds). Mean divides by N*K (torchvision).
// Gradient w.r.t. logits; targets must not require grad.
Tensor sigmoid_focal_loss(const Tensor& logits, const Tensor& targets, FocalParams params, Reduction reduction,
                          const Tensor& row_weight = Tensor());

// input, target (any equal shapes), beta >= 0 (0 = L1), weight (same shape) or
// undefined. Mean divides by the element count. Gradients w.r.t. input and target.
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, float beta, Reduction reduction,
                      const Tensor& weight = Tensor());

// logits, targets (equal shapes), weight (same shape) or undefined. Mean divides
// by the element count. Gradients w.r.t. logits and targets.
Tensor bce_with_logits(const Tensor& logits, const Tensor& targets, Reduction reduction,
                       const Tensor& weight = Tensor());

// boxes1, boxes2 (N,4) x1,y1,x2,y2, element-wise pairs:
// loss_i = 1 - (I/(U+eps) - (C-U)/(C+eps)). None gives (N); Mean divides by N.
// Gradients w.r.t. both boxes.
Tensor giou_loss(const Tensor& boxes1, const Tensor& boxes2, Reduction reduction, float eps = 1e-7f);

// Fraction of non-ignored rows whose first arg-max equals the label (0 if no
// row is counted). No autograd.
float accuracy_top1(const Tensor& logits, const std::vector<int64_t>& labels);

}  // namespace detnas::rt::ops
