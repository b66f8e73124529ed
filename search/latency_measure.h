// Measuring latency tables (search/latency.h) on this machine: each choice unit
// of each block position alone, the stem, and the detector's FPN and heads, in
// inference form (Eval mode with BN statistics recalibrated on the random input,
// no autograd), on inputs of the shapes that part sees for the table's input size; and an architecture's end-to-end
// inference latency (backbone + FPN + heads, the same parts) for validating the predictor. Protocol (as bench's
// harness): `warmup` untimed runs, then runs until both `min_repeats` runs and `min_seconds` have passed; the minimum
// of the run times (or the median): on a shared 2-vCPU machine whole stretches of tens of seconds run 20-30% slower,
// which the minimum of an entry's runs is the least exposed to. FPN Faster R-CNN's detector part is the FPN, the RPN
// head on every level and the box head on batch x post_nms_top_n_test RoI features (RoIAlign, proposal generation and
// NMS, which depend on the data, are not in the table). CPU only.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "detect/detector.h"
#include "search/latency.h"

namespace detnas::search {

struct LatencyMeasureOptions {
  std::string space = "tiny";
  det::DetectorConfig config;  // kind, num_classes, fpn_channels, head_depth, fc_dim, rpn_post_nms_test, ...
  int64_t height = 320, width = 320, batch = 1;
  int warmup = 2, min_repeats = 5;
  double min_seconds = 0.2;
  bool median = false;  // keep the median run instead of the fastest
  uint64_t seed = 1;
};

// Wall time (ms) of f under the protocol above: the fastest run, or the median.
double time_ms(const std::function<void()>& f, int warmup, int min_repeats, double min_seconds, bool median = false);

// The whole table (machine, date and threads filled in; the caller sets `build`). `progress` (may
// be empty) is called after each entry with (done, total).
LatencyTable measure_latency_table(const LatencyMeasureOptions& o,
                                   const std::function<void(int64_t, int64_t)>& progress = {});

// The fixed parts (stem + detector part) timed again as in the table: against the
// table's fixed_ms(), how fast the machine runs now compared with when the table
// was measured (`latency-table --validate` prints it beside each architecture).
double measure_fixed_ms(const LatencyMeasureOptions& o);

// End-to-end inference latency (ms) of `arch` with the same parts and protocol
// (a standalone network of that arch, random weights).
double measure_arch_latency(const LatencyMeasureOptions& o, const nn::Arch& arch);

}  // namespace detnas::search
