// The DetNAS choice units (DETNAS.md "Search space"): a ShuffleNetV2 unit with
// depthwise kernel 3/5/7 and an Xception-like unit, both in stride-1 form (split
// the channels, one half passes, the other goes through the main branch, concat)
// and stride-2 form (projection branch + main branch on the full input, concat).
// Parameter names: main.pw1/bn1/dw/bn2/pw2/bn3 (ShuffleNetV2),
// main.dw1/bn1/pw1/bn2/dw2/bn3/pw2/bn4/dw3/bn5/pw3/bn6 (Xception),
// proj.dw/bn1/pw/bn2 (stride 2 only).
#pragma once
#include <memory>
#include <vector>

#include "nn/layers.h"
#include "nn/space.h"

namespace detnas::nn {

// How a stride-1 unit splits its input channels (DETNAS.md, both variants):
//   ShuffleHalve: channel shuffle with 2 groups, first half passes (supernets);
//   EvenOdd: even channels pass, odd channels go to the main branch (the
//            released single models).
enum class ChannelSplit { ShuffleHalve, EvenOdd };

// A chain of conv -> BN (-> ReLU) steps with explicit names.
class Branch : public Module {
 public:
  struct Step {
    const char* conv_name;
    const char* bn_name;
    ConvOptions conv;
    Act act;
  };
  Branch(const std::vector<Step>& steps, Rng& rng, float bn_momentum);
  rt::Tensor forward(const rt::Tensor& x);

 private:
  std::vector<std::pair<Conv2d*, BatchNorm2d*>> layers_;
  std::vector<Act> acts_;
};

// One candidate of one block: choice 0,1,2 (ShuffleNetV2 k3/5/7) or 3 (Xception).
class ChoiceUnit : public Module {
 public:
  ChoiceUnit(const BlockSpec& spec, int choice, ChannelSplit split, Rng& rng, float bn_momentum);
  rt::Tensor forward(const rt::Tensor& x);
  int choice() const { return choice_; }

 private:
  BlockSpec spec_;
  int choice_;
  ChannelSplit split_;
  Branch* main_ = nullptr;
  Branch* proj_ = nullptr;
};

}  // namespace detnas::nn
