// Bad input to every command: a missing file, a truncated file, the wrong kind of
// file and an out-of-range option each end `detnas` with a normal non-zero exit
// (never a signal, an abort, an uncaught exception or a hang) and a message that
// names the file, field or value. One tiny generated data set and one tiny
// trained supernet checkpoint, built once on first use, are shared by the cases.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/fs.h"
#include "search/latency.h"
#include "tests/test_util.h"

using namespace detnas;

namespace {

std::string half(const std::string& bytes) { return bytes.substr(0, bytes.size() / 2); }

struct Fixture {
  std::string bin, dir, det, cls, ckpt, setup_error;
  std::string jpg, text_jpg, trunc_jpg, half_json, train_json, val_json;
  std::string trunc_ckpt, halfjson_ckpt, badimg_train, bad_cls_text, bad_cls_trunc;

  Fixture() : bin(test::detnas_binary()), dir("/tmp/detnas_badin_" + std::to_string(::getpid())) {
    if (access(bin.c_str(), X_OK) != 0) {
      setup_error = "build " + bin + " first (make test builds it)";
      return;
    }
    make_dirs(dir);
    det = dir + "/d/det";
    cls = dir + "/d/cls";
    test::RunResult r = test::run_argv({bin, "make-data", "--out", dir + "/d", "--train", "4", "--val", "2", "--size",
                                        "64", "--cls-train", "2", "--cls-val", "1", "--cls-size", "24"});
    if (r.exit_code() != 0) {
      setup_error = "make-data: " + r.describe() + "\n" + r.out;
      return;
    }
    r = test::run_argv({bin,
                        "train",
                        "--detector",
                        "retinanet",
                        "--data",
                        det,
                        "--iters",
                        "1",
                        "--batch",
                        "2",
                        "--short-side",
                        "64",
                        "--max-size",
                        "64",
                        "--fpn-channels",
                        "16",
                        "--tower-depth",
                        "1",
                        "--eval-every",
                        "0",
                        "--bn-images",
                        "2",
                        "--warmup",
                        "1",
                        "--workers",
                        "1",
                        "--seed",
                        "3",
                        "--out",
                        dir + "/t"});
    if (r.exit_code() != 0) {
      setup_error = "train: " + r.describe() + "\n" + r.out;
      return;
    }
    ckpt = dir + "/t/last";
    train_json = det + "/annotations/instances_train.json";
    val_json = det + "/annotations/instances_val.json";
    jpg = det + "/val/" + list_dir(det + "/val")[0];
    const std::string jpeg_bytes = read_file(jpg);
    make_dirs(dir + "/bad");
    text_jpg = dir + "/bad/notes.jpg";
    write_file_atomic(text_jpg, std::string("this is a text file, not an image\n"));
    trunc_jpg = dir + "/bad/cut.jpg";
    write_file_atomic(trunc_jpg, half(jpeg_bytes));
    half_json = dir + "/bad/half.json";
    write_file_atomic(half_json, half(read_file(train_json)));
    // Damaged copies of the trained checkpoint.
    const std::string w = read_file(ckpt + ".safetensors"), m = read_file(ckpt + ".json");
    trunc_ckpt = dir + "/bad/trunc";
    write_file_atomic(trunc_ckpt + ".safetensors", half(w));
    write_file_atomic(trunc_ckpt + ".json", m);
    halfjson_ckpt = dir + "/bad/halfjson";
    write_file_atomic(halfjson_ckpt + ".safetensors", w);
    write_file_atomic(halfjson_ckpt + ".json", half(m));
    // A training image folder whose JPEGs are all cut in half.
    badimg_train = dir + "/bad/train_cut";
    make_dirs(badimg_train);
    for (const std::string& f : list_dir(det + "/train"))
      write_file_atomic(badimg_train + "/" + f, half(read_file(det + "/train/" + f)));
    // ImageFolder sets with a text file / a cut JPEG as every training image.
    for (const std::string& kind : {std::string("text"), std::string("trunc")}) {
      const std::string root = dir + "/bad/cls_" + kind;
      for (const std::string& c : list_dir(cls + "/train")) {
        make_dirs(root + "/train/" + c);
        make_dirs(root + "/val/" + c);
        const std::string img = read_file(cls + "/val/" + c + "/" + list_dir(cls + "/val/" + c)[0]);
        write_file_atomic(root + "/val/" + c + "/0.jpg", img);
        write_file_atomic(root + "/train/" + c + "/0.jpg",
                          kind == "text" ? std::string("not a JPEG at all\n") : half(img));
      }
    }
    bad_cls_text = dir + "/bad/cls_text";
    bad_cls_trunc = dir + "/bad/cls_trunc";
  }
  ~Fixture() {
    if (!dir.empty()) remove_all(dir);
  }
};

Fixture& fx() {
  static Fixture f;
  return f;
}

std::string join(const std::vector<std::string>& args) {
  std::string s;
  for (const std::string& a : args) s += (s.empty() ? "" : " ") + a;
  return s;
}

// BASE with EXTRA applied: an option of EXTRA that BASE already has replaces its
// value there (CLI11 refuses an option given twice); anything else is appended.
std::vector<std::string> merge(std::vector<std::string> base, const std::vector<std::string>& extra) {
  for (size_t i = 0; i < extra.size();) {
    size_t j = 0;
    while (j + 1 < base.size() && !(extra[i].rfind("--", 0) == 0 && base[j] == extra[i])) ++j;
    if (j + 1 < base.size() && i + 1 < extra.size()) {
      base[j + 1] = extra[i + 1];
      i += 2;
    } else {
      base.push_back(extra[i++]);
    }
  }
  return base;
}

// The cases of one command: each `detnas ARGS...` must exit normally with a
// non-zero status and print every needle. run() starts them a few at a time
// (most of each run is process start-up) and checks them in order.
class Cases {
 public:
  void fail(const std::vector<std::string>& args, const std::vector<std::string>& needles) {
    std::vector<std::string> argv{fx().bin};
    argv.insert(argv.end(), args.begin(), args.end());
    cmds_.push_back(std::move(argv));
    needles_.push_back(needles);
  }
  void run() {
    const std::vector<test::RunResult> rs = test::run_argv_all(cmds_, 4, 120);
    for (size_t i = 0; i < rs.size(); ++i) {
      const test::RunResult& r = rs[i];
      const std::string cmd = "detnas " + join({cmds_[i].begin() + 1, cmds_[i].end()});
      CHECK_MESSAGE((r.exited() && r.exit_code() != 0), cmd << "\n  ended with " << r.describe() << ", output:\n"
                                                            << r.out);
      for (const std::string& n : needles_[i])
        CHECK_MESSAGE(r.out.find(n) != std::string::npos, cmd << "\n  output does not name '" << n << "':\n" << r.out);
    }
    MESSAGE(rs.size() << " bad-input runs");
    cmds_.clear();
    needles_.clear();
  }

