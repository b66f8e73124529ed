// Images, transforms, the JSON writer and the filesystem helpers: JPEG/PNG
// decoding (round trip, grayscale, CMYK, corrupt/truncated/missing files),
// resize/flip/crop/jitter, batching, JSON escaping checked by simdjson, atomic
// writes, and the real BCCD photographs against their annotation sizes.
#include <doctest/doctest.h>
#include <simdjson.h>
#include <stdlib.h>
#include <turbojpeg.h>
#include <zlib.h>

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "data/image.h"
#include "data/json_writer.h"
#include "data/transforms.h"
#include "runtime/fs.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::data;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/detnas_test_image_XXXXXX";
    const char* p = mkdtemp(tmpl);
    REQUIRE(p != nullptr);
    path = p;
  }
  ~TempDir() { remove_all(path); }
  std::string file(const std::string& name) const { return path_join(path, name); }
};

// A smooth colour pattern (JPEG-friendly) of odd size.
Image test_pattern(int64_t h, int64_t w) {
  Image img(h, w);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      uint8_t* p = img.at(y, x);
      p[0] = uint8_t(40 + 160 * x / w);
      p[1] = uint8_t(30 + 180 * y / h);
      p[2] = uint8_t(128 + 100 * std::sin(0.1 * double(x + y)));
    }
  return img;
}

Image random_image(int64_t h, int64_t w, uint64_t seed) {
  Rng rng(seed);
  Image img(h, w);
  for (auto& v : img.pixels) v = uint8_t(rng.below(256));
  return img;
}

double psnr(const Image& a, const Image& b) {
  REQUIRE(a.pixels.size() == b.pixels.size());
  double se = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) se += std::pow(double(a.pixels[i]) - double(b.pixels[i]), 2);
  double mse = se / double(a.pixels.size());
  return mse == 0 ? 99.0 : 10 * std::log10(255.0 * 255.0 / mse);
}

// Minimal PNG encoder for the decoder tests: 8-bit samples (or packed 1/2/4-bit
// when depth < 8, or 16-bit big endian), rows filtered with type row % 5, Adam7
// when interlace = 1. `samples` holds width*height*channels values.
std::vector<uint8_t> encode_png(int64_t w, int64_t h, int depth, int color_type, int channels, int interlace,
                                const std::vector<int>& samples, const std::vector<uint8_t>& palette = {}) {
  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  auto put32 = [](std::vector<uint8_t>& o, uint32_t v) {
    for (int i = 3; i >= 0; --i) o.push_back(uint8_t(v >> (8 * i)));
  };
  auto chunk = [&](const char* type, const std::vector<uint8_t>& d) {
    put32(out, uint32_t(d.size()));
    size_t s = out.size();
    out.insert(out.end(), type, type + 4);
    out.insert(out.end(), d.begin(), d.end());
    put32(out, uint32_t(crc32(0, out.data() + s, uInt(d.size() + 4))));
  };
  std::vector<uint8_t> ihdr;
  put32(ihdr, uint32_t(w));
  put32(ihdr, uint32_t(h));
  ihdr.insert(ihdr.end(), {uint8_t(depth), uint8_t(color_type), 0, 0, uint8_t(interlace)});
  chunk("IHDR", ihdr);
  if (!palette.empty()) chunk("PLTE", palette);
  const int64_t P[7][4] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
                           {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
  const int64_t whole[1][4] = {{0, 0, 1, 1}};
  std::vector<uint8_t> raw;
  const int64_t bpp = std::max<int64_t>(1, channels * depth / 8);
  for (int pi = 0; pi < (interlace ? 7 : 1); ++pi) {
    const int64_t* p = interlace ? P[pi] : whole[0];
    int64_t pw = w > p[0] ? (w - p[0] + p[2] - 1) / p[2] : 0, ph = h > p[1] ? (h - p[1] + p[3] - 1) / p[3] : 0;
    if (!pw || !ph) continue;
    const int64_t rb = (pw * channels * depth + 7) / 8;
    std::vector<uint8_t> prev(static_cast<size_t>(rb), 0), row(static_cast<size_t>(rb));
    for (int64_t y = 0; y < ph; ++y) {
      std::fill(row.begin(), row.end(), 0);
      for (int64_t x = 0; x < pw; ++x)
        for (int c = 0; c < channels; ++c) {
          int v = samples[size_t(((p[1] + y * p[3]) * w + p[0] + x * p[2]) * channels + c)];
          int64_t i = x * channels + c;
          if (depth == 8)
            row[size_t(i)] = uint8_t(v);
          else if (depth == 16)
            row[size_t(2 * i)] = uint8_t(v >> 8), row[size_t(2 * i + 1)] = uint8_t(v);
          else
            row[size_t(i * depth / 8)] |= uint8_t(v << (8 - depth - (i * depth) % 8));
        }
      int f = int(y % 5);
      raw.push_back(uint8_t(f));
      for (int64_t i = 0; i < rb; ++i) {
        int a = i >= bpp ? row[size_t(i - bpp)] : 0, b = prev[size_t(i)], c = i >= bpp ? prev[size_t(i - bpp)] : 0;
        int pp = a + b - c, pa = std::abs(pp - a), pb = std::abs(pp - b), pc = std::abs(pp - c);
        int pred = f == 0   ? 0
                   : f == 1 ? a
                   : f == 2 ? b
                   : f == 3 ? (a + b) / 2
                            : (pa <= pb && pa <= pc ? a
                               : pb <= pc           ? b
                                                    : c);
        raw.push_back(uint8_t(row[size_t(i)] - pred));
      }
      prev = row;
    }
  }
  uLongf zn = compressBound(uLong(raw.size()));
  std::vector<uint8_t> z(zn);
  REQUIRE(compress(z.data(), &zn, raw.data(), uLong(raw.size())) == Z_OK);
  z.resize(zn);
  chunk("IDAT", z);
  chunk("IEND", {});
  return out;
}

}  // namespace

