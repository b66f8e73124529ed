// detnas::api models: spaces and architectures, backbone and detector
// construction from specs, `detnas train`-compatible detector checkpoints
// (DetectorSpec <-> CheckpointMeta) and plain safetensors weight files.
#include "api/models.h"

#include <simdjson.h>

#include <cstdlib>
#include <map>
#include <set>

#include "data/json_writer.h"

namespace detnas::api {

namespace {

const char* kSupernet = "supernet";

// Config "categories": [{"id": 1, "name": "cat"}, ...], one entry per label (as `detnas train` writes it).
std::string categories_json(const DetectorSpec& s) {
  data::JsonWriter j;
  j.begin_array();
  for (size_t i = 0; i < s.category_ids.size(); ++i) {
    j.begin_object().field("id", (long long)s.category_ids[i]);
    j.field("name", i < s.category_names.size() ? s.category_names[i] : std::to_string(s.category_ids[i]));
    j.end_object();
  }
  j.end_array();
  return j.str();
}

void parse_categories(const std::string& json, const std::string& where, DetectorSpec& s) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::array arr;
  DETNAS_CHECK(!parser.parse(json).get(doc) && !doc.get(arr), where, ": config 'categories' is not a JSON list");
  for (simdjson::dom::element e : arr) {
    int64_t id = 0;
    std::string_view name;
    DETNAS_CHECK(!e["id"].get(id) && !e["name"].get(name), where, ": config 'categories' entry ", s.category_ids.size(),
                 " needs an integer id and a name");
    s.category_ids.push_back(id);
    s.category_names.emplace_back(name);
  }
}

int64_t parse_size(const std::map<std::string, std::string>& cfg, const std::string& key, int64_t def,
                   const std::string& where) {
  auto it = cfg.find(key);
  if (it == cfg.end()) return def;
  char* end = nullptr;
  long long v = std::strtoll(it->second.c_str(), &end, 10);
  DETNAS_CHECK(!it->second.empty() && end && *end == 0, where, ": config '", key, "' = '", it->second,
               "' is not an integer");
  return v;
}

void check_spec(const DetectorSpec& s) {
  DETNAS_CHECK(s.short_side > 0, "detector spec: short_side must be > 0, got ", s.short_side);
  DETNAS_CHECK(s.category_ids.empty() || int64_t(s.category_ids.size()) == s.config.num_classes,
               "detector spec: ", s.category_ids.size(), " category ids for ", s.config.num_classes,
               " classes (need one id per class, or none)");
  DETNAS_CHECK(s.category_names.empty() || s.category_names.size() == s.category_ids.size(),
               "detector spec: ", s.category_names.size(), " category names for ", s.category_ids.size(),
               " category ids");
}

}  // namespace

const SearchSpace& space(const std::string& name) { return nn::space_by_name(name); }
std::vector<std::string> space_names() { return nn::space_names(); }

Arch parse_arch(const std::string& space_name, const std::string& text) {
  const SearchSpace& s = nn::space_by_name(space_name);
  Arch a = nn::parse_arch(text);
  nn::validate_arch(s, a);
  return a;
}
std::string format_arch(const Arch& arch) { return nn::format_arch(arch); }

std::unique_ptr<Backbone> make_backbone(const BackboneSpec& spec) {
  nn::BackboneOptions bo;
  bo.space = spec.space;
  bo.seed = spec.seed;
  bo.head = spec.head;
  bo.num_classes = spec.num_classes;
  if (spec.arch != kSupernet) {
    bo.kind = nn::NetKind::Standalone;
    bo.arch = parse_arch(spec.space, spec.arch);
  }
  return std::make_unique<Backbone>(bo);
}

std::unique_ptr<det::Detector> make_detector(const DetectorSpec& spec) {
  check_spec(spec);
  nn::BackboneOptions bo;
  bo.space = spec.space;
  bo.seed = spec.seed;
  if (spec.arch != kSupernet) {
    bo.kind = nn::NetKind::Standalone;
    bo.arch = parse_arch(spec.space, spec.arch);
    bo.split = nn::ChannelSplit::ShuffleHalve;  // as `detnas train --arch`: loads supernet weights
  } else {
    nn::space_by_name(spec.space);  // names the valid spaces on a typo
  }
  return det::make_detector(bo, spec.config);
}

