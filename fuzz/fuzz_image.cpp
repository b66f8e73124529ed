// libFuzzer target: JPEG and PNG decoding (data/image.h decode_image and
// decode_image_size; JPEG through the system's TurboJPEG, PNG through image.cpp's
// own decoder). A decoded image must have the header's size. No size limit of
// its own: the decoders bound what a header may claim by the input's size.
#include "data/image.h"
#include "fuzz/fuzz_common.h"

using namespace detnas;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  data::ImageSize sz;
  try {
    sz = data::decode_image_size(data, size, "fuzz_image");
    FUZZ_REQUIRE(sz.height >= 0 && sz.width >= 0, sz.width, "x", sz.height);
  } catch (const Error&) {
    sz = {};
  }
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
