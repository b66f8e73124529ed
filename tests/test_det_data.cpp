// Detection data pipeline (data/det_data.h): box conversion and scaling against
// the JSON (BCCD and a small generated synthetic set), crowd exclusion,
// degenerate boxes, the EmptyImages policy, flips, padding, determinism across
// worker counts and start indices, the held-out split and its GT, and bad image
// files under both BadImages policies.
#include <doctest/doctest.h>
#include <simdjson.h>
#include <stdlib.h>

#include <algorithm>
#include <array>
#include <map>
#include <set>

#include "core/error.h"
#include "core/log.h"
#include "data/coco_eval.h"
#include "data/det_data.h"
#include "data/synthetic.h"
#include "data/transforms.h"
#include "runtime/fs.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::data;

namespace {

const char* kBccd = "../shared/data/bccd";

struct QuietLog {
  LogLevel saved = log_level();
  QuietLog() { set_log_level(LogLevel::Error); }
  ~QuietLog() { set_log_level(saved); }
};

struct TmpDir {
  std::string path;
  TmpDir() {
    char tmpl[] = "/tmp/detnas_test_detdata_XXXXXX";
    const char* p = mkdtemp(tmpl);
    REQUIRE(p != nullptr);
    path = p;
  }
  ~TmpDir() { remove_all(path); }
  std::string file(const std::string& rel) const { return path_join(path, rel); }
};

bool have_bccd() { return file_exists(std::string(kBccd) + "/annotations/instances_val.json"); }

// A small synthetic set generated once for the whole run.
const std::string& synth_dir() {
  static TmpDir dir;
  static bool made = false;
  if (!made) {
    QuietLog q;
    SyntheticDetParams p;
    p.train = 10;
    p.val = 4;
    p.image_size = 96;
    p.seed = 3;
    make_detection_set(dir.path, p);
    made = true;
  }
  return dir.path;
}

// A hand-written set with known edge cases; images are gradients so flips show.
//  image 10 (64x48): a normal box, a box clipped by the border, two degenerate
//    (w = 0, w = 0.5), one fully outside (degenerate after clipping), one crowd.
//  image 20 (40x80): one box.  image 30 (32x32): no annotations.
//  image 40 (48x48): only a crowd region.
// Category ids 5, 2, 9 -> labels 1, 0, 2.
void write_hand_set(const std::string& dir) {
  make_dirs(dir + "/img");
  auto grad = [](int64_t h, int64_t w) {
    Image im(h, w);
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        uint8_t* p = im.at(y, x);
        p[0] = uint8_t(x * 255 / w), p[1] = uint8_t(y * 255 / h), p[2] = uint8_t((x + y) % 64 * 4);
      }
    return im;
  };
  JpegParams jp;
  jp.quality = 95;
  write_jpeg(dir + "/img/a.jpg", grad(48, 64), jp, Durability::NoSync);
  write_jpeg(dir + "/img/b.jpg", grad(80, 40), jp, Durability::NoSync);
  write_jpeg(dir + "/img/c.jpg", grad(32, 32), jp, Durability::NoSync);
  write_jpeg(dir + "/img/d.jpg", grad(48, 48), jp, Durability::NoSync);
  const std::string json = R"({
 "images": [{"id": 10, "file_name": "a.jpg", "width": 64, "height": 48},
            {"id": 20, "file_name": "b.jpg", "width": 40, "height": 80},
            {"id": 30, "file_name": "c.jpg", "width": 32, "height": 32},
            {"id": 40, "file_name": "d.jpg", "width": 48, "height": 48}],
 "categories": [{"id": 5, "name": "five"}, {"id": 2, "name": "two"}, {"id": 9, "name": "nine"}],
 "annotations": [
  {"id": 1, "image_id": 10, "category_id": 5, "bbox": [4, 6, 20, 10], "area": 200, "iscrowd": 0},
  {"id": 2, "image_id": 10, "category_id": 2, "bbox": [50, 30, 30, 30], "area": 900, "iscrowd": 0},
  {"id": 3, "image_id": 10, "category_id": 9, "bbox": [10, 10, 0, 5], "area": 0, "iscrowd": 0},
  {"id": 4, "image_id": 10, "category_id": 9, "bbox": [10, 10, 0.5, 5], "area": 2.5, "iscrowd": 0},
  {"id": 5, "image_id": 10, "category_id": 5, "bbox": [0, 0, 64, 48], "area": 3072, "iscrowd": 1},
  {"id": 6, "image_id": 10, "category_id": 9, "bbox": [70, 10, 5, 5], "area": 25, "iscrowd": 0},
  {"id": 7, "image_id": 20, "category_id": 9, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0},
  {"id": 8, "image_id": 40, "category_id": 2, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 1}]})";
  write_file_atomic(dir + "/ann.json", json, Durability::NoSync);
}

