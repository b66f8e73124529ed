// BN recalibration, dataset inference and COCO AP of one path (search/candidate_eval.h).
#include "search/candidate_eval.h"

#include <chrono>

#include "core/error.h"
#include "detect/postprocess.h"
#include "nn/layers.h"
#include "runtime/autograd.h"

namespace detnas::search {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

void recalibrate_bn(det::Detector& net, const nn::Arch& path, const data::DetDataset& train, const EvalSettings& s) {
  DETNAS_CHECK(s.batch > 0 && s.bn_images > 0, "recalibrate_bn: batch ", s.batch, " and bn_images ", s.bn_images,
               " must be > 0");
  DETNAS_CHECK(s.bn_momentum >= 0 && s.bn_momentum <= 1, "recalibrate_bn: momentum ", s.bn_momentum,
               " is not in [0, 1]");
  DETNAS_CHECK(train.size() > 0, "recalibrate_bn: the training set is empty");
  rt::NoGradGuard ng;
  nn::reset_bn_stats(net);
  const bool ema = s.bn_momentum > 0;
  if (ema) nn::set_bn_momentum(net, float(s.bn_momentum));
  nn::ModeGuard recal(net, ema ? nn::Mode::Train : nn::Mode::Recalibrate, nn::Mode::Eval);
  struct MomentumBack {  // on every exit, before the mode goes back to Eval
    det::Detector& net;
    bool ema;
    ~MomentumBack() {
      if (ema) nn::set_bn_momentum(net, 0.1f);  // the training momentum of every BN layer in detnas
    }
  } momentum_back{net, ema};
  data::DetBatchParams p{s.batch, s.short_side, s.max_size, data::DetAugment::Train, data::mix_seed(s.seed, 99)};
  const int64_t batches = (s.bn_images + s.batch - 1) / s.batch;
  for (int64_t i = 0; i < batches; ++i) net.forward_features(data::make_det_batch(train, p, i).images, path);
}

std::vector<std::vector<det::Detection>> detect_dataset(det::Detector& net, const nn::Arch& path,
                                                        const data::DetDataset& ds, const EvalSettings& s) {
  data::DetBatchParams p{s.batch, s.short_side, s.max_size, data::DetAugment::Eval, s.seed};
  std::vector<std::vector<det::Detection>> all;
  for (int64_t i = 0; i < data::num_det_eval_batches(ds, s.batch); ++i) {
    data::DetBatch b = data::make_det_batch(ds, p, i);
    std::vector<det::ImageMeta> metas;
    for (auto& t : b.targets)
      metas.push_back({t.image_id, t.resized_size.height, t.resized_size.width, t.scale_x, t.scale_y});
    for (auto& d : net.detect(b.images, metas, path)) all.push_back(std::move(d));
  }
  return all;
}

PathScore score_path(det::Detector& net, const nn::Arch& path, const data::DetDataset& train,
                     const data::DetDataset& val, const EvalSettings& s) {
  PathScore r;
  auto t0 = std::chrono::steady_clock::now();
  if (s.bn_images > 0) recalibrate_bn(net, path, train, s);
  r.recal_seconds = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  const auto dets = detect_dataset(net, path, val, s);
  data::CocoDataset gt = val.coco_subset();
  r.detections = det::to_coco_detections(dets, gt.label_to_category);
  r.coco = data::coco_evaluate(gt, r.detections);
  r.infer_seconds = seconds_since(t0);
  return r;
}

}  // namespace detnas::search
