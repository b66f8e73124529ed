// COCO instances / results JSON -> plain structs (data/coco.h). The files are
// streamed (data/coco_json.h): the known fields of each element are read straight
// into the structs, everything else is validated and dropped. Checks that need
// the whole file (ids, cross references) run afterwards in finalize_coco_dataset
// and validate_coco_detections.
#include "data/coco.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "data/coco_json.h"

namespace detnas::data {

namespace od = simdjson::ondemand;
using coco_json::JsonReader;
using coco_json::Where;

namespace {
std::string at(const char* array, size_t i, const char* key = nullptr) {
  return coco_json::Where{array, int64_t(i), key}.str();
}
}  // namespace

// ---------------------------------------------------------------- dataset

int32_t CocoDataset::label_of(int64_t category_id) const {
  auto it = category_label.find(category_id);
  DETNAS_CHECK(it != category_label.end(), source, ": unknown category id ", category_id);
  return it->second;
}

int64_t CocoDataset::category_of(int32_t label) const {
  DETNAS_CHECK(label >= 0 && label < num_classes(), source, ": label ", label, " out of range [0, ", num_classes(),
               ")");
  return label_to_category[size_t(label)];
}

const CocoImage& CocoDataset::image(int64_t image_id) const {
  auto it = image_index.find(image_id);
  DETNAS_CHECK(it != image_index.end(), source, ": unknown image id ", image_id);
  return images[size_t(it->second)];
}

namespace {

// Finds duplicate ids: returns (first, second) file indices of one duplicate pair,
// the pair with the smallest second index, or (-1, -1).
std::pair<int64_t, int64_t> find_duplicate(std::vector<std::pair<int64_t, int64_t>> id_index) {
  std::sort(id_index.begin(), id_index.end());
  std::pair<int64_t, int64_t> best{-1, -1};
  for (size_t i = 1; i < id_index.size(); ++i)
    if (id_index[i].first == id_index[i - 1].first && (best.second < 0 || id_index[i].second < best.second))
      best = {id_index[i - 1].second, id_index[i].second};
  return best;
}

// Messages are built only on failure: this runs once per annotation / detection.
void check_box(const CocoBox& b, const std::string& source, const char* array, size_t i) {
  DETNAS_CHECK(std::isfinite(b.x) && std::isfinite(b.y) && std::isfinite(b.w) && std::isfinite(b.h), source, ": ",
               at(array, i, "bbox"), ": non-finite box [", b.x, ", ", b.y, ", ", b.w, ", ", b.h, "]");
  DETNAS_CHECK(b.w >= 0 && b.h >= 0, source, ": ", at(array, i, "bbox"), ": negative box size (w ", b.w, ", h ", b.h,
               ") in [x, y, w, h] = [", b.x, ", ", b.y, ", ", b.w, ", ", b.h, "]");
}

}  // namespace

void finalize_coco_dataset(CocoDataset& ds) {
  const std::string& src = ds.source;
  DETNAS_CHECK(ds.images.size() < size_t(INT32_MAX) && ds.annotations.size() < size_t(INT32_MAX), src,
               ": too many images or annotations");
  ds.image_index.clear();
  ds.image_index.reserve(ds.images.size());
  for (size_t i = 0; i < ds.images.size(); ++i) {
    auto [it, inserted] = ds.image_index.emplace(ds.images[i].id, int32_t(i));
    DETNAS_CHECK(inserted, src, ": ", at("images", i, "id"), " ", ds.images[i].id, " duplicates ",
                 at("images", size_t(it->second), "id"));
  }
  ds.category_index.clear();
  ds.category_label.clear();
  ds.label_to_category.clear();
  for (size_t i = 0; i < ds.categories.size(); ++i) {
    auto [it, inserted] = ds.category_index.emplace(ds.categories[i].id, int32_t(i));
    DETNAS_CHECK(inserted, src, ": ", at("categories", i, "id"), " ", ds.categories[i].id, " duplicates ",
                 at("categories", size_t(it->second), "id"));
    ds.label_to_category.push_back(ds.categories[i].id);
  }
  std::sort(ds.label_to_category.begin(), ds.label_to_category.end());
  for (size_t l = 0; l < ds.label_to_category.size(); ++l) ds.category_label[ds.label_to_category[l]] = int32_t(l);

  std::vector<std::pair<int64_t, int64_t>> ids(ds.annotations.size());
  std::vector<int64_t> count(ds.images.size() + 1, 0);
  for (size_t i = 0; i < ds.annotations.size(); ++i) {
    CocoAnnotation& a = ds.annotations[i];
    ids[i] = {a.id, int64_t(i)};
    auto im = ds.image_index.find(a.image_id);
    DETNAS_CHECK(im != ds.image_index.end(), src, ": ", at("annotations", i, "image_id"), " ", a.image_id,
                 " is not the id of an entry in images");
    auto cat = ds.category_label.find(a.category_id);
    DETNAS_CHECK(cat != ds.category_label.end(), src, ": ", at("annotations", i, "category_id"), " ", a.category_id,
                 " is not the id of an entry in categories");
    check_box(a.bbox, src, "annotations", i);
    DETNAS_CHECK(std::isfinite(a.area) && a.area >= 0, src, ": ", at("annotations", i, "area"), ": ", a.area,
                 " is not a finite number >= 0");
    DETNAS_CHECK(a.iscrowd == 0 || a.iscrowd == 1, src, ": ", at("annotations", i, "iscrowd"),
                 ": expected 0 or 1, got ", a.iscrowd);
    a.image_index = im->second;
    a.label = cat->second;
    count[size_t(im->second) + 1]++;
  }
  auto dup = find_duplicate(std::move(ids));
  DETNAS_CHECK(dup.first < 0, src, ": ", at("annotations", size_t(dup.second), "id"), " ",
               dup.second >= 0 ? ds.annotations[size_t(dup.second)].id : 0, " duplicates ",
               at("annotations", size_t(std::max<int64_t>(dup.first, 0)), "id"));

  for (size_t i = 1; i < count.size(); ++i) count[i] += count[i - 1];
  ds.image_ann_begin = count;
  ds.image_anns.assign(ds.annotations.size(), 0);
  for (size_t i = 0; i < ds.annotations.size(); ++i)
    ds.image_anns[size_t(count[size_t(ds.annotations[i].image_index)]++)] = int32_t(i);
}

void validate_coco_detections(const std::vector<CocoDetection>& dets, const CocoDataset& gt,
                              const std::string& source) {
  for (size_t i = 0; i < dets.size(); ++i) {
    const CocoDetection& d = dets[i];
    DETNAS_CHECK(gt.has_image(d.image_id), source, ": ", at("results", i, "image_id"), " ", d.image_id,
                 " is not an image of the ground truth (", gt.source, ")");
    DETNAS_CHECK(gt.has_category(d.category_id), source, ": ", at("results", i, "category_id"), " ", d.category_id,
                 " is not a category of the ground truth (", gt.source, ")");
    check_box(d.bbox, source, "results", i);
    DETNAS_CHECK(std::isfinite(d.score), source, ": ", at("results", i, "score"), ": score ", d.score,
                 " is not finite");
  }
}

// ---------------------------------------------------------------- parsing

namespace {

enum ImageKey : unsigned { kImId = 1, kImWidth = 2, kImHeight = 4, kImFile = 8 };
enum AnnKey : unsigned { kAnId = 1, kAnImage = 2, kAnCat = 4, kAnBox = 8, kAnArea = 16, kAnCrowd = 32 };
enum DetKey : unsigned { kDtImage = 1, kDtCat = 2, kDtBox = 4, kDtScore = 8 };

constexpr size_t kBatchBytes = size_t(4) << 20;  // JSON text handed to simdjson at a time

CocoImage read_image(JsonReader& r, od::object& o, int64_t i) {
  CocoImage im;
  unsigned seen = 0;
  r.for_each_field(o, Where{"images", i, nullptr}, [&](od::raw_json_string k, od::value& fv) {
    if (k == "id") {
      im.id = r.integer(fv, Where{"images", i, "id"});
      seen |= kImId;
    } else if (k == "width") {
      im.width = r.int32(fv, Where{"images", i, "width"});
      seen |= kImWidth;
    } else if (k == "height") {
      im.height = r.int32(fv, Where{"images", i, "height"});
      seen |= kImHeight;
    } else if (k == "file_name") {
      im.file_name = std::string(r.string(fv, Where{"images", i, "file_name"}));
      seen |= kImFile;
    } else {
      return false;
    }
    return true;
  });
  r.require(seen, {{kImId, "id"}, {kImWidth, "width"}, {kImHeight, "height"}, {kImFile, "file_name"}},
            Where{"images", i, nullptr});
  return im;
}

CocoCategory read_category(JsonReader& r, od::object& o, int64_t i) {
  CocoCategory c;
  unsigned seen = 0;
  r.for_each_field(o, Where{"categories", i, nullptr}, [&](od::raw_json_string k, od::value& fv) {
    if (k == "id") {
      c.id = r.integer(fv, Where{"categories", i, "id"});
      seen |= 1;
    } else if (k == "name") {
      c.name = std::string(r.string(fv, Where{"categories", i, "name"}));
      seen |= 2;
    } else if (k == "supercategory") {
      c.supercategory = std::string(r.string(fv, Where{"categories", i, "supercategory"}));
    } else {
      return false;
    }
    return true;
  });
  r.require(seen, {{1, "id"}, {2, "name"}}, Where{"categories", i, nullptr});
  return c;
}

CocoAnnotation read_annotation(JsonReader& r, od::object& o, int64_t i) {
  CocoAnnotation a;
  unsigned seen = 0;
  r.for_each_field(o, Where{"annotations", i, nullptr}, [&](od::raw_json_string k, od::value& fv) {
    if (k == "id") {
      a.id = r.integer(fv, Where{"annotations", i, "id"});
      seen |= kAnId;
    } else if (k == "image_id") {
      a.image_id = r.integer(fv, Where{"annotations", i, "image_id"});
      seen |= kAnImage;
    } else if (k == "category_id") {
      a.category_id = r.integer(fv, Where{"annotations", i, "category_id"});
      seen |= kAnCat;
    } else if (k == "bbox") {
      a.bbox = r.box(fv, Where{"annotations", i, "bbox"});
      seen |= kAnBox;
    } else if (k == "area") {
      a.area = r.number(fv, Where{"annotations", i, "area"});
      seen |= kAnArea;
    } else if (k == "iscrowd") {
      int64_t c = r.integer(fv, Where{"annotations", i, "iscrowd"});
      if (c != 0 && c != 1) r.fail(Where{"annotations", i, "iscrowd"}, "expected 0 or 1, got " + std::to_string(c));
      a.iscrowd = int32_t(c);
      seen |= kAnCrowd;
    } else {
      return false;
    }
    return true;
  });
  r.require(seen,
            {{kAnId, "id"},
             {kAnImage, "image_id"},
             {kAnCat, "category_id"},
             {kAnBox, "bbox"},
             {kAnArea, "area"},
             {kAnCrowd, "iscrowd"}},
            Where{"annotations", i, nullptr});
  return a;
}

CocoDetection read_detection(JsonReader& r, od::object& o, int64_t i) {
  CocoDetection d;
  unsigned seen = 0;
  r.for_each_field(o, Where{"results", i, nullptr}, [&](od::raw_json_string k, od::value& fv) {
    if (k == "image_id") {
      d.image_id = r.integer(fv, Where{"results", i, "image_id"});
      seen |= kDtImage;
    } else if (k == "category_id") {
      d.category_id = r.integer(fv, Where{"results", i, "category_id"});
      seen |= kDtCat;
    } else if (k == "bbox") {
      d.bbox = r.box(fv, Where{"results", i, "bbox"});
      seen |= kDtBox;
    } else if (k == "score") {
      d.score = r.number(fv, Where{"results", i, "score"});
      seen |= kDtScore;
    } else {
      return false;
    }
    return true;
  });
  r.require(seen, {{kDtImage, "image_id"}, {kDtCat, "category_id"}, {kDtBox, "bbox"}, {kDtScore, "score"}},
            Where{"results", i, nullptr});
  return d;
}

// One pass over a document: the scanner finds the arrays, simdjson reads them a
// batch at a time, and the pages already read are handed back to the kernel.
struct Stream {
  explicit Stream(coco_json::JsonText& d) : doc(d), scan(d) {}
  coco_json::JsonText& doc;
  coco_json::JsonScanner scan;
  od::parser parser;
  std::vector<char> buf;

