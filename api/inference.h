// Public API, inference part (installed as <detnas/inference.h>): a Detector
// loaded from a `detnas train` checkpoint (or wrapped around a network built in
// memory) that takes decoded images or encoded JPEG/PNG bytes and returns
// boxes in original image pixels, category ids and scores.
// Pre-processing is exactly the evaluation transform of training
// (data::make_det_batch with DetAugment::Eval): resize so the short side is
// short_side and the long side at most max_size (both from the checkpoint),
// BGR 0..255, zero padding to a multiple of 32. detect_batch pads the images to
// the largest of the batch, as training evaluation does, so a batch may differ
// from single-image results in the last digits near the padded border.
// A Detector is not thread-safe: use one per thread. Inference runs on
// DetectorOptions::device: the CPU by default (OpenMP + OpenBLAS threads:
// api::set_num_threads), or CUDA (pass api::select_device("auto") to take a GPU
// when one is usable; images are uploaded per batch, results come back to the host).
// Not here: training, COCO evaluation, the CLI.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/image.h"
#include "models.h"

namespace detnas::api {

using data::Image;
using data::ImageSize;
// Decoding / encoding helpers (JPEG via TurboJPEG, PNG via zlib).
using data::decode_image;
using data::encode_jpeg;
using data::read_image;
using data::write_jpeg;

struct Detection {
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // corners in original image pixels
  float score = 0;
  int64_t category_id = 0;  // dataset category id (= label when the checkpoint has no mapping)
  int64_t label = 0;        // contiguous class index 0..num_classes-1
};

struct DetectorOptions {
  // Path to run: required for a supernet checkpoint (e.g. the searched arch);
  // for a fixed-arch checkpoint empty or equal to its arch.
  std::string arch;
  float min_score = 0.05f;              // drop detections below (the network keeps >= 0.05)
  int64_t max_detections = 100;         // per image, best first
  int64_t short_side = 0;               // > 0 overrides the checkpoint's
  int64_t max_size = 0;                 // > 0 overrides the checkpoint's
  std::vector<int64_t> category_ids;    // non-empty overrides the checkpoint's label -> id map
  rt::Device device = rt::Device::CPU;  // where the network runs (the wrapped network is moved there)
};

class Detector {
 public:
  // Loads a `detnas train` checkpoint (PATH, PATH.json or PATH.safetensors).
  static Detector load(const std::string& checkpoint, const DetectorOptions& options = {});
  // Wraps a network built in memory (e.g. api::make_detector) described by `spec`.
  Detector(std::unique_ptr<det::Detector> net, const DetectorSpec& spec, const DetectorOptions& options = {});
  Detector(Detector&&) noexcept;
  Detector& operator=(Detector&&) noexcept;
  ~Detector();

  std::vector<Detection> detect(const Image& image);
  // Encoded JPEG or PNG bytes; `name` is used in error messages.
  std::vector<Detection> detect(const uint8_t* data, size_t size, const std::string& name = "image bytes");
  std::vector<Detection> detect(const std::vector<uint8_t>& encoded, const std::string& name = "image bytes");
  // One forward per chunk of `batch` images; result i belongs to images[i].
  std::vector<std::vector<Detection>> detect_batch(const std::vector<Image>& images, int64_t batch = 4);

  // Re-estimates every BatchNorm's statistics for this path on the given images
  // (plain average over the batches, eval resize): what a path taken out of a
  // supernet needs before its detections mean anything.
  void recalibrate_bn(const std::vector<Image>& images, int64_t batch = 4);

  const DetectorSpec& spec() const;  // space, arch, config, resize, category ids
  const Arch& arch() const;          // the path that runs
  int64_t num_classes() const;
  det::Detector& network();  // the underlying network (advanced use)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Draws each detection with score >= min_score as a rectangle with a
// "<category id> <score>" label, colour by category.
void draw_detections(Image& image, const std::vector<Detection>& dets, float min_score = 0.3f);

}  // namespace detnas::api
