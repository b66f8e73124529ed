// COCO bbox evaluation, numerically identical to pycocotools COCOeval with
// iouType "bbox" and its default parameters (10 IoU thresholds .50:.05:.95, 101
// recall points, areas all/small/medium/large, maxDets 1/10/100). All images and
// categories of the ground truth are evaluated. This file is the evaluator only:
// parsing is data/coco.h, printing the summary is the caller's job (the helpers
// below return text).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "data/coco.h"

namespace detnas::data {

constexpr int kCocoIouThrs = 10;   // T
constexpr int kCocoRecThrs = 101;  // R
constexpr int kCocoAreas = 4;      // A: all, small, medium, large
constexpr int kCocoMaxDets = 3;    // M: 1, 10, 100

// The parameter values exactly as pycocotools holds them (numpy linspace doubles).
const std::array<double, kCocoIouThrs>& coco_iou_thresholds();
const std::array<double, kCocoRecThrs>& coco_recall_thresholds();
const std::array<std::array<double, 2>, kCocoAreas>& coco_area_ranges();  // closed intervals
const std::array<int, kCocoMaxDets>& coco_max_dets();

struct CocoEvalResult {
  // The 12 numbers of COCOeval.summarize(), in its order (-1 = undefined).
  std::array<double, 12> stats{};
  // Per category, in ascending category id order (= the dataset's labels).
  std::vector<int64_t> category_ids;
  std::vector<double> ap;     // IoU .50:.95, area all, maxDets 100
  std::vector<double> ap50;   // IoU .50, area all, maxDets 100
  std::vector<double> ar100;  // recall averaged over the IoU thresholds, area all, maxDets 100
  // COCOeval.eval["precision"] (T,R,K,A,M) and ["recall"] (T,K,A,M), row-major, -1 = undefined.
  std::vector<double> precision;
  std::vector<double> recall;
  int64_t num_images = 0, num_detections = 0;

  int64_t num_categories() const { return int64_t(category_ids.size()); }
  double precision_at(int t, int r, int64_t k, int a, int m) const {
    return precision[size_t((((int64_t(t) * kCocoRecThrs + r) * num_categories() + k) * kCocoAreas + a) * kCocoMaxDets +
                            m)];
  }
  double recall_at(int t, int64_t k, int a, int m) const {
    return recall[size_t(((int64_t(t) * num_categories() + k) * kCocoAreas + a) * kCocoMaxDets + m)];
  }
};

// Evaluates `dets` against `gt`. The detections are validated first
// (validate_coco_detections): unknown image or category ids, non-finite or
// negative boxes and non-finite scores throw detnas::Error.
CocoEvalResult coco_evaluate(const CocoDataset& gt, const std::vector<CocoDetection>& dets);

// The 12 summary lines exactly as COCOeval.summarize() prints them, e.g.
// " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.437".
std::vector<std::string> coco_summary_lines(const CocoEvalResult& r);

// {"stats":[12 numbers],"per_category_ap":{"<id>":ap,...},"per_category_ap50":{...},
//  "per_category_ar100":{...}} with every number written with %.17g (round-trips).
std::string coco_eval_json(const CocoEvalResult& r);

}  // namespace detnas::data
