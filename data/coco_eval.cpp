// COCO bbox evaluator (data/coco_eval.h): pycocotools COCOeval.evaluate(),
// accumulate() and summarize() re-done on flat arrays. Not a port of its data
// structures: the (category, image) groups are formed once by sorting, each group
// is matched independently (parallel over groups), and the curves are built per
// category (parallel over categories). Every place where the reference's exact
// arithmetic or ordering changes a number is marked "pycocotools:".
//
// No FMA contraction in this file: IoUs and thresholds must round exactly as the
// reference's C/numpy code does, or IoUs that sit on a threshold flip.
#pragma GCC optimize("fp-contract=off")

#include "data/coco_eval.h"

#include <algorithm>
#include <cfloat>
#include <cstdio>

#include "core/error.h"

namespace detnas::data {

const std::array<double, kCocoIouThrs>& coco_iou_thresholds() {
  // pycocotools: np.linspace(.5, 0.95, 10) = 0.5 + i * (0.45 / 9), last = 0.95.
  static const std::array<double, kCocoIouThrs> t = {0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.8999999999999999,
                                                     0.95};
  return t;
}

const std::array<double, kCocoRecThrs>& coco_recall_thresholds() {
  // pycocotools: np.linspace(.0, 1.00, 101) = i * 0.01 (a double product: not i / 100.0).
  static const std::array<double, kCocoRecThrs> r = [] {
    std::array<double, kCocoRecThrs> v{};
    for (int i = 0; i < kCocoRecThrs; ++i) v[size_t(i)] = double(i) * 0.01;
    v[kCocoRecThrs - 1] = 1.0;
    return v;
  }();
  return r;
}

const std::array<std::array<double, 2>, kCocoAreas>& coco_area_ranges() {
  static const std::array<std::array<double, 2>, kCocoAreas> a = {
      {{0.0, 1e10}, {0.0, 32.0 * 32.0}, {32.0 * 32.0, 96.0 * 96.0}, {96.0 * 96.0, 1e10}}};
  return a;
}

const std::array<int, kCocoMaxDets>& coco_max_dets() {
  static const std::array<int, kCocoMaxDets> m = {1, 10, 100};
  return m;
}

namespace {

constexpr int T = kCocoIouThrs, R = kCocoRecThrs, A = kCocoAreas, M = kCocoMaxDets;
constexpr int kMaxDet = 100;  // maxDets[-1]: detections kept per (image, category)
enum DetState : uint8_t { kFalsePositive = 0, kTruePositive = 1, kIgnored = 2 };

// One (category, image) pair with ground truth and/or detections.
struct Group {
  int32_t label = 0;
  int64_t gt_begin = 0, gt_end = 0;  // its ground truth (file order) in the flat GT arrays
  int64_t dt_begin = 0, dt_end = 0;  // its kept detections, score desc (stable), in the flat per-detection arrays
};

// pycocotools maskApi.c bbIou, same operation order. Boxes are [x, y, w, h].
inline double box_iou(const CocoBox& d, const CocoBox& g, bool crowd) {
  double w = std::min(d.w + d.x, g.w + g.x) - std::max(d.x, g.x);
  if (w <= 0) return 0.0;
  double h = std::min(d.h + d.y, g.h + g.y) - std::max(d.y, g.y);
  if (h <= 0) return 0.0;
  double inter = w * h;
  double da = d.w * d.h;
  double u = crowd ? da : da + g.w * g.h - inter;
  return inter / u;
}

// numpy's pairwise summation (add.reduce over a contiguous float64 array), so
// the means below round like np.mean.
double pairwise_sum(const double* a, int64_t n) {
  if (n < 8) {
    double s = 0.0;  // pycocotools/numpy: the reduction starts from the identity 0
    for (int64_t i = 0; i < n; ++i) s += a[i];
    return s;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    int64_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    double s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) s += a[i];
    return s;
  }
  int64_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

// np.mean(v[v > -1]), or -1 when nothing is defined.
double mean_defined(const std::vector<double>& v) {
  std::vector<double> d;
  d.reserve(v.size());
  for (double x : v)
    if (x > -1) d.push_back(x);
  if (d.empty()) return -1.0;
  return pairwise_sum(d.data(), int64_t(d.size())) / double(d.size());
}

// The ground truth of one group, gathered contiguously.
struct GtBox {
  CocoBox box;
  double area;  // the file's area field
  int64_t id;
  bool crowd;
};

// Matching of one group for every area range and IoU threshold (COCOeval.evaluateImg).
// Writes states[d*A*T + a*T + t] for its D kept detections and npig[a].
struct GroupMatcher {
  std::vector<double> ious;  // (D, G)
  std::vector<int32_t> order;
  std::vector<uint8_t> ignored, matched;