std::vector<float> tvec(const rt::Tensor& t) { return t.to_vector(); }

void check_same_batch(const DetBatch& a, const DetBatch& b) {
  REQUIRE(a.images.shape() == b.images.shape());
  CHECK(a.images.to_vector() == b.images.to_vector());
  REQUIRE(a.targets.size() == b.targets.size());
  for (size_t k = 0; k < a.targets.size(); ++k) {
    CHECK(a.targets[k].image_id == b.targets[k].image_id);
    CHECK(a.targets[k].flipped == b.targets[k].flipped);
    CHECK(tvec(a.targets[k].boxes) == tvec(b.targets[k].boxes));
    CHECK(a.targets[k].labels == b.targets[k].labels);
  }
}

// Expected training targets of one image straight from the JSON: non-crowd boxes
// as corners (these sets have no degenerate or out-of-image boxes).
struct JsonTargets {
  std::map<int64_t, std::vector<std::array<double, 4>>> boxes;
  std::map<int64_t, std::vector<int64_t>> cats;
  int64_t crowd = 0;
};
JsonTargets json_targets(const std::string& path) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.load(path);
  JsonTargets t;
  for (simdjson::dom::element a : doc["annotations"].get_array()) {
    if (int64_t(a["iscrowd"]) != 0) {
      t.crowd++;
      continue;
    }
    simdjson::dom::array bb = a["bbox"].get_array();
    double v[4];
    int i = 0;
    for (simdjson::dom::element x : bb) v[i++] = double(x);
    int64_t id = int64_t(a["image_id"]);
    t.boxes[id].push_back({v[0], v[1], v[0] + v[2], v[1] + v[3]});
    t.cats[id].push_back(int64_t(a["category_id"]));
  }
  return t;
}

// Eval batches over the whole view match the JSON boxes scaled by the resize.
void check_against_json(const DetDataset& ds, const JsonTargets& jt, const DetBatchParams& p) {
  int64_t images = 0;
  for (int64_t bi = 0; bi < num_det_eval_batches(ds, p.batch); ++bi) {
    DetBatch b = make_det_batch(ds, p, bi);
    CHECK(b.images.size(2) % 32 == 0);
    CHECK(b.images.size(3) % 32 == 0);
    for (const ImageTargets& t : b.targets) {
      CAPTURE(t.image_id);
      ImageSize want = short_side_size(t.original_size, p.short_side, p.max_size);
      CHECK(t.resized_size.height == want.height);
      CHECK(t.resized_size.width == want.width);
      CHECK(t.scale_x == double(want.width) / double(t.original_size.width));
      const auto& ref = jt.boxes.at(t.image_id);
      const auto& cats = jt.cats.at(t.image_id);
      REQUIRE(t.boxes.size(0) == int64_t(ref.size()));
      std::vector<float> got = tvec(t.boxes);
      std::vector<double> want_boxes;
      for (const auto& r : ref)
        want_boxes.insert(want_boxes.end(), {r[0] * t.scale_x, r[1] * t.scale_y, r[2] * t.scale_x, r[3] * t.scale_y});
      // float32 storage of the scaled corners: elementwise float32 tolerance.
      CHECK(test::check_close("boxes", test::to_double(got), want_boxes, {int64_t(ref.size()), 4},
                              test::Tol::elementwise()));
      for (size_t k = 0; k < cats.size(); ++k) CHECK(ds.coco().category_of(int32_t(t.labels[k])) == cats[k]);
      ++images;
    }
  }
  CHECK(images == ds.size());
}

}  // namespace

