// The `cuda` suite, part 2: tensors, the optimizer and whole training steps on
// the device against the CPU (part 1, tests/test_cuda.cpp: every kernel and op).
// Skipped visibly without a usable GPU; DETNAS_REQUIRE_CUDA=1 (make test-cuda)
// turns a missing GPU into a failure. The end-to-end training steps (RetinaNet,
// FPN Faster R-CNN) compare a whole network, so their bounds are per tensor,
// relative to the tensor's largest CPU value (stated at the cases). The step
// harness itself runs here without a GPU ("cuda (host): ..." cases: two CPU runs
// agree bit for bit).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "data/synthetic.h"
#include "data/transforms.h"
#include "detect/detector.h"
#include "detect/retinanet.h"
#include "nn/layers.h"
#include "nn/optimizer.h"
#include "runtime/autograd.h"
#include "runtime/ops_elementwise.h"
#include "runtime/ops_loss.h"
#include "runtime/ops_shape.h"
#include "runtime/runtime.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"
#ifdef DETNAS_CUDA
#include "kernels/gemm_cublas.h"
#endif

using namespace detnas;
using test::close;
using test::gpu_or_skip;

TEST_CASE("cuda: Tensor copies of strided CUDA views, to() and copy_from across devices") {
  if (!gpu_or_skip("strided tensor copies")) return;
#ifdef DETNAS_CUDA
  using rt::Tensor;
  const Tensor x = Tensor::from_vector({2, 6, 5}, test::randn_f(60, 151));
  const Tensor xd = x.to(rt::Device::CUDA);
  const Tensor vd = xd.narrow(1, 1, 4), vc = x.narrow(1, 1, 4);
  CHECK(!vd.is_contiguous());
  CHECK(vd.contiguous().to(rt::Device::CPU).to_vector() == vc.contiguous().to_vector());
  CHECK(vd.to(rt::Device::CPU).to_vector() == vc.to_vector());
  Tensor host_dst = Tensor::zeros({2, 6, 5});
  host_dst.narrow(1, 1, 4).copy_from(vd);  // strided destination across devices
  Tensor ref = Tensor::zeros({2, 6, 5});
  ref.narrow(1, 1, 4).copy_from(vc);
  CHECK(host_dst.to_vector() == ref.to_vector());
  Tensor dev_dst = Tensor::zeros({2, 6, 5}, rt::Device::CUDA);
  dev_dst.narrow(1, 0, 4).copy_from(vd);  // strided on both sides, on the device
  Tensor ref2 = Tensor::zeros({2, 6, 5});
  ref2.narrow(1, 0, 4).copy_from(vc);
  CHECK(dev_dst.to(rt::Device::CPU).to_vector() == ref2.to_vector());
#endif
}

TEST_CASE("cuda (host): rt::permute reproduces flatten_head_output, forward and gradient (bit-exact)") {
  // The device-neutral form of RetinaNet's head flatten: (N, A*C, H, W) ->
  // (N, A, C, HW) -> permute {0, 3, 1, 2} -> (N, H*W*A, C).
  using rt::Tensor;
  const int64_t N = 2, A = 3, C = 5, H = 3, W = 4;
  Tensor x1 = Tensor::from_vector({N, A * C, H, W}, test::randn_f(N * A * C * H * W, 171));
  Tensor x2 = x1.clone();
  x1.requires_grad_(), x2.requires_grad_();
  const Tensor g = Tensor::from_vector({N, H * W * A, C}, test::randn_f(N * H * W * A * C, 172));
  Tensor y1 = det::flatten_head_output(x1, C);
  rt::backward(rt::ops::sum(rt::ops::mul(y1, g)));  // (the tape is global: one graph at a time)
  Tensor y2 = rt::permute(x2.reshape({N, A, C, H * W}), {0, 3, 1, 2}).reshape({N, H * W * A, C});
  CHECK(y2.to_vector() == y1.to_vector());
  rt::backward(rt::ops::add(rt::ops::sum(rt::ops::mul(y2, g)), rt::ops::sum(rt::ops::mul(y2, g))));
  std::vector<float> twice = x1.grad().to_vector();  // y2's loss counts g twice: permute backward accumulates
  for (float& v : twice) v *= 2.0f;
  CHECK(x2.grad().to_vector() == twice);
  CHECK_THROWS_AS(rt::permute(x1, {0, 1, 1, 2}), Error);
}

