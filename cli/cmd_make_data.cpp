// `detnas make-data`: writes the built-in synthetic detection set (COCO layout)
// and/or classification set (ImageFolder layout), deterministic by seed. The
// rendering and file layout live in data/synthetic.h; this file parses options,
// guards against overwriting and reports progress through the log helper.
#include <memory>
#include <string>

#include "cli/command.h"
#include "cli/option_checks.h"
#include "core/error.h"
#include "core/log.h"
#include "data/synthetic.h"
#include "runtime/fs.h"

namespace detnas::cli {
namespace {

struct MakeDataOptions {
  std::string out = data::kDefaultSyntheticRoot;
  std::string kind = "both";
  data::SyntheticDetParams det;
  data::SyntheticClsParams cls;
  uint64_t seed = 1;
  int quality = 90;
  bool force = false;
};

// Refuses a non-empty target unless --force. With --force, a folder that holds a
// set written by make-data (it has the marker) is cleared first so no stale
// files remain; any other folder is written over in place and nothing is deleted.
void prepare_target(const std::string& dir, bool force) {
  if (dir_missing_or_empty(dir)) return;
  DETNAS_CHECK(dir_exists(dir), "make-data: '", dir, "' exists and is not a folder");
  DETNAS_CHECK(force, "make-data: folder '", dir,
               "' is not empty; choose another --out or pass --force to overwrite it");
  if (data::synthetic_set_complete(dir)) {
    log_info("make-data: --force: removing the previous synthetic set in ", dir);
    remove_all(dir);
  } else {
    log_warn("make-data: --force: writing over '", dir,
             "', which is not a complete synthetic set; its other files are left in place");
  }
}

void run_make_data(MakeDataOptions o) {
  DETNAS_CHECK(o.kind == "det" || o.kind == "cls" || o.kind == "both",
               "make-data: --kind must be det, cls or both, got '", o.kind, "'");
  const bool det = o.kind != "cls", cls = o.kind != "det";
  o.det.seed = o.cls.seed = o.seed;
  o.det.jpeg_quality = o.cls.jpeg_quality = o.quality;
  // Check both targets before writing anything.
  const std::string det_dir = data::synthetic_det_dir(o.out), cls_dir = data::synthetic_cls_dir(o.out);
  if (det) prepare_target(det_dir, o.force);
  if (cls) prepare_target(cls_dir, o.force);
  if (det) {
    log_info("make-data: detection set -> ", det_dir, " (train ", o.det.train, ", val ", o.det.val, ", ",
             o.det.image_size, "x", o.det.image_size, ", seed ", o.seed, ")");
    data::make_detection_set(det_dir, o.det);
  }
  if (cls) {
    log_info("make-data: classification set -> ", cls_dir, " (", data::synthetic_cls_classes().size(),
             " classes, train ", o.cls.train_per_class, " and val ", o.cls.val_per_class, " per class, ",
             o.cls.image_size, "x", o.cls.image_size, ", seed ", o.seed, ")");
    data::make_classification_set(cls_dir, o.cls);
  }
}

void setup_make_data(CLI::App& root) {
  auto o = std::make_shared<MakeDataOptions>();
  CLI::App* sub = root.add_subcommand("make-data", "write the built-in synthetic detection and classification sets");
  sub->footer(
      "Layout (the same seed gives byte-identical files):\n"
      "  OUT/det/train/*.jpg, OUT/det/val/*.jpg,\n"
      "  OUT/det/annotations/instances_train.json, instances_val.json   COCO 2017 layout; categories\n"
      "      1 square, 3 disc, 7 triangle, 10 ring, 15 cross (non-contiguous on purpose), some iscrowd regions\n"
      "  OUT/cls/train/<class>/*.jpg, OUT/cls/val/<class>/*.jpg           ImageFolder layout, 10 classes\n"
      "  OUT/det/synthetic.json, OUT/cls/synthetic.json                  written last: marks a complete set\n"
      "A non-empty OUT/det or OUT/cls is refused unless --force (which clears a previous make-data set).");
  sub->add_option("--out", o->out, "output root folder")->capture_default_str();
  sub->add_option("--kind", o->kind, "which sets: det, cls or both")->capture_default_str();
  sub->add_option("--train", o->det.train, "detection: training images")->capture_default_str()->check(non_negative());
  sub->add_option("--val", o->det.val, "detection: validation images")->capture_default_str()->check(non_negative());
  sub->add_option("--size", o->det.image_size, "detection: image side in pixels (32..4096)")
      ->capture_default_str()
      ->check(in_range(32, 4096));
  sub->add_option("--cls-train", o->cls.train_per_class, "classification: training images per class")
      ->capture_default_str()
      ->check(non_negative());
  sub->add_option("--cls-val", o->cls.val_per_class, "classification: validation images per class")
      ->capture_default_str()
      ->check(non_negative());
  sub->add_option("--cls-size", o->cls.image_size, "classification: image side in pixels (16..4096)")
      ->capture_default_str()
      ->check(in_range(16, 4096));
  sub->add_option("--seed", o->seed, "random seed")->capture_default_str();
  sub->add_option("--quality", o->quality, "JPEG quality 1..100")->capture_default_str()->check(in_range(1, 100));
  sub->add_flag("--force", o->force, "overwrite non-empty output folders");
  sub->callback([o] { run_make_data(*o); });
}

}  // namespace

DETNAS_COMMAND(setup_make_data);

}  // namespace detnas::cli
