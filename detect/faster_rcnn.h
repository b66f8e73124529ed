// FPN Faster R-CNN (DETNAS.md "FPN Faster R-CNN") on the DetNAS backbone
// (supernet or standalone): backbone C2..C5 -> FpnBn P2..P6 -> RPN (losses
// "rpn_cls", "rpn_box"; proposals) -> multi-scale RoIAlign on P2..P5 -> 4conv1fc
// box head (losses "roi_cls", "roi_box") or detections (detect/roi_heads.h).
// Training: proposals with the train pre/post-NMS top-N, clipped to the padded
// batch (the per-image unpadded size is not part of forward_train's input), GT
// boxes appended, RoIs sampled. The anchor and RoI samplers draw from one Rng
// member (seeded from options.seed; sampler_rng() exposes it for checkpoints and
// tests) so runs are reproducible.
// forward_features (BN recalibration) runs backbone, FPN, RPN and the box head
// on the proposals of the test settings (the RoIs the inference path feeds the
// box head), without losses.
// Parameter names: "backbone.*", "fpn.*", "rpn.*", "box_head.*".
// Not here: data loading, training loops, the CLI.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "detect/anchors.h"
#include "detect/detector.h"
#include "detect/fpn_bn.h"
#include "detect/roi_heads.h"
#include "detect/rpn.h"
#include "nn/backbone.h"
#include "runtime/rng.h"

namespace detnas::det {

struct FasterRcnnOptions {
  int64_t num_classes = 80;    // K (contiguous labels 0..K-1; background is class 0 of the head)
  int64_t fpn_channels = 256;  // FPN and box-head conv width
  int64_t head_depth = 4;      // box-head convs
  int64_t fc_dim = 1024;
  float anchor_size = 32;    // P2 RPN anchor size (reference 32: sizes 32..512 on P2..P6)
  float bn_momentum = 0.1f;  // FPN and box-head BNs
  RpnOptions rpn;
  RoiHeadsOptions roi;
  uint64_t seed = 0;  // init stream of FPN and heads, and the sampler stream
};

// What the training samplers chose in one forward_train, for debug dumps and
// step-parity twins (cli/train_dump.h) that replay the random choices.
struct SamplerTrace {
  std::vector<SampledIndices> rpn;            // per image: anchor indices (into RpnOutputs::all_anchors)
  std::vector<std::vector<float>> proposals;  // per image (P,4): the RPN proposals (after NMS and top-n)
  std::vector<SampledIndices> roi;            // per image: indices into its proposals with the GT boxes appended
};

class FasterRcnn : public Detector {
 public:
  FasterRcnn(const nn::BackboneOptions& bo, const FasterRcnnOptions& o);

  const char* kind() const override { return "fpn"; }
  DetLosses forward_train(const rt::Tensor& images, const std::vector<Targets>& targets, const nn::Arch& path) override;
  void forward_features(const rt::Tensor& images, const nn::Arch& path) override;
  std::vector<std::vector<Detection>> detect(const rt::Tensor& images, const std::vector<ImageMeta>& metas,
                                             const nn::Arch& path) override;
  nn::Backbone& backbone() override { return *backbone_; }

  FpnBn& fpn() { return *fpn_; }
  RpnHead& rpn_head() { return *rpn_; }
  BoxHead& box_head() { return *box_head_; }
  const FasterRcnnOptions& options() const { return o_; }
  FasterRcnnOptions& mutable_options() { return o_; }  // e.g. the proposal top-N of CPU runs
  const AnchorGenerator& anchor_generator() const { return anchors_; }
  Rng* sampler_rng() override { return &rng_; }
  // While set, each forward_train fills *trace (nullptr, the default: nothing recorded).
  void record_samples(SamplerTrace* trace) { trace_ = trace; }

  // The shared part of all forwards: P2..P6 and the per-level RPN outputs.
  struct RpnOutputs {
    std::vector<rt::Tensor> features;    // P2..P6
    std::vector<rt::Tensor> objectness;  // per level (N,T_l,1)
    std::vector<rt::Tensor> deltas;      // per level (N,T_l,4)
    std::vector<rt::Tensor> anchors;     // per level (T_l,4)
    rt::Tensor all_anchors;              // (T,4), the levels concatenated
    std::vector<HW> feature_sizes;
  };
  RpnOutputs forward_rpn(const rt::Tensor& images, const nn::Arch& path);

 private:
  // Proposals per image from detached RPN outputs.
  std::vector<Proposals> proposals(const RpnOutputs& r, const std::vector<HW>& sizes, bool train) const;
  // Multi-scale RoIAlign of rois (R,5) over P2..P5 (order: see multiscale_roi_align).
  rt::Tensor roi_features(const std::vector<rt::Tensor>& features, const std::vector<float>& rois,
                          std::vector<int64_t>* order) const;

  FasterRcnnOptions o_;
  nn::Backbone* backbone_ = nullptr;
  FpnBn* fpn_ = nullptr;
  RpnHead* rpn_ = nullptr;
  BoxHead* box_head_ = nullptr;
  AnchorGenerator anchors_;
  Rng rng_;
  SamplerTrace* trace_ = nullptr;
};

}  // namespace detnas::det
