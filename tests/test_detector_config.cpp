// DetectorConfig as stored in checkpoints: to_map/from_map round trip, missing
// keys keep the defaults, and bad values fail naming the checkpoint and the key.
#include <doctest/doctest.h>

#include "core/error.h"
#include "detect/detector.h"

using namespace detnas;

TEST_CASE("detector config: checkpoint round trip, defaults for missing keys, bad values named") {
  det::DetectorConfig c;
  c.kind = "fpn";
  c.num_classes = 5;
  c.fpn_channels = 48;
  c.head_depth = 3;
  c.fc_dim = 256;
  c.nms_iou = 0.45f;
  c.anchor_size = 16;
  c.rpn_pre_nms_train = 600;
  c.rpn_post_nms_train = 300;
  c.rpn_pre_nms_test = 200;
  c.rpn_post_nms_test = 100;
  c.roi_batch = 128;
  c.seed = 9;
  const det::DetectorConfig r = det::DetectorConfig::from_map(c.to_map(), "ck.json");
  CHECK(r.kind == "fpn");
  CHECK(r.num_classes == 5);
  CHECK(r.fpn_channels == 48);
  CHECK(r.head_depth == 3);
  CHECK(r.fc_dim == 256);
  CHECK(r.nms_iou == doctest::Approx(0.45));
  CHECK(r.anchor_size == 16);
  CHECK(r.rpn_pre_nms_train == 600);
  CHECK(r.rpn_post_nms_train == 300);
  CHECK(r.rpn_pre_nms_test == 200);
  CHECK(r.rpn_post_nms_test == 100);
  CHECK(r.roi_batch == 128);
  CHECK(r.seed == 9);

  // A checkpoint written before anchor_size existed gets the reference 32.
  std::map<std::string, std::string> old = c.to_map();
  old.erase("anchor_size");
  CHECK(det::DetectorConfig::from_map(old, "ck.json").anchor_size == 32);

  auto bad = [&](const std::string& key, const std::string& value) {
    std::map<std::string, std::string> m = c.to_map();
    m[key] = value;
    return m;
  };
  CHECK_THROWS_WITH_AS(det::DetectorConfig::from_map(bad("anchor_size", "2"), "ck.json"),
                       doctest::Contains("ck.json: config 'anchor_size' = 2"), Error);
  CHECK_THROWS_WITH_AS(det::DetectorConfig::from_map(bad("anchor_size", "big"), "ck.json"),
                       doctest::Contains("'anchor_size' = 'big'"), Error);
  CHECK_THROWS_WITH_AS(det::DetectorConfig::from_map(bad("num_classes", "-3"), "ck.json"),
                       doctest::Contains("'num_classes' = '-3'"), Error);
  CHECK_THROWS_WITH_AS(det::DetectorConfig::from_map(bad("nms_iou", "x"), "ck.json"),
                       doctest::Contains("'nms_iou' = 'x'"), Error);
}
