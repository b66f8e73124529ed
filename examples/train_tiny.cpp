// Example: a few SGD steps of a tiny RetinaNet with the detnas runtime API, on
// images drawn in memory (one bright rectangle each, two classes: wide / tall),
// then a `detnas train`-format checkpoint OUT/model and a test image OUT/sample.jpg.
// Build: g++ train_tiny.cpp $(pkg-config --cflags --libs detnas)
#include <detnas/detnas.h>

#include <cstdio>

using namespace detnas;

// One 128x128 image with a rectangle; class 0 = wider than tall, 1 = taller.
static api::Image make_image(Rng& rng, det::Targets& t) {
  api::Image img(128, 128, data::bgr(30, 30, 30));
  const int64_t cls = int64_t(rng.below(2)), w = cls ? 24 : 60, h = cls ? 60 : 24;
  const int64_t x = int64_t(rng.below(uint64_t(128 - w))), y = int64_t(rng.below(uint64_t(128 - h)));
  data::fill_rect(img, x, y, x + w, y + h, data::bgr(40, 200, 230));
  t.boxes = {float(x), float(y), float(x + w), float(y + h)};
  t.labels = {cls};
  return img;
}

// Images (all 128x128) -> (N,3,128,128) float tensor, BGR 0..255 as the detector expects.
static api::Tensor to_tensor(const std::vector<api::Image>& imgs) {
  api::Tensor x = api::Tensor::empty({int64_t(imgs.size()), 3, 128, 128});
  float* p = x.data();
  for (const api::Image& im : imgs)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t i = 0; i < 128 * 128; ++i) *p++ = float(im.pixels[size_t(i * 3 + c)]);
  return x;
}

int main(int argc, char** argv) {
  if (argc < 2) return std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]), 2;
  api::use_best_blas_kernels(argv);
  try {
    api::DetectorSpec spec;  // tiny space, one fixed architecture, small head
    spec.space = "tiny";
    spec.arch = "0,1,2,3,0,1,2,3,0,1";
    spec.config.num_classes = 2;
    spec.config.fpn_channels = 32;
    spec.config.head_depth = 1;
    spec.short_side = spec.max_size = 128;
    spec.category_ids = {1, 2};
    spec.category_names = {"wide", "tall"};
    std::unique_ptr<det::Detector> net = api::make_detector(spec);
    api::Sgd opt(net->parameters(), api::SgdConfig::detection(1e-4));
    Rng rng(7);
    const int steps = 25;
    for (int step = 0; step < steps; ++step) {
      std::vector<api::Image> imgs(4);
      std::vector<det::Targets> targets(4);
      for (size_t i = 0; i < imgs.size(); ++i) imgs[i] = make_image(rng, targets[i]);
      det::DetLosses losses = net->forward_train(to_tensor(imgs), targets, {});
      api::backward(losses.total);
      opt.step(step < 5 ? 0.002 * (step + 1) : 0.01);  // short warm-up
      if ((step + 1) % 5 == 0)
        std::printf("step %2d  loss %.4f (cls %.4f, box %.4f)\n", step + 1, losses.total.item(),
                    losses.part("cls").item(), losses.part("box").item());
    }
    const std::string out = argv[1];
    api::save_detector(out + "/model", *net, spec, steps, &opt);
    det::Targets t;
    api::write_jpeg(out + "/sample.jpg", make_image(rng, t));
    std::printf("wrote %s/model.{safetensors,json} and %s/sample.jpg (box %.0f,%.0f,%.0f,%.0f class %lld)\n",
                out.c_str(), out.c_str(), t.boxes[0], t.boxes[1], t.boxes[2], t.boxes[3], (long long)t.labels[0]);
  } catch (const api::Error& e) {
    std::fprintf(stderr, "train_tiny: %s\n", e.what());
    return 1;
  }
  return 0;
}
