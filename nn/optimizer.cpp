// SGD bookkeeping around the sgd_update kernel (CPU, or the CUDA twin for
// parameters on the device; momentum buffers live on the parameter's device).
#include "nn/optimizer.h"

#include <algorithm>
#include <cmath>

#include "kernels/sgd.h"
#ifdef DETNAS_CUDA
#include "kernels/elementwise_cuda.h"
#include "kernels/loss_cuda.h"
#include "kernels/sgd_cuda.h"
#include "runtime/device_allocator.h"
#endif

namespace detnas::nn {

namespace {
// CUDA halves of step / clip_grad_norm (the build without CUDA has no CUDA tensors).
void sgd_update_cuda(int64_t n, float* p, const float* g, float* buf, const SgdParams& sp) {
#ifdef DETNAS_CUDA
  kernels::cuda::sgd_update(n, p, g, buf, sp, rt::cuda_stream());
#else
  (void)n, (void)p, (void)g, (void)buf, (void)sp;
  DETNAS_FAIL("sgd step: cuda parameter in a build without CUDA");
#endif
}
double sum_squares_cuda(const rt::Tensor& g) {
#ifdef DETNAS_CUDA
  const size_t bytes = kernels::cuda_plan::loss_workspace_bytes(g.numel());
  void* ws = rt::device_allocator().allocate(bytes);
  double s = 0;
  try {
    s = kernels::cuda::sum_squares(g.numel(), g.data(), ws, rt::cuda_stream());
  } catch (...) {
    rt::device_allocator().release(ws);
    throw;
  }
  rt::device_allocator().release(ws);
  return s;
#else
  (void)g;
  DETNAS_FAIL("clip_grad_norm: cuda gradient in a build without CUDA");
#endif
}
void scale_cuda(rt::Tensor& g, float scale) {
#ifdef DETNAS_CUDA
  kernels::cuda::scale(g.numel(), scale, g.data(), g.data(), rt::cuda_stream());
#else
  (void)g, (void)scale;
  DETNAS_FAIL("clip_grad_norm: cuda gradient in a build without CUDA");
#endif
}
// Sum of squares in double in an order fixed by n alone (an OpenMP reduction's
// order follows the thread count): at most 256 chunks of at least 64Ki elements,
// each summed serially, the chunk sums added in order.
double sum_squares_cpu(const float* d, int64_t n) {
  constexpr int64_t kMaxChunks = 256;
  const int64_t chunk = std::max<int64_t>(65536, (n + kMaxChunks - 1) / kMaxChunks), nc = (n + chunk - 1) / chunk;
  double part[kMaxChunks];
#pragma omp parallel for schedule(static) if (nc > 1)
  for (int64_t c = 0; c < nc; ++c) {
    double s = 0;
    for (int64_t i = c * chunk, e = std::min(n, i + chunk); i < e; ++i) s += double(d[i]) * double(d[i]);
    part[c] = s;
  }
  double sq = 0;
  for (int64_t c = 0; c < nc; ++c) sq += part[c];
  return sq;
}
}  // namespace

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
    float* buf = nullptr;
    if (cfg_.momentum != 0) {
      auto it = buffers_.find(p.name);
      if (it == buffers_.end()) {
        it = buffers_.emplace(p.name, rt::Tensor::empty(p.tensor.shape(), dev)).first;
        sp.buffer = MomentumBuffer::Fresh;
      } else {
        sp.buffer = MomentumBuffer::Existing;
        if (it->second.device() != dev) it->second = it->second.to(dev);  // the model moved (Module::to)
      }
      buf = it->second.data();
    }
    if (dev == rt::Device::CPU)
      kernels::cpu::sgd_update(p.tensor.numel(), p.tensor.data(), g.data(), buf, sp);
    else
      sgd_update_cuda(p.tensor.numel(), p.tensor.data(), g.data(), buf, sp);
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

double Sgd::clip_grad_norm(double max_norm) {
  double sq = 0;
  std::vector<rt::Tensor> grads;
  for (const ParamRef& p : params_) {
    rt::Tensor g = p.tensor.grad();
    if (!g.defined()) continue;
    grads.push_back(g);
    if (g.device() != rt::Device::CPU) {  // device two-pass sum of squares (double), one read-back per tensor
      sq += sum_squares_cuda(g);
      continue;
    }
    sq += sum_squares_cpu(g.data(), g.numel());
  }
  const double norm = std::sqrt(sq);
  if (max_norm > 0 && norm > max_norm) {
    const float scale = float(max_norm / norm);
    for (rt::Tensor& g : grads) {
      if (g.device() != rt::Device::CPU) {
        scale_cuda(g, scale);
        continue;
      }
      float* d = g.data();
      const int64_t n = g.numel();
#pragma omp parallel for if (n > 65536)
      for (int64_t i = 0; i < n; ++i) d[i] *= scale;
    }
  }
  return norm;
}

}  // namespace detnas::nn
