// libFuzzer target: architecture strings, "2,1,0,3" or a JSON list "[2, 1, 0, 3]"
// (nn/space.h parse_arch, validate_arch). A parsed architecture must read back
// unchanged from both of its formats.
#include "fuzz/fuzz_common.h"
#include "nn/space.h"

using namespace detnas;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    nn::Arch a = nn::parse_arch(std::string(fuzz::as_text(data, size)));
    if (!a.empty()) FUZZ_REQUIRE(nn::parse_arch(nn::format_arch(a)) == a, "format_arch round trip");
    FUZZ_REQUIRE(nn::parse_arch(nn::format_arch_json(a)) == a, "format_arch_json round trip");
    for (const std::string& name : nn::space_names()) {
      try {
        nn::validate_arch(nn::space_by_name(name), a);
      } catch (const Error&) {
      }
    }
  } catch (const Error&) {
  }
  return 0;
}
