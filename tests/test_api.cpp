// The embedding API (api/*.h) in-process: Detector pre-processing equals the
// training evaluation pipeline (make_det_batch Eval + the network's detect),
// batches equal single images, checkpoint round trips (incl. a supernet path
// loaded as a standalone network and a `detnas train` checkpoint), errors that
// name the problem, the log callback, nothing written to stdout, the cost model
// against DETNAS/space.h figures, and the evolution wrapper.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <stdexcept>

#include "api/detnas.h"
#include "data/det_data.h"
#include "detect/retinanet.h"
#include "runtime/fs.h"
#include "tests/test_util.h"

using namespace detnas;

namespace {

std::string temp_dir(const std::string& name) {
  const std::string d = "/tmp/detnas_api_" + name + "_" + std::to_string(::getpid());
  remove_all(d);
  make_dirs(d);
  return d;
}

// A small tiny-space RetinaNet whose class logits sit near 0 (scores ~0.5), so
// inference returns many detections whose order depends on every weight.
api::DetectorSpec tiny_spec(const std::string& arch = "0,1,2,3,0,1,2,3,0,1") {
  api::DetectorSpec s;
  s.space = "tiny";
  s.arch = arch;
  s.config.num_classes = 3;
  s.config.fpn_channels = 16;
  s.config.head_depth = 1;
  s.config.seed = 5;
  s.seed = 4;
  s.short_side = 64;
  s.max_size = 96;
  s.category_ids = {2, 5, 9};
  s.category_names = {"a", "b", "c"};
  return s;
}
std::unique_ptr<det::Detector> tiny_net(const api::DetectorSpec& s) {
  std::unique_ptr<det::Detector> net = api::make_detector(s);
  auto* r = dynamic_cast<det::RetinaNet*>(net.get());
  REQUIRE(r != nullptr);
  r->head().cls_logits->bias.fill_(0.0f);
  return net;
}

// 70 x 100 picture with a few rectangles (resizes to 64 x 91, padded to 64 x 96).
api::Image test_image(uint64_t seed) {
  Rng rng(seed);
  api::Image img(70, 100, data::bgr(20, 40, 60));
  for (int k = 0; k < 4; ++k) {
    int64_t x = int64_t(rng.below(70)), y = int64_t(rng.below(45));
    data::fill_rect(img, x, y, x + 10 + int64_t(rng.below(20)), y + 8 + int64_t(rng.below(15)),
                    data::bgr(uint8_t(rng.below(256)), uint8_t(rng.below(256)), uint8_t(rng.below(256))));
  }
  return img;
}

void check_same(const std::vector<api::Detection>& a, const std::vector<api::Detection>& b, const char* what) {
  INFO(what);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].x1 == b[i].x1);
    CHECK(a[i].y1 == b[i].y1);
    CHECK(a[i].x2 == b[i].x2);
    CHECK(a[i].y2 == b[i].y2);
    CHECK(a[i].score == b[i].score);
    CHECK(a[i].label == b[i].label);
    CHECK(a[i].category_id == b[i].category_id);
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Runs f with file descriptor 1 redirected to a file; returns what was written.
std::string capture_stdout(const std::function<void()>& f) {
  const std::string path = "/tmp/detnas_api_stdout_" + std::to_string(::getpid());
  std::fflush(stdout);
  int saved = ::dup(1);
  FILE* tmp = std::fopen(path.c_str(), "w");
  REQUIRE(tmp != nullptr);
  ::dup2(::fileno(tmp), 1);
  std::fclose(tmp);
  try {
    f();
  } catch (...) {
    std::fflush(stdout);
    ::dup2(saved, 1);
    ::close(saved);
    throw;
  }
  std::fflush(stdout);
  ::dup2(saved, 1);
  ::close(saved);
  std::string out = read_file(path);
  remove_all(path);
  return out;
}

}  // namespace

