// libFuzzer target: a training checkpoint, sidecar JSON and weights
// (nn/checkpoint.h parse_checkpoint_meta and load_checkpoint, with the
// safetensors reader and Sgd::load_state underneath). Input: the sidecar text,
// a NUL byte, then the .safetensors bytes. The sidecar is parsed from memory,
// then both files are written to the tmpfs scratch folder and loaded into a tiny
// model with an optimizer (load_checkpoint only takes a path; the weights file's
// header may carry its own copy of the sidecar, which then wins). Log messages
// (load_checkpoint warns about a sidecar that disagrees) are built and dropped.
#include <cstring>

#include "core/log.h"
#include "fuzz/fuzz_common.h"
#include "nn/checkpoint.h"

using namespace detnas;

namespace {
class Leaf : public nn::Module {
 public:
  Leaf() {
    register_param("weight", rt::Tensor::zeros({2, 1, 3, 3}), nn::ParamKind::ConvWeight);
    register_param("bias", rt::Tensor::zeros({2}), nn::ParamKind::Bias);
    register_buffer("running_mean", rt::Tensor::zeros({2}));
  }
};
class Tiny : public nn::Module {
 public:
  Tiny() {
    register_module("conv", std::make_unique<Leaf>());
    register_param("scale", rt::Tensor::zeros({1}), nn::ParamKind::NormWeight);
  }
};

void write(const std::string& path, std::string_view bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  FUZZ_REQUIRE(f, "cannot write ", path);
  FUZZ_REQUIRE(std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size(), "short write to ", path);
  std::fclose(f);
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  set_log_sink([](LogLevel, const std::string&) {});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = fuzz::as_text(data, size);
  const size_t nul = in.find('\0');
  std::string_view meta_text = in.substr(0, nul), weights = nul == in.npos ? std::string_view() : in.substr(nul + 1);
  try {
    nn::parse_checkpoint_meta(std::string(meta_text), "fuzz_ckpt.json");
  } catch (const Error&) {
  }
  const std::string base = fuzz::scratch_dir() + "/ckpt";
  write(base + ".json", meta_text);
  write(base + ".safetensors", weights);
  for (nn::ExtraTensors extra : {nn::ExtraTensors::Error, nn::ExtraTensors::Ignore}) {
    try {
      Tiny model;
      nn::Sgd opt(model.parameters(), nn::SgdConfig::detection());
      nn::load_checkpoint(base, model, &opt, extra);
      opt.state();
    } catch (const Error&) {
    }
  }
  return 0;
}
