// Synthetic datasets: byte-identical output for a seed, COCO annotations that
// agree with the images (boxes inside, area <= w*h, the non-contiguous category
// ids, crowd regions), the spread over COCO's area ranges, the ImageFolder
// layout, and the guards against writing into foreign folders.
#include <doctest/doctest.h>
#include <simdjson.h>
#include <stdlib.h>

#include <map>
#include <set>

#include "core/error.h"
#include "core/log.h"
#include "data/image.h"
#include "data/synthetic.h"
#include "runtime/fs.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::data;

namespace {

// Keeps make-data's progress lines out of the test output.
struct QuietLog {
  LogLevel saved = log_level();
  QuietLog() { set_log_level(LogLevel::Warn); }
  ~QuietLog() { set_log_level(saved); }
};

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/detnas_test_synth_XXXXXX";
    const char* p = mkdtemp(tmpl);
    REQUIRE(p != nullptr);
    path = p;
  }
  ~TempDir() { remove_all(path); }
};

// Every file under `root` (relative path -> bytes).
void collect(const std::string& root, const std::string& rel, std::map<std::string, std::string>& out) {
  const std::string here = rel.empty() ? root : path_join(root, rel);
  for (const std::string& name : list_dir(here, ListFilter::All, ListHidden::Include)) {
    const std::string r = rel.empty() ? name : path_join(rel, name);
    if (dir_exists(path_join(root, r)))
      collect(root, r, out);
    else
      out[r] = read_file(path_join(root, r));
  }
}

std::vector<uint8_t> to_bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

SyntheticDetParams small_det(uint64_t seed) {
  SyntheticDetParams p;
  p.train = 6;
  p.val = 3;
  p.image_size = 96;
  p.seed = seed;
  return p;
}

}  // namespace

TEST_CASE("synthetic: the same seed gives byte-identical files, another seed does not") {
  QuietLog quiet;
  TempDir t;
  const std::string a = path_join(t.path, "a"), b = path_join(t.path, "b"), c = path_join(t.path, "c");
  make_detection_set(a, small_det(7));
  make_detection_set(b, small_det(7));
  make_detection_set(c, small_det(8));
  SyntheticClsParams cp;
  cp.train_per_class = 2;
  cp.val_per_class = 1;
  cp.image_size = 32;
  make_classification_set(path_join(a, "cls"), cp);
  make_classification_set(path_join(b, "cls"), cp);
  std::map<std::string, std::string> fa, fb, fc;
  collect(a, "", fa);
  collect(b, "", fb);
  collect(c, "", fc);
  CHECK(fa.size() == 6 + 3 + 2 + 1 + 10 * 3 + 1);  // images, 2 JSON, marker, cls images, cls marker
  CHECK(fa.count("annotations/instances_train.json") == 1);
  CHECK(fa.count("train/000000000001.jpg") == 1);
  CHECK(fa.count("val/000001000001.jpg") == 1);
  CHECK(fa.count("cls/train/bar/000001.jpg") == 1);
  CHECK(fa.count("cls/val/triangle/000000.jpg") == 1);
  bool same = fa == fb;
  CHECK(same);
  CHECK(fa["train/000000000003.jpg"] != fc["train/000000000003.jpg"]);
  // Val images do not depend on the number of training images.
  SyntheticSample v1 = render_detection_sample(7, SyntheticSplit::Val, 2, 96);
  CHECK(encode_jpeg(v1.image, {90, JpegSubsampling::S444}) == to_bytes(fa["val/000001000003.jpg"]));
}

TEST_CASE("synthetic: COCO annotations agree with the images") {
  QuietLog quiet;
  TempDir t;
  SyntheticDetParams p = small_det(3);
  p.train = 10;
  p.val = 4;
  p.image_size = 128;
  SyntheticDetStats st = make_detection_set(t.path, p);
  CHECK(synthetic_set_complete(t.path));
  CHECK(st.images == 14);
  const std::set<int64_t> cat_ids = {1, 3, 7, 10, 15};
  int64_t total = 0;
  for (const char* split : {"train", "val"}) {
    CAPTURE(split);
    simdjson::dom::parser parser;
    simdjson::dom::element doc =
        parser.load(path_join(t.path, std::string("annotations/instances_") + split + ".json"));
    std::map<int64_t, std::pair<int64_t, int64_t>> sizes;  // id -> (w, h)
    for (simdjson::dom::element im : doc["images"].get_array()) {
      const std::string file = path_join(path_join(t.path, split), std::string(std::string_view(im["file_name"])));
      Image img = read_image(file);
      CHECK(img.width == int64_t(im["width"]));
      CHECK(img.height == int64_t(im["height"]));
      CHECK(sizes.count(int64_t(im["id"])) == 0);
      sizes[int64_t(im["id"])] = {img.width, img.height};
    }
    CHECK(int64_t(sizes.size()) == (std::string(split) == "train" ? 10 : 4));
    std::set<int64_t> cats, ann_ids;
    for (simdjson::dom::element c : doc["categories"].get_array()) cats.insert(int64_t(c["id"]));
    CHECK(cats == cat_ids);
    for (simdjson::dom::element a : doc["annotations"].get_array()) {
      ++total;
      CHECK(ann_ids.insert(int64_t(a["id"])).second);
      const int64_t image_id = int64_t(a["image_id"]);
      REQUIRE(sizes.count(image_id) == 1);
      CHECK(cat_ids.count(int64_t(a["category_id"])) == 1);
      simdjson::dom::array bb = a["bbox"];
      const double x = bb.at(0), y = bb.at(1), w = bb.at(2), h = bb.at(3), area = a["area"];
      CHECK(x >= 0);
      CHECK(y >= 0);
      CHECK(w > 0);
      CHECK(h > 0);
      CHECK(x + w <= double(sizes[image_id].first));
      CHECK(y + h <= double(sizes[image_id].second));
      CHECK(area > 0);
      CHECK(area <= w * h);
      const int64_t crowd = a["iscrowd"];
      CHECK((crowd == 0 || crowd == 1));
    }
  }
  CHECK(total == st.objects);
}