TEST_CASE("api: Detector on JPEG bytes equals the training eval pipeline (make_det_batch Eval + detect)") {
  const std::string dir = temp_dir("eval");
  const api::DetectorSpec spec = tiny_spec();
  api::Detector detector(tiny_net(spec), spec);
  const std::vector<uint8_t> jpeg = api::encode_jpeg(test_image(1));
  make_dirs(dir + "/img");
  write_file_atomic(dir + "/img/a.jpg", std::string(jpeg.begin(), jpeg.end()));
  write_file_atomic(
      dir + "/gt.json",
      "{\"images\": [{\"id\": 7, \"file_name\": \"a.jpg\", \"width\": 100, \"height\": 70}],"
      " \"categories\": [{\"id\": 2, \"name\": \"a\"}, {\"id\": 5, \"name\": \"b\"}, {\"id\": 9, \"name\": \"c\"}],"
      " \"annotations\": [{\"id\": 1, \"image_id\": 7, \"category_id\": 5, \"bbox\": [10, 10, 20, 20],"
      " \"area\": 400, \"iscrowd\": 0}]}");
  data::DetDatasetOptions dopt;
  dopt.empty_images = data::EmptyImages::Keep;
  data::DetDataset ds = data::DetDataset::load(dir + "/gt.json", dir + "/img", dopt);
  data::DetBatch b = data::make_det_batch(ds, {1, spec.short_side, spec.max_size, data::DetAugment::Eval, 1}, 0);
  CHECK(b.images.shape() == rt::Shape{1, 3, 64, 96});
  std::vector<det::ImageMeta> metas;
  for (auto& t : b.targets) metas.push_back({0, t.resized_size.height, t.resized_size.width, t.scale_x, t.scale_y});
  std::vector<det::Detection> ref = detector.network().detect(b.images, metas, {}).at(0);
  std::vector<api::Detection> got = detector.detect(jpeg, "a.jpg");
  REQUIRE(ref.size() > 10);  // scores ~0.5: the list is full, so the order is tested too
  REQUIRE(got.size() == ref.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    CHECK(got[i].score == ref[i].score);
    CHECK(got[i].label == ref[i].label);
    CHECK(got[i].category_id == ds.coco().label_to_category[size_t(ref[i].label)]);
    CHECK(got[i].x1 == ref[i].x1);
    CHECK(got[i].y1 == ref[i].y1);
    CHECK(got[i].x2 == ref[i].x2);
    CHECK(got[i].y2 == ref[i].y2);
    // boxes are in the original 100 x 70 image
    CHECK(got[i].x2 <= 100.0f + 1e-3f);
    CHECK(got[i].y2 <= 70.0f + 1e-3f);
  }
  // Decoded image = bytes; batch of equal-size images = single images; min_score and max_detections apply.
  api::Image decoded = api::decode_image(jpeg.data(), jpeg.size(), "a.jpg");
  check_same(detector.detect(decoded), got, "decoded image");
  std::vector<std::vector<api::Detection>> batch = detector.detect_batch({decoded, decoded, decoded}, 2);
  REQUIRE(batch.size() == 3);
  for (auto& d : batch) check_same(d, got, "batch entry");
  api::DetectorOptions o;
  o.min_score = got[3].score;
  o.max_detections = 2;
  api::Detector limited(tiny_net(spec), spec, o);
  std::vector<api::Detection> few = limited.detect(decoded);
  REQUIRE(few.size() == 2);
  check_same(few, {got[0], got[1]}, "max_detections");
  remove_all(dir);
}

