// Synthetic detection and classification sets (see synthetic.h): shape
// rasterisation (polygons by even-odd test at pixel centres, discs and rings by
// distance), textured backgrounds, placement with occlusion limits, and the
// writers for the COCO and ImageFolder layouts.
#include "data/synthetic.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <mutex>

#include "core/error.h"
#include "core/log.h"
#include "data/json_writer.h"
#include "runtime/fs.h"
#include "runtime/rng.h"

namespace detnas::data {

namespace {
constexpr double kPi = 3.14159265358979323846;
constexpr int kFormatVersion = 1;
constexpr const char* kMarker = "synthetic.json";

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
uint64_t stream_seed(uint64_t seed, uint64_t set, uint64_t split, uint64_t a, uint64_t b) {
  return mix64(mix64(mix64(mix64(seed) ^ set) ^ split) ^ a) ^ b;
}

// ------------------------------------------------------------ shapes
enum class Kind { Square, Disc, Triangle, Ring, Cross, Star, Bar };
constexpr double kRingInner = 0.55, kCrossArm = 0.3, kStarInner = 0.42, kBarHalfWidth = 0.18;

struct Shape {
  Kind kind = Kind::Disc;
  double cx = 0, cy = 0, r = 1;
  std::vector<double> px, py;  // polygon vertices (polygon kinds only)
};

Shape make_shape(Kind kind, double cx, double cy, double r, double angle) {
  Shape s{kind, cx, cy, r, {}, {}};
  std::vector<std::pair<double, double>> local;  // unit-radius vertices before rotation
  auto polar = [&](int n, double start, double r_even, double r_odd) {
    for (int k = 0; k < n; ++k) {
      double a = start + 2 * kPi * k / n, rr = k % 2 ? r_odd : r_even;
      local.push_back({rr * std::cos(a), rr * std::sin(a)});
    }
  };
  const double t = kCrossArm, w = kBarHalfWidth;
  switch (kind) {
    case Kind::Square:
      polar(4, kPi / 4, 1, 1);
      break;
    case Kind::Triangle:
      polar(3, -kPi / 2, 1, 1);
      break;
    case Kind::Star:
      polar(10, -kPi / 2, 1, kStarInner);
      break;
    case Kind::Cross:
      local = {{t, -1}, {t, -t}, {1, -t}, {1, t},   {t, t},   {t, 1},
               {-t, 1}, {-t, t}, {-1, t}, {-1, -t}, {-t, -t}, {-t, -1}};
      break;
    case Kind::Bar:
      local = {{-1, -w}, {1, -w}, {1, w}, {-1, w}};
      break;
    default:
      return s;  // disc, ring
  }
  const double c = std::cos(angle), sn = std::sin(angle);
  for (auto [x, y] : local) {
    s.px.push_back(cx + r * (c * x - sn * y));
    s.py.push_back(cy + r * (sn * x + c * y));
  }
  return s;
}

bool inside(const Shape& s, double x, double y) {
  double dx = x - s.cx, dy = y - s.cy, d2 = dx * dx + dy * dy;
  if (s.kind == Kind::Disc) return d2 <= s.r * s.r;
  if (s.kind == Kind::Ring) return d2 <= s.r * s.r && d2 >= kRingInner * kRingInner * s.r * s.r;
  bool in = false;
  for (size_t i = 0, j = s.px.size() - 1; i < s.px.size(); j = i++)
    if ((s.py[i] > y) != (s.py[j] > y) && x < (s.px[j] - s.px[i]) * (y - s.py[i]) / (s.py[j] - s.py[i]) + s.px[i])
      in = !in;
  return in;
}

// Area of the shape with r = 1 (for choosing r from a target area).
double unit_area(Kind kind) {
  if (kind == Kind::Disc) return kPi;
  if (kind == Kind::Ring) return kPi * (1 - kRingInner * kRingInner);
  Shape s = make_shape(kind, 0, 0, 1, 0);
  double a = 0;
  for (size_t i = 0, j = s.px.size() - 1; i < s.px.size(); j = i++) a += s.px[j] * s.py[i] - s.px[i] * s.py[j];
  return std::fabs(a) / 2;
}

// Calls f(pixel index) for every pixel of the S x S image whose centre is inside.
template <class F>
void raster(const Shape& s, int64_t S, F&& f) {
  int64_t x0 = std::max<int64_t>(0, int64_t(std::floor(s.cx - s.r))),
          x1 = std::min<int64_t>(S - 1, int64_t(s.cx + s.r));
  int64_t y0 = std::max<int64_t>(0, int64_t(std::floor(s.cy - s.r))),
          y1 = std::min<int64_t>(S - 1, int64_t(s.cy + s.r));
  for (int64_t y = y0; y <= y1; ++y)
    for (int64_t x = x0; x <= x1; ++x)
      if (inside(s, x + 0.5, y + 0.5)) f(y * S + x);
}

// ------------------------------------------------------------ colours, backgrounds
Color hsv_color(double h, double s, double v) {
  double hh = 6 * (h - std::floor(h)), f = hh - std::floor(hh);
  double p = v * (1 - s), q = v * (1 - f * s), t = v * (1 - (1 - f) * s), r, g, b;
  switch (int(hh) % 6) {
    case 0:
      r = v, g = t, b = p;
      break;
    case 1:
      r = q, g = v, b = p;
      break;
    case 2:
      r = p, g = v, b = t;
      break;
    case 3:
      r = p, g = q, b = v;
      break;
    case 4:
      r = t, g = p, b = v;
      break;
    default:
      r = v, g = p, b = q;
  }
  return bgr(uint8_t(b * 255 + 0.5), uint8_t(g * 255 + 0.5), uint8_t(r * 255 + 0.5));
}

Color random_object_color(Rng& rng) {
  if (rng.uniform() < 0.12) {  // achromatic: near black or near white
    double v = rng.uniform() < 0.5 ? rng.uniform(0.02, 0.15) : rng.uniform(0.88, 1.0);
    return hsv_color(0, 0, v);
  }
  return hsv_color(rng.uniform(), rng.uniform(0.5, 1.0), rng.uniform(0.35, 1.0));
}

int color_dist(Color a, Color b) { return std::abs(a.b - b.b) + std::abs(a.g - b.g) + std::abs(a.r - b.r); }

// A random colour at least ~160 (sum of |diff| over channels) away from `under`.
Color contrasting_color(Rng& rng, Color under) {
  Color best{};
  int best_d = -1;
  for (int i = 0; i < 24; ++i) {
    Color c = random_object_color(rng);
    int d = color_dist(c, under);
    if (d > best_d) best = c, best_d = d;
    if (d >= 160) break;
  }
  return best;
}

Color mean_color(const Image& img, const std::vector<int64_t>& pix) {
  double s[3] = {0, 0, 0};
  int64_t n = 0;
  for (size_t i = 0; i < pix.size(); i += 3, ++n)
    for (int k = 0; k < 3; ++k) s[k] += img.pixels[size_t(3 * pix[i] + k)];
  n = std::max<int64_t>(n, 1);
  return bgr(uint8_t(s[0] / n), uint8_t(s[1] / n), uint8_t(s[2] / n));
}

uint8_t clamp_u8(double v) { return uint8_t(std::min(255.0, std::max(0.0, v + 0.5))); }

// Sets pixel p to colour c plus uniform noise in [-noise, noise] per channel.
void paint(Image& img, int64_t p, Color c, Rng& rng, int noise) {
  uint8_t* o = img.pixels.data() + 3 * p;
  const uint8_t v[3] = {c.b, c.g, c.r};
  for (int k = 0; k < 3; ++k) o[k] = clamp_u8(v[k] + double(int(rng.below(uint64_t(2 * noise + 1))) - noise));
}

Color muted_color(Rng& rng) {
  return bgr(uint8_t(60 + rng.below(136)), uint8_t(60 + rng.below(136)), uint8_t(60 + rng.below(136)));
}

// Low-contrast textured background: gradient, smooth value noise or soft stripes.
Image render_background(int64_t S, Rng& rng) {
  Image img(S, S);
  const int type = int(rng.below(3));
  const Color c0 = muted_color(rng);
  Color c1 = muted_color(rng);
  const double a = rng.uniform(0, 2 * kPi), ca = std::cos(a), sa = std::sin(a);
  const double period = rng.uniform(6, 28);
  const int64_t cell = 16 + int64_t(rng.below(33)), G = S / cell + 2;
  std::vector<double> grid;
  if (type == 1)
    for (int64_t i = 0; i < G * G * 3; ++i) grid.push_back(rng.uniform(-40, 40));
  if (type == 2)
    c1 = bgr(clamp_u8(c0.b + rng.uniform(-50, 50)), clamp_u8(c0.g + rng.uniform(-50, 50)),
             clamp_u8(c0.r + rng.uniform(-50, 50)));
  const double base0[3] = {double(c0.b), double(c0.g), double(c0.r)},
               base1[3] = {double(c1.b), double(c1.g), double(c1.r)};
  for (int64_t y = 0; y < S; ++y)
    for (int64_t x = 0; x < S; ++x) {
      uint8_t* o = img.at(y, x);
      const double u = (x - S / 2.0) * ca + (y - S / 2.0) * sa;
      for (int k = 0; k < 3; ++k) {
        double v;
        if (type == 0) {
          double t = std::min(1.0, std::max(0.0, u / double(S) + 0.5));
          v = base0[k] + t * (base1[k] - base0[k]);
        } else if (type == 1) {
          double gx = double(x) / double(cell), gy = double(y) / double(cell);
          int64_t ix = int64_t(gx), iy = int64_t(gy);
          double fx = gx - double(ix), fy = gy - double(iy);
          auto g = [&](int64_t yy, int64_t xx) { return grid[size_t((yy * G + xx) * 3 + k)]; };
          v = base0[k] + (1 - fy) * ((1 - fx) * g(iy, ix) + fx * g(iy, ix + 1)) +
              fy * ((1 - fx) * g(iy + 1, ix) + fx * g(iy + 1, ix + 1));
        } else {
          double t = 0.5 + 0.5 * std::sin(2 * kPi * u / period);
          v = base0[k] + t * (base1[k] - base0[k]);
        }
        o[k] = clamp_u8(v + double(int(rng.below(13)) - 6));
      }
    }
  return img;
}

const Kind kDetKinds[5] = {Kind::Square, Kind::Disc, Kind::Triangle, Kind::Ring, Kind::Cross};
// Classification classes in synthetic_cls_classes() order: a shape, or (for
// checker, dots, stripes) a two-colour texture over the whole image.
enum ClsTexture { kNone, kChecker, kDots, kStripes };
struct ClsClass {
  Kind kind;
  ClsTexture texture;
};
const ClsClass kClsClasses[10] = {
    {Kind::Bar, kNone},  {Kind::Disc, kChecker}, {Kind::Cross, kNone}, {Kind::Disc, kNone},    {Kind::Disc, kDots},
    {Kind::Ring, kNone}, {Kind::Square, kNone},  {Kind::Star, kNone},  {Kind::Disc, kStripes}, {Kind::Triangle, kNone}};
}  // namespace

std::string synthetic_det_dir(const std::string& root) { return path_join(root, "det"); }
std::string synthetic_cls_dir(const std::string& root) { return path_join(root, "cls"); }
bool synthetic_set_complete(const std::string& dir) { return file_exists(path_join(dir, kMarker)); }

const std::vector<SyntheticCategory>& synthetic_det_categories() {
  static const std::vector<SyntheticCategory> c = {
      {1, "square"}, {3, "disc"}, {7, "triangle"}, {10, "ring"}, {15, "cross"}};
  return c;
}
const std::vector<std::string>& synthetic_cls_classes() {
  static const std::vector<std::string> c = {"bar",  "checker", "cross", "disc",    "dots",
                                             "ring", "square",  "star",  "stripes", "triangle"};
  return c;
}

SyntheticSample render_detection_sample(uint64_t seed, SyntheticSplit split, int64_t index, int64_t S) {
  DETNAS_CHECK(S >= 32 && S <= 4096, "synthetic detection: image size must be 32..4096, got ", S);
  Rng rng(stream_seed(seed, 1, uint64_t(split), uint64_t(index), 0));
  SyntheticSample out{render_background(S, rng), {}};
  Image& img = out.image;
  std::vector<int32_t> owner(size_t(S * S), -1);
  struct Placed {
    int64_t category_id;
    int iscrowd;
    int64_t full, visible;
  };
  std::vector<Placed> placed;
  std::vector<int64_t> pix;
  double crowd_box[4] = {0, 0, -1, -1};  // x1, y1, x2, y2; empty when x2 < x1

  if (S >= 96 && rng.uniform() < 0.1) {  // a crowd: a cluster of small same-coloured shapes, one box
    int which = int(rng.below(2));
    Kind kind = which ? Kind::Disc : Kind::Square;
    double rw = S * rng.uniform(0.18, 0.3), rh = S * rng.uniform(0.18, 0.3);
    double rx = rng.uniform(0, S - rw), ry = rng.uniform(0, S - rh);
    int n = 8 + int(rng.below(9));
    std::vector<Shape> shapes;
    pix.clear();
    for (int i = 0; i < n; ++i) {
      double r = rng.uniform(2.5, 5.0);
      shapes.push_back(make_shape(kind, rng.uniform(rx + r, rx + rw - r), rng.uniform(ry + r, ry + rh - r), r,
                                  rng.uniform(0, 2 * kPi)));
      raster(shapes.back(), S, [&](int64_t p) { pix.push_back(p); });
    }
    Color c = contrasting_color(rng, mean_color(img, pix));
    int64_t count = 0;
    for (int64_t p : pix) {
      if (owner[size_t(p)] < 0) ++count;
      owner[size_t(p)] = 0;
      paint(img, p, c, rng, 8);
    }
    placed.push_back({synthetic_det_categories()[which].id, 1, count, count});
    crowd_box[0] = rx, crowd_box[1] = ry, crowd_box[2] = rx + rw, crowd_box[3] = ry + rh;
  }

  const double max_large = 0.3 * double(S * S), kSmall = 32 * 32, kMedium = 96 * 96;
  const int n_objects = 1 + int(rng.below(10));
  for (int obj = 0; obj < n_objects; ++obj) {
    for (int attempt = 0; attempt < 25; ++attempt) {
      const int k = int(rng.below(5));
      const Kind kind = kDetKinds[k];
      // Target area, log-uniform within a COCO area range (small 30%, medium 35%,
      // large 35%; occlusion and truncation shift the drawn areas down).
      double u = rng.uniform(), lo = 100, hi = kSmall;
      if (u >= 0.3 && max_large > kSmall * 1.2) lo = kSmall, hi = std::min(kMedium, max_large);
      if (u >= 0.65 && max_large > kMedium * 1.2) lo = kMedium, hi = max_large;
      const double area = std::exp(rng.uniform(std::log(lo), std::log(hi)));
      const double r = std::sqrt(area / unit_area(kind)), margin = 0.6 * r;
      if (S - 2 * margin <= 1) continue;
      Shape s = make_shape(kind, rng.uniform(margin, S - margin), rng.uniform(margin, S - margin), r,
                           rng.uniform(0, 2 * kPi));
      if (crowd_box[2] >= crowd_box[0] && s.cx + r > crowd_box[0] && s.cx - r < crowd_box[2] &&
          s.cy + r > crowd_box[1] && s.cy - r < crowd_box[3])
        continue;  // keep crowd regions unoccluded and free of other objects
      pix.clear();
      raster(s, S, [&](int64_t p) { pix.push_back(p); });
      if (double(pix.size()) < 0.7 * area || pix.size() < 40) continue;  // truncated too much by the border
      std::vector<int64_t> lost(placed.size(), 0);
      for (int64_t p : pix)
        if (owner[size_t(p)] >= 0) ++lost[size_t(owner[size_t(p)])];
      bool ok = true;
      for (size_t j = 0; j < placed.size() && ok; ++j)
        ok = placed[j].visible - lost[j] >= 0.55 * double(placed[j].full) && (lost[j] == 0 || !placed[j].iscrowd);
      if (!ok) continue;  // would hide too much of an earlier object
      Color c = contrasting_color(rng, mean_color(img, pix));
      const int32_t id = int32_t(placed.size());
      for (size_t j = 0; j < placed.size(); ++j) placed[j].visible -= lost[j];
      for (int64_t p : pix) {
        owner[size_t(p)] = id;
        paint(img, p, c, rng, 8);
      }
      placed.push_back({synthetic_det_categories()[size_t(k)].id, 0, int64_t(pix.size()), int64_t(pix.size())});
      break;
    }
  }

  // Boxes and areas from the visible pixels.
  const int64_t m = int64_t(placed.size());
  std::vector<int64_t> x1(size_t(m), S), y1(size_t(m), S), x2(size_t(m), -1), y2(size_t(m), -1), cnt(size_t(m), 0);
  for (int64_t y = 0; y < S; ++y)
    for (int64_t x = 0; x < S; ++x) {
      int32_t id = owner[size_t(y * S + x)];
      if (id < 0) continue;
      x1[size_t(id)] = std::min(x1[size_t(id)], x), x2[size_t(id)] = std::max(x2[size_t(id)], x);
      y1[size_t(id)] = std::min(y1[size_t(id)], y), y2[size_t(id)] = std::max(y2[size_t(id)], y);
      ++cnt[size_t(id)];
    }
  for (int64_t j = 0; j < m; ++j) {
    if (cnt[size_t(j)] == 0) continue;
    SyntheticObject o;
    o.category_id = placed[size_t(j)].category_id;
    o.iscrowd = placed[size_t(j)].iscrowd;
    o.area = cnt[size_t(j)];
    o.bbox[0] = double(x1[size_t(j)]), o.bbox[1] = double(y1[size_t(j)]);
    o.bbox[2] = double(x2[size_t(j)] - x1[size_t(j)] + 1), o.bbox[3] = double(y2[size_t(j)] - y1[size_t(j)] + 1);
    out.objects.push_back(o);
  }
  return out;
}

Image render_classification_sample(uint64_t seed, SyntheticSplit split, int64_t cls, int64_t index, int64_t S) {
  DETNAS_CHECK(S >= 16 && S <= 4096, "synthetic classification: image size must be 16..4096, got ", S);
  DETNAS_CHECK(cls >= 0 && cls < int64_t(synthetic_cls_classes().size()), "synthetic classification: class ", cls,
               " out of range");
  Rng rng(stream_seed(seed, 2, uint64_t(split), uint64_t(cls), uint64_t(index)));
  Image img = render_background(S, rng);
  const ClsTexture tex = kClsClasses[cls].texture;
  if (tex != kNone) {  // a two-colour pattern over the whole image
    const Color c0 = random_object_color(rng), c1 = contrasting_color(rng, c0);
    const double P = S * rng.uniform(0.1, 0.25), a = rng.uniform(0, 2 * kPi), ca = std::cos(a), sa = std::sin(a);
    const double ox = rng.uniform(0, P), oy = rng.uniform(0, P);
    for (int64_t y = 0; y < S; ++y)
      for (int64_t x = 0; x < S; ++x) {
        double u = ((x + 0.5) * ca + (y + 0.5) * sa + ox) / P, v = (-(x + 0.5) * sa + (y + 0.5) * ca + oy) / P;
        bool on;
        if (tex == kChecker)
          on = (int64_t(std::floor(u)) + int64_t(std::floor(v))) & 1;
        else if (tex == kStripes)
          on = int64_t(std::floor(u)) & 1;
        else {
          double fu = u - std::floor(u) - 0.5, fv = v - std::floor(v) - 0.5;
          on = fu * fu + fv * fv <= 0.09;
        }
        paint(img, y * S + x, on ? c1 : c0, rng, 8);
      }
    return img;
  }
  const double r = S * rng.uniform(0.22, 0.42);
  Shape s = make_shape(kClsClasses[cls].kind, S / 2.0 + S * rng.uniform(-0.15, 0.15),
                       S / 2.0 + S * rng.uniform(-0.15, 0.15), r, rng.uniform(0, 2 * kPi));
  std::vector<int64_t> pix;
  raster(s, S, [&](int64_t p) { pix.push_back(p); });
  Color c = contrasting_color(rng, mean_color(img, pix));
  for (int64_t p : pix) paint(img, p, c, rng, 8);
  return img;
}

// ------------------------------------------------------------ writers
namespace {
// Runs body(i) for i in [0, n) on OpenMP threads in chunks, logging progress;
// an exception in any iteration is rethrown after the chunk.
template <class F>
void parallel_chunks(int64_t n, const std::string& what, F&& body) {
  const int64_t chunk = std::max<int64_t>(64, (n + 3) / 4);
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t end = std::min(n, start + chunk);
    std::exception_ptr err;
    std::mutex mu;
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t i = start; i < end; ++i) {
      try {
        body(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!err) err = std::current_exception();
      }
    }
    if (err) std::rethrow_exception(err);
    log_info("make-data: ", what, " ", end, "/", n);
  }
}