  void run(const GtBox* gt, int64_t G, const CocoBox* dt, int64_t D, uint8_t* states, int32_t* npig) {
    const auto& thr = coco_iou_thresholds();
    ious.resize(size_t(D * G));
    for (int64_t d = 0; d < D; ++d)
      for (int64_t j = 0; j < G; ++j) ious[size_t(d * G + j)] = box_iou(dt[d], gt[j].box, gt[j].crowd);
    ignored.resize(size_t(G));
    matched.resize(size_t(G));
    for (int a = 0; a < A; ++a) {
      const double lo = coco_area_ranges()[size_t(a)][0], hi = coco_area_ranges()[size_t(a)][1];
      // pycocotools: ignore = iscrowd, or the GT area field outside [lo, hi]; the
      // GT are stable-sorted so that the ignored ones come last.
      order.clear();
      int32_t n_valid = 0;
      for (int64_t j = 0; j < G; ++j) {
        ignored[size_t(j)] = gt[j].crowd || gt[j].area < lo || gt[j].area > hi;
        if (!ignored[size_t(j)]) order.push_back(int32_t(j)), n_valid++;
      }
      for (int64_t j = 0; j < G; ++j)
        if (ignored[size_t(j)]) order.push_back(int32_t(j));
      npig[a] = n_valid;
      for (int t = 0; t < T; ++t) {
        std::fill(matched.begin(), matched.end(), uint8_t(0));
        for (int64_t d = 0; d < D; ++d) {
          double best = std::min(thr[size_t(t)], 1 - 1e-10);
          int64_t m = -1;
          for (int32_t j : order) {
            if (matched[size_t(j)] && !gt[j].crowd) continue;
            // pycocotools: once a non-ignored GT is matched, stop at the first ignored one.
            if (m > -1 && !ignored[size_t(m)] && ignored[size_t(j)]) break;
            double iou = ious[size_t(d * G + j)];
            if (iou < best) continue;
            best = iou;  // ">=": on equal IoU the later GT wins
            m = j;
          }
          bool dt_ignored = false;
          int64_t matched_id = 0;  // pycocotools: dtMatches holds the GT's annotation id, 0 = none
          if (m > -1) {
            dt_ignored = ignored[size_t(m)];
            matched_id = gt[m].id;
            matched[size_t(m)] = 1;
          }
          double det_area = dt[d].w * dt[d].h;  // pycocotools loadRes: area = w*h for bbox results
          if (matched_id == 0 && (det_area < lo || det_area > hi)) dt_ignored = true;
          // pycocotools: "matched" means a nonzero GT id (a GT with id 0 counts as unmatched).
          states[d * A * T + a * T + t] = dt_ignored ? kIgnored : matched_id != 0 ? kTruePositive : kFalsePositive;
        }
      }
    }
  }
};

// COCOeval.accumulate() for one category, into q[((t*R + r)*A + a)*M + m]
// (precision) and rc_out[(t*A + a)*M + m] (recall), both preset to -1.
//
// pycocotools builds rc = tp/npig and pr = tp/(tp+fp+eps) at every pooled
// detection, takes the suffix maximum of pr and samples it at the first point
// with rc >= each recall threshold. The same numbers with far fewer divisions:
// rc depends only on the TP count c, so "first point with rc >= thr" is "the
// point where the TP count first reaches c_min(thr)"; and pr only rises at TPs
// (an FP lowers it, an ignored detection repeats it), so the suffix maximum from
// that point is the maximum of pr over the TP points with count >= c_min (at
// count 0, before any TP, pr is 0). Same formulas, same doubles, same result.
struct CategoryAccumulator {
  struct Entry {
    int64_t pos;  // flat index of the detection in scores / states
    int32_t d;    // its rank inside its (image, category)
  };
  std::vector<Entry> pooled;
  std::vector<double> rc_of, env;  // rc for each TP count; pr at the c-th TP, then its suffix max (T, npig+1)
  std::vector<int64_t> c_min;      // per recall threshold

