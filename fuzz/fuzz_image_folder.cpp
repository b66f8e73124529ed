// libFuzzer target: ImageFolder layouts (data/image_folder.h scan_image_folder,
// then make_cls_batch: decoding, the train and eval transforms). The input is a
// list of entries, each
//   u8 class-name length (mod 8), class name, u8 file-name length (mod 16),
//   file name, u16 little-endian content length, content
// (names are mapped onto [a-z0-9._-]; "." and ".." are dropped; a file name of
// length 0 makes an empty class folder). The tree is built in the tmpfs scratch
// folder, scanned and batched, and removed again.
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>

#include "data/image.h"
#include "data/image_folder.h"
#include "fuzz/fuzz_common.h"

using namespace detnas;

namespace {
// Keeps executions fast: a 1-pixel-high image is resized to 10 x (10 x its width)
// by the eval transform. The decoders bound the size by the input on their own.
constexpr int64_t kFuzzMaxPixels = int64_t(1) << 20;
constexpr int kMaxEntries = 8;

struct Reader {
  const uint8_t* p;
  size_t n;
  bool take(size_t k, const uint8_t** out) {
    if (k > n) return false;
    *out = p;
    p += k, n -= k;
    return true;
  }
  bool byte(uint8_t& b) {
    const uint8_t* q;
    if (!take(1, &q)) return false;
    b = *q;
    return true;
  }
};

std::string safe_name(const uint8_t* s, size_t k) {
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789._-ABCDEFGHIJKLMNOPQRSTUVWXYZ.jpgpngJPEG";
  std::string r;
  for (size_t i = 0; i < k; ++i) r += alphabet[s[i] % (sizeof alphabet - 1)];
  return r == "." || r == ".." ? std::string() : r;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string root = fuzz::scratch_dir() + "/folder";
  remove_all(root);
  make_dirs(root);
  Reader r{data, size};
  for (int e = 0; e < kMaxEntries; ++e) {
    uint8_t cl = 0, fl = 0, l0 = 0, l1 = 0;
    const uint8_t *cn, *fn, *content;
    if (!r.byte(cl) || !r.take(cl % 8, &cn)) break;
    if (!r.byte(fl) || !r.take(fl % 16, &fn)) break;
    if (!r.byte(l0) || !r.byte(l1)) break;
    const size_t len = std::min<size_t>(size_t(l0) | size_t(l1) << 8, r.n);
    r.take(len, &content);
    const std::string cls = safe_name(cn, cl % 8), file = safe_name(fn, fl % 16);
    if (cls.empty()) continue;
    const std::string dir = root + "/" + cls;
    ::mkdir(dir.c_str(), 0755);  // may already exist, or be a file (then the write below fails)
    if (file.empty()) continue;
    try {
      data::ImageSize s = data::decode_image_size(content, len, file);
      if (s.height * s.width > kFuzzMaxPixels) return 0;
    } catch (const Error&) {
    }
    if (FILE* f = std::fopen((dir + "/" + file).c_str(), "wb")) {
      std::fwrite(content, 1, len, f);
      std::fclose(f);
    }
  }
  try {
    data::ImageFolder folder = data::scan_image_folder(root);
    FUZZ_REQUIRE(folder.files.size() == folder.labels.size() && !folder.files.empty(), "files and labels");
    for (int64_t label : folder.labels)
      FUZZ_REQUIRE(label >= 0 && size_t(label) < folder.classes.size(), "label ", label);
    data::ClsBatchParams p;
    p.batch = 3;
    p.image_size = 8;
    p.augment = data::ClsAugment::Eval;
    for (int64_t b = 0; b < data::num_eval_batches(folder, p.batch); ++b) {
      try {
        data::ClsBatch batch = data::make_cls_batch(folder, p, b);
        FUZZ_REQUIRE(batch.images.shape() == rt::Shape({int64_t(batch.labels.size()), 3, 8, 8}), "batch shape");
      } catch (const Error&) {
      }
    }
    p.augment = data::ClsAugment::Train;
    try {
      data::make_cls_batch(folder, p, 1);
    } catch (const Error&) {
    }
  } catch (const Error&) {
  }
  return 0;
}