 private:
  std::vector<std::vector<std::string>> cmds_;
  std::vector<std::vector<std::string>> needles_;
};

#define BAD_INPUT_SETUP()                                \
  Fixture& f = fx();                                     \
  REQUIRE_MESSAGE(f.setup_error.empty(), f.setup_error); \
  Cases c

}  // namespace

TEST_CASE("bad input: make-data") {
  BAD_INPUT_SETUP();
  const std::string out = f.dir + "/md";
  const std::vector<std::string> small{"--train",     "2", "--val",     "1", "--size",     "64",
                                       "--cls-train", "1", "--cls-val", "1", "--cls-size", "24"};
  auto with = [&](const std::vector<std::string>& a, const std::string& o) {
    std::vector<std::string> r{"make-data", "--out", o};
    r.insert(r.end(), small.begin(), small.end());
    return merge(r, a);
  };
  // Missing / wrong kind of file: the output root is a file, or lies under one.
  c.fail(with({}, f.text_jpg), {f.text_jpg});
  c.fail(with({"--kind", "det"}, f.text_jpg + "/sub"), {f.text_jpg});
  // Out-of-range options.
  c.fail(with({"--size", "0"}, out), {"--size", "0"});
  c.fail(with({"--size", "100000"}, out), {"--size", "100000"});
  c.fail(with({"--cls-size", "8"}, out), {"--cls-size", "8"});
  c.fail(with({"--train", "-1"}, out), {"--train", "-1"});
  c.fail(with({"--val", "-3"}, out), {"--val", "-3"});
  c.fail(with({"--cls-train", "-2"}, out), {"--cls-train", "-2"});
  c.fail(with({"--quality", "101"}, out), {"--quality", "101"});
  c.fail(with({"--quality", "0"}, out), {"--quality", "0"});
  c.fail(with({"--kind", "images"}, out), {"--kind", "images"});
  c.fail(with({"--size", "abc"}, out), {"--size", "abc"});
  c.run();
  CHECK_FALSE(path_exists(out + "/det/synthetic.json"));
}

