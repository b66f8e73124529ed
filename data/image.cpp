// Image decode/encode and drawing (see image.h). JPEG goes through TurboJPEG with
// one compressor and one decompressor per thread (created on first use); PNG is
// decoded here with zlib's uncompress (chunk walk with CRC checks, the five row
// filters, Adam7 passes). No file listing, no resizing.
#include "data/image.h"

#include <turbojpeg.h>
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace detnas::data {

namespace {
constexpr int64_t kMaxPixels = int64_t(1) << 28;  // 268M pixels: rejects absurd headers early

void check_dims(int64_t h, int64_t w, const std::string& name) {
  DETNAS_CHECK(h > 0 && w > 0 && h <= kMaxPixels / w, "image '", name, "': unsupported size ", w, "x", h,
               " (width x height; at most ", kMaxPixels, " pixels)");
}
}  // namespace

Image::Image(int64_t h, int64_t w) : Image(h, w, Color{}) {}
Image::Image(int64_t h, int64_t w, Color fill) : height(h), width(w) {
  DETNAS_CHECK(h >= 0 && w >= 0 && (h == 0 || w <= kMaxPixels / h), "Image: bad size ", h, "x", w, " (HxW)");
  pixels.resize(size_t(h * w * kChannels));
  if (fill.b == fill.g && fill.g == fill.r) {
    std::memset(pixels.data(), fill.b, pixels.size());
  } else {
    for (size_t i = 0; i < pixels.size(); i += 3) {
      pixels[i] = fill.b;
      pixels[i + 1] = fill.g;
      pixels[i + 2] = fill.r;
    }
  }
}

ImageFormat sniff_image_format(const uint8_t* d, size_t n) {
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return ImageFormat::Jpeg;
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (n >= 8 && std::memcmp(d, png_sig, 8) == 0) return ImageFormat::Png;
  return ImageFormat::Unknown;
}

// ---------------------------------------------------------------- JPEG
namespace {
// One TurboJPEG handle of each kind per thread. After any failure the handle is
// replaced: TurboJPEG 2.1 can leave a decompressor in a state where the next
// header read "succeeds" with a 0x0 image (seen after a header cut before SOS).
struct TjHandle {
  const bool compress;
  tjhandle h;
  explicit TjHandle(bool c) : compress(c), h(c ? tjInitCompress() : tjInitDecompress()) {}
  ~TjHandle() {
    if (h) tjDestroy(h);
  }
  TjHandle(const TjHandle&) = delete;
  TjHandle& operator=(const TjHandle&) = delete;
  tjhandle get() {
    DETNAS_CHECK(h, "TurboJPEG: cannot create a ", compress ? "compressor" : "decompressor", ": ",
                 tjGetErrorStr2(nullptr));
    return h;
  }
  // The last error message, then a fresh handle.
  std::string error_and_reset() {
    std::string msg = h ? tjGetErrorStr2(h) : "no handle";
    if (h) tjDestroy(h);
    h = compress ? tjInitCompress() : tjInitDecompress();
    return msg;
  }
};
TjHandle& tj_handle(bool compress) {
  thread_local TjHandle dec(false), enc(true);
  return compress ? enc : dec;
}

Image decode_jpeg(const uint8_t* data, size_t size, const std::string& name, DecodeOptions opt) {
  TjHandle& th = tj_handle(false);
  tjhandle tj = th.get();
  int w = 0, h = 0, subsamp = 0, cs = 0;
  if (tjDecompressHeader3(tj, data, (unsigned long)size, &w, &h, &subsamp, &cs) != 0)
    DETNAS_FAIL("cannot decode JPEG '", name, "': ", th.error_and_reset());
  check_dims(h, w, name);
  // Entropy-coded data takes at least one bit per 8x8 block of the full-size
  // component: reject headers that promise more than the file can hold before
  // allocating for them (a 795-byte CMYK header claiming 16384x16383 took 1.8 GB
  // and 17 s to fail). Only arithmetic-coded, nearly uniform images beat this.
  DETNAS_CHECK(int64_t(w) * h <= int64_t(size) * 512, "cannot decode JPEG '", name, "': ", size,
               " bytes cannot hold a ", w, "x", h, " image (truncated file or corrupt header)");
  int flags = opt.jpeg_warnings == JpegWarnings::Fail ? TJFLAG_STOPONWARNING : 0;
  Image img(h, w);
  int rc;
  if (cs == TJCS_CMYK || cs == TJCS_YCCK) {
    // libjpeg cannot convert CMYK to RGB itself; TurboJPEG's CMYK buffers hold
    // Adobe-style inverted values, so R = C*K/255 (as libjpeg-turbo's tjLoadImage
    // and Pillow's CMYK;I mode do).
    std::vector<uint8_t> cmyk(size_t(w) * size_t(h) * 4);
    rc = tjDecompress2(tj, data, (unsigned long)size, cmyk.data(), w, 0, h, TJPF_CMYK, flags);
    const uint8_t* s = cmyk.data();
    uint8_t* o = img.pixels.data();
    for (int64_t i = 0; i < int64_t(w) * h; ++i, s += 4, o += 3) {
      int k = s[3];
      o[0] = uint8_t((s[2] * k + 127) / 255);  // B from Y
      o[1] = uint8_t((s[1] * k + 127) / 255);  // G from M
      o[2] = uint8_t((s[0] * k + 127) / 255);  // R from C
    }
  } else {
    // Grayscale and YCbCr/RGB JPEGs: libjpeg converts to BGR directly.
    rc = tjDecompress2(tj, data, (unsigned long)size, img.pixels.data(), w, 0, h, TJPF_BGR, flags);
  }
  if (rc != 0) {
    bool warning = tjGetErrorCode(tj) == TJERR_WARNING;
    std::string msg = th.error_and_reset();
    if (!warning || opt.jpeg_warnings == JpegWarnings::Fail)
      DETNAS_FAIL("cannot decode JPEG '", name, "': ", msg, warning ? " (corrupt or truncated data)" : "");
  }
  return img;
}
}  // namespace

std::vector<uint8_t> encode_jpeg(const Image& img, JpegParams p) {
  DETNAS_CHECK(!img.empty(), "encode_jpeg: empty image (", img.width, "x", img.height, ")");
  DETNAS_CHECK(p.quality >= 1 && p.quality <= 100, "encode_jpeg: quality must be 1..100, got ", p.quality);
  DETNAS_CHECK(int64_t(img.pixels.size()) == img.height * img.row_bytes(), "encode_jpeg: pixel buffer has ",
               img.pixels.size(), " bytes, expected ", img.height * img.row_bytes());
  int sub = p.subsampling == JpegSubsampling::S444   ? TJSAMP_444
            : p.subsampling == JpegSubsampling::S422 ? TJSAMP_422
            : p.subsampling == JpegSubsampling::S420 ? TJSAMP_420
                                                     : TJSAMP_GRAY;
  TjHandle& th = tj_handle(true);
  unsigned char* buf = nullptr;
  unsigned long len = 0;
  int rc = tjCompress2(th.get(), img.pixels.data(), int(img.width), 0, int(img.height), TJPF_BGR, &buf, &len, sub,
                       p.quality, 0);
  if (rc != 0) {
    std::string msg = th.error_and_reset();
    if (buf) tjFree(buf);
    DETNAS_FAIL("encode_jpeg: TurboJPEG failed on a ", img.width, "x", img.height, " image: ", msg);
  }
  std::vector<uint8_t> out(buf, buf + len);
  tjFree(buf);
  return out;
}

void write_jpeg(const std::string& path, const Image& img, JpegParams params, Durability durability) {
  std::vector<uint8_t> bytes = encode_jpeg(img, params);
  write_file_atomic(path, bytes.data(), bytes.size(), durability);
}

// ---------------------------------------------------------------- PNG
namespace {
uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

struct PngHeader {
  int64_t width = 0, height = 0;
  int depth = 0, color_type = -1, interlace = 0;
};

#define PNG_CHECK(cond, ...) DETNAS_CHECK(cond, "cannot decode PNG '", name, "': ", __VA_ARGS__)

// Walks the chunks; fills the header, the concatenated IDAT data and the palette.
// With idat == nullptr (size only), stops after IHDR.
PngHeader png_chunks(const uint8_t* d, size_t n, const std::string& name, std::vector<uint8_t>* idat,
                     std::vector<uint8_t>* palette) {
  PngHeader hd;
  size_t pos = 8;
  bool ended = false;
  while (!ended) {
    PNG_CHECK(pos + 12 <= n, "truncated file (no IEND chunk)");
    uint32_t len = be32(d + pos);
    PNG_CHECK(len <= n - pos - 12, "truncated chunk at byte ", pos);
    const uint8_t* type = d + pos + 4;
    const uint8_t* body = type + 4;
    std::string tname(reinterpret_cast<const char*>(type), 4);
    PNG_CHECK(crc32(0, type, len + 4) == be32(body + len), "CRC mismatch in chunk '", tname, "' at byte ", pos);
    if (tname == "IHDR") {
      PNG_CHECK(len >= 13, "IHDR chunk too short");
      hd.width = be32(body);
      hd.height = be32(body + 4);
      hd.depth = body[8];
      hd.color_type = body[9];
      hd.interlace = body[12];
      PNG_CHECK(body[10] == 0 && body[11] == 0, "unknown compression/filter method");
      if (!idat) return hd;
    } else if (tname == "PLTE" && palette) {
      palette->assign(body, body + len);
    } else if (tname == "IDAT" && idat) {
      idat->insert(idat->end(), body, body + len);
    } else if (tname == "IEND") {
      ended = true;
    }
    pos += 12 + size_t(len);
  }
  return hd;
}

int png_channels(const PngHeader& hd, const std::string& name) {
  static const int ch[7] = {1, 0, 3, 1, 2, 0, 4};
  int c = hd.color_type >= 0 && hd.color_type <= 6 ? ch[hd.color_type] : 0;
  PNG_CHECK(c > 0, "unknown colour type ", hd.color_type);
  bool ok = hd.depth == 8 || (hd.depth == 16 && hd.color_type != 3) ||
            ((hd.depth == 1 || hd.depth == 2 || hd.depth == 4) && (hd.color_type == 0 || hd.color_type == 3));
  PNG_CHECK(ok, "bit depth ", hd.depth, " is not valid for colour type ", hd.color_type);
  PNG_CHECK(hd.interlace == 0 || hd.interlace == 1, "unknown interlace method ", hd.interlace);
  return c;
}

uint8_t paeth(int a, int b, int c) {
  int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return uint8_t(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

Image decode_png(const uint8_t* d, size_t n, const std::string& name) {
  std::vector<uint8_t> idat, pal;
  PngHeader hd = png_chunks(d, n, name, &idat, &pal);
  PNG_CHECK(hd.color_type >= 0, "missing IHDR chunk");
  const int ch = png_channels(hd, name);
  check_dims(hd.height, hd.width, name);
  PNG_CHECK(hd.color_type != 3 || !pal.empty(), "palette image without a PLTE chunk");
  struct Pass {
    int64_t x0, y0, dx, dy;
  };
  static const Pass adam7[7] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
                                {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
  static const Pass whole[1] = {{0, 0, 1, 1}};
  const Pass* passes = hd.interlace ? adam7 : whole;
  const int npass = hd.interlace ? 7 : 1;
  const int64_t bits = int64_t(ch) * hd.depth, bpp = std::max<int64_t>(1, bits / 8);
  auto pass_dims = [&](const Pass& p, int64_t& pw, int64_t& ph) {
    pw = hd.width > p.x0 ? (hd.width - p.x0 + p.dx - 1) / p.dx : 0;
    ph = hd.height > p.y0 ? (hd.height - p.y0 + p.dy - 1) / p.dy : 0;
  };
  int64_t total = 0;
  for (int i = 0; i < npass; ++i) {
    int64_t pw, ph;
    pass_dims(passes[i], pw, ph);
    if (pw && ph) total += ph * (1 + (pw * bits + 7) / 8);
  }
  // deflate expands at most ~1032:1: reject headers that promise more than the
  // data can hold before allocating for them.
  PNG_CHECK(total <= int64_t(idat.size()) * 1100 + 1024, "image data (", idat.size(), " bytes) too short for a ",
            hd.width, "x", hd.height, " image");
  std::vector<uint8_t> raw(size_t(total) + 1);
  uLongf got = uLongf(raw.size());  // one spare byte: an over-long stream shows as got > total
  int zr = uncompress(raw.data(), &got, idat.data(), uLong(idat.size()));
  PNG_CHECK(zr == Z_OK && int64_t(got) == total,
            "corrupt or truncated image data (zlib: ", zr == Z_OK ? "wrong decompressed size" : zError(zr), ")");
  Image img(hd.height, hd.width);
  const int maxv = (1 << hd.depth) - 1;
  auto sample = [&](const uint8_t* row, int64_t i) -> int {
    if (hd.depth == 8) return row[i];
    if (hd.depth == 16) return row[2 * i];  // high byte
    int64_t bit = i * hd.depth;
    return (row[bit >> 3] >> (8 - hd.depth - (bit & 7))) & maxv;
  };
  std::vector<uint8_t> zeros;
  size_t off = 0;
  for (int pi = 0; pi < npass; ++pi) {
    const Pass& p = passes[pi];
    int64_t pw, ph;
    pass_dims(p, pw, ph);
    if (!pw || !ph) continue;
    const int64_t rb = (pw * bits + 7) / 8;
    zeros.assign(size_t(rb), 0);
    const uint8_t* prev = zeros.data();
    for (int64_t y = 0; y < ph; ++y, off += size_t(1 + rb)) {
      int filter = raw[off];
      uint8_t* cur = raw.data() + off + 1;
      PNG_CHECK(filter <= 4, "unknown row filter ", filter, " in row ", y);
      for (int64_t i = 0; i < rb && filter != 0; ++i) {
        int a = i >= bpp ? cur[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
        cur[i] = uint8_t(cur[i] + (filter == 1 ? a : filter == 2 ? b : filter == 3 ? (a + b) / 2 : paeth(a, b, c)));
      }
      for (int64_t x = 0; x < pw; ++x) {
        uint8_t* o = img.at(p.y0 + y * p.dy, p.x0 + x * p.dx);
        if (hd.color_type == 3) {
          int idx = sample(cur, x);
          PNG_CHECK(3 * idx + 2 < int(pal.size()), "palette index ", idx, " beyond the ", pal.size() / 3,
                    "-entry palette");
          o[0] = pal[3 * idx + 2], o[1] = pal[3 * idx + 1], o[2] = pal[3 * idx];
        } else if (ch <= 2) {  // gray, gray + alpha
          int g = sample(cur, x * ch);
          if (hd.depth < 8) g = g * 255 / maxv;
          o[0] = o[1] = o[2] = uint8_t(g);
        } else {  // RGB, RGBA: alpha dropped
          o[0] = uint8_t(sample(cur, x * ch + 2)), o[1] = uint8_t(sample(cur, x * ch + 1));
          o[2] = uint8_t(sample(cur, x * ch));
        }
      }
      prev = cur;
    }
  }
  return img;
}
#undef PNG_CHECK
}  // namespace

// ---------------------------------------------------------------- dispatch
Image decode_image(const uint8_t* data, size_t size, const std::string& name, DecodeOptions opt) {
  DETNAS_CHECK(data && size > 0, "cannot decode image '", name, "': empty file");
  switch (sniff_image_format(data, size)) {
    case ImageFormat::Jpeg:
      return decode_jpeg(data, size, name, opt);
    case ImageFormat::Png:
      return decode_png(data, size, name);
    default:
      DETNAS_FAIL("cannot decode image '", name, "': not a JPEG or PNG file (", size, " bytes)");
  }
}

Image read_image(const std::string& path, DecodeOptions opt) {
  std::string bytes = read_file(path);
  return decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path, opt);
}

ImageSize decode_image_size(const uint8_t* data, size_t size, const std::string& name) {
  DETNAS_CHECK(data && size > 0, "cannot read image size of '", name, "': empty file");
  ImageFormat f = sniff_image_format(data, size);
  if (f == ImageFormat::Jpeg) {
    TjHandle& th = tj_handle(false);
    int w = 0, h = 0, sub = 0, cs = 0;
    if (tjDecompressHeader3(th.get(), data, (unsigned long)size, &w, &h, &sub, &cs) != 0)
      DETNAS_FAIL("cannot decode JPEG '", name, "': ", th.error_and_reset());
    check_dims(h, w, name);
    return {h, w};
  }
  DETNAS_CHECK(f == ImageFormat::Png, "cannot read image size of '", name, "': not a JPEG or PNG file");
  PngHeader hd = png_chunks(data, size, name, nullptr, nullptr);
  DETNAS_CHECK(hd.color_type >= 0, "cannot decode PNG '", name, "': missing IHDR chunk");
  return {hd.height, hd.width};
}

// ---------------------------------------------------------------- drawing
void fill_rect(Image& img, int64_t x1, int64_t y1, int64_t x2, int64_t y2, Color c) {
  x1 = std::max<int64_t>(x1, 0), y1 = std::max<int64_t>(y1, 0);
  x2 = std::min(x2, img.width), y2 = std::min(y2, img.height);
  for (int64_t y = y1; y < y2; ++y)
    for (int64_t x = x1; x < x2; ++x) {
      uint8_t* p = img.at(y, x);
      p[0] = c.b, p[1] = c.g, p[2] = c.r;
    }
}

void draw_rect(Image& img, int64_t x1, int64_t y1, int64_t x2, int64_t y2, Color c, int64_t t) {
  if (x2 <= x1 || y2 <= y1 || t <= 0) return;
  t = std::min({t, (x2 - x1 + 1) / 2, (y2 - y1 + 1) / 2});
  fill_rect(img, x1, y1, x2, y1 + t, c);
  fill_rect(img, x1, y2 - t, x2, y2, c);
  fill_rect(img, x1, y1 + t, x1 + t, y2 - t, c);
  fill_rect(img, x2 - t, y1 + t, x2, y2 - t, c);
}

namespace {
struct Glyph {
  char c;
  uint8_t rows[7];  // 5 bits per row, most significant bit = leftmost pixel
};
const Glyph kFont[] = {
    {'0', {14, 17, 19, 21, 25, 17, 14}}, {'1', {4, 12, 4, 4, 4, 4, 14}},      {'2', {14, 17, 1, 2, 4, 8, 31}},
    {'3', {31, 2, 4, 2, 1, 17, 14}},     {'4', {2, 6, 10, 18, 31, 2, 2}},     {'5', {31, 16, 30, 1, 1, 17, 14}},
    {'6', {6, 8, 16, 30, 17, 17, 14}},   {'7', {31, 1, 2, 4, 8, 8, 8}},       {'8', {14, 17, 17, 14, 17, 17, 14}},
    {'9', {14, 17, 17, 15, 1, 2, 12}},   {'A', {14, 17, 17, 17, 31, 17, 17}}, {'B', {30, 17, 17, 30, 17, 17, 30}},
    {'C', {14, 17, 16, 16, 16, 17, 14}}, {'D', {28, 18, 17, 17, 17, 18, 28}}, {'E', {31, 16, 16, 30, 16, 16, 31}},
    {'F', {31, 16, 16, 30, 16, 16, 16}}, {'G', {14, 17, 16, 23, 17, 17, 15}}, {'H', {17, 17, 17, 31, 17, 17, 17}},
    {'I', {14, 4, 4, 4, 4, 4, 14}},      {'J', {7, 2, 2, 2, 2, 18, 12}},      {'K', {17, 18, 20, 24, 20, 18, 17}},
    {'L', {16, 16, 16, 16, 16, 16, 31}}, {'M', {17, 27, 21, 21, 17, 17, 17}}, {'N', {17, 17, 25, 21, 19, 17, 17}},
    {'O', {14, 17, 17, 17, 17, 17, 14}}, {'P', {30, 17, 17, 30, 16, 16, 16}}, {'Q', {14, 17, 17, 17, 21, 18, 13}},
    {'R', {30, 17, 17, 30, 20, 18, 17}}, {'S', {15, 16, 16, 14, 1, 1, 30}},   {'T', {31, 4, 4, 4, 4, 4, 4}},
    {'U', {17, 17, 17, 17, 17, 17, 14}}, {'V', {17, 17, 17, 17, 17, 10, 4}},  {'W', {17, 17, 17, 21, 21, 21, 10}},
    {'X', {17, 17, 10, 4, 10, 17, 17}},  {'Y', {17, 17, 17, 10, 4, 4, 4}},    {'Z', {31, 1, 2, 4, 8, 16, 31}},
    {'.', {0, 0, 0, 0, 0, 12, 12}},      {':', {0, 12, 12, 0, 12, 12, 0}},    {'-', {0, 0, 0, 31, 0, 0, 0}},
    {'_', {0, 0, 0, 0, 0, 0, 31}},       {'%', {24, 25, 2, 4, 8, 19, 3}},     {'/', {0, 1, 2, 4, 8, 16, 0}},
};
const Glyph* find_glyph(char c) {
  if (c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
  for (const Glyph& g : kFont)
    if (g.c == c) return &g;
  return nullptr;
}
}  // namespace

int64_t text_width(std::string_view text, int64_t scale) {
  return text.empty() ? 0 : (6 * int64_t(text.size()) - 1) * scale;
}

void draw_text(Image& img, int64_t x, int64_t y, std::string_view text, Color c, int64_t scale) {
  for (size_t k = 0; k < text.size(); ++k, x += 6 * scale) {
    const Glyph* g = find_glyph(text[k]);
    if (!g) continue;
    for (int r = 0; r < 7; ++r)
      for (int col = 0; col < 5; ++col)
        if (g->rows[r] & (16 >> col))
          fill_rect(img, x + col * scale, y + r * scale, x + (col + 1) * scale, y + (r + 1) * scale, c);
  }
}

void draw_label(Image& img, int64_t x, int64_t y, std::string_view text, Color background, Color foreground,
                int64_t scale) {
  const int64_t pad = scale, w = text_width(text, scale) + 2 * pad, h = text_height(scale) + 2 * pad;
  int64_t top = y - h >= 0 ? y - h : y;  // above the box, or inside it at the top
  x = std::max<int64_t>(0, std::min(x, img.width - w));
  fill_rect(img, x, top, x + w, top + h, background);
  draw_text(img, x + pad, top + pad, text, foreground, scale);
}

}  // namespace detnas::data
