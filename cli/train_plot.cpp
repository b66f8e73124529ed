// Training plot from log.jsonl (cli/train_plot.h).
#include "cli/train_plot.h"

#include <simdjson.h>

#include <cmath>
#include <map>
#include <vector>

#include "cli/svg_plot.h"
#include "core/error.h"
#include "runtime/fs.h"

namespace detnas::cli {

void write_train_plot(const std::string& log_jsonl, const std::string& svg_path, const std::string& title,
                      int64_t window) {
  const std::string text = read_file(log_jsonl);
  std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> sums;  // loss name -> (iters, values)
  std::vector<std::string> order;
  std::vector<double> ap_x, ap_y, ap50_y;
  simdjson::dom::parser parser;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    simdjson::dom::element rec;
    if (line.empty() || parser.parse(line).get(rec)) continue;
    simdjson::dom::object obj;
    if (rec.get(obj)) continue;
    double iter = 0;
    if (obj["iter"].get(iter)) {
      int64_t it = 0;
      if (obj["iter"].get(it)) continue;
      iter = double(it);
    }
    double ap = 0;
    if (!obj["ap"].get(ap)) {
      double ap50 = 0;
      if (obj["ap50"].get(ap50)) ap50 = NAN;
      ap_x.push_back(iter);
      ap_y.push_back(ap);
      ap50_y.push_back(ap50);
      continue;
    }
    for (auto [key, value] : obj) {
      const std::string k(key);
      double v = 0;
      if (k.rfind("loss", 0) != 0 || value.get(v)) continue;
      auto& s = sums[k];
      if (s.first.empty()) order.push_back(k);
      s.first.push_back(iter);
      s.second.push_back(v);
    }
  }
  static const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"};
  Chart loss{
      title + ": training loss (mean of " + std::to_string(window) + " iterations)", "iteration", "loss", {}, {}};
  for (size_t i = 0; i < order.size(); ++i) {
    const auto& [xs, ys] = sums[order[i]];
    Series se;
    se.label = order[i];
    se.color = kColors[i % 6];
    for (size_t a = 0; a < xs.size(); a += size_t(std::max<int64_t>(1, window))) {
      const size_t b = std::min(xs.size(), a + size_t(std::max<int64_t>(1, window)));
      double m = 0;
      for (size_t k = a; k < b; ++k) m += ys[k];
      se.x.push_back(xs[b - 1]);
      se.y.push_back(m / double(b - a));
    }
    loss.series.push_back(std::move(se));
  }
  Chart apc{title + ": COCO AP on the evaluation set", "iteration", "AP", {}, {}};
  Series s1;
  s1.label = "AP";
  s1.x = ap_x;
  s1.y = ap_y;
  s1.points = true;
  Series s2 = s1;
  s2.label = "AP50";
  s2.y = ap50_y;
  s2.color = "#ff7f0e";
  apc.series = {s1, s2};
  write_file_atomic(svg_path, render_svg({loss, apc}));
}

}  // namespace detnas::cli
