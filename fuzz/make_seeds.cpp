// Writes the seed corpora fuzz/corpus/<target>/ (run by `make fuzz-seeds`; the
// seeds are kept in the repo, this program documents how they were made). Every
// seed is a valid input written by the project's own writers where it has one
// (encode_jpeg / TurboJPEG, save_safetensors, save_checkpoint,
// Evolution::to_json, format_coco_results, format_arch) and by hand otherwise
// (COCO instances, PNG: every colour type, bit depths 1-16, Adam7).
#include <turbojpeg.h>
#include <zlib.h>

#include <cstdio>
#include <functional>

#include "data/coco.h"
#include "data/image.h"
#include "fuzz/fuzz_common.h"
#include "nn/checkpoint.h"
#include "nn/safetensors.h"
#include "nn/space.h"
#include "runtime/fs.h"
#include "search/evolution.h"

using namespace detnas;

namespace {
std::string g_out;

void put(const std::string& target, const std::string& name, std::string_view bytes) {
  make_dirs(g_out + "/" + target);
  write_file_atomic(g_out + "/" + target + "/" + name, bytes, Durability::NoSync);
}
std::string bytes_of(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

// ---- images
data::Image pattern(int64_t h, int64_t w) {
  data::Image img(h, w);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      uint8_t* p = img.at(y, x);
      p[0] = uint8_t(x * 255 / std::max<int64_t>(w - 1, 1));
      p[1] = uint8_t(y * 255 / std::max<int64_t>(h - 1, 1));
      p[2] = uint8_t((x ^ y) * 37);
    }
  return img;
}

std::string tj_encode(const std::vector<uint8_t>& px, int w, int h, int pf, int sub, int flags) {
  tjhandle tj = tjInitCompress();
  unsigned char* buf = nullptr;
  unsigned long len = 0;
  if (tjCompress2(tj, px.data(), w, 0, h, pf, &buf, &len, sub, 75, flags) != 0) {
    std::fprintf(stderr, "tjCompress2: %s\n", tjGetErrorStr2(tj));
    std::exit(1);
  }
  std::string r(reinterpret_cast<char*>(buf), len);
  tjFree(buf);
  tjDestroy(tj);
  return r;
}

void be32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s += char((v >> (8 * i)) & 0xff);
}
void chunk(std::string& png, const char* type, const std::string& body) {
  be32(png, uint32_t(body.size()));
  std::string tb = std::string(type, 4) + body;
  png += tb;
  be32(png, uint32_t(crc32(0, reinterpret_cast<const Bytef*>(tb.data()), uInt(tb.size()))));
}
// A PNG whose scanlines are deterministic bytes behind row filters 0..4 (any
// bytes are a valid scanline: the filters only change the pixel values).
std::string make_png(int w, int h, int color_type, int depth, int interlace, int palette_entries = 0) {
  static const int ch[7] = {1, 0, 3, 1, 2, 0, 4};
  const int bits = ch[color_type] * depth;
  std::string png("\x89PNG\r\n\x1a\n", 8), ihdr, raw;
  be32(ihdr, uint32_t(w));
  be32(ihdr, uint32_t(h));
  ihdr += char(depth), ihdr += char(color_type), ihdr += '\0', ihdr += '\0', ihdr += char(interlace);
  chunk(png, "IHDR", ihdr);
  if (color_type == 3) {
    std::string pal;
    for (int i = 0; i < palette_entries; ++i) pal += char(i * 40), pal += char(255 - i * 30), pal += char(i * 7);
    chunk(png, "PLTE", pal);
  }
  struct Pass {
    int x0, y0, dx, dy;
  };
  const Pass adam7[7] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
                         {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
  const Pass whole = {0, 0, 1, 1};
  unsigned seed = 1;
  for (int p = 0; p < (interlace ? 7 : 1); ++p) {
    const Pass& ps = interlace ? adam7[p] : whole;
    int pw = w > ps.x0 ? (w - ps.x0 + ps.dx - 1) / ps.dx : 0, ph = h > ps.y0 ? (h - ps.y0 + ps.dy - 1) / ps.dy : 0;
    if (!pw || !ph) continue;
    const int rb = (pw * bits + 7) / 8;
    for (int y = 0; y < ph; ++y) {
      raw += char(color_type == 3 ? 0 : y % 5);  // palette rows unfiltered: indices stay as written
      for (int i = 0; i < rb; ++i) {
        seed = seed * 1103515245u + 12345u;
        uint8_t b = uint8_t(seed >> 16);
        if (color_type == 3) {  // keep palette indices in range
          const int per = 8 / std::min(depth, 8);
          uint8_t v = 0;
          for (int k = 0; k < per; ++k) v = uint8_t(v << depth | ((b >> k) % palette_entries));
          b = v;
        }
        raw += char(b);
      }
    }
  }
  std::vector<uint8_t> z(compressBound(uLong(raw.size())));
  uLongf zl = uLongf(z.size());
  compress2(z.data(), &zl, reinterpret_cast<const Bytef*>(raw.data()), uLong(raw.size()), 9);
  chunk(png, "tEXt", std::string("Comment\0seed", 12));
  // IDAT split in two chunks (the decoder concatenates them).
  std::string zs(reinterpret_cast<char*>(z.data()), zl);
  chunk(png, "IDAT", zs.substr(0, zs.size() / 2));
  chunk(png, "IDAT", zs.substr(zs.size() / 2));
  chunk(png, "IEND", "");
  return png;
}

std::vector<std::pair<std::string, std::string>> image_seeds() {
  std::vector<std::pair<std::string, std::string>> s;
  using data::JpegSubsampling;
  s.push_back({"rgb_16x16_420.jpg", bytes_of(data::encode_jpeg(pattern(16, 16), {75, JpegSubsampling::S420}))});
  s.push_back({"rgb_9x17_444.jpg", bytes_of(data::encode_jpeg(pattern(9, 17), {90, JpegSubsampling::S444}))});
  s.push_back({"rgb_8x13_422.jpg", bytes_of(data::encode_jpeg(pattern(8, 13), {50, JpegSubsampling::S422}))});
  s.push_back({"gray_12x7.jpg", bytes_of(data::encode_jpeg(pattern(12, 7), {80, JpegSubsampling::Gray}))});
  s.push_back({"rgb_1x1.jpg", bytes_of(data::encode_jpeg(pattern(1, 1), {90, JpegSubsampling::S420}))});
  data::Image p = pattern(16, 24);
  s.push_back({"progressive_16x24.jpg", tj_encode(p.pixels, 24, 16, TJPF_BGR, TJSAMP_420, TJFLAG_PROGRESSIVE)});
  std::vector<uint8_t> cmyk(size_t(10 * 6 * 4));
  for (size_t i = 0; i < cmyk.size(); ++i) cmyk[i] = uint8_t(i * 29);
  s.push_back({"cmyk_10x6.jpg", tj_encode(cmyk, 10, 6, TJPF_CMYK, TJSAMP_444, 0)});
  s.push_back({"gray1_9x5.png", make_png(9, 5, 0, 1, 0)});
  s.push_back({"gray8_7x3.png", make_png(7, 3, 0, 8, 0)});
  s.push_back({"gray16_4x4.png", make_png(4, 4, 0, 16, 0)});
  s.push_back({"rgb8_6x5.png", make_png(6, 5, 2, 8, 0)});
  s.push_back({"rgb16_3x2.png", make_png(3, 2, 2, 16, 0)});
  s.push_back({"pal2_11x3.png", make_png(11, 3, 3, 2, 0, 4)});
  s.push_back({"pal8_5x5.png", make_png(5, 5, 3, 8, 0, 6)});
  s.push_back({"graya8_4x3.png", make_png(4, 3, 4, 8, 0)});
  s.push_back({"rgba8_5x4.png", make_png(5, 4, 6, 8, 0)});
  s.push_back({"rgba16_2x2.png", make_png(2, 2, 6, 16, 0)});
  s.push_back({"rgb8_adam7_9x10.png", make_png(9, 10, 2, 8, 1)});
  s.push_back({"gray4_adam7_3x5.png", make_png(3, 5, 0, 4, 1)});
  return s;
}

// ---- COCO
const char* kInstances[][2] = {
    {"basic.json", R"({"images": [{"id": 1, "width": 64, "height": 48, "file_name": "a.jpg"},
 {"id": 7, "width": 32, "height": 32, "file_name": "b.jpg"}],
 "categories": [{"id": 1, "name": "box", "supercategory": "shape"}, {"id": 3, "name": "disc"}],
 "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 20, 10], "area": 200, "iscrowd": 0},
 {"id": 2, "image_id": 7, "category_id": 3, "bbox": [1.5, 2.25, 8, 8e0], "area": 50.5, "iscrowd": 0}]})"},
    {"crowd_and_extras.json", R"({"info": {"year": 2017, "version": "1.0", "nested": [1, [2, {"a": null}]]},
 "licenses": [{"id": 1, "name": "x", "url": "http://e"}],
 "images": [{"id": 3, "width": 10, "height": 10, "file_name": "c.png", "license": 1, "coco_url": "u"}],
 "categories": [{"id": 10, "name": "bar"}, {"id": 2, "name": "d\u00e9j\u00e0 \"q\""}],
 "annotations": [{"segmentation": [[1, 1, 5, 1, 5, 5]], "id": 9, "image_id": 3, "category_id": 10,
  "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 1},
  {"segmentation": {"counts": [0, 5, 95], "size": [10, 10]}, "id": 10, "image_id": 3, "category_id": 2,
  "bbox": [2, 2, 0, 3], "area": 0, "iscrowd": 0, "extra": true}]})"},
    {"no_annotations.json",
     R"({"categories": [{"id": 5, "name": "e"}], "images": [{"id": 1, "width": 1, "height": 1, "file_name": "z"}]})"},
    {"empty_lists.json", R"({"images": [], "categories": [], "annotations": []})"},
    {"compact.json",
     R"({"images":[{"id":-4,"width":2147483647,"height":1,"file_name":""}],"categories":[{"id":9007199254740993,"name":"big"}],"annotations":[{"id":0,"image_id":-4,"category_id":9007199254740993,"bbox":[1e-300,0,1e300,0.5],"area":1e2,"iscrowd":0}]})"},
};

