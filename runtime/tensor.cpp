// Tensor storage, views and copies.
#include "runtime/tensor.h"

#include <cstring>
#include <sstream>

#include "kernels/copy.h"
#include "runtime/allocator.h"
#include "runtime/autograd.h"
#include "runtime/device_allocator.h"
#ifdef DETNAS_CUDA
#include "kernels/copy_cuda.h"
#endif

namespace detnas::rt {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t s = 1;
  for (int64_t i = int64_t(shape.size()) - 1; i >= 0; --i) {
    st[size_t(i)] = s;
    s *= shape[size_t(i)];
  }
  return st;
}

Storage::Storage(int64_t nbytes, Device dev) : bytes(nbytes), device(dev) {
  if (nbytes == 0) return;
  // CUDA: the caching device allocator (no cudaMalloc once a step's shapes repeat).
  ptr = dev == Device::CPU ? host_allocator().allocate(size_t(nbytes)) : device_allocator().allocate(size_t(nbytes));
}

Storage::~Storage() {
  if (!ptr) return;
  if (device == Device::CPU)
    host_allocator().release(ptr);
  else
    device_allocator().release(ptr);
}

static void check_shape(const Shape& shape) {
  DETNAS_CHECK(shape.size() <= size_t(kernels::kMaxRank), "tensor: rank ", shape.size(), " > ", kernels::kMaxRank,
               " for shape ", shape_str(shape));
  for (int64_t d : shape) DETNAS_CHECK(d >= 0, "tensor: negative dimension in shape ", shape_str(shape));
}

Tensor Tensor::empty(const Shape& shape, Device device) {
  check_shape(shape);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(shape_numel(shape) * int64_t(sizeof(float)), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, Device device) {
  Tensor t = empty(shape, device);
  if (device == Device::CPU) {
    if (t.numel()) std::memset(t.data(), 0, size_t(t.numel()) * sizeof(float));
  } else {
    std::vector<float> z(size_t(t.numel()), 0.f);
    if (t.numel()) cuda_copy_h2d(t.data(), z.data(), z.size() * sizeof(float));
  }
  return t;
}

Tensor Tensor::full(const Shape& shape, float value, Device device) {
  Tensor t = empty(shape, Device::CPU);
  t.fill_(value);
  return device == Device::CPU ? t : t.to(device);
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values) {
  check_shape(shape);
  DETNAS_CHECK(int64_t(values.size()) == shape_numel(shape), "Tensor::from_vector: ", values.size(),
               " values for shape ", shape_str(shape));
  Tensor t = empty(shape);
  if (!values.empty()) std::memcpy(t.data(), values.data(), values.size() * sizeof(float));
  return t;
}

const Shape& Tensor::shape() const {
  DETNAS_CHECK(impl_, "use of an undefined tensor");
  return impl_->shape;
}
const Shape& Tensor::strides() const {
  DETNAS_CHECK(impl_, "use of an undefined tensor");
  return impl_->strides;
}
int64_t Tensor::offset() const { return impl_ ? impl_->offset : 0; }
int64_t Tensor::numel() const { return shape_numel(shape()); }
Device Tensor::device() const {
  DETNAS_CHECK(impl_, "use of an undefined tensor");
  return impl_->storage->device;
}

int64_t Tensor::size(int64_t d) const {
  int64_t r = dim();
  if (d < 0) d += r;
  DETNAS_CHECK(d >= 0 && d < r, "tensor: dimension ", d, " out of range for shape ", shape_str(shape()));
  return impl_->shape[size_t(d)];
}

bool Tensor::is_contiguous() const {
  const Shape& sh = shape();
  int64_t s = 1;
  for (int64_t i = int64_t(sh.size()) - 1; i >= 0; --i) {
    if (sh[size_t(i)] != 1 && impl_->strides[size_t(i)] != s) return false;
    s *= sh[size_t(i)];
  }
  return true;
}

float* Tensor::data() {
  DETNAS_CHECK(impl_, "use of an undefined tensor");
  return static_cast<float*>(impl_->storage->ptr) + impl_->offset;
}
const float* Tensor::data() const { return const_cast<Tensor*>(this)->data(); }

float Tensor::item() const {
  DETNAS_CHECK(numel() == 1, "item(): tensor of shape ", shape_str(shape()), " has ", numel(), " elements, not 1");
  if (device() == Device::CPU) return *data();
  float v;
  cuda_copy_d2h(&v, data(), sizeof(float));
  return v;
}

std::vector<float> Tensor::to_vector() const {
  Tensor c = clone().to(Device::CPU);
  return std::vector<float>(c.data(), c.data() + c.numel());
}

static kernels::StridedLayout layout_of(const Shape& shape, const Shape& src_st, const Shape& dst_st) {
  kernels::StridedLayout L;
  L.rank = int(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) {
    L.shape[i] = shape[i];
    L.src_stride[i] = src_st[i];
    L.dst_stride[i] = dst_st[i];
  }
  return L;
}

// dst = or += src on one device (CPU loop or the CUDA strided-copy kernel).
static void strided_copy_on(Device d, const kernels::StridedLayout& L, const float* src, float* dst,
                            GradientMode mode) {
  if (d == Device::CPU) {
    kernels::cpu::strided_copy(L, src, dst, mode);
    return;
  }
#ifdef DETNAS_CUDA
  kernels::cuda::strided_copy(L, src, dst, mode, cuda_stream());
#else
  DETNAS_FAIL("strided copy of a cuda tensor: built without CUDA");
#endif
}

void Tensor::copy_from(const Tensor& src) {
  check_same_shape("copy_from", *this, src);
  if (numel() == 0) return;
  const size_t bytes = size_t(numel()) * sizeof(float);
  if (device() == src.device()) {
    if (device() == Device::CUDA && is_contiguous() && src.is_contiguous())
      cuda_copy_d2d(data(), src.data(), bytes);
    else
      strided_copy_on(device(), layout_of(shape(), src.strides(), strides()), src.data(), data(),
                      GradientMode::Overwrite);
    return;
  }
  // Across devices: contiguous staging on the side that is strided, then one memcpy.
  if (!src.is_contiguous()) return copy_from(src.clone());
  if (!is_contiguous()) {
    Tensor tmp = empty(shape(), device());
    tmp.copy_from(src);
    return copy_from(tmp);
  }
  if (device() == Device::CPU)
    cuda_copy_d2h(data(), src.data(), bytes);
  else
    cuda_copy_h2d(data(), src.data(), bytes);
}

void Tensor::fill_(float value) {
  if (device() == Device::CUDA) {  // one upload of a host tensor (buffers and state, not a hot path)
    copy_from(full(shape(), value));
    return;
  }
  float* p = data();
  if (is_contiguous()) {
    for (int64_t i = 0, n = numel(); i < n; ++i) p[i] = value;
  } else {
    Tensor tmp = full(shape(), value);
    copy_from(tmp);
  }
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape(), device());
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(Device d) const {
  if (device() == d) return *this;
  Tensor src = is_contiguous() ? *this : clone();
  Tensor t = empty(shape(), d);
  t.copy_from(src);
  return t;
}

Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl_->storage;
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  return Tensor(std::move(impl));
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  Tensor y = clone();
  if (wants_grad({this})) {
    Tensor x = *this;
    record({&y}, [x, y]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      // x's grad is contiguous with x's shape, so this is a plain copy/add.
      kernels::StridedLayout L = layout_of(x.shape(), contiguous_strides(x.shape()), contiguous_strides(x.shape()));
      strided_copy_on(x.device(), L, gy.data(), g.ptr, g.mode);
    });
  }
  return y;
}

