// The DetNAS backbone in two forms built from the same SearchSpace definitions:
//   Supernet   every block holds all four ChoiceUnits ("stageS.B.choiceC...");
//              forward takes the path (one choice per block) to run;
//   Standalone only the chosen unit of each block exists, under the same names
//              as in the supernet, so a supernet checkpoint loads into a
//              standalone network by name (load_path_weights).
// Stem: conv3x3 s2 with bias + BN + ReLU ("stem.conv", "stem.bn"), no max-pool.
// Optional classification head ("head.conv" PW C4->last, BN, ReLU, dropout,
// global average pool, "head.fc").
#pragma once
#include <memory>
#include <vector>

#include "nn/blocks.h"
#include "nn/space.h"

namespace detnas::nn {

enum class NetKind { Supernet, Standalone };
enum class Head { None, Classification };

struct BackboneOptions {
  std::string space = "300M";
  NetKind kind = NetKind::Supernet;
  Arch arch;  // Standalone only
  ChannelSplit split = ChannelSplit::ShuffleHalve;
  float bn_momentum = 0.1f;
  Head head = Head::None;
  int64_t num_classes = 1000;
  Bias head_bias = Bias::With;  // SPOS's own head has no biases
  float dropout = 0.2f;
  uint64_t seed = 0;  // weight init stream
};

class Backbone : public Module {
 public:
  explicit Backbone(const BackboneOptions& o);
  // C2..C5 (outputs of the last block of each stage) for the given path. A
  // standalone network accepts an empty path (its own) or exactly its arch.
  std::vector<rt::Tensor> forward_features(const rt::Tensor& x, const Arch& path);
  // Classification logits (N, classes); dropout draws from `rng` in Train mode.
  rt::Tensor forward_logits(const rt::Tensor& x, const Arch& path, Rng& rng);
  // Data parallelism: x holds samples [first, first + N) of a batch of
  // `global_n` split over ranks. Dropout then draws the masks of the whole batch
  // from `rng` and applies this part's rows, so every rank drops exactly what one
  // process with the whole batch drops and all ranks leave `rng` in the same
  // state. global_n 0: x is the whole batch (the default).
  void set_batch_part(int64_t first, int64_t global_n) { part_first_ = first, part_global_ = global_n; }
  // Debug dumps (`pretrain --dump-steps`): while set, each Train-mode
  // forward_logits stores its dropout mask (host, the head activation's shape,
  // 0 or 1/(1-p)) here; nullptr (the default) stores nothing.
  void record_dropout_mask(rt::Tensor* mask) { dropout_record_ = mask; }
  const SearchSpace& space() const { return *space_; }
  const BackboneOptions& options() const { return o_; }
  const std::vector<BlockSpec>& block_specs() const { return specs_; }
  std::vector<int64_t> feature_channels() const;  // widths of C2..C5

 private:
  const Arch& resolve(const Arch& path) const;
  BackboneOptions o_;
  const SearchSpace* space_;
  std::vector<BlockSpec> specs_;
  ConvBn* stem_ = nullptr;
  // blocks_[b][c]: unit of choice c for block b (nullptr where absent).
  std::vector<std::vector<ChoiceUnit*>> blocks_;
  ConvBn* head_conv_ = nullptr;
  Linear* fc_ = nullptr;
  int64_t part_first_ = 0, part_global_ = 0;
  rt::Tensor* dropout_record_ = nullptr;
};

}  // namespace detnas::nn
