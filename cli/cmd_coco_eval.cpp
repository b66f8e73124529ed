// `detnas coco-eval`: pycocotools-compatible bbox evaluation of a COCO results
// JSON against a COCO instances JSON. Prints COCOeval.summarize()'s 12 lines and a
// per-category table, or with --json one object
// {"stats":[12],"per_category_ap":{...},"per_category_ap50":{...},"per_category_ar100":{...}}.
// Timings go to the log (stderr), so stdout holds only the result.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "cli/command.h"
#include "core/error.h"
#include "core/log.h"
#include "data/coco.h"
#include "data/coco_eval.h"

namespace detnas::cli {
namespace {

struct CocoEvalOptions {
  std::string gt, dt;
  bool json = false;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void run_coco_eval(const CocoEvalOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  data::CocoDataset gt = data::load_coco_instances(o.gt);
  log_info("coco-eval: ", o.gt, ": ", gt.images.size(), " images, ", gt.annotations.size(), " annotations, ",
           gt.categories.size(), " categories (", seconds_since(t0), " s)");
  auto t1 = std::chrono::steady_clock::now();
  std::vector<data::CocoDetection> dt = data::load_coco_results(o.dt, gt);
  log_info("coco-eval: ", o.dt, ": ", dt.size(), " detections (", seconds_since(t1), " s)");
  auto t2 = std::chrono::steady_clock::now();
  data::CocoEvalResult r = data::coco_evaluate(gt, dt);
  log_info("coco-eval: evaluated in ", seconds_since(t2), " s");

  if (o.json) {
    std::printf("%s\n", data::coco_eval_json(r).c_str());
    return;
  }
  for (const std::string& line : data::coco_summary_lines(r)) std::printf("%s\n", line.c_str());
  std::printf("\n%10s  %-24s %7s %7s %7s\n", "category", "name", "AP", "AP50", "AR100");
  for (int64_t k = 0; k < r.num_categories(); ++k) {
    const data::CocoCategory& c = gt.categories[size_t(gt.category_index.at(r.category_ids[size_t(k)]))];
    std::printf("%10lld  %-24.24s %7.3f %7.3f %7.3f\n", static_cast<long long>(c.id), c.name.c_str(), r.ap[size_t(k)],
                r.ap50[size_t(k)], r.ar100[size_t(k)]);
  }
}

void setup_coco_eval(CLI::App& root) {
  auto o = std::make_shared<CocoEvalOptions>();
  CLI::App* sub = root.add_subcommand(
      "coco-eval", "COCO bbox evaluation (identical to pycocotools COCOeval) of a results JSON against a GT JSON");
  sub->add_option("--gt", o->gt, "ground truth: COCO instances JSON")->required();
  sub->add_option("--dt", o->dt, "detections: COCO results JSON (a list of image_id, category_id, bbox, score)")
      ->required();
  sub->add_flag("--json", o->json, "print one JSON object (stats and per-category AP) instead of the summary");
  sub->callback([o] { run_coco_eval(*o); });
}

}  // namespace

DETNAS_COMMAND(setup_coco_eval);

}  // namespace detnas::cli
