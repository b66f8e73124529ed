// Latency tables (issue: hardware-aware search): the measured inference time of
// every choice at every block position of a space, at the shapes that position
// sees for one input size, plus the fixed parts (stem; FPN and heads of the
// detector), on one machine and thread count. The predicted latency of an
// architecture is the sum of its entries and the fixed parts. The search uses it
// as a budget next to the FLOPs budget (search/evolution.h).
//
// File (JSON, "format": "detnas-latency-1"): space, detector, input [H, W],
// batch, device, threads, machine, build, date, protocol, "fixed": {"stem": ms,
// "detector": ms}, "blocks": [[ms of choice 0..3] per block position].
// Measuring: search/latency_measure.h. Not here: timing, the CLI.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "nn/space.h"

namespace detnas::search {

struct LatencyTable {
  std::string space, detector, device = "cpu", machine, build, date, protocol;
  int64_t height = 0, width = 0, batch = 1, threads = 0;
  std::map<std::string, double> fixed;      // "stem", "detector" (ms)
  std::vector<std::vector<double>> blocks;  // [block][choice] (ms)

  // Sum of the fixed parts and of the arch's entries (ms). Checks the arch.
  double predict_ms(const nn::Arch& arch) const;
  double fixed_ms() const;
  std::string to_json() const;
  // Parses and checks a table (format, every field, finite non-negative times, one
  // row per block of its space with one entry per choice); errors name `where` and
  // the field.
  static LatencyTable from_json(const std::string& text, const std::string& where);
  // Throws unless the table is for `space` (name and block count), naming `where`.
  void check_space(const nn::SearchSpace& space, const std::string& where) const;
};

// Reads and checks a table file; with `space` non-empty, also that it is for that space.
LatencyTable read_latency_table(const std::string& path, const std::string& space = "");
void write_latency_table(const std::string& path, const LatencyTable& t);

// The soft-constraint objective of hardware-aware NAS (MnasNet):
// fitness = ap * (latency / target) ^ w, w < 0 (default -0.07).
double latency_objective(double ap, double latency_ms, double target_ms, double w = -0.07);

}  // namespace detnas::search
