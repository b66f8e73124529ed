// ONNX export (export/onnx_export.h) checked by a runtime nobody here wrote: the
// exported RetinaNet and FPN Faster R-CNN graphs (tiny space; a standalone
// network, a supernet path, both channel-split variants, fixed and dynamic input)
// run in ONNX Runtime (tests/onnx_ort_check.py, from the .venv `make deps`
// creates, or DETNAS_ORT_PYTHON) on the same random input as detnas's Eval-mode
// forward, BN statistics randomised so that folding matters. Without ONNX Runtime
// those cases are skipped visibly; the export itself (checker, strict shape
// inference, files, errors) is checked either way.
#include <doctest/doctest.h>
#include <unistd.h>

#include <string>

#include "detect/faster_rcnn.h"
#include "detect/retinanet.h"
#include "export/onnx_export.h"
#include "nn/safetensors.h"
#include "runtime/fs.h"
#include "tests/test_util.h"

using namespace detnas;
using detnas::rt::Tensor;

namespace {

const nn::Arch kPathA = {0, 3, 1, 2, 3, 0, 1, 2, 3, 1};
const nn::Arch kPathB = {2, 1, 3, 0, 0, 2, 3, 1, 1, 3};

nn::BackboneOptions backbone(nn::NetKind kind, nn::ChannelSplit split = nn::ChannelSplit::ShuffleHalve) {
  nn::BackboneOptions b;
  b.space = "tiny";
  b.kind = kind;
  if (kind == nn::NetKind::Standalone) b.arch = kPathA;
  b.split = split;
  b.seed = 11;
  return b;
}

std::unique_ptr<det::Detector> retinanet(nn::NetKind kind, nn::ChannelSplit split = nn::ChannelSplit::ShuffleHalve) {
  det::RetinaNetOptions o;
  o.num_classes = 3;
  o.fpn_channels = 16;
  o.tower_depth = 2;
  o.seed = 4;
  return std::make_unique<det::RetinaNet>(backbone(kind, split), o);
}

std::unique_ptr<det::Detector> faster_rcnn(nn::NetKind kind) {
  det::FasterRcnnOptions o;
  o.num_classes = 4;
  o.fpn_channels = 16;
  o.head_depth = 2;
  o.fc_dim = 32;
  o.seed = 6;
  return std::make_unique<det::FasterRcnn>(backbone(kind), o);
}

// BN scales, shifts and running statistics away from their initial values, so
// that a wrong fold (or none) shows; every other parameter keeps its init.
void randomise_bn(det::Detector& net, uint64_t seed) {
  for (auto& p : net.parameters()) {
    if (p.kind != nn::ParamKind::NormWeight && p.kind != nn::ParamKind::NormBias) continue;
    std::vector<float> v = test::randn_f(p.tensor.numel(), seed++, 0.3);
    for (float& x : v) x += p.kind == nn::ParamKind::NormWeight ? 1.0f : 0.0f;
    p.tensor.copy_from(Tensor::from_vector(p.tensor.shape(), v));
  }
  for (auto& b : net.buffers()) {
    const bool var = b.name.size() > 12 && b.name.compare(b.name.size() - 12, 12, ".running_var") == 0;
    std::vector<float> v = test::randn_f(b.tensor.numel(), seed++, var ? 0.3 : 2.0);
    for (float& x : v) x = var ? std::exp(x) * 4.0f : x;
    b.tensor.copy_from(Tensor::from_vector(b.tensor.shape(), v));
  }
}

Tensor random_images(int64_t n, int64_t h, int64_t w, uint64_t seed) {
  std::vector<float> v = test::randn_f(n * 3 * h * w, seed, 1.0);
  for (float& x : v) x = 127.5f + 60.0f * x;  // pixel-like values around mid-grey
  return Tensor::from_vector({n, 3, h, w}, v);
}

std::string tmp_dir(const std::string& name) {
  const std::string d = "/tmp/detnas_onnx_" + std::to_string(::getpid()) + "_" + name;
  make_dirs(d);
  return d;
}

// The Python with onnxruntime and numpy ("" when there is none).
std::string ort_python() {
  const char* env = std::getenv("DETNAS_ORT_PYTHON");
  const std::string py = env && *env ? env : ".venv/bin/python";
  if (access(py.c_str(), X_OK) != 0) return "";
  int status = -1;
  test::run_capture(py + " -c 'import onnxruntime, numpy' 2>&1", &status);
  return status == 0 ? py : "";
}

// Writes the inputs and detnas's outputs to REF and runs the ONNX Runtime check.
void check_with_ort(const std::string& model, const std::string& ref, const std::map<std::string, Tensor>& inputs,
                    const std::map<std::string, Tensor>& outputs) {
  const std::string py = ort_python();
  if (py.empty()) {
    test::test_skip("ONNX Runtime not installed (make deps creates .venv with it; or set DETNAS_ORT_PYTHON)");
    return;
  }
  nn::NamedTensors t;
  std::string names;
  for (const auto& [n, v] : inputs) {
    t.emplace_back(n, v);
    names += (names.empty() ? "" : ",") + n;
  }
  for (const auto& [n, v] : outputs) t.emplace_back(n, v);
  nn::save_safetensors(ref, t);
  int status = -1;
  const std::string out =
      test::run_capture(py + " tests/onnx_ort_check.py " + model + " " + ref + " " + names + " 2>&1", &status);
  MESSAGE(model << ":\n" << out);
  CHECK_MESSAGE(status == 0, "ONNX Runtime disagrees with detnas (or did not run) on " << model << ":\n" << out);
}

}  // namespace

