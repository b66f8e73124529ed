// `detnas train`: detector training (--detector retinanet|fpn) with the supernet
// as backbone (one uniform random path per iteration, unsampled choices
// untouched) or with a fixed architecture (--arch LIST, a standalone network).
// SGD momentum 0.9, wd 1e-4 (none on biases, biases at 2x LR), linear warm-up
// and step decay; periodic COCO AP on the evaluation set (for a supernet: a
// fixed random path, BN recalibrated on training images, search/candidate_eval.h);
// checkpoints, exact --resume, JSONL log and SVG plot.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cli/det_common.h"
#include "cli/option_checks.h"
#include "cli/run_log.h"
#include "cli/train_dump.h"
#include "cli/train_loop.h"
#include "cli/train_plot.h"
#include "core/log.h"
#include "data/coco_eval.h"
#include "data/det_data.h"
#include "data/json_writer.h"
#include "data/loader.h"
#include "data/synthetic.h"
#include "data/transforms.h"
#include "detect/faster_rcnn.h"
#include "detect/postprocess.h"
#include "detect/retinanet.h"
#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "nn/lr_schedule.h"
#include "nn/optimizer.h"
#include "runtime/autograd.h"
#include "runtime/dist.h"
#include "runtime/fault.h"
#include "runtime/fs.h"
#include "search/candidate_eval.h"
#include "search/path_sampler.h"

