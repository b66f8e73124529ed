// COCO bbox evaluator: every golden case (pycocotools 2.0 reference values) in
// every golden root, hand-built cases for the rules the numbers depend on
// (crowd regions, closed area ranges, maxDets per image and category, tie order),
// thread-count independence, and the detnas coco-eval command end to end.
#include <dirent.h>
#include <doctest/doctest.h>
#include <omp.h>
#include <simdjson.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <string>

#include "core/error.h"
#include "data/coco.h"
#include "data/coco_eval.h"
#include "runtime/rng.h"
#include "tests/golden.h"
#include "tests/test_util.h"

using namespace detnas;
using namespace detnas::data;

namespace {

// The README's tolerance for every golden number (the algorithm reproduces them to ~1e-12).
constexpr double kGoldenTol = 1e-6;

bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<std::string> sub_dirs(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != ".." && is_dir(dir + "/" + n)) out.push_back(dir + "/" + n);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

double as_double(simdjson::dom::element e) {
  if (e.is_int64()) return double(int64_t(e.get_int64()));
  return double(e.get_double());
}

// Compares one per-category map of expected.json with the evaluator's vector.
void check_per_category(const std::string& cs, simdjson::dom::object expected, const char* key, const CocoEvalResult& r,
                        const std::vector<double>& got, bool required) {
  simdjson::dom::object m;
  if (expected[key].get(m)) {
    CHECK_MESSAGE(!required, cs << ": expected.json has no " << key);
    return;
  }
  size_t n = 0;
  for (auto kv : m) {
    int64_t id = std::stoll(std::string(kv.key));
    auto it = std::find(r.category_ids.begin(), r.category_ids.end(), id);
    REQUIRE_MESSAGE(it != r.category_ids.end(), cs << ": " << key << " names category " << id << " not in gt.json");
    double want = as_double(kv.value), have = got[size_t(it - r.category_ids.begin())];
    CHECK_MESSAGE(std::abs(have - want) <= kGoldenTol,
                  cs << ": " << key << "[" << id << "] = " << have << ", expected " << want);
    n++;
  }
  CHECK_MESSAGE(n == r.category_ids.size(),
                cs << ": " << key << " has " << n << " categories, gt.json has " << r.category_ids.size());
}

CocoDataset make_gt(const std::vector<int64_t>& image_ids, const std::vector<int64_t>& cat_ids,
                    const std::vector<CocoAnnotation>& anns) {
  CocoDataset ds;
  ds.source = "hand-built gt";
  for (int64_t id : image_ids) ds.images.push_back({id, 640, 480, std::to_string(id) + ".jpg"});
  for (int64_t id : cat_ids) ds.categories.push_back({id, "c" + std::to_string(id), ""});
  ds.annotations = anns;
  for (size_t i = 0; i < ds.annotations.size(); ++i) ds.annotations[i].id = int64_t(i) + 1;
  finalize_coco_dataset(ds);
  return ds;
}

// An annotation with area = w*h unless given.
CocoAnnotation ann(int64_t image, int64_t cat, CocoBox b, int crowd = 0, double area = -1) {
  CocoAnnotation a;
  a.image_id = image;
  a.category_id = cat;
  a.bbox = b;
  a.area = area >= 0 ? area : b.w * b.h;
  a.iscrowd = crowd;
  return a;
}

CocoDetection det(int64_t image, int64_t cat, CocoBox b, double score) { return CocoDetection{image, cat, b, score}; }

}  // namespace

