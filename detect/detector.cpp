// DetLosses lookup, DetectorConfig <-> checkpoint config, make_detector.
#include "detect/detector.h"

#include <cstdlib>

#include "core/error.h"
#include "detect/faster_rcnn.h"
#include "detect/retinanet.h"
#include "runtime/dist.h"

namespace detnas::det {

void BatchPart::sum_counts(int64_t* counts, int64_t n) const {
  if (across_ranks) rt::dist::allreduce_sum(counts, n);
}

Rng image_rng(uint64_t step_seed, int64_t global_image, uint64_t purpose) {
  return Rng(step_seed ^ (0x9e3779b97f4a7c15ULL * uint64_t(2 * global_image + 1)) ^ (purpose << 56));
}

const rt::Tensor& DetLosses::part(const std::string& name) const {
  std::string known;
  for (auto& [n, t] : parts) {
    if (n == name) return t;
    known += (known.empty() ? "" : ", ") + n;
  }
  DETNAS_FAIL("detector losses: no part '", name, "' (have: ", known, ")");
}

std::map<std::string, std::string> DetectorConfig::to_map() const {
  return {{"detector", kind},
          {"num_classes", std::to_string(num_classes)},
          {"fpn_channels", std::to_string(fpn_channels)},
          {"head_depth", std::to_string(head_depth)},
          {"fc_dim", std::to_string(fc_dim)},
          {"nms_iou", std::to_string(nms_iou)},
          {"anchor_size", std::to_string(anchor_size)},
          {"detector_seed", std::to_string(seed)},
          {"rpn_pre_nms_train", std::to_string(rpn_pre_nms_train)},
          {"rpn_post_nms_train", std::to_string(rpn_post_nms_train)},
          {"rpn_pre_nms_test", std::to_string(rpn_pre_nms_test)},
          {"rpn_post_nms_test", std::to_string(rpn_post_nms_test)},
          {"roi_batch", std::to_string(roi_batch)}};
}

namespace {
int64_t parse_int(const std::map<std::string, std::string>& m, const std::string& key, int64_t def,
                  const std::string& where) {
  auto it = m.find(key);
  if (it == m.end()) return def;
  char* end = nullptr;
  long long v = std::strtoll(it->second.c_str(), &end, 10);
  DETNAS_CHECK(end && *end == 0 && !it->second.empty() && v >= 0, where, ": config '", key, "' = '", it->second,
               "' is not a non-negative integer");
  return v;
}
}  // namespace

DetectorConfig DetectorConfig::from_map(const std::map<std::string, std::string>& m, const std::string& where) {
  DetectorConfig c;
  if (auto it = m.find("detector"); it != m.end()) c.kind = it->second;
  c.num_classes = parse_int(m, "num_classes", c.num_classes, where);
  c.fpn_channels = parse_int(m, "fpn_channels", c.fpn_channels, where);
  c.head_depth = parse_int(m, "head_depth", parse_int(m, "tower_depth", c.head_depth, where), where);
  c.fc_dim = parse_int(m, "fc_dim", c.fc_dim, where);
  c.anchor_size = parse_int(m, "anchor_size", c.anchor_size, where);
  c.seed = uint64_t(parse_int(m, "detector_seed", int64_t(c.seed), where));
  c.rpn_pre_nms_train = parse_int(m, "rpn_pre_nms_train", 0, where);
  c.rpn_post_nms_train = parse_int(m, "rpn_post_nms_train", 0, where);
  c.rpn_pre_nms_test = parse_int(m, "rpn_pre_nms_test", 0, where);
  c.rpn_post_nms_test = parse_int(m, "rpn_post_nms_test", 0, where);
  c.roi_batch = parse_int(m, "roi_batch", 0, where);
  if (auto it = m.find("nms_iou"); it != m.end()) {
    char* end = nullptr;
    c.nms_iou = std::strtof(it->second.c_str(), &end);
    DETNAS_CHECK(end && *end == 0 && !it->second.empty() && c.nms_iou < 1, where, ": config 'nms_iou' = '", it->second,
                 "' is not a number below 1");
  }
  DETNAS_CHECK(c.anchor_size >= 4 && c.anchor_size <= 1024, where, ": config 'anchor_size' = ", c.anchor_size,
               " is outside 4..1024");
  DETNAS_CHECK(c.num_classes > 0 && c.fpn_channels > 0, where, ": config has num_classes ", c.num_classes,
               " and fpn_channels ", c.fpn_channels, " (both must be > 0)");
  return c;
}

std::unique_ptr<Detector> make_detector(const nn::BackboneOptions& bo, const DetectorConfig& c) {
  if (c.kind == "retinanet") {
    RetinaNetOptions ro;
    ro.num_classes = c.num_classes;
    ro.fpn_channels = c.fpn_channels;
    ro.tower_depth = c.head_depth;
    ro.seed = c.seed;
    ro.anchor_size = float(c.anchor_size);
    if (c.nms_iou >= 0) ro.post.nms_thresh = c.nms_iou;
    return std::make_unique<RetinaNet>(bo, ro);
  }
  if (c.kind == "fpn") {
    FasterRcnnOptions fo;
    fo.num_classes = c.num_classes;
    fo.fpn_channels = c.fpn_channels;
    fo.head_depth = c.head_depth;
    fo.fc_dim = c.fc_dim;
    fo.seed = c.seed;
    fo.anchor_size = float(c.anchor_size);
    if (c.nms_iou >= 0) fo.roi.nms_thresh = c.nms_iou;
    if (c.rpn_pre_nms_train > 0) fo.rpn.pre_nms_top_n_train = c.rpn_pre_nms_train;
    if (c.rpn_post_nms_train > 0) fo.rpn.post_nms_top_n_train = c.rpn_post_nms_train;
    if (c.rpn_pre_nms_test > 0) fo.rpn.pre_nms_top_n_test = c.rpn_pre_nms_test;
    if (c.rpn_post_nms_test > 0) fo.rpn.post_nms_top_n_test = c.rpn_post_nms_test;
    if (c.roi_batch > 0) fo.roi.batch_size_per_image = c.roi_batch;
    return std::make_unique<FasterRcnn>(bo, fo);
  }
  DETNAS_FAIL("unknown detector '", c.kind, "' (known: retinanet, fpn)");
}

}  // namespace detnas::det
