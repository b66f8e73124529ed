// Learning-rate schedules of DETNAS.md: linear decay to 0 (SPOS classification
// pre-training) and step decay with linear warm-up (detection fine-tuning,
// maskrcnn-benchmark's WarmupMultiStepLR). Pure functions of the iteration.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace detnas::nn {

enum class ScheduleKind { Constant, Linear, Step };

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::Constant;
  double base_lr = 0.1;
  int64_t total_iters = 1;          // Linear: lr reaches 0 at total_iters
  std::vector<int64_t> milestones;  // Step: lr *= gamma at each milestone
  double gamma = 0.1;
  int64_t warmup_iters = 0;  // linear warm-up from warmup_factor * lr
  double warmup_factor = 1.0 / 3.0;

  // LR used for iteration `it` (0-based).
  double at(int64_t it) const;
  std::string describe() const;
};

}  // namespace detnas::nn