TEST_CASE("coco_eval: every golden case matches pycocotools to 1e-6") {
  int checked = 0;
  for (const std::string& root : test::golden_roots()) {
    const std::string dir = root + "/coco_eval";
    REQUIRE_MESSAGE(is_dir(dir),
                    "golden folder not found: " << dir
                                                << " (run from the repository root with ../shared beside it,"
                                                   " or set DETNAS_GOLDEN_DIR)");
    auto cases = sub_dirs(dir);
    CHECK_MESSAGE(!cases.empty(), "no golden cases in " << dir);
    for (const std::string& cs : cases) {
      CAPTURE(cs);
      try {
        CocoDataset gt = load_coco_instances(cs + "/gt.json");
        std::vector<CocoDetection> dt = load_coco_results(cs + "/dt.json", gt);
        CocoEvalResult r = coco_evaluate(gt, dt);
        simdjson::dom::parser parser;
        simdjson::dom::object expected = parser.load(cs + "/expected.json").get_object();
        simdjson::dom::array stats = expected["stats"].get_array();
        REQUIRE(stats.size() == 12);
        size_t i = 0;
        for (auto v : stats) {
          CHECK_MESSAGE(std::abs(r.stats[i] - as_double(v)) <= kGoldenTol,
                        cs << ": stats[" << i << "] = " << r.stats[i] << ", expected " << as_double(v));
          i++;
        }
        check_per_category(cs, expected, "per_category_ap", r, r.ap, true);
        check_per_category(cs, expected, "per_category_ap50", r, r.ap50, false);
        check_per_category(cs, expected, "per_category_ar100", r, r.ar100, false);
        checked++;
      } catch (const std::exception& e) {
        FAIL_CHECK(cs << ": " << e.what());
      }
    }
  }
  std::printf("golden coco_eval: %d cases checked\n", checked);
  CHECK(checked > 0);
}

// ---------------------------------------------------------------- a literal oracle
// pycocotools' COCOeval.evaluateImg + accumulate transcribed line by line (lists,
// argsorts, cumsums, the envelope loop, searchsorted), without the evaluator's
// grouping, flat layouts or its TP-count shortcut.
namespace {

double naive_iou(const CocoBox& d, const CocoBox& g, bool crowd) {  // maskApi.c bbIou
  double w = std::min(d.w + d.x, g.w + g.x) - std::max(d.x, g.x);
  if (w <= 0) return 0;
  double h = std::min(d.h + d.y, g.h + g.y) - std::max(d.y, g.y);
  if (h <= 0) return 0;
  double i = w * h, da = d.w * d.h, ga = g.w * g.h;
  return i / (crowd ? da : da + ga - i);
}

template <class F>
std::vector<size_t> stable_argsort(size_t n, F key) {
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return key(a) < key(b); });
  return idx;
}

struct NaiveImg {
  std::vector<double> scores;
  std::vector<std::vector<int64_t>> dtm;  // (T, D)
  std::vector<std::vector<bool>> dtig;    // (T, D)
  std::vector<int> gtig;
};

struct NaiveResult {
  std::vector<double> precision, recall;
};

