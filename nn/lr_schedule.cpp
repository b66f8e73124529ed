// LR schedule evaluation.
#include "nn/lr_schedule.h"

#include <sstream>

#include "core/error.h"

namespace detnas::nn {

double LrSchedule::at(int64_t it) const {
  DETNAS_CHECK(it >= 0, "lr schedule: negative iteration ", it);
  double lr = base_lr;
  if (kind == ScheduleKind::Linear) {
    DETNAS_CHECK(total_iters > 0, "lr schedule: total_iters must be positive");
    lr = base_lr * (1.0 - double(std::min(it, total_iters)) / double(total_iters));
  } else if (kind == ScheduleKind::Step) {
    for (int64_t m : milestones)
      if (it >= m) lr *= gamma;
  }
  if (it < warmup_iters) {
    // maskrcnn-benchmark: factor goes linearly from warmup_factor to 1.
    double alpha = double(it) / double(warmup_iters);
    lr *= warmup_factor * (1.0 - alpha) + alpha;
  }
  return lr;
}

std::string LrSchedule::describe() const {
  std::ostringstream os;
  os << (kind == ScheduleKind::Linear ? "linear"
         : kind == ScheduleKind::Step ? "step"
                                      : "constant")
     << " lr " << base_lr;
  if (kind == ScheduleKind::Linear) os << " -> 0 over " << total_iters;
  if (kind == ScheduleKind::Step) {
    os << " x" << gamma << " at";
    for (int64_t m : milestones) os << " " << m;
  }
  if (warmup_iters) os << ", warm-up " << warmup_iters << " from x" << warmup_factor;
  return os.str();
}

}  // namespace detnas::nn