TEST_CASE("bad input: pretrain") {
  BAD_INPUT_SETUP();
  auto pt = [&](const std::vector<std::string>& a, const std::string& data = "") {
    return merge(
        {"pretrain", "--data", data.empty() ? f.cls : data, "--iters", "2", "--batch", "4", "--input", "16",
         "--eval-every", "0", "--eval-paths", "1", "--recal-batches", "1", "--workers", "1", "--out", f.dir + "/pt"},
        a);
  };
  // Missing folder, a file where a folder belongs.
  c.fail(pt({}, f.dir + "/nowhere"), {f.dir + "/nowhere/train"});
  c.fail(pt({}, f.train_json), {f.train_json});
  // Wrong kind of file / truncated file as a training image.
  c.fail(pt({}, f.bad_cls_text), {f.bad_cls_text + "/train/"});
  c.fail(pt({}, f.bad_cls_trunc), {f.bad_cls_trunc + "/train/"});
  // --resume from bad checkpoints in the run folder: JSON files in place of the
  // checkpoint, a truncated one, a detector checkpoint.
  const std::string r1 = f.dir + "/pt_json", r2 = f.dir + "/pt_trunc", r3 = f.dir + "/pt_kind";
  make_dirs(r1);
  make_dirs(r2);
  make_dirs(r3);
  write_file_atomic(r1 + "/last.json", read_file(f.val_json));
  write_file_atomic(r1 + "/last.safetensors", read_file(f.val_json));
  write_file_atomic(r2 + "/last.json", read_file(f.trunc_ckpt + ".json"));
  write_file_atomic(r2 + "/last.safetensors", read_file(f.trunc_ckpt + ".safetensors"));
  write_file_atomic(r3 + "/last.json", read_file(f.ckpt + ".json"));
  write_file_atomic(r3 + "/last.safetensors", read_file(f.ckpt + ".safetensors"));
  auto resume = [&](const std::string& out) { return pt({"--resume", "--out", out}); };
  c.fail(resume(r1), {r1 + "/last.safetensors"});
  c.fail(resume(r2), {r2 + "/last.safetensors"});
  c.fail(resume(r3), {r3 + "/last", "'train' checkpoint"});
  // Out-of-range options.
  c.fail(pt({"--batch", "0"}), {"--batch", "0"});
  c.fail(pt({"--iters", "-5"}), {"--iters", "-5"});
  c.fail(pt({"--threads", "-3"}), {"--threads", "-3"});
  c.fail(pt({"--workers", "-1"}), {"--workers", "-1"});
  c.fail(pt({"--lr", "-1"}), {"--lr", "-1"});
  c.fail(pt({"--lr", "nan"}), {"--lr", "nan"});
  c.fail(pt({"--input", "8"}), {"--input", "8"});
  c.fail(pt({"--space", "2G"}), {"2G"});
  c.fail(pt({"--flops-bins", "300:200"}), {"300:200"});
  c.fail(pt({"--dropout", "1.5"}), {"--dropout", "1.5"});
  c.fail(pt({"--label-smoothing", "-0.1"}), {"--label-smoothing", "-0.1"});
  c.fail(pt({"--crop-scale", "0"}), {"--crop-scale", "0"});
  c.fail(pt({"--log-every", "0"}), {"--log-every", "0"});
  c.fail(pt({"--eval-paths", "0"}), {"--eval-paths", "0"});
  c.fail(pt({"--device", "tpu"}), {"tpu"});
  c.run();
}

TEST_CASE("bad input: flops") {
  BAD_INPUT_SETUP();
  const std::string arch_json = f.dir + "/bad/arch_cut.json";
  write_file_atomic(arch_json, std::string("[0, 1, 2,"));
  c.fail({"flops", "--space", "tiny", "--arch", f.dir + "/no_arch.json"}, {f.dir + "/no_arch.json"});
  c.fail({"flops", "--space", "tiny", "--arch", arch_json}, {arch_json});
  c.fail({"flops", "--space", "tiny", "--arch", f.jpg}, {f.jpg});
  c.fail({"flops", "--space", "tiny", "--arch", "/dev/zero"}, {"/dev/zero"});  // read forever before the fix
  c.fail({"flops", "--space", "tiny", "--arch", "best_arch"}, {"best_arch"});
  c.fail({"flops", "--space", "tiny", "--arch", "1,2,3"}, {"3 choices"});
  c.fail({"flops", "--space", "300M", "--arch", "2,1,2,0,2,1,1,2,3,3,1,3,0,0,3,1,3,1,3,7"}, {"position 19", "7"});
  c.fail({"flops", "--space", "300M", "--arch", "2,1,x"}, {"bad value 'x'"});
  c.fail({"flops", "--space", "5G", "--arch", "1,2"}, {"5G"});
  c.fail({"flops", "--space", "300M", "--arch", "2,1,2,0,2,1,1,2,3,3,1,3,0,0,3,1,3,1,3,2", "--input", "0"},
         {"--input", "0"});
  c.fail({"flops", "--space", "300M", "--arch", "2,1,2,0,2,1,1,2,3,3,1,3,0,0,3,1,3,1,3,2", "--input", "224x"},
         {"224x"});
  c.fail({"flops", "--space", "300M", "--arch", "2,1,2,0,2,1,1,2,3,3,1,3,0,0,3,1,3,1,3,2", "--classes", "0"},
         {"--classes", "0"});
  c.fail({"flops", "--space", "300M"}, {"--arch"});
  c.run();
}

TEST_CASE("bad input: coco-eval") {
  BAD_INPUT_SETUP();
  const std::string dt = f.dir + "/bad/dt.json", dt_cut = f.dir + "/bad/dt_cut.json",
                    dt_img = f.dir + "/bad/dt_img.json";
  const std::string gt = f.val_json;
  write_file_atomic(
      dt, std::string("[{\"image_id\": 424242, \"category_id\": 1, \"bbox\": [1, 2, 3, 4], \"score\": 0.9}]"));
  write_file_atomic(dt_cut, std::string("[{\"image_id\": 1, \"category_id\": 1, \"bbox\": [1, 2,"));
  write_file_atomic(
      dt_img, std::string("[{\"image_id\": \"one\", \"category_id\": 1, \"bbox\": [1, 2, 3, 4], \"score\": 0.9}]"));
  c.fail({"coco-eval", "--gt", f.dir + "/no_gt.json", "--dt", dt}, {f.dir + "/no_gt.json"});
  c.fail({"coco-eval", "--gt", f.half_json, "--dt", dt}, {f.half_json});
  c.fail({"coco-eval", "--gt", f.jpg, "--dt", dt}, {f.jpg});
  c.fail({"coco-eval", "--gt", gt, "--dt", f.dir + "/no_dt.json"}, {f.dir + "/no_dt.json"});
  c.fail({"coco-eval", "--gt", gt, "--dt", dt}, {dt, "image_id", "424242"});
  c.fail({"coco-eval", "--gt", gt, "--dt", dt_cut}, {dt_cut});
  c.fail({"coco-eval", "--gt", gt, "--dt", dt_img}, {dt_img, "image_id"});
  c.fail({"coco-eval", "--gt", gt, "--dt", gt}, {gt});  // a GT object where a results list belongs
  c.fail({"coco-eval", "--gt", gt, "--dt", f.jpg}, {f.jpg});
  c.fail({"coco-eval", "--gt", gt}, {"--dt"});
  c.run();
}