TEST_CASE("det_data: hand-made set: corners, clipping, crowd excluded, degenerate dropped, empty images") {
  QuietLog q;
  TmpDir dir;
  write_hand_set(dir.path);
  DetDataset ds = DetDataset::load(dir.file("ann.json"), dir.file("img"));
  CHECK(ds.crowd_excluded() == 2);
  CHECK(ds.degenerate_dropped() == 3);
  CHECK(ds.empty_skipped() == 2);  // image 30 (nothing) and 40 (crowd only)
  REQUIRE(ds.size() == 2);
  CHECK(ds.image(0).id == 10);
  CHECK(ds.image(1).id == 20);
  REQUIRE(ds.num_boxes(0) == 2);
  std::vector<float> b0(ds.boxes(0), ds.boxes(0) + 8);
  CHECK(b0 == std::vector<float>{4, 6, 24, 16, 50, 30, 64, 48});  // second clipped to the 64x48 image
  CHECK(std::vector<int64_t>(ds.labels(0), ds.labels(0) + 2) == std::vector<int64_t>{1, 0});
  REQUIRE(ds.num_boxes(1) == 1);
  CHECK(std::vector<float>(ds.boxes(1), ds.boxes(1) + 4) == std::vector<float>{1, 2, 4, 6});
  CHECK(ds.labels(1)[0] == 2);
  // The crowd regions stay in the CocoDataset for evaluation.
  CHECK(ds.coco().annotations.size() == 8);

  DetDataset keep = ds.with_empty_images(EmptyImages::Keep);
  CHECK(keep.size() == 4);
  CHECK(keep.num_boxes(3) == 0);
  DetDatasetOptions o;
  o.empty_images = EmptyImages::Keep;
  CHECK(DetDataset::load(dir.file("ann.json"), dir.file("img"), o).size() == 4);

  // Eval batch over all four: 32-padded, targets in resized pixels; an image
  // with no boxes gets a (0,4) tensor.
  DetBatchParams p;
  p.augment = DetAugment::Eval;
  p.batch = 4;
  p.short_side = 24;
  p.max_size = 100;
  DetBatch b = make_det_batch(keep, p, 0);
  REQUIRE(b.targets.size() == 4);
  CHECK(b.images.shape() == rt::Shape{4, 3, 64, 32});  // b.jpg 40x80 -> 24x48; a.jpg 64x48 -> 32x24
  CHECK(b.targets[0].resized_size.width == 32);
  CHECK(b.targets[0].resized_size.height == 24);
  CHECK(tvec(b.targets[0].boxes) == std::vector<float>{2, 3, 12, 8, 25, 15, 32, 24});
  CHECK(b.targets[2].boxes.shape() == rt::Shape{0, 4});
  CHECK(b.targets[2].labels.empty());

  // coco_box_to_target directly: NaN and negative widths are degenerate.
  float out[4];
  CHECK(!coco_box_to_target(CocoBox{1, 1, std::nan(""), 3}, 10, 10, out));
  CHECK(!coco_box_to_target(CocoBox{-5, 1, 5.5, 3}, 10, 10, out));  // 0.5 wide after clipping
  CHECK(coco_box_to_target(CocoBox{-5, 1, 6, 3}, 10, 10, out));
  CHECK(out[0] == 0.0f);
  CHECK(out[2] == 1.0f);
}