  // Reads the array that comes next (the value of `name`) with read(reader, object, index).
  template <class T, class Read>
  void read_array(const char* name, const char* expected, std::vector<T>& out, Read read) {
    if (!scan.begin_array())
      DETNAS_FAIL(doc.source(), ": ", name, ": expected ", expected, ", got ", scan.describe_next());
    coco_json::JsonBatch b;
    while (scan.next_batch(b, kBatchBytes)) {
      JsonReader r(doc, b.begin, b.end, buf, parser, name);
      r.for_each_object(name, b.first_index, [&](od::object& o, int64_t i) { out.push_back(read(r, o, i)); });
      doc.release_before(b.begin);
    }
  }
  // Checks the value that comes next and drops it.
  void skip_value(const std::string& key) {
    auto [b, e] = scan.skip_value();
    JsonReader(doc, b, e, buf, parser, key.c_str()).validate_all(Where{key.c_str(), -1, nullptr});
  }
};

CocoDataset parse_instances(coco_json::JsonText& doc) {
  CocoDataset ds;
  ds.source = doc.source();
  Stream st(doc);
  if (!st.scan.begin_object())
    DETNAS_FAIL(doc.source(), ": top level: expected a JSON object, got ", st.scan.describe_next());
  unsigned seen = 0;
  std::string key;
  auto once = [&](unsigned bit) {
    DETNAS_CHECK(!(seen & bit), doc.source(), ": top level: key \"", key, "\" appears twice");
    seen |= bit;
  };
  while (st.scan.next_key(key)) {
    if (key == "images") {
      once(1);
      st.read_array("images", "an array", ds.images, read_image);
    } else if (key == "categories") {
      once(2);
      st.read_array("categories", "an array", ds.categories, read_category);
    } else if (key == "annotations") {
      once(4);
      st.read_array("annotations", "an array", ds.annotations, read_annotation);
    } else {
      st.skip_value(key);
    }
  }
  st.scan.expect_end();
  for (auto [bit, name] : {std::pair<unsigned, const char*>{1, "images"}, {2, "categories"}})
    DETNAS_CHECK(seen & bit, doc.source(), ": top level: missing key \"", name, "\"");
  finalize_coco_dataset(ds);
  return ds;
}

std::vector<CocoDetection> parse_results(coco_json::JsonText& doc, const CocoDataset& gt) {
  std::vector<CocoDetection> dets;
  Stream st(doc);
  st.read_array("results", "a JSON list", dets, read_detection);
  st.scan.expect_end();
  validate_coco_detections(dets, gt, doc.source());
  return dets;
}

}  // namespace

CocoDataset load_coco_instances(const std::string& path) {
  auto doc = coco_json::JsonText::map_file(path);
  return parse_instances(doc);
}

CocoDataset parse_coco_instances(std::string_view json, const std::string& source_name) {
  coco_json::JsonText doc(json, source_name);
  return parse_instances(doc);
}

std::vector<CocoDetection> load_coco_results(const std::string& path, const CocoDataset& gt) {
  auto doc = coco_json::JsonText::map_file(path);
  return parse_results(doc, gt);
}

std::vector<CocoDetection> parse_coco_results(std::string_view json, const CocoDataset& gt,
                                              const std::string& source_name) {
  coco_json::JsonText doc(json, source_name);
  return parse_results(doc, gt);
}

}  // namespace detnas::data