TEST_CASE("onnx export: RetinaNet standalone, ONNX Runtime equals detnas (fixed input, both channel splits)") {
  for (nn::ChannelSplit split : {nn::ChannelSplit::ShuffleHalve, nn::ChannelSplit::EvenOdd}) {
    auto net = retinanet(nn::NetKind::Standalone, split);
    randomise_bn(*net, 100);
    const std::string d = tmp_dir(split == nn::ChannelSplit::EvenOdd ? "rn_eo" : "rn");
    exporter::OnnxOptions o;
    o.height = 64;
    o.width = 96;
    o.batch = 2;
    o.metadata["detnas.arch"] = nn::format_arch(kPathA);
    exporter::OnnxExport r = exporter::export_onnx(*net, {}, o, d + "/m.onnx");
    REQUIRE(r.files.size() == 1);
    CHECK(file_exists(d + "/m.onnx"));
    CHECK(r.bytes > 0);
    const Tensor x = random_images(2, 64, 96, 7);
    check_with_ort(d + "/m.onnx", d + "/ref.safetensors", {{"images", x}}, exporter::reference_outputs(*net, {}, x));
    remove_all(d);
  }
}

TEST_CASE("onnx export: RetinaNet supernet path, dynamic input") {
  auto net = retinanet(nn::NetKind::Supernet);
  randomise_bn(*net, 200);
  const std::string d = tmp_dir("rn_dyn");
  exporter::OnnxOptions o;
  o.dynamic = true;
  exporter::export_onnx(*net, kPathB, o, d + "/m.onnx");
  // Another size and batch than any fixed default: the graph takes whatever it is given.
  const Tensor x = random_images(1, 96, 64, 8);
  auto ref = exporter::reference_outputs(*net, kPathB, x);
  ref.erase("anchors");  // a dynamic graph has no anchors output
  check_with_ort(d + "/m.onnx", d + "/ref.safetensors", {{"images", x}}, ref);
  // A supernet needs its path.
  CHECK_THROWS_WITH_AS(exporter::export_onnx(*net, {}, o, d + "/n.onnx"), doctest::Contains("--arch"), Error);
  remove_all(d);
}