TEST_CASE("image: JPEG round trip keeps the picture (PSNR) and the size") {
  for (auto [h, w] : {std::pair<int64_t, int64_t>{45, 67}, {1, 1}, {17, 7}, {64, 96}}) {
    Image img = test_pattern(h, w);
    Image back = decode_image(encode_jpeg(img, {95, JpegSubsampling::S444}).data(),
                              encode_jpeg(img, {95, JpegSubsampling::S444}).size(), "mem");
    CHECK(back.height == h);
    CHECK(back.width == w);
    if (h * w >= 64) CHECK(psnr(img, back) > 38.0);
    std::vector<uint8_t> j420 = encode_jpeg(img, {85, JpegSubsampling::S420});
    Image b420 = decode_image(j420.data(), j420.size(), "mem");
    if (h * w >= 64) CHECK(psnr(img, b420) > 30.0);
    ImageSize s = decode_image_size(j420.data(), j420.size(), "mem");
    CHECK(s.height == h);
    CHECK(s.width == w);
  }
  CHECK_THROWS_WITH_AS(encode_jpeg(Image()), doctest::Contains("empty image"), Error);
  CHECK_THROWS_WITH_AS(encode_jpeg(test_pattern(8, 8), {0}), doctest::Contains("quality"), Error);
}

TEST_CASE("image: grayscale JPEG decodes to three identical channels") {
  Image img = test_pattern(23, 31);
  std::vector<uint8_t> j = encode_jpeg(img, {90, JpegSubsampling::Gray});
  tjhandle tj = tjInitDecompress();
  int w, h, sub, cs;
  REQUIRE(tjDecompressHeader3(tj, j.data(), j.size(), &w, &h, &sub, &cs) == 0);
  tjDestroy(tj);
  CHECK(cs == TJCS_GRAY);  // it really is a 1-channel JPEG
  Image back = decode_image(j.data(), j.size(), "gray.jpg");
  REQUIRE(back.height == 23);
  REQUIRE(back.width == 31);
  for (int64_t i = 0; i < 23 * 31; ++i) {
    CHECK(back.pixels[size_t(3 * i)] == back.pixels[size_t(3 * i + 1)]);
    CHECK(back.pixels[size_t(3 * i)] == back.pixels[size_t(3 * i + 2)]);
  }
}

