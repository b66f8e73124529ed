// Loss ops: check inputs, run the forward kernel into per-element losses, report
// the first non-finite input, reduce in double, and record a backward that keeps
// only the (contiguous) inputs it re-reads.
#include "runtime/ops_loss.h"

#include <sstream>

#include "runtime/autograd.h"
#include "runtime/ops_cuda.h"

namespace detnas::rt::ops {

namespace k = detnas::kernels::cpu;
using kernels::LossGrad;

namespace {

std::string index_str(int64_t flat, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] > 0 ? flat % shape[d] : 0;
    flat = shape[d] > 0 ? flat / shape[d] : 0;
  }
  std::ostringstream os;
  os << "[";
  for (size_t d = 0; d < idx.size(); ++d) os << (d ? ", " : "") << idx[d];
  os << "]";
  return os.str();
}

struct Named {
  const char* name;
  const Tensor* t;
};

// Throws for a non-finite input element found by a forward kernel at flat index
// `bad` (-1: none), naming the first listed tensor that holds it.
void check_finite(const char* op, int64_t bad, std::initializer_list<Named> inputs) {
  if (bad < 0) return;
  for (const Named& in : inputs) {
    if (!in.t->defined() || bad >= in.t->numel()) continue;
    float v = in.t->data()[bad];
    if (!std::isfinite(v))
      DETNAS_FAIL(op, ": non-finite value ", v, " in ", in.name, " ", in.t->describe(), " at index ",
                  index_str(bad, in.t->shape()));
  }
  DETNAS_FAIL(op, ": non-finite input value at flat index ", bad);
}

// The loss output: the per-element tensor itself (None) or a 0-d tensor.
Tensor reduce(const Tensor& elem, Reduction r, int64_t count) {
  if (r == Reduction::None) return elem;
  double s = k::loss_sum(elem.numel(), elem.data());
  if (r == Reduction::Mean) s = count > 0 ? s / double(count) : 0.0;
  return Tensor::scalar(float(s));
}

LossGrad<float> upstream(const Tensor& gy, Reduction r, int64_t count) {
  LossGrad<float> g;
  g.dy = gy.data();
  g.stride = r == Reduction::None ? 1 : 0;
  g.scale = r == Reduction::Mean ? (count > 0 ? float(1.0 / double(count)) : 0.0f) : 1.0f;
  return g;
}

void check_mean_nonempty(const char* op, const Tensor& x, Reduction r) {
  DETNAS_CHECK(!(r == Reduction::Mean && x.numel() == 0), op, ": reduction 'mean' of an empty input ",
               shape_str(x.shape()));
}

// Weights and non-differentiable targets are constants: fail rather than drop
// a gradient silently.
void check_constant(const char* op, const Tensor& t, const char* what) {
  DETNAS_CHECK(!(t.defined() && wants_grad({&t})), op, ": ", what,
               " requires grad, but this op treats it as a constant");
}

}  // namespace

Tensor softmax_cross_entropy(const Tensor& logits_in, const std::vector<int64_t>& labels, float label_smoothing,
                             Reduction reduction) {
  const char* op = "softmax_cross_entropy";
  check_defined(op, logits_in, "logits");
  const bool on_cuda = cuda_ops::on_cuda(op, {&logits_in});  // CUDA: runtime/ops_cuda.cpp after the checks
  if (!on_cuda) require_cpu(op, {&logits_in});
  DETNAS_CHECK(logits_in.dim() == 2, op, ": logits must be (N,K), got ", shape_str(logits_in.shape()));
  const int64_t N = logits_in.size(0), K = logits_in.size(1);
  DETNAS_CHECK(K > 0, op, ": logits ", shape_str(logits_in.shape()), " have no classes");
  DETNAS_CHECK(int64_t(labels.size()) == N, op, ": ", labels.size(), " labels for logits ",
               shape_str(logits_in.shape()));
  DETNAS_CHECK(label_smoothing >= 0.0f && label_smoothing <= 1.0f, op, ": label smoothing ", label_smoothing,
               " is outside [0, 1]");
  check_mean_nonempty(op, logits_in, reduction);
  int64_t count = 0;
  for (int64_t i = 0; i < N; ++i) {
    const int64_t y = labels[size_t(i)];
    DETNAS_CHECK(y == kIgnoreLabel || (y >= 0 && y < K), op, ": label[", i, "] = ", y, " is outside [0, ", K,
                 ") (and is not the ignore label ", kIgnoreLabel, ")");
    count += y != kIgnoreLabel;
  }
  if (on_cuda) return cuda_ops::softmax_cross_entropy(logits_in, labels, label_smoothing, reduction, count);
  Tensor x = logits_in.contiguous();
  Tensor elem = Tensor::empty({N}, x.device());
  Tensor lse = Tensor::empty({N}, x.device());
  int64_t bad = k::softmax_xent_forward(N, K, x.data(), labels.data(), label_smoothing, elem.data(), lse.data());
  check_finite(op, bad, {{"logits", &x}});
  Tensor y = reduce(elem, reduction, count);
  if (wants_grad({&x})) {
    record({&y}, [x, labels, lse, y, label_smoothing, reduction, count]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      k::softmax_xent_backward(x.size(0), x.size(1), x.data(), labels.data(), label_smoothing, lse.data(),
                               upstream(gy, reduction, count), g.ptr, g.mode);
    });
  }
  return y;
}

