// CPU loss kernels: loops over the per-element and per-row math of kernels/loss.h
// (the CUDA kernels call the same functions), OpenMP over rows/elements for large
// inputs. Each forward also finds the first non-finite input index (min-reduction,
// so the answer does not depend on the thread count). Not here: tensors,
// reductions into outputs, autograd.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "kernels/loss.h"

namespace detnas::kernels::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 15;
constexpr int64_t kNoBad = std::numeric_limits<int64_t>::max();
inline int64_t bad_or_none(int64_t first) { return first == kNoBad ? -1 : first; }
}  // namespace

template <typename T>
double loss_sum(int64_t n, const T* v) {
  // Block boundaries depend only on n, and blocks are added in order, so the
  // result is the same for any number of threads.
  constexpr int64_t kBlocks = 64;
  if (n <= kParallelMin) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += double(v[i]);
    return s;
  }
  double part[kBlocks];
  const int64_t bs = (n + kBlocks - 1) / kBlocks;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < kBlocks; ++b) {
    double s = 0;
    const int64_t e = std::min(n, (b + 1) * bs);
    for (int64_t i = b * bs; i < e; ++i) s += double(v[i]);
    part[b] = s;
  }
  double s = 0;
  for (int64_t b = 0; b < kBlocks; ++b) s += part[b];
  return s;
}

// ---- softmax cross-entropy -------------------------------------------------

template <typename T>
int64_t softmax_xent_forward(int64_t N, int64_t K, const T* x, const int64_t* labels, T eps, T* loss, T* lse) {
  int64_t first = kNoBad;
  const XentSmoothing<double> sm = xent_smoothing(double(eps), K);
#pragma omp parallel for schedule(static) reduction(min : first) if (N * K > kParallelMin)
  for (int64_t i = 0; i < N; ++i) {
    const int64_t bad = softmax_xent_row(x + i * K, K, labels[i], sm, loss + i, lse + i);
    if (bad >= 0) first = std::min(first, i * K + bad);
  }
  return bad_or_none(first);
}

template <typename T>
void softmax_xent_backward(int64_t N, int64_t K, const T* x, const int64_t* labels, T eps, const T* lse,
                           LossGrad<T> dloss, T* dx, GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
  const XentSmoothing<T> sm = xent_smoothing(eps, K);
#pragma omp parallel for schedule(static) if (N * K > kParallelMin)
  for (int64_t i = 0; i < N; ++i) {
    const T* xi = x + i * K;
    T* di = dx + i * K;
    const int64_t y = labels[i];
    const T g = xent_ignored(y, K) ? T(0) : dloss.at(i);
    for (int64_t j = 0; j < K; ++j) write_grad(di + j, softmax_xent_grad(xi[j], lse[i], g, j, y, K, sm), mode);
  }
}

template <typename T>
int64_t top1_correct(int64_t N, int64_t K, const T* x, const int64_t* labels) {
  int64_t correct = 0;
#pragma omp parallel for schedule(static) reduction(+ : correct) if (N * K > kParallelMin)
  for (int64_t i = 0; i < N; ++i) {
    const int64_t y = labels[i];
    if (xent_ignored(y, K)) continue;
    const T* xi = x + i * K;
    int64_t best = 0;
    for (int64_t j = 1; j < K; ++j)
      if (xi[j] > xi[best]) best = j;
    correct += best == y ? 1 : 0;
  }
  return correct;
}

// ---- sigmoid focal loss ----------------------------------------------------

template <typename T>
int64_t sigmoid_focal_forward(int64_t N, int64_t K, const T* x, const T* t, const T* row_w, FocalParams p, T* loss) {
  int64_t first = kNoBad;
  const T alpha = T(p.alpha), gamma = T(p.gamma);
#pragma omp parallel for schedule(static) reduction(min : first) if (N * K > kParallelMin)
  for (int64_t i = 0; i < N; ++i) {
    const T w = row_w ? row_w[i] : T(1);
    for (int64_t j = i * K, e = j + K; j < e; ++j) {
      if (!loss_finite(x[j]) || !loss_finite(t[j])) first = std::min(first, j);
      loss[j] = focal_weighted_value(x[j], t[j], w, alpha, gamma);
    }
  }
  return bad_or_none(first);
}

template <typename T>
void sigmoid_focal_backward(int64_t N, int64_t K, const T* x, const T* t, const T* row_w, FocalParams p,
                            LossGrad<T> dloss, T* dx, GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
  const T alpha = T(p.alpha), gamma = T(p.gamma);
#pragma omp parallel for schedule(static) if (N * K > kParallelMin)
  for (int64_t i = 0; i < N; ++i) {
    const T w = row_w ? row_w[i] : T(1);
    for (int64_t j = i * K, e = j + K; j < e; ++j)
      write_grad(dx + j, focal_weighted_grad(x[j], t[j], w, dloss.at(j), alpha, gamma), mode);
  }
}

