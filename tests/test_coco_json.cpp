// COCO instances / results JSON parsing: the structs, the contiguous label
// mapping for non-contiguous category ids, the per-image annotation lists, and
// every kind of bad input giving an error that names the file and the field.
#include <doctest/doctest.h>

#include <string>

#include "core/error.h"
#include "data/coco.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::data;

namespace {

// Categories 11, 3, 7 on purpose: not contiguous, not sorted.
const char* kGt = R"({
  "info": {"description": "test", "nested": {"a": [1, 2, {"b": null}]}},
  "licenses": [],
  "images": [
    {"id": 42, "width": 640, "height": 480, "file_name": "a.jpg", "license": 3},
    {"id": 7, "width": 100, "height": 50, "file_name": "dir/b \"q\".jpg"},
    {"id": 1000000000001, "width": 1, "height": 1, "file_name": "c.jpg"}
  ],
  "annotations": [
    {"id": 5, "image_id": 7, "category_id": 11, "bbox": [1, 2.5, 30, 40], "area": 1000.5, "iscrowd": 0,
     "segmentation": [[1, 2, 3, 4, 5, 6]]},
    {"id": 1, "image_id": 42, "category_id": 3, "bbox": [0.25, 0, 10, 20], "area": 200, "iscrowd": 1,
     "segmentation": {"counts": "ab[c]\"{", "size": [480, 640]}},
    {"id": 9, "image_id": 7, "category_id": 7, "bbox": [5e1, 6E0, 0, 1.0e0], "area": 0, "iscrowd": 0}
  ],
  "categories": [
    {"id": 11, "name": "eleven", "supercategory": "s"},
    {"id": 3, "name": "three", "supercategory": "s"},
    {"id": 7, "name": "seven"}
  ]
})";

// Replaces the first occurrence of `from` in kGt (which must exist).
std::string gt_with(const std::string& from, const std::string& to) {
  std::string s = kGt;
  size_t p = s.find(from);
  REQUIRE_MESSAGE(p != std::string::npos, "test setup: '" << from << "' not in the GT text");
  return s.replace(p, from.size(), to);
}

