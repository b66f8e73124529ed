// Search spaces, architecture parsing/validation and the analytic cost model.
// The reference numbers are typed in from DETNAS.md (the authors' released code),
// an independent source, not from this code's output.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

#include "core/error.h"
#include "nn/space.h"
#include "search/cost_model.h"
#include "tests/test_util.h"

using namespace detnas;
using nn::Arch;

namespace {

const char* kArch1p3G = "0,0,3,1,2,1,0,2,0,3,1,2,3,3,2,0,2,1,1,3,2,0,2,2,2,1,3,1,0,3,3,3,1,3,3,3,3,3,3,3";

// DETNAS.md prints MACs with one decimal (in M) and params with two: the
// reproduction must round to the printed figure.
bool rounds_to(int64_t v, double printed, int decimals) {
  const double scale = std::pow(10.0, decimals);
  return std::llround(double(v) * 1e-6 * scale) == std::llround(printed * scale);
}

struct Released {
  const char* name;
  const char* space;
  const char* arch;
  double bb_macs, bb_params, head_macs, head_params;
};

}  // namespace

TEST_CASE("cost: released DetNAS architectures reproduce the DETNAS.md table") {
  const Released table[] = {
      {"COCO_FPN_300M", "300M", "2,1,2,0,2,1,1,2,3,3,1,3,0,0,3,1,3,1,3,2", 288.1, 1.85, 321.2, 3.53},
      {"COCO_RetinaNet_300M", "300M", "2,3,1,1,3,2,1,3,3,1,1,1,3,3,2,0,3,3,3,3", 291.2, 2.04, 324.3, 3.73},
      {"VOC_FPN_300M", "300M", "2,1,0,3,1,3,0,3,2,0,1,1,3,3,3,3,3,3,3,1", 316.4, 1.97, 349.5, 3.65},
      {"VOC_RetinaNet_300M", "300M", "1,3,0,0,2,3,3,3,2,3,3,3,3,2,2,0,2,3,1,1", 327.5, 1.80, 360.6, 3.48},
      {"COCO_FPN_1.3G", "1.3G", kArch1p3G, 1269.2, 8.42, 1318.4, 10.43},
      {"COCO_FPN_3.8G", "3.8G", kArch1p3G, 3937.8, 26.72, 4085.9, 31.44},
  };
  for (const auto& r : table) {
    CAPTURE(r.name);
    const auto& sp = nn::space_by_name(r.space);
    const search::ArchCost c = search::arch_cost(sp, nn::parse_arch(r.arch));
    CAPTURE(c.backbone.macs);
    CAPTURE(c.backbone.params);
    CAPTURE(c.with_head.macs);
    CAPTURE(c.with_head.params);
    CHECK(rounds_to(c.backbone.macs, r.bb_macs, 1));
    CHECK(rounds_to(c.backbone.params, r.bb_params, 2));
    CHECK(rounds_to(c.with_head.macs, r.head_macs, 1));
    CHECK(rounds_to(c.with_head.params, r.head_params, 2));
    CHECK(std::abs(c.backbone.mega_macs() - r.bb_macs) <= 0.1);
    CHECK(std::abs(c.with_head.mega_params() - r.head_params) <= 0.1);
    CHECK(search::backbone_flops(sp, nn::parse_arch(r.arch)) == c.backbone.macs);
  }
}

