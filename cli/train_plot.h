// The training plot next to a run's log: OUT/log.jsonl -> OUT/plot.svg with the
// loss (total and components, averaged over windows of `window` iterations)
// and the periodic AP/AP50 against iterations. Reads the whole log, so a
// resumed run's plot covers the run from its start.
#pragma once
#include <cstdint>
#include <string>

namespace detnas::cli {

void write_train_plot(const std::string& log_jsonl, const std::string& svg_path, const std::string& title,
                      int64_t window);

}  // namespace detnas::cli