TEST_CASE("image: CMYK JPEG is converted to BGR (Adobe inverted convention)") {
  // Left half: C,M,Y = R,G,B of a colour with K = 255 (no black); right half the
  // same with K = 128, which halves every channel.
  const int W = 32, H = 16;
  const uint8_t R = 200, G = 120, B = 40;
  std::vector<uint8_t> cmyk(W * H * 4);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      uint8_t* p = &cmyk[size_t((y * W + x) * 4)];
      p[0] = R, p[1] = G, p[2] = B, p[3] = x < W / 2 ? 255 : 128;
    }
  tjhandle tj = tjInitCompress();
  unsigned char* buf = nullptr;
  unsigned long len = 0;
  REQUIRE(tjCompress2(tj, cmyk.data(), W, 0, H, TJPF_CMYK, &buf, &len, TJSAMP_444, 100, 0) == 0);
  std::vector<uint8_t> j(buf, buf + len);
  tjFree(buf);
  tjDestroy(tj);
  Image img = decode_image(j.data(), j.size(), "cmyk.jpg");
  REQUIRE(img.width == W);
  const uint8_t* l = img.at(8, 4);
  const uint8_t* r = img.at(8, 28);
  // Tolerance: JPEG at quality 100 still rounds through YCCK.
  CHECK(std::abs(l[0] - B) <= 3);
  CHECK(std::abs(l[1] - G) <= 3);
  CHECK(std::abs(l[2] - R) <= 3);
  CHECK(std::abs(r[2] - R * 128 / 255) <= 3);
  CHECK(std::abs(r[1] - G * 128 / 255) <= 3);
}

TEST_CASE("image: corrupt, truncated, missing and non-image files give errors naming the file") {
  TempDir dir;
  std::vector<uint8_t> good = encode_jpeg(random_image(40, 50, 1), {90});  // noise: the scan data is most of the file
  const std::string trunc = dir.file("truncated.jpg"), corrupt = dir.file("corrupt.jpg"), text = dir.file("a.jpg");
  const std::string head = dir.file("head.jpg"), ok = dir.file("ok.jpg");
  write_file_atomic(trunc, good.data(), good.size() / 2);
  write_file_atomic(head, good.data(), 300);  // cut inside the header, before SOS
  write_file_atomic(ok, good.data(), good.size());
  // Repeated failures must not poison the decoder for the next file.
  for (int k = 0; k < 2; ++k) {
    CHECK_THROWS_WITH_AS(read_image(head), doctest::Contains("head.jpg"), Error);
    CHECK_THROWS_WITH_AS(read_image(trunc), doctest::Contains("Premature end of JPEG file"), Error);
    CHECK(read_image(ok).width == 50);
  }
  std::vector<uint8_t> bad = good;
  for (size_t i = 0; i < 200; ++i) bad[i + 3] = uint8_t(i * 37);  // garbage in the header segments
  write_file_atomic(corrupt, bad.data(), bad.size());
  write_file_atomic(text, std::string("hello, not a picture"));
  CHECK_THROWS_WITH_AS(read_image(trunc), doctest::Contains(trunc.c_str()), Error);
  CHECK_THROWS_WITH_AS(read_image(trunc), doctest::Contains("cannot decode JPEG"), Error);
  CHECK_THROWS_WITH_AS(read_image(corrupt), doctest::Contains(corrupt.c_str()), Error);
  CHECK_THROWS_WITH_AS(read_image(text), doctest::Contains("not a JPEG or PNG"), Error);
  CHECK_THROWS_WITH_AS(read_image(dir.file("missing.jpg")), doctest::Contains(dir.file("missing.jpg").c_str()), Error);
  CHECK_THROWS_WITH_AS(read_image(dir.file("missing.jpg")), doctest::Contains("No such file"), Error);
  CHECK_THROWS_WITH_AS(read_image(dir.path), doctest::Contains("folder"), Error);
  // Warnings can be accepted: the truncated image decodes at full size.
  Image partial = read_image(trunc, {JpegWarnings::Ignore});
  CHECK(partial.height == 40);
  CHECK(partial.width == 50);
  // A PNG with a damaged CRC.
  std::vector<uint8_t> png = encode_png(3, 2, 8, 0, 1, 0, {1, 2, 3, 4, 5, 6});
  png[20] ^= 1;
  CHECK_THROWS_WITH_AS(decode_image(png.data(), png.size(), "x.png"), doctest::Contains("x.png': CRC mismatch"), Error);
  std::vector<uint8_t> png_cut = encode_png(3, 2, 8, 0, 1, 0, {1, 2, 3, 4, 5, 6});
  png_cut.resize(png_cut.size() - 20);
  CHECK_THROWS_WITH_AS(decode_image(png_cut.data(), png_cut.size(), "cut.png"), doctest::Contains("cut.png"), Error);
}

