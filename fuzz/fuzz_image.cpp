// libFuzzer target: JPEG and PNG decoding (data/image.h decode_image and
// decode_image_size; JPEG through the system's TurboJPEG, PNG through image.cpp's
// own decoder). A decoded image must have the header's size. Images whose header
// declares more than kFuzzMaxPixels are not fully decoded here (the library
// accepts up to 2^28 pixels, a legitimately large allocation; see README.md).
#include "data/image.h"
#include "fuzz/fuzz_common.h"

using namespace detnas;

namespace {
constexpr int64_t kFuzzMaxPixels = int64_t(1) << 22;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  data::ImageSize sz;
  try {
    sz = data::decode_image_size(data, size, "fuzz_image");
    FUZZ_REQUIRE(sz.height >= 0 && sz.width >= 0, sz.width, "x", sz.height);
  } catch (const Error&) {
    sz = {};
  }
  if (sz.height * sz.width > kFuzzMaxPixels) return 0;
  for (data::JpegWarnings w : {data::JpegWarnings::Fail, data::JpegWarnings::Ignore}) {
    try {
      data::Image img = data::decode_image(data, size, "fuzz_image", data::DecodeOptions{w});
      FUZZ_REQUIRE(img.height == sz.height && img.width == sz.width, "decoded ", img.width, "x", img.height,
                   ", header says ", sz.width, "x", sz.height);
      FUZZ_REQUIRE(img.pixels.size() == size_t(img.height * img.width * 3), "pixel buffer");
    } catch (const Error&) {
    }
  }
  return 0;
}
