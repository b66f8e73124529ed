// Supernet and standalone backbones.
#include "nn/backbone.h"

#include <map>

#include "runtime/ops_elementwise.h"
#include "runtime/ops_shape.h"

namespace detnas::nn {

namespace {
// A module that only groups children under a name ("stage1", "stage1.0").
class Group : public Module {
 public:
  template <class M>
  M* add(const std::string& name, std::unique_ptr<M> m) {
    return register_module(name, std::move(m));
  }
};
}  // namespace

Backbone::Backbone(const BackboneOptions& o) : o_(o), space_(&space_by_name(o.space)) {
  specs_ = blocks(*space_);
  if (o.kind == NetKind::Standalone) validate_arch(*space_, o.arch);
  Rng rng(o.seed ^ 0x1a17b0a7ULL);
  ConvOptions stem;
  stem.in = 3;
  stem.out = space_->stem;
  stem.kernel = 3;
  stem.stride = 2;
  stem.padding = 1;
  stem.bias = Bias::With;
  stem.init = ConvInit::FixedStd;
  stem.init_std = 0.01f;
  stem_ = register_module("stem", std::make_unique<ConvBn>(stem, Act::Relu, rng, o.bn_momentum));
  blocks_.assign(specs_.size(), std::vector<ChoiceUnit*>(kNumChoices, nullptr));
  std::vector<Group*> stages;
  for (int s = 0; s < kNumStages; ++s)
    stages.push_back(register_module("stage" + std::to_string(s + 1), std::make_unique<Group>()));
  for (const BlockSpec& b : specs_) {
    Group* g = stages[size_t(b.stage)]->add(std::to_string(b.index_in_stage), std::make_unique<Group>());
    for (int c = 0; c < kNumChoices; ++c) {
      if (o.kind == NetKind::Standalone && o.arch[size_t(b.index)] != c) continue;
      blocks_[size_t(b.index)][size_t(c)] =
          g->add("choice" + std::to_string(c), std::make_unique<ChoiceUnit>(b, c, o.split, rng, o.bn_momentum));
    }
  }
  if (o.head == Head::Classification) {
    ConvOptions hc;
    hc.in = space_->stage_widths.back();
    hc.out = space_->last_conv;
    hc.kernel = 1;
    hc.padding = 0;
    hc.bias = o.head_bias;
    Group* h = register_module("head", std::make_unique<Group>());
    head_conv_ = h->add("pre", std::make_unique<ConvBn>(hc, Act::Relu, rng, o.bn_momentum));
    fc_ = h->add("fc", std::make_unique<Linear>(space_->last_conv, o.num_classes, o.head_bias, rng));
  }
}

const Arch& Backbone::resolve(const Arch& path) const {
  if (o_.kind == NetKind::Standalone) {
    DETNAS_CHECK(path.empty() || path == o_.arch, "standalone network of arch ", format_arch(o_.arch),
                 " cannot run path ", format_arch(path));
    return o_.arch;
  }
  validate_arch(*space_, path);
  return path;
}

std::vector<rt::Tensor> Backbone::forward_features(const rt::Tensor& x, const Arch& path_in) {
  const Arch& path = resolve(path_in);
  DETNAS_CHECK(x.dim() == 4 && x.size(1) == 3, "backbone: expected input (N, 3, H, W), got ", rt::shape_str(x.shape()));
  // The one place a batch reaches the network's device (a no-op when it is there already).
  rt::Tensor y = stem_->forward(x.to(device()));
  std::vector<rt::Tensor> feats;
  for (const BlockSpec& b : specs_) {
    y = blocks_[size_t(b.index)][size_t(path[size_t(b.index)])]->forward(y);
    if (b.index_in_stage == space_->stage_blocks[size_t(b.stage)] - 1) feats.push_back(y);
  }
  return feats;
}

rt::Tensor Backbone::forward_logits(const rt::Tensor& x, const Arch& path, Rng& rng) {
  DETNAS_CHECK(head_conv_ != nullptr, "backbone: built without a classification head");
  rt::Tensor c5 = forward_features(x, path).back();
  rt::Tensor h = head_conv_->forward(c5);
  if (mode() == Mode::Train && o_.dropout > 0) {
    // ops::dropout draws one uniform per element in order: skip the draws of the
    // rows before and after this part of the batch (set_batch_part).
    const int64_t n = h.size(0), row = n > 0 ? h.numel() / n : 0;
    const int64_t before = part_global_ > 0 ? part_first_ * row : 0;
    const int64_t after = part_global_ > 0 ? (part_global_ - part_first_ - n) * row : 0;
    DETNAS_CHECK(before >= 0 && after >= 0, "backbone: batch part [", part_first_, ", ", part_first_ + n,
                 ") is not inside a batch of ", part_global_);
    for (int64_t i = 0; i < before; ++i) rng.uniform();
    h = rt::ops::dropout(h, o_.dropout, rng, dropout_record_);
    for (int64_t i = 0; i < after; ++i) rng.uniform();
  }
  rt::Tensor pooled = rt::ops::global_avg_pool(h);
  return fc_->forward(pooled.reshape({pooled.size(0), pooled.size(1)}));
}

std::vector<int64_t> Backbone::feature_channels() const { return space_->stage_widths; }

}  // namespace detnas::nn