TEST_CASE("image: PNG decoding of every colour type, bit depth, filter and Adam7") {
  const int64_t W = 13, H = 11;  // odd sizes exercise partial Adam7 passes and bit packing
  Rng rng(3);
  std::vector<int> rgba(W * H * 4), gray16(W * H), idx(W * H);
  for (auto& v : rgba) v = int(rng.below(256));
  for (auto& v : gray16) v = int(rng.below(65536));
  for (auto& v : idx) v = int(rng.below(16));
  std::vector<uint8_t> pal;
  for (int i = 0; i < 16; ++i) pal.insert(pal.end(), {uint8_t(i * 16), uint8_t(255 - i * 8), uint8_t(i * 3)});
  for (int interlace : {0, 1}) {
    CAPTURE(interlace);
    // RGBA 8-bit: alpha dropped, channels reordered to BGR.
    Image a = decode_image(encode_png(W, H, 8, 6, 4, interlace, rgba).data(),
                           encode_png(W, H, 8, 6, 4, interlace, rgba).size(), "rgba.png");
    bool ok = a.height == H && a.width == W;
    for (int64_t i = 0; ok && i < W * H; ++i)
      ok = a.pixels[size_t(3 * i)] == rgba[size_t(4 * i + 2)] && a.pixels[size_t(3 * i + 2)] == rgba[size_t(4 * i)];
    CHECK(ok);
    // Gray 16-bit: the high byte.
    std::vector<uint8_t> g16 = encode_png(W, H, 16, 0, 1, interlace, gray16);
    Image g = decode_image(g16.data(), g16.size(), "g16.png");
    ok = true;
    for (int64_t i = 0; i < W * H; ++i) ok = ok && g.pixels[size_t(3 * i + 1)] == (gray16[size_t(i)] >> 8);
    CHECK(ok);
    // Palette 4-bit.
    std::vector<uint8_t> p4 = encode_png(W, H, 4, 3, 1, interlace, idx, pal);
    Image p = decode_image(p4.data(), p4.size(), "p4.png");
    ok = true;
    for (int64_t i = 0; i < W * H; ++i) ok = ok && p.pixels[size_t(3 * i + 2)] == pal[size_t(3 * idx[size_t(i)])];
    CHECK(ok);
    // Gray 1-bit scales 1 to 255.
    std::vector<int> bits(W * H);
    for (int64_t i = 0; i < W * H; ++i) bits[size_t(i)] = idx[size_t(i)] & 1;
    std::vector<uint8_t> g1 = encode_png(W, H, 1, 0, 1, interlace, bits);
    Image b = decode_image(g1.data(), g1.size(), "g1.png");
    ok = true;
    for (int64_t i = 0; i < W * H; ++i) ok = ok && b.pixels[size_t(3 * i)] == (bits[size_t(i)] ? 255 : 0);
    CHECK(ok);
    ImageSize s = decode_image_size(g1.data(), g1.size(), "g1.png");
    CHECK(s.width == W);
    CHECK(s.height == H);
  }
  std::vector<uint8_t> bad_depth = encode_png(4, 4, 4, 2, 3, 0, std::vector<int>(48, 1));
  CHECK_THROWS_WITH_AS(decode_image(bad_depth.data(), bad_depth.size(), "d.png"),
                       doctest::Contains("bit depth 4 is not valid for colour type 2"), Error);
}

TEST_CASE("image: drawing rectangles and text stays inside the image") {
  Image img(20, 30, bgr(0, 0, 0));
  fill_rect(img, -5, -5, 3, 2, bgr(1, 2, 3));  // clipped at the top-left
  CHECK(img.at(0, 0)[2] == 3);
  CHECK(img.at(1, 2)[0] == 1);
  CHECK(img.at(2, 2)[0] == 0);
  CHECK(img.at(1, 3)[0] == 0);
  draw_rect(img, 10, 5, 20, 15, bgr(255, 0, 0), 2);
  CHECK(img.at(5, 10)[0] == 255);
  CHECK(img.at(14, 19)[0] == 255);
  CHECK(img.at(6, 11)[0] == 255);
  CHECK(img.at(7, 12)[0] == 0);                  // inside the outline
  CHECK(img.at(15, 20)[0] == 0);                 // x2, y2 are exclusive
  draw_rect(img, 25, 15, 40, 40, bgr(9, 9, 9));  // clipped, no crash
  Image t(12, 60);
  draw_text(t, 1, 1, "Ab:0.9", bgr(255, 255, 255));
  int64_t lit = 0, outside = 0;
  for (int64_t y = 0; y < t.height; ++y)
    for (int64_t x = 0; x < t.width; ++x)
      if (t.at(y, x)[0]) (x >= 1 && x < 1 + text_width("Ab:0.9") && y >= 1 && y < 8 ? lit : outside)++;
  CHECK(lit > 30);
  CHECK(outside == 0);
  draw_label(t, 55, 0, "cross 0.97", bgr(0, 200, 0), bgr(0, 0, 0));  // near the corner: clipped/moved
}

