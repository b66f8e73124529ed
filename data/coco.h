// COCO instances JSON (ground truth) and COCO results JSON (detections) parsed
// into plain structs, with the contiguous label mapping the detectors train on.
// This is parsing and validation only: no images, no transforms, no evaluation
// (data/coco_eval.h). Files are memory-mapped and streamed to simdjson On-Demand
// a few MB at a time (data/coco_json.h), straight into compact structs, so memory
// is the structs plus one batch, not the text (a 428 MB train2017-sized file with
// 860k polygon annotations: 1.2 s, 143 MB peak RSS). Unknown fields (info,
// licenses, segmentation, ...) are validated and dropped. Every problem throws
// detnas::Error naming the file, the field path and what is wrong.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace detnas::data {

// [x_min, y_min, width, height] in pixels, as in the COCO files.
struct CocoBox {
  double x = 0, y = 0, w = 0, h = 0;
};

struct CocoImage {
  int64_t id = 0;
  int32_t width = 0, height = 0;
  std::string file_name;
};

struct CocoCategory {
  int64_t id = 0;
  std::string name, supercategory;  // supercategory may be absent in the file ("")
};

struct CocoAnnotation {
  int64_t id = 0;
  int64_t image_id = 0;
  int64_t category_id = 0;
  CocoBox bbox;
  double area = 0;      // the file's area (mask area for real COCO), used for small/medium/large
  int32_t iscrowd = 0;  // 0 or 1
  // Derived when the dataset is built: index into CocoDataset::images and the
  // contiguous label (0..K-1) of category_id.
  int32_t image_index = -1;
  int32_t label = -1;
};

// One entry of a COCO results file.
struct CocoDetection {
  int64_t image_id = 0;
  int64_t category_id = 0;
  CocoBox bbox;
  double score = 0;
};

struct CocoDataset {
  std::string source;                                // the file it came from (or the name given to the string parser)
  std::vector<CocoImage> images;                     // file order
  std::vector<CocoCategory> categories;              // file order
  std::vector<CocoAnnotation> annotations;           // file order
  std::unordered_map<int64_t, int32_t> image_index;  // image id -> index in images
  std::unordered_map<int64_t, int32_t> category_index;  // category id -> index in categories
  // Contiguous labels: category ids sorted ascending are labels 0..K-1.
  std::vector<int64_t> label_to_category;               // label -> category id
  std::unordered_map<int64_t, int32_t> category_label;  // category id -> label
  // Annotations grouped by image (CSR, file order inside each image):
  // annotations of images[i] are image_anns[image_ann_begin[i] .. image_ann_begin[i+1]).
  std::vector<int64_t> image_ann_begin;
  std::vector<int32_t> image_anns;

  int32_t num_classes() const { return int32_t(label_to_category.size()); }
  // Both throw detnas::Error for an unknown id / label.
  int32_t label_of(int64_t category_id) const;
  int64_t category_of(int32_t label) const;
  const CocoImage& image(int64_t image_id) const;  // by id; throws if unknown
  bool has_image(int64_t image_id) const { return image_index.count(image_id) != 0; }
  bool has_category(int64_t category_id) const { return category_index.count(category_id) != 0; }
};

// Ground truth. "images" and "categories" are required, "annotations" may be
// absent (test-dev image lists). Checks: types, required keys, duplicate ids,
// annotations naming unknown images/categories, negative or non-finite boxes and
// areas, iscrowd not 0/1.
CocoDataset load_coco_instances(const std::string& path);
CocoDataset parse_coco_instances(std::string_view json, const std::string& source_name);

// Rebuilds the derived fields (maps, labels, per-image lists, annotation
// image_index/label) after the vectors were filled or edited in code, and runs
// the same checks as the parser.
void finalize_coco_dataset(CocoDataset& ds);

// Results: a JSON list of {image_id, category_id, bbox, score}. Every image id
// must be an image of `gt` and every category id one of its categories.
std::vector<CocoDetection> load_coco_results(const std::string& path, const CocoDataset& gt);
std::vector<CocoDetection> parse_coco_results(std::string_view json, const CocoDataset& gt,
                                              const std::string& source_name);

// A COCO results file's text for `dets` (one detection per line, floats with
// enough digits to read back exactly), the inverse of parse_coco_results.
std::string format_coco_results(const std::vector<CocoDetection>& dets);

// The checks applied to parsed results, for detections made in code: known image
// and category ids, finite boxes with w, h >= 0, finite scores. `source` names
// the origin in messages.
void validate_coco_detections(const std::vector<CocoDetection>& dets, const CocoDataset& gt, const std::string& source);

}  // namespace detnas::data
