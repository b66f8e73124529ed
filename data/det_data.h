// Detection data pipeline: a dataset view over a COCO instances file and its
// image folder (training targets per image: corner boxes, contiguous labels,
// crowd regions excluded, degenerate boxes dropped), the deterministic held-out
// split DetNAS searches on, and batches (decode, resize short side S / long side
// <= M, random horizontal flip for training, BGR 0..255 zero-padded to a multiple
// of 32) made by index so PrefetchLoader<DetBatch> can build them on workers.
// Not here: JSON parsing (coco.h), evaluation (coco_eval.h), decoding (image.h),
// the transforms themselves (transforms.h), anchors and target encoding (detect/).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "data/coco.h"
#include "data/image.h"
#include "data/loader.h"
#include "runtime/tensor.h"

namespace detnas::data {

// Images whose training targets are empty (no annotation, or only crowd regions
// and degenerate boxes): Skip for training (maskrcnn-benchmark's
// remove_images_without_annotations), Keep for evaluation (every GT image counts).
enum class EmptyImages { Skip, Keep };
// Missing, unreadable or corrupt image files (or a decoded size that differs from
// the JSON's width/height): Fail throws detnas::Error naming the file; Skip leaves
// the image out and counts it (training batches take the next image of the
// shuffled order instead, so a batch stays full; eval batches get shorter).
enum class BadImages { Fail, Skip };

struct DetDatasetOptions {
  EmptyImages empty_images = EmptyImages::Skip;
  BadImages bad_images = BadImages::Fail;
  JpegWarnings jpeg_warnings = JpegWarnings::Fail;
};

// Training targets of every image of a CocoDataset, in the image's original
// pixels, built once and shared by every view over that CocoDataset.
struct DetTargetTable {
  std::vector<int64_t> begin;      // per COCO image index: boxes [begin[i], begin[i+1])
  std::vector<float> boxes;        // (total,4) x1,y1,x2,y2 clipped to the image
  std::vector<int64_t> labels;     // contiguous labels (CocoDataset::category_label)
  int64_t crowd_excluded = 0;      // iscrowd=1 annotations (kept in the CocoDataset)
  int64_t degenerate_dropped = 0;  // width or height < 1 pixel after clipping
};
// Corner conversion and clipping of one COCO box; false when it is degenerate
// (width or height < 1 pixel after clipping to [0,W] x [0,H]).
bool coco_box_to_target(const CocoBox& b, int64_t image_w, int64_t image_h, float out[4]);
DetTargetTable build_det_targets(const CocoDataset& coco);

// Bad image files met while building batches; shared by a dataset and the views
// made from it, safe to use from worker threads.
class BadImageRecord {
 public:
  // Returns true the first time `path` is recorded (and logs a warning then).
  bool add(const std::string& path, const std::string& reason);
  bool contains(const std::string& path) const;
  int64_t count() const;                   // distinct files
  std::vector<std::string> files() const;  // sorted
 private:
  mutable std::mutex mu_;
  std::set<std::string> files_;
};

class DetDataset {
 public:
  DetDataset() = default;
  // Loads the annotation file; images are image_dir/<file_name> (COCO 2017:
  // ROOT/train2017, the synthetic set: ROOT/train, BCCD: ROOT/train).
  static DetDataset load(const std::string& annotation_json, const std::string& image_dir, DetDatasetOptions opt = {});
  // A view over every image of `coco`.
  DetDataset(std::shared_ptr<const CocoDataset> coco, std::string image_dir, DetDatasetOptions opt = {});

  int64_t size() const { return int64_t(images_.size()); }  // images this view iterates
  const CocoDataset& coco() const { return *coco_; }
  const std::shared_ptr<const CocoDataset>& coco_ptr() const { return coco_; }
  const std::string& image_dir() const { return image_dir_; }
  const DetDatasetOptions& options() const { return opt_; }
  int32_t num_classes() const { return coco_->num_classes(); }

  // View entry i (0 <= i < size()).
  int32_t coco_index(int64_t i) const;  // index into coco().images
  const CocoImage& image(int64_t i) const { return coco_->images[size_t(coco_index(i))]; }
  std::string image_path(int64_t i) const;
  int64_t num_boxes(int64_t i) const;
  const float* boxes(int64_t i) const;     // (num_boxes(i),4) x1,y1,x2,y2 in original pixels
  const int64_t* labels(int64_t i) const;  // (num_boxes(i))

