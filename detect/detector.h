// The detector interface shared by RetinaNet (detect/retinanet.h) and FPN
// Faster R-CNN (detect/faster_rcnn.h), so that training, evaluation, detection
// and search are written once against it. A Detector owns its backbone
// (supernet or standalone) under "backbone.*"; `path` selects the supernet path
// (empty for a standalone network).
// DetectorConfig is the part of a run's configuration that defines the network
// beyond the backbone; it is stored in checkpoints (CheckpointMeta::config) so
// eval/detect/search rebuild the same network from the checkpoint alone.
// Not here: data loading, loops, the CLI.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "detect/postprocess.h"
#include "nn/backbone.h"
#include "nn/module.h"
#include "runtime/rng.h"

namespace detnas::det {

// Ground truth of one image, in the coordinates of the (resized, unpadded) input.
struct Targets {
  std::vector<float> boxes;     // (M,4) x1,y1,x2,y2
  std::vector<int64_t> labels;  // (M) in [0, K)
};

// Data-parallel training (cli/ under mpirun): this process holds `count` images
// starting at position `first` of a global batch that the ranks split in order.
// With across_ranks the losses' normalisers (images, positive / sampled anchors,
// sampled RoIs) are summed over the ranks (rt::dist), so the ranks' losses add up
// to the loss of the whole batch on one process and their gradients sum to its
// gradient; every rank must then run the same losses in the same order. The
// samplers draw image i's choices from a stream of its own (image_rng), so they
// do not depend on which rank holds the image either. The default is one
// process holding the whole batch.
struct BatchPart {
  int64_t first = 0;
  bool across_ranks = false;
  // The local counts summed over the ranks (in place; unchanged for one process).
  void sum_counts(int64_t* counts, int64_t n) const;
};
// The sampler stream of the image at global position `first + n` of a batch
// whose step drew `step_seed` from the detector's sampler Rng.
Rng image_rng(uint64_t step_seed, int64_t global_image, uint64_t purpose);

// Named 0-d loss components (e.g. "cls", "box" or "rpn_cls", "rpn_box",
// "roi_cls", "roi_box") and their sum.
struct DetLosses {
  std::vector<std::pair<std::string, rt::Tensor>> parts;
  rt::Tensor total;
  const rt::Tensor& part(const std::string& name) const;  // throws naming the known parts
};

class Detector : public nn::Module {
 public:
  virtual const char* kind() const = 0;  // "retinanet", "fpn"
  // images (N,3,H,W), H and W multiples of 32 (checked). Training mode.
  virtual DetLosses forward_train(const rt::Tensor& images, const std::vector<Targets>& targets,
                                  const nn::Arch& path) = 0;
  // The network's forward with no targets and no loss, in whatever mode the
  // caller set: used to re-estimate BN statistics (Mode::Recalibrate) for a path.
  // Must run every BN layer the inference forward uses.
  virtual void forward_features(const rt::Tensor& images, const nn::Arch& path) = 0;
  // Inference: sets eval mode and runs under NoGradGuard (restores the previous
  // mode after). metas[i] describes image i of the batch.
  virtual std::vector<std::vector<Detection>> detect(const rt::Tensor& images, const std::vector<ImageMeta>& metas,
                                                     const nn::Arch& path) = 0;
  virtual nn::Backbone& backbone() = 0;
  // The stream of the detector's own random choices in training (the RPN/RoI
  // samplers), saved in checkpoints for exact resume; nullptr when it has none.
  virtual Rng* sampler_rng() { return nullptr; }
  // Which part of a global batch forward_train's images are (see BatchPart).
  void set_batch_part(const BatchPart& p) { part_ = p; }
  const BatchPart& batch_part() const { return part_; }

 protected:
  BatchPart part_;
};

struct DetectorConfig {
  std::string kind = "retinanet";  // "retinanet" or "fpn"
  int64_t num_classes = 80;
  int64_t fpn_channels = 256;
  int64_t head_depth = 4;    // RetinaNet: convs per tower; FPN: convs of the box head
  int64_t fc_dim = 1024;     // FPN: box-head FC width
  float nms_iou = -1;        // < 0: the detector's reference value (0.4 / 0.5)
  int64_t anchor_size = 32;  // smallest anchor (P3 RetinaNet, P2 RPN); x2 per level; reference 32
  // FPN Faster R-CNN sizes (<= 0: the reference values of DETNAS.md):
  int64_t rpn_pre_nms_train = 0, rpn_post_nms_train = 0;  // 2000, 2000
  int64_t rpn_pre_nms_test = 0, rpn_post_nms_test = 0;    // 1000, 1000
  int64_t roi_batch = 0;                                  // 512 sampled RoIs per image
  uint64_t seed = 0;                                      // init stream of everything but the backbone

  std::map<std::string, std::string> to_map() const;
  // From a checkpoint's config; missing keys keep their defaults, bad values throw naming `where`.
  static DetectorConfig from_map(const std::map<std::string, std::string>& m, const std::string& where);
};

// Builds the detector named by c.kind (unknown kinds throw, listing the known ones).
std::unique_ptr<Detector> make_detector(const nn::BackboneOptions& bo, const DetectorConfig& c);

}  // namespace detnas::det