Tensor sigmoid_focal_loss(const Tensor& logits_in, const Tensor& targets_in, FocalParams params, Reduction reduction,
                          const Tensor& row_weight_in) {
  const char* op = "sigmoid_focal_loss";
  check_defined(op, logits_in, "logits");
  check_defined(op, targets_in, "targets");
  const bool on_cuda = cuda_ops::on_cuda(op, {&logits_in, &targets_in, &row_weight_in});
  if (!on_cuda) require_cpu(op, {&logits_in, &targets_in, &row_weight_in});
  DETNAS_CHECK(logits_in.dim() == 2, op, ": logits must be (N,K), got ", shape_str(logits_in.shape()));
  check_same_shape(op, logits_in, targets_in);
  DETNAS_CHECK(params.gamma >= 0.0f, op, ": gamma ", params.gamma, " must be >= 0");
  check_mean_nonempty(op, logits_in, reduction);
  check_constant(op, targets_in, "targets");
  check_constant(op, row_weight_in, "row_weight");
  const int64_t N = logits_in.size(0), K = logits_in.size(1);
  if (row_weight_in.defined())
    DETNAS_CHECK(row_weight_in.dim() == 1 && row_weight_in.size(0) == N, op, ": row_weight ",
                 shape_str(row_weight_in.shape()), " does not match logits ", shape_str(logits_in.shape()),
                 " (expected [", N, "])");
  if (on_cuda) return cuda_ops::sigmoid_focal_loss(logits_in, targets_in, params, reduction, row_weight_in);
  Tensor x = logits_in.contiguous(), t = targets_in.contiguous();
  Tensor w = row_weight_in.defined() ? row_weight_in.contiguous() : Tensor();
  Tensor elem = Tensor::empty({N, K}, x.device());
  int64_t bad =
      k::sigmoid_focal_forward(N, K, x.data(), t.data(), w.defined() ? w.data() : nullptr, params, elem.data());
  check_finite(op, bad, {{"logits", &x}, {"targets", &t}});
  const int64_t count = N * K;
  Tensor y = reduce(elem, reduction, count);
  if (wants_grad({&x})) {
    record({&y}, [x, t, w, y, params, reduction, count]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      k::sigmoid_focal_backward(x.size(0), x.size(1), x.data(), t.data(), w.defined() ? w.data() : nullptr, params,
                                upstream(gy, reduction, count), g.ptr, g.mode);
    });
  }
  return y;
}

Tensor smooth_l1_loss(const Tensor& input_in, const Tensor& target_in, float beta, Reduction reduction,
                      const Tensor& weight_in) {
  const char* op = "smooth_l1_loss";
  check_defined(op, input_in, "input");
  check_defined(op, target_in, "target");
  const bool on_cuda = cuda_ops::on_cuda(op, {&input_in, &target_in, &weight_in});
  if (!on_cuda) require_cpu(op, {&input_in, &target_in, &weight_in});
  check_same_shape(op, input_in, target_in);
  if (weight_in.defined()) check_same_shape(op, input_in, weight_in);
  DETNAS_CHECK(beta >= 0.0f && std::isfinite(beta), op, ": beta ", beta, " must be finite and >= 0");
  check_mean_nonempty(op, input_in, reduction);
  check_constant(op, weight_in, "weight");
  if (on_cuda) return cuda_ops::smooth_l1_loss(input_in, target_in, beta, reduction, weight_in);
  Tensor x = input_in.contiguous(), t = target_in.contiguous();
  Tensor w = weight_in.defined() ? weight_in.contiguous() : Tensor();
  const int64_t n = x.numel();
  Tensor elem = Tensor::empty(x.shape(), x.device());
  int64_t bad = k::smooth_l1_forward(n, x.data(), t.data(), w.defined() ? w.data() : nullptr, beta, elem.data());
  check_finite(op, bad, {{"input", &x}, {"target", &t}});
  Tensor y = reduce(elem, reduction, n);
  if (wants_grad({&x, &t})) {
    record({&y}, [x, t, w, y, beta, reduction, n]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot gx = grad_slot(x), gt = grad_slot(t);
      k::smooth_l1_backward(n, x.data(), t.data(), w.defined() ? w.data() : nullptr, beta, upstream(gy, reduction, n),
                            gx.ptr, gx.mode, gt.ptr, gt.mode);
    });
  }
  return y;
}

