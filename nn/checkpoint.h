// Training checkpoints: PATH.safetensors holds the model's parameters and
// buffers under their module names plus the optimizer's momentum buffers
// ("optim.momentum.<name>"); PATH.json is a small sidecar with the step, the
// RNG states, the space and architecture ("supernet" or a choice list) and the
// run configuration. Both are written atomically, weights first, and the
// weights file's header also carries the sidecar text, so a crash between the
// two writes is recovered on load from the weights file alone (checkpoint.cpp,
// save_checkpoint). Loading validates every name and shape and reports all
// mismatches at once.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "nn/module.h"
#include "nn/optimizer.h"

namespace detnas::nn {

struct CheckpointMeta {
  std::string kind;                                          // "pretrain", "train", ...
  int64_t step = 0;                                          // iterations completed
  std::string space;                                         // search space name
  std::string arch;                                          // "supernet" or "2,1,0,..."
  std::map<std::string, std::pair<uint64_t, uint64_t>> rng;  // stream name -> Rng state
  std::map<std::string, std::string> config;                 // run options, as text
};

// What to do with tensors in the file that the model does not have (e.g. a
// supernet checkpoint loaded into a standalone network of one path).
enum class ExtraTensors { Error, Ignore };

// `path` without extension; writes path.safetensors then path.json. Throws,
// writing nothing, when a tensor holds a NaN or an infinity.
void save_checkpoint(const std::string& path, const Module& model, const Sgd* opt, const CheckpointMeta& meta);
// Loads into `model` (and `opt` when given). The metadata comes from the weights
// file's embedded sidecar when it has one (a warning when path.json is missing
// or differs: an interrupted save), else from path.json, whose step must match. `path` may end in .safetensors or
// .json or have no extension. `prefix` is prepended to the model's names when
// looking them up in the file (e.g. "backbone." ).
CheckpointMeta load_checkpoint(const std::string& path, Module& model, Sgd* opt, ExtraTensors extra,
                               const std::string& prefix = "");
// Reads only the sidecar (or, when path.json is missing, the copy embedded in
// path.safetensors, with a warning).
CheckpointMeta read_checkpoint_meta(const std::string& path);
// Same, from the sidecar's text (`file` names it in errors).
CheckpointMeta parse_checkpoint_meta(const std::string& text, const std::string& file);
std::string checkpoint_base(const std::string& path);  // strips .safetensors / .json

}  // namespace detnas::nn
