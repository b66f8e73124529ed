// COCO results JSON writer (data/coco.h format_coco_results).
#include "data/coco.h"
#include "data/json_writer.h"

namespace detnas::data {

std::string format_coco_results(const std::vector<CocoDetection>& dets) {
  std::string out = "[";
  JsonWriter j;
  for (size_t i = 0; i < dets.size(); ++i) {
    const CocoDetection& d = dets[i];
    j.reset();
    j.begin_object().field("image_id", (long long)d.image_id).field("category_id", (long long)d.category_id);
    j.key("bbox").begin_array().value(d.bbox.x).value(d.bbox.y).value(d.bbox.w).value(d.bbox.h).end_array();
    j.field("score", d.score).end_object();
    out += (i ? ",\n" : "\n") + j.str();
  }
  out += "\n]\n";
  return out;
}

}  // namespace detnas::data