Tensor bce_with_logits(const Tensor& logits_in, const Tensor& targets_in, Reduction reduction,
                       const Tensor& weight_in) {
  const char* op = "bce_with_logits";
  check_defined(op, logits_in, "logits");
  check_defined(op, targets_in, "targets");
  const bool on_cuda = cuda_ops::on_cuda(op, {&logits_in, &targets_in, &weight_in});
  if (!on_cuda) require_cpu(op, {&logits_in, &targets_in, &weight_in});
  check_same_shape(op, logits_in, targets_in);
  if (weight_in.defined()) check_same_shape(op, logits_in, weight_in);
  check_mean_nonempty(op, logits_in, reduction);
  check_constant(op, weight_in, "weight");
  if (on_cuda) return cuda_ops::bce_with_logits(logits_in, targets_in, reduction, weight_in);
  Tensor x = logits_in.contiguous(), t = targets_in.contiguous();
  Tensor w = weight_in.defined() ? weight_in.contiguous() : Tensor();
  const int64_t n = x.numel();
  Tensor elem = Tensor::empty(x.shape(), x.device());
  int64_t bad = k::bce_logits_forward(n, x.data(), t.data(), w.defined() ? w.data() : nullptr, elem.data());
  check_finite(op, bad, {{"logits", &x}, {"targets", &t}});
  Tensor y = reduce(elem, reduction, n);
  if (wants_grad({&x, &t})) {
    record({&y}, [x, t, w, y, reduction, n]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot gx = grad_slot(x), gt = grad_slot(t);
      k::bce_logits_backward(n, x.data(), t.data(), w.defined() ? w.data() : nullptr, upstream(gy, reduction, n),
                             gx.ptr, gx.mode, gt.ptr, gt.mode);
    });
  }
  return y;
}

Tensor giou_loss(const Tensor& boxes1_in, const Tensor& boxes2_in, Reduction reduction, float eps) {
  const char* op = "giou_loss";
  check_defined(op, boxes1_in, "boxes1");
  check_defined(op, boxes2_in, "boxes2");
  const bool on_cuda = cuda_ops::on_cuda(op, {&boxes1_in, &boxes2_in});
  if (!on_cuda) require_cpu(op, {&boxes1_in, &boxes2_in});
  DETNAS_CHECK(boxes1_in.dim() == 2 && boxes1_in.size(1) == 4, op, ": boxes1 must be (N,4), got ",
               shape_str(boxes1_in.shape()));
  check_same_shape(op, boxes1_in, boxes2_in);
  DETNAS_CHECK(eps >= 0.0f, op, ": eps ", eps, " must be >= 0");
  check_mean_nonempty(op, boxes1_in, reduction);
  if (on_cuda) return cuda_ops::giou_loss(boxes1_in, boxes2_in, reduction, eps);
  Tensor a = boxes1_in.contiguous(), b = boxes2_in.contiguous();
  const int64_t N = a.size(0);
  Tensor elem = Tensor::empty({N}, a.device());
  int64_t bad = k::giou_loss_forward(N, a.data(), b.data(), eps, elem.data());
  check_finite(op, bad, {{"boxes1", &a}, {"boxes2", &b}});
  Tensor y = reduce(elem, reduction, N);
  if (wants_grad({&a, &b})) {
    record({&y}, [a, b, y, eps, reduction, N]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot ga = grad_slot(a), gb = grad_slot(b);
      k::giou_loss_backward(N, a.data(), b.data(), eps, upstream(gy, reduction, N), ga.ptr, ga.mode, gb.ptr, gb.mode);
    });
  }
  return y;
}

float accuracy_top1(const Tensor& logits_in, const std::vector<int64_t>& labels) {
  const char* op = "accuracy_top1";
  check_defined(op, logits_in, "logits");  // CUDA logits: counted on a host copy (one value per batch)
  DETNAS_CHECK(logits_in.dim() == 2 && logits_in.size(1) > 0, op, ": logits must be (N,K) with K > 0, got ",
               shape_str(logits_in.shape()));
  const int64_t N = logits_in.size(0), K = logits_in.size(1);
  DETNAS_CHECK(int64_t(labels.size()) == N, op, ": ", labels.size(), " labels for logits ",
               shape_str(logits_in.shape()));
  int64_t count = 0;
  for (int64_t i = 0; i < N; ++i) {
    const int64_t y = labels[size_t(i)];
    DETNAS_CHECK(y == kIgnoreLabel || (y >= 0 && y < K), op, ": label[", i, "] = ", y, " is outside [0, ", K, ")");
    count += y != kIgnoreLabel;
  }
  if (count == 0) return 0.0f;
  Tensor x = logits_in.device() == Device::CPU ? logits_in.contiguous() : logits_in.to(Device::CPU);
  return float(double(k::top1_correct(N, K, x.data(), labels.data())) / double(count));
}

}  // namespace detnas::rt::ops