TEST_CASE("cost: SPOS ImageNet architecture (head without biases) is 323M FLOPs, 3.5M params") {
  const auto& sp = nn::space_by_name("300M");
  search::CostOptions o;
  o.head_bias = search::HeadBias::Without;
  const auto c = search::arch_cost(sp, nn::parse_arch("2,1,0,1,2,0,2,0,2,0,2,3,0,0,0,0,3,2,3,3"), o);
  CAPTURE(c.with_head.macs);
  CAPTURE(c.with_head.params);
  CHECK(rounds_to(c.with_head.macs, 323, 0));
  // SPOS prints "3.5M": with BN counted (the DetNAS convention above) the count is
  // 3.558M, within the 0.1M the table is reproduced to (without BN it is 3.529M,
  // so the SPOS figure either leaves BN out or truncates).
  CHECK(std::abs(c.with_head.mega_params() - 3.5) <= 0.1);
  // dropping the biases removes exactly last_conv + classes parameters
  const auto cb = search::arch_cost(sp, nn::parse_arch("2,1,0,1,2,0,2,0,2,0,2,3,0,0,0,0,3,2,3,3"));
  CHECK(cb.with_head.params - c.with_head.params == 1024 + 1000);
  CHECK(cb.with_head.macs == c.with_head.macs);
}

TEST_CASE("cost: uniform architectures in the 300M space (backbone only)") {
  const auto& sp = nn::space_by_name("300M");
  const double ref[4] = {262.7, 280.5, 307.2, 325.7};  // all-k3, all-k5, all-k7, all-Xception
  for (int ch = 0; ch < 4; ++ch) {
    CAPTURE(ch);
    const int64_t m = search::backbone_flops(sp, nn::uniform_arch(sp, ch));
    CAPTURE(m);
    CHECK(rounds_to(m, ref[ch], 1));
  }
}

TEST_CASE("cost: hand-counted layers (stem, one block of the tiny space)") {
  const auto& sp = nn::space_by_name("300M");
  search::Cost stem = search::stem_cost(sp, 224, 224);
  CHECK(stem.macs == 112 * 112 * 16 * 27);
  CHECK(stem.params == 27 * 16 + 16 + 2 * 16);  // weight + bias + BN

  const auto& tiny = nn::space_by_name("tiny");
  const auto bs = nn::blocks(tiny);
  // stage 1 block 0, k3, input 16x112x112 -> 32x56x56: proj DW3 + PW 16->16, main
  // PW 16->16 at 112x112, DW3 s2, PW 16->16.
  const int64_t o = 56 * 56;
  search::Cost b = search::block_cost(bs[0], 0, 112, 112);
  CHECK(b.macs == o * 16 * 9 + o * 16 * 16 + 112 * 112 * 16 * 16 + o * 16 * 9 + o * 16 * 16);
  CHECK(b.params == (16 * 9 + 32) + (16 * 16 + 32) + (16 * 16 + 32) + (16 * 9 + 32) + (16 * 16 + 32));
  // stage 1 block 1, Xception, 32x56x56: main 16 -> 16 with mid 16.
  b = search::block_cost(bs[1], 3, 56, 56);
  CHECK(b.macs == 3 * (o * 16 * 9 + o * 16 * 16));
  CHECK(b.params == 3 * (16 * 9 + 32 + 16 * 16 + 32));
}

TEST_CASE("cost: tiny space totals equal the per-block sums") {
  const auto& sp = nn::space_by_name("tiny");
  CHECK(sp.total_blocks() == 10);
  const Arch arch = nn::parse_arch("0,3,1,2,3,0,2,1,3,2");
  const auto c = search::arch_cost(sp, arch);
  const auto bs = nn::blocks(sp);
  REQUIRE(c.blocks.size() == bs.size());
  search::Cost sum = search::stem_cost(sp, 224, 224);
  int64_t h = 112;
  search::Cost stage_sum[4];
  for (const auto& b : bs) {
    search::Cost k = search::block_cost(b, arch[size_t(b.index)], h, h);
    CHECK(k.macs == c.blocks[size_t(b.index)].macs);
    CHECK(k.params == c.blocks[size_t(b.index)].params);
    sum += k;
    stage_sum[b.stage] += k;
    h = (h + b.stride - 1) / b.stride;
  }
  CHECK(c.backbone.macs == sum.macs);
  CHECK(c.backbone.params == sum.params);
  for (int s = 0; s < 4; ++s) {
    CHECK(c.stages[size_t(s)].cost.macs == stage_sum[s].macs);
    CHECK(c.stages[size_t(s)].cost.params == stage_sum[s].params);
    CHECK(c.stages[size_t(s)].channels == sp.stage_widths[size_t(s)]);
    CHECK(c.stages[size_t(s)].height == 224 / (4 << s));
  }
  search::Cost head = search::head_cost(sp, 7, 7, 1000, search::HeadBias::With);
  CHECK(head.macs == 7 * 7 * 256 * 512 + 512 * 1000);
  CHECK(head.params == 256 * 512 + 512 + 2 * 512 + 512 * 1000 + 1000);
  CHECK(c.with_head.macs == sum.macs + head.macs);
  CHECK(c.with_head.params == sum.params + head.params);
  // the figures documented in nn/space.h
  CHECK(rounds_to(search::backbone_flops(sp, nn::uniform_arch(sp, 0)), 37.09, 2));
  CHECK(rounds_to(search::backbone_flops(sp, nn::uniform_arch(sp, 2)), 49.38, 2));
  CHECK(rounds_to(search::backbone_flops(sp, nn::uniform_arch(sp, 3)), 39.32, 2));
}

