// Training checkpoints: PATH.safetensors holds the model's parameters and
// buffers under their module names plus the optimizer's momentum buffers
// ("optim.momentum.<name>"); PATH.json is a small sidecar with the step, the
// RNG states, the space and architecture ("supernet" or a choice list) and the
// run configuration. Both are written atomically, weights first; the step is
// stored in both and must agree on load. Loading validates every name and
// shape and reports all mismatches at once.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "nn/module.h"
#include "nn/optimizer.h"

namespace detnas::nn {

struct CheckpointMeta {
  std::string kind;         // "pretrain", "train", ...
  int64_t step = 0;         // iterations completed
  std::string space;        // search space name
  std::string arch;         // "supernet" or "2,1,0,..."
  std::map<std::string, std::pair<uint64_t, uint64_t>> rng;  // stream name -> Rng state
  std::map<std::string, std::string> config;                 // run options, as text
};

// What to do with tensors in the file that the model does not have (e.g. a
// supernet checkpoint loaded into a standalone network of one path).
enum class ExtraTensors { Error, Ignore };

// `path` without extension; writes path.safetensors then path.json.
void save_checkpoint(const std::string& path, const Module& model, const Sgd* opt, const CheckpointMeta& meta);
// Loads into `model` (and `opt` when given). `path` may end in .safetensors or
// .json or have no extension. `prefix` is prepended to the model's names when
// looking them up in the file (e.g. "backbone." ).
CheckpointMeta load_checkpoint(const std::string& path, Module& model, Sgd* opt, ExtraTensors extra,
                               const std::string& prefix = "");
// Reads only the sidecar.
CheckpointMeta read_checkpoint_meta(const std::string& path);
std::string checkpoint_base(const std::string& path);  // strips .safetensors / .json

}  // namespace detnas::nn
