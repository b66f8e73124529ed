// detnas::api::Detector: checkpoint loading, the training eval pre-processing
// (short-side resize, BGR 0..255, padding to a multiple of 32), batched
// inference, label -> category id mapping, BN recalibration, and drawing.
#include "api/inference.h"

#include <algorithm>
#include <cstdio>

#include "core/log.h"
#include "data/transforms.h"
#include "nn/layers.h"
#include "runtime/autograd.h"

namespace detnas::api {

struct Detector::Impl {
  std::unique_ptr<det::Detector> net;
  DetectorSpec spec;
  DetectorOptions opt;
  Arch path;

  // Eval transform of each image, packed into one zero-padded batch (N,3,H,W).
  rt::Tensor make_batch(const std::vector<const Image*>& imgs, std::vector<det::ImageMeta>* metas) const {
    std::vector<Image> resized;
    resized.reserve(imgs.size());
    for (size_t i = 0; i < imgs.size(); ++i) {
      const Image& im = *imgs[i];
      DETNAS_CHECK(!im.empty() && int64_t(im.pixels.size()) == im.height * im.width * Image::kChannels,
                   "Detector: image ", i, " of the batch is empty or malformed (", im.height, "x", im.width, ", ",
                   im.pixels.size(), " bytes)");
      resized.push_back(data::resize_short_side(im, spec.short_side, spec.max_size));
      const Image& r = resized.back();
      if (metas)
        metas->push_back(
            {int64_t(i), r.height, r.width, double(r.width) / double(im.width), double(r.height) / double(im.height)});
    }
    std::vector<const Image*> ptrs;
    for (const Image& r : resized) ptrs.push_back(&r);
    return data::batch_to_tensor(ptrs, 32);
  }