Tensor Tensor::reshape(const Shape& new_shape) const {
  Shape s = new_shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      DETNAS_CHECK(infer < 0, "reshape: more than one -1 in ", shape_str(new_shape));
      infer = int64_t(i);
    } else {
      DETNAS_CHECK(s[i] >= 0, "reshape: bad dimension in ", shape_str(new_shape));
      known *= s[i];
    }
  }
  if (infer >= 0) {
    DETNAS_CHECK(known > 0 && numel() % known == 0, "reshape: cannot reshape ", shape_str(shape()), " to ",
                 shape_str(new_shape));
    s[size_t(infer)] = numel() / known;
  }
  check_shape(s);
  DETNAS_CHECK(shape_numel(s) == numel(), "reshape: cannot reshape ", shape_str(shape()), " (", numel(),
               " elements) to ", shape_str(new_shape));
  Tensor src = contiguous();
  Tensor y = make_view(src, s, contiguous_strides(s), src.offset());
  if (wants_grad({&src})) {
    record({&y}, [src, y]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      if (!src.grad().defined()) {
        // Alias: the gradient of a reshape is the same buffer, viewed.
        const_cast<Tensor&>(src).set_grad(make_view(gy, src.shape(), contiguous_strides(src.shape()), gy.offset()));
        return;
      }
      GradSlot g = grad_slot(src);  // both contiguous: a flat accumulate, on either device
      strided_copy_on(src.device(), layout_of({gy.numel()}, {1}, {1}), gy.data(), g.ptr, g.mode);
    });
  }
  return y;
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  int64_t r = dim();
  if (d < 0) d += r;
  DETNAS_CHECK(d >= 0 && d < r, "narrow: dimension ", d, " out of range for shape ", shape_str(shape()));
  DETNAS_CHECK(start >= 0 && length >= 0 && start + length <= size(d), "narrow: range [", start, ", ", start + length,
               ") out of bounds for dimension ", d, " of shape ", shape_str(shape()));
  Shape s = shape();
  s[size_t(d)] = length;
  Tensor y = make_view(*this, s, strides(), offset() + start * strides()[size_t(d)]);
  if (wants_grad({this})) {
    Tensor x = *this;
    record({&y}, [x, y, d, start]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      if (g.mode == GradientMode::Ignore) return;
      if (g.mode == GradientMode::Overwrite) {
        if (x.device() == Device::CPU) {
          std::memset(g.ptr, 0, size_t(x.numel()) * sizeof(float));
        } else {
          const std::vector<float> z(size_t(x.numel()), 0.f);
          cuda_copy_h2d(g.ptr, z.data(), z.size() * sizeof(float));
        }
      }
      Shape xst = contiguous_strides(x.shape());
      kernels::StridedLayout L = layout_of(y.shape(), contiguous_strides(y.shape()), xst);
      strided_copy_on(x.device(), L, gy.data(), g.ptr + start * xst[size_t(d)], GradientMode::Accumulate);
    });
  }
  return y;
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  check_defined("permute", x, "input");
  const int64_t r = x.dim();
  DETNAS_CHECK(int64_t(dims.size()) == r, "permute: ", dims.size(), " dims for shape ", shape_str(x.shape()));
  std::vector<bool> seen(static_cast<size_t>(r), false);
  Shape ys(static_cast<size_t>(r)), src_st(static_cast<size_t>(r));
  for (int64_t i = 0; i < r; ++i) {
    const int64_t d = dims[size_t(i)];
    DETNAS_CHECK(d >= 0 && d < r && !seen[size_t(d)], "permute: dims are not a permutation of 0..", r - 1, " (shape ",
                 shape_str(x.shape()), ")");
    seen[size_t(d)] = true;
    ys[size_t(i)] = x.size(d);
    src_st[size_t(i)] = x.strides()[size_t(d)];
  }
  Tensor y = Tensor::empty(ys, x.device());
  if (y.numel() > 0)
    strided_copy_on(x.device(), layout_of(ys, src_st, contiguous_strides(ys)), x.data(), y.data(),
                    GradientMode::Overwrite);
  if (wants_grad({&x})) {
    record({&y}, [x, y, dims]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);  // contiguous in x's shape
      const Shape xst = contiguous_strides(x.shape());
      Shape dst_st(dims.size());
      for (size_t i = 0; i < dims.size(); ++i) dst_st[i] = xst[size_t(dims[i])];
      if (y.numel() > 0)
        strided_copy_on(x.device(), layout_of(y.shape(), contiguous_strides(y.shape()), dst_st), gy.data(), g.ptr,
                        g.mode);
    });
  }
  return y;
}

