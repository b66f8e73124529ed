// The thread-local tape. Entries are closures; each is destroyed right after it
// runs so the activations it captured are released during backward.
#include "runtime/autograd.h"

#include <cstring>
#include <vector>

#include "core/profile.h"

namespace detnas::rt {

namespace {
thread_local bool t_grad_enabled = true;
thread_local std::vector<std::function<void()>> t_tape;
}  // namespace

bool grad_enabled() { return t_grad_enabled; }

NoGradGuard::NoGradGuard() : prev_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = prev_; }

bool wants_grad(std::initializer_list<const Tensor*> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->requires_grad()) return true;
  return false;
}

void record(std::initializer_list<const Tensor*> outputs, std::function<void()> backward) {
  for (const Tensor* t : outputs) const_cast<Tensor*>(t)->requires_grad_(true);
  t_tape.push_back(std::move(backward));
}

GradSlot grad_slot(const Tensor& x) {
  GradSlot s;
  if (!x.requires_grad()) return s;
  Tensor g = x.grad();
  if (!g.defined()) {
    g = Tensor::empty(x.shape(), x.device());
    const_cast<Tensor&>(x).set_grad(g);
    s.mode = GradientMode::Overwrite;
  } else {
    s.mode = GradientMode::Accumulate;
  }
  s.ptr = g.data();
  return s;
}

void backward(const Tensor& loss, float seed) {
  DETNAS_CHECK(loss.defined() && loss.numel() == 1, "backward: the loss must have one element, got shape ",
               loss.defined() ? shape_str(loss.shape()) : std::string("undefined"));
  DETNAS_CHECK(loss.requires_grad(), "backward: the loss does not depend on any tensor that requires grad");
  DETNAS_PROFILE_SCOPE("backward");
  GradSlot s = grad_slot(loss);
  float v = seed;
  if (loss.device() == Device::CPU) {
    if (s.mode == GradientMode::Accumulate) v += *s.ptr;
    *s.ptr = v;
  } else {
    if (s.mode == GradientMode::Accumulate) {
      float old = 0;
      cuda_copy_d2h(&old, s.ptr, sizeof(float));
      v += old;
    }
    cuda_copy_h2d(s.ptr, &v, sizeof(float));
  }
  // Move the tape out first: closures may record nothing, but an exception must
  // not leave a half-run tape behind.
  std::vector<std::function<void()>> tape;
  tape.swap(t_tape);
  for (size_t i = tape.size(); i-- > 0;) {
    tape[i]();
    tape[i] = nullptr;
  }
}

size_t tape_size() { return t_tape.size(); }
void clear_tape() { t_tape.clear(); }

}  // namespace detnas::rt