TEST_CASE("det_data: boxes and labels match the JSON after resizing (BCCD val and synthetic)") {
  QuietLog q;
  DetBatchParams p;
  p.augment = DetAugment::Eval;
  p.batch = 3;
  p.short_side = 64;
  p.max_size = 100;
  {
    const std::string d = synth_dir();
    DetDataset ds = DetDataset::load(d + "/annotations/instances_val.json", d + "/val");
    JsonTargets jt = json_targets(d + "/annotations/instances_val.json");
    CHECK(ds.crowd_excluded() == jt.crowd);
    CHECK(ds.degenerate_dropped() == 0);
    check_against_json(ds, jt, p);
  }
  if (!have_bccd()) {
    test::test_skip(std::string("BCCD dataset not found at ") + kBccd + " (run from the repository root)");
    return;
  }
  const std::string ann = std::string(kBccd) + "/annotations/instances_val.json";
  DetDataset ds = DetDataset::load(ann, std::string(kBccd) + "/val");
  // Only the first 12 images are decoded, to stay fast.
  DetDataset head = ds.with_candidates(std::vector<int32_t>(ds.candidates().begin(), ds.candidates().begin() + 12));
  CHECK(head.size() == 12);
  p.short_side = 240;
  p.max_size = 400;
  p.batch = 4;
  check_against_json(head, json_targets(ann), p);
  DetBatch b = make_det_batch(head, p, 0);
  CHECK(b.images.shape() == rt::Shape{4, 3, 256, 320});  // 640x480 -> 320x240, padded to 320x256
  CHECK(b.targets[0].scale_x == 0.5);
  CHECK(b.targets[0].scale_y == 0.5);
}

TEST_CASE("det_data: padding is zero and the image sits top-left") {
  QuietLog q;
  const std::string d = synth_dir();
  DetDataset ds = DetDataset::load(d + "/annotations/instances_train.json", d + "/train");
  DetBatchParams p;
  p.augment = DetAugment::Eval;
  p.batch = 2;
  p.short_side = 70;  // 96x96 -> 70x70, padded to 96x96
  p.max_size = 0;
  DetBatch b = make_det_batch(ds, p, 0);
  REQUIRE(b.images.shape() == rt::Shape{2, 3, 96, 96});
  Image ref = resize_bilinear(read_image(ds.image_path(0)), 70, 70);
  std::vector<float> chw(size_t(3 * 70 * 70));
  to_chw_float(ref, chw.data());
  std::vector<float> all = b.images.to_vector();
  int64_t bad = 0, nonzero_pad = 0;
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < 96; ++y)
      for (int64_t x = 0; x < 96; ++x) {
        float v = all[size_t((c * 96 + y) * 96 + x)];
        if (y < 70 && x < 70)
          bad += v != chw[size_t((c * 70 + y) * 70 + x)];
        else
          nonzero_pad += v != 0.0f;
      }
  CHECK(bad == 0);
  CHECK(nonzero_pad == 0);
}

