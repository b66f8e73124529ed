// Debug dumps of `detnas train --dump-steps K --dump-dir DIR` for step-parity
// checks against another implementation (bench/compare/torch_twin_train.py):
//   DIR/config.json            what a twin needs to rebuild the run: the detector
//                              config, space, arch, optimizer and schedule settings
//   DIR/init.safetensors       the network's parameters then its buffers (our
//                              names) before the first dumped step
//   DIR/step_NNNN.safetensors  "images" (N,3,H,W) exactly as the network sees them
//                              (after transforms and padding) and "boxes.<i>" (M_i,4)
//                              per image (zero rows: "boxes.<i>" absent, num_boxes 0)
//   DIR/step_NNNN.json         iteration, lr, path, labels per image, each loss
//                              component, total and the gradient norm before clipping
// NNNN is the iteration (1-based). It only reads: a run with and without dumping
// trains identically. One process only (under mpirun each rank holds part of a batch).
// Not here: the sampled anchors / RoIs of FPN Faster R-CNN (per-image sampler
// streams, detect/detector.h image_rng), which a twin must draw itself.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "detect/detector.h"
#include "nn/module.h"
#include "nn/space.h"

namespace detnas::cli {

// What detnas computed in one step, as the step lambda has it.
struct DumpedStep {
  int64_t iter = 0;                    // 1-based
  const rt::Tensor* images = nullptr;  // CPU (N,3,H,W)
  const std::vector<det::Targets>* targets = nullptr;
  nn::Arch path;  // the sampled supernet path, or the fixed architecture
  double lr = 0;
  std::vector<std::pair<std::string, double>> losses;  // loss components
  double total = 0, grad_norm = 0;                     // grad_norm: before clipping
};

class TrainDump {
 public:
  TrainDump() = default;
  // steps 0: off. `first`: the first iteration (0-based) the run executes.
  TrainDump(std::string dir, int64_t steps, int64_t first);
  bool enabled() const { return steps_ > 0; }
  bool wants(int64_t it) const { return steps_ > 0 && it >= first_ && it < first_ + steps_; }
  // DIR/config.json and DIR/init.safetensors.
  void write_init(const nn::Module& net, const std::map<std::string, std::string>& config) const;
  void write_step(const DumpedStep& s) const;

 private:
  std::string dir_;
  int64_t steps_ = 0, first_ = 0;
};

}  // namespace detnas::cli