NaiveResult naive_cocoeval(const CocoDataset& gt, const std::vector<CocoDetection>& dets) {
  const auto& thr = coco_iou_thresholds();
  const auto& rec = coco_recall_thresholds();
  const auto& areas = coco_area_ranges();
  const auto& max_dets = coco_max_dets();
  const int T = kCocoIouThrs, R = kCocoRecThrs, A = kCocoAreas, M = kCocoMaxDets;
  std::vector<int64_t> img_ids, cat_ids = gt.label_to_category;
  for (const auto& im : gt.images) img_ids.push_back(im.id);
  std::sort(img_ids.begin(), img_ids.end());
  const int64_t K = int64_t(cat_ids.size());
  std::map<std::pair<int64_t, int64_t>, std::vector<const CocoAnnotation*>> gts;
  std::map<std::pair<int64_t, int64_t>, std::vector<const CocoDetection*>> dts;
  for (const auto& a : gt.annotations) gts[{a.image_id, a.category_id}].push_back(&a);
  for (const auto& d : dets) dts[{d.image_id, d.category_id}].push_back(&d);

  auto evaluate_img = [&](int64_t img, int64_t cat, int a) -> std::optional<NaiveImg> {
    auto g = gts[{img, cat}];
    auto d = dts[{img, cat}];
    if (g.empty() && d.empty()) return std::nullopt;
    const double lo = areas[size_t(a)][0], hi = areas[size_t(a)][1];
    std::vector<int> ig;
    for (auto* x : g) ig.push_back(x->iscrowd || x->area < lo || x->area > hi ? 1 : 0);
    auto gtind = stable_argsort(g.size(), [&](size_t i) { return ig[i]; });
    auto dtind = stable_argsort(d.size(), [&](size_t i) { return -d[i]->score; });
    std::vector<const CocoAnnotation*> gs;
    std::vector<int> gig;
    for (size_t i : gtind) gs.push_back(g[i]), gig.push_back(ig[i]);
    std::vector<const CocoDetection*> ds;
    for (size_t i = 0; i < dtind.size() && i < 100; ++i) ds.push_back(d[dtind[i]]);
    const size_t G = gs.size(), D = ds.size();
    NaiveImg e;
    e.gtig = gig;
    e.dtm.assign(T, std::vector<int64_t>(D, 0));
    e.dtig.assign(T, std::vector<bool>(D, false));
    std::vector<std::vector<int64_t>> gtm(T, std::vector<int64_t>(G, 0));
    if (G > 0 && D > 0)
      for (int t = 0; t < T; ++t)
        for (size_t di = 0; di < D; ++di) {
          double iou = std::min(thr[size_t(t)], 1 - 1e-10);
          int64_t m = -1;
          for (size_t gi = 0; gi < G; ++gi) {
            if (gtm[size_t(t)][gi] > 0 && !gs[gi]->iscrowd) continue;
            if (m > -1 && gig[size_t(m)] == 0 && gig[gi] == 1) break;
            double v = naive_iou(ds[di]->bbox, gs[gi]->bbox, gs[gi]->iscrowd);
            if (v < iou) continue;
            iou = v;
            m = int64_t(gi);
          }
          if (m == -1) continue;
          e.dtig[size_t(t)][di] = gig[size_t(m)];
          e.dtm[size_t(t)][di] = gs[size_t(m)]->id;
          gtm[size_t(t)][size_t(m)] = int64_t(di) + 1;  // any nonzero detection id
        }
    for (size_t di = 0; di < D; ++di) {
      double area = ds[di]->bbox.w * ds[di]->bbox.h;
      for (int t = 0; t < T; ++t)
        if (e.dtm[size_t(t)][di] == 0 && (area < lo || area > hi)) e.dtig[size_t(t)][di] = true;
      e.scores.push_back(ds[di]->score);
    }
    return e;
  };

  NaiveResult res;
  res.precision.assign(size_t(T * R * K * A * M), -1.0);
  res.recall.assign(size_t(T * K * A * M), -1.0);
  for (int64_t k = 0; k < K; ++k)
    for (int a = 0; a < A; ++a) {
      std::vector<NaiveImg> E;
      for (int64_t img : img_ids)
        if (auto e = evaluate_img(img, cat_ids[size_t(k)], a)) E.push_back(*e);
      if (E.empty()) continue;
      for (int m = 0; m < M; ++m) {
        std::vector<double> sc;
        std::vector<std::vector<int64_t>> dtm(T);
        std::vector<std::vector<bool>> dtig(T);
        int64_t npig = 0;
        for (const auto& e : E) {
          size_t n = std::min(e.scores.size(), size_t(max_dets[size_t(m)]));
          sc.insert(sc.end(), e.scores.begin(), e.scores.begin() + long(n));
          for (int t = 0; t < T; ++t) {
            dtm[size_t(t)].insert(dtm[size_t(t)].end(), e.dtm[size_t(t)].begin(), e.dtm[size_t(t)].begin() + long(n));
            dtig[size_t(t)].insert(dtig[size_t(t)].end(), e.dtig[size_t(t)].begin(),
                                   e.dtig[size_t(t)].begin() + long(n));
          }
          for (int x : e.gtig) npig += x == 0;
        }
        if (npig == 0) continue;
        auto inds = stable_argsort(sc.size(), [&](size_t i) { return -sc[i]; });
        const size_t nd = inds.size();
        for (int t = 0; t < T; ++t) {
          std::vector<double> rc(nd), pr(nd);
          double tp = 0, fp = 0;
          for (size_t i = 0; i < nd; ++i) {
            bool m_ = dtm[size_t(t)][inds[i]] != 0, ig_ = dtig[size_t(t)][inds[i]];
            tp += m_ && !ig_;
            fp += !m_ && !ig_;
            rc[i] = tp / double(npig);
            pr[i] = tp / (fp + tp + std::numeric_limits<double>::epsilon());
          }
          res.recall[size_t(((t * K + k) * A + a) * M + m)] = nd ? rc[nd - 1] : 0;
          for (size_t i = nd - 1; nd > 0 && i > 0; --i)
            if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
          for (int r = 0; r < R; ++r) {
            size_t pi = size_t(std::lower_bound(rc.begin(), rc.end(), rec[size_t(r)]) - rc.begin());
            res.precision[size_t((((t * R + r) * K + k) * A + a) * M + m)] = pi < nd ? pr[pi] : 0.0;
          }
        }
      }
    }
  return res;
}

}  // namespace

