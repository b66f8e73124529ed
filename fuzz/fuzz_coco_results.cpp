// libFuzzer target: COCO results JSON (data/coco.h parse_coco_results) against a
// small fixed ground truth, then the evaluator on the parsed detections. Parsed
// results must survive format_coco_results -> parse_coco_results unchanged.
#include <cmath>

#include "data/coco.h"
#include "data/coco_eval.h"
#include "fuzz/fuzz_common.h"

using namespace detnas;

namespace {
const char* kGt = R"({"images": [{"id": 1, "width": 64, "height": 48, "file_name": "a.jpg"},
  {"id": 7, "width": 32, "height": 32, "file_name": "b.jpg"}],
 "categories": [{"id": 1, "name": "box"}, {"id": 3, "name": "disc"}, {"id": 10, "name": "bar"}],
 "annotations": [
  {"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 20, 10], "area": 200, "iscrowd": 0},
  {"id": 2, "image_id": 1, "category_id": 3, "bbox": [30, 20, 8, 8], "area": 50, "iscrowd": 0},
  {"id": 3, "image_id": 1, "category_id": 1, "bbox": [0, 0, 64, 48], "area": 3072, "iscrowd": 1},
  {"id": 4, "image_id": 7, "category_id": 10, "bbox": [2, 2, 28, 4], "area": 112, "iscrowd": 0},
  {"id": 5, "image_id": 7, "category_id": 3, "bbox": [10, 10, 0, 5], "area": 0, "iscrowd": 0}]})";

const data::CocoDataset& gt() {
  static const data::CocoDataset ds = data::parse_coco_instances(kGt, "fuzz_gt.json");
  return ds;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const data::CocoDataset& g = gt();
  try {
    std::vector<data::CocoDetection> dets = data::parse_coco_results(fuzz::as_text(data, size), g, "fuzz_dt.json");
    std::vector<data::CocoDetection> again =
        data::parse_coco_results(data::format_coco_results(dets), g, "fuzz_dt_formatted.json");
    FUZZ_REQUIRE(again.size() == dets.size(), again.size(), " vs ", dets.size(), " detections");
    for (size_t i = 0; i < dets.size(); ++i) {
      const data::CocoDetection &a = dets[i], &b = again[i];
      FUZZ_REQUIRE(a.image_id == b.image_id && a.category_id == b.category_id && a.score == b.score &&
                       a.bbox.x == b.bbox.x && a.bbox.y == b.bbox.y && a.bbox.w == b.bbox.w && a.bbox.h == b.bbox.h,
                   "detection ", i, " changed in the round trip");
    }
    data::CocoEvalResult r = data::coco_evaluate(g, dets);
    for (double s : r.stats) FUZZ_REQUIRE(s == -1 || (s >= 0 && s <= 1), "stat ", s);
    data::coco_summary_lines(r);
    data::coco_eval_json(r);
  } catch (const Error&) {
  }
  return 0;
}