TEST_CASE("cuda: rt::permute on CUDA matches the CPU (forward and gradient, exact)") {
  if (!gpu_or_skip("permute")) return;
#ifdef DETNAS_CUDA
  using rt::Tensor;
  const Tensor x = Tensor::from_vector({2, 15, 3, 4}, test::randn_f(360, 173));
  const Tensor w = Tensor::from_vector({2, 36, 5}, test::randn_f(360, 174));
  auto run = [&](rt::Device dev) {
    Tensor xs = x.to(dev);
    xs.requires_grad_();
    Tensor y = rt::permute(xs.reshape({2, 3, 5, 12}), {0, 3, 1, 2}).reshape({2, 36, 5});
    rt::backward(rt::ops::sum(rt::ops::mul(y, w.to(dev))));
    return std::make_pair(y.to_vector(), xs.grad().to_vector());
  };
  const auto c = run(rt::Device::CPU), gpu = run(rt::Device::CUDA);
  CHECK(gpu.first == c.first);
  CHECK(gpu.second == c.second);
#endif
}

TEST_CASE("cuda: Sgd step and clip_grad_norm on CUDA parameters match the CPU; Module::to round trip") {
  if (!gpu_or_skip("optimizer on the device")) return;
#ifdef DETNAS_CUDA
  using rt::Tensor;
  const std::vector<float> w1 = test::randn_f(300, 161), w2 = test::randn_f(7, 162);
  const std::vector<float> g1 = test::randn_f(300, 163, 3.0), g2 = test::randn_f(7, 164, 3.0);
  struct Out {
    double norm;
    std::vector<float> w1, w2, m1;
  };
  auto run = [&](rt::Device dev) {
    Tensor p1 = Tensor::from_vector({300}, w1).to(dev), p2 = Tensor::from_vector({7}, w2).to(dev);
    std::vector<nn::ParamRef> ps = {{"w", p1, nn::ParamKind::ConvWeight}, {"b", p2, nn::ParamKind::Bias}};
    nn::Sgd sgd(ps, nn::SgdConfig::detection());
    Out o{};
    for (int step = 0; step < 2; ++step) {  // fresh, then existing momentum buffers
      p1.set_grad(Tensor::from_vector({300}, g1).to(dev));
      p2.set_grad(Tensor::from_vector({7}, g2).to(dev));
      o.norm = sgd.clip_grad_norm(5.0);
      sgd.step(0.05);
    }
    o.w1 = p1.to_vector(), o.w2 = p2.to_vector();
    o.m1 = sgd.state().at(0).second.to_vector();  // state() is on the host
    CHECK(sgd.state().at(0).second.device() == rt::Device::CPU);
    return o;
  };
  const Out c = run(rt::Device::CPU), g = run(rt::Device::CUDA);
  CHECK(std::fabs(g.norm - c.norm) <= 1e-12 * c.norm);
  CHECK(close("w after 2 steps", g.w1, c.w1, test::Tol::elementwise()));
  CHECK(close("bias after 2 steps", g.w2, c.w2, test::Tol::elementwise()));
  CHECK(close("momentum", g.m1, c.m1, test::Tol::elementwise()));
  // Module::to: the layer's members follow (same TensorImpl), values survive the round trip.
  Rng rng(3);
  nn::ConvOptions co;
  co.in = 3, co.out = 4, co.kernel = 3, co.bias = nn::Bias::With;
  nn::Conv2d conv(co, rng);
  const std::vector<float> before = conv.weight.to_vector();
  conv.to(rt::Device::CUDA);
  CHECK(conv.weight.device() == rt::Device::CUDA);
  CHECK(conv.parameters().at(1).tensor.device() == rt::Device::CUDA);
  conv.to(rt::Device::CPU);
  CHECK(conv.weight.device() == rt::Device::CPU);
  CHECK(conv.weight.to_vector() == before);
  nn::BatchNorm2d bn(4);
  bn.to(rt::Device::CUDA);
  bn.running_mean.copy_from(Tensor::full({4}, 3.0f));
  bn.running_var.copy_from(Tensor::full({4}, 5.0f));
  bn.reset_running_stats();  // on the device: mean 0, var 1
  CHECK(bn.running_mean.device() == rt::Device::CUDA);
  CHECK(bn.running_mean.to_vector() == std::vector<float>(4, 0.0f));
  CHECK(bn.running_var.to_vector() == std::vector<float>(4, 1.0f));
#endif
}