TEST_CASE("coco_eval: random cases equal a literal transcription of pycocotools, bit for bit") {
  // Integer-grid boxes (IoUs land exactly on thresholds), areas at 32^2 and 96^2,
  // crowd regions, one-decimal scores (ties), duplicates, >100 detections in a
  // group, wrong-class detections, empty images, categories without GT.
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    CAPTURE(seed);
    Rng rng(seed);
    std::vector<int64_t> imgs, cats = {3, 1, 17, 8};
    for (int i = 0; i < 12; ++i) imgs.push_back(int64_t(rng.below(1000)) * 16 + i);  // unique, unsorted
    std::vector<CocoAnnotation> anns;
    std::vector<CocoDetection> dt;
    const double sides[] = {8, 16, 24, 32, 40, 64, 96, 100, 128};
    for (int64_t im : imgs) {
      int n_gt = int(rng.below(8));
      std::vector<CocoAnnotation> here;
      for (int n = 0; n < n_gt; ++n) {
        CocoBox b{double(rng.below(20)) * 8, double(rng.below(20)) * 8, sides[rng.below(9)], sides[rng.below(9)]};
        int crowd = rng.below(10) == 0;
        double area = rng.below(3) == 0 ? b.w * b.h * 0.75 : b.w * b.h;
        if (rng.below(8) == 0) area = rng.below(2) ? 1024.0 : 9216.0;
        here.push_back(ann(im, cats[rng.below(3)], b, crowd, area));  // category 8 never has GT
      }
      anns.insert(anns.end(), here.begin(), here.end());
      int n_dt = rng.below(6) == 0 ? 130 : int(rng.below(25));
      for (int n = 0; n < n_dt; ++n) {
        CocoBox b{double(rng.below(20)) * 8, double(rng.below(20)) * 8, sides[rng.below(9)], sides[rng.below(9)]};
        int64_t c = cats[rng.below(4)];
        if (!here.empty() && rng.below(2)) {
          const CocoAnnotation& g = here[rng.below(here.size())];
          b = g.bbox;
          if (rng.below(2)) b.x += double(rng.below(3)) * 8, b.w += double(rng.below(3)) * 8;
          c = rng.below(5) ? g.category_id : c;
        }
        if (n_dt == 130) c = cats[0];
        dt.push_back(det(im, c, b, double(rng.below(11)) / 10.0));
        if (rng.below(6) == 0) dt.push_back(dt.back());  // exact duplicate
      }
    }
    CocoDataset gt = make_gt(imgs, cats, anns);
    CocoEvalResult r = coco_evaluate(gt, dt);
    NaiveResult ref = naive_cocoeval(gt, dt);
    CHECK(test::check_close("precision", r.precision, ref.precision, {10, 101, 4, 4, 3}, test::Tol::exact()));
    CHECK(test::check_close("recall", r.recall, ref.recall, {10, 4, 4, 3}, test::Tol::exact()));
  }
}