TEST_CASE("onnx export: FPN Faster R-CNN, both stages, standalone and supernet path") {
  for (nn::NetKind kind : {nn::NetKind::Standalone, nn::NetKind::Supernet}) {
    auto net = faster_rcnn(kind);
    randomise_bn(*net, 300);
    const nn::Arch path = kind == nn::NetKind::Supernet ? kPathB : nn::Arch{};
    const std::string d = tmp_dir(kind == nn::NetKind::Supernet ? "fr_super" : "fr");
    exporter::OnnxOptions o;
    o.height = 64;
    o.width = 64;
    exporter::OnnxExport r = exporter::export_onnx(*net, path, o, d + "/m.onnx");
    REQUIRE(r.files.size() == 2);
    CHECK(r.files[1] == d + "/m.box_head.onnx");
    const Tensor x = random_images(1, 64, 64, 9);
    const Tensor rois = Tensor::from_vector({5, 16, 7, 7}, test::randn_f(5 * 16 * 49, 10, 3.0));
    auto ref = exporter::reference_outputs(*net, path, x, rois);
    std::map<std::string, Tensor> stage1, stage2;
    for (const auto& [n, v] : ref) (n == "class_logits" || n == "box_deltas" ? stage2 : stage1)[n] = v;
    check_with_ort(r.files[0], d + "/ref1.safetensors", {{"images", x}}, stage1);
    check_with_ort(r.files[1], d + "/ref2.safetensors", {{"roi_features", rois}}, stage2);
    remove_all(d);
  }
}

TEST_CASE("onnx export: RetinaNet with post-processing (decode, NMS) gives detnas's detections") {
  auto net = retinanet(nn::NetKind::Standalone);
  randomise_bn(*net, 400);
  // Class logits spread over a wide range, so that many candidates pass the score
  // threshold, NMS has work to do and the 100-detection cut applies.
  for (auto& p : net->parameters())
    if (p.name.rfind("head.cls_logits.", 0) == 0) {
      std::vector<float> v = test::randn_f(p.tensor.numel(), 41, p.kind == nn::ParamKind::Bias ? 0.5 : 0.4);
      p.tensor.copy_from(Tensor::from_vector(p.tensor.shape(), v));
    }
  const std::string d = tmp_dir("rn_nms");
  exporter::OnnxOptions o;
  o.height = 96;
  o.width = 128;
  o.nms = true;
  exporter::export_onnx(*net, {}, o, d + "/m.onnx");
  const Tensor x = random_images(1, 96, 128, 12);
  // The unpadded image is smaller than the graph's input: boxes clip to it.
  const int64_t h = 90, w = 120;
  auto dets = net->detect(x, {{0, h, w, 1.0, 1.0}}, {})[0];
  REQUIRE(dets.size() == 100);  // the cut applies
  std::vector<float> boxes, scores, labels;
  for (const det::Detection& e : dets) {
    boxes.insert(boxes.end(), {e.x1, e.y1, e.x2, e.y2});
    scores.push_back(e.score);
    labels.push_back(float(e.label));
  }
  const int64_t D = int64_t(dets.size());
  check_with_ort(d + "/m.onnx", d + "/ref.safetensors",
                 {{"images", x}, {"image_size", Tensor::from_vector({2}, {float(h), float(w)})}},
                 {{"boxes", Tensor::from_vector({D, 4}, boxes)},
                  {"scores", Tensor::from_vector({D}, scores)},
                  {"labels", Tensor::from_vector({D}, labels)}});
  exporter::OnnxOptions bad = o;
  bad.batch = 2;
  CHECK_THROWS_WITH_AS(exporter::export_onnx(*net, {}, bad, d + "/n.onnx"), doctest::Contains("batch 1"), Error);
  remove_all(d);
}

TEST_CASE("onnx export: bad options") {
  auto net = retinanet(nn::NetKind::Standalone);
  const std::string d = tmp_dir("bad");
  exporter::OnnxOptions o;
  o.height = 100;  // not a multiple of 32
  CHECK_THROWS_WITH_AS(exporter::export_onnx(*net, {}, o, d + "/m.onnx"), doctest::Contains("100x320"), Error);
  o.height = 64;
  o.opset = 9;
  CHECK_THROWS_WITH_AS(exporter::export_onnx(*net, {}, o, d + "/m.onnx"), doctest::Contains("opset 9"), Error);
  o.opset = 17;
  CHECK_THROWS_WITH_AS(exporter::export_onnx(*net, kPathB, o, d + "/m.onnx"), doctest::Contains("arch"), Error);
  CHECK_FALSE(file_exists(d + "/m.onnx"));
  CHECK(exporter::box_head_file("a/b.onnx") == "a/b.box_head.onnx");
  CHECK(exporter::box_head_file("a/b") == "a/b.box_head.onnx");
  remove_all(d);
}