std::string error_of(const std::string& json) {
  try {
    parse_coco_instances(json, "gt.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string result_error_of(const std::string& json) {
  CocoDataset gt = parse_coco_instances(kGt, "gt.json");
  try {
    parse_coco_results(json, gt, "dt.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("coco_json: instances JSON into structs, unknown fields skipped") {
  CocoDataset ds = parse_coco_instances(kGt, "gt.json");
  CHECK(ds.source == "gt.json");
  REQUIRE(ds.images.size() == 3);
  CHECK(ds.images[0].id == 42);
  CHECK(ds.images[0].width == 640);
  CHECK(ds.images[0].height == 480);
  CHECK(ds.images[1].file_name == "dir/b \"q\".jpg");
  CHECK(ds.images[2].id == 1000000000001);
  REQUIRE(ds.categories.size() == 3);
  CHECK(ds.categories[0].name == "eleven");
  CHECK(ds.categories[2].supercategory == "");
  REQUIRE(ds.annotations.size() == 3);
  const CocoAnnotation& a = ds.annotations[0];
  CHECK(a.id == 5);
  CHECK(a.image_id == 7);
  CHECK(a.category_id == 11);
  CHECK(a.bbox.x == 1.0);
  CHECK(a.bbox.y == 2.5);
  CHECK(a.bbox.w == 30.0);
  CHECK(a.bbox.h == 40.0);
  CHECK(a.area == 1000.5);
  CHECK(a.iscrowd == 0);
  CHECK(ds.annotations[1].iscrowd == 1);
  CHECK(ds.annotations[1].bbox.x == 0.25);
  CHECK(ds.annotations[2].bbox.x == 50.0);
  CHECK(ds.annotations[2].bbox.h == 1.0);
  // Derived fields and the per-image lists (file order inside an image).
  CHECK(ds.image_index.at(7) == 1);
  CHECK(a.image_index == 1);
  CHECK(ds.image(1000000000001).file_name == "c.jpg");
  CHECK(ds.has_image(42));
  CHECK_FALSE(ds.has_image(8));
  REQUIRE(ds.image_ann_begin.size() == 4);
  CHECK(ds.image_ann_begin == std::vector<int64_t>{0, 1, 3, 3});
  CHECK(ds.image_anns == std::vector<int32_t>{1, 0, 2});
  // The contents do not depend on whether it came from a file.
  CHECK(parse_coco_instances(std::string(kGt) + "\n", "x").annotations.size() == 3);
  // "annotations" may be absent (image lists such as test-dev).
  CocoDataset no_anns = parse_coco_instances(R"({"images": [], "categories": [{"id": 1, "name": "a"}]})", "t.json");
  CHECK(no_anns.annotations.empty());
  CHECK(no_anns.num_classes() == 1);
}

TEST_CASE("coco_json: non-contiguous category ids map to labels 0..K-1 in ascending id order and back") {
  CocoDataset ds = parse_coco_instances(kGt, "gt.json");
  CHECK(ds.num_classes() == 3);
  CHECK(ds.label_to_category == std::vector<int64_t>{3, 7, 11});
  CHECK(ds.label_of(3) == 0);
  CHECK(ds.label_of(7) == 1);
  CHECK(ds.label_of(11) == 2);
  for (int32_t l = 0; l < ds.num_classes(); ++l) CHECK(ds.label_of(ds.category_of(l)) == l);
  CHECK(ds.annotations[0].label == 2);
  CHECK(ds.annotations[1].label == 0);
  CHECK(ds.annotations[2].label == 1);
  CHECK(ds.category_index.at(3) == 1);  // index in the file's list
  CHECK_THROWS_WITH_AS(ds.label_of(4), doctest::Contains("gt.json: unknown category id 4"), Error);
  CHECK_THROWS_WITH_AS(ds.category_of(3), doctest::Contains("label 3 out of range [0, 3)"), Error);
  CHECK_THROWS_WITH_AS(ds.image(8), doctest::Contains("unknown image id 8"), Error);
}

TEST_CASE("coco_json: results JSON into detections") {
  CocoDataset gt = parse_coco_instances(kGt, "gt.json");
  auto dets = parse_coco_results(R"([
    {"image_id": 42, "category_id": 3, "bbox": [1, 2, 3, 4], "score": 0.75, "extra": [1, {"x": 2}]},
    {"image_id": 7, "category_id": 11, "bbox": [0.5, 0, 0, 2e2], "score": 1e-3}
  ])",
                                 gt, "dt.json");
  REQUIRE(dets.size() == 2);
  CHECK(dets[0].image_id == 42);
  CHECK(dets[0].category_id == 3);
  CHECK(dets[0].bbox.h == 4.0);
  CHECK(dets[0].score == 0.75);
  CHECK(dets[1].bbox.h == 200.0);
  CHECK(dets[1].score == 0.001);
  CHECK(parse_coco_results("[]", gt, "dt.json").empty());
}

TEST_CASE("coco_json: malformed JSON names the file and the position") {
  // A missing comma on line 5.
  std::string e = error_of(gt_with(R"("width": 640, "height")", R"("width": 640 "height")"));
  CHECK(e.find("gt.json: malformed JSON at byte") != std::string::npos);
  CHECK(e.find("(line 5, column") != std::string::npos);
  CHECK(e.find("in images[0]") != std::string::npos);
  // Truncated file.
  e = error_of(std::string(kGt).substr(0, 300));
  CHECK(e.find("gt.json: malformed JSON") != std::string::npos);
  // An unclosed string: found by position.
  e = error_of("{\"images\": [{\"id\": 1, \"file_name\": \"abc}]}");
  CHECK(e.find("gt.json: malformed JSON at byte 35 (line 1, column 36)") != std::string::npos);
  // A raw control character inside a string, and invalid UTF-8.
  e = error_of("{\"images\": [], \"categories\": [{\"id\": 1, \"name\": \"a\tb\"}]}");
  CHECK(e.find("malformed JSON at byte 50 (line 1, column 51)") != std::string::npos);
  e = error_of("{\"images\": [], \"categories\": [{\"id\": 1, \"name\": \"a\xff\"}]}");
  CHECK(e.find("malformed JSON at byte 50 (line 1, column 51)") != std::string::npos);
  // Garbage literals, trailing content, nothing at all, the wrong top-level type.
  CHECK(error_of(gt_with("\"licenses\": []", "\"licenses\": [tru]")).find("gt.json: malformed JSON") !=
        std::string::npos);
  e = error_of(std::string(kGt) + " {}");
  CHECK(e.find("gt.json: malformed JSON at byte") != std::string::npos);
  CHECK(e.find("after the end of the JSON value") != std::string::npos);
  CHECK(error_of("").find("gt.json: malformed JSON") != std::string::npos);
  CHECK(error_of("  \n ").find("gt.json: malformed JSON") != std::string::npos);
  CHECK(error_of("[1, 2]").find("gt.json: top level: expected a JSON object") != std::string::npos);
  CHECK(error_of(gt_with("[[1, 2, 3, 4, 5, 6]]", "[[1, 2, 3, 4, 5, 6]")).find("gt.json: malformed JSON") !=
        std::string::npos);
}

TEST_CASE("coco_json: missing keys and wrong types name the field") {
  CHECK(error_of(R"({"images": []})").find("gt.json: top level: missing key \"categories\"") != std::string::npos);
  CHECK(error_of(R"({"categories": []})").find("gt.json: top level: missing key \"images\"") != std::string::npos);
  CHECK(error_of(gt_with(R"(, "file_name": "c.jpg")", "")).find("gt.json: images[2]: missing key \"file_name\"") !=
        std::string::npos);
  CHECK(error_of(gt_with(R"("bbox": [1, 2.5, 30, 40], )", "")).find("gt.json: annotations[0]: missing key \"bbox\"") !=
        std::string::npos);
  CHECK(error_of(gt_with(R"(, "iscrowd": 1)", "")).find("annotations[1]: missing key \"iscrowd\"") !=
        std::string::npos);
  CHECK(error_of(gt_with(R"({"id": 3, "name": "three", )", R"({"id": 3, )"))
            .find("gt.json: categories[1]: missing key \"name\"") != std::string::npos);
  // Types.
  CHECK(error_of(gt_with("[1, 2.5, 30, 40]", "[1, 2.5, 30]"))
            .find("gt.json: annotations[0].bbox: expected 4 numbers [x, y, w, h], got 3 elements") !=
        std::string::npos);
  CHECK(error_of(gt_with("[1, 2.5, 30, 40]", "[1, 2.5, 30, 40, 50]")).find("annotations[0].bbox: expected 4 numbers") !=
        std::string::npos);
  CHECK(error_of(gt_with("[1, 2.5, 30, 40]", "[1, \"2.5\", 30, 40]"))
            .find("annotations[0].bbox: expected 4 numbers [x, y, w, h], element 1 is a string") != std::string::npos);
  CHECK(error_of(gt_with("[1, 2.5, 30, 40]", "\"1 2 3 4\""))
            .find("annotations[0].bbox: expected 4 numbers [x, y, w, h], got a string") != std::string::npos);
  CHECK(error_of(gt_with("[1, 2.5, 30, 40]", "[1, 2.5, NaN, 40]")).find("gt.json: malformed JSON") !=
        std::string::npos);
  CHECK(error_of(gt_with(R"({"id": 42,)", R"({"id": "42",)"))
            .find("gt.json: images[0].id: expected an integer, got a string") != std::string::npos);
  CHECK(error_of(gt_with(R"({"id": 42,)", R"({"id": 4.5,)"))
            .find("gt.json: images[0].id: expected an integer, got 4.5") != std::string::npos);
  CHECK(error_of(gt_with(R"("width": 640)", R"("width": 1e99)")).find("images[0].width: expected an integer") !=
        std::string::npos);
  CHECK(
      error_of(gt_with(R"("area": 200)", R"("area": null)")).find("annotations[1].area: expected a number, got null") !=
      std::string::npos);
  CHECK(error_of(gt_with(R"("area": 200)", R"("area": 1e999)")).find("annotations[1].area") != std::string::npos);
  CHECK(
      error_of(gt_with(R"("name": "eleven")", R"("name": 11)")).find("categories[0].name: expected a string, got 11") !=
      std::string::npos);
  CHECK(error_of(gt_with(R"("licenses": [],)", R"("images": {},)"))
            .find("gt.json: images: expected an array, got an object") != std::string::npos);
  CHECK(error_of(gt_with(R"({"id": 7, "name": "seven"})", "7")).find("categories[2]: expected an object, got 7") !=
        std::string::npos);
  CHECK(
      error_of(gt_with(R"("iscrowd": 1)", R"("iscrowd": 2)")).find("annotations[1].iscrowd: expected 0 or 1, got 2") !=
      std::string::npos);
}

TEST_CASE("coco_json: inconsistent ground truth: unknown ids, bad boxes, duplicate ids") {
  CHECK(error_of(gt_with(R"("image_id": 7, "category_id": 11)", R"("image_id": 8, "category_id": 11)"))
            .find("gt.json: annotations[0].image_id 8 is not the id of an entry in images") != std::string::npos);
  CHECK(error_of(gt_with(R"("category_id": 11)", R"("category_id": 12)"))
            .find("gt.json: annotations[0].category_id 12 is not the id of an entry in categories") !=
        std::string::npos);
  CHECK(error_of(gt_with("[1, 2.5, 30, 40]", "[1, 2.5, -30, 40]"))
            .find("gt.json: annotations[0].bbox: negative box size") != std::string::npos);
  CHECK(error_of(gt_with("[1, 2.5, 30, 40]", "[1, 2.5, 30, -0.5]")).find("annotations[0].bbox: negative box size") !=
        std::string::npos);
  CHECK(error_of(gt_with(R"("area": 200)", R"("area": -1)"))
            .find("annotations[1].area: -1 is not a finite number >= 0") != std::string::npos);
  CHECK(error_of(gt_with(R"({"id": 7, "width")", R"({"id": 42, "width")"))
            .find("gt.json: images[1].id 42 duplicates images[0].id") != std::string::npos);
  CHECK(error_of(gt_with(R"({"id": 7, "name")", R"({"id": 3, "name")"))
            .find("gt.json: categories[2].id 3 duplicates categories[1].id") != std::string::npos);
  CHECK(error_of(gt_with(R"({"id": 9, "image_id")", R"({"id": 5, "image_id")"))
            .find("gt.json: annotations[2].id 5 duplicates annotations[0].id") != std::string::npos);
  // The same checks for a dataset built in code.
  CocoDataset ds = parse_coco_instances(kGt, "gt.json");
  ds.annotations[2].bbox.w = std::nan("");
  CHECK_THROWS_WITH_AS(finalize_coco_dataset(ds), doctest::Contains("annotations[2].bbox: non-finite box"), Error);
  CHECK_THROWS_WITH_AS(load_coco_instances("/nonexistent/gt.json"),
                       doctest::Contains("/nonexistent/gt.json: cannot open: No such file or directory"), Error);
}

TEST_CASE("coco_json: bad results: unknown image or category ids, bad boxes, missing keys, wrong types") {
  const std::string ok = R"({"image_id": 42, "category_id": 3, "bbox": [1, 2, 3, 4], "score": 0.5})";
  CHECK(result_error_of("[" + ok + "]") == "(no error)");
  CHECK(result_error_of("[" + ok + R"(, {"image_id": 43, "category_id": 3, "bbox": [1, 2, 3, 4], "score": 0.5}])")
            .find("dt.json: results[1].image_id 43 is not an image of the ground truth (gt.json)") !=
        std::string::npos);
  CHECK(result_error_of(R"([{"image_id": 42, "category_id": 4, "bbox": [1, 2, 3, 4], "score": 0.5}])")
            .find("dt.json: results[0].category_id 4 is not a category of the ground truth (gt.json)") !=
        std::string::npos);
  CHECK(result_error_of(R"([{"image_id": 42, "category_id": 3, "bbox": [1, 2, 3, -4], "score": 0.5}])")
            .find("dt.json: results[0].bbox: negative box size") != std::string::npos);
  CHECK(result_error_of(R"([{"image_id": 42, "category_id": 3, "bbox": [1, 2, 3, 4]}])")
            .find("dt.json: results[0]: missing key \"score\"") != std::string::npos);
  CHECK(result_error_of(R"([{"image_id": 42, "category_id": 3, "bbox": [1, 2, 3], "score": 0.5}])")
            .find("dt.json: results[0].bbox: expected 4 numbers") != std::string::npos);
  CHECK(result_error_of(R"([{"image_id": 42, "category_id": 3, "bbox": [1, 2, 3, 4], "score": "high"}])")
            .find("dt.json: results[0].score: expected a number, got a string") != std::string::npos);
  CHECK(result_error_of(R"({"results": []})").find("dt.json: results: expected a JSON list") != std::string::npos);
  CHECK(result_error_of("[" + ok + ", 5]").find("dt.json: results[1]: expected an object, got 5") != std::string::npos);
  CHECK(result_error_of("[" + ok + " " + ok + "]").find("dt.json: malformed JSON at byte") != std::string::npos);
  CHECK(result_error_of("[" + ok + "] x").find("dt.json: malformed JSON at byte") != std::string::npos);
}

TEST_CASE("coco_json: files larger than one parse batch keep indices, values and error positions") {
  // ~9 MB of annotations with polygon segmentations: the parser hands simdjson a
  // few MB at a time, so this crosses batch boundaries.
  const int n = 30000;
  auto build = [&](int bad_index, const std::string& bad_bbox) {
    std::string s = "{\"info\": {}, \"images\": [";
    for (int i = 0; i < 50; ++i)
      s += (i ? "," : "") + std::string("{\"id\": ") + std::to_string(i * 3 + 1) +
           ", \"width\": 640, \"height\": 480, \"file_name\": \"x.jpg\"}";
    s += "],\n\"annotations\": [\n";
    for (int i = 0; i < n; ++i) {
      s += i ? ",\n" : "";
      s += "{\"segmentation\": [[";
      for (int k = 0; k < 40; ++k) s += (k ? ", " : "") + std::to_string(k * 7 % 500) + ".25";
      s += "]], \"area\": " + std::to_string(i % 5000) + ".5, \"iscrowd\": " + (i % 97 == 0 ? "1" : "0") +
           ", \"image_id\": " + std::to_string((i % 50) * 3 + 1) +
           ", \"bbox\": " + (i == bad_index ? bad_bbox : "[" + std::to_string(i % 300) + ".5, 2, 30, 40]") +
           ", \"category_id\": " + std::to_string(i % 3 == 0 ? 3 : 11) + ", \"id\": " + std::to_string(i + 1) + "}";
    }
    s += "\n], \"categories\": [{\"id\": 11, \"name\": \"a\"}, {\"id\": 3, \"name\": \"b\"}]}";
    return s;
  };
  std::string text = build(-1, "");
  REQUIRE(text.size() > size_t(8) << 20);
  CocoDataset ds = parse_coco_instances(text, "big.json");
  REQUIRE(ds.annotations.size() == size_t(n));
  REQUIRE(ds.images.size() == 50);
  for (int i : {0, 1, 12345, 17000, n - 1}) {
    const CocoAnnotation& a = ds.annotations[size_t(i)];
    CHECK(a.id == i + 1);
    CHECK(a.bbox.x == double(i % 300) + 0.5);
    CHECK(a.area == double(i % 5000) + 0.5);
    CHECK(a.iscrowd == (i % 97 == 0 ? 1 : 0));
    CHECK(a.image_id == (i % 50) * 3 + 1);
    CHECK(a.label == (i % 3 == 0 ? 0 : 1));
  }
  // A type error and a malformed token late in the file: the right index, and the
  // right line (annotation i is on line i + 3).
  CHECK(error_of(build(25000, "[1, 2, 3]")).find("gt.json: annotations[25000].bbox: expected 4 numbers") !=
        std::string::npos);
  std::string e = error_of(build(25000, "[1, 2, 3, 4x]"));
  CHECK(e.find("gt.json: malformed JSON at byte") != std::string::npos);
  CHECK(e.find("(line 25003, column") != std::string::npos);
  CHECK(e.find("in annotations[25000]") != std::string::npos);
}

TEST_CASE("coco_json: structural errors found by the outer scanner") {
  CHECK(error_of(R"({"images": [1,], "categories": []})")
            .find("gt.json: malformed JSON at byte 14 (line 1, column 15): unexpected ']'") != std::string::npos);
  CHECK(error_of(R"({"images": [{"a": [1}], "categories": []})")
            .find("malformed JSON at byte 20 (line 1, column 21): unexpected '}'") != std::string::npos);
  CHECK(error_of(R"({"images": [], "categories": [],})")
            .find("malformed JSON at byte 32 (line 1, column 33): expected a key") != std::string::npos);
  CHECK(error_of(R"({"images": [], "images": [], "categories": []})")
            .find("gt.json: top level: key \"images\" appears twice") != std::string::npos);
  CHECK(error_of(R"({"images": [] "categories": []})")
            .find("expected ',' or '}' after a member of the top-level object") != std::string::npos);
  CHECK(error_of(R"({"images": [{}{}], "categories": []})").find("expected ',' or ']' after an array element") !=
        std::string::npos);
}
