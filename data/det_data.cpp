// Detection dataset views, the held-out split, the GT writer and batches (see
// det_data.h). Batches are pure functions of (dataset, params, index): the only
// shared mutable state is the BadImageRecord, and a file recorded there is one
// that would fail again, so skipping it without a retry gives the same batch.
#include "data/det_data.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/log.h"
#include "data/json_writer.h"
#include "data/transforms.h"
#include "runtime/fs.h"
#include "runtime/rng.h"

namespace detnas::data {

// ---- targets ----------------------------------------------------------------

bool coco_box_to_target(const CocoBox& b, int64_t image_w, int64_t image_h, float out[4]) {
  const double W = double(image_w), H = double(image_h);
  const double x1 = std::min(std::max(b.x, 0.0), W), y1 = std::min(std::max(b.y, 0.0), H);
  const double x2 = std::min(std::max(b.x + b.w, 0.0), W), y2 = std::min(std::max(b.y + b.h, 0.0), H);
  out[0] = float(x1), out[1] = float(y1), out[2] = float(x2), out[3] = float(y2);
  // NaN compares false, so a non-finite box is degenerate too.
  return x2 - x1 >= 1.0 && y2 - y1 >= 1.0;
}

DetTargetTable build_det_targets(const CocoDataset& coco) {
  DetTargetTable t;
  const size_t ni = coco.images.size();
  DETNAS_CHECK(coco.image_ann_begin.size() == ni + 1, "detection data: ", coco.source,
               " was not finalized (finalize_coco_dataset)");
  t.begin.assign(ni + 1, 0);
  t.boxes.reserve(coco.annotations.size() * 4);
  t.labels.reserve(coco.annotations.size());
  for (size_t i = 0; i < ni; ++i) {
    const CocoImage& im = coco.images[i];
    for (int64_t k = coco.image_ann_begin[i]; k < coco.image_ann_begin[i + 1]; ++k) {
      const CocoAnnotation& a = coco.annotations[size_t(coco.image_anns[size_t(k)])];
      if (a.iscrowd) {
        t.crowd_excluded++;
        continue;
      }
      float box[4];
      if (!coco_box_to_target(a.bbox, im.width, im.height, box)) {
        t.degenerate_dropped++;
        continue;
      }
      t.boxes.insert(t.boxes.end(), box, box + 4);
      t.labels.push_back(a.label);
    }
    t.begin[i + 1] = int64_t(t.labels.size());
  }
  return t;
}

// ---- bad image record ---------------------------------------------------------

bool BadImageRecord::add(const std::string& path, const std::string& reason) {
  std::lock_guard<std::mutex> l(mu_);
  bool fresh = files_.insert(path).second;
  if (fresh)
    log_warn("detection data: skipping bad image ", path, " (", reason, "); ", files_.size(), " skipped so far");
  return fresh;
}
bool BadImageRecord::contains(const std::string& path) const {
  std::lock_guard<std::mutex> l(mu_);
  return files_.count(path) != 0;
}
int64_t BadImageRecord::count() const {
  std::lock_guard<std::mutex> l(mu_);
  return int64_t(files_.size());
}
std::vector<std::string> BadImageRecord::files() const {
  std::lock_guard<std::mutex> l(mu_);
  return std::vector<std::string>(files_.begin(), files_.end());
}

// ---- dataset view ---------------------------------------------------------------

DetDataset DetDataset::load(const std::string& annotation_json, const std::string& image_dir, DetDatasetOptions opt) {
  DETNAS_CHECK(dir_exists(image_dir), "detection data: image folder ", image_dir, " does not exist (annotations ",
               annotation_json, ")");
  return DetDataset(std::make_shared<const CocoDataset>(load_coco_instances(annotation_json)), image_dir, opt);
}

DetDataset::DetDataset(std::shared_ptr<const CocoDataset> coco, std::string image_dir, DetDatasetOptions opt)
    : coco_(std::move(coco)), bad_(std::make_shared<BadImageRecord>()), image_dir_(std::move(image_dir)), opt_(opt) {
  DETNAS_CHECK(coco_ != nullptr, "detection data: null CocoDataset");
  targets_ = std::make_shared<const DetTargetTable>(build_det_targets(*coco_));
  candidates_.resize(coco_->images.size());
  for (size_t i = 0; i < candidates_.size(); ++i) candidates_[i] = int32_t(i);
  apply_policy();
  log_info("detection data: ", coco_->source, ": ", coco_->images.size(), " images, ", targets_->labels.size(),
           " training boxes; ", targets_->crowd_excluded, " crowd regions excluded from training targets, ",
           targets_->degenerate_dropped, " degenerate boxes dropped (< 1 pixel after clipping), ", empty_skipped(),
           " images without training boxes skipped");
}

void DetDataset::apply_policy() {
  images_.clear();
  for (int32_t c : candidates_)
    if (opt_.empty_images == EmptyImages::Keep || targets_->begin[size_t(c) + 1] > targets_->begin[size_t(c)])
      images_.push_back(c);
}

int32_t DetDataset::coco_index(int64_t i) const {
  DETNAS_CHECK(i >= 0 && i < size(), "detection data: entry ", i, " out of range [0, ", size(), ")");
  return images_[size_t(i)];
}
std::string DetDataset::image_path(int64_t i) const { return path_join(image_dir_, image(i).file_name); }
int64_t DetDataset::num_boxes(int64_t i) const {
  size_t c = size_t(coco_index(i));
  return targets_->begin[c + 1] - targets_->begin[c];
}
const float* DetDataset::boxes(int64_t i) const {
  return targets_->boxes.data() + 4 * targets_->begin[size_t(coco_index(i))];
}
const int64_t* DetDataset::labels(int64_t i) const {
  return targets_->labels.data() + targets_->begin[size_t(coco_index(i))];
}

DetDataset DetDataset::with_empty_images(EmptyImages e) const {
  DetDataset d = *this;
  d.opt_.empty_images = e;
  d.apply_policy();
  return d;
}

DetDataset DetDataset::with_candidates(std::vector<int32_t> coco_indices) const {
  for (int32_t c : coco_indices)
    DETNAS_CHECK(c >= 0 && size_t(c) < coco_->images.size(), "detection data: image index ", c, " out of range [0, ",
                 coco_->images.size(), ")");
  DetDataset d = *this;
  d.candidates_ = std::move(coco_indices);
  d.apply_policy();
  return d;
}

CocoDataset DetDataset::coco_subset() const {
  CocoDataset s;
  s.source = detail::cat(coco_->source, " (", images_.size(), " of ", coco_->images.size(), " images)");
  s.categories = coco_->categories;
  s.images.reserve(images_.size());
  for (int32_t c : images_) {
    s.images.push_back(coco_->images[size_t(c)]);
    for (int64_t k = coco_->image_ann_begin[size_t(c)]; k < coco_->image_ann_begin[size_t(c) + 1]; ++k) {
      CocoAnnotation a = coco_->annotations[size_t(coco_->image_anns[size_t(k)])];
      a.image_index = a.label = -1;
      s.annotations.push_back(a);
    }
  }
  // Grouped by image; inside an image the file order is kept, which is the
  // order pycocotools matches in.
  finalize_coco_dataset(s);
  return s;
}

bool DetDataset::read(int64_t i, Image& out) const {
  const std::string path = image_path(i);
  const CocoImage& im = image(i);
  if (opt_.bad_images == BadImages::Skip && bad_->contains(path)) return false;
  std::string reason;
  try {
    DecodeOptions d;
    d.jpeg_warnings = opt_.jpeg_warnings;
    out = read_image(path, d);
    if (out.width == im.width && out.height == im.height) return true;
    reason = detail::cat("decoded size ", out.width, "x", out.height, " differs from the annotation file's ", im.width,
                         "x", im.height);
  } catch (const Error& e) {
    reason = e.message();
  }
  if (opt_.bad_images == BadImages::Fail)
    DETNAS_FAIL("detection data: image id ", im.id, " file ", path, ": ", reason,
                " (BadImages::Skip leaves such images out)");
  bad_->add(path, reason);
  return false;
}

// ---- split and GT writer --------------------------------------------------------

std::pair<DetDataset, DetDataset> split_holdout(const DetDataset& ds, int64_t n, uint64_t seed) {
  const std::vector<int32_t>& cand = ds.candidates();
  const int64_t total = int64_t(cand.size());
  DETNAS_CHECK(n >= 0 && n <= total, "split_holdout: cannot hold out ", n, " of ", total, " images");
  std::vector<int64_t> perm = epoch_permutation(total, mix_seed(seed, 0x401d07ULL), 0);
  std::vector<char> held(size_t(total), 0);
  for (int64_t k = 0; k < n; ++k) held[size_t(perm[size_t(k)])] = 1;
  std::vector<int32_t> train, val;
  for (int64_t k = 0; k < total; ++k) (held[size_t(k)] ? val : train).push_back(cand[size_t(k)]);
  DetDataset v = ds.with_candidates(std::move(val)).with_empty_images(EmptyImages::Keep);
  return {ds.with_candidates(std::move(train)), std::move(v)};
}

void write_coco_instances(const std::string& path, const CocoDataset& gt) {
  JsonWriter w;
  w.begin_object();
  w.key("images").begin_array();
  for (const CocoImage& im : gt.images)
    w.begin_object()
        .field("id", (long long)im.id)
        .field("file_name", im.file_name)
        .field("width", im.width)
        .field("height", im.height)
        .end_object();
  w.end_array();
  w.key("categories").begin_array();
  for (const CocoCategory& c : gt.categories) {
    w.begin_object().field("id", (long long)c.id).field("name", c.name);
    if (!c.supercategory.empty()) w.field("supercategory", c.supercategory);
    w.end_object();
  }
  w.end_array();
  w.key("annotations").begin_array();
  for (const CocoAnnotation& a : gt.annotations) {
    w.begin_object()
        .field("id", (long long)a.id)
        .field("image_id", (long long)a.image_id)
        .field("category_id", (long long)a.category_id);
    w.key("bbox").begin_array().value(a.bbox.x).value(a.bbox.y).value(a.bbox.w).value(a.bbox.h).end_array();
    w.field("area", a.area).field("iscrowd", a.iscrowd).end_object();
  }
  w.end_array();
  w.end_object();
  write_file_atomic(path, w.str());
}

// ---- batches ------------------------------------------------------------------------

int64_t num_det_eval_batches(const DetDataset& ds, int64_t batch) {
  DETNAS_CHECK(batch > 0, "detection batches: batch size must be positive, got ", batch);
  return (ds.size() + batch - 1) / batch;
}

namespace {

// Decodes, resizes (and for training maybe flips) one image; fills its targets.
Image transform_one(const DetDataset& ds, int64_t entry, Image&& img, const DetBatchParams& p, uint64_t aug_seed,
                    ImageTargets& t) {
  const int64_t n = ds.num_boxes(entry);
  std::vector<float> boxes(ds.boxes(entry), ds.boxes(entry) + 4 * n);
  t.image_id = ds.image(entry).id;
  t.labels.assign(ds.labels(entry), ds.labels(entry) + n);
  t.original_size = img.size();
  Image out = resize_short_side(img, p.short_side, p.max_size, boxes.data(), n);
  t.resized_size = out.size();
  t.scale_x = double(out.width) / double(img.width);
  t.scale_y = double(out.height) / double(img.height);
  if (p.augment == DetAugment::Train) {
    Rng rng(aug_seed);
    if (rng.uniform() < p.flip_prob) {
      hflip(out, boxes.data(), n);
      t.flipped = true;
    }
  }
  t.boxes = rt::Tensor::empty({n, 4});
  std::copy(boxes.begin(), boxes.end(), t.boxes.data());
  return out;
}

}  // namespace

DetBatch make_det_batch(const DetDataset& ds, const DetBatchParams& p, int64_t index) {
  const int64_t n = ds.size();
  DETNAS_CHECK(n > 0, "detection batches: the dataset view over ", ds.coco().source, " has no images");
  DETNAS_CHECK(p.batch > 0 && p.short_side > 0 && p.pad_multiple > 0,
               "detection batches: bad parameters batch=", p.batch, " short_side=", p.short_side,
               " pad_multiple=", p.pad_multiple);
  DETNAS_CHECK(index >= 0, "detection batches: negative batch index ", index);
  DetBatch b;
  b.index = index;
  std::vector<Image> imgs;
  if (p.augment == DetAugment::Eval) {
    DETNAS_CHECK(index * p.batch < n, "detection batches: eval batch ", index, " is past the end (",
                 num_det_eval_batches(ds, p.batch), " batches of ", p.batch, " over ", n, " images)");
    for (int64_t e = index * p.batch; e < std::min(n, (index + 1) * p.batch); ++e) {
      Image img;
      if (!ds.read(e, img)) continue;  // BadImages::Skip: the batch gets shorter
      b.targets.emplace_back();
      imgs.push_back(transform_one(ds, e, std::move(img), p, 0, b.targets.back()));
    }
  } else {
    int64_t epoch = -1;
    std::vector<int64_t> perm;
    const int64_t k_end = p.part_end < 0 ? p.batch : p.part_end;
    DETNAS_CHECK(p.part_begin >= 0 && p.part_begin < k_end && k_end <= p.batch, "detection batches: part [",
                 p.part_begin, ", ", k_end, ") is not a non-empty part of a batch of ", p.batch);
    for (int64_t k = p.part_begin; k < k_end; ++k) {
      const int64_t pos = index * p.batch + k;
      if (pos / n != epoch) {
        epoch = pos / n;
        perm = epoch_permutation(n, p.seed, epoch);
      }
      const uint64_t aug = mix_seed(p.seed, uint64_t(epoch), uint64_t(pos));
      // A bad image is replaced by the next one of the same epoch's order, so the
      // batch stays full and still depends only on (seed, index).
      Image img;
      int64_t entry = -1;
      for (int64_t j = 0; j < n && entry < 0; ++j) {
        int64_t e = perm[size_t((pos + j) % n)];
        if (ds.read(e, img)) entry = e;
      }
      DETNAS_CHECK(entry >= 0, "detection batches: all ", n, " images of ", ds.coco().source, " in ", ds.image_dir(),
                   " are missing or corrupt");
      b.targets.emplace_back();
      imgs.push_back(transform_one(ds, entry, std::move(img), p, aug, b.targets.back()));
    }
  }
  if (imgs.empty()) {
    b.images = rt::Tensor::empty({0, 3, 0, 0});
    return b;
  }
  std::vector<const Image*> ptrs;
  for (const Image& im : imgs) ptrs.push_back(&im);
  b.images = batch_to_tensor(ptrs, p.pad_multiple);
  return b;
}

std::unique_ptr<PrefetchLoader<DetBatch>> make_det_loader(const DetDataset& ds, const DetBatchParams& p,
                                                          int64_t first_index, int workers, int depth) {
  // The loader's threads are the parallelism: OpenMP regions inside them (resize,
  // pack) would oversubscribe the cores the trainer's own OpenMP uses, and spin-
  // waiting teams on a busy machine made 1 worker ~7x slower in measurements.
  // nthreads-var is per thread, so this affects only the loader's workers.
  return std::make_unique<PrefetchLoader<DetBatch>>(
      [ds, p](int64_t i) {
        thread_local bool serial = false;
        if (!serial) omp_set_num_threads(1), serial = true;
        return make_det_batch(ds, p, i);
      },
      first_index, workers, depth);
}

}  // namespace detnas::data
