// Public API, models part (installed as <detnas/models.h>): search spaces and
// architectures, the DetNAS backbone as a supernet or a standalone network,
// detectors (RetinaNet, and FPN Faster R-CNN when the build has it) described by
// a DetectorSpec, SGD and LR schedules for training loops, and checkpoints:
//   - plain safetensors weight files (save_weights / load_weights), and
//   - `detnas train`-compatible detector checkpoints (NAME.safetensors +
//     NAME.json; save_detector / read_detector_spec), which `detnas` commands
//     and api::Detector (inference.h) load.
// Names of tensors in files are the module names ("backbone.stage2.3.choice1..."),
// so a supernet checkpoint loads into a standalone network of one of its paths.
// Not here: inference pre/post-processing (inference.h), FLOPs (search.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "detect/detector.h"
#include "nn/backbone.h"
#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "nn/lr_schedule.h"
#include "nn/module.h"
#include "nn/optimizer.h"
#include "nn/safetensors.h"
#include "nn/space.h"

namespace detnas::api {

using nn::Arch;
using nn::Backbone;
using nn::LrSchedule;
using nn::Module;
using nn::SearchSpace;
using nn::Sgd;
using nn::SgdConfig;

// The built-in spaces: "300M", "1.3G", "3.8G" (DetNAS) and "tiny" (CPU sized).
const SearchSpace& space(const std::string& name);
std::vector<std::string> space_names();
// Parses "2,1,0,..." or "[2, 1, 0, ...]" and checks it against the space (one
// choice in 0..3 per block); errors name the space, the position and the value.
Arch parse_arch(const std::string& space_name, const std::string& text);
std::string format_arch(const Arch& arch);

struct BackboneSpec {
  std::string space = "tiny";
  std::string arch = "supernet";   // "supernet" or a choice list (standalone network)
  nn::Head head = nn::Head::None;  // Classification adds "head.conv" + "head.fc"
  int64_t num_classes = 1000;      // classification head only
  uint64_t seed = 0;               // weight initialisation stream
};
std::unique_ptr<Backbone> make_backbone(const BackboneSpec& spec);

// Everything needed to rebuild a detector: backbone, detector config and the
// input resize the network was trained with.
struct DetectorSpec {
  std::string space = "tiny";
  std::string arch = "supernet";            // "supernet" or a choice list (standalone network)
  det::DetectorConfig config;               // kind "retinanet", num_classes, fpn_channels, head_depth, ...
  int64_t short_side = 256;                 // eval resize: short side ...
  int64_t max_size = 320;                   // ... long side limit (<= 0: none)
  std::vector<int64_t> category_ids;        // label -> dataset category id (empty: labels are ids)
  std::vector<std::string> category_names;  // label -> name (empty, or one per class)
  uint64_t seed = 0;                        // backbone initialisation stream
};
// Builds the network (random initial weights). Errors name the bad field.
std::unique_ptr<det::Detector> make_detector(const DetectorSpec& spec);
// Writes PATH.safetensors + PATH.json in `detnas train`'s format (kind "train",
// step, space, arch, config incl. short_side, max_size and "categories", a JSON
// list of {"id", "name"} per label); `opt` adds its momentum buffers.
void save_detector(const std::string& path, const det::Detector& net, const DetectorSpec& spec, int64_t step = 0,
                   const Sgd* opt = nullptr);
// Reads only the sidecar of a `detnas train` checkpoint (PATH, PATH.json or
// PATH.safetensors) into a spec.
DetectorSpec read_detector_spec(const std::string& checkpoint);
// Builds the detector of the checkpoint and loads its weights. With `arch`
// non-empty, a supernet checkpoint gives the standalone network of that path
// (a fixed-arch checkpoint accepts only its own arch).
std::unique_ptr<det::Detector> load_detector(const std::string& checkpoint, const std::string& arch = "",
                                             DetectorSpec* spec_out = nullptr);

// Plain weight files: every parameter and buffer of `m` by name.
void save_weights(const std::string& file, const Module& m);
// Every parameter and buffer of `m` must be in the file with the same shape;
// all mismatches are reported at once. Tensors the model lacks are an error
// unless extra == Ignore (e.g. loading one path out of a supernet file).
void load_weights(const std::string& file, Module& m, nn::ExtraTensors extra = nn::ExtraTensors::Error);

}  // namespace detnas::api