TEST_CASE("det_data: horizontal flip mirrors pixels and boxes") {
  QuietLog q;
  const std::string d = synth_dir();
  DetDataset ds = DetDataset::load(d + "/annotations/instances_train.json", d + "/train");
  DetBatchParams ev;
  ev.augment = DetAugment::Eval;
  ev.batch = 1;
  ev.short_side = 64;
  ev.max_size = 0;
  DetBatchParams tr = ev;
  tr.augment = DetAugment::Train;
  tr.batch = 1;
  tr.flip_prob = 1.0;
  DetBatchParams no = tr;
  no.flip_prob = 0.0;
  DetBatch f = make_det_batch(ds, tr, 0), n = make_det_batch(ds, no, 0);
  REQUIRE(f.targets[0].image_id == n.targets[0].image_id);
  CHECK(f.targets[0].flipped);
  CHECK(!n.targets[0].flipped);
  const int64_t W = n.targets[0].resized_size.width, H = n.targets[0].resized_size.height, P = f.images.size(3);
  std::vector<float> a = f.images.to_vector(), c = n.images.to_vector();
  int64_t bad = 0;
  for (int64_t ch = 0; ch < 3; ++ch)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x)
        bad += a[size_t((ch * f.images.size(2) + y) * P + x)] != c[size_t((ch * n.images.size(2) + y) * P + W - 1 - x)];
  CHECK(bad == 0);
  std::vector<float> fb = tvec(f.targets[0].boxes), nb = tvec(n.targets[0].boxes);
  REQUIRE(fb.size() == nb.size());
  REQUIRE(!fb.empty());
  for (size_t i = 0; i < fb.size(); i += 4) {
    CHECK(fb[i] == float(W) - nb[i + 2]);
    CHECK(fb[i + 2] == float(W) - nb[i]);
    CHECK(fb[i + 1] == nb[i + 1]);
    CHECK(fb[i + 3] == nb[i + 3]);
  }
  // Flipping the boxes back gives the unflipped ones (symmetry); W - (W - x) in
  // float32 rounds at W's exponent, so elementwise float tolerance, not exact.
  hflip_boxes(fb.data(), int64_t(fb.size() / 4), W);
  CHECK(test::check_close("double flip", test::to_double(fb), test::to_double(nb), {int64_t(nb.size() / 4), 4},
                          test::Tol::elementwise()));
  // With probability 0.5 both outcomes occur over a few batches.
  tr.flip_prob = 0.5;
  std::set<bool> seen;
  for (int64_t i = 0; i < 16; ++i) seen.insert(make_det_batch(ds, tr, i).targets[0].flipped);
  CHECK(seen.size() == 2);
}

TEST_CASE("det_data: training stream is the same for 1 and 2 workers and when started at index k") {
  QuietLog q;
  const std::string d = synth_dir();
  DetDataset ds = DetDataset::load(d + "/annotations/instances_train.json", d + "/train");
  DetBatchParams p;
  p.batch = 3;  // crosses epoch boundaries within a batch (ds.size() <= 10)
  p.short_side = 48;
  p.max_size = 80;
  p.seed = 11;
  const int64_t kBatches = 8;
  std::vector<DetBatch> one, two;
  {
    auto l = make_det_loader(ds, p, 0, 1, 2);
    for (int64_t i = 0; i < kBatches; ++i) one.push_back(l->next());
  }
  {
    auto l = make_det_loader(ds, p, 0, 2, 4);
    for (int64_t i = 0; i < kBatches; ++i) two.push_back(l->next());
  }
  for (int64_t i = 0; i < kBatches; ++i) {
    CAPTURE(i);
    CHECK(one[size_t(i)].index == i);
    check_same_batch(one[size_t(i)], two[size_t(i)]);
  }
  // A resumed run: a loader started at 5 sees batch 5 first.
  PrefetchLoader<DetBatch> resumed([&](int64_t i) { return make_det_batch(ds, p, i); }, 5, 2, 2);
  check_same_batch(resumed.next(), one[5]);
  check_same_batch(resumed.next(), one[6]);
  // Every image appears once per epoch.
  std::multiset<int64_t> ids;
  for (int64_t i = 0; i < kBatches; ++i)
    for (const ImageTargets& t : one[size_t(i)].targets) ids.insert(t.image_id);
  std::vector<int64_t> first_epoch;
  for (int64_t i = 0; i * p.batch < ds.size(); ++i)
    for (int64_t k = 0; k < p.batch && i * p.batch + k < ds.size(); ++k)
      first_epoch.push_back(one[size_t(i)].targets[size_t(k)].image_id);
  CHECK(std::set<int64_t>(first_epoch.begin(), first_epoch.end()).size() == size_t(ds.size()));
  // Another seed gives another order.
  DetBatchParams p2 = p;
  p2.seed = 12;
  std::vector<int64_t> a, b;
  for (int64_t i = 0; i < 3; ++i)
    for (size_t k = 0; k < 3; ++k) {
      a.push_back(one[size_t(i)].targets[k].image_id);
      b.push_back(make_det_batch(ds, p2, i).targets[k].image_id);
    }
  CHECK(a != b);
  // Eval batches go in order and stop at the end.
  DetBatchParams ev = p;
  ev.augment = DetAugment::Eval;
  const int64_t nb = num_det_eval_batches(ds, 3);
  CHECK(make_det_batch(ds, ev, 0).targets[0].image_id == ds.image(0).id);
  CHECK(int64_t(make_det_batch(ds, ev, nb - 1).targets.size()) == ds.size() - 3 * (nb - 1));
  CHECK_THROWS_WITH_AS(make_det_batch(ds, ev, nb), doctest::Contains("past the end"), Error);
}