void write_marker(const std::string& dir, const char* kind, JsonWriter& w) {
  w.end_object();
  write_file_atomic(path_join(dir, kMarker), w.str());
  log_info("make-data: ", kind, " set complete in ", dir);
}

void check_common(int64_t a, int64_t b, int quality, const char* what) {
  DETNAS_CHECK(a >= 0 && b >= 0 && a + b > 0, what, ": image counts must be >= 0 and not both 0, got ", a, " and ", b);
  DETNAS_CHECK(quality >= 1 && quality <= 100, what, ": JPEG quality must be 1..100, got ", quality);
}
}  // namespace

SyntheticDetStats make_detection_set(const std::string& out_dir, const SyntheticDetParams& p) {
  check_common(p.train, p.val, p.jpeg_quality, "make_detection_set");
  DETNAS_CHECK(p.image_size >= 32 && p.image_size <= 4096, "make_detection_set: image size must be 32..4096, got ",
               p.image_size);
  SyntheticDetStats st;
  const JpegParams jp{p.jpeg_quality, JpegSubsampling::S444};
  for (SyntheticSplit split : {SyntheticSplit::Train, SyntheticSplit::Val}) {
    const bool train = split == SyntheticSplit::Train;
    const char* name = train ? "train" : "val";
    const int64_t n = train ? p.train : p.val, id0 = train ? 1 : 1000001;
    const std::string img_dir = path_join(out_dir, name), ann_dir = path_join(out_dir, "annotations");
    make_dirs(img_dir);
    make_dirs(ann_dir);
    std::vector<std::vector<SyntheticObject>> objs(static_cast<size_t>(n));
    auto file_name = [&](int64_t i) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%012lld.jpg", static_cast<long long>(id0 + i));
      return std::string(buf);
    };
    parallel_chunks(n, std::string("det/") + name, [&](int64_t i) {
      SyntheticSample s = render_detection_sample(p.seed, split, i, p.image_size);
      write_jpeg(path_join(img_dir, file_name(i)), s.image, jp, Durability::NoSync);
      objs[size_t(i)] = std::move(s.objects);
    });
    JsonWriter w;
    w.begin_object().key("info").begin_object();
    w.field("description", "detnas synthetic detection set").field("version", std::to_string(kFormatVersion));
    w.field("seed", p.seed).field("split", name).end_object();
    w.key("licenses").begin_array().end_array();
    w.key("images").begin_array();
    for (int64_t i = 0; i < n; ++i)
      w.begin_object()
          .field("id", id0 + i)
          .field("file_name", file_name(i))
          .field("width", p.image_size)
          .field("height", p.image_size)
          .end_object();
    w.end_array().key("annotations").begin_array();
    int64_t ann_id = 1;
    for (int64_t i = 0; i < n; ++i)
      for (const SyntheticObject& o : objs[size_t(i)]) {
        w.begin_object().field("id", ann_id++).field("image_id", id0 + i).field("category_id", o.category_id);
        w.key("bbox").begin_array().value(o.bbox[0]).value(o.bbox[1]).value(o.bbox[2]).value(o.bbox[3]).end_array();
        w.field("area", o.area).field("iscrowd", o.iscrowd).end_object();
        ++st.objects;
        if (o.iscrowd) ++st.crowd;
        (o.area < 32 * 32 ? st.small : o.area < 96 * 96 ? st.medium : st.large)++;
      }
    w.end_array().key("categories").begin_array();
    for (const SyntheticCategory& c : synthetic_det_categories())
      w.begin_object().field("id", c.id).field("name", c.name).field("supercategory", "shape").end_object();
    w.end_array().end_object();
    write_file_atomic(path_join(ann_dir, std::string("instances_") + name + ".json"), w.str());
    st.images += n;
  }
  log_info("make-data: det ", st.images, " images, ", st.objects, " annotations (small ", st.small, ", medium ",
           st.medium, ", large ", st.large, "; ", st.crowd, " crowd regions)");
  JsonWriter m(JsonStyle::Pretty);
  m.begin_object().field("generator", "detnas make-data").field("kind", "detection").field("version", kFormatVersion);
  m.field("seed", p.seed).field("train", p.train).field("val", p.val).field("image_size", p.image_size);
  m.field("jpeg_quality", p.jpeg_quality).field("images", st.images).field("annotations", st.objects);
  write_marker(out_dir, "detection", m);
  return st;
}

