// `detnas train`: RetinaNet detection training with the supernet as backbone
// (one uniform random path per iteration, unsampled choices untouched) or with a
// fixed architecture (--arch LIST, a standalone network). SGD momentum 0.9,
// wd 1e-4 (none on biases, biases at 2x LR), linear warm-up and step decay;
// periodic COCO AP on the validation set (for a supernet: a fixed random path,
// BN recalibrated on training batches); checkpoints and exact --resume.
// Not yet: the two-stage detector, SVG plots (open issues).
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cli/run_log.h"
#include "data/coco_eval.h"
#include "data/det_data.h"
#include "data/json_writer.h"
#include "data/loader.h"
#include "data/synthetic.h"
#include "detect/postprocess.h"
#include "detect/retinanet.h"
#include "kernels/gemm.h"
#include "nn/checkpoint.h"
#include "nn/lr_schedule.h"
#include "nn/optimizer.h"
#include "runtime/autograd.h"
#include "runtime/fs.h"
#include "runtime/log.h"
#include "search/path_sampler.h"

namespace detnas::cli {
namespace {

struct TrainOptions {
  std::string data, train_json, train_images, val_json, val_images, out = "runs/train", space = "tiny", arch = "supernet",
                                                                     pretrained;
  int64_t iters = 1200, batch = 4, short_side = 256, max_size = 320, fpn_channels = 64, tower_depth = 2;
  int64_t warmup = 100, eval_every = 400, recal_batches = 8, ckpt_every = 200, log_every = 20, workers = 2, threads = 0;
  int64_t stop_at = -1;
  double lr = -1, wd = 1e-4;
  uint64_t seed = 1;
  bool resume = false;
};

det::Targets to_targets(const data::ImageTargets& t) {
  det::Targets r;
  r.boxes.assign(t.boxes.data(), t.boxes.data() + t.boxes.numel());
  r.labels = t.labels;
  return r;
}

// COCO AP of `path` on `val`; a supernet's BN statistics are first re-estimated
// (exact average) on training batches for that path.
data::CocoEvalResult evaluate(det::Detector& net, const nn::Arch& path, const data::DetDataset& train,
                              const data::DetDataset& val, const TrainOptions& o, bool supernet) {
  if (supernet) {
    rt::NoGradGuard ng;
    nn::reset_bn_stats(net);
    net.set_mode(nn::Mode::Recalibrate);
    data::DetBatchParams rp{o.batch, o.short_side, o.max_size, data::DetAugment::Train, data::mix_seed(o.seed, 99)};
    for (int64_t i = 0; i < o.recal_batches; ++i) net.forward_features(data::make_det_batch(train, rp, i).images, path);
    net.set_mode(nn::Mode::Train);
  }
  data::DetBatchParams vp{o.batch, o.short_side, o.max_size, data::DetAugment::Eval, o.seed};
  std::vector<std::vector<det::Detection>> all;
  for (int64_t i = 0; i < data::num_det_eval_batches(val, o.batch); ++i) {
    data::DetBatch b = data::make_det_batch(val, vp, i);
    std::vector<det::ImageMeta> metas;
    for (auto& t : b.targets)
      metas.push_back({t.image_id, t.resized_size.height, t.resized_size.width, t.scale_x, t.scale_y});
    for (auto& d : net.detect(b.images, metas, path)) all.push_back(std::move(d));
  }
  data::CocoDataset gt = val.coco_subset();
  return data::coco_evaluate(gt, det::to_coco_detections(all, gt.label_to_category));
}

void run_train(TrainOptions o) {
  if (o.threads > 0) {
    omp_set_num_threads(int(o.threads));
    kernels::cpu::set_blas_threads(int(o.threads));
  }
  std::string root = o.data;
  if (root.empty() && o.train_json.empty()) {
    root = data::ensure_synthetic_det(data::synthetic_det_dir(data::kDefaultSyntheticRoot));
    log_info("train: no --data given: using the built-in synthetic detection set in ", root);
  }
  if (o.train_json.empty()) o.train_json = path_join(root, "annotations/instances_train.json");
  if (o.train_images.empty()) o.train_images = path_join(root, "train");
  if (o.val_json.empty()) o.val_json = path_join(root, "annotations/instances_val.json");
  if (o.val_images.empty()) o.val_images = path_join(root, "val");
  data::DetDataset train = data::DetDataset::load(o.train_json, o.train_images);
  data::DetDatasetOptions vo;
  vo.empty_images = data::EmptyImages::Keep;
  data::DetDataset val = data::DetDataset::load(o.val_json, o.val_images, vo);
  DETNAS_CHECK(train.num_classes() == val.num_classes(), "train: ", o.train_json, " has ", train.num_classes(),
               " categories but ", o.val_json, " has ", val.num_classes());
  const nn::SearchSpace& space = nn::space_by_name(o.space);
  const bool supernet = o.arch == "supernet";
  nn::BackboneOptions bo;
  bo.space = o.space;
  bo.seed = o.seed;
  if (!supernet) {
    bo.kind = nn::NetKind::Standalone;
    bo.arch = nn::parse_arch(o.arch);
    bo.split = nn::ChannelSplit::ShuffleHalve;  // loads supernet-pretrained weights
    nn::validate_arch(space, bo.arch);
  }
  det::DetectorConfig dc;
  dc.kind = "retinanet";
  dc.num_classes = train.num_classes();
  dc.fpn_channels = o.fpn_channels;
  dc.head_depth = o.tower_depth;
  dc.seed = o.seed;
  std::unique_ptr<det::Detector> net_ptr = det::make_detector(bo, dc);
  det::Detector& net = *net_ptr;
  if (o.lr <= 0) o.lr = 0.01 * double(o.batch) / 16.0;  // linear scaling from 16 images at 0.01
  nn::Sgd opt(net.parameters(), nn::SgdConfig::detection(o.wd));
  nn::LrSchedule lr;
  lr.kind = nn::ScheduleKind::Step;
  lr.base_lr = o.lr;
  lr.milestones = {o.iters * 2 / 3, o.iters * 8 / 9};  // 60k and 80k of 90k
  lr.warmup_iters = o.warmup;
  make_dirs(o.out);
  const std::string ckpt = path_join(o.out, "last");
  Rng path_rng(data::mix_seed(o.seed, 11));
  int64_t start = 0;
  if (o.resume) {
    DETNAS_CHECK(file_exists(ckpt + ".json"), "train --resume: no checkpoint ", ckpt, ".json in ", o.out);
    nn::CheckpointMeta m = nn::load_checkpoint(ckpt, net, &opt, nn::ExtraTensors::Error);
    start = m.step;
    path_rng.set_state(m.rng.at("path").first, m.rng.at("path").second);
    log_info("train: resumed from ", ckpt, " at iteration ", start);
  } else if (!o.pretrained.empty()) {
    nn::load_checkpoint(o.pretrained, net.backbone(), nullptr, nn::ExtraTensors::Ignore);
    log_info("train: backbone initialised from ", o.pretrained);
  }
  JsonlLog log(path_join(o.out, "log.jsonl"), o.resume ? start : -1);
  log_info("train: RetinaNet on ", o.arch == "supernet" ? "the supernet" : "arch " + o.arch, " of space ", space.name,
           "; ", train.size(), " train / ", val.size(), " val images, ", train.num_classes(), " classes; batch ",
           o.batch, " at short side ", o.short_side, " (max ", o.max_size, "); ", lr.describe(), "; ",
           net.num_parameters(), " parameters");
  auto save = [&](int64_t step) {
    nn::CheckpointMeta m;
    m.kind = "train";
    m.step = step;
    m.space = o.space;
    m.arch = o.arch;
    m.rng["path"] = {path_rng.state0(), path_rng.state1()};
    m.config = dc.to_map();
    m.config["short_side"] = std::to_string(o.short_side);
    m.config["max_size"] = std::to_string(o.max_size);
    nn::save_checkpoint(ckpt, net, &opt, m);
  };
  data::DetBatchParams bp{o.batch, o.short_side, o.max_size, data::DetAugment::Train, o.seed};
  auto loader = data::make_det_loader(train, bp, start, int(o.workers), 4);
  Rng eval_rng(data::mix_seed(o.seed, 12));
  const nn::Arch eval_path = supernet ? search::sample_uniform_path(space, eval_rng) : bo.arch;
  Progress prog(start, o.iters);
  double acc_cls = 0, acc_box = 0;
  int64_t acc_n = 0;
  for (int64_t it = start; it < o.iters; ++it) {
    data::DetBatch b = loader->next();
    nn::Arch path = supernet ? search::sample_uniform_path(space, path_rng) : bo.arch;
    std::vector<det::Targets> targets;
    for (auto& t : b.targets) targets.push_back(to_targets(t));
    det::DetLosses L = net.forward_train(b.images, targets, path);
    const double lc = L.part("cls").item(), lb = L.part("box").item();
    DETNAS_CHECK(std::isfinite(lc) && std::isfinite(lb), "train: loss became ", lc, " + ", lb, " at iteration ", it,
                 " (lower --lr?)");
    rt::backward(L.total);
    const double cur_lr = lr.at(it);
    opt.step(cur_lr);
    acc_cls += lc;
    acc_box += lb;
    acc_n++;
    data::JsonWriter j;
    j.begin_object().field("iter", it + 1).field("loss", lc + lb).field("loss_cls", lc).field("loss_box", lb);
    j.field("lr", cur_lr).field("arch", nn::format_arch(path)).end_object();
    log.write(j.str());
    if ((it + 1) % o.log_every == 0 || it + 1 == o.iters) {
      std::fprintf(stderr, "train iter %lld/%lld  loss %.4f (cls %.4f box %.4f)  lr %.5f  %.2f img/s  %s\n",
                   (long long)(it + 1), (long long)o.iters, (acc_cls + acc_box) / double(acc_n),
                   acc_cls / double(acc_n), acc_box / double(acc_n), cur_lr,
                   double((it + 1 - start) * o.batch) / std::max(1e-9, prog.elapsed()), prog.eta(it + 1).c_str());
      acc_cls = acc_box = 0;
      acc_n = 0;
    }
    const bool last = it + 1 == o.iters;
    if ((o.eval_every > 0 && (it + 1) % o.eval_every == 0) || last) {
      std::vector<std::pair<rt::Tensor, rt::Tensor>> snap;
      for (auto& bf : net.buffers()) snap.emplace_back(bf.tensor, bf.tensor.clone());
      data::CocoEvalResult r = evaluate(net, eval_path, train, val, o, supernet);
      for (auto& [live, saved] : snap) live.copy_from(saved);
      data::JsonWriter e;
      e.begin_object().field("iter", it + 1).field("ap", r.stats[0]).field("ap50", r.stats[1]).field("ap75", r.stats[2]);
      e.field("eval_arch", nn::format_arch(eval_path)).end_object();
      log.write(e.str());
      std::fprintf(stderr, "train eval at iter %lld: AP %.3f AP50 %.3f AP75 %.3f (arch %s%s)\n", (long long)(it + 1),
                   r.stats[0], r.stats[1], r.stats[2], nn::format_arch(eval_path).c_str(),
                   supernet ? ", BN recalibrated" : "");
    }
    if ((o.ckpt_every > 0 && (it + 1) % o.ckpt_every == 0) || last || it + 1 == o.stop_at) save(it + 1);
    if (it + 1 == o.stop_at) {
      log_info("train: stopping at iteration ", it + 1, " as asked (--stop-at); continue with --resume");
      return;
    }
  }
  log_info("train: done in ", format_duration(prog.elapsed()), "; checkpoint ", ckpt, ".safetensors, log ",
           log.path());
}

void setup_train(CLI::App& root) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* sub = root.add_subcommand("train", "RetinaNet detection training: supernet fine-tuning or a fixed architecture");
  sub->footer(
      "With no --data, trains on the built-in synthetic detection set (data/synthetic/det, generated on first use).\n"
      "--data ROOT expects ROOT/annotations/instances_{train,val}.json and images in ROOT/train, ROOT/val;\n"
      "--train-json/--train-images/--val-json/--val-images override each (e.g. COCO's train2017 folder).\n"
      "Writes OUT/last.safetensors + OUT/last.json and OUT/log.jsonl.");
  sub->add_option("--data", o->data, "COCO-layout root");
  sub->add_option("--train-json", o->train_json, "training annotations");
  sub->add_option("--train-images", o->train_images, "training image folder");
  sub->add_option("--val-json", o->val_json, "validation annotations");
  sub->add_option("--val-images", o->val_images, "validation image folder");
  sub->add_option("--out", o->out, "run folder")->capture_default_str();
  sub->add_option("--space", o->space, "search space")->capture_default_str();
  sub->add_option("--arch", o->arch, "'supernet' or a choice list (standalone network)")->capture_default_str();
  sub->add_option("--pretrained", o->pretrained, "backbone checkpoint from detnas pretrain");
  sub->add_option("--iters", o->iters, "iterations")->capture_default_str();
  sub->add_option("--batch", o->batch, "images per iteration")->capture_default_str();
  sub->add_option("--lr", o->lr, "base LR (default 0.01 * batch / 16)");
  sub->add_option("--wd", o->wd, "weight decay (not on biases)")->capture_default_str();
  sub->add_option("--warmup", o->warmup, "linear warm-up iterations from lr/3")->capture_default_str();
  sub->add_option("--short-side", o->short_side, "resize: short side (DetNAS: 800)")->capture_default_str();
  sub->add_option("--max-size", o->max_size, "resize: long side limit (DetNAS: 1333)")->capture_default_str();
  sub->add_option("--fpn-channels", o->fpn_channels, "FPN/head channels (reference 256)")->capture_default_str();
  sub->add_option("--tower-depth", o->tower_depth, "convs per head tower (reference 4)")->capture_default_str();
  sub->add_option("--eval-every", o->eval_every, "COCO AP on the val set every N iterations")->capture_default_str();
  sub->add_option("--recal-batches", o->recal_batches, "training batches for BN recalibration (supernet eval)")
      ->capture_default_str();
  sub->add_option("--ckpt-every", o->ckpt_every, "checkpoint every N iterations")->capture_default_str();
  sub->add_option("--log-every", o->log_every, "progress line every N iterations")->capture_default_str();
  sub->add_option("--workers", o->workers, "data loader threads")->capture_default_str();
  sub->add_option("--threads", o->threads, "compute threads (0: all cores)")->capture_default_str();
  sub->add_option("--seed", o->seed, "seed of every random stream")->capture_default_str();
  sub->add_flag("--resume", o->resume, "continue from OUT/last");
  sub->add_option("--stop-at", o->stop_at, "stop after this iteration (checkpointed)")->group("");
  sub->callback([o] { run_train(*o); });
}

}  // namespace

DETNAS_COMMAND(setup_train);

}  // namespace detnas::cli