namespace {
// One training step of a small detector (tiny supernet space on a fixed path,
// 16-channel FPN, 2 synthetic 64x64 images) on `dev`, from weights that depend
// only on the seeds: losses, every parameter gradient, then the parameters and
// buffers after one SGD step (detection recipe, lr 0.01), all copied to the host.
struct StepResult {
  std::vector<std::pair<std::string, float>> losses;
  std::vector<std::pair<std::string, std::vector<float>>> grads, after;
};

constexpr double kStepLr = 0.01;  // the SGD step of the harness
const nn::Arch kStepPath = {0, 3, 1, 2, 3, 0, 1, 2, 3, 1};

det::DetectorConfig step_config(const char* kind) {
  det::DetectorConfig c;
  c.kind = kind;
  c.num_classes = 5;
  c.fpn_channels = 16;
  c.head_depth = 1;
  c.fc_dim = 32;
  c.rpn_pre_nms_train = 300, c.rpn_post_nms_train = 100;
  c.rpn_pre_nms_test = 300, c.rpn_post_nms_test = 100;
  c.roi_batch = 64;
  c.seed = 5;
  return c;
}

StepResult detector_step(const det::DetectorConfig& cfg, rt::Device dev) {
  nn::BackboneOptions bo;
  bo.space = "tiny";
  bo.kind = nn::NetKind::Supernet;
  bo.seed = 3;
  std::unique_ptr<det::Detector> net = det::make_detector(bo, cfg);
  net->to(dev);
  net->set_mode(nn::Mode::Train);
  std::vector<data::SyntheticSample> samples;
  for (int64_t i = 0; i < 2; ++i)
    samples.push_back(data::render_detection_sample(7, data::SyntheticSplit::Train, i, 64));
  std::vector<const data::Image*> imgs;
  std::vector<det::Targets> targets;
  for (const auto& s : samples) {
    imgs.push_back(&s.image);
    det::Targets t;
    for (const auto& o : s.objects) {
      if (o.iscrowd) continue;
      t.boxes.insert(t.boxes.end(),
                     {float(o.bbox[0]), float(o.bbox[1]), float(o.bbox[0] + o.bbox[2]), float(o.bbox[1] + o.bbox[3])});
      t.labels.push_back(o.category_id % cfg.num_classes);
    }
    targets.push_back(t);
  }
  const rt::Tensor images = data::batch_to_tensor(imgs).to(dev);  // the one upload of the data path
  det::DetLosses l = net->forward_train(images, targets, kStepPath);
  StepResult r;
  for (const auto& [name, t] : l.parts) r.losses.emplace_back(name, t.item());
  r.losses.emplace_back("total", l.total.item());
  rt::backward(l.total);
  for (const auto& p : net->parameters())
    if (p.tensor.grad().defined()) r.grads.emplace_back(p.name, p.tensor.grad().to_vector());
  nn::Sgd sgd(net->parameters(), nn::SgdConfig::detection());
  sgd.step(kStepLr);
  for (const auto& p : net->parameters()) r.after.emplace_back(p.name, p.tensor.to_vector());
  for (const auto& b : net->buffers()) r.after.emplace_back(b.name, b.tensor.to_vector());
  return r;
}

// Tolerance scale of one tensor: its largest CPU magnitude, floored at
// kScaleFloor of the largest magnitude among all tensors of the comparison.
// Tensors whose exact value is zero (the gradient of a conv bias or BN shift that
// feeds a batch norm through linear ops only; the running mean of such a BN's
// input) hold only rounding noise (~1e-10 here), and a bound relative to that
// noise itself compares two independent roundings.
constexpr double kScaleFloor = 1e-4;
double max_abs_f(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}
double floor_of(const std::vector<std::pair<std::string, std::vector<float>>>& ts) {
  double m = 0;
  for (const auto& t : ts) m = std::max(m, max_abs_f(t.second));
  return std::max(kScaleFloor * m, 1e-30);
}

// Names and sizes of `got` and `ref` must match exactly.
bool same_names(const char* what, const std::vector<std::pair<std::string, std::vector<float>>>& got,
                const std::vector<std::pair<std::string, std::vector<float>>>& ref) {
  if (got.size() != ref.size()) {
    MESSAGE(what, ": ", got.size(), " tensors vs ", ref.size(), " on the CPU");
    return false;
  }
  for (size_t i = 0; i < ref.size(); ++i)
    if (got[i].first != ref[i].first || got[i].second.size() != ref[i].second.size()) {
      MESSAGE(what, ": ", got[i].first, " vs ", ref[i].first);
      return false;
    }
  return true;
}

// A step on the device against the CPU, every tensor checked (one failure does
// not hide the others). Gradients: |g - c| <= grad_rel * scale + grad_rel * |c|.
// Parameters after the step: SGD moves each by at most 2 * lr times its gradient
// (first step: the momentum buffer is the gradient; the detection recipe steps
// biases at twice the rate; weight decay acts on the same weights on both
// devices), so their bound is 2 * lr times the gradient's bound plus
// after_rel * scale + after_rel * |c|; buffers (BN running statistics) get the
// latter alone.
bool same_step(const StepResult& g, const StepResult& c, double grad_rel, double after_rel) {
  if (!same_names("gradient", g.grads, c.grads) || !same_names("after step", g.after, c.after)) return false;
  bool ok = true;
  std::map<std::string, double> grad_atol;
  const double gfloor = floor_of(c.grads);
  for (size_t i = 0; i < c.grads.size(); ++i) {
    const std::vector<double> r = test::to_double(c.grads[i].second);
    const test::Tol tol{grad_rel * std::max(max_abs_f(c.grads[i].second), gfloor), grad_rel};
    grad_atol[c.grads[i].first] = tol.atol + tol.rtol * max_abs_f(c.grads[i].second);
    ok = test::check_close("gradient " + c.grads[i].first, test::to_double(g.grads[i].second), r, {int64_t(r.size())},
                           tol) &&
         ok;
  }
  const double afloor = floor_of(c.after);
  for (size_t i = 0; i < c.after.size(); ++i) {
    const std::vector<double> r = test::to_double(c.after[i].second);
    test::Tol tol{after_rel * std::max(max_abs_f(c.after[i].second), afloor), after_rel};
    auto it = grad_atol.find(c.after[i].first);
    if (it != grad_atol.end()) tol.atol += 2.0 * kStepLr * it->second;
    ok = test::check_close("after step " + c.after[i].first, test::to_double(g.after[i].second), r, {int64_t(r.size())},
                           tol) &&
         ok;
  }
  return ok;
}
}  // namespace

