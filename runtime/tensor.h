// Tensor: float32, rank 0..5 (NCHW for feature maps), strided view of a
// reference-counted Storage on one Device. Views (reshape of contiguous data,
// narrow, e.g. the channel split of ShuffleNetV2) share storage and are
// autograd-aware. Moving between devices is explicit: to(Device).
// Not here: op math (runtime/ops*.h), the tape (runtime/autograd.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "runtime/device.h"

namespace detnas::rt {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "[2, 3, 4]"
int64_t shape_numel(const Shape& s);

struct Storage {
  void* ptr = nullptr;
  int64_t bytes = 0;
  Device device = Device::CPU;
  Storage(int64_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;  // undefined tensor
  static Tensor empty(const Shape& shape, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, Device device = Device::CPU);
  static Tensor full(const Shape& shape, float value, Device device = Device::CPU);
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values);
  static Tensor scalar(float value) { return full({}, value); }

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  const Shape& strides() const;
  int64_t offset() const;
  int64_t dim() const { return int64_t(shape().size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const;
  Device device() const;
  bool is_contiguous() const;

  // Pointer to element 0 (storage base + offset). Valid for the tensor's device.
  float* data();
  const float* data() const;
  float item() const;                    // single-element CPU tensor
  std::vector<float> to_vector() const;  // row-major host copy

  Tensor to(Device d) const;          // copy to another device (same device: returns *this)
  Tensor clone() const;               // contiguous copy (no autograd)
  void copy_from(const Tensor& src);  // same shape; any strides and devices (no autograd)
  void fill_(float value);            // no autograd; on CUDA one upload of a host copy

  // Autograd-aware views and layout changes.
  Tensor contiguous() const;                 // *this if contiguous, else a copy
  Tensor reshape(const Shape& shape) const;  // one dim may be -1
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor detach() const;  // shares storage, no grad history

  // Autograd state. Gradients are contiguous tensors of the same shape.
  bool requires_grad() const;
  Tensor& requires_grad_(bool on = true);
  Tensor grad() const;  // undefined if no gradient has flowed
  void set_grad(const Tensor& g);
  void reset_grad();  // drops the gradient (next backward overwrites)

  TensorImpl* impl() const { return impl_.get(); }
  bool same_as(const Tensor& o) const { return impl_ == o.impl_; }
  std::string describe() const;  // "[2, 3] cpu"

 private:
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<TensorImpl> impl_;
  friend Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset);
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape, strides;
  bool requires_grad = false;
  Tensor grad;
};

Shape contiguous_strides(const Shape& shape);
// A raw view with no autograd record (used by ops that record their own backward).
Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset);

// y = x with its dimensions reordered (y.size(i) == x.size(dims[i])) as a new
// contiguous tensor on x's device (CPU loop or the CUDA strided-copy kernel);
// autograd-aware: the backward is the inverse strided copy.
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);

// Shape checks that name the op and both shapes.
void check_same_shape(const char* op, const Tensor& a, const Tensor& b);
void check_defined(const char* op, const Tensor& a, const char* what);
// The op has only a CPU implementation: fail by name for tensors on another device.
void require_cpu(const char* op, std::initializer_list<const Tensor*> ts);

}  // namespace detnas::rt
