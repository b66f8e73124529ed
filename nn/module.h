// Module: a named tree of parameters, buffers and child modules (Caffe/torch
// style naming "stage2.3.choice1.main.dw.weight"), with a mode (train / eval /
// BN recalibration) set recursively. Forward signatures are per module type;
// modules only compose autograd primitives from runtime/ops_*.h.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/tensor.h"

namespace detnas::nn {

// Train: batch statistics, running-stat update, dropout on.
// Eval: running statistics.  Recalibrate: batch statistics, running stats
// re-estimated (see BatchNorm2d), no dropout.
enum class Mode { Train, Eval, Recalibrate };

// What a parameter is, for per-kind weight decay and LR multipliers.
enum class ParamKind { ConvWeight, LinearWeight, Bias, NormWeight, NormBias };

struct ParamRef {
  std::string name;
  rt::Tensor tensor;  // shares the module's storage
  ParamKind kind;
};
struct BufferRef {
  std::string name;
  rt::Tensor tensor;
};

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  std::vector<ParamRef> parameters() const;  // recursive, dotted names, registration order
  std::vector<BufferRef> buffers() const;
  void set_mode(Mode m);
  Mode mode() const { return mode_; }
  int64_t num_parameters() const;  // elements
  // Calls fn on this module and every descendant (pre-order).
  void apply(const std::function<void(Module&)>& fn);
  // Moves every parameter and buffer (and any gradient) of the tree to device d
  // in place: each tensor keeps its identity (the layers' members and ParamRefs
  // share it) and gets a contiguous copy on d. No-op for tensors already on d.
  // Not here: optimizer state (nn::Sgd moves its momentum buffers on next step).
  void to(rt::Device d);
  // The device of the first parameter (CPU for a module without parameters):
  // where the network runs after to(d). Inputs are uploaded to it at the entry
  // of a network's forward (Backbone::forward_features), so callers pass host batches.
  rt::Device device() const;
  // Copies every parameter and buffer of this tree from `src` by name (a
  // supernet into a standalone network of one path, or equal networks). Every
  // name here must exist in src with the same shape; the error lists the missing ones.
  void load_from(const Module& src);

 protected:
  rt::Tensor register_param(const std::string& name, rt::Tensor t, ParamKind kind);
  rt::Tensor register_buffer(const std::string& name, rt::Tensor t);
  template <class M>
  M* register_module(const std::string& name, std::unique_ptr<M> m) {
    M* raw = m.get();
    children_.emplace_back(name, std::move(m));
    return raw;
  }
  virtual void on_mode_change(Mode) {}

 private:
  const rt::Tensor* first_param() const;  // pre-order; nullptr without parameters
  void collect(const std::string& prefix, std::vector<ParamRef>* params, std::vector<BufferRef>* bufs) const;
  Mode mode_ = Mode::Train;
  std::vector<ParamRef> params_;
  std::vector<BufferRef> buffers_;
  std::vector<std::pair<std::string, std::unique_ptr<Module>>> children_;
};

// Sets a module tree's mode for a scope and sets it again on every exit, return
// or throw: back to the mode it had (ModeGuard(m, during)) or to a fixed one
// (ModeGuard(m, during, after)).
class ModeGuard {
 public:
  ModeGuard(Module& m, Mode during) : ModeGuard(m, during, m.mode()) {}
  ModeGuard(Module& m, Mode during, Mode after) : m_(m), after_(after) { m_.set_mode(during); }
  ~ModeGuard() { m_.set_mode(after_); }
  ModeGuard(const ModeGuard&) = delete;
  ModeGuard& operator=(const ModeGuard&) = delete;

 private:
  Module& m_;
  Mode after_;
};

// The L2 norm of every convolution kernel (ParamKind::ConvWeight) of a tree, in
// parameters() order, and the rescaling of those kernels to given norms. In the
// backbone every conv feeds a BN, so in training mode (batch statistics) scaling
// a kernel (and its bias) changes the network's output only through BN's eps;
// what it changes is the kernel's effective learning rate, lr / |w|^2 (the
// gradient of a scale-invariant weight shrinks as 1/|w|). `train --pretrained`
// uses it to give a pre-trained backbone the effective learning rates of a
// fresh one (README, "Pre-training and fine-tuning"). Running statistics are
// not rescaled: training-mode BN replaces them within tens of iterations, and
// a supernet's evaluation recalibrates them.
std::vector<double> conv_weight_norms(const Module& m);
// Scales each conv kernel (and the bias of the same layer, NAME.bias) so that
// its norm becomes norms[i]; a zero kernel stays zero. Returns the geometric
// mean of the factors applied (for the log).
double rescale_conv_weights(Module& m, const std::vector<double>& norms);

// A copy of every buffer (BN running statistics) of a module tree, to put back
// after an evaluation that re-estimates them (BN recalibration of one path).
class BufferSnapshot {
 public:
  explicit BufferSnapshot(const Module& m);
  void restore();  // copies the saved values back into the live buffers

 private:
  std::vector<std::pair<rt::Tensor, rt::Tensor>> saved_;  // (live, copy)
};

}  // namespace detnas::nn