TEST_CASE("cuda (host): the detector-step harness is deterministic on the CPU (RetinaNet and FPN)") {
  // Runs without a GPU: the same harness as the CPU-vs-CUDA step cases, twice on the CPU.
  for (const char* kind : {"retinanet", "fpn"}) {
    CAPTURE(kind);
    const StepResult a = detector_step(step_config(kind), rt::Device::CPU);
    const StepResult b = detector_step(step_config(kind), rt::Device::CPU);
    REQUIRE(a.losses.size() == b.losses.size());
    for (size_t i = 0; i < a.losses.size(); ++i) CHECK(a.losses[i].second == b.losses[i].second);
    CHECK(a.losses.back().second > 0);
    CHECK(a.grads.size() > 10);
    CHECK(same_step(a, b, 0.0, 0.0));  // bit for bit
  }
}

TEST_CASE("cuda (host): precision setting parses fp32 / tf32 and reaches the cuBLAS/cuDNN switch") {
  CHECK(rt::parse_precision("fp32") == rt::Precision::FP32);
  CHECK(rt::parse_precision("tf32") == rt::Precision::TF32);
  CHECK_THROWS_AS(rt::parse_precision("fp16"), Error);
  rt::set_precision(rt::Precision::TF32);
  CHECK(rt::precision() == rt::Precision::TF32);
#ifdef DETNAS_CUDA
  CHECK(kernels::cuda::tf32_enabled());
#endif
  rt::set_precision(rt::Precision::FP32);
  CHECK(rt::precision() == rt::Precision::FP32);
#ifdef DETNAS_CUDA
  CHECK(!kernels::cuda::tf32_enabled());
#endif
  CHECK(std::string(rt::precision_name(rt::Precision::TF32)) == "tf32");
}