void make_classification_set(const std::string& out_dir, const SyntheticClsParams& p) {
  check_common(p.train_per_class, p.val_per_class, p.jpeg_quality, "make_classification_set");
  DETNAS_CHECK(p.image_size >= 16 && p.image_size <= 4096, "make_classification_set: image size must be 16..4096, got ",
               p.image_size);
  const auto& classes = synthetic_cls_classes();
  const int64_t nc = int64_t(classes.size());
  const JpegParams jp{p.jpeg_quality, JpegSubsampling::S444};
  for (SyntheticSplit split : {SyntheticSplit::Train, SyntheticSplit::Val}) {
    const bool train = split == SyntheticSplit::Train;
    const char* name = train ? "train" : "val";
    const int64_t per = train ? p.train_per_class : p.val_per_class;
    if (per == 0) continue;
    for (const std::string& c : classes) make_dirs(path_join(path_join(out_dir, name), c));
    parallel_chunks(nc * per, std::string("cls/") + name, [&](int64_t k) {
      const int64_t c = k / per, i = k % per;
      char buf[32];
      std::snprintf(buf, sizeof buf, "%06lld.jpg", static_cast<long long>(i));
      Image img = render_classification_sample(p.seed, split, c, i, p.image_size);
      write_jpeg(path_join(path_join(path_join(out_dir, name), classes[size_t(c)]), buf), img, jp, Durability::NoSync);
    });
  }
  JsonWriter m(JsonStyle::Pretty);
  m.begin_object().field("generator", "detnas make-data").field("kind", "classification");
  m.field("version", kFormatVersion).field("seed", p.seed).field("train_per_class", p.train_per_class);
  m.field("val_per_class", p.val_per_class).field("image_size", p.image_size).field("jpeg_quality", p.jpeg_quality);
  m.key("classes").array(classes);
  write_marker(out_dir, "classification", m);
}

namespace {
template <class Make>
std::string ensure_set(const std::string& dir, const char* what, Make&& make) {
  if (synthetic_set_complete(dir)) return dir;
  DETNAS_CHECK(dir_missing_or_empty(dir), "synthetic ", what, " data: folder '", dir, "' is not empty but has no ",
               kMarker, " (an interrupted or foreign set); remove it or run `detnas make-data --force`");
  log_info("generating the built-in synthetic ", what, " set in ", dir);
  make();
  return dir;
}
}  // namespace

std::string ensure_synthetic_det(const std::string& dir, const SyntheticDetParams& p) {
  return ensure_set(dir, "detection", [&] { make_detection_set(dir, p); });
}
std::string ensure_synthetic_cls(const std::string& dir, const SyntheticClsParams& p) {
  return ensure_set(dir, "classification", [&] { make_classification_set(dir, p); });
}

}  // namespace detnas::data