namespace {
std::vector<std::string> train_args(const std::string& detector, const std::string& out,
                                    const std::vector<std::string>& extra) {
  return merge({"train", "--detector",   detector, "--data",      fx().det, "--iters",        "1",  "--batch",
                "2",     "--short-side", "64",     "--max-size",  "64",     "--fpn-channels", "16", "--tower-depth",
                "1",     "--eval-every", "0",      "--bn-images", "2",      "--warmup",       "1",  "--workers",
                "1",     "--out",        out},
               extra);
}

// Every case for RetinaNet; the data, checkpoint and FPN-specific ones for FPN
// (the option checks are the same code).
void train_bad_input(Cases& c, const std::string& detector) {
  const Fixture& f = fx();
  const std::string out = f.dir + "/tr_" + detector;
  auto tr = [&](const std::vector<std::string>& extra) { return train_args(detector, out, extra); };
  // Missing files and folders.
  c.fail(tr({"--data", f.dir + "/nowhere"}), {f.dir + "/nowhere/annotations/instances_train.json"});
  c.fail(tr({"--val-images", f.dir + "/no_images"}), {f.dir + "/no_images"});
  c.fail(tr({"--pretrained", f.dir + "/no_ckpt"}), {f.dir + "/no_ckpt"});
  // Truncated annotations, a JPEG in place of JSON, a cut JPEG as training image.
  c.fail(tr({"--train-json", f.half_json}), {f.half_json});
  c.fail(tr({"--val-json", f.jpg}), {f.jpg});
  c.fail(tr({"--train-images", f.badimg_train}), {f.badimg_train + "/"});
  // Bad --pretrained checkpoints: a COCO JSON, a truncated .safetensors, a
  // detector checkpoint where a pretrain (backbone) one belongs.
  c.fail(tr({"--pretrained", f.val_json}), {f.val_json});
  c.fail(tr({"--pretrained", f.trunc_ckpt}), {f.trunc_ckpt + ".safetensors"});
  c.fail(tr({"--pretrained", f.ckpt}), {f.ckpt});
  // --resume from a truncated checkpoint. (A missing sidecar is not an error here:
  // the weights file carries a copy of it, see nn/checkpoint.h.)
  const std::string rs = f.dir + "/tr_resume_" + detector;
  make_dirs(rs);
  write_file_atomic(rs + "/last.json", read_file(f.trunc_ckpt + ".json"));
  write_file_atomic(rs + "/last.safetensors", read_file(f.trunc_ckpt + ".safetensors"));
  c.fail(train_args(detector, rs, {"--resume"}), {rs + "/last.safetensors"});
  // Out-of-range options.
  c.fail(tr({"--batch", "0"}), {"--batch", "0"});
  c.fail(tr({"--lr", "nan"}), {"--lr", "nan"});
  c.fail(tr({"--arch", "0,1,2,3,0,1,2,3,0,4"}), {"--arch", "0,1,2,3,0,1,2,3,0,4"});
  if (detector == "fpn") {
    c.fail(tr({"--roi-batch", "0"}), {"--roi-batch", "0"});
    c.fail(tr({"--rpn-pre-nms-train", "0"}), {"--rpn-pre-nms-train", "0"});
    c.fail(tr({"--rpn-post-nms-train", "-5"}), {"--rpn-post-nms-train", "-5"});
    c.fail(tr({"--rpn-pre-nms-test", "-1"}), {"--rpn-pre-nms-test", "-1"});
    c.fail(tr({"--rpn-post-nms-test", "0"}), {"--rpn-post-nms-test", "0"});
    return;
  }
  c.fail(tr({"--batch", "-2"}), {"--batch", "-2"});
  c.fail(tr({"--iters", "0"}), {"--iters", "0"});
  c.fail(tr({"--iters", "-5"}), {"--iters", "-5"});
  c.fail(tr({"--threads", "-3"}), {"--threads", "-3"});
  c.fail(tr({"--lr", "-1"}), {"--lr", "-1"});
  c.fail(tr({"--lr", "inf"}), {"--lr", "inf"});
  c.fail(tr({"--wd", "-1"}), {"--wd", "-1"});
  c.fail(tr({"--clip-grad", "-1"}), {"--clip-grad", "-1"});
  c.fail(tr({"--short-side", "0"}), {"--short-side", "0"});
  c.fail(tr({"--max-size", "-64"}), {"--max-size", "-64"});
  c.fail(tr({"--fpn-channels", "0"}), {"--fpn-channels", "0"});
  c.fail(tr({"--tower-depth", "-1"}), {"--tower-depth", "-1"});
  c.fail(tr({"--warmup", "-1"}), {"--warmup", "-1"});
  c.fail(tr({"--eval-every", "-1"}), {"--eval-every", "-1"});
  c.fail(tr({"--log-every", "0"}), {"--log-every", "0"});
  c.fail(tr({"--ckpt-every", "-1"}), {"--ckpt-every", "-1"});
  c.fail(tr({"--bn-images", "-1"}), {"--bn-images", "-1"});
  c.fail(tr({"--bn-momentum", "1.5"}), {"--bn-momentum", "1.5"});
  c.fail(tr({"--workers", "0"}), {"--workers", "0"});
  c.fail(tr({"--anchor-size", "2"}), {"--anchor-size", "2"});
  c.fail(tr({"--val-split", "-1"}), {"--val-split", "-1"});
  c.fail(tr({"--val-split", "4"}), {"--val-split", "4"});
  c.fail(tr({"--arch", "1,2,3"}), {"--arch", "1,2,3"});
  c.fail(tr({"--space", "2G"}), {"2G"});
  c.fail(tr({"--detector", "ssd"}), {"ssd"});
  c.fail(tr({"--device", "tpu"}), {"tpu"});
  c.fail(tr({"--precision", "fp8"}), {"fp8"});
}
}  // namespace

