// RetinaNet (DETNAS.md "Detectors") on the DetNAS backbone (supernet or
// standalone): backbone C3..C5 -> RetinaFpn P3..P7 -> class and box towers
// shared across levels -> focal + smooth-L1 losses (training) or decoded,
// NMS-ed detections (inference, detect/postprocess.h).
// Head outputs are flattened to (N, sum_l H_l*W_l*A, K) in the anchor order of
// AnchorGenerator (per level: locations row-major, then the A anchors), i.e.
// channel a*K + k of the head at (h, w) is row (h*W + w)*A + a, column k.
// Parameter names: "backbone.*", "fpn.*", "head.*".
// Not here: data loading, training loops, the CLI.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "detect/anchors.h"
#include "detect/box_coder.h"
#include "detect/detector.h"
#include "detect/fpn.h"
#include "detect/matcher.h"
#include "detect/postprocess.h"
#include "kernels/loss.h"
#include "nn/backbone.h"

namespace detnas::det {

struct RetinaNetOptions {
  int64_t num_classes = 80;  // K (contiguous labels 0..K-1; no background class)
  int64_t fpn_channels = 256;
  int64_t tower_depth = 4;   // conv3x3 + ReLU layers per tower
  float prior_prob = 0.01f;  // class bias = -log((1 - p) / p)
  float head_init_std = 0.01f;
  MatcherParams matcher{0.5f, 0.4f, LowQualityMatches::Allow};
  BoxCoderWeights box_weights{10, 10, 5, 5};
  FocalParams focal{0.25f, 2.0f};
  float smooth_l1_beta = 0.11f;
  float box_loss_norm = 4.0f;  // box loss / max(1, box_loss_norm * num_pos)
  PostprocessParams post;
  float anchor_size = 32;  // P3 anchor size (reference 32: sizes 32..512 on P3..P7)
  uint64_t seed = 0;       // init stream of the FPN and head (the backbone has its own)
};

struct Losses {
  rt::Tensor cls, box, total;  // 0-d tensors; total = cls + box
};

// Class and box towers + predictors (names cls_tower.i, box_tower.i, cls_logits, bbox_pred).
class RetinaHead : public nn::Module {
 public:
  RetinaHead(int64_t channels, int64_t num_anchors, int64_t num_classes, int64_t tower_depth, float init_std,
             float prior_prob, Rng& rng);
  // P (N,C,H,W) -> {class logits (N,A*K,H,W), box deltas (N,A*4,H,W)}.
  std::pair<rt::Tensor, rt::Tensor> forward(const rt::Tensor& p) const;
  nn::Conv2d* cls_logits = nullptr;
  nn::Conv2d* bbox_pred = nullptr;

 private:
  std::vector<nn::Conv2d*> cls_tower_, box_tower_;
};

// Autograd-aware: x (N, A*C, H, W) -> (N, H*W*A, C), row (h*W + w)*A + a, column c
// = channel a*C + c at (h, w). Bit-exact data movement in both directions.
rt::Tensor flatten_head_output(const rt::Tensor& x, int64_t C);

// Per-image anchor assignment (IoU matching) as dense loss inputs for T anchors.
struct AnchorTargets {
  std::vector<float> cls_targets;  // (T,K) one-hot for positives, 0 otherwise
  std::vector<float> row_weight;   // (T) 1 = positive or negative, 0 = between thresholds
  std::vector<float> box_targets;  // (T,4) encoded regression targets (0 except positives)
  std::vector<float> box_weight;   // (T,4) 1 on positive rows
  int64_t num_pos = 0;
};
AnchorTargets assign_anchor_targets(const rt::Tensor& anchors, const Targets& t, int64_t num_classes,
                                    const MatcherParams& mp, const BoxCoder& coder);

// Loss over flattened head outputs: cls (N,T,K), box (N,T,4), anchors (T,4) shared by
// the (padded) batch. Focal (Sum over non-ignored rows) / (num_pos + N); smooth L1
// (Sum over positive rows) / max(1, box_loss_norm * num_pos).
// `part`: the normalisers (positive anchors + images) are those of the global batch.
Losses retinanet_loss(const rt::Tensor& cls, const rt::Tensor& box, const rt::Tensor& anchors,
                      const std::vector<Targets>& targets, const RetinaNetOptions& o, const BatchPart& part = {});

// Anchors of the RetinaNet levels P3..P7 (strides 8..128) for these feature sizes: (T,4).
rt::Tensor retinanet_anchors(const AnchorGenerator& gen, const std::vector<HW>& feature_sizes);

class RetinaNet : public Detector {
 public:
  RetinaNet(const nn::BackboneOptions& bo, const RetinaNetOptions& o);

  struct Outputs {
    std::vector<rt::Tensor> cls, box;  // per level: (N,H*W*A,K), (N,H*W*A,4)
    std::vector<HW> feature_sizes;
  };
  // images (N,3,H,W), H and W multiples of 32 (checked).
  Outputs forward_heads(const rt::Tensor& images, const nn::Arch& path);
  // Detector interface: losses "cls" and "box". forward_features runs the
  // backbone only: it holds every BN layer of RetinaNet (the FPN and the head
  // have no norm layers), so the heads' work would change no statistic.
  const char* kind() const override { return "retinanet"; }
  DetLosses forward_train(const rt::Tensor& images, const std::vector<Targets>& targets, const nn::Arch& path) override;
  void forward_features(const rt::Tensor& images, const nn::Arch& path) override;
  std::vector<std::vector<Detection>> detect(const rt::Tensor& images, const std::vector<ImageMeta>& metas,
                                             const nn::Arch& path) override;

  nn::Backbone& backbone() override { return *backbone_; }
  RetinaFpn& fpn() { return *fpn_; }
  RetinaHead& head() { return *head_; }
  const RetinaNetOptions& options() const { return o_; }
  const AnchorGenerator& anchor_generator() const { return anchors_; }
  int64_t num_anchors_per_location() const { return anchors_.num_anchors_per_location(0); }

 private:
  static void check_images(const rt::Tensor& images);  // (N,3,H,W), H and W positive multiples of 32
  RetinaNetOptions o_;
  nn::Backbone* backbone_ = nullptr;
  RetinaFpn* fpn_ = nullptr;
  RetinaHead* head_ = nullptr;
  AnchorGenerator anchors_;
  BoxCoder coder_;
};

}  // namespace detnas::det
