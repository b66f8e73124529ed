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
#include <map>
#include <string>
#include <vector>

#include "data/coco_eval.h"
#include "data/det_data.h"
#include "detect/detector.h"

namespace detnas::search {

// Batches kept across candidates. make_det_batch is a pure function of
// (dataset, params, index), so a search decodes, resizes and augments each BN
// recalibration and evaluation batch once and keeps it, up to `limit_bytes` of
// batch data; batches beyond the limit are made anew each time they are needed.
// What is kept is the same batch that would be made: results do not change. The
// datasets must outlive the cache and not change. One per process (not
// thread-safe); under mpirun every rank keeps the batches it uses.
class BatchCache {
 public:
  explicit BatchCache(int64_t limit_bytes) : limit_(limit_bytes) {}
  data::DetBatch get(const data::DetDataset& ds, const data::DetBatchParams& p, int64_t index);
  int64_t limit() const { return limit_; }
  int64_t bytes() const { return bytes_; }                // batch data kept
  int64_t kept() const { return int64_t(kept_.size()); }  // batches kept
  int64_t hits() const { return hits_; }                  // gets served from the cache
  int64_t made() const { return made_; }                  // batches made (kept or not)
  int64_t not_kept() const { return not_kept_; }          // made, over the limit

 private:
  int64_t limit_, bytes_ = 0, hits_ = 0, made_ = 0, not_kept_ = 0;
  std::map<std::string, data::DetBatch> kept_;
};

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
  BatchCache* cache = nullptr;  // not owned; null: every batch is made when used
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
