// `detnas train|pretrain --dump-steps K --dump-dir DIR` (cli/train_dump.h, issue 19
// step parity): the files exist with the shapes a twin needs (init weights under
// our names, each step's padded images and boxes, path, LR, losses, gradient norm;
// FPN Faster R-CNN's sampled anchors, proposals and sampled RoIs; pretrain's
// class labels and dropout mask), the recorded random choices are legal draws
// of the samplers, and dumping does not change training (the checkpoints of a
// run with and without it hold bit-identical tensors).
#include <doctest/doctest.h>
#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <set>
#include <sstream>

#include "nn/safetensors.h"
#include "runtime/fs.h"
#include "runtime/ops_elementwise.h"
#include "tests/test_util.h"

using namespace detnas;

namespace {

bool succeeded(const test::RunResult& r) { return r.exited() && r.exit_code() == 0; }

bool same_tensors(const std::string& a, const std::string& b, std::string* why) {
  nn::SafetensorsFile fa = nn::load_safetensors(a), fb = nn::load_safetensors(b);
  if (fa.tensors.size() != fb.tensors.size()) return *why = "tensor counts differ", false;
  for (size_t i = 0; i < fa.tensors.size(); ++i) {
    const auto& [na, ta] = fa.tensors[i];
    const auto& [nb, tb] = fb.tensors[i];
    if (na != nb || ta.shape() != tb.shape()) return *why = na + " vs " + nb, false;
    if (std::memcmp(ta.data(), tb.data(), size_t(ta.numel()) * sizeof(float)) != 0) return *why = na, false;
  }
  return true;
}

std::vector<int64_t> ints(simdjson::dom::element a) {
  std::vector<int64_t> v;
  for (simdjson::dom::element e : a.get_array()) v.push_back(int64_t(e));
  return v;
}

// Strictly increasing indices in [0, n).
bool sorted_in_range(const std::vector<int64_t>& v, int64_t n) {
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] < 0 || v[i] >= n || (i > 0 && v[i] <= v[i - 1])) return false;
  return true;
}

bool disjoint(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  std::vector<int64_t> both;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(both));
  return both.empty();
}

// The small training run of these tests, plus `extra`.
std::vector<std::string> train_args(const std::string& bin, const std::string& data, std::vector<std::string> extra) {
  extra.insert(extra.begin(), {"--data", data});
  return test::argv_words(bin,
                          "train --iters 2 --batch 2 --short-side 64 --max-size 96 --fpn-channels 16 --tower-depth 1 "
                          "--eval-every 0 --warmup 1 --workers 1 --threads 1 --pretrained none",
                          extra);
}

// Runs the command built by `args` twice, into DIR/plain and into DIR/dumped with
// --dump-steps 2 --dump-dir DIR/dump, and checks that dumping changed nothing
// (bit-identical checkpoints). Returns the dump folder.
std::string run_plain_and_dumped(const std::function<std::vector<std::string>(std::vector<std::string>)>& args,
                                 const std::string& dir) {
  test::RunResult r = test::run_argv(args({"--out", dir + "/plain"}), 300);
  REQUIRE_MESSAGE(succeeded(r), r.out);
  const std::string dump = dir + "/dump";
  r = test::run_argv(args({"--out", dir + "/dumped", "--dump-steps", "2", "--dump-dir", dump}), 300);
  REQUIRE_MESSAGE(succeeded(r), r.out);
  std::string why;
  CHECK_MESSAGE(same_tensors(dir + "/plain/last.safetensors", dir + "/dumped/last.safetensors", &why), why);
  return dump;
}

}  // namespace

TEST_CASE("dropout: mask_out is the mask the op applied") {
  Rng rng(7), again(7);
  rt::Tensor x = rt::Tensor::full({2, 3, 4, 5}, 2.0f), mask;
  rt::Tensor y = rt::ops::dropout(x, 0.25f, rng, &mask);
  rt::Tensor y2 = rt::ops::dropout(x, 0.25f, again);  // the same draws without recording
  REQUIRE(mask.shape() == x.shape());
  int64_t zeros = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    CHECK((mask.data()[i] == 0.0f || mask.data()[i] == 1.0f / 0.75f));
    CHECK(y.data()[i] == x.data()[i] * mask.data()[i]);
    CHECK(y2.data()[i] == y.data()[i]);
    zeros += mask.data()[i] == 0.0f;
  }
  CHECK(zeros > 0);
  CHECK(zeros < x.numel());
  CHECK(rng.state0() == again.state0());
  rt::Tensor ones;
  rt::ops::dropout(x, 0.0f, rng, &ones);
  REQUIRE(ones.shape() == x.shape());
  CHECK(ones.data()[0] == 1.0f);
}