const char* kResults[][2] = {
    {"two.json", R"([{"image_id": 1, "category_id": 1, "bbox": [4, 4, 20, 10], "score": 0.9},
 {"image_id": 7, "category_id": 10, "bbox": [2.5, 2, 28, 4], "score": 0.25}])"},
    {"empty.json", "[]"},
    {"mixed.json", R"([{"image_id": 1, "category_id": 3, "bbox": [30, 20, 8, 8], "score": 1, "extra": [1, {"x": "y"}]},
 {"score": 0.5, "bbox": [0, 0, 0, 0], "category_id": 1, "image_id": 1},
 {"image_id": 7, "category_id": 3, "bbox": [10, 10, 1e-3, 5], "score": -2.5e-1},
 {"image_id": 1, "category_id": 1, "bbox": [0, 0, 64, 48], "score": 0.5}])"},
};

// ---- checkpoint / search
class Leaf : public nn::Module {
 public:
  Leaf() {
    register_param("weight", rt::Tensor::full({2, 1, 3, 3}, 0.5f), nn::ParamKind::ConvWeight);
    register_param("bias", rt::Tensor::from_vector({2}, {1, -2}), nn::ParamKind::Bias);
    register_buffer("running_mean", rt::Tensor::from_vector({2}, {0.25f, 3}));
  }
};
class Tiny : public nn::Module {
 public:
  Tiny() {
    register_module("conv", std::make_unique<Leaf>());
    register_param("scale", rt::Tensor::full({1}, 1.5f), nn::ParamKind::NormWeight);
  }
};

