// SGD bookkeeping around the runtime's optimizer ops (runtime/ops_optim.h: the
// CPU kernels, or the CUDA twins for parameters on the device; momentum buffers
// live on the parameter's device).
#include "nn/optimizer.h"

#include <cmath>

#include "runtime/dist.h"
#include "runtime/ops_optim.h"

namespace detnas::nn {

SgdConfig SgdConfig::spos(double wd) {
  SgdConfig c;
  c.weight_decay[int(ParamKind::ConvWeight)] = wd;
  c.weight_decay[int(ParamKind::LinearWeight)] = wd;
  return c;
}

SgdConfig SgdConfig::detection(double wd, double bias_lr_mult) {
  SgdConfig c;
  c.weight_decay[int(ParamKind::ConvWeight)] = wd;
  c.weight_decay[int(ParamKind::LinearWeight)] = wd;
  c.weight_decay[int(ParamKind::NormWeight)] = wd;
  c.lr_mult[int(ParamKind::Bias)] = bias_lr_mult;
  c.lr_mult[int(ParamKind::NormBias)] = bias_lr_mult;
  return c;
}

Sgd::Sgd(std::vector<ParamRef> params, const SgdConfig& cfg) : params_(std::move(params)), cfg_(cfg) {}

void Sgd::step(double lr) {
  updated_ = 0;
  for (ParamRef& p : params_) {
    rt::Tensor g = p.tensor.grad();
    if (!g.defined()) continue;
    const rt::Device dev = p.tensor.device();
    DETNAS_CHECK(g.device() == dev, "sgd: parameter ", p.name, " is on ", rt::device_name(dev), " but its gradient on ",
                 rt::device_name(g.device()));
    DETNAS_CHECK(p.tensor.is_contiguous(), "sgd: parameter ", p.name, " is not contiguous");
    SgdParams sp;
    sp.lr = lr * cfg_.lr_mult[int(p.kind)];
    sp.momentum = cfg_.momentum;
    sp.weight_decay = cfg_.weight_decay[int(p.kind)];
    rt::Tensor no_buffer;
    rt::Tensor* buf = &no_buffer;
    if (cfg_.momentum != 0) {
      auto it = buffers_.find(p.name);
      if (it == buffers_.end()) {
        it = buffers_.emplace(p.name, rt::Tensor::empty(p.tensor.shape(), dev)).first;
        sp.buffer = MomentumBuffer::Fresh;
      } else {
        sp.buffer = MomentumBuffer::Existing;
        if (it->second.device() != dev) it->second = it->second.to(dev);  // the model moved (Module::to)
      }
      buf = &it->second;
    }
    rt::ops::sgd_update_(p.tensor, g, *buf, sp);
    updated_++;
  }
  zero_grad();
}

void Sgd::zero_grad() {
  for (ParamRef& p : params_) p.tensor.reset_grad();
}

NamedTensors Sgd::state() const {
  NamedTensors out;
  for (const ParamRef& p : params_) {
    auto it = buffers_.find(p.name);
    if (it != buffers_.end()) out.emplace_back("momentum." + p.name, it->second.to(rt::Device::CPU));
  }
  return out;
}

void Sgd::load_state(const NamedTensors& tensors, const std::string& what) {
  std::map<std::string, const ParamRef*> by_name;
  for (const ParamRef& p : params_) by_name["momentum." + p.name] = &p;
  buffers_.clear();
  for (auto& [name, t] : tensors) {
    auto it = by_name.find(name);
    DETNAS_CHECK(it != by_name.end(), what, ": optimizer state '", name, "' matches no parameter of this model");
    DETNAS_CHECK(t.shape() == it->second->tensor.shape(), what, ": optimizer state '", name, "' has shape ",
                 rt::shape_str(t.shape()), " but the parameter is ", rt::shape_str(it->second->tensor.shape()));
    buffers_[it->second->name] = t.clone().to(it->second->tensor.device());
  }
}

int64_t Sgd::allreduce_grads() {
  if (!rt::dist::active()) return 0;
  std::vector<rt::Tensor> grads;
  int64_t numel = 0;
  for (const ParamRef& p : params_) {
    rt::Tensor g = p.tensor.grad();
    if (!g.defined()) continue;
    grads.push_back(g);
    numel += g.numel();
  }
  // The same parameter set everywhere: max == -max(-x) for both counts.
  int64_t c[4] = {int64_t(grads.size()), numel, -int64_t(grads.size()), -numel};
  rt::dist::allreduce_max(c, 4);
  DETNAS_CHECK(c[0] == -c[2] && c[1] == -c[3], "data parallel: ", rt::dist::where(), " has gradients for ",
               grads.size(), " parameters (", numel, " values) but another rank has ",
               c[0] == int64_t(grads.size()) ? -c[2] : c[0], " (the ranks must train the same path)");
  // One bucket per device (a model lives on one device; keep it general).
  std::vector<rt::Tensor> cpu, cuda;
  for (rt::Tensor& g : grads) (g.device() == rt::Device::CUDA ? cuda : cpu).push_back(g);
  rt::dist::allreduce_sum(cpu);
  rt::dist::allreduce_sum(cuda);
  return numel * int64_t(sizeof(float));
}

double Sgd::clip_grad_norm(double max_norm) {
  double sq = 0;
  std::vector<rt::Tensor> grads;
  for (const ParamRef& p : params_) {
    rt::Tensor g = p.tensor.grad();
    if (!g.defined()) continue;
    grads.push_back(g);
    sq += rt::ops::sum_squares(g);  // fixed order on any thread count; on CUDA one read-back per tensor
  }
  const double norm = std::sqrt(sq);
  if (max_norm > 0 && norm > max_norm) {
    const float scale = float(max_norm / norm);
    for (rt::Tensor& g : grads) rt::ops::scale_(g, scale);
  }
  return norm;
}

}  // namespace detnas::nn
