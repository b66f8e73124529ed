// libFuzzer target: safetensors bytes (nn/safetensors.h parse_safetensors). Every
// tensor read must be CPU, contiguous and hold exactly its shape's elements.
#include "fuzz/fuzz_common.h"
#include "nn/safetensors.h"

using namespace detnas;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    nn::SafetensorsFile f = nn::parse_safetensors(std::string(fuzz::as_text(data, size)), "fuzz.safetensors");
    int64_t bytes = 0;
    for (auto& [name, t] : f.tensors) {
      FUZZ_REQUIRE(t.device() == rt::Device::CPU && t.is_contiguous(), name);
      FUZZ_REQUIRE(t.numel() == rt::shape_numel(t.shape()), name);
      bytes += t.numel() * 4;
      FUZZ_REQUIRE(f.find(name) != nullptr, name);
    }
    FUZZ_REQUIRE(bytes <= int64_t(size), "tensors hold ", bytes, " bytes from a ", size, "-byte file");
  } catch (const Error&) {
  }
  return 0;
}
