// The DetNAS search spaces (300M, 1.3G, 3.8G of DETNAS.md, plus the CPU-sized
// "tiny"), architectures (one choice index per block) and the per-block
// description every consumer shares: the supernet / standalone builders, the
// cost model and the searcher all derive channels and strides from blocks().
// This file holds definitions only: no modules, no tensors, no FLOPs (see
// search/cost_model.h).
//
// Structure of every space: stem conv3x3 stride 2 (with bias) + BN + ReLU, no
// max-pool; four stages, the first block of each has stride 2 (stage output
// strides 4, 8, 16, 32); choices 0,1,2 = ShuffleNetV2 unit with depthwise kernel
// 3,5,7, choice 3 = Xception-like unit (three DW3x3 + PW pairs); mid channels =
// stage width / 2; classification head PW C4->last_conv.
//
// The "tiny" space (CPU default runs): stem 16, blocks 2,2,4,2 (10 blocks),
// widths 32,64,128,256, last conv 512. Backbone multiply-adds at 1x3x224x224
// (head excluded): all-k3 37.09M, all-k5 42.00M, all-k7 49.38M, all-Xception
// 39.32M; backbone params 0.138M..0.204M. At 64x64 input: 3.03M..4.03M MACs.
// (Xception is cheaper than k7 here, unlike the 300M space, because with mid =
// 16 channels its extra pointwise convs cost less than the 7x7 taps.)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace detnas::nn {

constexpr int kNumStages = 4;
constexpr int kNumChoices = 4;

// What a choice index means. 0..2: ShuffleNetV2 unit, 3: Xception-like unit.
enum class BlockKind { Shuffle, Xception };
BlockKind choice_kind(int choice);    // throws for choice outside 0..3
int choice_kernel(int choice);        // 3, 5, 7, 3 (Xception's DWs are 3x3)
std::string choice_name(int choice);  // "shuffle_k3", ..., "xception"

struct SearchSpace {
  std::string name;
  int64_t stem = 0;                   // stem conv output channels
  std::vector<int64_t> stage_blocks;  // blocks per stage (kNumStages entries)
  std::vector<int64_t> stage_widths;  // output channels per stage
  int64_t last_conv = 0;              // classification head PW C4 -> last_conv
  int num_choices = kNumChoices;

  int64_t total_blocks() const;
  // Throws if the space is malformed (wrong stage count, odd widths, a stage not
  // wider than its input, non-positive sizes).
  void validate() const;
  std::string describe() const;  // "300M: stem 16, blocks 4,4,8,4, widths 64,160,320,640, last 1024"
};

// The built-in spaces, looked up by name ("300M", "1.3G", "3.8G", "tiny").
const SearchSpace& space_by_name(const std::string& name);  // unknown name: error listing the valid ones
std::vector<std::string> space_names();

// One block of the backbone, in network order.
//   stride 2 (first block of a stage): input `in` channels feed both the
//     projection branch (DW k s2 + BN, PW in->in + BN + ReLU) and the main branch
//     in -> out-in; main_in = in, main_out = out - in, proj_channels = in.
//   stride 1: in == out; half the channels pass, the main branch maps
//     out/2 -> out/2; main_in = main_out = out/2, proj_channels = 0.
struct BlockSpec {
  int index = 0;  // position in the architecture list (0-based)
  int stage = 0;  // 0..3 (stage outputs C2..C5)
  int index_in_stage = 0;
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t mid_channels = 0;   // stage width / 2
  int64_t main_in = 0;        // channels entering the main branch
  int64_t main_out = 0;       // channels leaving the main branch
  int64_t proj_channels = 0;  // projection branch width (stride 2 only), else 0
  int stride = 1;
  int kernel(int choice) const { return choice_kernel(choice); }
};
std::vector<BlockSpec> blocks(const SearchSpace& space);

// An architecture: one choice (0..num_choices-1) per block, in network order.
using Arch = std::vector<int>;

// Parses "2,1,2,0,..." or a JSON list "[2, 1, 2, 0, ...]" (whitespace allowed).
// Errors name the 0-based position and the offending text. Does not check the
// length or the range against a space: see validate_arch.
Arch parse_arch(const std::string& text);
// Reads a file holding an architecture in either form (e.g. a JSON list).
Arch read_arch_file(const std::string& path);
// Checks length == total blocks and every choice in 0..num_choices-1; errors name
// the space, the position (with its stage and block) and the value.
void validate_arch(const SearchSpace& space, const Arch& arch);
std::string format_arch(const Arch& arch);       // "2,1,2,0"
std::string format_arch_json(const Arch& arch);  // "[2, 1, 2, 0]"
Arch uniform_arch(const SearchSpace& space, int choice);

}  // namespace detnas::nn
