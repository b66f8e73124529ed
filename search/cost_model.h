// Analytic cost model: multiply-adds (MACs) of conv and linear layers and
// parameter counts of any architecture in any search space at any input size,
// computed from the block descriptions of nn/space.h without building or running
// a network. It is not a profiler: elementwise ops, BN, ReLU, pooling, shuffles
// and concatenations cost 0 MACs.
//
// Conventions (these reproduce every number of the DETNAS.md table exactly when
// rounded to 0.1M, i.e. the reference code's counting):
//   - conv MACs = Ho * Wo * Cout * (Cin / groups) * K * K, with the OUTPUT
//     spatial size (so a stride-2 depthwise conv costs a quarter of its input
//     size); linear MACs = in * out; biases add no MACs.
//   - params = conv/linear weights + biases that exist (stem conv and the DetNAS
//     head have biases, no other conv does) + BN gamma and beta (2 per channel;
//     running statistics are buffers, not parameters). The head BN is counted.
//   - spatial sizes follow conv arithmetic with pad k/2:
//     Ho = floor((H + 2*(k/2) - k) / s) + 1 (= ceil(H/2) for odd k, stride 2).
//   - "backbone" = stem + all blocks (what the 300M FLOPs budget counts);
//     "with head" adds PW C4->last (+bias) + BN and the linear classifier (+bias).
//     The SPOS classification head has no biases: CostOptions::head_bias.
//   - MACs scale with the batch, parameters do not.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nn/space.h"

namespace detnas::search {

struct Cost {
  int64_t macs = 0;
  int64_t params = 0;
  Cost& operator+=(const Cost& o) {
    macs += o.macs;
    params += o.params;
    return *this;
  }
  double mega_macs() const { return double(macs) * 1e-6; }
  double mega_params() const { return double(params) * 1e-6; }
};
inline Cost operator+(Cost a, const Cost& b) { return a += b; }

// DetNAS classification head: last conv and classifier with biases; the SPOS
// ImageNet network's head has neither bias.
enum class HeadBias { With, Without };

struct CostOptions {
  int64_t height = 224;
  int64_t width = 224;
  int64_t batch = 1;
  int64_t num_classes = 1000;
  HeadBias head_bias = HeadBias::With;
};

struct StageCost {
  int stage = 0;         // 0..3 (output C2..C5)
  int64_t channels = 0;  // output channels
  int64_t height = 0;    // output spatial size
  int64_t width = 0;
  Cost cost;  // the stage's blocks (stem excluded)
};

struct ArchCost {
  Cost stem;
  std::vector<Cost> blocks;       // one per block, network order
  std::vector<StageCost> stages;  // kNumStages entries
  Cost head;                      // last conv + BN + classifier
  Cost backbone;                  // stem + blocks
  Cost with_head;                 // backbone + head
};

// Output size of a conv with kernel k, stride s and padding k/2.
int64_t conv_out_size(int64_t in, int k, int stride);

// Stem (conv3x3 s2 with bias, BN) at an H x W input, batch 1.
Cost stem_cost(const nn::SearchSpace& space, int64_t height, int64_t width);
// One block with the given choice; in_h x in_w is the block's INPUT size, batch 1.
Cost block_cost(const nn::BlockSpec& block, int choice, int64_t in_h, int64_t in_w);
// Classification head on a C4 map of h x w (the last stage's output), batch 1.
Cost head_cost(const nn::SearchSpace& space, int64_t h, int64_t w, int64_t num_classes, HeadBias bias);

// Full breakdown. Validates the architecture against the space (errors name the
// position and value) and the options (positive sizes).
ArchCost arch_cost(const nn::SearchSpace& space, const nn::Arch& arch, const CostOptions& opts = {});

// Backbone MACs at batch 1 and an H x W input (e.g. 800 x 1333 for a detector).
int64_t flops_at(const nn::SearchSpace& space, const nn::Arch& arch, int64_t height, int64_t width);
// Backbone MACs at 1x3x224x224: the quantity the search's FLOPs budget limits.
int64_t backbone_flops(const nn::SearchSpace& space, const nn::Arch& arch);

}  // namespace detnas::search