  void run(const std::vector<Group>& groups, int64_t g0, int64_t g1, const std::vector<double>& scores,
           const std::vector<uint8_t>& states, const std::vector<int32_t>& npig_all, double* q, double* rc_out) {
    // Pooled detections: images in ascending id order (the groups are), each
    // image's kept detections in their score order, then a stable sort by score.
    pooled.clear();
    int64_t npig[A] = {0, 0, 0, 0};
    for (int64_t g = g0; g < g1; ++g) {
      const Group& gr = groups[size_t(g)];
      for (int a = 0; a < A; ++a) npig[a] += npig_all[size_t(g * A + a)];
      for (int64_t d = 0; d < gr.dt_end - gr.dt_begin; ++d) pooled.push_back({gr.dt_begin + d, int32_t(d)});
    }
    std::stable_sort(pooled.begin(), pooled.end(),
                     [&](const Entry& x, const Entry& y) { return scores[size_t(x.pos)] > scores[size_t(y.pos)]; });

    const auto& rec_thr = coco_recall_thresholds();
    for (int a = 0; a < A; ++a) {
      const int64_t n = npig[a];
      if (n == 0) continue;  // undefined: stays -1
      rc_of.resize(size_t(n + 1));
      for (int64_t c = 0; c <= n; ++c) rc_of[size_t(c)] = double(c) / double(n);  // pycocotools: rc = tp / npig
      c_min.resize(R);
      for (int r = 0, c = 0; r < R; ++r) {  // np.searchsorted(rc, thr, side="left") on the TP counts
        while (c <= n && rc_of[size_t(c)] < rec_thr[size_t(r)]) ++c;
        c_min[size_t(r)] = c;
      }
      env.resize(size_t(T * (n + 1)));
      for (int m = 0; m < M; ++m) {
        const int max_det = coco_max_dets()[size_t(m)];
        int64_t tp[T] = {}, fp[T] = {};
        for (const Entry& e : pooled) {
          if (e.d >= max_det) continue;  // pycocotools: each image keeps its top max_det
          const uint8_t* st = states.data() + e.pos * A * T + a * T;
          for (int t = 0; t < T; ++t) {
            if (st[t] == kFalsePositive) {
              fp[t]++;
            } else if (st[t] == kTruePositive) {
              int64_t c = ++tp[t];
              DETNAS_CHECK(c <= n, "coco_evaluate: more true positives than ground truth (internal error)");
              env[size_t(t * (n + 1) + c)] = double(c) / (double(fp[t]) + double(c) + DBL_EPSILON);  // np.spacing(1)
            }
          }
        }
        for (int t = 0; t < T; ++t) {
          double* et = env.data() + t * (n + 1);
          rc_out[(t * A + a) * M + m] = rc_of[size_t(tp[t])];  // 0 when there are no detections
          for (int64_t c = tp[t] - 1; c >= 1; --c) et[c] = std::max(et[c], et[c + 1]);
          for (int r = 0; r < R; ++r) {
            int64_t c = c_min[size_t(r)];
            q[((t * R + r) * A + a) * M + m] = tp[t] == 0 || c > tp[t] ? 0.0 : et[std::max<int64_t>(c, 1)];
          }
        }
      }
    }
  }
};

}  // namespace

CocoEvalResult coco_evaluate(const CocoDataset& gt, const std::vector<CocoDetection>& dets) {
  validate_coco_detections(dets, gt, "detections");
  const int64_t K = gt.num_classes();
  const int64_t I = int64_t(gt.images.size());
  DETNAS_CHECK(dets.size() < size_t(INT32_MAX), "coco_evaluate: too many detections (", dets.size(), ")");

  // Images in ascending id order (pycocotools: p.imgIds = sorted(getImgIds())).
  std::vector<int32_t> by_id(static_cast<size_t>(I));
  for (int64_t i = 0; i < I; ++i) by_id[size_t(i)] = int32_t(i);
  std::sort(by_id.begin(), by_id.end(),
            [&](int32_t x, int32_t y) { return gt.images[size_t(x)].id < gt.images[size_t(y)].id; });
  std::vector<int64_t> rank(static_cast<size_t>(I));
  for (int64_t r = 0; r < I; ++r) rank[size_t(by_id[size_t(r)])] = r;

  // Ground truth sorted by (label, image rank), file order inside a group.
  std::vector<std::pair<int64_t, int32_t>> gkey(gt.annotations.size());
  for (size_t i = 0; i < gt.annotations.size(); ++i) {
    const CocoAnnotation& a = gt.annotations[i];
    gkey[i] = {int64_t(a.label) * I + rank[size_t(a.image_index)], int32_t(i)};
  }
  std::sort(gkey.begin(), gkey.end());
  // Detections sorted by (label, image rank, score descending, file order): the
  // file-order tie break is pycocotools' stable mergesort on -score.
  struct DKey {
    int64_t key;
    double score;
    int32_t idx;
  };
  std::vector<DKey> dkey(dets.size());
  for (size_t i = 0; i < dets.size(); ++i) {
    int64_t img = gt.image_index.at(dets[i].image_id);
    int64_t label = gt.category_label.at(dets[i].category_id);
    dkey[i] = {label * I + rank[size_t(img)], dets[i].score, int32_t(i)};
  }
  std::sort(dkey.begin(), dkey.end(), [](const DKey& x, const DKey& y) {
    if (x.key != y.key) return x.key < y.key;
    if (x.score != y.score) return x.score > y.score;
    return x.idx < y.idx;
  });

  // Groups, category by category, images in rank order; keep the top kMaxDet
  // detections of each (pycocotools: computeIoU and evaluateImg cut at maxDets[-1]).
  std::vector<Group> groups;
  std::vector<int32_t> kept;  // detection indices, group by group
  std::vector<double> scores;
  std::vector<int64_t> cat_begin(size_t(K + 1), 0);
  kept.reserve(dkey.size());
  scores.reserve(dkey.size());
  size_t gi = 0, di = 0;
  while (gi < gkey.size() || di < dkey.size()) {
    int64_t key = std::min(gi < gkey.size() ? gkey[gi].first : INT64_MAX, di < dkey.size() ? dkey[di].key : INT64_MAX);
    Group g;
    g.label = int32_t(key / I);
    g.gt_begin = int64_t(gi);
    while (gi < gkey.size() && gkey[gi].first == key) ++gi;
    g.gt_end = int64_t(gi);
    g.dt_begin = int64_t(kept.size());
    for (int64_t n = 0; di < dkey.size() && dkey[di].key == key; ++di, ++n)
      if (n < kMaxDet) kept.push_back(dkey[di].idx), scores.push_back(dkey[di].score);
    g.dt_end = int64_t(kept.size());
    cat_begin[size_t(g.label) + 1] = int64_t(groups.size()) + 1;
    groups.push_back(g);
  }
  for (int64_t k = 1; k <= K; ++k) cat_begin[size_t(k)] = std::max(cat_begin[size_t(k)], cat_begin[size_t(k - 1)]);
  const int64_t NG = int64_t(groups.size()), ND = int64_t(kept.size()), NGT = int64_t(gkey.size());

  // Boxes gathered in group order, so the matcher reads them contiguously.
  std::vector<GtBox> gt_boxes(static_cast<size_t>(NGT));
  std::vector<CocoBox> dt_boxes(static_cast<size_t>(ND));
#pragma omp parallel for schedule(static) if (ND + NGT > 20000)
  for (int64_t i = 0; i < NGT; ++i) {
    const CocoAnnotation& a = gt.annotations[size_t(gkey[size_t(i)].second)];
    gt_boxes[size_t(i)] = {a.bbox, a.area, a.id, a.iscrowd != 0};
  }
#pragma omp parallel for schedule(static) if (ND + NGT > 20000)
  for (int64_t i = 0; i < ND; ++i) dt_boxes[size_t(i)] = dets[size_t(kept[size_t(i)])].bbox;

  // evaluateImg for every group.
  std::vector<uint8_t> states(static_cast<size_t>(ND * A * T));
  std::vector<int32_t> npig(static_cast<size_t>(NG * A));
#pragma omp parallel if (ND + NGT > 20000)
  {
    GroupMatcher matcher;
#pragma omp for schedule(dynamic, 64)
    for (int64_t g = 0; g < NG; ++g) {
      const Group& gr = groups[size_t(g)];
      matcher.run(gt_boxes.data() + gr.gt_begin, gr.gt_end - gr.gt_begin, dt_boxes.data() + gr.dt_begin,
                  gr.dt_end - gr.dt_begin, states.data() + gr.dt_begin * A * T, npig.data() + g * A);
    }
  }

  // accumulate: per-category blocks (contiguous, so threads never share cache
  // lines), then scattered into pycocotools' (T,R,K,A,M) / (T,K,A,M) layout.
  CocoEvalResult res;
  res.num_images = I;
  res.num_detections = int64_t(dets.size());
  res.category_ids = gt.label_to_category;
  res.precision.assign(size_t(T * R * K * A * M), -1.0);
  res.recall.assign(size_t(T * K * A * M), -1.0);
  const int64_t QK = int64_t(T) * R * A * M, RK = int64_t(T) * A * M;
  std::vector<double> q(size_t(K * QK), -1.0), rcl(size_t(K * RK), -1.0);
#pragma omp parallel if (ND + NGT > 20000)
  {
    CategoryAccumulator acc;
#pragma omp for schedule(dynamic, 1)
    for (int64_t k = 0; k < K; ++k)
      acc.run(groups, cat_begin[size_t(k)], cat_begin[size_t(k + 1)], scores, states, npig, q.data() + k * QK,
              rcl.data() + k * RK);
  }
  for (int64_t k = 0; k < K; ++k)
    for (int t = 0; t < T; ++t) {
      for (int r = 0; r < R; ++r)
        for (int am = 0; am < A * M; ++am)
          res.precision[size_t(((t * R + r) * K + k) * A * M + am)] = q[size_t(k * QK + (t * R + r) * A * M + am)];
      for (int am = 0; am < A * M; ++am)
        res.recall[size_t((t * K + k) * A * M + am)] = rcl[size_t(k * RK + t * A * M + am)];
    }

  // summarize: means over the defined entries in the reference's (t, r, k) order.
  auto ap = [&](int t_only, int a, int m) {
    std::vector<double> v;
    for (int t = 0; t < T; ++t)
      if (t_only < 0 || t == t_only)
        for (int r = 0; r < R; ++r)
          for (int64_t k = 0; k < K; ++k) v.push_back(res.precision_at(t, r, k, a, m));
    return mean_defined(v);
  };
  auto ar = [&](int a, int m) {
    std::vector<double> v;
    for (int t = 0; t < T; ++t)
      for (int64_t k = 0; k < K; ++k) v.push_back(res.recall_at(t, k, a, m));
    return mean_defined(v);
  };
  const int t50 = 0, t75 = 5;  // indices of 0.5 and 0.75 in coco_iou_thresholds()
  res.stats = {ap(-1, 0, 2), ap(t50, 0, 2), ap(t75, 0, 2), ap(-1, 1, 2), ap(-1, 2, 2), ap(-1, 3, 2),
               ar(0, 0),     ar(0, 1),      ar(0, 2),      ar(1, 2),     ar(2, 2),     ar(3, 2)};
  // Per category (area all, maxDets 100), from the contiguous per-category blocks.
  std::vector<double> v;
  for (int64_t k = 0; k < K; ++k) {
    const double* qk = q.data() + k * QK;
    v.clear();
    for (int t = 0; t < T; ++t)
      for (int r = 0; r < R; ++r) v.push_back(qk[(t * R + r) * A * M + 2]);
    res.ap.push_back(mean_defined(v));
    v.resize(size_t(R));  // t = 0 only: IoU 0.5
    res.ap50.push_back(mean_defined(v));
    v.clear();
    for (int t = 0; t < T; ++t) v.push_back(rcl[size_t(k * RK + t * A * M + 2)]);
    res.ar100.push_back(mean_defined(v));
  }
  return res;
}

std::vector<std::string> coco_summary_lines(const CocoEvalResult& r) {
  struct Line {
    bool ap;
    const char* iou;
    const char* area;
    int max_det;
  };
  static const Line lines[12] = {
      {true, "0.50:0.95", "all", 100},    {true, "0.50", "all", 100},          {true, "0.75", "all", 100},
      {true, "0.50:0.95", "small", 100},  {true, "0.50:0.95", "medium", 100},  {true, "0.50:0.95", "large", 100},
      {false, "0.50:0.95", "all", 1},     {false, "0.50:0.95", "all", 10},     {false, "0.50:0.95", "all", 100},
      {false, "0.50:0.95", "small", 100}, {false, "0.50:0.95", "medium", 100}, {false, "0.50:0.95", "large", 100}};
  std::vector<std::string> out;
  char buf[160];
  for (int i = 0; i < 12; ++i) {
    const Line& l = lines[i];
    // pycocotools: ' {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}'
    std::snprintf(buf, sizeof buf, " %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3d ] = %0.3f",
                  l.ap ? "Average Precision" : "Average Recall", l.ap ? "(AP)" : "(AR)", l.iou, l.area, l.max_det,
                  r.stats[size_t(i)]);
    out.emplace_back(buf);
  }
  return out;
}

std::string coco_eval_json(const CocoEvalResult& r) {
  char buf[64];
  auto num = [&](double x) {
    std::snprintf(buf, sizeof buf, "%.17g", x);
    return std::string(buf);
  };
  std::string s = "{\"stats\":[";
  for (int i = 0; i < 12; ++i) s += (i ? "," : "") + num(r.stats[size_t(i)]);
  s += "]";
  auto per_cat = [&](const char* name, const std::vector<double>& v) {
    s += ",\"";
    s += name;
    s += "\":{";
    for (size_t k = 0; k < v.size(); ++k)
      s += (k ? ",\"" : "\"") + std::to_string(r.category_ids[k]) + "\":" + num(v[k]);
    s += "}";
  };
  per_cat("per_category_ap", r.ap);
  per_cat("per_category_ap50", r.ap50);
  per_cat("per_category_ar100", r.ar100);
  s += "}";
  return s;
}

}  // namespace detnas::data