TEST_CASE("train --dump-steps: init weights and per-step batches; training unchanged") {
  const std::string bin = test::detnas_binary();
  REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "build " << bin << " first (make test builds it)");
  const std::string dir = "/tmp/detnas_train_dump_" + std::to_string(::getpid());
  make_dirs(dir);
  test::RunResult r = test::run_argv(
      {bin, "make-data", "--out", dir + "/d", "--train", "6", "--val", "2", "--size", "64", "--cls-train", "2"});
  REQUIRE_MESSAGE(succeeded(r), r.out);
  auto plus = [&](std::vector<std::string> extra) {
    extra.insert(extra.end(), {"--detector", "retinanet"});
    return train_args(bin, dir + "/d/det", extra);
  };
  const std::string dump = run_plain_and_dumped(plus, dir);

  // init.safetensors: every parameter and buffer of the checkpoint, no optimizer state.
  nn::SafetensorsFile init = nn::load_safetensors(dump + "/init.safetensors");
  nn::SafetensorsFile last = nn::load_safetensors(dir + "/dumped/last.safetensors");
  std::set<std::string> model_names;
  for (const auto& [n, t] : last.tensors)
    if (n.rfind("optim.", 0) != 0) model_names.insert(n);
  std::set<std::string> init_names;
  for (const auto& [n, t] : init.tensors) {
    init_names.insert(n);
    REQUIRE(last.find(n) != nullptr);
    CHECK(last.find(n)->shape() == t.shape());
  }
  CHECK(init_names == model_names);
  CHECK(file_exists(dump + "/config.json"));
  CHECK(read_file(dump + "/config.json").find("\"clip_grad\"") != std::string::npos);

  for (const char* step : {"step_0001", "step_0002"}) {
    CAPTURE(step);
    nn::SafetensorsFile s = nn::load_safetensors(dump + "/" + step + ".safetensors");
    const rt::Tensor* images = s.find("images");
    REQUIRE(images != nullptr);
    REQUIRE(images->dim() == 4);
    CHECK(images->size(0) == 2);
    CHECK(images->size(1) == 3);
    CHECK(images->size(2) % 32 == 0);
    CHECK(images->size(3) % 32 == 0);
    const std::string js = read_file(dump + "/" + step + ".json");
    for (const char* key :
         {"\"lr\"", "\"path\"", "\"labels\"", "\"num_boxes\"", "\"cls\"", "\"box\"", "\"total\"", "\"grad_norm\""})
      CHECK_MESSAGE(js.find(key) != std::string::npos, key);
    for (const auto& [n, t] : s.tensors)
      if (n != "images") {
        CHECK(n.rfind("boxes.", 0) == 0);
        CHECK(t.dim() == 2);
        CHECK(t.size(1) == 4);
      }
  }
  CHECK(!file_exists(dump + "/step_0003.json"));
  remove_all(dir);
}

TEST_CASE("train --detector fpn --dump-steps: sampled anchors, proposals and RoIs; training unchanged") {
  const std::string bin = test::detnas_binary();
  REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "build " << bin << " first (make test builds it)");
  const std::string dir = "/tmp/detnas_train_dump_fpn_" + std::to_string(::getpid());
  make_dirs(dir);
  test::RunResult r = test::run_argv(
      {bin, "make-data", "--kind", "det", "--out", dir + "/d", "--train", "6", "--val", "2", "--size", "64"});
  REQUIRE_MESSAGE(succeeded(r), r.out);
  const int64_t post_nms = 20, roi_batch = 16;
  auto plus = [&](std::vector<std::string> extra) {
    extra.insert(extra.end(), {"--detector", "fpn", "--rpn-pre-nms-train", "50", "--rpn-post-nms-train",
                               std::to_string(post_nms), "--roi-batch", std::to_string(roi_batch)});
    return train_args(bin, dir + "/d/det", extra);
  };
  const std::string dump = run_plain_and_dumped(plus, dir);
  CHECK(read_file(dump + "/config.json").find("\"fpn_bn_momentum\"") != std::string::npos);

  for (const char* step : {"step_0001", "step_0002"}) {
    CAPTURE(step);
    nn::SafetensorsFile s = nn::load_safetensors(dump + "/" + step + ".safetensors");
    const rt::Tensor* images = s.find("images");
    REQUIRE(images != nullptr);
    REQUIRE(images->size(0) == 2);
    // RPN anchors per image: 3 per location on P2..P6 (P6 = ceil(P5 / 2)).
    int64_t T = 0;
    for (int64_t l = 0, h = images->size(2) / 4, w = images->size(3) / 4; l < 5; ++l, h = (h + 1) / 2, w = (w + 1) / 2)
      T += 3 * h * w;
    simdjson::dom::parser parser;
    simdjson::dom::element js = parser.load(dump + "/" + step + ".json");
    for (const char* key : {"rpn_cls", "rpn_box", "roi_cls", "roi_box"})
      CHECK(js["losses"][key].error() == simdjson::SUCCESS);
    simdjson::dom::array rpn = js["rpn_sampled"], roi = js["roi_sampled"];
    const std::vector<int64_t> num_boxes = ints(js["num_boxes"]);
    REQUIRE(rpn.size() == 2);
    REQUIRE(roi.size() == 2);
    for (size_t i = 0; i < 2; ++i) {
      CAPTURE(i);
      const int64_t M = num_boxes[i];
      const std::vector<int64_t> rp = ints(rpn.at(i)["pos"]), rn = ints(rpn.at(i)["neg"]);
      CHECK(sorted_in_range(rp, T));
      CHECK(sorted_in_range(rn, T));
      CHECK(disjoint(rp, rn));
      CHECK(rp.size() <= 128);              // 256 at 0.5 positive
      CHECK(rp.size() + rn.size() == 256);  // far more negatives than needed in a 64-pixel image
      if (M > 0) CHECK(!rp.empty());        // low-quality matches: every GT box has an anchor
      const rt::Tensor* props = s.find("proposals." + std::to_string(i));
      REQUIRE(props != nullptr);
      REQUIRE(props->dim() == 2);
      CHECK(props->size(1) == 4);
      CHECK(props->size(0) <= post_nms);
      const int64_t P = props->size(0);
      const std::vector<int64_t> qp = ints(roi.at(i)["pos"]), qn = ints(roi.at(i)["neg"]);
      CHECK(sorted_in_range(qp, P + M));
      CHECK(sorted_in_range(qn, P + M));
      CHECK(disjoint(qp, qn));
      // The appended GT boxes are positives (IoU 1 with themselves): at least min(4, M) of them.
      CHECK(int64_t(qp.size()) <= roi_batch / 4);  // 0.25 positive
      CHECK(int64_t(qp.size()) >= std::min<int64_t>(roi_batch / 4, M));
      CHECK(qp.size() + qn.size() <= size_t(roi_batch));
    }
  }
  remove_all(dir);
}

