// `detnas detect`: runs a trained detector on image files and writes, per image,
// a JPEG with the boxes, category names and scores drawn, plus one JSON file
// with every detection ({file, image_id, category_id, name, score, bbox x,y,w,h}
// in original pixels). Images are resized exactly as in evaluation.
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cli/det_common.h"
#include "cli/option_checks.h"
#include "cli/run_log.h"
#include "core/log.h"
#include "data/image.h"
#include "data/json_writer.h"
#include "data/transforms.h"
#include "runtime/fs.h"
#include "search/candidate_eval.h"

namespace detnas::cli {
namespace {

struct DetectOptions {
  DeviceOptions dev;
  DataOptions d;  // only for BN recalibration of a supernet path
  std::string ckpt = "runs/train/last", arch, out = "runs/detect";
  std::vector<std::string> images;
  int64_t bn_images = -1, threads = 0;
  double min_score = 0.3;
};

data::Color label_color(int64_t label) {
  static const data::Color kColors[] = {data::bgr(40, 40, 230),  data::bgr(40, 200, 40),  data::bgr(230, 120, 30),
                                        data::bgr(20, 200, 230), data::bgr(200, 40, 200), data::bgr(200, 200, 40)};
  return kColors[size_t(label) % 6];
}

void run_detect(DetectOptions o) {
  const rt::Device dev = select_run_device(o.dev, "detect");
  set_threads(o.threads);
  DETNAS_CHECK(!o.images.empty(), "detect: no images given");
  for (const std::string& file : o.images) {  // before the model loads; a device would be read forever
    struct stat st;
    DETNAS_CHECK(::stat(file.c_str(), &st) == 0, "detect: image ", file, " does not exist");
    DETNAS_CHECK(!S_ISDIR(st.st_mode) && !S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode), "detect: image ", file, " is ",
                 S_ISDIR(st.st_mode) ? "a folder" : "a device", ", not an image file");
  }
  LoadedDetector m = load_detector(o.ckpt, o.arch, "detect", dev);
  const int64_t bn_images = m.supernet ? (o.bn_images >= 0 ? o.bn_images : m.bn_images) : 0;
  if (bn_images > 0) {
    DetData dd = load_det_data(o.d, "detect");
    search::EvalSettings es{m.batch, m.short_side, m.max_size, bn_images, m.bn_momentum, 1};
    search::recalibrate_bn(*m.net, m.path, dd.train, es);
    log_info("detect: BN statistics of the supernet path re-estimated on ", bn_images, " training images");
  }
  make_dirs(o.out);
  data::JsonWriter j(data::JsonStyle::Pretty);
  j.begin_array();
  int64_t total = 0;
  for (size_t i = 0; i < o.images.size(); ++i) {
    const std::string& file = o.images[i];
    data::Image img = data::read_image(file);
    data::Image resized = data::resize_short_side(img, m.short_side, m.max_size);
    rt::Tensor batch = data::batch_to_tensor({&resized});
    det::ImageMeta meta{int64_t(i), resized.height, resized.width, double(resized.width) / double(img.width),
                        double(resized.height) / double(img.height)};
    std::vector<det::Detection> dets = m.net->detect(batch, {meta}, m.path)[0];
    int64_t drawn = 0;
    for (const det::Detection& d : dets) {
      const bool known = d.label >= 0 && size_t(d.label) < m.categories.size();
      const std::string name = known ? m.categories[size_t(d.label)].name : "label " + std::to_string(d.label);
      const int64_t cat = known ? m.categories[size_t(d.label)].id : d.label;
      j.begin_object().field("file", file).field("image_id", (long long)i).field("category_id", (long long)cat);
      j.field("name", name).field("score", double(d.score));
      j.key("bbox").begin_array().value(double(d.x1)).value(double(d.y1)).value(double(d.x2 - d.x1));
      j.value(double(d.y2 - d.y1)).end_array().end_object();
      if (d.score < o.min_score) continue;
      const data::Color c = label_color(d.label);
      data::draw_rect(img, int64_t(d.x1), int64_t(d.y1), int64_t(d.x2), int64_t(d.y2), c, 2);
      char text[96];
      std::snprintf(text, sizeof text, "%s %.2f", name.c_str(), double(d.score));
      data::draw_label(img, int64_t(d.x1), int64_t(d.y1), text, c, data::bgr(255, 255, 255));
      ++drawn;
    }
    std::string base = path_filename(file);
    const std::string ext = path_extension(base);
    base = base.substr(0, base.size() - ext.size());
    const std::string out = path_join(o.out, base + "_det.jpg");
    data::write_jpeg(out, img);
    total += int64_t(dets.size());
    log_info("detect: ", file, ": ", dets.size(), " detections, ", drawn, " with score >= ", o.min_score, " drawn -> ",
             out);
  }
  j.end_array();
  const std::string json = path_join(o.out, "detections.json");
  write_file_atomic(json, j.str());
  log_info("detect: ", total, " detections of ", o.images.size(), " images written to ", json);
}

void setup_detect(CLI::App& root) {
  auto o = std::make_shared<DetectOptions>();
  CLI::App* sub = root.add_subcommand("detect", "draw a trained detector's detections on images (JPEG/PNG)");
  sub->add_option("images", o->images, "image files")->required();
  sub->add_option("--ckpt", o->ckpt, "checkpoint of detnas train (path without extension)")->capture_default_str();
  sub->add_option("--arch", o->arch, "the path to run (supernet checkpoints; default: the path train evaluated)");
  sub->add_option("--out", o->out, "output folder (NAME_det.jpg per image, detections.json)")->capture_default_str();
  sub->add_option("--min-score", o->min_score, "draw detections with at least this score")
      ->capture_default_str()
      ->check(in_range(0, 1));
  sub->add_option("--bn-images", o->bn_images,
                  "supernet: training images for BN recalibration of the path (default: as in train; data options "
                  "as for train)")
      ->check(non_negative());
  add_data_options(sub, o->d);
  add_device_options(sub, &o->dev);
  sub->add_option("--threads", o->threads, "compute threads (0: all cores)")
      ->capture_default_str()
      ->check(non_negative());
  sub->callback([o] { run_detect(*o); });
}

}  // namespace

DETNAS_COMMAND(setup_detect);

}  // namespace detnas::cli
