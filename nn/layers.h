// Basic layers: Conv2d, BatchNorm2d, Linear. Each owns its parameters and
// calls the autograd ops of runtime/; the initialisation follows DETNAS.md
// (conv N(0, 1/fan_in-per-group) i.e. std = 1/(Cin/groups), depthwise std 1;
// stem N(0, 0.01); BN gamma 1 beta 1e-4; linear N(0, 0.01), bias 0).
#pragma once
#include "nn/module.h"
#include "runtime/ops_norm.h"
#include "runtime/rng.h"

namespace detnas::nn {

enum class Bias { None, With };

// How a conv's weight is drawn: std = 1/(Cin/groups) (SPOS), a fixed std, or
// zeros (tests fill weights themselves).
enum class ConvInit { FanIn, FixedStd, Zeros };

struct ConvOptions {
  int64_t in = 0, out = 0, kernel = 1, stride = 1, padding = -1 /* -1: kernel/2 */, groups = 1;
  Bias bias = Bias::None;
  ConvInit init = ConvInit::FanIn;
  float init_std = 0.01f;  // for ConvInit::FixedStd
  float bias_init = 0.0f;
};

class Conv2d : public Module {
 public:
  Conv2d(const ConvOptions& o, Rng& rng);
  rt::Tensor forward(const rt::Tensor& x) const;
  const ConvOptions& options() const { return o_; }
  rt::Tensor weight, bias;  // weight (Cout, Cin/groups, K, K); bias (Cout) or undefined

 private:
  ConvOptions o_;
};

class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t channels, float momentum = 0.1f, float eps = 1e-5f);
  // Uses the module mode: Train (batch stats, momentum update), Eval (running
  // stats), Recalibrate (batch stats, running stats re-estimated as a
  // cumulative average since reset_running_stats()).
  rt::Tensor forward(const rt::Tensor& x);
  void reset_running_stats();  // mean 0, var 1, recalibration count 0
  void set_momentum(float m) { momentum_ = m; }
  // Synchronized BN: Train/Recalibrate statistics over all ranks (rt::ops::BatchNormParams::sync).
  void set_sync(bool on) { sync_ = on; }
  bool sync() const { return sync_; }
  float eps() const { return eps_; }
  rt::Tensor weight, bias, running_mean, running_var;

 private:
  float momentum_, eps_;
  bool sync_ = false;
  int64_t recal_batches_ = 0;
};

// Resets the running statistics of every BatchNorm2d in the tree (mean 0, var 1,
// recalibration count 0): the first step of BN recalibration for one path.
void reset_bn_stats(Module& root);
// Sets the momentum of every BatchNorm2d in the tree.
void set_bn_momentum(Module& root, float momentum);
// Turns synchronized batch statistics (over all ranks) on or off for every BatchNorm2d in the tree.
void set_sync_bn(Module& root, bool on);

class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, Bias bias, Rng& rng, float init_std = 0.01f);
  rt::Tensor forward(const rt::Tensor& x) const;
  rt::Tensor weight, bias;
};

// conv -> BN (-> ReLU): the unit every block is made of.
enum class Act { None, Relu };

// act(bn(conv(x))) in the module modes. Inference (BN in Eval, autograd off,
// CPU tensors) runs the folded form: conv with rt::ops::fold_batch_norm's
// weights and bias, then ReLU in place: one conv and at most one pass over its
// output, equal to the three ops up to float rounding. DETNAS_BN_FOLD=0 turns
// the folding off (the three ops always).
rt::Tensor conv_bn_act(const Conv2d& conv, BatchNorm2d& bn, Act act, const rt::Tensor& x);

class ConvBn : public Module {
 public:
  ConvBn(const ConvOptions& o, Act act, Rng& rng, float bn_momentum = 0.1f);
  rt::Tensor forward(const rt::Tensor& x);
  Conv2d* conv;
  BatchNorm2d* bn;

 private:
  Act act_;
};

}  // namespace detnas::nn