  std::vector<std::vector<Detection>> run(const std::vector<const Image*>& imgs) {
    std::vector<det::ImageMeta> metas;
    rt::Tensor x = make_batch(imgs, &metas);
    std::vector<std::vector<det::Detection>> raw = net->detect(x, metas, path);
    std::vector<std::vector<Detection>> out(imgs.size());
    for (size_t i = 0; i < raw.size() && i < out.size(); ++i) {
      for (const det::Detection& d : raw[i]) {
        if (d.score < opt.min_score) continue;
        if (int64_t(out[i].size()) >= opt.max_detections) break;
        Detection o;
        o.x1 = d.x1, o.y1 = d.y1, o.x2 = d.x2, o.y2 = d.y2;
        o.score = d.score;
        o.label = d.label;
        o.category_id = spec.category_ids.empty() ? d.label : spec.category_ids.at(size_t(d.label));
        out[i].push_back(o);
      }
    }
    return out;
  }
};

namespace {
void apply_overrides(DetectorSpec& s, const DetectorOptions& o) {
  if (o.short_side > 0) s.short_side = o.short_side;
  if (o.max_size > 0) s.max_size = o.max_size;
  if (!o.category_ids.empty()) {
    s.category_ids = o.category_ids;
    s.category_names.clear();  // the checkpoint's names belong to its own ids
  }
  DETNAS_CHECK(s.category_ids.empty() || int64_t(s.category_ids.size()) == s.config.num_classes,
               "Detector: ", s.category_ids.size(), " category ids for ", s.config.num_classes, " classes");
  DETNAS_CHECK(o.max_detections >= 0, "Detector: max_detections must be >= 0, got ", o.max_detections);
}
}  // namespace

Detector Detector::load(const std::string& checkpoint, const DetectorOptions& options) {
  DetectorSpec s = read_detector_spec(checkpoint);
  DETNAS_CHECK(s.arch != "supernet" || !options.arch.empty(), nn::checkpoint_base(checkpoint),
               ": the checkpoint holds a supernet; set DetectorOptions::arch to the path to run (e.g. the "
               "searched architecture), then call recalibrate_bn on a few training images");
  std::unique_ptr<det::Detector> net = load_detector(checkpoint, options.arch, &s);
  DetectorOptions o = options;
  o.arch.clear();  // load_detector already built the standalone network of that path
  log_info("Detector: loaded ", nn::checkpoint_base(checkpoint), " (", net->kind(), ", space ", s.space, ", arch ",
           s.arch, ", ", s.config.num_classes, " classes, input ", s.short_side, "/", s.max_size, ")");
  return Detector(std::move(net), s, o);
}

Detector::Detector(std::unique_ptr<det::Detector> net, const DetectorSpec& spec, const DetectorOptions& options)
    : impl_(std::make_unique<Impl>()) {
  DETNAS_CHECK(net != nullptr, "Detector: no network given");
  impl_->net = std::move(net);
  impl_->spec = spec;
  impl_->opt = options;
  apply_overrides(impl_->spec, options);
  if (spec.arch == "supernet") {
    DETNAS_CHECK(!options.arch.empty(), "Detector: the network is a supernet (space ", spec.space,
                 "); set DetectorOptions::arch to the path to run");
    impl_->path = parse_arch(spec.space, options.arch);
  } else {
    impl_->path = parse_arch(spec.space, spec.arch);
    DETNAS_CHECK(options.arch.empty() || parse_arch(spec.space, options.arch) == impl_->path,
                 "Detector: DetectorOptions::arch ", options.arch, " differs from the network's arch ", spec.arch);
  }
  impl_->net->to(options.device);
  impl_->net->set_mode(nn::Mode::Eval);
}

Detector::Detector(Detector&&) noexcept = default;
Detector& Detector::operator=(Detector&&) noexcept = default;
Detector::~Detector() = default;

std::vector<Detection> Detector::detect(const Image& image) { return impl_->run({&image}).at(0); }

std::vector<Detection> Detector::detect(const uint8_t* data, size_t size, const std::string& name) {
  DETNAS_CHECK(data != nullptr || size == 0, "Detector: null data pointer for ", name);
  Image img = data::decode_image(data, size, name);
  return detect(img);
}

std::vector<Detection> Detector::detect(const std::vector<uint8_t>& encoded, const std::string& name) {
  return detect(encoded.data(), encoded.size(), name);
}

std::vector<std::vector<Detection>> Detector::detect_batch(const std::vector<Image>& images, int64_t batch) {
  DETNAS_CHECK(batch > 0, "Detector::detect_batch: batch must be > 0, got ", batch);
  std::vector<std::vector<Detection>> out;
  for (size_t b = 0; b < images.size(); b += size_t(batch)) {
    std::vector<const Image*> chunk;
    for (size_t i = b; i < std::min(images.size(), b + size_t(batch)); ++i) chunk.push_back(&images[i]);
    for (auto& d : impl_->run(chunk)) out.push_back(std::move(d));
  }
  return out;
}

void Detector::recalibrate_bn(const std::vector<Image>& images, int64_t batch) {
  DETNAS_CHECK(batch > 0 && !images.empty(), "Detector::recalibrate_bn: need images and batch > 0 (got ", images.size(),
               " images, batch ", batch, ")");
  rt::NoGradGuard ng;
  det::Detector& net = *impl_->net;
  nn::reset_bn_stats(net);
  nn::ModeGuard recal(net, nn::Mode::Recalibrate, nn::Mode::Eval);
  for (size_t b = 0; b < images.size(); b += size_t(batch)) {
    std::vector<const Image*> chunk;
    for (size_t i = b; i < std::min(images.size(), b + size_t(batch)); ++i) chunk.push_back(&images[i]);
    net.forward_features(impl_->make_batch(chunk, nullptr), impl_->path);
  }
}

const DetectorSpec& Detector::spec() const { return impl_->spec; }
const Arch& Detector::arch() const { return impl_->path; }
int64_t Detector::num_classes() const { return impl_->spec.config.num_classes; }
det::Detector& Detector::network() { return *impl_->net; }

void draw_detections(Image& image, const std::vector<Detection>& dets, float min_score) {
  static const data::Color palette[] = {data::bgr(60, 20, 220), data::bgr(0, 200, 0),   data::bgr(220, 120, 0),
                                        data::bgr(0, 200, 255), data::bgr(200, 0, 200), data::bgr(255, 255, 0)};
  for (const Detection& d : dets) {
    if (d.score < min_score) continue;
    const data::Color c = palette[size_t(d.category_id < 0 ? -d.category_id : d.category_id) % 6];
    const int64_t x1 = int64_t(d.x1), y1 = int64_t(d.y1), x2 = int64_t(d.x2 + 0.5f), y2 = int64_t(d.y2 + 0.5f);
    data::draw_rect(image, x1, y1, x2, y2, c, 2);
    char text[48];
    std::snprintf(text, sizeof text, "%lld %.2f", (long long)d.category_id, double(d.score));
    data::draw_label(image, x1, y1, text, c, data::bgr(255, 255, 255));
  }
}

}  // namespace detnas::api
