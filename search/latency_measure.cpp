// Latency measurement: see search/latency_measure.h.
#include "search/latency_measure.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <memory>

#include "core/error.h"
#include "detect/faster_rcnn.h"
#include "detect/retinanet.h"
#include "nn/blocks.h"
#include "runtime/autograd.h"
#include "runtime/threads.h"

namespace detnas::search {
namespace {

using rt::Tensor;
using Clock = std::chrono::steady_clock;

int64_t half_up(int64_t v) { return (v + 1) / 2; }  // conv k3 (or k5, k7) pad k/2 stride 2

Tensor random_input(const rt::Shape& s, Rng& rng) {
  std::vector<float> v(size_t(rt::shape_numel(s)));
  for (float& x : v) x = float(rng.uniform() * 2.0 - 1.0);
  return Tensor::from_vector(s, v);
}

nn::BackboneOptions standalone(const std::string& space, const nn::Arch& arch, uint64_t seed) {
  nn::BackboneOptions b;
  b.space = space;
  b.kind = nn::NetKind::Standalone;
  b.arch = arch;
  b.seed = seed;
  return b;
}

// The detector's FPN and heads on features `c` (C2..C5), inference form.
std::function<void()> detector_part(det::Detector& net, const std::vector<Tensor>& c, Rng& rng) {
  if (auto* r = dynamic_cast<det::RetinaNet*>(&net))
    return [r, c] {
      for (const Tensor& p : r->fpn().forward({c[1], c[2], c[3]})) r->head().forward(p);
    };
  auto& f = dynamic_cast<det::FasterRcnn&>(net);
  const int64_t rois = c[0].size(0) * f.options().rpn.post_nms_top_n_test, P = f.options().roi.pooler.pooled_h;
  const Tensor roi_features = random_input({rois, f.options().fpn_channels, P, P}, rng);
  return [&f, c, roi_features] {
    for (const Tensor& p : f.fpn().forward(c)) f.rpn_head().forward(p);
    f.box_head().forward(roi_features);
  };
}

// Eval mode with BN statistics estimated on one forward (`run`): with the random
// weights' own statistics left at mean 0 / var 1, activations shrink layer after
// layer into denormal floats in some architectures and not in others, and the
// timings then measure the FPU's denormal handling instead of the network.
void calibrate(nn::Module& m, const std::function<void()>& run) {
  m.set_mode(nn::Mode::Recalibrate);
  nn::reset_bn_stats(m);
  run();
  m.set_mode(nn::Mode::Eval);
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace

double time_ms(const std::function<void()>& f, int warmup, int min_repeats, double min_seconds, bool median) {
  for (int i = 0; i < warmup; ++i) f();
  std::vector<double> ms;
  const auto start = Clock::now();
  while (int(ms.size()) < min_repeats || std::chrono::duration<double>(Clock::now() - start).count() < min_seconds) {
    const auto t0 = Clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return median ? ms[ms.size() / 2] : ms[0];
}

namespace {
// The fixed parts at the table's shapes: the stem on the input images, the
// detector part on features of the backbone's output shapes (random values).
struct FixedParts {
  std::unique_ptr<nn::ConvBn> stem;
  Tensor images;
  std::unique_ptr<det::Detector> net;
  std::function<void()> detector;
};

FixedParts make_fixed_parts(const LatencyMeasureOptions& o, const nn::SearchSpace& space, Rng& rng) {
  FixedParts f;
  nn::ConvOptions so;
  so.in = 3;
  so.out = space.stem;
  so.kernel = 3;
  so.stride = 2;
  so.padding = 1;
  so.bias = nn::Bias::With;
  f.stem = std::make_unique<nn::ConvBn>(so, nn::Act::Relu, rng);
  f.images = random_input({o.batch, 3, o.height, o.width}, rng);
  calibrate(*f.stem, [&] { f.stem->forward(f.images); });
  int64_t h = half_up(o.height), w = half_up(o.width);
  const std::vector<nn::BlockSpec> specs = nn::blocks(space);
  std::vector<Tensor> stage_out(nn::kNumStages);
  for (const nn::BlockSpec& b : specs) {
    if (b.stride == 2) h = half_up(h), w = half_up(w);
    if (b.index_in_stage == space.stage_blocks[size_t(b.stage)] - 1)
      stage_out[size_t(b.stage)] = random_input({o.batch, b.out_channels, h, w}, rng);
  }
  f.net = det::make_detector(standalone(o.space, nn::Arch(specs.size(), 0), o.seed), o.config);
  f.detector = detector_part(*f.net, stage_out, rng);
  calibrate(*f.net, f.detector);
  return f;
}
}  // namespace

LatencyTable measure_latency_table(const LatencyMeasureOptions& o,
                                   const std::function<void(int64_t, int64_t)>& progress) {
  DETNAS_CHECK(o.height > 0 && o.height % 32 == 0 && o.width > 0 && o.width % 32 == 0 && o.batch > 0,
               "latency table: input ", o.height, "x", o.width, " batch ", o.batch,
               ": sizes must be positive multiples of 32, the batch positive");
  const nn::SearchSpace& space = nn::space_by_name(o.space);
  const std::vector<nn::BlockSpec> specs = nn::blocks(space);
  rt::NoGradGuard ng;
  Rng rng(o.seed);
  LatencyTable t;
  t.space = space.name;
  t.detector = o.config.kind;
  t.height = o.height;
  t.width = o.width;
  t.batch = o.batch;
  t.threads = rt::num_threads();
  t.machine = rt::cpu_model();
  t.date = utc_now();
  t.protocol = std::string(o.median ? "median" : "minimum") + " ms of >= " + std::to_string(o.min_repeats) +
               " runs and >= " + std::to_string(o.min_seconds) + " s after " + std::to_string(o.warmup) +
               " warm-up runs; Eval mode, no autograd";
  const int64_t total = 2 + int64_t(specs.size()) * space.num_choices;
  int64_t done = 0;
  auto tick = [&] {
    if (progress) progress(++done, total);
  };
  auto time = [&](const std::function<void()>& f) {
    return time_ms(f, o.warmup, o.min_repeats, o.min_seconds, o.median);
  };
  FixedParts fixed = make_fixed_parts(o, space, rng);
  t.fixed["stem"] = time([&] { fixed.stem->forward(fixed.images); });
  tick();
  // Every choice of every block, at its input shape.
  int64_t h = half_up(o.height), w = half_up(o.width);
  for (const nn::BlockSpec& b : specs) {
    const Tensor x = random_input({o.batch, b.in_channels, h, w}, rng);
    std::vector<double> row;
    for (int c = 0; c < space.num_choices; ++c) {
      nn::ChoiceUnit unit(b, c, nn::ChannelSplit::ShuffleHalve, rng, 0.1f);
      calibrate(unit, [&] { unit.forward(x); });
      row.push_back(time([&] { unit.forward(x); }));
      tick();
    }
    t.blocks.push_back(std::move(row));
    if (b.stride == 2) h = half_up(h), w = half_up(w);
  }
  t.fixed["detector"] = time(fixed.detector);
  tick();
  return t;
}

double measure_fixed_ms(const LatencyMeasureOptions& o) {
  const nn::SearchSpace& space = nn::space_by_name(o.space);
  rt::NoGradGuard ng;
  Rng rng(o.seed);
  FixedParts fixed = make_fixed_parts(o, space, rng);
  return time_ms([&] { fixed.stem->forward(fixed.images); }, o.warmup, o.min_repeats, o.min_seconds, o.median) +
         time_ms(fixed.detector, o.warmup, o.min_repeats, o.min_seconds, o.median);
}

double measure_arch_latency(const LatencyMeasureOptions& o, const nn::Arch& arch) {
  nn::validate_arch(nn::space_by_name(o.space), arch);
  auto net = det::make_detector(standalone(o.space, arch, o.seed), o.config);
  rt::NoGradGuard ng;
  Rng rng(o.seed ^ 0x1a7e9cULL);
  const Tensor images = random_input({o.batch, 3, o.height, o.width}, rng);
  // The detector part's inputs come from the backbone's own forward each run.
  auto& bb = net->backbone();
  std::function<void()> run;
  if (auto* r = dynamic_cast<det::RetinaNet*>(net.get())) {
    run = [&, r] {
      std::vector<Tensor> c = bb.forward_features(images, {});
      for (const Tensor& p : r->fpn().forward({c[1], c[2], c[3]})) r->head().forward(p);
    };
  } else {
    auto& f = dynamic_cast<det::FasterRcnn&>(*net);
    const int64_t rois = o.batch * f.options().rpn.post_nms_top_n_test, P = f.options().roi.pooler.pooled_h;
    const Tensor roi_features = random_input({rois, f.options().fpn_channels, P, P}, rng);
    run = [&, roi_features] {
      for (const Tensor& p : f.fpn().forward(bb.forward_features(images, {}))) f.rpn_head().forward(p);
      f.box_head().forward(roi_features);
    };
  }
  calibrate(*net, run);
  return time_ms(run, o.warmup, o.min_repeats, o.min_seconds, o.median);
}

}  // namespace detnas::search