TEST_CASE("image: bilinear resize (identity, exact 2x2 averages, naive formula)") {
  Image img = random_image(14, 18, 5);
  CHECK(resize_bilinear(img, 14, 18).pixels == img.pixels);
  Image half = resize_bilinear(img, 7, 9);
  bool ok = true;
  for (int64_t y = 0; y < 7; ++y)
    for (int64_t x = 0; x < 9; ++x)
      for (int c = 0; c < 3; ++c) {
        int s = img.at(2 * y, 2 * x)[c] + img.at(2 * y, 2 * x + 1)[c] + img.at(2 * y + 1, 2 * x)[c] +
                img.at(2 * y + 1, 2 * x + 1)[c];
        ok = ok && half.at(y, x)[c] == (2 * s + 4) / 8;  // round half up of s/4
      }
  CHECK(ok);
  // Arbitrary up/down sizes against the half-pixel formula in double (rounding may
  // differ by one level where float and double land on opposite sides of .5).
  Image src = random_image(7, 17, 6);
  for (auto [oh, ow] : {std::pair<int64_t, int64_t>{23, 5}, {1, 1}, {7, 40}, {3, 17}}) {
    Image out = resize_bilinear(src, oh, ow);
    int worst = 0;
    for (int64_t y = 0; y < oh; ++y)
      for (int64_t x = 0; x < ow; ++x) {
        double sy = std::max(0.0, (y + 0.5) * 7.0 / double(oh) - 0.5),
               sx = std::max(0.0, (x + 0.5) * 17.0 / double(ow) - 0.5);
        int64_t y0 = std::min<int64_t>(int64_t(sy), 6), x0 = std::min<int64_t>(int64_t(sx), 16);
        int64_t y1 = std::min<int64_t>(y0 + 1, 6), x1 = std::min<int64_t>(x0 + 1, 16);
        double fy = sy - double(y0), fx = sx - double(x0);
        for (int c = 0; c < 3; ++c) {
          double v = (1 - fy) * ((1 - fx) * src.at(y0, x0)[c] + fx * src.at(y0, x1)[c]) +
                     fy * ((1 - fx) * src.at(y1, x0)[c] + fx * src.at(y1, x1)[c]);
          worst = std::max(worst, std::abs(int(std::floor(v + 0.5)) - int(out.at(y, x)[c])));
        }
      }
    CHECK(worst <= 1);
  }
  // The region form equals crop + resize.
  CropRect r{3, 1, 9, 5};
  CHECK(resize_bilinear(src, r, 11, 4).pixels == resize_bilinear(crop(src, r), 11, 4).pixels);
  CHECK_THROWS_WITH_AS(crop(src, CropRect{10, 0, 8, 2}), doctest::Contains("not inside the 17x7 image"), Error);
  CHECK_THROWS_WITH_AS(resize_bilinear(src, 0, 4), doctest::Contains("must be positive"), Error);
}

TEST_CASE("image: horizontal flip of image and boxes") {
  Image img = random_image(9, 13, 8);
  Image f = img;
  std::vector<float> boxes = {0, 0, 13, 9, 2.5f, 1, 6, 4};
  std::vector<float> orig = boxes;
  hflip(f, boxes.data(), 2);
  CHECK(f.at(4, 0)[1] == img.at(4, 12)[1]);
  CHECK(f.at(2, 3)[2] == img.at(2, 9)[2]);
  CHECK(boxes[0] == 0.0f);
  CHECK(boxes[2] == 13.0f);
  CHECK(boxes[4] == 13 - 6.0f);  // x1' = W - x2
  CHECK(boxes[6] == 13 - 2.5f);  // x2' = W - x1
  CHECK(boxes[5] == 1.0f);
  hflip(f, boxes.data(), 2);
  CHECK(f.pixels == img.pixels);
  CHECK(boxes == orig);
  // A box drawn on the image covers the same pixels as the flipped box after flipping.
  Image canvas(10, 21);
  fill_rect(canvas, 3, 2, 8, 6, bgr(255, 255, 255));
  std::vector<float> b = {3, 2, 8, 6};
  hflip(canvas, b.data(), 1);
  Image expect(10, 21);
  fill_rect(expect, int64_t(b[0]), int64_t(b[1]), int64_t(b[2]), int64_t(b[3]), bgr(255, 255, 255));
  CHECK(canvas.pixels == expect.pixels);
}

