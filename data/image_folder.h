// ImageFolder classification data: root/<class>/<image>.{jpg,jpeg,png}, classes
// in sorted order = labels 0..K-1 (the torchvision convention), and a batch
// builder with the SPOS train transforms (random-resized-crop, colour jitter,
// horizontal flip) or the eval transform (resize the short side, centre crop).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace detnas::data {

struct ImageFolder {
  std::string root;
  std::vector<std::string> classes;  // sorted folder names
  std::vector<std::string> files;    // full paths
  std::vector<int64_t> labels;       // per file
  int64_t size() const { return int64_t(files.size()); }
};

// Scans `root`. Errors name the folder: missing root, no class folders, a class
// folder without images.
ImageFolder scan_image_folder(const std::string& root);

enum class ClsAugment { Train, Eval };

struct ClsBatch {
  rt::Tensor images;            // (N, 3, S, S) BGR 0..255
  std::vector<int64_t> labels;  // (N)
};

struct ClsBatchParams {
  int64_t batch = 64;
  int64_t image_size = 64;  // output side S
  ClsAugment augment = ClsAugment::Train;
  uint64_t seed = 1;
  double crop_scale_min = 0.08;  // random-resized-crop area fraction lower bound
  // Train only: the samples at positions [part_begin, part_end) of the batch
  // (part_end -1: to the end), each exactly as in the whole batch (data-parallel ranks).
  int64_t part_begin = 0, part_end = -1;
};

// Batch `index` of the endless stream over `folder`: epoch e = index*batch / n
// uses epoch_permutation(n, seed, e); each sample's augmentation draws from an
// Rng seeded by (seed, epoch, position). Eval batches go through the folder in
// file order (the last batch may be short; index beyond the end is an error).
ClsBatch make_cls_batch(const ImageFolder& folder, const ClsBatchParams& p, int64_t index);
int64_t num_eval_batches(const ImageFolder& folder, int64_t batch);

}  // namespace detnas::data
