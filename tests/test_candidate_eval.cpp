// Candidate scoring (search/candidate_eval.h) with the BatchCache: a score from
// kept batches equals the score from batches made anew (AP, every detection and
// the recalibrated BN statistics, exactly), for a candidate scored first, again,
// and after another path; the cache never holds more than its limit and still
// gives the same result when little or nothing fits.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <array>
#include <cstring>

#include "api/models.h"
#include "core/log.h"
#include "data/det_data.h"
#include "data/synthetic.h"
#include "detect/retinanet.h"
#include "runtime/fs.h"
#include "search/candidate_eval.h"
#include "tests/test_util.h"

using namespace detnas;

namespace {

struct Fixture {
  std::string dir;
  data::DetDataset train, val;
  std::unique_ptr<det::Detector> net;
  Fixture() {
    const LogLevel saved = log_level();
    set_log_level(LogLevel::Error);
    char tmpl[] = "/tmp/detnas_test_candeval_XXXXXX";
    const char* p = mkdtemp(tmpl);
    REQUIRE(p != nullptr);
    dir = p;
    data::SyntheticDetParams sp;
    sp.train = 10;
    sp.val = 6;
    sp.image_size = 96;
    sp.seed = 5;
    data::make_detection_set(dir, sp);
    train = data::DetDataset::load(dir + "/annotations/instances_train.json", dir + "/train");
    val = data::DetDataset::load(dir + "/annotations/instances_val.json", dir + "/val");
    set_log_level(saved);
    api::DetectorSpec s;
    s.space = "tiny";
    s.config.num_classes = train.num_classes();
    s.config.fpn_channels = 16;
    s.config.head_depth = 1;
    s.config.seed = 3;
    s.seed = 2;
    net = api::make_detector(s);
    auto* r = dynamic_cast<det::RetinaNet*>(net.get());
    REQUIRE(r != nullptr);
    r->head().cls_logits->bias.fill_(0.0f);  // scores near 0.5: an untrained net detects plenty
  }
  ~Fixture() { remove_all(dir); }
};

struct Outcome {
  std::array<double, 12> stats;
  std::vector<data::CocoDetection> dets;
  std::vector<float> buffers;
};

Outcome score(Fixture& f, const nn::Arch& path, search::BatchCache* cache) {
  search::EvalSettings s;
  s.batch = 4;
  s.short_side = 96;
  s.max_size = 96;
  s.bn_images = 10;
  s.seed = 7;
  s.cache = cache;
  search::PathScore r = search::score_path(*f.net, path, f.train, f.val, s);
  Outcome o;
  o.stats = r.coco.stats;
  o.dets = r.detections;
  for (auto& b : f.net->buffers())
    for (float x : b.tensor.to_vector()) o.buffers.push_back(x);
  return o;
}

void check_same(const Outcome& a, const Outcome& b, const char* what) {
  INFO(what);
  CHECK(a.stats == b.stats);
  CHECK(a.buffers == b.buffers);
  REQUIRE(a.dets.size() == b.dets.size());
  bool same = true;
  for (size_t i = 0; i < a.dets.size(); ++i)
    same = same && a.dets[i].image_id == b.dets[i].image_id && a.dets[i].category_id == b.dets[i].category_id &&
           a.dets[i].score == b.dets[i].score &&
           std::memcmp(&a.dets[i].bbox, &b.dets[i].bbox, sizeof(data::CocoBox)) == 0;
  CHECK(same);
}

}  // namespace

TEST_CASE("candidate_eval: kept batches score a path exactly as batches made anew, within the cache's limit") {
  Fixture f;
  const nn::Arch a = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1}, b = {3, 3, 2, 1, 0, 0, 1, 2, 3, 3};
  const Outcome a0 = score(f, a, nullptr), b0 = score(f, b, nullptr);
  REQUIRE(!a0.dets.empty());
  CHECK(a0.buffers != b0.buffers);

  search::BatchCache cache(int64_t(1) << 30);
  check_same(score(f, a, &cache), a0, "a, first (batches made and kept)");
  // 10 recalibration images in batches of 4: 3 batches; 6 val images: 2 batches.
  CHECK(cache.made() == 5);
  CHECK(cache.kept() == 5);
  CHECK(cache.hits() == 0);
  check_same(score(f, b, &cache), b0, "b (kept batches)");
  check_same(score(f, a, &cache), a0, "a again (kept batches, after b)");
  CHECK(cache.made() == 5);
  CHECK(cache.hits() == 10);
  CHECK(cache.bytes() > 0);

  // A limit that holds one batch (the largest is 4 x 3 x 96 x 96 floats plus boxes).
  search::BatchCache small(4 * 3 * 96 * 96 * 4 + 4096);
  check_same(score(f, b, &small), b0, "b, small cache");
  check_same(score(f, b, &small), b0, "b, small cache, again");
  CHECK(small.kept() == 1);
  CHECK(small.bytes() <= small.limit());
  CHECK(small.made() == 9);  // 5 the first time, 4 of them again
  CHECK(small.not_kept() == 8);

  search::BatchCache none(0);
  check_same(score(f, a, &none), a0, "a, limit 0");
  CHECK(none.kept() == 0);
  CHECK(none.bytes() == 0);
}
