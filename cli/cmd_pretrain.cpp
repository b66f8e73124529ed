// `detnas pretrain`: SPOS classification pre-training of the supernet. One
// uniformly random path per iteration (optionally FLOPs-binned), label-smoothed
// cross-entropy, SGD momentum 0.9 with wd on conv/linear kernels, LR decaying
// linearly to 0. Periodically: top-1 on the validation folder for a few fixed
// random paths with BN statistics recalibrated on training batches (the
// supernet's own statistics are restored afterwards). Checkpoints every N
// iterations and at the end; --resume continues exactly (same data order,
// paths, dropout masks: everything is derived from the seed and the iteration).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cli/option_checks.h"
#include "cli/run_log.h"
#include "cli/train_dump.h"
#include "cli/train_loop.h"
#include "core/log.h"
#include "data/image_folder.h"
#include "data/json_writer.h"
#include "data/loader.h"
#include "data/synthetic.h"
#include "nn/backbone.h"
#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "nn/lr_schedule.h"
#include "nn/optimizer.h"
#include "runtime/autograd.h"
#include "runtime/dist.h"
#include "runtime/fault.h"
#include "runtime/fs.h"
#include "runtime/ops_elementwise.h"
#include "runtime/ops_loss.h"
#include "search/cost_model.h"
#include "search/path_sampler.h"