TEST_CASE("cost: other input sizes, batch, classes") {
  const auto& sp = nn::space_by_name("300M");
  const Arch a = nn::parse_arch("2,1,2,0,2,1,1,2,3,3,1,3,0,0,3,1,3,1,3,2");
  search::CostOptions o;
  o.height = 800;
  o.width = 1333;
  const auto c = search::arch_cost(sp, a, o);
  // 1333 -> 667 -> 334 -> 167 -> 84 -> 42 (ceil halving), 800 -> 400 ... 25
  CHECK(c.stages[0].height == 200);
  CHECK(c.stages[0].width == 334);
  CHECK(c.stages[3].height == 25);
  CHECK(c.stages[3].width == 42);
  CHECK(search::flops_at(sp, a, 800, 1333) == c.backbone.macs);
  CHECK(c.backbone.params == search::arch_cost(sp, a).backbone.params);
  // 800x1333 is ~21x the pixels of 224x224; 1x1-dominated cost scales with pixels
  const double ratio = double(c.backbone.macs) / double(search::backbone_flops(sp, a));
  CHECK(ratio > 20.0);
  CHECK(ratio < 22.5);
  o = {};
  o.batch = 8;
  o.num_classes = 10;
  const auto c8 = search::arch_cost(sp, a, o);
  const auto c1 = search::arch_cost(sp, a);
  CHECK(c8.backbone.macs == 8 * c1.backbone.macs);
  CHECK(c8.backbone.params == c1.backbone.params);
  CHECK(c1.head.params - c8.head.params == 990 * 1024 + 990);
  o = {};
  o.height = 0;
  CHECK_THROWS_WITH_AS(search::arch_cost(sp, a, o), doctest::Contains("input must be positive"), Error);
}

TEST_CASE("cost: space lookup and block descriptions") {
  CHECK(nn::space_names() == std::vector<std::string>{"300M", "1.3G", "3.8G", "tiny"});
  CHECK_THROWS_WITH_AS(nn::space_by_name("600M"), doctest::Contains("unknown search space '600M'"), Error);
  CHECK_THROWS_WITH_AS(nn::space_by_name("600M"), doctest::Contains("300M, 1.3G, 3.8G, tiny"), Error);
  const auto& sp = nn::space_by_name("3.8G");
  CHECK(sp.total_blocks() == 40);
  const auto bs = nn::blocks(sp);
  REQUIRE(bs.size() == 40);
  CHECK(bs[0].stride == 2);
  CHECK(bs[0].in_channels == 72);
  CHECK(bs[0].main_out == 172 - 72);
  CHECK(bs[0].mid_channels == 86);
  CHECK(bs[1].stride == 1);
  CHECK(bs[1].main_in == 86);
  CHECK(bs[1].proj_channels == 0);
  CHECK(bs[8].stage == 1);
  CHECK(bs[8].index_in_stage == 0);
  CHECK(bs[8].in_channels == 172);
  CHECK(bs[39].stage == 3);
  CHECK(bs[39].index_in_stage == 7);
  CHECK(bs[0].kernel(2) == 7);
  CHECK(bs[0].kernel(3) == 3);
  CHECK(nn::choice_kind(3) == nn::BlockKind::Xception);
  CHECK_THROWS_AS(nn::choice_kernel(4), Error);
  nn::SearchSpace bad{"bad", 64, {1, 1, 1, 1}, {64, 128, 256, 512}, 1024};
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("stage 1 width 64 must exceed its input width 64"), Error);
  bad = {"odd", 16, {1, 1, 1, 1}, {33, 64, 128, 256}, 512};
  CHECK_THROWS_WITH_AS(nn::blocks(bad), doctest::Contains("width 33 is odd"), Error);
}