Tensor Tensor::detach() const { return make_view(*this, shape(), strides(), offset()); }

bool Tensor::requires_grad() const { return impl_ && impl_->requires_grad; }
Tensor& Tensor::requires_grad_(bool on) {
  DETNAS_CHECK(impl_, "requires_grad_ on an undefined tensor");
  impl_->requires_grad = on;
  return *this;
}
Tensor Tensor::grad() const { return impl_ ? impl_->grad : Tensor(); }
void Tensor::set_grad(const Tensor& g) {
  DETNAS_CHECK(impl_, "set_grad on an undefined tensor");
  if (g.defined()) check_same_shape("set_grad", *this, g);
  impl_->grad = g;
}
void Tensor::reset_grad() {
  if (impl_) impl_->grad = Tensor();
}

std::string Tensor::describe() const {
  if (!impl_) return "undefined";
  return shape_str(shape()) + " " + device_name(device());
}

void check_same_shape(const char* op, const Tensor& a, const Tensor& b) {
  DETNAS_CHECK(a.defined() && b.defined(), op, ": undefined tensor");
  DETNAS_CHECK(a.shape() == b.shape(), op, ": shape mismatch ", shape_str(a.shape()), " vs ", shape_str(b.shape()));
}

void check_defined(const char* op, const Tensor& a, const char* what) {
  DETNAS_CHECK(a.defined(), op, ": ", what, " is undefined");
}

void require_cpu(const char* op, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (t && t->defined())
      DETNAS_CHECK(t->device() == Device::CPU, op, ": no CUDA implementation yet (tensor on ", device_name(t->device()),
                   ")");
}

}  // namespace detnas::rt
