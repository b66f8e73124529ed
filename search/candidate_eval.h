// Scoring one architecture of a trained detector (supernet path or standalone
// network) by COCO AP: BN statistics re-estimated for the path on training
// images (DETNAS.md: reset running stats, forward `bn_images` training images
// with train-time transforms in train mode under no-grad, BN momentum 0.1),
// then inference on the evaluation split and the COCO evaluator. Used by
// `detnas train` (periodic AP), `detnas eval` and `detnas search`.
// Nothing is copied: the recalibration overwrites the BN running statistics in
// place (every candidate resets them first); callers that need the trained
// statistics back (train) snapshot and restore the buffers themselves.
// Not here: the search loop (search/evolution.h), files (cli/).
#pragma once
#include <cstdint>
#include <vector>

#include "data/coco_eval.h"
#include "data/det_data.h"
#include "detect/detector.h"

namespace detnas::search {

struct EvalSettings {
  int64_t batch = 4;
  int64_t short_side = 256;
  int64_t max_size = 320;
  int64_t bn_images = 0;   // 0: keep the network's BN statistics
  double bn_momentum = 0;  // EMA momentum of the re-estimation (reference 0.1 over 500 batches); 0: exact average
  uint64_t seed = 1;       // of the recalibration batches (train transforms)
  // Under mpirun (rt::dist): every rank takes its part of each recalibration
  // batch, with synchronized BN, and every size()-th evaluation batch; the
  // detections are gathered on every rank. The result equals one process's. Every
  // rank must call together. Leaves synchronized BN off (nn::set_sync_bn).
  bool across_ranks = false;
};

// Resets the BN running statistics and re-estimates them for `path` on
// ceil(bn_images / batch) training batches. Leaves the detector in Eval mode.
void recalibrate_bn(det::Detector& net, const nn::Arch& path, const data::DetDataset& train, const EvalSettings& s);

// Inference (no-grad, eval mode) over every image of `ds`, in dataset order.
std::vector<std::vector<det::Detection>> detect_dataset(det::Detector& net, const nn::Arch& path,
                                                        const data::DetDataset& ds, const EvalSettings& s);

struct PathScore {
  data::CocoEvalResult coco;
  std::vector<data::CocoDetection> detections;  // in COCO category ids
  double recal_seconds = 0, infer_seconds = 0;
};
// recalibrate_bn (when s.bn_images > 0), detect_dataset on `val`, COCO AP against val's annotations.
PathScore score_path(det::Detector& net, const nn::Arch& path, const data::DetDataset& train,
                     const data::DetDataset& val, const EvalSettings& s);

}  // namespace detnas::search
