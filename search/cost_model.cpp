// Analytic MACs / parameter counts of DetNAS architectures; conventions are in
// cost_model.h. Each block is summed layer by layer in the order of DETNAS.md's
// block description so the code can be checked against it line by line.
#include "search/cost_model.h"

#include "core/error.h"

namespace detnas::search {

namespace {

constexpr int64_t kImageChannels = 3;
constexpr int kStemKernel = 3;

enum class Bias { No, Yes };

// A conv producing an ho x wo map; groups == cin for depthwise.
Cost conv(int64_t cin, int64_t cout, int k, int64_t groups, int64_t ho, int64_t wo, Bias bias) {
  const int64_t w = cout * (cin / groups) * k * k;
  return {ho * wo * w, w + (bias == Bias::Yes ? cout : 0)};
}
Cost dw(int64_t c, int k, int64_t ho, int64_t wo) { return conv(c, c, k, c, ho, wo, Bias::No); }
Cost pw(int64_t cin, int64_t cout, int64_t h, int64_t w) { return conv(cin, cout, 1, 1, h, w, Bias::No); }
Cost bn(int64_t c) { return {0, 2 * c}; }
Cost linear(int64_t in, int64_t out, Bias bias) { return {in * out, in * out + (bias == Bias::Yes ? out : 0)}; }

}  // namespace

int64_t conv_out_size(int64_t in, int k, int stride) {
  DETNAS_CHECK(in >= 1 && k >= 1 && stride >= 1, "conv_out_size: bad input size ", in, ", kernel ", k, " or stride ",
               stride);
  return (in + 2 * (k / 2) - k) / stride + 1;
}

Cost stem_cost(const nn::SearchSpace& space, int64_t height, int64_t width) {
  const int64_t ho = conv_out_size(height, kStemKernel, 2), wo = conv_out_size(width, kStemKernel, 2);
  return conv(kImageChannels, space.stem, kStemKernel, 1, ho, wo, Bias::Yes) + bn(space.stem);
}

Cost block_cost(const nn::BlockSpec& b, int choice, int64_t in_h, int64_t in_w) {
  const int k = nn::choice_kernel(choice);
  // Every branch downsamples with a pad-k/2 depthwise conv, so the output size is
  // the same for k = 3, 5, 7.
  const int64_t ho = conv_out_size(in_h, k, b.stride), wo = conv_out_size(in_w, k, b.stride);
  const int64_t mid = b.mid_channels;
  Cost c;
  if (b.stride == 2) {
    // projection branch: DW kxk s2, BN, PW in->in, BN, ReLU
    c += dw(b.proj_channels, k, ho, wo) + bn(b.proj_channels);
    c += pw(b.proj_channels, b.proj_channels, ho, wo) + bn(b.proj_channels);
  }
  if (nn::choice_kind(choice) == nn::BlockKind::Shuffle) {
    // PW Cin->mid (at the input size), BN, ReLU; DW kxk stride s, BN; PW mid->Cout, BN; ReLU
    c += pw(b.main_in, mid, in_h, in_w) + bn(mid);
    c += dw(mid, k, ho, wo) + bn(mid);
    c += pw(mid, b.main_out, ho, wo) + bn(b.main_out);
  } else {
    // DW3x3 stride s, BN, PW Cin->mid, BN, ReLU; DW3x3, BN, PW mid->mid, BN, ReLU;
    // DW3x3, BN, PW mid->Cout, BN; ReLU
    c += dw(b.main_in, 3, ho, wo) + bn(b.main_in);
    c += pw(b.main_in, mid, ho, wo) + bn(mid);
    c += dw(mid, 3, ho, wo) + bn(mid);
    c += pw(mid, mid, ho, wo) + bn(mid);
    c += dw(mid, 3, ho, wo) + bn(mid);
    c += pw(mid, b.main_out, ho, wo) + bn(b.main_out);
  }
  return c;
}

Cost head_cost(const nn::SearchSpace& space, int64_t h, int64_t w, int64_t num_classes, HeadBias bias) {
  DETNAS_CHECK(num_classes >= 1, "head_cost: num_classes must be >= 1, got ", num_classes);
  const Bias b = bias == HeadBias::With ? Bias::Yes : Bias::No;
  const int64_t c4 = space.stage_widths.back();
  // PW C4->last (+bias), BN, ReLU, dropout, global average pool, linear -> classes
  return conv(c4, space.last_conv, 1, 1, h, w, b) + bn(space.last_conv) + linear(space.last_conv, num_classes, b);
}

ArchCost arch_cost(const nn::SearchSpace& space, const nn::Arch& arch, const CostOptions& opts) {
  nn::validate_arch(space, arch);
  DETNAS_CHECK(opts.height >= 1 && opts.width >= 1 && opts.batch >= 1, "cost model: input must be positive, got ",
               opts.batch, "x3x", opts.height, "x", opts.width);
  const std::vector<nn::BlockSpec> specs = nn::blocks(space);

  ArchCost r;
  r.stem = stem_cost(space, opts.height, opts.width);
  int64_t h = conv_out_size(opts.height, kStemKernel, 2), w = conv_out_size(opts.width, kStemKernel, 2);
  r.stages.resize(nn::kNumStages);
  for (int s = 0; s < nn::kNumStages; ++s) r.stages[s].stage = s;
  for (const auto& b : specs) {
    const int choice = arch[size_t(b.index)];
    Cost c = block_cost(b, choice, h, w);
    c.macs *= opts.batch;
    r.blocks.push_back(c);
    h = conv_out_size(h, nn::choice_kernel(choice), b.stride);
    w = conv_out_size(w, nn::choice_kernel(choice), b.stride);
    StageCost& st = r.stages[size_t(b.stage)];
    st.cost += c;
    st.channels = b.out_channels;
    st.height = h;
    st.width = w;
  }
  r.stem.macs *= opts.batch;
  r.head = head_cost(space, h, w, opts.num_classes, opts.head_bias);
  r.head.macs *= opts.batch;
  r.backbone = r.stem;
  for (const auto& st : r.stages) r.backbone += st.cost;
  r.with_head = r.backbone + r.head;
  return r;
}

int64_t flops_at(const nn::SearchSpace& space, const nn::Arch& arch, int64_t height, int64_t width) {
  CostOptions o;
  o.height = height;
  o.width = width;
  return arch_cost(space, arch, o).backbone.macs;
}

int64_t backbone_flops(const nn::SearchSpace& space, const nn::Arch& arch) { return flops_at(space, arch, 224, 224); }

}  // namespace detnas::search
