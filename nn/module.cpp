// Module tree bookkeeping.
#include "nn/module.h"

namespace detnas::nn {

rt::Tensor Module::register_param(const std::string& name, rt::Tensor t, ParamKind kind) {
  t.requires_grad_(true);
  params_.push_back({name, t, kind});
  return t;
}

rt::Tensor Module::register_buffer(const std::string& name, rt::Tensor t) {
  buffers_.push_back({name, t});
  return t;
}

void Module::collect(const std::string& prefix, std::vector<ParamRef>* params, std::vector<BufferRef>* bufs) const {
  if (params)
    for (auto& p : params_) params->push_back({prefix + p.name, p.tensor, p.kind});
  if (bufs)
    for (auto& b : buffers_) bufs->push_back({prefix + b.name, b.tensor});
  for (auto& [name, child] : children_) child->collect(prefix + name + ".", params, bufs);
}

std::vector<ParamRef> Module::parameters() const {
  std::vector<ParamRef> v;
  collect("", &v, nullptr);
  return v;
}

std::vector<BufferRef> Module::buffers() const {
  std::vector<BufferRef> v;
  collect("", nullptr, &v);
  return v;
}

void Module::set_mode(Mode m) {
  mode_ = m;
  on_mode_change(m);
  for (auto& c : children_) c.second->set_mode(m);
}

void Module::apply(const std::function<void(Module&)>& fn) {
  fn(*this);
  for (auto& c : children_) c.second->apply(fn);
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& p : parameters()) n += p.tensor.numel();
  return n;
}

BufferSnapshot::BufferSnapshot(const Module& m) {
  for (auto& b : m.buffers()) saved_.emplace_back(b.tensor, b.tensor.clone());
}

void BufferSnapshot::restore() {
  for (auto& [live, copy] : saved_) live.copy_from(copy);
}

}  // namespace detnas::nn
