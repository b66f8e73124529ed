// Shared by the detection commands (train, eval, detect, search): data options
// and loading (COCO-layout root or explicit files, the built-in synthetic set by
// default, an optional held-out split of the training set), thread settings,
// and rebuilding a detector from a `detnas train` checkpoint.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cli/command.h"
#include "data/det_data.h"
#include "detect/detector.h"
#include "nn/checkpoint.h"
#include "nn/space.h"

namespace detnas::cli {

struct DataOptions {
  std::string data, train_json, train_images, val_json, val_images;
  int64_t val_split = 0;  // > 0: evaluate on this many images held out of the training set
  uint64_t split_seed = 1;
};
// --data, --train-json, --train-images, --val-json, --val-images, --val-split.
void add_data_options(CLI::App* sub, DataOptions& d);

struct DetData {
  data::DetDataset train, val;  // val: the held-out split or the val annotations
  std::string val_name;         // "val" or "held-out split of N training images"
};
// Resolves the paths (generating the synthetic set when no data is given) and loads.
DetData load_det_data(DataOptions d, const char* command);

// The dataset's categories in label order as a JSON list [{"id":..,"name":..}]
// (stored in detector checkpoints so `detect` can name its labels), and back.
std::string categories_json(const data::CocoDataset& coco);
struct Category {
  int64_t id = 0;
  std::string name;
};
std::vector<Category> parse_categories(const std::string& json, const std::string& where);

struct LoadedDetector {
  std::unique_ptr<det::Detector> net;
  nn::CheckpointMeta meta;
  det::DetectorConfig config;
  bool supernet = false;
  nn::Arch path;  // the path to run (supernet: the --arch given; standalone: its own arch, passed as {})
  nn::Arch arch;  // the architecture (for FLOPs, printing)
  int64_t short_side = 256, max_size = 320, batch = 4, bn_images = 0;
  double bn_momentum = 0;
  std::vector<Category> categories;  // label -> category (empty for old checkpoints)
};
// Loads a `detnas train` checkpoint and moves the network to `dev`. arch_text: a
// choice list (for a supernet checkpoint; "" = the path `train` evaluated; must
// match for a standalone one).
LoadedDetector load_detector(const std::string& ckpt, const std::string& arch_text, const char* command,
                             rt::Device dev);

}  // namespace detnas::cli
