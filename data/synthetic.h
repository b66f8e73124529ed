// Built-in synthetic datasets, deterministic by seed, so train/pretrain/search
// run with no download:
//  - detection (COCO 2017 layout): filled shapes of five classes with
//    NON-contiguous category ids (1 square, 3 disc, 7 triangle, 10 ring, 15 cross)
//    at COCO small/medium/large areas, random colours and rotations, partial
//    occlusion and truncation, on noise/gradient/stripe backgrounds; sometimes a
//    crowd region (a cluster of small shapes under one iscrowd=1 box). Boxes and
//    areas describe the VISIBLE pixels of each shape as drawn (area = pixel count,
//    like COCO's mask area), so area <= w*h and every box lies inside the image.
//  - classification (ImageFolder layout): 10 classes, one rendered shape or
//    texture per image (bar, checker, cross, disc, dots, ring, square, star,
//    stripes, triangle).
// Every image is drawn from its own RNG stream seeded by (seed, set, split,
// index), so the val images do not depend on the train count; JPEGs are written
// with 4:4:4 chroma at the given quality, so the same seed gives byte-identical
// files. Images are written atomically without fsync; the JSON files and the
// closing marker DIR/synthetic.json (written last: a set without it is
// incomplete) are fsynced.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"

namespace detnas::data {

// Default root used by `detnas make-data` and by commands that generate data on
// first use: ROOT/det (detection) and ROOT/cls (classification).
inline constexpr const char* kDefaultSyntheticRoot = "data/synthetic";
std::string synthetic_det_dir(const std::string& root);  // root + "/det"
std::string synthetic_cls_dir(const std::string& root);  // root + "/cls"
// True when `dir` holds a finished synthetic set (its marker file exists).
bool synthetic_set_complete(const std::string& dir);

struct SyntheticCategory {
  int64_t id;
  const char* name;
};
const std::vector<SyntheticCategory>& synthetic_det_categories();
const std::vector<std::string>& synthetic_cls_classes();  // sorted, = ImageFolder order

enum class SyntheticSplit { Train = 0, Val = 1 };

struct SyntheticDetParams {
  int64_t train = 512, val = 128;  // images per split
  int64_t image_size = 256;        // square images, >= 32
  uint64_t seed = 1;
  int jpeg_quality = 90;
};
using SyntheticParams = SyntheticDetParams;
struct SyntheticClsParams {
  int64_t train_per_class = 200, val_per_class = 50;
  int64_t image_size = 96;  // >= 16
  uint64_t seed = 1;
  int jpeg_quality = 90;
};

// One annotation as written to the JSON: COCO bbox [x, y, w, h] in pixels.
struct SyntheticObject {
  int64_t category_id = 0;
  double bbox[4] = {0, 0, 0, 0};
  int64_t area = 0;  // visible pixels
  int iscrowd = 0;
};
struct SyntheticSample {
  Image image;
  std::vector<SyntheticObject> objects;
};

// One detection image and its annotations, exactly as make_detection_set writes it
// (before JPEG compression).
SyntheticSample render_detection_sample(uint64_t seed, SyntheticSplit split, int64_t index, int64_t image_size);
// One classification image of class `class_index` (into synthetic_cls_classes()).
Image render_classification_sample(uint64_t seed, SyntheticSplit split, int64_t class_index, int64_t index,
                                   int64_t image_size);

struct SyntheticDetStats {
  int64_t images = 0, objects = 0, crowd = 0, small = 0, medium = 0, large = 0;  // COCO area ranges
};
// Writes out_dir/{train,val}/<12-digit image id>.jpg and
// out_dir/annotations/instances_{train,val}.json (train ids 1..N, val ids
// 1000001..1000000+M; annotation ids 1.. within each file), then the marker.
// Logs progress through the log helper. Does not clear out_dir.
SyntheticDetStats make_detection_set(const std::string& out_dir, const SyntheticDetParams& p);
// Writes out_dir/{train,val}/<class>/<6-digit index>.jpg, then the marker.
void make_classification_set(const std::string& out_dir, const SyntheticClsParams& p);

// For commands that use the built-in data: generates the set with default
// parameters unless it is already complete; refuses a non-empty folder that is
// not a complete synthetic set. Returns `dir`.
std::string ensure_synthetic_det(const std::string& dir, const SyntheticDetParams& p = {});
std::string ensure_synthetic_cls(const std::string& dir, const SyntheticClsParams& p = {});

}  // namespace detnas::data
