// BN recalibration, dataset inference and COCO AP of one path (search/candidate_eval.h).
#include "search/candidate_eval.h"

#include <chrono>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "core/profile.h"
#include "data/transforms.h"
#include "detect/postprocess.h"
#include "nn/layers.h"
#include "runtime/autograd.h"
#include "runtime/dist.h"

namespace detnas::search {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
// The batch from s.cache, or made.
data::DetBatch batch_of(const data::DetDataset& ds, const data::DetBatchParams& p, int64_t index,
                        const EvalSettings& s) {
  return s.cache ? s.cache->get(ds, p, index) : data::make_det_batch(ds, p, index);
}

int64_t batch_bytes(const data::DetBatch& b) {
  int64_t n = b.images.numel();
  for (const auto& t : b.targets) n += t.boxes.defined() ? t.boxes.numel() : 0;
  return n * int64_t(sizeof(float));
}
}  // namespace

data::DetBatch BatchCache::get(const data::DetDataset& ds, const data::DetBatchParams& p, int64_t index) {
  char key[320];
  std::snprintf(key, sizeof key, "%p %lld %d %llu %lld %lld %lld %.17g %lld %lld %lld %lld", (const void*)&ds,
                (long long)ds.size(), int(p.augment), (unsigned long long)p.seed, (long long)p.batch,
                (long long)p.short_side, (long long)p.max_size, p.flip_prob, (long long)p.pad_multiple,
                (long long)p.part_begin, (long long)p.part_end, (long long)index);
  auto it = kept_.find(key);
  if (it != kept_.end()) {
    ++hits_;
    return it->second;  // shares the kept tensors; nothing downstream writes to its inputs
  }
  data::DetBatch b = data::make_det_batch(ds, p, index);
  ++made_;
  const int64_t n = batch_bytes(b);
  if (bytes_ + n <= limit_) {
    kept_.emplace(key, b);
    bytes_ += n;
  } else {
    ++not_kept_;
  }
  return b;
}

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
  // Across ranks: this rank's part of every batch, padded to the whole batch's
  // size, statistics synchronized (the same running statistics as one process).
  const bool split = s.across_ranks && rt::dist::active() && s.batch >= rt::dist::size();
  if (split) {
    const rt::dist::Slice sl = rt::dist::my_slice(s.batch);
    p.part_begin = sl.begin;
    p.part_end = sl.end;
  }
  nn::set_sync_bn(net, split);
  DETNAS_PROFILE_SCOPE("recalibrate");
  const int64_t batches = (s.bn_images + s.batch - 1) / s.batch;
  for (int64_t i = 0; i < batches; ++i) {
    rt::Tensor images;
    {
      DETNAS_PROFILE_SCOPE("batch_data");
      images = batch_of(train, p, i, s).images;
    }
    net.forward_features(split ? data::pad_batch_across_ranks(images) : images, path);
  }
  nn::set_sync_bn(net, false);
}

namespace {
// Detections of consecutive images as bytes (plain fields, same binary on every rank).
void put_detections(std::string& out, const std::vector<std::vector<det::Detection>>& dets) {
  auto put = [&](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); };
  const int64_t images = int64_t(dets.size());
  put(&images, sizeof images);
  for (const auto& d : dets) {
    const int64_t n = int64_t(d.size());
    put(&n, sizeof n);
    if (n) put(d.data(), size_t(n) * sizeof(det::Detection));
  }
}
std::vector<std::vector<det::Detection>> get_detections(const std::string& in, size_t* pos) {
  auto get = [&](void* p, size_t n) {
    DETNAS_CHECK(*pos + n <= in.size(), "detections gathered from the ranks are truncated");
    std::memcpy(p, in.data() + *pos, n);
    *pos += n;
  };
  int64_t images = 0;
  get(&images, sizeof images);
  std::vector<std::vector<det::Detection>> r(static_cast<size_t>(images));
  for (auto& d : r) {
    int64_t n = 0;
    get(&n, sizeof n);
    d.resize(size_t(n));
    if (n) get(d.data(), size_t(n) * sizeof(det::Detection));
  }
  return r;
}
}  // namespace

std::vector<std::vector<det::Detection>> detect_dataset(det::Detector& net, const nn::Arch& path,
                                                        const data::DetDataset& ds, const EvalSettings& s) {
  data::DetBatchParams p{s.batch, s.short_side, s.max_size, data::DetAugment::Eval, s.seed};
  std::vector<std::vector<det::Detection>> all;
  const int64_t batches = data::num_det_eval_batches(ds, s.batch);
  const bool split = s.across_ranks && rt::dist::active();
  const int64_t step = split ? rt::dist::size() : 1;
  std::string mine;  // across ranks: this rank's batches r, r + size, ... as bytes
  DETNAS_PROFILE_SCOPE("detect_dataset");
  for (int64_t i = split ? rt::dist::rank() : 0; i < batches; i += step) {
    data::DetBatch b;
    {
      DETNAS_PROFILE_SCOPE("batch_data");
      b = batch_of(ds, p, i, s);
    }
    std::vector<det::ImageMeta> metas;
    for (auto& t : b.targets)
      metas.push_back({t.image_id, t.resized_size.height, t.resized_size.width, t.scale_x, t.scale_y});
    std::vector<std::vector<det::Detection>> d = net.detect(b.images, metas, path);
    if (split)
      put_detections(mine, d);
    else
      for (auto& x : d) all.push_back(std::move(x));
  }
  if (!split) return all;
  // Every rank's batches, put back in batch order (batch i came from rank i % size).
  const std::vector<std::string> parts = rt::dist::allgather(mine);
  std::vector<size_t> pos(parts.size(), 0);
  for (int64_t i = 0; i < batches; ++i) {
    const size_t r = size_t(i % step);
    for (auto& x : get_detections(parts[r], &pos[r])) all.push_back(std::move(x));
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