TEST_CASE("image: short-side resize sizes follow the 800/1333 rule") {
  struct Case {
    int64_t h, w, eh, ew;
  };
  // maskrcnn-benchmark Resize.get_size: short side 800 unless the long side would
  // pass 1333; then short = round(1333 * short / long) (half to even); long side truncated.
  for (Case c : {Case{480, 640, 800, 1066}, Case{640, 480, 1066, 800}, Case{300, 1000, 400, 1333},
                 Case{1000, 300, 1333, 400}, Case{800, 1200, 800, 1200}, Case{500, 500, 800, 800},
                 Case{100, 2000, 67, 1340}, Case{1, 2, 666, 1332}, Case{427, 640, 800, 1199}}) {
    CAPTURE(c.h);
    CAPTURE(c.w);
    ImageSize s = short_side_size({c.h, c.w}, 800, 1333);
    CHECK(s.height == c.eh);
    CHECK(s.width == c.ew);
  }
  ImageSize nolimit = short_side_size({100, 2000}, 800, 0);
  CHECK(nolimit.height == 800);
  CHECK(nolimit.width == 16000);
  Image img = test_pattern(48, 64);
  std::vector<float> boxes = {0, 0, 64, 48, 8, 4, 16, 12};
  Image r = resize_short_side(img, 60, 1000, boxes.data(), 2);
  CHECK(r.height == 60);
  CHECK(r.width == 80);
  CHECK(boxes[2] == doctest::Approx(80));
  CHECK(boxes[3] == doctest::Approx(60));
  CHECK(boxes[4] == doctest::Approx(10));
  CHECK(boxes[7] == doctest::Approx(15));
}

TEST_CASE("image: CHW conversion, padding to a multiple of 32 and batch packing") {
  CHECK(round_up_to_multiple(800, 32) == 800);
  CHECK(round_up_to_multiple(1066, 32) == 1088);
  CHECK(round_up_to_multiple(1, 32) == 32);
  ImageSize ps = padded_batch_size({{800, 1066}, {600, 1100}}, 32);
  CHECK(ps.height == 800);
  CHECK(ps.width == 1120);
  Image a = random_image(5, 7, 1), b = random_image(3, 9, 2);
  std::vector<float> chw(3 * 5 * 7);
  to_chw_float(a, chw.data());
  CHECK(chw[0] == float(a.at(0, 0)[0]));                   // plane 0 = B
  CHECK(chw[2 * 35 + 1 * 7 + 4] == float(a.at(1, 4)[2]));  // plane 2 = R
  rt::Tensor t = batch_to_tensor({&a, &b}, 32);
  REQUIRE(t.shape() == rt::Shape{2, 3, 32, 32});
  const float* d = t.data();
  bool ok = true;
  for (int64_t n = 0; n < 2; ++n) {
    const Image& im = n ? b : a;
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < 32; ++y)
        for (int64_t x = 0; x < 32; ++x) {
          float v = d[((n * 3 + c) * 32 + y) * 32 + x];
          float e = y < im.height && x < im.width ? float(im.at(y, x)[c]) : 0.0f;
          ok = ok && v == e;
        }
  }
  CHECK(ok);
  CHECK_THROWS_WITH_AS(batch_to_tensor({}, 32), doctest::Contains("empty batch"), Error);
}

TEST_CASE("image: random-resized-crop and colour jitter are deterministic given the Rng") {
  Image img = test_pattern(60, 80);
  for (uint64_t seed = 0; seed < 50; ++seed) {
    Rng r1(seed);
    CropRect c = random_resized_crop_rect(img.size(), r1);
    CHECK(c.x >= 0);
    CHECK(c.y >= 0);
    CHECK(c.x + c.w <= 80);
    CHECK(c.y + c.h <= 60);
    CHECK(c.w * c.h >= int64_t(0.08 * 4800 * 0.8));  // rounding of w and h can shave a little
  }
  Rng r1(11), r2(11), r3(12);
  Image a = random_resized_crop(img, 32, r1), b = random_resized_crop(img, 32, r2),
        c = random_resized_crop(img, 32, r3);
  CHECK(a.height == 32);
  CHECK(a.width == 32);
  CHECK(a.pixels == b.pixels);
  CHECK(a.pixels != c.pixels);
  // Impossible ratios fall back to a centre crop with the ratio clamped.
  Rng r4(1);
  CropRect fb = random_resized_crop_rect({10, 100}, r4, {0.9, 1.0, 1.0, 1.0});
  CHECK(fb.w == 10);
  CHECK(fb.h == 10);
  CHECK(fb.x == 45);
  Image j1 = img, j2 = img, j0 = img;
  Rng s1(4), s2(4), s0(4);
  color_jitter(j1, s1, {0.4f, 0.4f, 0.4f, 0.1f});
  color_jitter(j2, s2, {0.4f, 0.4f, 0.4f, 0.1f});
  CHECK(j1.pixels == j2.pixels);
  CHECK(j1.pixels != img.pixels);
  CHECK(s1.state0() == s2.state0());
  color_jitter(j0, s0, {0, 0, 0, 0});
  CHECK(j0.pixels == img.pixels);
  // Saturation alone changes the colours but not the grey level much.
  Image g = img;
  Rng sg(9);
  color_jitter(g, sg, {0, 0, 1.0f, 0});
  CHECK(g.pixels != img.pixels);
  CHECK_THROWS_WITH_AS(color_jitter(g, sg, {0, 0, 0, 0.7f}), doctest::Contains("hue must be in [0, 0.5]"), Error);
}

