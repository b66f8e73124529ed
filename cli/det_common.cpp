// Data options/loading, threads and checkpoint loading for the detection commands.
#include "cli/det_common.h"

#include <simdjson.h>

#include "cli/option_checks.h"
#include "cli/run_log.h"
#include "core/error.h"
#include "core/log.h"
#include "data/json_writer.h"
#include "data/synthetic.h"
#include "runtime/fs.h"

namespace detnas::cli {

void add_data_options(CLI::App* sub, DataOptions& d) {
  sub->add_option("--data", d.data,
                  "COCO-layout root (ROOT/annotations/instances_{train,val}.json, ROOT/train, ROOT/val)");
  sub->add_option("--train-json", d.train_json, "training annotations");
  sub->add_option("--train-images", d.train_images, "training image folder");
  sub->add_option("--val-json", d.val_json, "validation annotations");
  sub->add_option("--val-images", d.val_images, "validation image folder");
  sub->add_option("--val-split", d.val_split,
                  "evaluate on N images held out of the training set (and train/recalibrate on the rest) "
                  "instead of the val annotations")
      ->capture_default_str()
      ->check(non_negative());
}

DetData load_det_data(DataOptions d, const char* command) {
  std::string root = d.data;
  if (root.empty() && d.train_json.empty()) {
    root = data::ensure_synthetic_det(data::synthetic_det_dir(data::kDefaultSyntheticRoot));
    log_info(command, ": no --data given: using the built-in synthetic detection set in ", root);
  }
  if (d.train_json.empty()) d.train_json = path_join(root, "annotations/instances_train.json");
  if (d.train_images.empty()) d.train_images = path_join(root, "train");
  DETNAS_CHECK(d.val_split >= 0, command, ": --val-split must be >= 0, got ", d.val_split);
  DetData r;
  data::DetDataset train = data::DetDataset::load(d.train_json, d.train_images);
  if (d.val_split > 0) {
    DETNAS_CHECK(d.val_split < int64_t(train.candidates().size()), command, ": --val-split ", d.val_split,
                 " leaves no training images (", d.train_json, " has ", train.candidates().size(), ")");
    auto [tr, va] = data::split_holdout(train, d.val_split, d.split_seed);
    r.train = std::move(tr);
    r.val = std::move(va);
    r.val_name = "held-out split of " + std::to_string(d.val_split) + " training images";
    return r;
  }
  if (d.val_json.empty()) d.val_json = path_join(root, "annotations/instances_val.json");
  if (d.val_images.empty()) d.val_images = path_join(root, "val");
  data::DetDatasetOptions vo;
  vo.empty_images = data::EmptyImages::Keep;
  r.train = std::move(train);
  r.val = data::DetDataset::load(d.val_json, d.val_images, vo);
  r.val_name = d.val_json;
  DETNAS_CHECK(r.train.num_classes() == r.val.num_classes(), command, ": ", d.train_json, " has ",
               r.train.num_classes(), " categories but ", d.val_json, " has ", r.val.num_classes());
  return r;
}

std::string categories_json(const data::CocoDataset& coco) {
  data::JsonWriter j;
  j.begin_array();
  for (int64_t id : coco.label_to_category) {
    const data::CocoCategory& c = coco.categories[size_t(coco.category_index.at(id))];
    j.begin_object().field("id", (long long)c.id).field("name", c.name).end_object();
  }
  j.end_array();
  return j.str();
}

std::vector<Category> parse_categories(const std::string& json, const std::string& where) {
  std::vector<Category> r;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::array arr;
  DETNAS_CHECK(!parser.parse(json).get(doc) && !doc.get(arr), where, ": config 'categories' is not a JSON list");
  for (simdjson::dom::element e : arr) {
    Category c;
    std::string_view name;
    DETNAS_CHECK(!e["id"].get(c.id) && !e["name"].get(name), where, ": config 'categories' entry ", r.size(),
                 " needs an integer id and a name");
    c.name = std::string(name);
    r.push_back(std::move(c));
  }
  return r;
}

LoadedDetector load_detector(const std::string& ckpt_in, const std::string& arch_text, const char* command,
                             rt::Device dev) {
  const std::string ckpt = nn::checkpoint_base(ckpt_in);
  DETNAS_CHECK(file_exists(ckpt + ".json") || file_exists(ckpt + ".safetensors"), command, ": no checkpoint ", ckpt,
               ".json (train one with detnas train)");
  LoadedDetector r;
  r.meta = nn::read_checkpoint_meta(ckpt);
  DETNAS_CHECK(r.meta.kind == "train", command, ": ", ckpt, ".json is a '", r.meta.kind,
               "' checkpoint; a detector checkpoint from detnas train is needed");
  const nn::SearchSpace& space = nn::space_by_name(r.meta.space);
  r.config = det::DetectorConfig::from_map(r.meta.config, ckpt + ".json");
  auto int_cfg = [&](const char* key, int64_t def) {
    auto it = r.meta.config.find(key);
    return it == r.meta.config.end() ? def : std::stoll(it->second);
  };
  r.short_side = int_cfg("short_side", r.short_side);
  r.max_size = int_cfg("max_size", r.max_size);
  r.batch = int_cfg("batch", r.batch);
  r.bn_images = int_cfg("bn_images", r.bn_images);
  if (auto it = r.meta.config.find("bn_momentum"); it != r.meta.config.end()) r.bn_momentum = std::stod(it->second);
  if (auto it = r.meta.config.find("categories"); it != r.meta.config.end())
    r.categories = parse_categories(it->second, ckpt + ".json");
  nn::BackboneOptions bo;
  bo.space = r.meta.space;
  r.supernet = r.meta.arch == "supernet";
  if (r.supernet) {
    std::string text = arch_text;
    if (text.empty()) {
      auto it = r.meta.config.find("eval_arch");
      DETNAS_CHECK(it != r.meta.config.end(), command, ": ", ckpt,
                   " is a supernet: give the path to run with --arch LIST (", space.total_blocks(),
                   " choices in 0..3)");
      text = it->second;
      log_info(command, ": ", ckpt, " is a supernet and no --arch was given: using the path train evaluated, ", text);
    }
    try {
      r.arch = nn::parse_arch(text);
      nn::validate_arch(space, r.arch);
    } catch (const Error& e) {
      DETNAS_FAIL(command, ": --arch ", text, ": ", e.message());
    }
    r.path = r.arch;
  } else {
    r.arch = nn::parse_arch(r.meta.arch);
    if (!arch_text.empty())
      DETNAS_CHECK(nn::parse_arch(arch_text) == r.arch, command, ": ", ckpt, " is the standalone network ", r.meta.arch,
                   "; --arch ", arch_text, " does not match it");
    bo.kind = nn::NetKind::Standalone;
    bo.arch = r.arch;
    bo.split = nn::ChannelSplit::ShuffleHalve;
  }
  r.net = det::make_detector(bo, r.config);
  nn::load_checkpoint(ckpt, *r.net, nullptr, nn::ExtraTensors::Ignore);
  r.net->to(dev);
  return r;
}

}  // namespace detnas::cli
