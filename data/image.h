// Image: 8-bit H x W x 3 interleaved BGR pixels (the network's input order), with
// decoding (JPEG through libjpeg-turbo's TurboJPEG API; PNG through a small
// zlib-based decoder in image.cpp: all colour types, bit depths 1-16, Adam7
// interlacing; alpha is dropped, 16-bit samples keep their high byte), JPEG
// encoding, and drawing helpers for pictures of detections (rectangles and a
// 5x7 bitmap font: digits, letters, ". : - _ % /").
// Grayscale JPEGs/PNGs come out as three equal channels; CMYK/YCCK JPEGs are
// converted with the Adobe (inverted) convention libjpeg-turbo uses: R = C*K/255.
// Not here: resizing and augmentation (transforms.h), float conversion, files lists.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/fs.h"

namespace detnas::data {

struct Color {
  uint8_t b = 0, g = 0, r = 0;
};
inline Color bgr(uint8_t b, uint8_t g, uint8_t r) { return Color{b, g, r}; }

struct ImageSize {
  int64_t height = 0, width = 0;
};

struct Image {
  static constexpr int64_t kChannels = 3;
  int64_t height = 0, width = 0;
  std::vector<uint8_t> pixels;  // height * width * 3 bytes, row-major, B G R per pixel

  Image() = default;
  Image(int64_t h, int64_t w);              // black
  Image(int64_t h, int64_t w, Color fill);  // filled
  bool empty() const { return height == 0 || width == 0; }
  int64_t row_bytes() const { return width * kChannels; }
  uint8_t* row(int64_t y) { return pixels.data() + y * row_bytes(); }
  const uint8_t* row(int64_t y) const { return pixels.data() + y * row_bytes(); }
  uint8_t* at(int64_t y, int64_t x) { return row(y) + x * kChannels; }
  const uint8_t* at(int64_t y, int64_t x) const { return row(y) + x * kChannels; }
  ImageSize size() const { return {height, width}; }
};

enum class ImageFormat { Jpeg, Png, Unknown };
ImageFormat sniff_image_format(const uint8_t* data, size_t size);  // by magic bytes

// libjpeg reports truncated data and some corruption as warnings (the decoder
// fills the missing part with grey). Fail (default) turns them into errors;
// Ignore accepts the partly decoded image, as browsers do. In both modes a JPEG
// with fewer bytes than width * height / 512 (under one bit per 8x8 block) is an
// error before any pixel memory is allocated.
enum class JpegWarnings { Fail, Ignore };
struct DecodeOptions {
  JpegWarnings jpeg_warnings = JpegWarnings::Fail;
};

// Decodes JPEG or PNG bytes; `name` (usually the file path) is put in every error.
Image decode_image(const uint8_t* data, size_t size, const std::string& name, DecodeOptions opt = {});
// Reads and decodes a file; a missing or unreadable file is an error naming it.
Image read_image(const std::string& path, DecodeOptions opt = {});
// Width and height from the header only (no pixel decoding).
ImageSize decode_image_size(const uint8_t* data, size_t size, const std::string& name);

enum class JpegSubsampling { S444, S422, S420, Gray };  // Gray writes a 1-channel JPEG
struct JpegParams {
  int quality = 90;  // 1..100
  JpegSubsampling subsampling = JpegSubsampling::S420;
};
std::vector<uint8_t> encode_jpeg(const Image& img, JpegParams params = {});
// encode_jpeg + write_file_atomic.
void write_jpeg(const std::string& path, const Image& img, JpegParams params = {},
                Durability durability = Durability::Sync);

// Drawing. Rectangles cover pixels x in [x1, x2), y in [y1, y2), clipped to the
// image; the outline grows inwards by `thickness` pixels.
void fill_rect(Image& img, int64_t x1, int64_t y1, int64_t x2, int64_t y2, Color c);
void draw_rect(Image& img, int64_t x1, int64_t y1, int64_t x2, int64_t y2, Color c, int64_t thickness = 2);
// Text in a 5x7 font (lower case drawn as upper case, unknown characters as
// blanks), top-left corner at (x, y), each font pixel a scale x scale block.
void draw_text(Image& img, int64_t x, int64_t y, std::string_view text, Color c, int64_t scale = 1);
int64_t text_width(std::string_view text, int64_t scale = 1);  // 6 * scale per character, minus the last gap
inline int64_t text_height(int64_t scale = 1) { return 7 * scale; }
// A label box for a detection: text on a filled background just above (x, y)
// (the box's top-left corner), or just inside the box when there is no room above.
void draw_label(Image& img, int64_t x, int64_t y, std::string_view text, Color background, Color foreground,
                int64_t scale = 1);

}  // namespace detnas::data