// Image-folder entry (fuzz_image_folder.cpp): name bytes are indices into its alphabet.
std::string folder_entry(const std::string& cls, const std::string& file, const std::string& content) {
  static const std::string alphabet = "abcdefghijklmnopqrstuvwxyz0123456789._-ABCDEFGHIJKLMNOPQRSTUVWXYZ.jpgpngJPEG";
  auto enc = [&](const std::string& s) {
    std::string r;
    for (char c : s) r += char(alphabet.find(c));
    return r;
  };
  std::string e;
  e += char(cls.size()), e += enc(cls), e += char(file.size()), e += enc(file);
  e += char(content.size() & 0xff), e += char(content.size() >> 8), e += content;
  return e;
}
}  // namespace

int main(int argc, char** argv) {
  g_out = argc > 1 ? argv[1] : "fuzz/corpus";
  const std::string tmp = path_join(g_out, ".tmp");
  make_dirs(tmp);

  auto images = image_seeds();
  for (auto& [name, bytes] : images) put("image", name, bytes);
  for (auto& s : kInstances) put("coco_instances", s[0], s[1]);
  for (auto& s : kResults) put("coco_results", s[0], s[1]);
  {
    data::CocoDataset gt = data::parse_coco_instances(kInstances[0][1], "gt");
    std::vector<data::CocoDetection> d = {{1, 1, {0.1, 0.2, 3.0000000000000004, 4}, 0.123456789012345678},
                                          {7, 3, {0, 0, 1e-7, 2}, 1e-3}};
    put("coco_results", "formatted.json", data::format_coco_results(d));
  }

  {
    nn::NamedTensors t = {{"a.weight", rt::Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6})},
                          {"empty", rt::Tensor::zeros({0, 4})},
                          {"scalar", rt::Tensor::scalar(7)},
                          {"name \"quoted\"\n", rt::Tensor::full({1, 1, 1, 2}, -1)}};
    nn::save_safetensors(tmp + "/a.safetensors", t, {{"k", "v"}, {"detnas_step", "3"}});
    put("safetensors", "four_tensors.safetensors", read_file(tmp + "/a.safetensors"));
    nn::save_safetensors(tmp + "/b.safetensors", {});
    put("safetensors", "no_tensors.safetensors", read_file(tmp + "/b.safetensors"));
  }
  {
    Tiny m;
    nn::Sgd opt(m.parameters(), nn::SgdConfig::detection());
    nn::CheckpointMeta meta;
    meta.kind = "train";
    meta.step = 12;
    meta.space = "tiny";
    meta.arch = "supernet";
    meta.rng = {{"data", {1, 18446744073709551615ull}}, {"path", {42, 7}}};
    meta.config = {{"detector", "retinanet"}, {"num_classes", "5"}, {"categories", "[{\"id\": 1, \"name\": \"a\"}]"}};
    nn::save_checkpoint(tmp + "/c", m, &opt, meta);
    put("checkpoint", "no_optimizer_state.bin", read_file(tmp + "/c.json") + '\0' + read_file(tmp + "/c.safetensors"));
    opt.load_state({{"momentum.conv.weight", rt::Tensor::full({2, 1, 3, 3}, 0.1f)},
                    {"momentum.scale", rt::Tensor::full({1}, 0.2f)}},
                   "seed");
    meta.step = 13;
    meta.arch = "0,1,2,3,0,1,2,3,0,1";
    nn::save_checkpoint(tmp + "/c", m, &opt, meta);
    std::string side = read_file(tmp + "/c.json");
    put("checkpoint", "with_optimizer_state.bin", side + '\0' + read_file(tmp + "/c.safetensors"));
    // A checkpoint from before the sidecar copy in the weights' header: the step
    // in the weights' metadata must agree with the sidecar.
    nn::NamedTensors t;
    for (auto& p : m.parameters()) t.emplace_back(p.name, p.tensor);
    for (auto& b : m.buffers()) t.emplace_back(b.name, b.tensor);
    nn::save_safetensors(tmp + "/d.safetensors", t, {{"detnas_step", "13"}, {"detnas_kind", "train"}});
    put("checkpoint", "old_format_pair.bin", side + '\0' + read_file(tmp + "/d.safetensors"));
    put("checkpoint", "sidecar_only.bin", side);
  }
  {
    const nn::SearchSpace& space = nn::space_by_name("tiny");
    search::Evolution e(space, fuzz::fuzz_search_config());
    put("search_state", "fresh.json", e.to_json());
    int k = 0;
    while (!e.done()) {
      e.next();
      e.record(0.1 * double(k % 7) + 1e-9 * k, 0.5);
      ++k;
      if (k == 3) put("search_state", "after_3.json", e.to_json());
      if (k == 6) put("search_state", "after_6.json", e.to_json());
    }
    put("search_state", "finished.json", e.to_json());
  }
  {
    const char* arches[][2] = {{"short.txt", "2,1,0,3"},
                               {"json_list.txt", "[0, 1, 2, 3]"},
                               {"empty_list.txt", " [ ] "},
                               {"signs.txt", "+1,-0, 3 ,\t2\n"},
                               {"space_300M.txt", "2,1,2,0,2,1,1,2,3,3,1,3,0,0,3,1,3,1,3,2"},
                               {"negative.txt", "[-1, 4, 999999999]"}};
    for (auto& a : arches) put("arch", a[0], a[1]);
    put("arch", "space_tiny.txt", nn::format_arch_json(nn::uniform_arch(nn::space_by_name("tiny"), 3)));
  }
  {
    const std::string& jpg = images[0].second;   // rgb_16x16_420.jpg
    const std::string& png = images[10].second;  // rgb8_6x5.png
    put("image_folder", "two_classes.bin", folder_entry("cat", "a.jpg", jpg) + folder_entry("dog", "b.png", png));
    put("image_folder", "mixed.bin",
        folder_entry("cat", "x.JPEG", images[3].second) + folder_entry("cat", "notes.txt", "hello") +
            folder_entry("dog", "p.png", images[17].second) + folder_entry("emu", "", ""));
    put("image_folder", "one_image.bin", folder_entry("a", "1.png", images[7].second));
  }
  remove_all(tmp);
  std::printf("seeds written to %s\n", g_out.c_str());
  return 0;
}