TEST_CASE("det_data: held-out split is disjoint, complete, deterministic, and evaluable") {
  QuietLog q;
  const std::string d = synth_dir();
  DetDataset ds = DetDataset::load(d + "/annotations/instances_train.json", d + "/train");
  auto [train, val] = split_holdout(ds, 4, 7);
  CHECK(val.candidates().size() == 4);
  CHECK(train.candidates().size() == ds.candidates().size() - 4);
  std::set<int32_t> t(train.candidates().begin(), train.candidates().end()),
      v(val.candidates().begin(), val.candidates().end());
  for (int32_t c : v) CHECK(t.count(c) == 0);
  CHECK(t.size() + v.size() == ds.candidates().size());
  CHECK(std::is_sorted(val.candidates().begin(), val.candidates().end()));
  auto again = split_holdout(ds, 4, 7);
  CHECK(again.second.candidates() == val.candidates());
  CHECK(again.first.candidates() == train.candidates());
  CHECK(split_holdout(ds, 4, 8).second.candidates() != val.candidates());
  CHECK_THROWS_WITH_AS(split_holdout(ds, 11, 7), doctest::Contains("cannot hold out 11 of 10"), Error);

  // The held-out GT: exactly those images and all their annotations (crowd too);
  // detections equal to the non-crowd GT score AP 1.
  CocoDataset gt = val.coco_subset();
  REQUIRE(gt.images.size() == 4);
  size_t anns = 0;
  for (int32_t c : val.candidates()) {
    CHECK(gt.has_image(ds.coco().images[size_t(c)].id));
    anns += size_t(ds.coco().image_ann_begin[size_t(c) + 1] - ds.coco().image_ann_begin[size_t(c)]);
  }
  CHECK(gt.annotations.size() == anns);
  std::vector<CocoDetection> dets;
  for (const CocoAnnotation& a : gt.annotations)
    if (!a.iscrowd) dets.push_back(CocoDetection{a.image_id, a.category_id, a.bbox, 1.0});
  CocoEvalResult r = coco_evaluate(gt, dets);
  CHECK(r.stats[0] == doctest::Approx(1.0));
  CHECK(r.num_images == 4);

  // Written as JSON, it loads back the same.
  TmpDir dir;
  write_coco_instances(dir.file("held.json"), gt);
  CocoDataset back = load_coco_instances(dir.file("held.json"));
  REQUIRE(back.annotations.size() == gt.annotations.size());
  REQUIRE(back.images.size() == gt.images.size());
  for (size_t i = 0; i < gt.annotations.size(); ++i) {
    CHECK(back.annotations[i].id == gt.annotations[i].id);
    CHECK(back.annotations[i].bbox.x == gt.annotations[i].bbox.x);
    CHECK(back.annotations[i].bbox.h == gt.annotations[i].bbox.h);
    CHECK(back.annotations[i].area == gt.annotations[i].area);
    CHECK(back.annotations[i].iscrowd == gt.annotations[i].iscrowd);
  }
  CHECK(coco_evaluate(back, dets).stats == r.stats);
}