TEST_CASE("synthetic: objects span COCO small/medium/large, include crowds, 1-10 per image") {
  int64_t n_small = 0, n_medium = 0, n_large = 0, n_crowd = 0, n_total = 0, n_partial = 0;
  std::set<int64_t> cats;
  for (int64_t i = 0; i < 100; ++i) {
    SyntheticSample s = render_detection_sample(11, SyntheticSplit::Train, i, 256);
    REQUIRE(s.image.height == 256);
    int64_t plain = 0;
    for (const SyntheticObject& o : s.objects) {
      const double w = o.bbox[2], h = o.bbox[3];
      CHECK(o.bbox[0] >= 0);
      CHECK(o.bbox[0] + w <= 256);
      CHECK(o.bbox[1] + h <= 256);
      CHECK(o.area <= w * h);
      cats.insert(o.category_id);
      (o.area < 32 * 32 ? n_small : o.area < 96 * 96 ? n_medium : n_large)++;
      n_crowd += o.iscrowd;
      plain += 1 - o.iscrowd;
      if (double(o.area) < 0.8 * w * h) ++n_partial;  // discs, triangles, rings, crosses, occluded shapes
    }
    CHECK(plain >= 1);
    CHECK(plain <= 10);
    n_total += int64_t(s.objects.size());
  }
  INFO("small ", n_small, " medium ", n_medium, " large ", n_large, " crowd ", n_crowd, " of ", n_total);
  CHECK(cats == std::set<int64_t>{1, 3, 7, 10, 15});
  CHECK(n_small > n_total / 5);
  CHECK(n_medium > n_total / 5);
  CHECK(n_large > n_total / 20);
  CHECK(n_crowd >= 3);
  CHECK(n_partial > n_total / 3);
  // The same sample twice is identical.
  SyntheticSample a = render_detection_sample(5, SyntheticSplit::Val, 9, 64),
                  b = render_detection_sample(5, SyntheticSplit::Val, 9, 64);
  CHECK(a.image.pixels == b.image.pixels);
  CHECK(a.objects.size() == b.objects.size());
}

TEST_CASE("synthetic: classification set in ImageFolder layout") {
  QuietLog quiet;
  TempDir t;
  SyntheticClsParams p;
  p.train_per_class = 3;
  p.val_per_class = 1;
  p.image_size = 24;
  p.seed = 2;
  make_classification_set(t.path, p);
  CHECK(synthetic_set_complete(t.path));
  const auto& classes = synthetic_cls_classes();
  CHECK(classes.size() == 10);
  CHECK(std::is_sorted(classes.begin(), classes.end()));
  CHECK(list_dir(path_join(t.path, "train"), ListFilter::Dirs) == classes);
  CHECK(list_dir(path_join(t.path, "val"), ListFilter::Dirs) == classes);
  for (const std::string& c : classes) {
    std::vector<std::string> files = list_dir(path_join(path_join(t.path, "train"), c), ListFilter::Files);
    REQUIRE(files.size() == 3);
    Image img = read_image(path_join(path_join(path_join(t.path, "train"), c), files[0]));
    CHECK(img.height == 24);
    CHECK(img.width == 24);
  }
  // Different classes and different indices give different pictures.
  Image a = render_classification_sample(2, SyntheticSplit::Train, 0, 0, 24);
  CHECK(a.pixels != render_classification_sample(2, SyntheticSplit::Train, 1, 0, 24).pixels);
  CHECK(a.pixels != render_classification_sample(2, SyntheticSplit::Train, 0, 1, 24).pixels);
  CHECK_THROWS_WITH_AS(render_classification_sample(2, SyntheticSplit::Train, 10, 0, 24), doctest::Contains("class 10"),
                       Error);
}

TEST_CASE("synthetic: guards and bad parameters") {
  QuietLog quiet;
  TempDir t;
  const std::string foreign = path_join(t.path, "foreign");
  make_dirs(foreign);
  write_file_atomic(path_join(foreign, "notes.txt"), std::string("mine"));
  CHECK_THROWS_WITH_AS(ensure_synthetic_det(foreign, small_det(1)), doctest::Contains("is not empty"), Error);
  const std::string fresh = path_join(t.path, "fresh");
  CHECK(ensure_synthetic_det(fresh, small_det(1)) == fresh);
  CHECK(synthetic_set_complete(fresh));
  remove_all(path_join(fresh, "train/000000000001.jpg"));
  ensure_synthetic_det(fresh, small_det(1));  // complete: nothing is regenerated
  CHECK(!file_exists(path_join(fresh, "train/000000000001.jpg")));
  SyntheticDetParams bad = small_det(1);
  bad.image_size = 8;
  CHECK_THROWS_WITH_AS(make_detection_set(path_join(t.path, "x"), bad),
                       doctest::Contains("image size must be 32..4096"), Error);
  bad = small_det(1);
  bad.train = bad.val = 0;
  CHECK_THROWS_WITH_AS(make_detection_set(path_join(t.path, "x"), bad), doctest::Contains("image counts"), Error);
  bad = small_det(1);
  bad.jpeg_quality = 0;
  CHECK_THROWS_WITH_AS(make_detection_set(path_join(t.path, "x"), bad), doctest::Contains("JPEG quality"), Error);
  CHECK(synthetic_det_dir("data/synthetic") == "data/synthetic/det");
  CHECK(synthetic_cls_dir("data/synthetic/") == "data/synthetic/cls");
}
