// Public API, runtime part (installed as <detnas/runtime.h>): tensors, the
// autograd-aware ops, backward, the no-grad guard, device selection, threads
// and logging. Mostly re-exports of runtime/ under detnas::api so that an
// embedding program has one namespace to learn; the full internal headers stay
// usable (they are installed too).
// Contract of the whole library: errors throw detnas::Error (what() carries the
// message and file:line, message() the message alone); nothing is printed to
// stdout and nothing calls exit(); log lines go to the callback set with
// set_log_callback (default: stderr, "[detnas] ..." lines).
// Not here: networks and checkpoints (models.h), detection (inference.h),
// FLOPs and search (search.h).
#pragma once
#include <functional>
#include <string>

#include "core/error.h"
#include "core/log.h"
#include "runtime/autograd.h"
#include "runtime/device.h"
#include "runtime/ops_box.h"
#include "runtime/ops_conv.h"
#include "runtime/ops_elementwise.h"
#include "runtime/ops_loss.h"
#include "runtime/ops_norm.h"
#include "runtime/ops_shape.h"
#include "runtime/rng.h"
#include "runtime/tensor.h"

namespace detnas::api {

using ::detnas::Error;
using ::detnas::LogLevel;
using ::detnas::Rng;
using rt::Device;
using rt::NoGradGuard;
using rt::Shape;
using rt::Tensor;
// Autograd: backward(loss) runs the tape recorded since the last backward and
// fills .grad() of every tensor that requires grad; grad_enabled() is false
// inside a NoGradGuard scope.
using rt::backward;
using rt::clear_tape;
using rt::grad_enabled;
// Every op (conv2d, linear, batch_norm, relu, add, mul, sum, concat,
// channel_shuffle, max_pool2d, losses, roi_align, nms, ...): api::ops::conv2d(...).
namespace ops = ::detnas::rt::ops;

// Receives every log line of the library (level, message without a trailing
// newline). Called under a lock, possibly from worker threads: keep it short
// and do not call back into the library. An empty callback restores stderr.
using LogCallback = std::function<void(LogLevel, const std::string&)>;
void set_log_callback(LogCallback callback);
// Lines below `min_level` are dropped before formatting (default Info).
void set_log_level(LogLevel min_level);

// "auto" (CUDA when built with it and a GPU answers, else CPU), "cpu" or
// "cuda" (an error naming the reason when no GPU is usable).
Device select_device(const std::string& request);
bool built_with_cuda();

// Threads of the OpenMP regions (n >= 1); results do not depend on it
// (OpenBLAS itself always runs on one thread: kernels/gemm.h).
void set_num_threads(int n);

// OpenBLAS 0.3.21 does not know recent Intel CPUs and then runs generic
// kernels (about 8x slower GEMM). Call first thing in main(argv), before any
// thread exists: when OpenBLAS chose a pre-AVX2 core, the program is
// re-executed with OPENBLAS_CORETYPE set (one log line). The same restart sets
// OMP_WAIT_POLICY=passive when it is unset (OpenMP workers spinning between
// regions slow OpenBLAS's threads on the same cores). Setting OPENBLAS_CORETYPE
// and OMP_WAIT_POLICY yourself, or DETNAS_BLAS_CORE=keep, avoids the re-exec.
void use_best_blas_kernels(char** argv);

// "<git revision> MODE=... CUDA=..." of the library build.
std::string version();

}  // namespace detnas::api