TEST_CASE("det_data: missing and corrupt image files: error naming the file, or skipped and counted") {
  QuietLog q;
  TmpDir dir;
  write_hand_set(dir.path);
  remove_all(dir.file("img/b.jpg"));
  {  // Truncated JPEG: libjpeg reports premature end of data.
    std::string bytes = read_file(dir.file("img/c.jpg"));
    write_file_atomic(dir.file("img/c.jpg"), std::string_view(bytes).substr(0, bytes.size() / 2), Durability::NoSync);
  }
  DetDatasetOptions o;
  o.empty_images = EmptyImages::Keep;
  DetDataset fail = DetDataset::load(dir.file("ann.json"), dir.file("img"), o);
  DetBatchParams p;
  p.augment = DetAugment::Eval;
  p.batch = 1;
  p.short_side = 32;
  p.max_size = 64;
  CHECK(make_det_batch(fail, p, 0).targets.size() == 1);
  CHECK_THROWS_WITH_AS(make_det_batch(fail, p, 1), doctest::Contains("b.jpg"), Error);
  CHECK_THROWS_WITH_AS(make_det_batch(fail, p, 2), doctest::Contains("c.jpg"), Error);
  // Through the loader, the error reaches the consumer.
  {
    auto l = make_det_loader(fail, p, 1, 2, 2);
    CHECK_THROWS_WITH_AS(l->next(), doctest::Contains("b.jpg"), Error);
  }

  o.bad_images = BadImages::Skip;
  DetDataset skip = DetDataset::load(dir.file("ann.json"), dir.file("img"), o);
  p.batch = 4;
  DetBatch b = make_det_batch(skip, p, 0);
  REQUIRE(b.targets.size() == 2);
  CHECK(b.targets[0].image_id == 10);
  CHECK(b.targets[1].image_id == 40);
  CHECK(b.images.size(0) == 2);
  CHECK(skip.bad_images_skipped() == 2);
  CHECK(skip.bad_images().files() == std::vector<std::string>{dir.file("img/b.jpg"), dir.file("img/c.jpg")});
  // Training batches stay full: a bad image is replaced by the next good one.
  DetBatchParams tr = p;
  tr.augment = DetAugment::Train;
  tr.batch = 6;
  DetBatch t = make_det_batch(skip, tr, 0);
  CHECK(t.targets.size() == 6);
  for (const ImageTargets& it : t.targets) CHECK((it.image_id == 10 || it.image_id == 40));
  CHECK(skip.bad_images_skipped() == 2);
  // Same batch again (bad files now known, not retried): identical.
  check_same_batch(make_det_batch(skip, tr, 0), t);
  // Only bad images: a clear error.
  DetDataset only_bad = skip.with_candidates({1, 2});
  CHECK_THROWS_WITH_AS(make_det_batch(only_bad, tr, 0), doctest::Contains("missing or corrupt"), Error);
  // An eval batch of only bad images is empty, not an error.
  DetBatchParams ev1 = p;
  ev1.batch = 2;
  CHECK(make_det_batch(only_bad, ev1, 0).images.size(0) == 0);
  // A size different from the JSON's is a bad image too.
  write_jpeg(dir.file("img/b.jpg"), Image(10, 10), JpegParams{}, Durability::NoSync);
  CHECK_THROWS_WITH_AS(make_det_batch(fail, DetBatchParams{1, 32, 64, DetAugment::Eval}, 1),
                       doctest::Contains("differs from the annotation file's 40x80"), Error);
  // A missing image folder is reported at load.
  CHECK_THROWS_WITH_AS(DetDataset::load(dir.file("ann.json"), dir.file("nope")), doctest::Contains("nope"), Error);
}