TEST_CASE("api: detector checkpoints round trip; a supernet path loads as its standalone network") {
  const std::string dir = temp_dir("ckpt");
  const api::Image img = test_image(2);
  const api::DetectorSpec spec = tiny_spec();
  api::Detector mem(tiny_net(spec), spec);
  api::save_detector(dir + "/fixed", mem.network(), spec, 3);
  api::DetectorSpec back = api::read_detector_spec(dir + "/fixed.json");
  CHECK(back.space == "tiny");
  CHECK(back.arch == spec.arch);
  CHECK(back.short_side == 64);
  CHECK(back.max_size == 96);
  CHECK(back.category_ids == spec.category_ids);
  CHECK(back.category_names == spec.category_names);
  CHECK(back.config.fpn_channels == 16);
  CHECK(back.config.head_depth == 1);
  CHECK(back.config.kind == "retinanet");
  api::Detector loaded = api::Detector::load(dir + "/fixed");
  check_same(loaded.detect(img), mem.detect(img), "fixed arch reloaded");

  api::DetectorSpec sspec = tiny_spec("supernet");
  const std::string path = "3,2,1,0,3,2,1,0,3,2";
  api::DetectorOptions po;
  po.arch = path;
  api::Detector super(tiny_net(sspec), sspec, po);
  api::save_detector(dir + "/super", super.network(), sspec);
  api::Detector standalone = api::Detector::load(dir + "/super", po);
  CHECK(standalone.spec().arch == path);
  CHECK(standalone.network().backbone().options().kind == nn::NetKind::Standalone);
  CHECK(standalone.network().num_parameters() < super.network().num_parameters());
  check_same(standalone.detect(img), super.detect(img), "supernet path vs standalone");

  std::string e = error_of([&] { api::Detector::load(dir + "/super"); });
  CHECK(e.find("supernet") != std::string::npos);
  CHECK(e.find("DetectorOptions::arch") != std::string::npos);
  po.arch = "0,0,0,0,0,0,0,0,0,0";
  e = error_of([&] { api::Detector::load(dir + "/fixed", po); });
  CHECK(e.find("holds arch 0,1,2,3,0,1,2,3,0,1") != std::string::npos);

  // Plain weight files.
  api::save_weights(dir + "/w.safetensors", super.network().backbone());
  std::unique_ptr<api::Backbone> bb = api::make_backbone({"tiny", "supernet", nn::Head::None, 1000, 99});
  api::load_weights(dir + "/w.safetensors", *bb);
  CHECK(bb->parameters().at(5).tensor.to_vector() == super.network().backbone().parameters().at(5).tensor.to_vector());
  std::unique_ptr<api::Backbone> one = api::make_backbone({"tiny", path, nn::Head::None, 1000, 0});
  e = error_of([&] { api::load_weights(dir + "/w.safetensors", *one); });
  CHECK(e.find("unexpected stage") != std::string::npos);
  api::load_weights(dir + "/w.safetensors", *one, nn::ExtraTensors::Ignore);
  remove_all(dir);
}

