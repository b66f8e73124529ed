// Define-by-run autograd. When grad mode is on and an input requires grad, an op
// records a closure on the thread-local tape; backward() runs the tape in reverse
// from a scalar loss, accumulating into each input's .grad, and frees every entry
// as it goes (so activations are released during backward). Under NoGradGuard
// nothing is recorded and no activation is kept.
#pragma once
#include <functional>
#include <initializer_list>

#include "kernels/common.h"
#include "runtime/tensor.h"

namespace detnas::rt {

bool grad_enabled();

class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when grad mode is on and any defined input requires grad.
bool wants_grad(std::initializer_list<const Tensor*> inputs);
// Marks outputs as requiring grad and pushes `backward` on the tape. The closure
// reads its outputs' .grad() (skipping undefined ones) and writes inputs' grads
// through grad_slot().
void record(std::initializer_list<const Tensor*> outputs, std::function<void()> backward);

// Where a backward writes the gradient of x: Ignore (x needs none), Overwrite
// (a fresh contiguous buffer was just attached to x) or Accumulate.
struct GradSlot {
  float* ptr = nullptr;
  GradientMode mode = GradientMode::Ignore;
};
GradSlot grad_slot(const Tensor& x);

// Runs the tape from a single-element loss (seed gradient `seed`, default 1).
// The tape holds every op recorded since the last backward/clear_tape and is
// consumed whole: build one loss per backward (sum several losses first).
void backward(const Tensor& loss, float seed = 1.0f);
size_t tape_size();
void clear_tape();  // drops recorded entries without running them

}  // namespace detnas::rt