  // The images the view was made from before the EmptyImages policy (a split
  // works on these, so it does not depend on the policy).
  const std::vector<int32_t>& candidates() const { return candidates_; }
  int64_t empty_skipped() const { return int64_t(candidates_.size() - images_.size()); }
  int64_t crowd_excluded() const { return targets_->crowd_excluded; }          // whole file
  int64_t degenerate_dropped() const { return targets_->degenerate_dropped; }  // whole file

  // The same candidates under another EmptyImages policy.
  DetDataset with_empty_images(EmptyImages e) const;
  // A view over the given COCO image indices (in that order), same options.
  DetDataset with_candidates(std::vector<int32_t> coco_indices) const;
  // Ground truth restricted to the images this view iterates, with all their
  // annotations (crowd and degenerate ones too), all categories, ready for
  // coco_evaluate.
  CocoDataset coco_subset() const;

  BadImageRecord& bad_images() const { return *bad_; }
  int64_t bad_images_skipped() const { return bad_->count(); }
  // Reads and decodes view entry i. Under BadImages::Fail a bad file throws
  // (message names the file); under Skip it returns false and records the file.
  bool read(int64_t i, Image& out) const;

 private:
  void apply_policy();
  std::shared_ptr<const CocoDataset> coco_;
  std::shared_ptr<const DetTargetTable> targets_;
  std::shared_ptr<BadImageRecord> bad_;
  std::string image_dir_;
  DetDatasetOptions opt_;
  std::vector<int32_t> candidates_;  // COCO image indices
  std::vector<int32_t> images_;      // candidates after the EmptyImages policy
};

// Carves n images out of ds.candidates() deterministically by seed: returns
// (train, val), both in the original order, disjoint, covering every candidate.
// The train part keeps ds's options; the val part uses EmptyImages::Keep (every
// held-out image is scored). val.coco_subset() is the ground truth to evaluate on.
std::pair<DetDataset, DetDataset> split_holdout(const DetDataset& ds, int64_t n, uint64_t seed);

// Writes `gt` as a COCO instances JSON that load_coco_instances reads back
// (images, categories, annotations with id, image_id, category_id, bbox, area,
// iscrowd). For the CLI's --val-split and for external tools.
void write_coco_instances(const std::string& path, const CocoDataset& gt);

// --- batches --------------------------------------------------------------

struct ImageTargets {
  rt::Tensor boxes;                 // (n,4) x1,y1,x2,y2 in the resized (and flipped) image's pixels
  std::vector<int64_t> labels;      // (n) contiguous labels
  int64_t image_id = 0;             // COCO image id
  double scale_x = 1, scale_y = 1;  // resized / original width and height
  ImageSize original_size, resized_size;
  bool flipped = false;
};

struct DetBatch {
  rt::Tensor images;  // (N,3,H,W) BGR 0..255, each image top-left, zeros to H,W (multiples of 32)
  std::vector<ImageTargets> targets;
  int64_t index = 0;  // the batch index it was made for
};

enum class DetAugment { Train, Eval };

struct DetBatchParams {
  int64_t batch = 2;
  int64_t short_side = 320;  // S (DetNAS: 800)
  int64_t max_size = 512;    // M (DetNAS: 1333); <= 0: no limit
  DetAugment augment = DetAugment::Train;
  uint64_t seed = 1;
  double flip_prob = 0.5;  // Train only
  int64_t pad_multiple = 32;
  // Train only: the images at positions [part_begin, part_end) of the batch
  // (part_end -1: to the end), each exactly as in the whole batch. Data-parallel
  // ranks take their part of every global batch this way (rt::dist::slice).
  int64_t part_begin = 0, part_end = -1;
};

// Batch `index`. Train: the endless shuffled stream, position pos = index*batch+k
// is image epoch_permutation(n, seed, pos/n)[pos%n], augmented with an Rng seeded
// by mix_seed(seed, epoch, pos), so the batch depends only on (seed, index).
// Eval: images [index*batch, (index+1)*batch) in view order, resize only (the last
// batch may be short; an index past the end is an error).
DetBatch make_det_batch(const DetDataset& ds, const DetBatchParams& p, int64_t index);
int64_t num_det_eval_batches(const DetDataset& ds, int64_t batch);

// A PrefetchLoader over make_det_batch starting at `first_index` (the dataset is
// copied into the loader; views are cheap to copy).
std::unique_ptr<PrefetchLoader<DetBatch>> make_det_loader(const DetDataset& ds, const DetBatchParams& p,
                                                          int64_t first_index, int workers, int depth);

}  // namespace detnas::data