TEST_CASE("coco_eval: a crowd region absorbs detections, IoU with crowd = inter / area_dt") {
  // Crowd GT 100x100 at the origin, one ordinary GT; two detections inside the
  // crowd (IoU with crowd 1.0), one straddling its edge with inter/area_dt = 0.5
  // exactly (the ordinary IoU would be ~0.01), one exact hit on the ordinary GT.
  CocoDataset gt = make_gt({1}, {1}, {ann(1, 1, {0, 0, 100, 100}, 1), ann(1, 1, {200, 200, 50, 50})});
  std::vector<CocoDetection> dt = {det(1, 1, {90, 0, 20, 10}, 0.95), det(1, 1, {10, 10, 20, 20}, 0.9),
                                   det(1, 1, {50, 50, 20, 20}, 0.8), det(1, 1, {200, 200, 50, 50}, 0.6)};
  CocoEvalResult r = coco_evaluate(gt, dt);
  // IoU 0.5: the straddling box is absorbed too -> precision 1. Above 0.5 it is
  // an FP ahead of the TP -> precision 0.5 at every recall.
  CHECK(r.stats[1] == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(r.stats[0] == doctest::Approx((1.0 + 9 * 0.5) / 10).epsilon(1e-12));
  CHECK(r.ap50[0] == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(r.stats[8] == doctest::Approx(1.0).epsilon(1e-12));
  // Without the crowd region the two inner detections become false positives.
  CocoDataset gt2 = make_gt({1}, {1}, {ann(1, 1, {200, 200, 50, 50})});
  CHECK(coco_evaluate(gt2, dt).stats[1] == doctest::Approx(0.25).epsilon(1e-12));
  // A detection prefers an ordinary GT it overlaps enough (IoU 0.8) over a crowd
  // region it lies inside (IoU 1.0); above 0.8 it falls back to the crowd and is ignored.
  CocoDataset gt4 = make_gt({1}, {1}, {ann(1, 1, {0, 0, 100, 100}, 1), ann(1, 1, {0, 0, 50, 50})});
  CocoEvalResult r4 = coco_evaluate(gt4, {det(1, 1, {0, 0, 50, 40}, 0.9)});
  CHECK(r4.stats[0] == doctest::Approx(0.7).epsilon(1e-12));
  CHECK(r4.stats[2] == doctest::Approx(1.0).epsilon(1e-12));  // IoU 0.75
  // A category whose only GT is crowd is undefined (-1), not 0.
  CocoDataset gt3 = make_gt({1}, {1, 2}, {ann(1, 1, {200, 200, 50, 50}), ann(1, 2, {0, 0, 100, 100}, 1)});
  CocoEvalResult r3 = coco_evaluate(gt3, {det(1, 2, {10, 10, 20, 20}, 0.9), det(1, 1, {200, 200, 50, 50}, 0.6)});
  CHECK(r3.ap[1] == -1.0);
  CHECK(r3.ar100[1] == -1.0);
  CHECK(r3.stats[0] == doctest::Approx(1.0).epsilon(1e-12));
}

TEST_CASE("coco_eval: area ranges are closed: area 1024 is small and medium, 9216 medium and large") {
  // GT area exactly 32^2 and an exact detection: AP 1 in both small and medium.
  CocoDataset gt = make_gt({7}, {3}, {ann(7, 3, {10, 10, 32, 32})});
  CocoEvalResult r = coco_evaluate(gt, {det(7, 3, {10, 10, 32, 32}, 0.9)});
  CHECK(r.stats[3] == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(r.stats[4] == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(r.stats[5] == -1.0);  // no large GT
  CHECK(r.stats[9] == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(r.stats[10] == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(r.stats[11] == -1.0);
  // An unmatched detection of w*h = 96^2 ranks first: it counts as an FP in medium
  // (area inside [32^2, 96^2]) but is ignored in small (outside [0, 32^2]).
  r = coco_evaluate(gt, {det(7, 3, {300, 300, 96, 96}, 0.95), det(7, 3, {10, 10, 32, 32}, 0.9)});
  CHECK(r.stats[3] == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(r.stats[4] == doctest::Approx(0.5).epsilon(1e-12));
  CHECK(r.stats[0] == doctest::Approx(0.5).epsilon(1e-12));
  // The GT's area field decides its range, not w*h: a 40x40 box with area 1000 is small only.
  CocoDataset gt2 = make_gt({7}, {3}, {ann(7, 3, {10, 10, 40, 40}, 0, 1000.0)});
  r = coco_evaluate(gt2, {det(7, 3, {10, 10, 40, 40}, 0.9)});
  CHECK(r.stats[3] == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(r.stats[4] == -1.0);
}

TEST_CASE("coco_eval: maxDets keeps the top 100 per image and category") {
  // 100 false positives scored 0.5..0.599 and one exact hit.
  auto build = [](double tp_score) {
    std::vector<CocoDetection> dt;
    for (int i = 0; i < 100; ++i) dt.push_back(det(1, 1, {300.0 + i, 300, 10, 10}, 0.5 + 0.001 * i));
    dt.push_back(det(1, 1, {0, 0, 50, 50}, tp_score));
    return dt;
  };
  CocoDataset gt = make_gt({1}, {1}, {ann(1, 1, {0, 0, 50, 50})});
  CocoEvalResult cut = coco_evaluate(gt, build(0.4));  // rank 101: dropped
  CHECK(cut.stats[0] == 0.0);
  CHECK(cut.stats[8] == 0.0);
  CocoEvalResult kept = coco_evaluate(gt, build(0.5005));  // rank 100: kept
  CHECK(kept.stats[8] == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(kept.stats[7] == 0.0);  // maxDets 10
  CHECK(kept.stats[6] == 0.0);  // maxDets 1
  CHECK(kept.stats[0] == doctest::Approx(0.01).epsilon(1e-12));
  // 2 x 60 detections in one image: the limit is per category, so both hits
  // (ranked 60th in their category) survive.
  CocoDataset gt2 = make_gt({1}, {1, 2}, {ann(1, 1, {0, 0, 50, 50}), ann(1, 2, {100, 100, 50, 50})});
  std::vector<CocoDetection> dt;
  for (int c = 1; c <= 2; ++c) {
    for (int i = 0; i < 59; ++i) dt.push_back(det(1, c, {300.0 + i, 300, 10, 10}, 0.5 + 0.001 * i));
    dt.push_back(det(1, c, {c == 1 ? 0.0 : 100.0, c == 1 ? 0.0 : 100.0, 50, 50}, 0.45));
  }
  CocoEvalResult two = coco_evaluate(gt2, dt);
  CHECK(two.ar100[0] == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(two.ar100[1] == doctest::Approx(1.0).epsilon(1e-12));
}

TEST_CASE("coco_eval: tied scores keep the file order in an image and ascending image ids across images") {
  CocoDataset gt = make_gt({1}, {1}, {ann(1, 1, {0, 0, 50, 50})});
  // Same score: a false positive listed first ranks first.
  CHECK(coco_evaluate(gt, {det(1, 1, {300, 300, 50, 50}, 0.5), det(1, 1, {0, 0, 50, 50}, 0.5)}).stats[0] ==
        doctest::Approx(0.5).epsilon(1e-12));
  CHECK(coco_evaluate(gt, {det(1, 1, {0, 0, 50, 50}, 0.5), det(1, 1, {300, 300, 50, 50}, 0.5)}).stats[0] ==
        doctest::Approx(1.0).epsilon(1e-12));
  // Across images the pooled order is by image id, not by file order: image 3's
  // false positive comes before image 5's hit whatever the order in the list.
  CocoDataset gt2 = make_gt({5, 3}, {1}, {ann(5, 1, {0, 0, 50, 50})});
  CHECK(coco_evaluate(gt2, {det(5, 1, {0, 0, 50, 50}, 0.5), det(3, 1, {0, 0, 50, 50}, 0.5)}).stats[0] ==
        doctest::Approx(0.5).epsilon(1e-12));
  CocoDataset gt3 = make_gt({5, 7}, {1}, {ann(5, 1, {0, 0, 50, 50})});
  CHECK(coco_evaluate(gt3, {det(7, 1, {0, 0, 50, 50}, 0.5), det(5, 1, {0, 0, 50, 50}, 0.5)}).stats[0] ==
        doctest::Approx(1.0).epsilon(1e-12));
}

TEST_CASE("coco_eval: undefined entries are -1, no detections give 0, bad detections are rejected") {
  CocoDataset gt = make_gt({1, 2}, {4, 9}, {ann(1, 4, {0, 0, 50, 50})});
  CocoEvalResult r = coco_evaluate(gt, {});
  CHECK(r.stats[0] == 0.0);
  CHECK(r.ap[0] == 0.0);
  CHECK(r.ap[1] == -1.0);     // category 9 has no GT
  CHECK(r.stats[3] == -1.0);  // no small GT
  CHECK(r.category_ids == std::vector<int64_t>{4, 9});
  CHECK_THROWS_WITH_AS(coco_evaluate(gt, {det(3, 4, {0, 0, 1, 1}, 0.5)}),
                       doctest::Contains("results[0].image_id 3 is not an image of the ground truth"), Error);
  CHECK_THROWS_WITH_AS(coco_evaluate(gt, {det(1, 5, {0, 0, 1, 1}, 0.5)}),
                       doctest::Contains("results[0].category_id 5 is not a category"), Error);
  double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH_AS(coco_evaluate(gt, {det(1, 4, {0, 0, nan, 1}, 0.5)}),
                       doctest::Contains("results[0].bbox: non-finite box"), Error);
  CHECK_THROWS_WITH_AS(coco_evaluate(gt, {det(1, 4, {0, 0, 1, 1}, nan)}), doctest::Contains("results[0].score"), Error);
  // The summary text is pycocotools' format.
  auto lines = coco_summary_lines(coco_evaluate(gt, {det(1, 4, {0, 0, 50, 50}, 0.9)}));
  REQUIRE(lines.size() == 12);
  CHECK(lines[0] == " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000");
  CHECK(lines[3] == " Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000");
  CHECK(lines[6] == " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 1.000");
  CHECK(lines[1] == " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 1.000");
}

TEST_CASE("coco_eval: results do not depend on the thread count") {
  // A random case with crowd, ties and many categories; 1 thread vs all threads.
  Rng rng(1234);
  std::vector<int64_t> imgs, cats = {1, 2, 5, 8, 13};
  for (int i = 0; i < 300; ++i) imgs.push_back(5000 - 7 * i);  // big enough for the parallel path
  std::vector<CocoAnnotation> anns;
  std::vector<CocoDetection> dt;
  for (int64_t im : imgs)
    for (int n = 0; n < 6; ++n) {
      int64_t c = cats[size_t(rng.below(5))];
      CocoBox b{rng.uniform(0, 400), rng.uniform(0, 300), rng.uniform(4, 150), rng.uniform(4, 150)};
      anns.push_back(ann(im, c, b, rng.uniform(0, 1) < 0.1 ? 1 : 0));
      for (int k = 0; k < 12; ++k)
        dt.push_back(det(im, rng.uniform(0, 1) < 0.8 ? c : cats[size_t(rng.below(5))],
                         {b.x + rng.uniform(-10, 10), b.y + rng.uniform(-10, 10), b.w * rng.uniform(0.7, 1.3),
                          b.h * rng.uniform(0.7, 1.3)},
                         double(rng.below(10)) / 10.0));
    }
  CocoDataset gt = make_gt(imgs, cats, anns);
  int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  CocoEvalResult one = coco_evaluate(gt, dt);
  omp_set_num_threads(std::max(saved, 2));
  CocoEvalResult many = coco_evaluate(gt, dt);
  omp_set_num_threads(saved);
  CHECK(one.precision == many.precision);
  CHECK(one.recall == many.recall);
  CHECK(one.stats == many.stats);
  CHECK(one.stats[0] > 0.0);
}

TEST_CASE("coco_eval: detnas coco-eval --json end to end on a golden case") {
  const std::string bin = test::detnas_binary();
  const std::string cs = "../shared/golden/coco_eval/p01_basic";
  if (access(bin.c_str(), X_OK) != 0 || !is_dir(cs)) {
    test::test_skip("needs " + bin + " (make BUILD=... detnas) and " + cs);
    return;
  }
  auto run = [&](const std::string& args, int* status) {  // stdout, plus stderr when args redirect it
    return test::run_capture(bin + " coco-eval " + args, status);
  };
  int status = 0;
  std::string out = run("--gt " + cs + "/gt.json --dt " + cs + "/dt.json --json 2>/dev/null", &status);
  CHECK(status == 0);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  REQUIRE_MESSAGE(!parser.parse(out).get(doc), "not JSON: " << out);
  simdjson::dom::parser parser2;
  simdjson::dom::element expected = parser2.load(cs + "/expected.json").value();
  simdjson::dom::array got_stats = doc["stats"].get_array(), want_stats = expected["stats"].get_array();
  REQUIRE(got_stats.size() == 12);
  for (size_t i = 0; i < 12; ++i)
    CHECK(std::abs(as_double(got_stats.at(i)) - as_double(want_stats.at(i))) <= kGoldenTol);
  CHECK(std::abs(as_double(doc["per_category_ap"]["3"]) - as_double(expected["per_category_ap"]["3"])) <= kGoldenTol);
  // The text summary, and a clear error for a missing file.
  out = run("--gt " + cs + "/gt.json --dt " + cs + "/dt.json 2>/dev/null", &status);
  CHECK(status == 0);
  CHECK(out.find(" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.437") !=
        std::string::npos);
  out = run("--gt " + cs + "/gt.json --dt /nonexistent/dt.json 2>&1", &status);
  CHECK(status != 0);
  CHECK(out.find("/nonexistent/dt.json: cannot open") != std::string::npos);
}