// ---- smooth L1 and BCE with logits ------------------------------------------

// Smooth L1 is memory-bound: the loops are `omp simd` over blocks, with the
// finiteness check folded into a per-block flag; only a block that holds a
// non-finite input is searched again for its first such index.
template <typename T>
int64_t smooth_l1_forward(int64_t n, const T* x, const T* t, const T* w, T beta, T* loss) {
  constexpr int64_t kBlock = 4096;
  const int64_t nb = (n + kBlock - 1) / kBlock;
  int64_t first = kNoBad;
#pragma omp parallel for schedule(static) reduction(min : first) if (n > kParallelMin)
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t lo = b * kBlock, hi = std::min(n, lo + kBlock);
    int bad = 0;
    if (w) {
#pragma omp simd reduction(| : bad)
      for (int64_t i = lo; i < hi; ++i) {
        bad |= !(loss_finite(x[i]) && loss_finite(t[i]));
        loss[i] = loss_weighted(smooth_l1_value(x[i] - t[i], beta), w, i);
      }
    } else {
#pragma omp simd reduction(| : bad)
      for (int64_t i = lo; i < hi; ++i) {
        bad |= !(loss_finite(x[i]) && loss_finite(t[i]));
        loss[i] = smooth_l1_value(x[i] - t[i], beta);
      }
    }
    if (bad)
      for (int64_t i = lo; i < hi; ++i)
        if (!loss_finite(x[i]) || !loss_finite(t[i])) {
          first = std::min(first, i);
          break;
        }
  }
  return bad_or_none(first);
}

namespace {
// dx[i] (mode_x) and dt[i] = -dx[i] (mode_t) for i in [lo, hi) with the upstream
// gradient g(i); the modes are template arguments so the loop has no branches.
template <GradientMode kX, GradientMode kT, typename T, typename G>
void smooth_l1_backward_block(int64_t lo, int64_t hi, const T* __restrict x, const T* __restrict t,
                              const T* __restrict w, T beta, G g, T* __restrict dx, T* __restrict dt) {
#pragma omp simd
  for (int64_t i = lo; i < hi; ++i) {
    const T v = smooth_l1_weighted_grad(x[i], t[i], beta, g(i), w, i);
    if (kX == GradientMode::Overwrite) dx[i] = v;
    if (kX == GradientMode::Accumulate) dx[i] += v;
    if (kT == GradientMode::Overwrite) dt[i] = -v;
    if (kT == GradientMode::Accumulate) dt[i] += -v;
  }
}

template <GradientMode kX, typename T, typename G>
void smooth_l1_backward_t(GradientMode mode_t, int64_t lo, int64_t hi, const T* x, const T* t, const T* w, T beta, G g,
                          T* dx, T* dt) {
  if (mode_t == GradientMode::Ignore)
    smooth_l1_backward_block<kX, GradientMode::Ignore>(lo, hi, x, t, w, beta, g, dx, dt);
  else if (mode_t == GradientMode::Overwrite)
    smooth_l1_backward_block<kX, GradientMode::Overwrite>(lo, hi, x, t, w, beta, g, dx, dt);
  else
    smooth_l1_backward_block<kX, GradientMode::Accumulate>(lo, hi, x, t, w, beta, g, dx, dt);
}

template <typename T, typename G>
void smooth_l1_backward_modes(GradientMode mode_x, GradientMode mode_t, int64_t lo, int64_t hi, const T* x, const T* t,
                              const T* w, T beta, G g, T* dx, T* dt) {
  if (mode_x == GradientMode::Ignore)
    smooth_l1_backward_t<GradientMode::Ignore>(mode_t, lo, hi, x, t, w, beta, g, dx, dt);
  else if (mode_x == GradientMode::Overwrite)
    smooth_l1_backward_t<GradientMode::Overwrite>(mode_t, lo, hi, x, t, w, beta, g, dx, dt);
  else
    smooth_l1_backward_t<GradientMode::Accumulate>(mode_t, lo, hi, x, t, w, beta, g, dx, dt);
}
}  // namespace

template <typename T>
void smooth_l1_backward(int64_t n, const T* x, const T* t, const T* w, T beta, LossGrad<T> dloss, T* dx,
                        GradientMode mode_x, T* dt, GradientMode mode_t) {
  if (mode_x == GradientMode::Ignore && mode_t == GradientMode::Ignore) return;
  constexpr int64_t kBlock = 4096;
  const int64_t nb = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t lo = b * kBlock, hi = std::min(n, lo + kBlock);
    if (dloss.stride == 0) {
      const T g0 = dloss.at(0);  // a reduced loss: one upstream value (same product as at(i))
      smooth_l1_backward_modes(
          mode_x, mode_t, lo, hi, x, t, w, beta, [g0](int64_t) { return g0; }, dx, dt);
    } else {
      smooth_l1_backward_modes(
          mode_x, mode_t, lo, hi, x, t, w, beta, [&dloss](int64_t i) { return dloss.at(i); }, dx, dt);
    }
  }
}