namespace detnas::cli {
namespace {

struct PretrainOptions {
  DeviceOptions dev;
  std::string data, out = "runs/pretrain", space = "tiny", flops_bins, sync_bn = "off";
  int64_t iters = 1500, batch = 64, input = 64, eval_every = 500, eval_paths = 3, recal_batches = 8;
  int64_t ckpt_every = 250, log_every = 25, workers = 2, threads = 0, stop_at = -1;
  double lr = 0.05, wd = 4e-5, momentum = 0.9, label_smoothing = 0.1, dropout = 0.2, crop_scale = 0.25;
  uint64_t seed = 1;
  bool resume = false;
  int64_t dump_steps = 0;  // debug (issue 19 step parity): cli/train_dump.h
  std::string dump_dir;
};

struct Ctx {
  const PretrainOptions& o;
  data::ImageFolder train, val;
  nn::Backbone* net;
  rt::dist::Slice part{};  // this rank's part of every batch (the whole batch with one rank)
  bool sync_bn = false;    // the training setting
};

// Top-1 of `path` on the val folder after re-estimating BN statistics on
// `recal_batches` training batches (train transforms), all under no-grad.
double evaluate_path(Ctx& c, const nn::Arch& path, int64_t eval_round) {
  rt::NoGradGuard ng;
  nn::Backbone& net = *c.net;
  // Recalibrate: every BN's running statistics become the exact average over
  // the recalibration batches (a few batches suffice, unlike a momentum update).
  nn::reset_bn_stats(net);
  net.set_mode(nn::Mode::Recalibrate);
  Rng unused(0);
  data::ClsBatchParams tp{c.o.batch, c.o.input, data::ClsAugment::Train,
                          data::mix_seed(c.o.seed, 777, uint64_t(eval_round)), c.o.crop_scale};
  // Under mpirun: this rank's part of every recalibration batch with synchronized
  // statistics, and every size()-th validation batch; the same numbers as one process.
  tp.part_begin = c.part.begin;
  tp.part_end = c.part.end;
  nn::set_sync_bn(net, rt::dist::active());
  for (int64_t i = 0; i < c.o.recal_batches; ++i) {
    data::ClsBatch b = data::make_cls_batch(c.train, tp, i);
    net.forward_logits(b.images, path, unused);  // through the head: its BN is recalibrated too
  }
  nn::set_sync_bn(net, c.sync_bn);
  net.set_mode(nn::Mode::Eval);
  data::ClsBatchParams vp{c.o.batch, c.o.input, data::ClsAugment::Eval, c.o.seed};
  int64_t counts[2] = {0, 0};  // correct, total
  for (int64_t i = rt::dist::rank(); i < data::num_eval_batches(c.val, vp.batch); i += rt::dist::size()) {
    data::ClsBatch b = data::make_cls_batch(c.val, vp, i);
    rt::Tensor logits = net.forward_logits(b.images, path, unused);
    counts[0] += int64_t(std::llround(rt::ops::accuracy_top1(logits, b.labels) * double(b.labels.size())));
    counts[1] += int64_t(b.labels.size());
  }
  rt::dist::allreduce_sum(counts, 2);
  net.set_mode(nn::Mode::Train);
  return double(counts[0]) / double(counts[1]);
}

void run_pretrain(PretrainOptions o) {
  const rt::Device dev = select_run_device(o.dev, "pretrain");
  set_threads(o.threads);
  DETNAS_CHECK(o.iters > 0 && o.batch > 0 && o.input >= 16,
               "pretrain: --iters and --batch must be positive and --input >= 16");
  std::string root = o.data;
  if (root.empty()) {
    root = data::ensure_synthetic_cls(data::synthetic_cls_dir(data::kDefaultSyntheticRoot));
    log_info("pretrain: no --data given: using the built-in synthetic classification set in ", root);
  }
  Ctx c{o, data::scan_image_folder(path_join(root, "train")), data::scan_image_folder(path_join(root, "val")), nullptr};
  DETNAS_CHECK(c.train.classes == c.val.classes, "pretrain: ", root, "/train and ", root,
               "/val have different class folders");
  const nn::SearchSpace& space = nn::space_by_name(o.space);
  const search::FlopsBins bins = search::parse_flops_bins(o.flops_bins);
  nn::BackboneOptions bo;
  bo.space = o.space;
  bo.head = nn::Head::Classification;
  bo.num_classes = int64_t(c.train.classes.size());
  bo.dropout = float(o.dropout);
  bo.seed = o.seed;
  nn::Backbone net(bo);
  c.net = &net;
  // Data parallelism (mpirun): --batch is the global batch, split over the ranks.
  const int ranks = rt::dist::size();
  DETNAS_CHECK(o.batch % ranks == 0, "pretrain: --batch ", o.batch, " does not split evenly over ", ranks,
               " ranks (use a multiple of ", ranks, ")");
  c.part = rt::dist::my_slice(o.batch);
  c.sync_bn = parse_sync_bn(o.sync_bn, false);  // SPOS pre-training: per-rank statistics unless asked
  if (ranks > 1) net.set_batch_part(c.part.begin, o.batch);
  nn::set_sync_bn(net, c.sync_bn);
  nn::SgdConfig sgd = nn::SgdConfig::spos(o.wd);
  sgd.momentum = o.momentum;
  nn::Sgd opt(net.parameters(), sgd);
  nn::LrSchedule lr;
  lr.kind = nn::ScheduleKind::Linear;
  lr.base_lr = o.lr;
  lr.total_iters = o.iters;
  Rng path_rng(data::mix_seed(o.seed, 1)), drop_rng(data::mix_seed(o.seed, 2));
  TrainLoop loop{"pretrain", o.out, o.space, o.iters, o.eval_every, o.ckpt_every, o.log_every, o.stop_at, net, opt};
  loop.rngs = {{"path", &path_rng}, {"dropout", &drop_rng}};
  loop.begin(o.resume);
  net.to(dev);  // after the resume load; Sgd's momentum follows its parameters on the next step
  log_info("pretrain: space ", space.describe(), "; ", c.train.size(), " train / ", c.val.size(), " val images, ",
           c.train.classes.size(), " classes; batch ", o.batch, " at ", o.input, "x", o.input, "; ", lr.describe(),
           "; ", net.num_parameters(), " supernet parameters",
           ranks > 1 ? detail::cat("; ", ranks, " ranks x ", o.batch / ranks, " images, synchronized BN ",
                                   c.sync_bn ? "on" : "off")
                     : std::string());
  data::ClsBatchParams bp{o.batch, o.input, data::ClsAugment::Train, o.seed, o.crop_scale};
  bp.part_begin = c.part.begin;
  bp.part_end = c.part.end;
  data::PrefetchLoader<data::ClsBatch> loader([&](int64_t i) { return data::make_cls_batch(c.train, bp, i); },
                                              loop.start, int(o.workers), 4);
  DETNAS_CHECK(o.dump_steps == 0 || ranks == 1, "pretrain --dump-steps: one process only, not ", ranks, " ranks");
  const TrainDump dump(o.dump_dir, o.dump_steps, loop.start, "pretrain");
  dump.write_init(net, {{"task", "classification"},
                        {"space", o.space},
                        {"arch", "supernet"},
                        {"num_classes", std::to_string(bo.num_classes)},
                        {"batch", std::to_string(o.batch)},
                        {"input", std::to_string(o.input)},
                        {"lr", detail::cat(o.lr)},
                        {"wd", detail::cat(o.wd)},
                        {"momentum", detail::cat(o.momentum)},
                        {"label_smoothing", detail::cat(o.label_smoothing)},
                        {"dropout", detail::cat(o.dropout)},
                        {"iters", std::to_string(o.iters)},
                        {"bn_momentum", detail::cat(bo.bn_momentum)},
                        {"describe_lr", lr.describe()}});
  rt::Tensor drop_mask;  // of a dumped step
  Rng eval_paths_rng(data::mix_seed(o.seed, 3));
  std::vector<nn::Arch> eval_paths;
  for (int64_t k = 0; k < o.eval_paths; ++k) eval_paths.push_back(search::sample_uniform_path(space, eval_paths_rng));
  const double chance = 1.0 / double(c.train.classes.size());
  const char* hint = "lower --lr?";
  std::string prev;  // names the loss of the last completed iteration
  double loss_acc = 0, wait_acc = 0;
  int64_t acc_n = 0;
  loop.step = [&](int64_t it) {
    double waited = 0;
    data::ClsBatch b = loader.next(&waited);
    nn::Arch path = search::sample_path(space, bins, path_rng);
    // A non-finite loss, or an error in the forward pass (the loss op refuses
    // non-finite logits), stops the run before the step: the weights and the last
    // checkpoint stay as they were.
    rt::Tensor loss;
    try {
      net.record_dropout_mask(dump.wants(it) ? &drop_mask : nullptr);
      rt::Tensor logits = net.forward_logits(b.images, path, drop_rng);
      loss = rt::ops::softmax_cross_entropy(logits, b.labels, float(o.label_smoothing), Reduction::Mean);
      // Under mpirun: this part's share of the whole batch's mean.
      if (ranks > 1) loss = rt::ops::mul_scalar(loss, float(double(c.part.end - c.part.begin) / double(o.batch)));
    } catch (const Error& e) {
      loop.stop("error in the forward pass", it + 1, e.what() + prev, hint);
    }
    double l = loss.item();
    if (fault_point("loss").kind == FaultKind::Nan) l = std::nan("");  // tests: a divergence at an exact iteration
    rt::dist::allreduce_sum(&l, 1);                                    // the whole batch's loss
    if (!std::isfinite(l))
      loop.stop("non-finite loss", it + 1,
                detail::cat("loss ", l, " (its only component: softmax cross-entropy, label smoothing ",
                            o.label_smoothing, ")"),
                hint);
    prev = "; iteration " + std::to_string(it + 1) + " had loss " + std::to_string(l);
    rt::backward(loss);
    const auto t_ar = std::chrono::steady_clock::now();
    const int64_t ar_bytes = opt.allreduce_grads();  // the whole batch's gradient on every rank
    const double ar_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_ar).count();
    const double cur_lr = lr.at(it);
    if (dump.wants(it)) {
      const std::vector<std::pair<std::string, double>> parts{{"cls", l}};
      dump.write_step(
          {it + 1, &b.images, nullptr, &b.labels, path, cur_lr, parts, l, opt.clip_grad_norm(0), nullptr, &drop_mask});
    }
    opt.step(cur_lr);
    loss_acc += l;
    wait_acc += waited;
    acc_n++;
    data::JsonWriter j;
    j.begin_object().field("iter", it + 1).field("loss", l).field("lr", cur_lr).field("arch", nn::format_arch(path));
    if (ranks > 1) j.field("allreduce_bytes", ar_bytes).field("allreduce_s", ar_s);
    j.end_object();
    loop.record(j.str());
    if (loop.progress_due(it) && rt::dist::is_root()) {
      std::fprintf(stderr, "pretrain iter %lld/%lld  loss %.4f  lr %.4f  %.1f img/s  data wait %.0f%%  %s\n",
                   (long long)(it + 1), (long long)o.iters, loss_acc / double(acc_n), cur_lr,
                   loop.images_per_s(it + 1, o.batch), 100.0 * wait_acc / std::max(1e-9, loop.prog->elapsed()),
                   loop.prog->eta(it + 1).c_str());
      loss_acc = 0;
      acc_n = 0;
    }
  };
  loop.eval = [&](int64_t done) {
    data::JsonWriter e;
    e.begin_object().field("iter", done).key("eval_top1").begin_array();
    double mean = 0;
    std::string msg;
    for (size_t k = 0; k < eval_paths.size(); ++k) {
      double top1 = evaluate_path(c, eval_paths[k], done);
      mean += top1 / double(eval_paths.size());
      e.value(top1);
      msg += (k ? ", " : "") + std::to_string(top1).substr(0, 5);
    }
    e.end_array().field("mean_top1", mean).field("chance", chance).end_object();
    loop.record(e.str());
    if (rt::dist::is_root())
      std::fprintf(
          stderr,
          "pretrain eval at iter %lld: top-1 of %zu random paths (BN recalibrated): %s (mean %.3f, chance %.3f)\n",
          (long long)done, eval_paths.size(), msg.c_str(), mean, chance);
  };
  loop.meta = [&](nn::CheckpointMeta& m) {
    m.arch = "supernet";
    m.config = {{"lr", std::to_string(o.lr)},       {"batch", std::to_string(o.batch)},
                {"iters", std::to_string(o.iters)}, {"input", std::to_string(o.input)},
                {"seed", std::to_string(o.seed)},   {"classes", std::to_string(c.train.classes.size())}};
  };
  loop.run();
}

void setup_pretrain(CLI::App& root) {
  auto o = std::make_shared<PretrainOptions>();
  CLI::App* sub = root.add_subcommand("pretrain", "supernet classification pre-training (SPOS single-path sampling)");
  sub->footer(
      "With no --data, trains the CPU-sized 'tiny' space on the built-in synthetic classification set\n"
      "(generated in data/synthetic/cls on first use). --data takes an ImageFolder root with train/ and val/\n"
      "(ROOT/train/<class>/*.jpg). Writes OUT/last.safetensors + OUT/last.json (checkpoint) and OUT/log.jsonl.");
  sub->add_option("--data", o->data, "ImageFolder root holding train/ and val/");
  sub->add_option("--out", o->out, "run folder")->capture_default_str();
  sub->add_option("--space", o->space, "search space: tiny, 300M, 1.3G, 3.8G")->capture_default_str();
  sub->add_option("--iters", o->iters, "training iterations")->capture_default_str()->check(positive());
  sub->add_option("--batch", o->batch, "images per iteration")->capture_default_str()->check(positive());
  sub->add_option("--input", o->input, "input side (random-resized-crop size)")
      ->capture_default_str()
      ->check(at_least(16));
  sub->add_option("--lr", o->lr, "base learning rate (linear decay to 0; reference: 0.5 at batch 1024)")
      ->capture_default_str()
      ->check(positive());
  sub->add_option("--wd", o->wd, "weight decay on conv/linear kernels")->capture_default_str()->check(non_negative());
  sub->add_option("--momentum", o->momentum, "SGD momentum")->capture_default_str()->check(in_range(0, 1, false, true));
  sub->add_option("--label-smoothing", o->label_smoothing, "label smoothing")
      ->capture_default_str()
      ->check(in_range(0, 1));
  sub->add_option("--dropout", o->dropout, "dropout before the classifier")
      ->capture_default_str()
      ->check(in_range(0, 1, false, true));
  sub->add_option("--crop-scale", o->crop_scale,
                  "random-resized-crop minimum area fraction (ImageNet reference 0.08; 0.25 keeps the small synthetic "
                  "shapes visible)")
      ->capture_default_str()
      ->check(in_range(0, 1, true, false));
  sub->add_option("--flops-bins", o->flops_bins, "LO:HI:STEP (M MACs at 224): rejection-sample paths into FLOPs bins");
  sub->add_option("--eval-every", o->eval_every, "evaluate every N iterations (0: only at the end)")
      ->capture_default_str()
      ->check(non_negative());
  sub->add_option("--eval-paths", o->eval_paths, "random paths evaluated")->capture_default_str()->check(positive());
  sub->add_option("--recal-batches", o->recal_batches, "training batches for BN recalibration")
      ->capture_default_str()
      ->check(positive());
  sub->add_option("--ckpt-every", o->ckpt_every, "checkpoint every N iterations")
      ->capture_default_str()
      ->check(non_negative());
  sub->add_option("--log-every", o->log_every, "progress line every N iterations")
      ->capture_default_str()
      ->check(positive());
  sub->add_option("--workers", o->workers, "data loader threads")->capture_default_str()->check(positive());
  sub->add_option("--sync-bn", o->sync_bn,
                  "under mpirun: batch statistics of every BN over all ranks (auto/off: per-rank statistics, as "
                  "SPOS pre-training; the BN recalibration of an evaluation is always synchronized)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "on", "off"}));
  add_device_options(sub, &o->dev);
  sub->add_option("--threads", o->threads, "compute threads (0: all cores)")
      ->capture_default_str()
      ->check(non_negative());
  sub->add_option("--seed", o->seed, "seed of every random stream")->capture_default_str();
  sub->add_flag("--resume", o->resume, "continue from OUT/last");
  sub->add_option("--stop-at", o->stop_at, "stop after this iteration (checkpointed), as an interruption would")
      ->group("");
  sub->add_option("--dump-steps", o->dump_steps, "debug: dump the batch and results of the first N steps")
      ->check(non_negative())
      ->group("");
  sub->add_option("--dump-dir", o->dump_dir, "debug: folder of --dump-steps (init weights, per-step files)")->group("");
  sub->callback([o] { run_pretrain(*o); });
}

}  // namespace

DETNAS_COMMAND(setup_pretrain);

}  // namespace detnas::cli
