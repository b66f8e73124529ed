// Loss ops: check inputs, run the device's forward kernel (runtime/backend.h) into
// per-element losses, report the first non-finite input, reduce in double, and
// record a backward that keeps only the (contiguous) inputs it re-reads.
#include "runtime/ops_loss.h"

#include <sstream>

#include "runtime/autograd.h"
#include "runtime/backend.h"

namespace detnas::rt::ops {

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
// `bad` (-1: none), naming the first listed (contiguous) tensor that holds it
// (one element read back from the device).
void check_finite(const char* op, int64_t bad, std::initializer_list<Named> inputs) {
  if (bad < 0) return;
  for (const Named& in : inputs) {
    if (!in.t->defined() || bad >= in.t->numel()) continue;
    const float v = make_view(*in.t, {}, {}, in.t->offset() + bad).item();
    if (!std::isfinite(v))
      DETNAS_FAIL(op, ": non-finite value ", v, " in ", in.name, " ", in.t->describe(), " at index ",
                  index_str(bad, in.t->shape()));
  }
  DETNAS_FAIL(op, ": non-finite input value at flat index ", bad);
}

// The loss output: the per-element tensor itself (None) or a 0-d tensor on its
// device. ws: the forward's workspace (reduce_workspace_bytes of elem.numel()).
Tensor reduce(const Kernels& kt, const Tensor& elem, Reduction r, int64_t count, const Workspace& ws) {
  if (r == Reduction::None) return elem;
  Tensor y = Tensor::empty({}, elem.device());
  kt.loss_sum_to(elem.numel(), elem.data(), r, count, y.data(), ws.ptr());
  return y;
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
  const Kernels& kt = kernels_for(logits_in.device());
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
  Tensor x = logits_in.contiguous();
  const Workspace dlabels = upload_array(labels.data(), labels.size(), x.device());
  const int64_t* lp = static_cast<const int64_t*>(dlabels.ptr());
  Tensor elem = Tensor::empty({N}, x.device());
  Tensor lse = Tensor::empty({N}, x.device());
  const Workspace ws(kt.reduce_workspace_bytes(N), x.device());
  int64_t bad = kt.softmax_xent_forward(N, K, x.data(), lp, label_smoothing, elem.data(), lse.data(), ws.ptr());
  check_finite(op, bad, {{"logits", &x}});
  Tensor y = reduce(kt, elem, reduction, count, ws);
  if (wants_grad({&x})) {
    record({&y}, [x, dlabels, lse, y, label_smoothing, reduction, count, &kt]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      kt.softmax_xent_backward(x.size(0), x.size(1), x.data(), static_cast<const int64_t*>(dlabels.ptr()),
                               label_smoothing, lse.data(), upstream(gy, reduction, count), g.ptr, g.mode);
    });
  }
  return y;
}