TEST_CASE("bad input: train (retinanet)") {
  BAD_INPUT_SETUP();
  train_bad_input(c, "retinanet");
  c.run();
}

TEST_CASE("bad input: train (fpn)") {
  BAD_INPUT_SETUP();
  train_bad_input(c, "fpn");
  c.run();
}

TEST_CASE("bad input: eval") {
  BAD_INPUT_SETUP();
  auto ev = [&](const std::string& ckpt, const std::vector<std::string>& extra) {
    return merge({"eval", "--ckpt", ckpt, "--data", f.det, "--bn-images", "2", "--out", f.dir + "/ev/results.json"},
                 extra);
  };
  // Checkpoints: missing, a JSON or a JPEG in place of one, truncated weights, a
  // truncated sidecar. (A missing sidecar is recovered from the copy in the
  // weights file, nn/checkpoint.h, so it is no error.)
  c.fail(ev(f.dir + "/no_ckpt", {}), {f.dir + "/no_ckpt"});
  c.fail(ev(f.val_json, {}), {f.val_json});
  c.fail(ev(f.jpg, {}), {f.jpg});
  c.fail(ev(f.trunc_ckpt, {}), {f.trunc_ckpt + ".safetensors"});
  c.fail(ev(f.halfjson_ckpt, {}), {f.halfjson_ckpt + ".json"});
  // Data: missing folder, truncated annotations, a JPEG as annotations.
  c.fail(ev(f.ckpt, {"--data", f.dir + "/nowhere"}), {f.dir + "/nowhere"});
  c.fail(ev(f.ckpt, {"--val-json", f.half_json}), {f.half_json});
  c.fail(ev(f.ckpt, {"--val-json", f.jpg}), {f.jpg});
  // The results file cannot be written: its folder is a file.
  c.fail(ev(f.ckpt, {"--out", f.text_jpg + "/results.json"}), {f.text_jpg});
  // Out-of-range options.
  c.fail(ev(f.ckpt, {"--arch", "1,2,3"}), {"1,2,3"});
  c.fail(ev(f.ckpt, {"--arch", "0,1,2,3,0,1,2,3,0,9"}), {"0,1,2,3,0,1,2,3,0,9"});
  c.fail(ev(f.ckpt, {"--batch", "0"}), {"--batch", "0"});
  c.fail(ev(f.ckpt, {"--threads", "-3"}), {"--threads", "-3"});
  c.fail(ev(f.ckpt, {"--bn-images", "-2"}), {"--bn-images", "-2"});
  c.fail(ev(f.ckpt, {"--bn-momentum", "nan"}), {"--bn-momentum", "nan"});
  c.fail(ev(f.ckpt, {"--val-split", "-1"}), {"--val-split", "-1"});
  c.fail(ev(f.ckpt, {"--device", "tpu"}), {"tpu"});
  c.run();
}

TEST_CASE("bad input: detect") {
  BAD_INPUT_SETUP();
  auto dt = [&](const std::string& ckpt, const std::vector<std::string>& extra) {
    return merge({"detect", "--ckpt", ckpt, "--data", f.det, "--bn-images", "2", "--out", f.dir + "/dt"}, extra);
  };
  // Images: a text file, a truncated JPEG, a missing file, a folder.
  c.fail(dt(f.ckpt, {f.text_jpg}), {f.text_jpg});
  c.fail(dt(f.ckpt, {f.trunc_jpg}), {f.trunc_jpg});
  c.fail(dt(f.ckpt, {f.dir + "/no_image.jpg"}), {f.dir + "/no_image.jpg"});
  c.fail(dt(f.ckpt, {f.dir + "/bad"}), {f.dir + "/bad"});
  c.fail(dt(f.ckpt, {"/dev/zero"}), {"/dev/zero"});  // read forever before the fix
  c.fail(dt(f.ckpt, {}), {"images"});
  // Checkpoints: missing, a JSON in place of one, truncated weights, a truncated sidecar.
  c.fail(dt(f.dir + "/no_ckpt", {f.jpg}), {f.dir + "/no_ckpt"});
  c.fail(dt(f.val_json, {f.jpg}), {f.val_json});
  c.fail(dt(f.trunc_ckpt, {f.jpg}), {f.trunc_ckpt + ".safetensors"});
  c.fail(dt(f.halfjson_ckpt, {f.jpg}), {f.halfjson_ckpt + ".json"});
  // Data for the BN recalibration: missing folder.
  c.fail(dt(f.ckpt, {"--data", f.dir + "/nowhere", f.jpg}), {f.dir + "/nowhere"});
  // Out-of-range options.
  c.fail(dt(f.ckpt, {"--min-score", "nan", f.jpg}), {"--min-score", "nan"});
  c.fail(dt(f.ckpt, {"--min-score", "2", f.jpg}), {"--min-score", "2"});
  c.fail(dt(f.ckpt, {"--threads", "-3", f.jpg}), {"--threads", "-3"});
  c.fail(dt(f.ckpt, {"--bn-images", "-2", f.jpg}), {"--bn-images", "-2"});
  c.fail(dt(f.ckpt, {"--arch", "0,1,2,3,0,1,2,3,0,5", f.jpg}), {"0,1,2,3,0,1,2,3,0,5"});
  c.fail(dt(f.ckpt, {"--arch", "0,1", f.jpg}), {"0,1"});
  c.run();
}