TEST_CASE("api: errors name the problem; logging goes to the callback; nothing is printed to stdout") {
  const std::string dir = temp_dir("err");
  const api::DetectorSpec spec = tiny_spec();
  std::vector<std::string> logged;
  api::set_log_callback([&](api::LogLevel, const std::string& m) { logged.push_back(m); });
  struct Restore {
    ~Restore() { api::set_log_callback(nullptr); }
  } restore;
  std::string out = capture_stdout([&] {
    api::Detector d(tiny_net(spec), spec);
    const std::vector<uint8_t> junk = {0xff, 0xd8, 0xff, 0x00, 1, 2, 3};
    std::string e = error_of([&] { d.detect(junk, "upload-17.jpg"); });
    CHECK(e.find("upload-17.jpg") != std::string::npos);
    e = error_of([&] { d.detect(std::vector<uint8_t>{'h', 'e', 'l', 'l', 'o'}, "notes.txt"); });
    CHECK(e.find("notes.txt") != std::string::npos);
    e = error_of([&] { d.detect(api::Image()); });
    CHECK(e.find("empty") != std::string::npos);
    e = error_of([&] { api::parse_arch("tiny", "0,1,2"); });
    CHECK(e.find("3 choices but space tiny has 10 blocks") != std::string::npos);
    e = error_of([&] { api::parse_arch("tiny", "0,1,2,3,0,1,2,7,0,1"); });
    CHECK(e.find("position 7") != std::string::npos);
    e = error_of([&] { api::make_detector(tiny_spec("0,1,x")); });
    CHECK(e.find("position 2: bad value 'x'") != std::string::npos);
    e = error_of([&] { api::parse_arch("tiny9", "0"); });
    CHECK(e.find("tiny9") != std::string::npos);
    api::DetectorSpec bad = spec;
    bad.category_ids = {1, 2};
    e = error_of([&] { api::make_detector(bad); });
    CHECK(e.find("2 category ids for 3 classes") != std::string::npos);
    e = error_of([&] { api::Detector::load(dir + "/missing"); });
    CHECK(e.find(dir + "/missing.json") != std::string::npos);
    nn::CheckpointMeta m;
    m.kind = "pretrain";
    m.space = "tiny";
    m.arch = "supernet";
    nn::save_checkpoint(dir + "/pre", d.network().backbone(), nullptr, m);
    e = error_of([&] { api::read_detector_spec(dir + "/pre"); });
    CHECK(e.find("'pretrain' checkpoint, not a detector") != std::string::npos);
    api::save_detector(dir + "/ok", d.network(), spec);
    logged.clear();
    api::Detector::load(dir + "/ok");
  });
  api::set_log_callback(nullptr);
  CHECK_MESSAGE(out.empty(), "stdout got: " << out);
  REQUIRE(logged.size() == 1);
  CHECK(logged[0].find(dir + "/ok") != std::string::npos);
  remove_all(dir);
}

TEST_CASE("api: FLOPs/params by space name match space.h; evolution with a caller's fitness") {
  // space.h: tiny backbone all-k3 37.09M, all-Xception 39.32M MACs at 224x224.
  CHECK(api::backbone_cost("tiny", nn::uniform_arch(api::space("tiny"), 0)).mega_macs() ==
        doctest::Approx(37.09).epsilon(0.0002));
  CHECK(api::backbone_cost("tiny", nn::uniform_arch(api::space("tiny"), 3)).mega_macs() ==
        doctest::Approx(39.32).epsilon(0.0002));
  // DETNAS.md: COCO_FPN_300M backbone 288.08M MACs, 1.8497M params.
  const api::Arch fpn300 = api::parse_arch("300M", "2,1,2,0,2,1,1,2,3,3,1,3,0,0,3,1,3,1,3,2");
  CHECK(api::backbone_cost("300M", fpn300).mega_macs() == doctest::Approx(288.08).epsilon(0.00002));
  CHECK(api::backbone_cost("300M", fpn300).mega_params() == doctest::Approx(1.8497).epsilon(0.00003));

  api::EvolutionConfig cfg;
  cfg.population = 8;
  cfg.parents = 3;
  cfg.mutants = 3;
  cfg.crossovers = 3;
  cfg.generations = 4;
  cfg.flops_budget_m = 42;
  cfg.seed = 11;
  auto fitness = [](const api::Arch& a) {
    double f = 0;
    for (int c : a) f += c == 3;
    return f;
  };
  int64_t calls = 0;
  api::SearchResult r = api::run_evolution("tiny", cfg, fitness, 2, [&](const api::Candidate&) { ++calls; });
  CHECK(calls == int64_t(r.all.size()));
  CHECK(r.all.size() >= 24);
  REQUIRE(r.best.size() == 2);
  CHECK(r.best[0].fitness == fitness(r.best[0].arch));
  for (const api::Candidate& c : r.all) {
    CHECK(c.flops_m <= 42.0);
    CHECK(c.fitness <= r.best[0].fitness);
  }
  CHECK(r.best_by_generation.back() >= r.best_by_generation.front());
  api::SearchResult again = api::run_evolution("tiny", cfg, fitness, 2);
  CHECK(again.best[0].arch == r.best[0].arch);
  std::string e = error_of([&] {
    api::run_evolution("tiny", cfg, [](const api::Arch&) -> double { DETNAS_FAIL("latency probe failed"); });
  });
  CHECK(e.find("latency probe failed") != std::string::npos);
}