template <typename T>
int64_t bce_logits_forward(int64_t n, const T* x, const T* t, const T* w, T* loss) {
  int64_t first = kNoBad;
#pragma omp parallel for schedule(static) reduction(min : first) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    if (!loss_finite(x[i]) || !loss_finite(t[i])) first = std::min(first, i);
    loss[i] = loss_weighted(bce_logits_value(x[i], t[i]), w, i);
  }
  return bad_or_none(first);
}

template <typename T>
void bce_logits_backward(int64_t n, const T* x, const T* t, const T* w, LossGrad<T> dloss, T* dx, GradientMode mode_x,
                         T* dt, GradientMode mode_t) {
  if (mode_x == GradientMode::Ignore && mode_t == GradientMode::Ignore) return;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const T g = bce_weighted_upstream(dloss.at(i), w, i);
    if (mode_x != GradientMode::Ignore) write_grad(dx + i, g * bce_logits_grad(x[i], t[i]), mode_x);
    if (mode_t != GradientMode::Ignore) write_grad(dt + i, -g * x[i], mode_t);
  }
}

// ---- generalized IoU loss ---------------------------------------------------

template <typename T>
int64_t giou_loss_forward(int64_t N, const T* a, const T* b, T eps, T* loss) {
  int64_t first = kNoBad;
#pragma omp parallel for schedule(static) reduction(min : first) if (N > kParallelMin / 4)
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t k = 4 * i; k < 4 * i + 4; ++k)
      if (!loss_finite(a[k]) || !loss_finite(b[k])) {
        first = std::min(first, k);
        break;
      }
    loss[i] = giou_loss_value(a + 4 * i, b + 4 * i, eps);
  }
  return bad_or_none(first);
}

template <typename T>
void giou_loss_backward(int64_t N, const T* a, const T* b, T eps, LossGrad<T> dloss, T* da, GradientMode mode_a, T* db,
                        GradientMode mode_b) {
  if (mode_a == GradientMode::Ignore && mode_b == GradientMode::Ignore) return;
#pragma omp parallel for schedule(static) if (N > kParallelMin / 4)
  for (int64_t i = 0; i < N; ++i) {
    T ga[4], gb[4];
    giou_loss_grad(a + 4 * i, b + 4 * i, eps, dloss.at(i), ga, gb);
    for (int k = 0; k < 4; ++k) {
      if (mode_a != GradientMode::Ignore) write_grad(da + 4 * i + k, ga[k], mode_a);
      if (mode_b != GradientMode::Ignore) write_grad(db + 4 * i + k, gb[k], mode_b);
    }
  }
}

#define DETNAS_INST(T)                                                                                              \
  template double loss_sum<T>(int64_t, const T*);                                                                   \
  template int64_t softmax_xent_forward<T>(int64_t, int64_t, const T*, const int64_t*, T, T*, T*);                  \
  template void softmax_xent_backward<T>(int64_t, int64_t, const T*, const int64_t*, T, const T*, LossGrad<T>, T*,  \
                                         GradientMode);                                                             \
  template int64_t top1_correct<T>(int64_t, int64_t, const T*, const int64_t*);                                     \
  template int64_t sigmoid_focal_forward<T>(int64_t, int64_t, const T*, const T*, const T*, FocalParams, T*);       \
  template void sigmoid_focal_backward<T>(int64_t, int64_t, const T*, const T*, const T*, FocalParams, LossGrad<T>, \
                                          T*, GradientMode);                                                        \
  template int64_t smooth_l1_forward<T>(int64_t, const T*, const T*, const T*, T, T*);                              \
  template void smooth_l1_backward<T>(int64_t, const T*, const T*, const T*, T, LossGrad<T>, T*, GradientMode, T*,  \
                                      GradientMode);                                                                \
  template int64_t bce_logits_forward<T>(int64_t, const T*, const T*, const T*, T*);                                \
  template void bce_logits_backward<T>(int64_t, const T*, const T*, const T*, LossGrad<T>, T*, GradientMode, T*,    \
                                       GradientMode);                                                               \
  template int64_t giou_loss_forward<T>(int64_t, const T*, const T*, T, T*);                                        \
  template void giou_loss_backward<T>(int64_t, const T*, const T*, T, LossGrad<T>, T*, GradientMode, T*, GradientMode);
DETNAS_INST(float)
DETNAS_INST(double)
#undef DETNAS_INST

}  // namespace detnas::kernels::cpu