TEST_CASE("bad input: search") {
  BAD_INPUT_SETUP();
  auto se = [&](const std::string& ckpt, const std::string& out, const std::vector<std::string>& extra) {
    return merge({"search", "--ckpt",        ckpt, "--data",         f.det, "--val-split", "2", "--bn-images",
                  "2",      "--population",  "2",  "--parents",      "1",   "--mutants",   "0", "--crossovers",
                  "0",      "--generations", "1",  "--flops-budget", "0",   "--out",       out},
                 extra);
  };
  const std::string out = f.dir + "/se";
  // Checkpoints: missing, a JSON in place of one, truncated weights, a truncated sidecar.
  c.fail(se(f.dir + "/no_ckpt", out, {}), {f.dir + "/no_ckpt"});
  c.fail(se(f.val_json, out, {}), {f.val_json});
  c.fail(se(f.trunc_ckpt, out, {}), {f.trunc_ckpt + ".safetensors"});
  c.fail(se(f.halfjson_ckpt, out, {}), {f.halfjson_ckpt + ".json"});
  // Data: missing folder, truncated annotations.
  c.fail(se(f.ckpt, out, {"--data", f.dir + "/nowhere"}), {f.dir + "/nowhere"});
  c.fail(se(f.ckpt, out, {"--train-json", f.half_json}), {f.half_json});
  // --resume: a truncated state, a JPEG as state, a state of the wrong shape.
  const std::string s1 = f.dir + "/se_cut", s2 = f.dir + "/se_jpg", s3 = f.dir + "/se_shape";
  make_dirs(s1);
  make_dirs(s2);
  make_dirs(s3);
  write_file_atomic(s1 + "/state.json",
                    std::string("{\"format\": \"detnas-search-1\", \"config\": {\"population\": 2,"));
  write_file_atomic(s2 + "/state.json", read_file(f.jpg));
  write_file_atomic(s3 + "/state.json", std::string("[1, 2, 3]"));
  c.fail(se(f.ckpt, s1, {"--resume"}), {s1 + "/state.json"});
  c.fail(se(f.ckpt, s2, {"--resume"}), {s2 + "/state.json"});
  c.fail(se(f.ckpt, s3, {"--resume"}), {s3 + "/state.json"});
  // Out-of-range options.
  c.fail(se(f.ckpt, out, {"--population", "0"}), {"--population", "0"});
  c.fail(se(f.ckpt, out, {"--population", "-4"}), {"--population", "-4"});
  c.fail(se(f.ckpt, out, {"--generations", "0"}), {"--generations", "0"});
  c.fail(se(f.ckpt, out, {"--parents", "0"}), {"--parents", "0"});
  c.fail(se(f.ckpt, out, {"--parents", "3"}), {"parents", "3"});
  c.fail(se(f.ckpt, out, {"--mutants", "-2"}), {"--mutants", "-2"});
  c.fail(se(f.ckpt, out, {"--crossovers", "-2"}), {"--crossovers", "-2"});
  c.fail(se(f.ckpt, out, {"--flops-budget", "-5"}), {"--flops-budget", "-5"});
  c.fail(se(f.ckpt, out, {"--flops-budget", "nan"}), {"--flops-budget", "nan"});
  c.fail(se(f.ckpt, out, {"--mutate-prob", "1.5"}), {"--mutate-prob", "1.5"});
  c.fail(se(f.ckpt, out, {"--attempt-factor", "0"}), {"--attempt-factor", "0"});
  c.fail(se(f.ckpt, out, {"--batch", "0"}), {"--batch", "0"});
  c.fail(se(f.ckpt, out, {"--threads", "-3"}), {"--threads", "-3"});
  c.fail(se(f.ckpt, out, {"--bn-images", "-2"}), {"--bn-images", "-2"});
  c.fail(se(f.ckpt, out, {"--bn-momentum", "-0.5"}), {"--bn-momentum", "-0.5"});
  c.fail(se(f.ckpt, out, {"--val-split", "-1"}), {"--val-split", "-1"});
  c.fail(se(f.ckpt, out, {"--strategy", "annealing"}), {"annealing"});
  c.fail(se(f.ckpt, out, {"--flops-budget", "1"}), {"1"});  // nothing fits under 1 MMAC
  // Latency tables: missing, not a table, another space, another detector; options that need one.
  const std::string lt = f.dir + "/lt";
  make_dirs(lt);
  std::string table =
      "{\"format\": \"detnas-latency-1\", \"space\": \"tiny\", \"detector\": \"retinanet\", "
      "\"device\": \"cpu\", \"input\": [64, 64], \"batch\": 1, \"threads\": 1, \"fixed\": "
      "{\"stem\": 1, \"detector\": 2}, \"blocks\": [";
  for (int b = 0; b < 10; ++b) table += std::string(b ? ", " : "") + "[1, 2, 3, 4]";
  table += "]}";
  write_file_atomic(lt + "/tiny.json", table);
  std::string other = table;
  other.replace(other.find("\"tiny\""), 6, "\"300M\"");
  write_file_atomic(lt + "/300M.json", other);
  std::string fpn = table;
  fpn.replace(fpn.find("\"retinanet\""), 11, "\"fpn\"");
  write_file_atomic(lt + "/fpn.json", fpn);
  c.fail(se(f.ckpt, out, {"--latency-table", lt + "/none.json"}), {lt + "/none.json"});
  c.fail(se(f.ckpt, out, {"--latency-table", f.val_json}), {f.val_json, "latency table"});
  c.fail(se(f.ckpt, out, {"--latency-table", lt + "/300M.json"}), {lt + "/300M.json", "300M"});
  c.fail(se(f.ckpt, out, {"--latency-table", lt + "/fpn.json"}), {lt + "/fpn.json", "fpn"});
  c.fail(se(f.ckpt, out, {"--latency-budget", "5"}), {"--latency-table"});
  c.fail(se(f.ckpt, out, {"--objective", "ap-latency"}), {"--latency-table"});
  c.fail(se(f.ckpt, out, {"--objective", "ap-latency", "--latency-table", lt + "/tiny.json"}), {"--latency-budget"});
  c.fail(se(f.ckpt, out, {"--objective", "speed"}), {"speed"});
  c.fail(se(f.ckpt, out, {"--latency-table", lt + "/tiny.json", "--latency-budget", "5"}), {"latency-budget"});
  c.run();
}

