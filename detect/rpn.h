// Region proposal network of FPN Faster R-CNN (DETNAS.md "FPN Faster R-CNN"):
// the head shared over P2..P6 (3x3 conv + ReLU, 1x1 objectness (A) and 1x1
// deltas (4A), all N(0, 0.01) with bias 0), anchors (one size per level
// 32..512, ratios 0.5/1/2, strides 4..64), training targets (IoU matching
// 0.7/0.3 with low-quality matches, 256 anchors sampled per image at 0.5
// positive), the loss (BCE over the sampled anchors + smooth L1 beta 1/9 over
// the sampled positives, both / number of sampled anchors in the batch, as
// torchvision and maskrcnn-benchmark) and proposal generation.
// Proposal generation follows torchvision's RegionProposalNetwork per image:
// per level the pre_nms_top_n best anchors by objectness, decode (weights 1),
// clip to the image, drop boxes with a side < min_size, NMS at nms_thresh
// independently per level, then the post_nms_top_n best over all levels of the
// image (maskrcnn-benchmark's FPN_POST_NMS_PER_BATCH=False behaviour).
// Proposals are plain data (no gradient).
// Head outputs are flattened in the anchor order of AnchorGenerator (per level:
// locations row-major, then the A anchors), as RetinaNet (flatten_head_output).
// Not here: the RoI heads (detect/roi_heads.h), the whole detector (detect/faster_rcnn.h).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "detect/anchors.h"
#include "detect/box_coder.h"
#include "detect/detector.h"
#include "detect/matcher.h"
#include "nn/layers.h"
#include "runtime/rng.h"

namespace detnas::det {

struct RpnOptions {
  MatcherParams matcher{0.7f, 0.3f, LowQualityMatches::Allow};
  int64_t batch_size_per_image = 256;
  float positive_fraction = 0.5f;
  float smooth_l1_beta = 1.0f / 9.0f;
  // Proposal generation; pre_nms_top_n is per level and image, post_nms_top_n per image.
  int64_t pre_nms_top_n_train = 2000, post_nms_top_n_train = 2000;
  int64_t pre_nms_top_n_test = 1000, post_nms_top_n_test = 1000;
  float nms_thresh = 0.7f;
  float min_size = 1e-3f;  // torchvision's RPN min_size
  float init_std = 0.01f;
};

// Names: conv.*, cls_logits.*, bbox_pred.*.
class RpnHead : public nn::Module {
 public:
  RpnHead(int64_t channels, int64_t num_anchors, float init_std, Rng& rng);
  // P (N,C,H,W) -> {objectness logits (N,A,H,W), deltas (N,4A,H,W)}.
  std::pair<rt::Tensor, rt::Tensor> forward(const rt::Tensor& p) const;
  nn::Conv2d* conv = nullptr;
  nn::Conv2d* cls_logits = nullptr;
  nn::Conv2d* bbox_pred = nullptr;
};

// Anchors of the RPN levels P2..P6 (strides 4..64) for these feature sizes: (T,4).
rt::Tensor rpn_anchors(const AnchorGenerator& gen, const std::vector<HW>& feature_sizes);

// Fixed-size balanced sampling (torchvision BalancedPositiveNegativeSampler):
// labels 1 = positive, 0 = negative, anything else ignored. Takes
// min(int(batch * positive_fraction), #pos) positives and min(batch - that, #neg)
// negatives, each a uniformly random subset drawn from `rng` (partial
// Fisher-Yates over the candidates in index order); results in increasing index order.
struct SampledIndices {
  std::vector<int64_t> pos, neg;
};
SampledIndices balanced_sample(const std::vector<int>& labels, int64_t batch_size, float positive_fraction, Rng& rng);

struct RpnLosses {
  rt::Tensor cls, box;  // 0-d
  int64_t num_sampled = 0, num_pos = 0;
};
// objectness (N,T,1) logits, deltas (N,T,4), anchors (T,4) shared by the batch.
// Per image: match anchors to the targets, sample, then BCE (sum over the sampled
// anchors) and smooth L1 (sum over sampled positives, RPN box weights 1,1,1,1),
// each / the number of sampled anchors of the batch. One seed is drawn from
// `rng`; image n samples from image_rng(seed, part.first + n, 0). With `part`
// across ranks, the batch is the global one. `sampled` (debug dumps): when given,
// receives each image's sampled anchor indices (into `anchors`).
RpnLosses rpn_loss(const rt::Tensor& objectness, const rt::Tensor& deltas, const rt::Tensor& anchors,
                   const std::vector<Targets>& targets, const RpnOptions& o, Rng& rng, const BatchPart& part = {},
                   std::vector<SampledIndices>* sampled = nullptr);

struct ProposalParams {
  int64_t pre_nms_top_n = 1000;   // per level
  int64_t post_nms_top_n = 1000;  // per image, over all levels
  float nms_thresh = 0.7f;
  float min_size = 1e-3f;
};
struct Proposals {
  std::vector<float> boxes;   // (P,4), best objectness first
  std::vector<float> scores;  // (P) objectness logits
};
// objectness[l] (N,T_l,1) or (N,T_l), deltas[l] (N,T_l,4), anchors[l] (T_l,4);
// sizes[n] = (height, width) to clip image n to. Reads values only (no gradient).
std::vector<Proposals> generate_proposals(const std::vector<rt::Tensor>& objectness,
                                          const std::vector<rt::Tensor>& deltas, const std::vector<rt::Tensor>& anchors,
                                          const std::vector<HW>& sizes, const ProposalParams& p);

}  // namespace detnas::det
