// libFuzzer target: COCO instances JSON (data/coco.h parse_coco_instances, the
// streaming reader of data/coco_json.h underneath). A parsed dataset must be
// self-consistent; small ones are then evaluated against their own annotations
// (data/coco_eval.h), which must give AP 1 or -1 (no ground truth) per category.
#include "data/coco.h"
#include "data/coco_eval.h"
#include "fuzz/fuzz_common.h"

using namespace detnas;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    data::CocoDataset ds = data::parse_coco_instances(fuzz::as_text(data, size), "fuzz_instances.json");
    FUZZ_REQUIRE(ds.image_ann_begin.size() == ds.images.size() + 1, "CSR offsets");
    FUZZ_REQUIRE(ds.image_anns.size() == ds.annotations.size(), "CSR entries");
    for (const data::CocoAnnotation& a : ds.annotations) {
      FUZZ_REQUIRE(a.image_index >= 0 && size_t(a.image_index) < ds.images.size(), "image_index ", a.image_index);
      FUZZ_REQUIRE(ds.category_of(a.label) == a.category_id, "label ", a.label);
    }
    // The evaluator's cost grows with images x categories: keep executions fast.
    if (ds.images.size() * ds.categories.size() <= 4096 && ds.annotations.size() <= 512) {
      std::vector<data::CocoDetection> dets;
      for (size_t i = 0; i < ds.annotations.size(); ++i) {
        const data::CocoAnnotation& a = ds.annotations[i];
        if (!a.iscrowd) dets.push_back({a.image_id, a.category_id, a.bbox, 1.0 - double(i) / 1024});
      }
      data::CocoEvalResult r = data::coco_evaluate(ds, dets);
      FUZZ_REQUIRE(r.num_categories() == ds.num_classes(), "categories");
      data::coco_summary_lines(r);
      data::coco_eval_json(r);
    }
  } catch (const Error&) {
  }
  return 0;
}