TEST_CASE("bad input: latency-table") {
  BAD_INPUT_SETUP();
  auto lt = [&](const std::vector<std::string>& extra) {
    return merge({"latency-table", "--input", "64x64", "--out", f.dir + "/lt_out/t.json"}, extra);
  };
  c.fail(lt({"--input", "65x64"}), {"--input", "65x64"});
  c.fail(lt({"--detector", "yolo"}), {"yolo"});
  c.fail(lt({"--space", "huge"}), {"huge"});
  c.fail(lt({"--ckpt", f.val_json}), {f.val_json});
  c.fail(lt({"--ckpt", f.dir + "/no_ckpt"}), {f.dir + "/no_ckpt"});
  c.fail(lt({"--batch", "0"}), {"--batch", "0"});
  c.fail(lt({"--min-time", "-1"}), {"--min-time", "-1"});
  c.fail(lt({"--repeats", "0"}), {"--repeats", "0"});
  c.fail(lt({"--measure", "0,1,2"}), {"--measure", "0,1,2"});
  c.fail(lt({"--out", f.jpg + "/t.json"}), {f.jpg});
  c.run();
}

TEST_CASE("search under a latency budget from the command line") {
  Fixture& f = fx();
  REQUIRE_MESSAGE(f.setup_error.empty(), f.setup_error);
  const std::string dir = f.dir + "/lat_search";
  // A measured table of the fixture's detector, then a search with a budget between
  // the fastest and the slowest architecture.
  test::RunResult r =
      test::run_argv({f.bin, "latency-table", "--ckpt", f.ckpt, "--input", "64x64", "--out", dir + "/t.json",
                      "--threads", "1", "--min-time", "0", "--repeats", "3", "--validate", "2"});
  REQUIRE_MESSAGE(r.exit_code() == 0, r.describe() << "\n" << r.out);
  CHECK_MESSAGE(r.out.find("2 architectures: mean |error|") != std::string::npos, r.out);
  CHECK_MESSAGE(r.out.find("the fixed parts ran at") != std::string::npos, r.out);
  const search::LatencyTable t = search::read_latency_table(dir + "/t.json", "tiny");
  double lo = t.fixed_ms(), hi = t.fixed_ms();
  for (const auto& row : t.blocks) {
    lo += *std::min_element(row.begin(), row.end());
    hi += *std::max_element(row.begin(), row.end());
  }
  const double budget = 0.5 * (lo + hi);
  r = test::run_argv(test::argv_words(f.bin,
                                      "search --val-split 2 --bn-images 2 --population 4 --parents 2 --mutants 1 "
                                      "--crossovers 1 --generations 2 --flops-budget 0",
                                      {"--ckpt", f.ckpt, "--data", f.det, "--latency-table", dir + "/t.json",
                                       "--latency-budget", std::to_string(budget), "--out", dir + "/s"}));
  REQUIRE_MESSAGE(r.exit_code() == 0, r.describe() << "\n" << r.out);
  CHECK_MESSAGE(r.out.find("batches decoded for the first candidate are kept for the next ones") != std::string::npos,
                r.out);
  int64_t n = 0;
  std::istringstream lines(read_file(dir + "/s/search.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    const size_t k = line.find("\"latency_ms\":");
    REQUIRE_MESSAGE(k != std::string::npos, line);
    CHECK(std::stod(line.substr(k + 13)) <= budget);
    ++n;
  }
  CHECK(n == 8);
  CHECK(read_file(dir + "/s/top10.json").find("latency_ms") != std::string::npos);
  // flops prints the prediction for an architecture.
  r = test::run_argv(
      {f.bin, "flops", "--space", "tiny", "--arch", "0,1,2,3,0,1,2,3,0,1", "--latency-table", dir + "/t.json"});
  REQUIRE_MESSAGE(r.exit_code() == 0, r.describe() << "\n" << r.out);
  CHECK(r.out.find("predicted latency") != std::string::npos);
}