namespace detnas::cli {
namespace {

struct TrainOptions {
  DeviceOptions dev;
  DataOptions d;
  std::string out = "runs/train", space = "tiny", arch = "supernet", pretrained, detector = "fpn";
  int64_t iters = 1500, batch = 4, short_side = 256, max_size = 320, fpn_channels = 64, tower_depth = 2;
  int64_t warmup = 200, eval_every = 500, bn_images = 32, ckpt_every = 200, log_every = 20, workers = 2, threads = 0;
  int64_t stop_at = -1;
  int64_t anchor_size = 32;
  std::string sync_bn = "auto", pretrained_norms = "init";
  int64_t rpn_pre_train = 600, rpn_post_train = 300, rpn_pre_test = 300, rpn_post_test = 100, roi_batch = 64;
  double lr = 0.02, wd = 1e-4, bn_momentum = 0, clip_grad = 10;
  uint64_t seed = 1;
  bool resume = false;
  int64_t dump_steps = 0;  // debug (issue 19 step parity): cli/train_dump.h
  std::string dump_dir;
};

det::Targets to_targets(const data::ImageTargets& t) {
  det::Targets r;
  r.boxes.assign(t.boxes.data(), t.boxes.data() + t.boxes.numel());
  r.labels = t.labels;
  return r;
}

void run_train(TrainOptions o) {
  const rt::Device dev = select_run_device(o.dev, "train");
  set_threads(o.threads);
  DetData dd = load_det_data(o.d, "train");
  const data::DetDataset& train = dd.train;
  const data::DetDataset& val = dd.val;
  const nn::SearchSpace& space = nn::space_by_name(o.space);
  const bool supernet = o.arch == "supernet";
  nn::BackboneOptions bo;
  bo.space = o.space;
  bo.seed = o.seed;
  if (!supernet) {
    bo.kind = nn::NetKind::Standalone;
    try {
      bo.arch = nn::parse_arch(o.arch);
      nn::validate_arch(space, bo.arch);
    } catch (const Error& e) {
      DETNAS_FAIL("train: --arch ", o.arch, ": ", e.message());
    }
    bo.split = nn::ChannelSplit::ShuffleHalve;  // loads supernet-pretrained weights
  }
  det::DetectorConfig dc;
  dc.kind = o.detector;
  dc.num_classes = train.num_classes();
  dc.fpn_channels = o.fpn_channels;
  dc.head_depth = o.tower_depth;
  dc.seed = o.seed;
  dc.rpn_pre_nms_train = o.rpn_pre_train;
  dc.rpn_post_nms_train = o.rpn_post_train;
  dc.rpn_pre_nms_test = o.rpn_pre_test;
  dc.rpn_post_nms_test = o.rpn_post_test;
  dc.roi_batch = o.roi_batch;
  dc.anchor_size = o.anchor_size;
  std::unique_ptr<det::Detector> net_ptr = det::make_detector(bo, dc);
  det::Detector& net = *net_ptr;
  // Data parallelism (mpirun): --batch is the global batch; rank r trains on its
  // part of every batch (rt::dist::slice), exactly the images one process reads.
  const int ranks = rt::dist::size();
  DETNAS_CHECK(o.batch % ranks == 0, "train: --batch ", o.batch, " does not split evenly over ", ranks,
               " ranks (use a multiple of ", ranks, ")");
  const rt::dist::Slice part = rt::dist::my_slice(o.batch);
  const bool sync_bn = parse_sync_bn(o.sync_bn, ranks > 1);
  net.set_batch_part({part.begin, ranks > 1});
  nn::set_sync_bn(net, sync_bn);
  if (o.lr <= 0) o.lr = 0.01 * double(o.batch) / 16.0;  // linear scaling from the reference 16 images at 0.01
  nn::Sgd opt(net.parameters(), nn::SgdConfig::detection(o.wd));
  nn::LrSchedule lr;
  lr.kind = nn::ScheduleKind::Step;
  lr.base_lr = o.lr;
  lr.milestones = {o.iters * 2 / 3, o.iters * 8 / 9};  // 60k and 80k of 90k
  lr.warmup_iters = o.warmup;
  Rng path_rng(data::mix_seed(o.seed, 11));
  TrainLoop loop{"train", o.out, o.space, o.iters, o.eval_every, o.ckpt_every, o.log_every, o.stop_at, net, opt};
  loop.rngs = {{"path", &path_rng}, {"sampler", net.sampler_rng()}};
  o.resume = loop.begin(o.resume);
  if (!o.resume && o.pretrained.empty() && o.d.data.empty() && o.d.train_json.empty() &&
      file_exists("runs/pretrain/last.json")) {
    o.pretrained = "runs/pretrain/last";
    log_info("train: using the default pretrain run's backbone ", o.pretrained,
             " (--pretrained none to train from scratch)");
  }
  if (o.pretrained == "none") o.pretrained.clear();
  if (!o.resume && !o.pretrained.empty()) {
    const std::vector<double> fresh_norms = nn::conv_weight_norms(net.backbone());
    try {
      nn::load_checkpoint(o.pretrained, net.backbone(), nullptr, nn::ExtraTensors::Ignore);
    } catch (const Error& e) {
      const std::string kind = other_checkpoint_kind(o.pretrained, "pretrain");  // the likely cause
      DETNAS_FAIL("train: --pretrained ", o.pretrained, ": ",
                  kind.empty() ? "" : "a '" + kind + "' checkpoint, not one of detnas pretrain: ", e.message());
    }
    if (o.pretrained_norms == "init") {
      // Pre-training grows the BN-fed conv kernels' norms (2-4x on the built-in
      // set), which divides their effective learning rate by the square: give them
      // back the fresh network's norms (the function is unchanged; nn/module.h).
      const double f = nn::rescale_conv_weights(net.backbone(), fresh_norms);
      log_info("train: backbone initialised from ", o.pretrained,
               "; conv kernels rescaled to the fresh network's norms", " (geometric mean factor ", f,
               "; --pretrained-norms keep to keep them)");
    } else {
      log_info("train: backbone initialised from ", o.pretrained);
    }
  }
  net.to(dev);  // after every load (checkpoints load into any device; Sgd's momentum follows its parameters)
  const std::string plot = path_join(o.out, "plot.svg");
  const std::string title = std::string(net.kind()) + (supernet ? " supernet " : " arch ") + o.space;
  log_info("train: ", net.kind(), " on ", supernet ? "the supernet" : "arch " + o.arch, " of space ", space.name, "; ",
           train.size(), " train images, evaluation on ", dd.val_name, " (", val.size(), " images), ",
           train.num_classes(), " classes; batch ", o.batch, " at short side ", o.short_side, " (max ", o.max_size,
           "); ", lr.describe(), "; ", net.num_parameters(), " parameters",
           ranks > 1 ? detail::cat("; ", ranks, " ranks x ", o.batch / ranks, " images, synchronized BN ",
                                   sync_bn ? "on" : "off")
                     : std::string());
  Rng eval_rng(data::mix_seed(o.seed, 12));
  const nn::Arch eval_path = supernet ? search::sample_uniform_path(space, eval_rng) : nn::Arch{};
  const std::string eval_arch = nn::format_arch(supernet ? eval_path : bo.arch);
  data::DetBatchParams bp{o.batch, o.short_side, o.max_size, data::DetAugment::Train, o.seed};
  bp.part_begin = part.begin;
  bp.part_end = part.end;
  auto loader = data::make_det_loader(train, bp, loop.start, int(o.workers), 4);
  DETNAS_CHECK(o.dump_steps == 0 || ranks == 1, "train --dump-steps: one process only, not ", ranks, " ranks");
  const TrainDump dump(o.dump_dir, o.dump_steps, loop.start);
  if (dump.enabled()) {
    std::map<std::string, std::string> cfg = dc.to_map();
    cfg.insert({{"space", o.space},
                {"arch", o.arch},
                {"batch", std::to_string(o.batch)},
                {"lr", detail::cat(o.lr)},
                {"wd", detail::cat(o.wd)},
                {"clip_grad", detail::cat(o.clip_grad)},
                {"warmup", std::to_string(o.warmup)},
                {"iters", std::to_string(o.iters)},
                {"bn_momentum", detail::cat(bo.bn_momentum)},
                {"describe_lr", lr.describe()}});
    if (auto* fr = dynamic_cast<det::FasterRcnn*>(&net))
      cfg["fpn_bn_momentum"] = detail::cat(fr->options().bn_momentum);
    dump.write_init(net, cfg);
  }
  det::SamplerTrace trace;  // FPN Faster R-CNN's sampler choices of a dumped step
  auto* frcnn = dump.enabled() ? dynamic_cast<det::FasterRcnn*>(&net) : nullptr;
  search::EvalSettings es{o.batch, o.short_side, o.max_size, supernet ? o.bn_images : 0, o.bn_momentum, o.seed};
  es.across_ranks = true;  // a no-op with one rank
  // A non-finite loss or gradient, or an error in the forward pass (the loss ops
  // refuse non-finite logits), stops the run before the optimizer step, so the
  // weights and the last checkpoint stay as they were. The message names the
  // iteration and every loss component (of the previous iteration when this one's
  // could not be computed).
  const char* hint = "lower --lr, or --clip-grad?";
  std::string prev;         // names the losses of the last completed iteration
  std::vector<double> acc;  // total and components since the last progress line
  int64_t acc_n = 0;
  loop.step = [&](int64_t it) {
    data::DetBatch b = loader->next();
    b.images = data::pad_batch_across_ranks(b.images);  // the whole batch's padded size
    nn::Arch path = supernet ? search::sample_uniform_path(space, path_rng) : nn::Arch{};
    std::vector<det::Targets> targets;
    for (auto& t : b.targets) targets.push_back(to_targets(t));
    det::DetLosses L;
    if (frcnn) frcnn->record_samples(dump.wants(it) ? &trace : nullptr);
    try {
      L = net.forward_train(b.images, targets, path);
    } catch (const Error& e) {
      loop.stop("error in the forward pass", it + 1, e.what() + prev, hint);
    }
    // The loss of the whole batch: the ranks' losses are shares of it (BatchPart).
    std::vector<double> sums{L.total.item()};
    for (auto& lp : L.parts) sums.push_back(lp.second.item());
    if (fault_point("loss").kind == FaultKind::Nan)  // tests: a divergence at an exact iteration
      for (double& v : sums) v = std::nan("");
    rt::dist::allreduce_sum(sums.data(), int64_t(sums.size()));
    double total = sums[0];
    std::vector<double> parts(sums.begin() + 1, sums.end());  // of L.parts
    std::string losses = detail::cat("loss ", total, " (");   // numbers as %.6g
    for (size_t k = 0; k < parts.size(); ++k) losses += detail::cat(k ? ", " : "", L.parts[k].first, " ", parts[k]);
    losses += ")";
    if (!std::isfinite(total)) loop.stop("non-finite loss", it + 1, losses, hint);
    rt::backward(L.total);
    const auto t_ar = std::chrono::steady_clock::now();
    const int64_t ar_bytes = opt.allreduce_grads();  // the whole batch's gradient on every rank
    const double ar_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_ar).count();
    const double grad_norm = opt.clip_grad_norm(o.clip_grad);
    if (!std::isfinite(grad_norm))
      loop.stop(grad_norm > 0 ? "non-finite gradient (norm inf)" : "non-finite gradient (norm nan)", it + 1, losses,
                hint);
    prev = "; iteration " + std::to_string(it + 1) + " had " + losses;
    const double cur_lr = lr.at(it);
    if (dump.wants(it)) {
      std::vector<std::pair<std::string, double>> named;
      for (size_t k = 0; k < parts.size(); ++k) named.emplace_back(L.parts[k].first, parts[k]);
      dump.write_step({it + 1, &b.images, &targets, nullptr, supernet ? path : bo.arch, cur_lr, named, total, grad_norm,
                       frcnn ? &trace : nullptr});
    }
    opt.step(cur_lr);
    if (acc.empty()) acc.assign(parts.size() + 1, 0.0);  // the detector's loss components are fixed
    data::JsonWriter j;
    j.begin_object().field("iter", it + 1).field("loss", total);
    acc[0] += total;
    for (size_t k = 0; k < parts.size(); ++k) {
      acc[k + 1] += parts[k];
      j.field("loss_" + L.parts[k].first, parts[k]);
    }
    acc_n++;
    j.field("grad_norm", grad_norm).field("lr", cur_lr).field("arch", nn::format_arch(supernet ? path : bo.arch));
    if (ranks > 1) j.field("allreduce_bytes", ar_bytes).field("allreduce_s", ar_s);
    loop.record(j.end_object().str());
    if (loop.progress_due(it) && rt::dist::is_root()) {
      std::string means;
      for (size_t k = 0; k < parts.size(); ++k) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%s%s %.4f", k ? " " : "", L.parts[k].first.c_str(), acc[k + 1] / double(acc_n));
        means += buf;
      }
      std::fprintf(stderr, "train iter %lld/%lld  loss %.4f (%s)  lr %.5f  %.2f img/s  %s\n", (long long)(it + 1),
                   (long long)o.iters, acc[0] / double(acc_n), means.c_str(), cur_lr,
                   loop.images_per_s(it + 1, o.batch), loop.prog->eta(it + 1).c_str());
      std::fill(acc.begin(), acc.end(), 0.0);
      acc_n = 0;
    }
  };
  loop.eval = [&](int64_t done) {
    const auto st = search::score_path(net, eval_path, train, val, es).coco.stats;
    nn::set_sync_bn(net, sync_bn);  // the recalibration leaves it off
    data::JsonWriter e;
    e.begin_object().field("iter", done).field("ap", st[0]).field("ap50", st[1]).field("ap75", st[2]);
    e.field("eval_arch", eval_arch).end_object();
    loop.record(e.str());
    if (rt::dist::is_root())
      std::fprintf(stderr, "train eval at iter %lld: AP %.3f AP50 %.3f AP75 %.3f (arch %s%s)\n", (long long)done, st[0],
                   st[1], st[2], eval_arch.c_str(), supernet ? ", BN recalibrated" : "");
  };
  loop.meta = [&](nn::CheckpointMeta& m) {
    m.arch = supernet ? "supernet" : nn::format_arch(bo.arch);
    m.config = dc.to_map();
    m.config["short_side"] = std::to_string(o.short_side);
    m.config["max_size"] = std::to_string(o.max_size);
    m.config["batch"] = std::to_string(o.batch);
    m.config["bn_images"] = std::to_string(o.bn_images);
    m.config["bn_momentum"] = std::to_string(o.bn_momentum);
    m.config["categories"] = categories_json(train.coco());
    if (supernet) m.config["eval_arch"] = nn::format_arch(eval_path);
  };
  loop.after_save = [&] { write_train_plot(loop.log->path(), plot, title, o.log_every); };  // rank 0
  loop.run(", plot " + plot);
}