TEST_CASE("cost: architecture parsing, formatting and validation errors") {
  CHECK(nn::parse_arch("2,1,2,0") == Arch{2, 1, 2, 0});
  CHECK(nn::parse_arch(" [2, 1,\n 2 ,0] ") == Arch{2, 1, 2, 0});
  CHECK(nn::parse_arch("[]").empty());
  CHECK(nn::format_arch({2, 1, 2, 0}) == "2,1,2,0");
  CHECK(nn::format_arch_json({2, 1, 2, 0}) == "[2, 1, 2, 0]");
  CHECK(nn::parse_arch(nn::format_arch_json({3, 0})) == Arch{3, 0});
  CHECK_THROWS_WITH_AS(nn::parse_arch("2,1,x,0"), doctest::Contains("position 2: bad value 'x'"), Error);
  CHECK_THROWS_WITH_AS(nn::parse_arch("2,1,,0"), doctest::Contains("position 2 is empty"), Error);
  CHECK_THROWS_WITH_AS(nn::parse_arch("[2,1.5]"), doctest::Contains("position 1: bad value '1.5'"), Error);
  CHECK_THROWS_WITH_AS(nn::parse_arch("[2,1"), doctest::Contains("unbalanced brackets"), Error);
  CHECK_THROWS_WITH_AS(nn::parse_arch("   "), doctest::Contains("empty"), Error);
  CHECK_THROWS_WITH_AS(nn::parse_arch("1,99999999999"), doctest::Contains("bad value '99999999999'"), Error);

  const auto& sp = nn::space_by_name("300M");
  CHECK_THROWS_WITH_AS(nn::validate_arch(sp, Arch(19, 0)),
                       doctest::Contains("architecture has 19 choices but space 300M has 20 blocks"), Error);
  Arch a(20, 1);
  a[9] = 4;
  CHECK_THROWS_WITH_AS(nn::validate_arch(sp, a), doctest::Contains("position 9 (stage 3 block 1) has choice 4"), Error);
  a[9] = -1;
  CHECK_THROWS_WITH_AS(search::backbone_flops(sp, a), doctest::Contains("has choice -1"), Error);
  CHECK_NOTHROW(nn::validate_arch(sp, nn::uniform_arch(sp, 3)));

  // an architecture file holding a JSON list
  const std::string path = "/tmp/detnas_test_cost_arch.json";
  {
    std::ofstream f(path);
    f << "[2, 1, 2, 0, 2, 1, 1, 2, 3, 3, 1, 3, 0, 0, 3, 1, 3, 1, 3, 2]\n";
  }
  CHECK(nn::read_arch_file(path) == nn::parse_arch("2,1,2,0,2,1,1,2,3,3,1,3,0,0,3,1,3,1,3,2"));
  {
    std::ofstream f(path);
    f << "[2, 1, 7, q]";
  }
  CHECK_THROWS_WITH_AS(nn::read_arch_file(path), doctest::Contains("position 3: bad value 'q'"), Error);
  std::remove(path.c_str());
  CHECK_THROWS_WITH_AS(nn::read_arch_file(path), doctest::Contains("cannot open"), Error);
}