TEST_CASE("bad input: export") {
  BAD_INPUT_SETUP();
  auto ex = [&](const std::string& ckpt, const std::vector<std::string>& extra) {
    return merge({"export", "--ckpt", ckpt, "--data", f.det, "--bn-images", "2", "--out", f.dir + "/ex/m.onnx"}, extra);
  };
  // Checkpoints: missing, a JSON in place of one, truncated weights, a truncated sidecar.
  c.fail(ex(f.dir + "/no_ckpt", {}), {f.dir + "/no_ckpt"});
  c.fail(ex(f.val_json, {}), {f.val_json});
  c.fail(ex(f.trunc_ckpt, {}), {f.trunc_ckpt + ".safetensors"});
  c.fail(ex(f.halfjson_ckpt, {}), {f.halfjson_ckpt + ".json"});
  // Unknown or malformed paths, sizes and opsets; an output that cannot be written.
  c.fail(ex(f.ckpt, {"--arch", "0,1,2,3,0,1,2,3,0,5"}), {"0,1,2,3,0,1,2,3,0,5"});
  c.fail(ex(f.ckpt, {"--arch", "0,1"}), {"0,1"});
  c.fail(ex(f.ckpt, {"--input", "100x320"}), {"--input", "100x320"});
  c.fail(ex(f.ckpt, {"--input", "big"}), {"--input", "big"});
  c.fail(ex(f.ckpt, {"--input", "64x64", "--dynamic"}), {"--dynamic"});
  c.fail(ex(f.ckpt, {"--opset", "9"}), {"opset 9"});
  c.fail(ex(f.ckpt, {"--postprocess", "nms", "--dynamic"}), {"batch 1"});
  c.fail(ex(f.ckpt, {"--postprocess", "soft"}), {"--postprocess", "soft"});
  c.fail(ex(f.ckpt, {"--batch", "0"}), {"--batch", "0"});
  c.fail(ex(f.ckpt, {"--out", f.jpg + "/m.onnx"}), {f.jpg});
  c.fail(ex(f.ckpt, {"--data", f.dir + "/nowhere"}), {f.dir + "/nowhere"});
  // A checkpoint that is not a detector's: a pretrain (classification) run.
  test::RunResult pr = test::run_argv({f.bin, "pretrain", "--data", f.cls, "--iters", "1", "--batch", "4", "--input",
                                       "16", "--eval-every", "0", "--workers", "1", "--out", f.dir + "/ex_pt"});
  REQUIRE_MESSAGE(pr.exit_code() == 0, pr.describe() << "\n" << pr.out);
  c.fail(ex(f.dir + "/ex_pt/last", {}), {f.dir + "/ex_pt/last", "'pretrain' checkpoint"});
  c.run();
}

TEST_CASE("export: a trained supernet path from the command line, with its metadata") {
  Fixture& f = fx();
  REQUIRE_MESSAGE(f.setup_error.empty(), f.setup_error);
  const std::string out = f.dir + "/ex_ok/m.onnx";
  test::RunResult r = test::run_argv({f.bin, "export", "--ckpt", f.ckpt, "--data", f.det, "--bn-images", "2", "--arch",
                                      "0,1,2,3,0,1,2,3,0,1", "--input", "64x64", "--out", out});
  REQUIRE_MESSAGE(r.exit_code() == 0, r.describe() << "\n" << r.out);
  CHECK(r.out.find("re-estimated on 2 training images") != std::string::npos);
  const std::string bytes = read_file(out);  // protobuf keeps strings as they are
  for (const char* s : {"detnas.arch", "0,1,2,3,0,1,2,3,0,1", "detnas.categories", "detnas.input", "detnas.anchors",
                        "cls_p3", "box_p7", "anchors"})
    CHECK_MESSAGE(bytes.find(s) != std::string::npos, out << " does not hold '" << s << "'");
  // With the post-processing inside: boxes, scores and labels instead of the raw outputs.
  r = test::run_argv({f.bin, "export", "--ckpt", f.ckpt, "--data", f.det, "--bn-images", "2", "--input", "64x96",
                      "--postprocess", "nms", "--out", out});
  REQUIRE_MESSAGE(r.exit_code() == 0, r.describe() << "\n" << r.out);
  const std::string nms = read_file(out);
  for (const char* s : {"image_size", "NonMaxSuppression", "boxes", "scores", "labels", "detnas.postprocess"})
    CHECK_MESSAGE(nms.find(s) != std::string::npos, out << " does not hold '" << s << "'");
}
