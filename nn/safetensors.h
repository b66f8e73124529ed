// The safetensors container (https://huggingface.co/docs/safetensors format):
// u64 little-endian header length, a JSON header {name: {dtype, shape,
// data_offsets}, "__metadata__": {string: string}}, then raw little-endian data.
// We write F32 only and read F32 only; every structural problem in a file is
// reported with the file name. Writes are atomic.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "runtime/tensor.h"

namespace detnas::nn {

using NamedTensors = std::vector<std::pair<std::string, rt::Tensor>>;

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

struct SafetensorsFile {
  NamedTensors tensors;  // in file order, CPU, contiguous
  std::map<std::string, std::string> metadata;
  const rt::Tensor* find(const std::string& name) const;
};
SafetensorsFile load_safetensors(const std::string& path);
// Same, from bytes already in memory (`what` names the source in errors).
SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& what);

}  // namespace detnas::nn