TEST_CASE("image: json writer escapes strings and round-trips through simdjson") {
  JsonWriter w;
  const std::string nasty = std::string("quote\" back\\ nl\n tab\t ctl\x01 utf8 \xc3\xa9 end");
  w.begin_object();
  w.field("s", nasty).field("i", int64_t(-9007199254740993LL)).field("u", uint64_t(18446744073709551615ULL));
  w.field("d", 0.1).field("third", 1.0 / 3.0).field("f", 0.1f).field("b", true).field("nan", std::nan(""));
  w.key("p").value(3.14159265358979, Precision{4});
  w.key("arr")
      .begin_array()
      .value(1)
      .value("x")
      .null()
      .begin_object()
      .end_object()
      .begin_array()
      .end_array()
      .end_array();
  w.key("v").array(std::vector<double>{1e-300, -2.5e10, 0});
  w.end_object();
  REQUIRE(w.complete());
  const std::string text = w.str();
  CHECK(text.find("\"d\":0.1,") != std::string::npos);  // shortest exact form
  CHECK(text.find("\"f\":0.1,") != std::string::npos);  // float: shortest for the float
  CHECK(text.find("\"p\":3.142") != std::string::npos);
  CHECK(text.find("\"nan\":null") != std::string::npos);
  CHECK(text.find("\\u0001") != std::string::npos);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(text);
  CHECK(std::string(std::string_view(doc["s"])) == nasty);
  CHECK(int64_t(doc["i"]) == -9007199254740993LL);
  CHECK(uint64_t(doc["u"]) == 18446744073709551615ULL);
  CHECK(double(doc["third"]) == 1.0 / 3.0);  // exact round trip
  CHECK(double(doc["d"]) == 0.1);
  CHECK(bool(doc["b"]) == true);
  simdjson::dom::array arr = doc["arr"];
  CHECK(arr.size() == 5);
  simdjson::dom::array v = doc["v"];
  CHECK(double(v.at(0)) == 1e-300);
  // Pretty output parses the same.
  JsonWriter pw(JsonStyle::Pretty);
  pw.begin_object().field("a", 1).key("b").begin_array().value(2).value(3).end_array().end_object();
  CHECK(pw.str() == "{\n  \"a\": 1,\n  \"b\": [\n    2,\n    3\n  ]\n}");
  // Streaming: take_buffer keeps the state.
  JsonWriter sw;
  sw.begin_array().value(1);
  std::string part = sw.take_buffer();
  sw.value(2).end_array();
  CHECK(part + sw.take_buffer() == "[1,2]");
  // Structure errors.
  JsonWriter e;
  CHECK_THROWS_WITH_AS(e.key("x"), doctest::Contains("outside an object"), Error);
  e.begin_object();
  CHECK_THROWS_WITH_AS(e.value(1), doctest::Contains("needs a key"), Error);
  CHECK_THROWS_WITH_AS(e.end_array(), doctest::Contains("without a matching begin_array"), Error);
  CHECK_THROWS_WITH_AS(e.str(), doctest::Contains("incomplete"), Error);
  e.end_object();
  CHECK_THROWS_WITH_AS(e.value(2), doctest::Contains("after the complete top-level value"), Error);
  CHECK(json_quote("a\"b") == "\"a\\\"b\"");
  CHECK(json_number(1e21) == "1e+21");
}

