// RoI heads of FPN Faster R-CNN (DETNAS.md "FPN Faster R-CNN"): FPN level
// assignment of RoIs, multi-scale RoIAlign (7x7, legacy non-aligned, sampling
// ratio 2, spatial scale 1/stride) over P2..P5, the 4conv1fc box head with BN
// (4 x (conv3x3 C + BN + ReLU) -> FC fc_dim + ReLU -> class logits over K+1 and
// class-specific deltas), the training targets (IoU matching 0.5, 512 RoIs per
// image at 0.25 positive), the loss (softmax cross-entropy mean over the sampled
// RoIs + smooth L1 beta 1 on the positive RoIs' class deltas / number of sampled
// RoIs, as torchvision fastrcnn_loss) and inference post-processing.
// Class index convention: 0 = background, dataset label k (0..K-1) is class k+1
// (torchvision / maskrcnn-benchmark); detections report label k again.
// Init as maskrcnn-benchmark: head convs N(0, 0.01) without bias (BN follows),
// FC kaiming-uniform a = 1 with bias 0, class logits N(0, 0.01), deltas
// N(0, 0.001), biases 0.
// Not here: the RPN and proposal generation (detect/rpn.h), the whole detector.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "detect/box_coder.h"
#include "detect/detector.h"
#include "detect/matcher.h"
#include "detect/postprocess.h"
#include "detect/rpn.h"
#include "nn/layers.h"
#include "runtime/ops_box.h"

namespace detnas::det {

struct RoiHeadsOptions {
  MatcherParams matcher{0.5f, 0.5f, LowQualityMatches::Drop};
  int64_t batch_size_per_image = 512;
  float positive_fraction = 0.25f;
  BoxCoderWeights box_weights{10, 10, 5, 5};
  float smooth_l1_beta = 1.0f;
  rt::ops::RoiAlignParams pooler{7, 7, 1.0f, 2, rt::ops::RoiAlignMode::Legacy};  // spatial_scale set per level
  float score_thresh = 0.05f;
  float nms_thresh = 0.5f;
  int64_t detections_per_image = 100;
  float min_size = 1e-2f;  // torchvision's RoIHeads drop of tiny detections
};

// FPN level of a box (torchvision LevelMapper, canonical 224 at level 4):
// floor(4 + log2(sqrt(area)/224) + 1e-6) clamped to [k_min, k_max]; area = w*h
// (no +1, as every box op here), computed in double. maskrcnn-benchmark puts the
// 1e-6 inside the log2 and adds 1 to w and h; both only move exact boundaries.
int64_t fpn_roi_level(const float* box, int64_t k_min = 2, int64_t k_max = 5);

// RoIAlign of rois (R,5) rows (batch_index, x1, y1, x2, y2) over the feature maps
// features[l] of levels k_min + l (stride 2^(k_min + l)), each RoI on the level
// fpn_roi_level chooses. The result (R,C,PH,PW) is in level-sorted order: row i
// is RoI order[i] (stable within a level). Gradient flows to the features.
rt::Tensor multiscale_roi_align(const std::vector<rt::Tensor>& features, const std::vector<float>& rois,
                                const rt::ops::RoiAlignParams& p, std::vector<int64_t>* order, int64_t k_min = 2);

// Names: conv.{0..depth-1}.{conv,bn}.*, fc6.*, cls_score.*, bbox_pred.*.
class BoxHead : public nn::Module {
 public:
  BoxHead(int64_t channels, int64_t pooled, int64_t depth, int64_t fc_dim, int64_t num_classes, float bn_momentum,
          Rng& rng);
  // x (R,C,P,P) -> {class logits (R,K+1), deltas (R,4(K+1))}. Uses the module mode for the BNs.
  std::pair<rt::Tensor, rt::Tensor> forward(const rt::Tensor& x);
  int64_t num_classes() const { return num_classes_; }  // K (without background)

 private:
  std::vector<nn::ConvBn*> convs_;
  nn::Linear* fc6_ = nullptr;
  nn::Linear* cls_score_ = nullptr;
  nn::Linear* bbox_pred_ = nullptr;
  int64_t channels_, pooled_, num_classes_;
};

// Sampled training RoIs of a batch and their targets (plain data).
struct RoiSamples {
  std::vector<float> rois;         // (R,5) batch_index, x1, y1, x2, y2
  std::vector<int64_t> labels;     // (R) 0 = background, k+1 = dataset label k
  std::vector<float> box_targets;  // (R,4) encoded (weights box_weights); 0 for background
  int64_t num_pos = 0;
};
// Per image: proposals[n] (P_n,4) with the ground-truth boxes appended, matched
// at the options' thresholds, balanced-sampled (one seed drawn from `rng`, image
// n sampling from image_rng(seed, part.first + n, 1)); positives first then
// negatives within each image. `sampled` (debug dumps): when given, receives each
// image's sampled indices into its proposals with the ground truth appended.
RoiSamples sample_rois(const std::vector<std::vector<float>>& proposals, const std::vector<Targets>& targets,
                       const RoiHeadsOptions& o, Rng& rng, const BatchPart& part = {},
                       std::vector<SampledIndices>* sampled = nullptr);

struct RoiLosses {
  rt::Tensor cls, box;  // 0-d
};
// cls (R,K+1), deltas (R,4(K+1)); labels (R), box_targets (R,4) as RoiSamples.
// Both terms are / R, the number of RoIs of the batch (the global batch with
// `part` across ranks).
RoiLosses roi_loss(const rt::Tensor& cls, const rt::Tensor& deltas, const std::vector<int64_t>& labels,
                   const std::vector<float>& box_targets, const RoiHeadsOptions& o, const BatchPart& part = {});

// Inference post-processing of one batch: cls (R,K+1) logits, deltas (R,4(K+1)),
// rois (R,5) (batch index first). Per image: softmax, per-class decode, clip to
// the image (metas), score > score_thresh, drop boxes with a side < min_size,
// per-class NMS, the detections_per_image best; boxes mapped back to original
// image coordinates. Background is never reported.
std::vector<std::vector<Detection>> roi_postprocess(const rt::Tensor& cls, const rt::Tensor& deltas,
                                                    const std::vector<float>& rois, const std::vector<ImageMeta>& metas,
                                                    const RoiHeadsOptions& o);

}  // namespace detnas::det
