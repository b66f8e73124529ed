// Debug dumps of `detnas train|pretrain --dump-steps K --dump-dir DIR` for
// step-parity checks against another implementation (bench/compare/torch_twin_train.py):
//   DIR/config.json            what a twin needs to rebuild the run: the detector
//                              config, space, arch, optimizer and schedule settings
//   DIR/init.safetensors       the network's parameters then its buffers (our
//                              names) before the first dumped step
//   DIR/step_NNNN.safetensors  "images" (N,3,H,W) exactly as the network sees them
//                              (after transforms and padding); detection: "boxes.<i>"
//                              (M_i,4) per image (zero rows: "boxes.<i>" absent,
//                              num_boxes 0); FPN Faster R-CNN: "proposals.<i>" (P_i,4),
//                              the RPN proposals of image i (after NMS and top-n);
//                              pretrain: "dropout_mask" (the head activation's shape,
//                              0 or 1/(1-p)) when dropout is on
//   DIR/step_NNNN.json         iteration, lr, path, labels (per image: a list of box
//                              labels; pretrain: one class), each loss component, total
//                              and the gradient norm before clipping; FPN Faster R-CNN:
//                              "rpn_sampled" / "roi_sampled", per image {"pos": [...],
//                              "neg": [...]}: the sampled anchor indices (into the
//                              levels' anchors concatenated) and RoI indices (into
//                              "proposals.<i>" with the image's GT boxes appended), the
//                              only random choices of the step
// NNNN is the iteration (1-based). It only reads: a run with and without dumping
// trains identically. One process only (under mpirun each rank holds part of a batch).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "detect/detector.h"
#include "detect/faster_rcnn.h"
#include "nn/module.h"
#include "nn/space.h"

namespace detnas::cli {

// What detnas computed in one step, as the step lambda has it.
struct DumpedStep {
  int64_t iter = 0;                                    // 1-based
  const rt::Tensor* images = nullptr;                  // CPU (N,3,H,W)
  const std::vector<det::Targets>* targets = nullptr;  // detection, or
  const std::vector<int64_t>* classes = nullptr;       // classification: one label per image
  nn::Arch path;                                       // the sampled supernet path, or the fixed architecture
  double lr = 0;
  std::vector<std::pair<std::string, double>> losses;  // loss components
  double total = 0, grad_norm = 0;                     // grad_norm: before clipping
  const det::SamplerTrace* samples = nullptr;          // FPN Faster R-CNN's sampler choices
  const rt::Tensor* dropout_mask = nullptr;            // pretrain (undefined or null: none)
};

class TrainDump {
 public:
  TrainDump() = default;
  // steps 0: off. `first`: the first iteration (0-based) the run executes.
  // `command` names the command in error messages.
  TrainDump(std::string dir, int64_t steps, int64_t first, std::string command = "train");
  bool enabled() const { return steps_ > 0; }
  bool wants(int64_t it) const { return steps_ > 0 && it >= first_ && it < first_ + steps_; }
  // DIR/config.json and DIR/init.safetensors.
  void write_init(const nn::Module& net, const std::map<std::string, std::string>& config) const;
  void write_step(const DumpedStep& s) const;

 private:
  std::string dir_, command_;
  int64_t steps_ = 0, first_ = 0;
};

}  // namespace detnas::cli
