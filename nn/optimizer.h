// SGD with momentum over a module's parameters (torch.optim.SGD semantics).
// Per-kind weight decay and LR multipliers express both DetNAS recipes:
//   spos()       wd only on conv/linear kernels (classification pre-training);
//   detection()  wd on weights, none on biases (conv and BN), biases at 2x LR.
// A parameter whose .grad is undefined in a step (an unsampled supernet choice)
// gets no update at all: no momentum, no weight decay, no buffer change.
#pragma once
#include <array>
#include <map>
#include <string>
#include <vector>

#include "nn/module.h"
#include "nn/safetensors.h"

namespace detnas::nn {

constexpr int kNumParamKinds = 5;

struct SgdConfig {
  double momentum = 0.9;
  std::array<double, kNumParamKinds> weight_decay{};  // indexed by ParamKind
  std::array<double, kNumParamKinds> lr_mult{1, 1, 1, 1, 1};
  static SgdConfig spos(double wd = 4e-5);
  static SgdConfig detection(double wd = 1e-4, double bias_lr_mult = 2.0);
};

class Sgd {
 public:
  Sgd(std::vector<ParamRef> params, const SgdConfig& cfg);
  // Updates every parameter that has a gradient with learning rate `lr`
  // (times its kind's multiplier), then drops all gradients.
  void step(double lr);
  void zero_grad();
  // Global L2 norm of the current gradients (in double); when max_norm > 0 and
  // the norm exceeds it, every gradient is scaled by max_norm / norm. Returns
  // the norm before scaling. Parameters without a gradient are left out.
  double clip_grad_norm(double max_norm);
  // Data parallelism (rt::dist): sums every present gradient over the ranks, as
  // one flat bucket per device (MPI for CPU tensors, NCCL for CUDA ones). Every
  // rank must hold gradients for the same parameters (the same supernet path,
  // drawn from the shared seed); a rank with another set fails the job by name.
  // A no-op with one rank. Returns the bytes each rank contributed (0 with one rank).
  int64_t allreduce_grads();
  int64_t updated_last_step() const { return updated_; }
  // Momentum buffers for checkpoints, named "momentum.<param name>".
  NamedTensors state() const;
  // Restores buffers; every name must be a known parameter with the same shape.
  void load_state(const NamedTensors& tensors, const std::string& what);

 private:
  std::vector<ParamRef> params_;
  SgdConfig cfg_;
  std::map<std::string, rt::Tensor> buffers_;
  int64_t updated_ = 0;
};

}  // namespace detnas::nn
