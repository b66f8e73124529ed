// LR schedules against values computed by hand from their definitions.
#include <doctest/doctest.h>

#include "nn/lr_schedule.h"

using namespace detnas::nn;

TEST_CASE("lr: linear decay to zero (SPOS)") {
  LrSchedule s;
  s.kind = ScheduleKind::Linear;
  s.base_lr = 0.5;
  s.total_iters = 300000;
  CHECK(s.at(0) == doctest::Approx(0.5));
  CHECK(s.at(150000) == doctest::Approx(0.25));
  CHECK(s.at(300000) == doctest::Approx(0.0));
  CHECK(s.at(400000) == doctest::Approx(0.0));
}

TEST_CASE("lr: warm-up then steps (detection fine-tuning)") {
  LrSchedule s;
  s.kind = ScheduleKind::Step;
  s.base_lr = 0.02;
  s.milestones = {60000, 80000};
  s.warmup_iters = 500;
  CHECK(s.at(0) == doctest::Approx(0.02 / 3));
  CHECK(s.at(250) == doctest::Approx(0.02 * (1.0 / 3 * 0.5 + 0.5)));
  CHECK(s.at(500) == doctest::Approx(0.02));
  CHECK(s.at(59999) == doctest::Approx(0.02));
  CHECK(s.at(60000) == doctest::Approx(0.002));
  CHECK(s.at(80000) == doctest::Approx(0.0002));
  CHECK_THROWS(s.at(-1));
}
