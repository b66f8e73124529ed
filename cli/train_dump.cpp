// `detnas train|pretrain --dump-steps` files (train_dump.h).
#include "cli/train_dump.h"

#include <cstdio>

#include "core/error.h"
#include "data/json_writer.h"
#include "nn/safetensors.h"
#include "runtime/fs.h"

namespace detnas::cli {

TrainDump::TrainDump(std::string dir, int64_t steps, int64_t first, std::string command)
    : dir_(std::move(dir)), command_(std::move(command)), steps_(steps), first_(first) {
  DETNAS_CHECK(steps_ >= 0, command_, " --dump-steps: ", steps_, " is negative");
  if (steps_ > 0) {
    DETNAS_CHECK(!dir_.empty(), command_, " --dump-steps ", steps_, " needs --dump-dir");
    make_dirs(dir_);
  }
}

void TrainDump::write_init(const nn::Module& net, const std::map<std::string, std::string>& config) const {
  if (!enabled()) return;
  data::JsonWriter j(data::JsonStyle::Pretty);
  j.begin_object();
  for (const auto& [k, v] : config) j.field(k, v);
  j.end_object();
  write_file_atomic(path_join(dir_, "config.json"), j.str() + "\n", Durability::NoSync);
  nn::NamedTensors t;
  for (const nn::ParamRef& p : net.parameters()) t.emplace_back(p.name, p.tensor.to(rt::Device::CPU).contiguous());
  for (const nn::BufferRef& b : net.buffers()) t.emplace_back(b.name, b.tensor.to(rt::Device::CPU).contiguous());
  nn::save_safetensors(path_join(dir_, "init.safetensors"), t);
}

// "name": [{"pos": [...], "neg": [...]}, ...] per image.
static void write_sampled(data::JsonWriter& j, const char* name, const std::vector<det::SampledIndices>& per_image) {
  j.key(name).begin_array();
  for (const det::SampledIndices& si : per_image) {
    j.begin_object();
    j.key("pos").array(si.pos);
    j.key("neg").array(si.neg);
    j.end_object();
  }
  j.end_array();
}

void TrainDump::write_step(const DumpedStep& s) const {
  DETNAS_CHECK(s.images && (s.targets || s.classes), command_, " --dump-steps: step ", s.iter, " without its batch");
  char base[32];
  std::snprintf(base, sizeof base, "step_%04lld", (long long)s.iter);
  nn::NamedTensors t;
  t.emplace_back("images", s.images->to(rt::Device::CPU).contiguous());
  data::JsonWriter j(data::JsonStyle::Pretty);
  j.begin_object().field("iter", s.iter).field("lr", s.lr);
  j.key("path").array(s.path);
  if (s.targets) {
    j.key("num_boxes").begin_array();
    for (const det::Targets& g : *s.targets) j.value(int64_t(g.labels.size()));
    j.end_array();
    j.key("labels").begin_array();
    for (size_t i = 0; i < s.targets->size(); ++i) {
      const det::Targets& g = (*s.targets)[i];
      j.array(g.labels);
      if (!g.labels.empty())
        t.emplace_back("boxes." + std::to_string(i), rt::Tensor::from_vector({int64_t(g.labels.size()), 4}, g.boxes));
    }
    j.end_array();
  } else {
    j.key("labels").array(*s.classes);
  }
  if (s.samples) {
    write_sampled(j, "rpn_sampled", s.samples->rpn);
    write_sampled(j, "roi_sampled", s.samples->roi);
    for (size_t i = 0; i < s.samples->proposals.size(); ++i) {
      const std::vector<float>& p = s.samples->proposals[i];
      t.emplace_back("proposals." + std::to_string(i), rt::Tensor::from_vector({int64_t(p.size() / 4), 4}, p));
    }
  }
  if (s.dropout_mask && s.dropout_mask->defined())
    t.emplace_back("dropout_mask", s.dropout_mask->to(rt::Device::CPU).contiguous());
  j.key("losses").begin_object();
  for (const auto& [name, v] : s.losses) j.field(name, v);
  j.end_object();
  j.field("total", s.total).field("grad_norm", s.grad_norm).end_object();
  nn::save_safetensors(path_join(dir_, std::string(base) + ".safetensors"), t);
  write_file_atomic(path_join(dir_, std::string(base) + ".json"), j.str() + "\n", Durability::NoSync);
}

}  // namespace detnas::cli
