// Module tree bookkeeping.
#include "nn/module.h"

#include <cmath>
#include <map>
#include <string>

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

namespace {
// Re-points t's storage at a contiguous copy on d; every Tensor sharing t's impl follows.
void move_in_place(const rt::Tensor& t, rt::Device d) {
  if (!t.defined()) return;
  rt::TensorImpl* impl = t.impl();
  if (impl->grad.defined() && impl->grad.device() != d) impl->grad = impl->grad.to(d);
  if (t.device() == d) return;
  const rt::Tensor moved = t.to(d);
  impl->storage = moved.impl()->storage;
  impl->offset = moved.offset();
  impl->strides = moved.strides();
}
}  // namespace

void Module::to(rt::Device d) {
  for (auto& p : parameters()) move_in_place(p.tensor, d);
  for (auto& b : buffers()) move_in_place(b.tensor, d);
}

const rt::Tensor* Module::first_param() const {
  if (!params_.empty()) return &params_.front().tensor;
  for (auto& c : children_)
    if (const rt::Tensor* t = c.second->first_param()) return t;
  return nullptr;
}

rt::Device Module::device() const {
  const rt::Tensor* t = first_param();
  return t ? t->device() : rt::Device::CPU;
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

void Module::load_from(const Module& src) {
  std::map<std::string, rt::Tensor> by_name;
  for (auto& p : src.parameters()) by_name[p.name] = p.tensor;
  for (auto& b : src.buffers()) by_name[b.name] = b.tensor;
  std::string missing;
  auto copy = [&](const std::string& name, rt::Tensor dst) {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      missing += (missing.empty() ? "" : ", ") + name;
      return;
    }
    DETNAS_CHECK(it->second.shape() == dst.shape(), "load_from: ", name, " has shape ",
                 rt::shape_str(it->second.shape()), " in the source but ", rt::shape_str(dst.shape()), " here");
    dst.copy_from(it->second);
  };
  for (auto& p : parameters()) copy(p.name, p.tensor);
  for (auto& b : buffers()) copy(b.name, b.tensor);
  DETNAS_CHECK(missing.empty(), "load_from: missing in the source: ", missing);
}

std::vector<double> conv_weight_norms(const Module& m) {
  std::vector<double> out;
  for (const ParamRef& p : m.parameters()) {
    if (p.kind != ParamKind::ConvWeight) continue;
    rt::Tensor w = p.tensor.to(rt::Device::CPU);
    double ss = 0;
    for (int64_t i = 0; i < w.numel(); ++i) ss += double(w.data()[i]) * double(w.data()[i]);
    out.push_back(std::sqrt(ss));
  }
  return out;
}

double rescale_conv_weights(Module& m, const std::vector<double>& norms) {
  const std::vector<ParamRef> params = m.parameters();
  std::map<std::string, rt::Tensor> by_name;
  for (const ParamRef& p : params) by_name[p.name] = p.tensor;
  const std::vector<double> now = conv_weight_norms(m);
  DETNAS_CHECK(now.size() == norms.size(), "rescale_conv_weights: ", norms.size(), " norms for ", now.size(),
               " conv kernels");
  double log_sum = 0;
  int64_t n = 0;
  size_t k = 0;
  for (const ParamRef& p : params) {
    if (p.kind != ParamKind::ConvWeight) continue;
    const double cur = now[k], want = norms[k];
    ++k;
    if (cur <= 0 || want <= 0) continue;
    const float f = float(want / cur);
    const std::string stem = p.name.substr(0, p.name.size() - std::string("weight").size());
    for (rt::Tensor t : {p.tensor, by_name.count(stem + "bias") ? by_name[stem + "bias"] : rt::Tensor()}) {
      if (!t.defined()) continue;
      const bool host = t.device() == rt::Device::CPU;
      rt::Tensor h = host ? t : t.to(rt::Device::CPU);
      for (int64_t i = 0; i < h.numel(); ++i) h.data()[i] *= f;
      if (!host) t.copy_from(h);
    }
    log_sum += std::log(double(f));
    ++n;
  }
  return n ? std::exp(log_sum / double(n)) : 1.0;
}

}  // namespace detnas::nn
