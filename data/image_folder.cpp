// ImageFolder scanning and classification batches.
#include "data/image_folder.h"

#include <algorithm>

#include "data/image.h"
#include "data/loader.h"
#include "data/transforms.h"
#include "runtime/fs.h"
#include "runtime/rng.h"

namespace detnas::data {

std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[size_t(i)] = i;
  Rng rng(mix_seed(seed, uint64_t(epoch), 0x9e3779b9ULL));
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[size_t(i)], p[size_t(rng.below(uint64_t(i + 1)))]);
  return p;
}

uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t x = a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e019ULL) * 0xbf58476d1ce4e5b9ULL ^
               (c + 0x85ebca6bULL) * 0x94d049bb133111ebULL;
  x ^= x >> 31;
  x *= 0xd6e8feb86659fd93ULL;
  return x ^ (x >> 32);
}

static bool is_image_name(const std::string& f) {
  std::string e = path_extension(f);
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return e == ".jpg" || e == ".jpeg" || e == ".png";
}

ImageFolder scan_image_folder(const std::string& root) {
  DETNAS_CHECK(dir_exists(root), "image folder ", root, " does not exist (expected ROOT/<class>/<image>.jpg)");
  ImageFolder f;
  f.root = root;
  f.classes = list_dir(root, ListFilter::Dirs);
  std::sort(f.classes.begin(), f.classes.end());
  DETNAS_CHECK(!f.classes.empty(), "image folder ", root, " has no class folders (expected ROOT/<class>/<image>.jpg)");
  for (size_t c = 0; c < f.classes.size(); ++c) {
    std::string dir = path_join(root, f.classes[c]);
    std::vector<std::string> names = list_dir(dir, ListFilter::Files);
    std::sort(names.begin(), names.end());
    int64_t count = 0;
    for (const std::string& n : names) {
      if (!is_image_name(n)) continue;
      f.files.push_back(path_join(dir, n));
      f.labels.push_back(int64_t(c));
      count++;
    }
    DETNAS_CHECK(count > 0, "class folder ", dir, " holds no .jpg/.jpeg/.png images");
  }
  return f;
}

int64_t num_eval_batches(const ImageFolder& folder, int64_t batch) { return (folder.size() + batch - 1) / batch; }

ClsBatch make_cls_batch(const ImageFolder& folder, const ClsBatchParams& p, int64_t index) {
  const int64_t n = folder.size(), S = p.image_size;
  DETNAS_CHECK(n > 0 && p.batch > 0 && S > 0, "classification batch: empty folder or bad batch/image size");
  std::vector<int64_t> ids;
  std::vector<uint64_t> seeds;
  if (p.augment == ClsAugment::Eval) {
    DETNAS_CHECK(index >= 0 && index * p.batch < n, "eval batch ", index, " is past the end of ", folder.root);
    for (int64_t i = index * p.batch; i < std::min(n, (index + 1) * p.batch); ++i) ids.push_back(i);
  } else {
    const int64_t k_end = p.part_end < 0 ? p.batch : p.part_end;
    DETNAS_CHECK(p.part_begin >= 0 && p.part_begin < k_end && k_end <= p.batch, "classification batch: part [",
                 p.part_begin, ", ", k_end, ") is not a non-empty part of a batch of ", p.batch);
    int64_t first = index * p.batch + p.part_begin;
    int64_t epoch = first / n;
    std::vector<int64_t> perm = epoch_permutation(n, p.seed, epoch);
    for (int64_t k = p.part_begin; k < k_end; ++k) {
      const int64_t pos = index * p.batch + k;
      if (pos / n != epoch) {
        epoch = pos / n;
        perm = epoch_permutation(n, p.seed, epoch);
      }
      ids.push_back(perm[size_t(pos % n)]);
      seeds.push_back(mix_seed(p.seed, uint64_t(epoch), uint64_t(pos)));
    }
  }
  ClsBatch b;
  b.images = rt::Tensor::empty({int64_t(ids.size()), 3, S, S});
  for (size_t k = 0; k < ids.size(); ++k) {
    Image img = read_image(folder.files[size_t(ids[k])]);
    Image out;
    if (p.augment == ClsAugment::Train) {
      Rng rng(seeds[k]);
      RandomResizedCropParams rp;
      rp.scale_min = p.crop_scale_min;
      out = random_resized_crop(img, S, rng, rp);
      color_jitter(out, rng);
      if (rng.uniform() < 0.5) hflip(out);
    } else {
      // Resize the short side to S*8/7 (the 256/224 ratio), then centre-crop S.
      int64_t short_side = (S * 8 + 6) / 7;
      ImageSize sz = short_side_size({img.height, img.width}, short_side, 1 << 30);
      Image r = resize_bilinear(img, sz.height, sz.width);
      out = crop(r, CropRect{(r.width - S) / 2, (r.height - S) / 2, S, S});
    }
    to_chw_float(out, b.images.data() + int64_t(k) * 3 * S * S);
    b.labels.push_back(folder.labels[size_t(ids[k])]);
  }
  return b;
}

}  // namespace detnas::data
