// Loss kernels: softmax cross-entropy with label smoothing, sigmoid focal loss
// (RetinaNet), smooth L1, binary cross-entropy with logits, generalized IoU loss
// on element-wise box pairs. The per-element and per-row math (the softmax
// cross-entropy row: max, log-sum-exp, label-smoothed loss and gradient; stable
// sigmoid, focal loss and its gradient, smooth L1, BCE, GIoU and its gradient
// routing, the weighting of each by a per-row / per-element weight) is written
// once below as DETNAS_HD functions; the CPU loops (kernels/loss_cpu.cpp) and the
// CUDA kernels (kernels/loss_cuda.cu, declared in kernels/loss_cuda.h) call it.
// Not here: reductions into a Tensor and autograd (runtime/ops_loss.h). Forward
// kernels write per-element (or per-row) losses; the op sums them with
// loss_sum(), which is deterministic for any number of threads.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/common.h"

namespace detnas {

// How a loss is reduced: None keeps one value per element (per row for
// cross-entropy), Mean divides the sum by the element count (by the number of
// non-ignored rows for cross-entropy), Sum adds them up.
enum class Reduction { None, Mean, Sum };

// Sigmoid focal loss parameters (torchvision semantics; alpha < 0 disables the
// alpha weighting).
struct FocalParams {
  float alpha = 0.25f;
  float gamma = 2.0f;
};

namespace kernels {

// The label that marks a cross-entropy row as ignored (contributes nothing).
constexpr int64_t kIgnoreLabel = -1;

// Upstream gradient of per-element loss i: dy[i * stride] * scale. A reduced
// (scalar) loss uses stride 0 and scale 1 (Sum) or 1/count (Mean); an
// unreduced loss uses stride 1 and scale 1.
template <typename T>
struct LossGrad {
  const T* dy = nullptr;
  int64_t stride = 0;
  T scale = T(1);
  DETNAS_HD T at(int64_t i) const { return dy[i * stride] * scale; }
};

// Whether an input value is finite (the forwards report the first one that is not).
template <typename T>
DETNAS_HD bool loss_finite(T v) {
  return std::isfinite(v);
}

// ---- softmax cross-entropy, one row ------------------------------------------

// Whether label y marks the row as ignored (kIgnoreLabel, or any label outside [0,K)).
DETNAS_HD bool xent_ignored(int64_t y, int64_t K) { return y < 0 || y >= K; }

// Label smoothing: target_j = off + (j == y ? on : 0), on = 1 - eps, off = eps / K
// (computed in U: double in the forward, T in the backward).
template <typename U>
struct XentSmoothing {
  U on, off;
};
template <typename U>
DETNAS_HD XentSmoothing<U> xent_smoothing(U eps, int64_t K) {
  return XentSmoothing<U>{U(1) - eps, eps / U(K)};
}

// Forward of row xi[0..K) with label y: *lse = m + log(sum_j exp(x_j - m)) (m the
// row max; the exps in T, summed in double) and *loss = -sum_j target_j * (x_j - lse)
// = lse - on * x_y - off * sum_j x_j (0 for an ignored row). Returns the index in
// the row of its first non-finite entry, or -1; the max scan stops there (the
// row's values are then unspecified).
template <typename T>
DETNAS_HD int64_t softmax_xent_row(const T* xi, int64_t K, int64_t y, const XentSmoothing<double>& sm, T* loss,
                                   T* lse) {
  int64_t bad = -1;
  T m = xi[0];
  for (int64_t j = 0; j < K; ++j) {
    if (!loss_finite(xi[j])) {
      bad = j;
      break;
    }
    m = xi[j] > m ? xi[j] : m;
  }
  double se = 0, sx = 0;
  for (int64_t j = 0; j < K; ++j) {
    se += double(std::exp(xi[j] - m));
    sx += double(xi[j]);
  }
  const double l = double(m) + std::log(se);
  *lse = T(l);
  *loss = xent_ignored(y, K) ? T(0) : T(l - sm.on * double(xi[y]) - sm.off * sx);
  return bad;
}

// d loss / d x_j of a row with upstream gradient g: g * (softmax_j - target_j),
// softmax_j = exp(x_j - lse); 0 for an ignored row.
template <typename T>
DETNAS_HD T softmax_xent_grad(T x, T lse, T g, int64_t j, int64_t y, int64_t K, const XentSmoothing<T>& sm) {
  if (xent_ignored(y, K)) return T(0);
  const T target = sm.off + (j == y ? sm.on : T(0));
  return g * (std::exp(x - lse) - target);
}

// ---- per-element math ------------------------------------------------------

// sigmoid(x) without overflow: exp() only ever sees a non-positive argument.
template <typename T>
DETNAS_HD T stable_sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  T e = std::exp(x);
  return e / (T(1) + e);
}

// BCEWithLogits(x, t) = max(x,0) - x*t + log1p(exp(-|x|)). The first two terms
// are combined before adding the log term so that a confident correct logit
// keeps its tiny loss instead of rounding it away against |x|.
template <typename T>
DETNAS_HD T bce_logits_value(T x, T t) {
  T lin = (x > T(0) ? x : T(0)) - x * t;
  return lin + std::log1p(std::exp(-std::fabs(x)));
}
// d/dx BCEWithLogits = sigmoid(x) - t; d/dt = -x.
template <typename T>
DETNAS_HD T bce_logits_grad(T x, T t) {
  return stable_sigmoid(x) - t;
}

template <typename T>
DETNAS_HD T focal_alpha_t(T t, T alpha) {
  return alpha >= T(0) ? alpha * t + (T(1) - alpha) * (T(1) - t) : T(1);
}

// q^gamma with the conventions 0^0 = 1 and q^2 as a product (the common case).
template <typename T>
DETNAS_HD T focal_pow(T q, T gamma) {
  if (gamma == T(0)) return T(1);
  if (gamma == T(2)) return q * q;
  if (gamma == T(1)) return q;
  return q > T(0) ? std::pow(q, gamma) : T(0);
}

// Focal loss of one element: alpha_t * BCE(x,t) * (1 - p_t)^gamma, with
// 1 - p_t = sigmoid(-x)*t + sigmoid(x)*(1-t) formed without cancellation.
template <typename T>
DETNAS_HD T focal_value(T x, T t, T alpha, T gamma) {
  T p = stable_sigmoid(x), pn = stable_sigmoid(-x);
  T q = pn * t + p * (T(1) - t);
  return focal_alpha_t(t, alpha) * bce_logits_value(x, t) * focal_pow(q, gamma);
}

// d focal / dx = alpha_t * [ (p - t) q^g - g * BCE * q^(g-1) * p(1-p)(2t-1) ],
// q = 1 - p_t. p - t is written as p*(1-t) - (1-p)*t and p(1-p) as
// sigmoid(x)*sigmoid(-x), so logits of +-100 give exact zeros or subnormals
// rather than 0*inf or cancellation noise. q^(g-1) * q-sized factors vanish
// together when q underflows to 0 (the limit for g > 0).
template <typename T>
DETNAS_HD T focal_grad(T x, T t, T alpha, T gamma) {
  T p = stable_sigmoid(x), pn = stable_sigmoid(-x);
  T q = pn * t + p * (T(1) - t);
  T d_ce = p * (T(1) - t) - pn * t;
  T g = d_ce * focal_pow(q, gamma);
  if (gamma != T(0) && q > T(0)) {
    T qg1 = gamma == T(2) ? q : (gamma == T(1) ? T(1) : std::pow(q, gamma - T(1)));
    g -= gamma * bce_logits_value(x, t) * qg1 * (p * pn) * (T(2) * t - T(1));
  }
  return focal_alpha_t(t, alpha) * g;
}

// Smooth L1 of d = x - t: 0.5 d^2 / beta if |d| < beta, else |d| - 0.5 beta.
// beta == 0 is plain L1 (the quadratic branch is never taken).
template <typename T>
DETNAS_HD T smooth_l1_value(T d, T beta) {
  T n = std::fabs(d);
  return n < beta ? T(0.5) * n * n / beta : n - T(0.5) * beta;
}
// d/dx: d / beta in the quadratic branch, sign(d) outside (0 at d == 0).
template <typename T>
DETNAS_HD T smooth_l1_grad(T d, T beta) {
  T n = std::fabs(d);
  if (n < beta) return d / beta;
  return d > T(0) ? T(1) : (d < T(0) ? T(-1) : T(0));
}

// Per-element loss with an optional weight array w (null: weight 1).
template <typename T>
DETNAS_HD T loss_weighted(T l, const T* w, int64_t i) {
  return w ? w[i] * l : l;
}

// Focal loss of one element of a row with weight rw (a weight of 0 gives exactly 0,
// even for non-finite inputs) and its gradient times the upstream gradient g.
template <typename T>
DETNAS_HD T focal_weighted_value(T x, T t, T rw, T alpha, T gamma) {
  return rw == T(0) ? T(0) : rw * focal_value(x, t, alpha, gamma);
}
template <typename T>
DETNAS_HD T focal_weighted_grad(T x, T t, T rw, T g, T alpha, T gamma) {
  return rw == T(0) ? T(0) : rw * g * focal_grad(x, t, alpha, gamma);
}

// d loss / dx of smooth L1 of element i: g * smooth_l1_grad(x - t), times w[i]
// when weighted (d loss / dt is its negation).
template <typename T>
DETNAS_HD T smooth_l1_weighted_grad(T x, T t, T beta, T g, const T* w, int64_t i) {
  T v = g * smooth_l1_grad(x - t, beta);
  if (w) v *= w[i];
  return v;
}

// The upstream gradient of BCE element i with its weight folded in: g * w[i]
// (d loss / dx = that * bce_logits_grad, d loss / dt = -that * x).
template <typename T>
DETNAS_HD T bce_weighted_upstream(T g, const T* w, int64_t i) {
  if (w) g *= w[i];
  return g;
}

// Gradient routing of max(a,b) / min(a,b) as torch.maximum/minimum: all to the
// selected operand, split in halves on a tie.
template <typename T>
DETNAS_HD void route_max(T a, T b, T g, T& da, T& db) {
  if (a > b) {
    da += g;
  } else if (b > a) {
    db += g;
  } else {
    da += T(0.5) * g;
    db += T(0.5) * g;
  }
}
template <typename T>
DETNAS_HD void route_min(T a, T b, T g, T& da, T& db) {
  if (a < b) {
    da += g;
  } else if (b < a) {
    db += g;
  } else {
    da += T(0.5) * g;
    db += T(0.5) * g;
  }
}

// GIoU loss of boxes a, b (x1,y1,x2,y2): 1 - (I/(U+eps) - (C-U)/(C+eps)), with
// I = 0 unless both overlap extents are > 0 (torchvision's definition).
template <typename T>
DETNAS_HD T giou_loss_value(const T* a, const T* b, T eps) {
  T iw = (a[2] < b[2] ? a[2] : b[2]) - (a[0] > b[0] ? a[0] : b[0]);
  T ih = (a[3] < b[3] ? a[3] : b[3]) - (a[1] > b[1] ? a[1] : b[1]);
  T inter = (iw > T(0) && ih > T(0)) ? iw * ih : T(0);
  T uni = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  T cw = (a[2] > b[2] ? a[2] : b[2]) - (a[0] < b[0] ? a[0] : b[0]);
  T ch = (a[3] > b[3] ? a[3] : b[3]) - (a[1] < b[1] ? a[1] : b[1]);
  T area_c = cw * ch;
  return T(1) - (inter / (uni + eps) - (area_c - uni) / (area_c + eps));
}

// d loss / d a and d loss / d b times g, written to da[0..4) / db[0..4)
// (overwritten). Chain: loss = 1 - I/(U+eps) + (C-U)/(C+eps), U = A1 + A2 - I.
template <typename T>
DETNAS_HD void giou_loss_grad(const T* a, const T* b, T eps, T g, T* da, T* db) {
  for (int k = 0; k < 4; ++k) da[k] = db[k] = T(0);
  T ix1 = a[0] > b[0] ? a[0] : b[0], iy1 = a[1] > b[1] ? a[1] : b[1];
  T ix2 = a[2] < b[2] ? a[2] : b[2], iy2 = a[3] < b[3] ? a[3] : b[3];
  T iw = ix2 - ix1, ih = iy2 - iy1;
  bool overlap = iw > T(0) && ih > T(0);
  T inter = overlap ? iw * ih : T(0);
  T aw = a[2] - a[0], ah = a[3] - a[1], bw = b[2] - b[0], bh = b[3] - b[1];
  T uni = aw * ah + bw * bh - inter;
  T cx1 = a[0] < b[0] ? a[0] : b[0], cy1 = a[1] < b[1] ? a[1] : b[1];
  T cx2 = a[2] > b[2] ? a[2] : b[2], cy2 = a[3] > b[3] ? a[3] : b[3];
  T cw = cx2 - cx1, ch = cy2 - cy1;
  T area_c = cw * ch;
  T ue = uni + eps, ce = area_c + eps;
  // Partials of the loss (sign included) w.r.t. U, I (direct, U held fixed), C.
  T l_u = g * (inter / (ue * ue) - T(1) / ce);
  T l_i = g * (-T(1) / ue) - l_u;  // I also enters U with dU/dI = -1
  T l_c = g * (ue / (ce * ce));
  // Box areas (each enters U with +1).
  da[0] -= l_u * ah, da[2] += l_u * ah, da[1] -= l_u * aw, da[3] += l_u * aw;
  db[0] -= l_u * bh, db[2] += l_u * bh, db[1] -= l_u * bw, db[3] += l_u * bw;
  if (overlap) {  // I = iw * ih; no gradient through a zero intersection
    T g_iw = l_i * ih, g_ih = l_i * iw;
    route_min(a[2], b[2], g_iw, da[2], db[2]);
    route_max(a[0], b[0], -g_iw, da[0], db[0]);
    route_min(a[3], b[3], g_ih, da[3], db[3]);
    route_max(a[1], b[1], -g_ih, da[1], db[1]);
  }
  T g_cw = l_c * ch, g_ch = l_c * cw;
  route_max(a[2], b[2], g_cw, da[2], db[2]);
  route_min(a[0], b[0], -g_cw, da[0], db[0]);
  route_max(a[3], b[3], g_ch, da[3], db[3]);
  route_min(a[1], b[1], -g_ch, da[1], db[1]);
}

// ---- CPU kernels -----------------------------------------------------------
// Forward kernels return the first flat index (of the listed inputs' common
// index space) holding a NaN or Inf, or -1 when all are finite; the loss values
// of such elements are unspecified. Weight pointers may be null (weight 1).
namespace cpu {

// v (n) -> sum in double, fixed block order (same result for any thread count)
template <typename T>
double loss_sum(int64_t n, const T* v);

// x (N,K)  labels (N) in [0,K) or kIgnoreLabel  loss (N) =  lse (N) = (log-sum-exp
// per row, kept for backward). Target = (1-eps)*onehot + eps/K. Ignored rows get
// loss 0. Labels outside [0,K) are treated as ignored (callers validate first).
// Returns the first non-finite flat index of x.
template <typename T>
int64_t softmax_xent_forward(int64_t N, int64_t K, const T* x, const int64_t* labels, T eps, T* loss, T* lse);
// x (N,K)  labels (N)  lse (N)  dloss (per row)  dx (N,K) = or += (mode)
template <typename T>
void softmax_xent_backward(int64_t N, int64_t K, const T* x, const int64_t* labels, T eps, const T* lse,
                           LossGrad<T> dloss, T* dx, GradientMode mode);
// x (N,K)  labels (N) -> number of non-ignored rows whose first arg-max equals the label
template <typename T>
int64_t top1_correct(int64_t N, int64_t K, const T* x, const int64_t* labels);

// x (N,K)  t (N,K)  row_w (N) or null  loss (N,K) =   (rows with weight 0 give 0)
// Returns the first non-finite flat index of x or t.
template <typename T>
int64_t sigmoid_focal_forward(int64_t N, int64_t K, const T* x, const T* t, const T* row_w, FocalParams p, T* loss);
// ... dloss (per element)  dx (N,K) = or += (mode)
template <typename T>
void sigmoid_focal_backward(int64_t N, int64_t K, const T* x, const T* t, const T* row_w, FocalParams p,
                            LossGrad<T> dloss, T* dx, GradientMode mode);

// x (n)  t (n)  w (n) or null  loss (n) =   beta >= 0 (0: L1)
// Returns the first non-finite index of x or t.
template <typename T>
int64_t smooth_l1_forward(int64_t n, const T* x, const T* t, const T* w, T beta, T* loss);
// ... dloss  dx (n) = or += (mode_x)   dt (n) = or += -dx (mode_t)
template <typename T>
void smooth_l1_backward(int64_t n, const T* x, const T* t, const T* w, T beta, LossGrad<T> dloss, T* dx,
                        GradientMode mode_x, T* dt, GradientMode mode_t);

// x (n) logits  t (n) targets  w (n) or null  loss (n) =
template <typename T>
int64_t bce_logits_forward(int64_t n, const T* x, const T* t, const T* w, T* loss);
// ... dloss  dx (n) = or += w*(sigmoid(x)-t)   dt (n) = or += -w*x
template <typename T>
void bce_logits_backward(int64_t n, const T* x, const T* t, const T* w, LossGrad<T> dloss, T* dx, GradientMode mode_x,
                         T* dt, GradientMode mode_t);

// a (N,4)  b (N,4)  loss (N) =   Returns the first non-finite flat index of a or b.
template <typename T>
int64_t giou_loss_forward(int64_t N, const T* a, const T* b, T eps, T* loss);
// ... dloss  da (N,4) = or += (mode_a)   db (N,4) = or += (mode_b)
template <typename T>
void giou_loss_backward(int64_t N, const T* a, const T* b, T eps, LossGrad<T> dloss, T* da, GradientMode mode_a, T* db,
                        GradientMode mode_b);

}  // namespace cpu
}  // namespace kernels
}  // namespace detnas