Tensor sigmoid_focal_loss(const Tensor& logits_in, const Tensor& targets_in, FocalParams params, Reduction reduction,
                          const Tensor& row_weight_in) {
  const char* op = "sigmoid_focal_loss";
  check_defined(op, logits_in, "logits");
  check_defined(op, targets_in, "targets");
  const Kernels& kt = kernels_for(common_device(op, {&logits_in, &targets_in, &row_weight_in}));
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
  Tensor x = logits_in.contiguous(), t = targets_in.contiguous();
  Tensor w = row_weight_in.defined() ? row_weight_in.contiguous() : Tensor();
  const int64_t count = N * K;
  Tensor elem = Tensor::empty({N, K}, x.device());
  const Workspace ws(kt.reduce_workspace_bytes(count), x.device());
  int64_t bad = kt.sigmoid_focal_forward(N, K, x.data(), t.data(), w.defined() ? w.data() : nullptr, params,
                                         elem.data(), ws.ptr());
  check_finite(op, bad, {{"logits", &x}, {"targets", &t}});
  Tensor y = reduce(kt, elem, reduction, count, ws);
  if (wants_grad({&x})) {
    record({&y}, [x, t, w, y, params, reduction, count, &kt]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot g = grad_slot(x);
      kt.sigmoid_focal_backward(x.size(0), x.size(1), x.data(), t.data(), w.defined() ? w.data() : nullptr, params,
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
  const Kernels& kt = kernels_for(common_device(op, {&input_in, &target_in, &weight_in}));
  check_same_shape(op, input_in, target_in);
  if (weight_in.defined()) check_same_shape(op, input_in, weight_in);
  DETNAS_CHECK(beta >= 0.0f && std::isfinite(beta), op, ": beta ", beta, " must be finite and >= 0");
  check_mean_nonempty(op, input_in, reduction);
  check_constant(op, weight_in, "weight");
  Tensor x = input_in.contiguous(), t = target_in.contiguous();
  Tensor w = weight_in.defined() ? weight_in.contiguous() : Tensor();
  const int64_t n = x.numel();
  Tensor elem = Tensor::empty(x.shape(), x.device());
  const Workspace ws(kt.reduce_workspace_bytes(n), x.device());
  int64_t bad =
      kt.smooth_l1_forward(n, x.data(), t.data(), w.defined() ? w.data() : nullptr, beta, elem.data(), ws.ptr());
  check_finite(op, bad, {{"input", &x}, {"target", &t}});
  Tensor y = reduce(kt, elem, reduction, n, ws);
  if (wants_grad({&x, &t})) {
    record({&y}, [x, t, w, y, beta, reduction, n, &kt]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot gx = grad_slot(x), gt = grad_slot(t);
      kt.smooth_l1_backward(n, x.data(), t.data(), w.defined() ? w.data() : nullptr, beta, upstream(gy, reduction, n),
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
  const Kernels& kt = kernels_for(common_device(op, {&logits_in, &targets_in, &weight_in}));
  check_same_shape(op, logits_in, targets_in);
  if (weight_in.defined()) check_same_shape(op, logits_in, weight_in);
  check_mean_nonempty(op, logits_in, reduction);
  check_constant(op, weight_in, "weight");
  Tensor x = logits_in.contiguous(), t = targets_in.contiguous();
  Tensor w = weight_in.defined() ? weight_in.contiguous() : Tensor();
  const int64_t n = x.numel();
  Tensor elem = Tensor::empty(x.shape(), x.device());
  const Workspace ws(kt.reduce_workspace_bytes(n), x.device());
  int64_t bad = kt.bce_logits_forward(n, x.data(), t.data(), w.defined() ? w.data() : nullptr, elem.data(), ws.ptr());
  check_finite(op, bad, {{"logits", &x}, {"targets", &t}});
  Tensor y = reduce(kt, elem, reduction, n, ws);
  if (wants_grad({&x, &t})) {
    record({&y}, [x, t, w, y, reduction, n, &kt]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot gx = grad_slot(x), gt = grad_slot(t);
      kt.bce_logits_backward(n, x.data(), t.data(), w.defined() ? w.data() : nullptr, upstream(gy, reduction, n),
                             gx.ptr, gx.mode, gt.ptr, gt.mode);
    });
  }
  return y;
}

Tensor giou_loss(const Tensor& boxes1_in, const Tensor& boxes2_in, Reduction reduction, float eps) {
  const char* op = "giou_loss";
  check_defined(op, boxes1_in, "boxes1");
  check_defined(op, boxes2_in, "boxes2");
  const Kernels& kt = kernels_for(common_device(op, {&boxes1_in, &boxes2_in}));
  DETNAS_CHECK(boxes1_in.dim() == 2 && boxes1_in.size(1) == 4, op, ": boxes1 must be (N,4), got ",
               shape_str(boxes1_in.shape()));
  check_same_shape(op, boxes1_in, boxes2_in);
  DETNAS_CHECK(eps >= 0.0f, op, ": eps ", eps, " must be >= 0");
  check_mean_nonempty(op, boxes1_in, reduction);
  Tensor a = boxes1_in.contiguous(), b = boxes2_in.contiguous();
  const int64_t N = a.size(0);
  Tensor elem = Tensor::empty({N}, a.device());
  const Workspace ws(kt.reduce_workspace_bytes(N), a.device());
  int64_t bad = kt.giou_loss_forward(N, a.data(), b.data(), eps, elem.data(), ws.ptr());
  check_finite(op, bad, {{"boxes1", &a}, {"boxes2", &b}});
  Tensor y = reduce(kt, elem, reduction, N, ws);
  if (wants_grad({&a, &b})) {
    record({&y}, [a, b, y, eps, reduction, N, &kt]() {
      Tensor gy = y.grad();
      if (!gy.defined()) return;
      GradSlot ga = grad_slot(a), gb = grad_slot(b);
      kt.giou_loss_backward(N, a.data(), b.data(), eps, upstream(gy, reduction, N), ga.ptr, ga.mode, gb.ptr, gb.mode);
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
  const Tensor x = logits_in.to(Device::CPU).contiguous();
  return float(double(kernels::cpu::top1_correct(N, K, x.data(), labels.data())) / double(count));
}

}  // namespace detnas::rt::ops