void save_detector(const std::string& path, const det::Detector& net, const DetectorSpec& spec, int64_t step,
                   const Sgd* opt) {
  check_spec(spec);
  nn::CheckpointMeta m;
  m.kind = "train";
  m.step = step;
  m.space = spec.space;
  m.arch = spec.arch;
  m.config = spec.config.to_map();
  m.config["short_side"] = std::to_string(spec.short_side);
  m.config["max_size"] = std::to_string(spec.max_size);
  if (!spec.category_ids.empty()) m.config["categories"] = categories_json(spec);
  nn::save_checkpoint(path, net, opt, m);
}

DetectorSpec read_detector_spec(const std::string& checkpoint) {
  const std::string where = nn::checkpoint_base(checkpoint) + ".json";
  nn::CheckpointMeta m = nn::read_checkpoint_meta(checkpoint);
  DETNAS_CHECK(m.kind == "train", where, ": a '", m.kind,
               "' checkpoint, not a detector (expected one written by `detnas train` or api::save_detector)");
  DetectorSpec s;
  s.space = m.space;
  s.arch = m.arch;
  s.config = det::DetectorConfig::from_map(m.config, where);
  s.short_side = parse_size(m.config, "short_side", s.short_side, where);
  s.max_size = parse_size(m.config, "max_size", s.max_size, where);
  if (auto it = m.config.find("categories"); it != m.config.end()) parse_categories(it->second, where, s);
  DETNAS_CHECK(s.short_side > 0, where, ": config 'short_side' must be > 0, got ", s.short_side);
  DETNAS_CHECK(s.category_ids.empty() || int64_t(s.category_ids.size()) == s.config.num_classes, where, ": ",
               s.category_ids.size(), " category ids for ", s.config.num_classes, " classes");
  return s;
}

std::unique_ptr<det::Detector> load_detector(const std::string& checkpoint, const std::string& arch,
                                             DetectorSpec* spec_out) {
  DetectorSpec s = read_detector_spec(checkpoint);
  nn::ExtraTensors extra = nn::ExtraTensors::Error;
  if (!arch.empty()) {
    const Arch want = parse_arch(s.space, arch);
    if (s.arch == kSupernet) {
      s.arch = nn::format_arch(want);
      extra = nn::ExtraTensors::Ignore;  // the other choices of the supernet
    } else {
      DETNAS_CHECK(parse_arch(s.space, s.arch) == want, nn::checkpoint_base(checkpoint), ": the checkpoint holds arch ",
                   s.arch, ", not the requested ", nn::format_arch(want),
                   " (only a supernet checkpoint can give another path)");
    }
  }
  std::unique_ptr<det::Detector> net = make_detector(s);
  nn::load_checkpoint(checkpoint, *net, nullptr, extra);
  if (spec_out) *spec_out = s;
  return net;
}

void save_weights(const std::string& file, const Module& m) {
  nn::NamedTensors t;
  for (auto& p : m.parameters()) t.emplace_back(p.name, p.tensor);
  for (auto& b : m.buffers()) t.emplace_back(b.name, b.tensor);
  nn::save_safetensors(file, t);
}

void load_weights(const std::string& file, Module& m, nn::ExtraTensors extra) {
  nn::SafetensorsFile f = nn::load_safetensors(file);
  std::set<std::string> used;
  std::vector<std::string> problems;
  auto take = [&](const std::string& name, rt::Tensor dst) {
    const rt::Tensor* src = f.find(name);
    if (!src) {
      problems.push_back("missing " + name + " " + rt::shape_str(dst.shape()));
      return;
    }
    used.insert(name);
    if (src->shape() != dst.shape()) {
      problems.push_back(name + " has shape " + rt::shape_str(src->shape()) + " in the file, " +
                         rt::shape_str(dst.shape()) + " in the model");
      return;
    }
    dst.copy_from(*src);
  };
  for (auto& p : m.parameters()) take(p.name, p.tensor);
  for (auto& b : m.buffers()) take(b.name, b.tensor);
  if (extra == nn::ExtraTensors::Error)
    for (auto& [n, t] : f.tensors)
      if (!used.count(n)) problems.push_back("unexpected " + n + " (not in the model)");
  if (!problems.empty()) {
    std::string msg;
    for (size_t i = 0; i < problems.size() && i < 20; ++i) msg += "\n  " + problems[i];
    if (problems.size() > 20) msg += "\n  ... and " + std::to_string(problems.size() - 20) + " more";
    DETNAS_FAIL(file, ": ", problems.size(), " mismatches with the model:", msg);
  }
}

}  // namespace detnas::api