TEST_CASE("image: fs helpers: atomic write leaves no temporary file, sorted listing, errors") {
  TempDir dir;
  const std::string f = dir.file("out.json");
  write_file_atomic(f, std::string("first"));
  write_file_atomic(f, std::string("second, longer"));
  write_file_atomic(dir.file("b.txt"), std::string(""), Durability::NoSync);
  CHECK(read_file(f) == "second, longer");
  CHECK(read_file(dir.file("b.txt")).empty());
  make_dirs(dir.file("z/y/x"));
  make_dirs(dir.file("z/y/x"));  // again: no error
  CHECK(list_dir(dir.path) == std::vector<std::string>{"b.txt", "out.json", "z"});
  CHECK(list_dir(dir.path, ListFilter::Files) == std::vector<std::string>{"b.txt", "out.json"});
  CHECK(list_dir(dir.path, ListFilter::Dirs) == std::vector<std::string>{"z"});
  CHECK_THROWS_WITH_AS(write_file_atomic(dir.file("nope/f.txt"), std::string("x")), doctest::Contains("nope/f.txt"),
                       Error);
  CHECK(list_dir(dir.path, ListFilter::All, ListHidden::Include).size() == 3);  // no temporaries left
  CHECK_THROWS_WITH_AS(list_dir(dir.file("missing")), doctest::Contains("does not exist"), Error);
  CHECK_THROWS_WITH_AS(make_dirs(f + "/sub"), doctest::Contains("out.json/sub"), Error);
  CHECK(dir_missing_or_empty(dir.file("z/y/x")));
  CHECK(!dir_missing_or_empty(dir.path));
  CHECK(path_join("a/", "/b") == "a/b");
  CHECK(path_extension("x/IMG.JPG") == ".jpg");
  CHECK(path_parent("a/b/c.jpg") == "a/b");
  CHECK(path_filename("a/b/c.jpg") == "c.jpg");
}

TEST_CASE("image: BCCD photographs decode with the sizes given in their annotations") {
  const std::string root = "../shared/data/bccd";
  if (!file_exists(root + "/annotations/instances_val.json")) {
    test::test_skip("BCCD dataset not found at " + root + " (run from the repository root)");
    return;
  }
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.load(root + "/annotations/instances_val.json");
  int checked = 0;
  for (simdjson::dom::element im : doc["images"].get_array()) {
    if (checked == 4) break;
    const std::string path = root + "/val/" + std::string(std::string_view(im["file_name"]));
    Image img = read_image(path);
    CAPTURE(path);
    CHECK(img.width == int64_t(im["width"]));
    CHECK(img.height == int64_t(im["height"]));
    // Real photographs: not flat, and not all channels equal.
    int64_t diff = 0;
    for (size_t i = 0; i + 2 < img.pixels.size(); i += 301) diff += std::abs(img.pixels[i] - img.pixels[i + 2]);
    CHECK(diff > 0);
    ++checked;
  }
  CHECK(checked == 4);
}

TEST_CASE("image: damaged JPEG and PNG bytes give an Error or an image, never a crash") {
  // Random byte flips, truncations and length-field damage; run under MODE=asan
  // this also checks the decoders never read out of bounds.
  std::vector<uint8_t> jpg = encode_jpeg(test_pattern(19, 23), {80});
  std::vector<int> s(23 * 19 * 3);
  for (size_t i = 0; i < s.size(); ++i) s[i] = int(i * 7 % 256);
  std::vector<uint8_t> png = encode_png(23, 19, 8, 2, 3, 1, s);
  Rng rng(17);
  int errors = 0, decoded = 0;
  for (int iter = 0; iter < 400; ++iter) {
    std::vector<uint8_t> b = iter % 2 ? png : jpg;
    int kind = int(rng.below(3));
    if (kind == 0) {
      for (int k = 0; k < 1 + int(rng.below(4)); ++k) b[size_t(rng.below(b.size()))] = uint8_t(rng.below(256));
    } else if (kind == 1) {
      b.resize(size_t(1 + rng.below(b.size() - 1)));
    } else {
      size_t at = size_t(rng.below(b.size() - 4));
      b[at] = 0xFF, b[at + 1] = 0xFF;
    }
    try {
      Image img = decode_image(b.data(), b.size(), "fuzz");
      CHECK(int64_t(img.pixels.size()) == img.height * img.width * 3);
      ++decoded;
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find("fuzz") != std::string::npos);
      ++errors;
    }
  }
  CHECK(errors > 0);
  CHECK(errors + decoded == 400);
}