TEST_CASE("api: a `detnas train` checkpoint loads into api::Detector with its category ids") {
  const std::string bin = test::detnas_binary();
  REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "build " << bin << " first (make test builds it)");
  const std::string dir = temp_dir("cli");
  int st = 0;
  std::string out =
      test::run_capture(bin + " make-data --kind det --out " + dir + "/d --train 2 --val 1 --size 64 2>&1", &st);
  REQUIRE_MESSAGE(st == 0, out);
  out = test::run_capture(bin + " train --detector retinanet --data " + dir +
                              "/d/det --iters 1 --batch 1 --short-side 64 --max-size 64 " +
                              "--fpn-channels 16 --tower-depth 1 --eval-every 0 --warmup 1 --workers 1 " +
                              "--arch 0,1,2,3,0,1,2,3,0,1 --out " + dir + "/run 2>&1",
                          &st);
  REQUIRE_MESSAGE(st == 0, out);
  api::Detector d = api::Detector::load(dir + "/run/last");
  CHECK(d.num_classes() == 5);
  CHECK(d.spec().short_side == 64);
  CHECK(d.spec().category_ids == std::vector<int64_t>{1, 3, 7, 10, 15});  // synthetic set (data/synthetic.h)
  std::vector<api::Image> imgs = {api::read_image(dir + "/d/det/val/" + list_dir(dir + "/d/det/val").at(0))};
  const std::vector<std::vector<api::Detection>> dets = d.detect_batch(imgs);
  REQUIRE(dets.size() == 1);
  for (const api::Detection& x : dets[0]) {
    CHECK(
        (x.category_id == 1 || x.category_id == 3 || x.category_id == 7 || x.category_id == 10 || x.category_id == 15));
    CHECK(x.category_id == d.spec().category_ids[size_t(x.label)]);
  }
  remove_all(dir);
}

TEST_CASE("api: the two-stage detector goes through the same API; recalibrate_bn is an exact re-estimate") {
  const std::string dir = temp_dir("fpn");
  api::DetectorSpec spec = tiny_spec();
  spec.config.kind = "fpn";
  spec.config.fc_dim = 32;
  std::unique_ptr<det::Detector> net = api::make_detector(spec);
  CHECK(std::string(net->kind()) == "fpn");
  api::Detector mem(std::move(net), spec);
  api::save_detector(dir + "/fpn", mem.network(), spec);
  api::Detector loaded = api::Detector::load(dir + "/fpn");
  CHECK(loaded.spec().config.kind == "fpn");
  CHECK(loaded.spec().config.fc_dim == 32);
  const std::vector<api::Image> imgs = {test_image(3), test_image(4), test_image(5)};
  check_same(loaded.detect(imgs[0]), mem.detect(imgs[0]), "fpn reloaded");

  // Recalibration resets the statistics first, so running it twice on the same
  // images gives the same buffers, different from the trained (initial) ones.
  auto buffers = [](api::Detector& d) {
    std::vector<float> v;
    for (auto& b : d.network().buffers())
      for (float x : b.tensor.to_vector()) v.push_back(x);
    return v;
  };
  api::Detector r(tiny_net(tiny_spec()), tiny_spec());
  const std::vector<float> before = buffers(r);
  r.recalibrate_bn(imgs, 2);
  const std::vector<float> once = buffers(r);
  r.recalibrate_bn(imgs, 2);
  CHECK(buffers(r) == once);
  CHECK(once != before);
  CHECK(r.network().mode() == nn::Mode::Eval);
  std::string e = error_of([&] { r.recalibrate_bn({}, 2); });
  CHECK(e.find("need images") != std::string::npos);
  remove_all(dir);
}