void setup_train(CLI::App& root) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* sub = root.add_subcommand(
      "train", "detector training (RetinaNet or FPN Faster R-CNN): supernet fine-tuning or a fixed architecture");
  sub->footer(
      "With no --data, trains on the built-in synthetic detection set (data/synthetic/det, generated on first use).\n"
      "--data ROOT expects ROOT/annotations/instances_{train,val}.json and images in ROOT/train, ROOT/val;\n"
      "--train-json/--train-images/--val-json/--val-images override each (e.g. COCO's train2017 folder).\n"
      "Writes OUT/last.safetensors + OUT/last.json, OUT/log.jsonl and OUT/plot.svg (loss and AP).");
  add_data_options(sub, o->d);
  sub->add_option("--out", o->out, "run folder")->capture_default_str();
  sub->add_option("--space", o->space, "search space")->capture_default_str();
  sub->add_option("--detector", o->detector, "retinanet or fpn (Faster R-CNN)")->capture_default_str();
  sub->add_option("--arch", o->arch, "'supernet' or a choice list (standalone network)")->capture_default_str();
  sub->add_option("--pretrained", o->pretrained, "backbone checkpoint from detnas pretrain");
  sub->add_option("--pretrained-norms", o->pretrained_norms,
                  "init: rescale the pre-trained conv kernels to a fresh network's norms (same function, the fresh "
                  "network's effective learning rates); keep: load them as they are")
      ->capture_default_str()
      ->check(CLI::IsMember({"init", "keep"}));
  sub->add_option("--iters", o->iters, "iterations")->capture_default_str()->check(positive());
  sub->add_option("--batch", o->batch, "images per iteration")->capture_default_str()->check(positive());
  sub->add_option("--lr", o->lr, "base LR (0: the reference's linear scaling 0.01 * batch / 16)")
      ->capture_default_str()
      ->check(non_negative());
  sub->add_option("--clip-grad", o->clip_grad, "clip the global gradient L2 norm to this (0: off)")
      ->capture_default_str()
      ->check(non_negative());
  sub->add_option("--wd", o->wd, "weight decay (not on biases)")->capture_default_str()->check(non_negative());
  sub->add_option("--warmup", o->warmup, "linear warm-up iterations from lr/3")
      ->capture_default_str()
      ->check(non_negative());
  sub->add_option("--short-side", o->short_side, "resize: short side (DetNAS: 800)")
      ->capture_default_str()
      ->check(positive());
  sub->add_option("--max-size", o->max_size, "resize: long side limit (DetNAS: 1333)")
      ->capture_default_str()
      ->check(positive());
  sub->add_option("--fpn-channels", o->fpn_channels, "FPN/head channels (reference 256)")
      ->capture_default_str()
      ->check(positive());
  sub->add_option("--tower-depth", o->tower_depth, "convs per head tower (reference 4)")
      ->capture_default_str()
      ->check(non_negative());
  sub->add_option("--anchor-size", o->anchor_size,
                  "smallest anchor (RetinaNet P3, RPN P2), doubling per level (reference 32)")
      ->capture_default_str()
      ->check(CLI::Range(4, 1024));
  sub->add_option("--rpn-pre-nms-train", o->rpn_pre_train,
                  "fpn: proposals per level before NMS in training (reference 2000)")
      ->capture_default_str()
      ->check(positive());
  sub->add_option("--rpn-post-nms-train", o->rpn_post_train,
                  "fpn: proposals per image after NMS in training (reference 2000)")
      ->capture_default_str()
      ->check(positive());
  sub->add_option("--rpn-pre-nms-test", o->rpn_pre_test, "fpn: proposals per level before NMS at test (reference 1000)")
      ->capture_default_str()
      ->check(positive());
  sub->add_option("--rpn-post-nms-test", o->rpn_post_test,
                  "fpn: proposals per image after NMS at test (reference 1000)")
      ->capture_default_str()
      ->check(positive());
  sub->add_option("--roi-batch", o->roi_batch, "fpn: sampled RoIs per image (reference 512)")
      ->capture_default_str()
      ->check(positive());
  sub->add_option("--eval-every", o->eval_every, "COCO AP on the val set every N iterations")
      ->capture_default_str()
      ->check(non_negative());
  sub->add_option("--bn-images", o->bn_images, "training images for BN recalibration before a supernet evaluation")
      ->capture_default_str()
      ->check(non_negative());
  sub->add_option("--bn-momentum", o->bn_momentum,
                  "BN momentum of the recalibration (0: exact average over the batches; the reference uses 0.1 over "
                  "4000 images)")
      ->capture_default_str()
      ->check(in_range(0, 1));
  sub->add_option("--ckpt-every", o->ckpt_every, "checkpoint every N iterations")
      ->capture_default_str()
      ->check(non_negative());
  sub->add_option("--log-every", o->log_every, "progress line every N iterations")
      ->capture_default_str()
      ->check(positive());
  sub->add_option("--workers", o->workers, "data loader threads")->capture_default_str()->check(positive());
  sub->add_option("--sync-bn", o->sync_bn,
                  "under mpirun: batch statistics of every BN over all ranks (auto: on with more than one rank, "
                  "as DetNAS); BN recalibration before an evaluation is always synchronized")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "on", "off"}));
  add_device_options(sub, &o->dev);
  sub->add_option("--threads", o->threads, "compute threads (0: all cores)")
      ->capture_default_str()
      ->check(non_negative());
  sub->add_option("--seed", o->seed, "seed of every random stream")->capture_default_str();
  sub->add_flag("--resume", o->resume, "continue from OUT/last");
  sub->add_option("--stop-at", o->stop_at, "stop after this iteration (checkpointed)")->group("");
  sub->add_option("--dump-steps", o->dump_steps, "debug: dump the batch and results of the first N steps")
      ->check(non_negative())
      ->group("");
  sub->add_option("--dump-dir", o->dump_dir, "debug: folder of --dump-steps (init weights, per-step files)")->group("");
  sub->callback([o] { run_train(*o); });
}

}  // namespace

DETNAS_COMMAND(setup_train);

}  // namespace detnas::cli