TEST_CASE("pretrain --dump-steps: images, classes and dropout masks; training unchanged") {
  const std::string bin = test::detnas_binary();
  REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "build " << bin << " first (make test builds it)");
  const std::string dir = "/tmp/detnas_pretrain_dump_" + std::to_string(::getpid());
  make_dirs(dir);
  test::RunResult r = test::run_argv({bin, "make-data", "--kind", "cls", "--out", dir + "/d", "--cls-train", "3",
                                      "--cls-val", "1", "--cls-size", "32"});
  REQUIRE_MESSAGE(succeeded(r), r.out);
  auto args = [&](std::vector<std::string> extra) {
    extra.insert(extra.begin(), {"--data", dir + "/d/cls"});
    return test::argv_words(bin, "pretrain --iters 2 --batch 4 --input 32 --eval-every 0 --workers 1 --threads 1",
                            extra);
  };
  const std::string dump = run_plain_and_dumped(args, dir);
  nn::SafetensorsFile init = nn::load_safetensors(dump + "/init.safetensors");
  CHECK(init.find("head.fc.weight") != nullptr);
  CHECK(init.find("head.pre.bn.running_var") != nullptr);
  const std::string cfg = read_file(dump + "/config.json");
  for (const char* key : {"\"label_smoothing\"", "\"dropout\"", "\"num_classes\"", "\"momentum\""})
    CHECK_MESSAGE(cfg.find(key) != std::string::npos, key);
  for (const char* step : {"step_0001", "step_0002"}) {
    CAPTURE(step);
    nn::SafetensorsFile s = nn::load_safetensors(dump + "/" + step + ".safetensors");
    const rt::Tensor* images = s.find("images");
    REQUIRE(images != nullptr);
    CHECK(images->shape() == rt::Shape{4, 3, 32, 32});
    const rt::Tensor* mask = s.find("dropout_mask");
    REQUIRE(mask != nullptr);
    REQUIRE(mask->dim() == 4);
    CHECK(mask->size(0) == 4);
    CHECK(mask->size(1) == 512);  // the tiny space's last conv
    for (int64_t k = 0; k < mask->numel(); ++k) {
      const float m = mask->data()[k];
      if (m != 0.0f && m != 1.0f / 0.8f) FAIL_CHECK("dropout mask value " << m << " at " << k);
    }
    simdjson::dom::parser parser;
    simdjson::dom::element js = parser.load(dump + "/" + step + ".json");
    const std::vector<int64_t> labels = ints(js["labels"]);
    CHECK(labels.size() == 4);
    for (int64_t l : labels) CHECK((l >= 0 && l < 10));
    CHECK(double(js["losses"]["cls"]) == double(js["total"]));
    CHECK(double(js["grad_norm"]) > 0);
    CHECK(ints(js["path"]).size() == 10);
  }
  CHECK(!file_exists(dump + "/step_0003.json"));
  remove_all(dir);
}
