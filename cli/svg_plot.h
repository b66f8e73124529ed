// Minimal SVG charts for run folders: line and scatter series on linear axes
// with ticks, labels, a legend and optional vertical reference lines; several
// charts stacked in one file. Used for the training plot (loss and AP against
// iterations) and the search plot (AP against FLOPs coloured by generation,
// budget line, Pareto front). Written atomically by the caller.
// Not here: reading logs (the commands keep their own series).
#pragma once
#include <string>
#include <vector>

namespace detnas::cli {

struct Series {
  std::string label;         // legend entry ("" = none)
  std::vector<double> x, y;  // non-finite points are skipped
  std::string color = "#1f77b4";
  std::vector<std::string> point_colors;  // per point (scatter), overrides color when non-empty
  bool line = true;                       // polyline through the points in order
  bool points = false;                    // a dot per point
};

struct VLine {
  double x = 0;
  std::string label, color = "#d62728";
};

struct Chart {
  std::string title, xlabel, ylabel;
  std::vector<Series> series;
  std::vector<VLine> vlines;
};

// Charts stacked vertically, each 720x300 px.
std::string render_svg(const std::vector<Chart>& charts);

// A colour on a blue -> red ramp for t in [0, 1] (e.g. generation / last generation).
std::string ramp_color(double t);

// Points of the upper-left Pareto front (lower x and higher y both better), by increasing x.
std::vector<size_t> pareto_front(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace detnas::cli