TEST_CASE("cuda: one RetinaNet training step on CUDA matches the CPU (loss, every gradient, updated weights)") {
  if (!gpu_or_skip("RetinaNet training step")) return;
  // Bounds: a 20-layer network in fp32 with cuDNN/cuBLAS (TF32 off) summing in a
  // different order than the CPU: losses within 1e-4 relative; each gradient
  // tensor within 1e-3 of its scale (largest CPU element, floored at 1e-4 of the
  // largest gradient: see same_step) + 1e-3 relative; parameters after the step
  // within 2 lr times that plus 1e-5 of their scale; BN running stats within 1e-5.
  const StepResult c = detector_step(step_config("retinanet"), rt::Device::CPU);
  const StepResult g = detector_step(step_config("retinanet"), rt::Device::CUDA);
  REQUIRE(g.losses.size() == c.losses.size());
  for (size_t i = 0; i < c.losses.size(); ++i) {
    CAPTURE(c.losses[i].first);
    CHECK(std::fabs(g.losses[i].second - c.losses[i].second) <= 1e-4 * (1.0 + std::fabs(c.losses[i].second)));
  }
  CHECK(same_step(g, c, 1e-3, 1e-5));
}

TEST_CASE("cuda: one FPN Faster R-CNN training step on CUDA matches the CPU (loss, every gradient, updated weights)") {
  if (!gpu_or_skip("FPN Faster R-CNN training step")) return;
  // As the RetinaNet step, with one caveat: the proposals depend on the RPN's
  // scores, so a ranking flip between near-equal scores changes the sampled RoIs.
  // The RPN losses (anchors only) keep the RetinaNet bounds; the RoI-head losses
  // and all gradients get 1e-2 of the tensor's scale, the step 1e-4. This step is
  // ill-conditioned: scaling the input image by 1 +- 6e-6 moves CPU gradients by
  // up to 19% of their largest value (stem conv) and the box head's by 2-6%, so
  // fp32 summation order alone moves them by a few 1e-3 (emulated GPU: 4.2e-3).
  const StepResult c = detector_step(step_config("fpn"), rt::Device::CPU);
  const StepResult g = detector_step(step_config("fpn"), rt::Device::CUDA);
  REQUIRE(g.losses.size() == c.losses.size());
  for (size_t i = 0; i < c.losses.size(); ++i) {
    CAPTURE(c.losses[i].first);
    const double tol = c.losses[i].first.rfind("rpn", 0) == 0 ? 1e-4 : 1e-2;
    CHECK(std::fabs(g.losses[i].second - c.losses[i].second) <= tol * (1.0 + std::fabs(c.losses[i].second)));
  }
  CHECK(same_step(g, c, 1e-2, 1e-4));
}
