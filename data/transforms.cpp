// Image transforms (see transforms.h). Plain loops over uint8 BGR pixels; the
// resize precomputes per-column taps and parallelises over output rows (results
// do not depend on the thread count).
#include "data/transforms.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "runtime/dist.h"

namespace detnas::data {

namespace {
uint8_t to_u8(float v) { return uint8_t(std::min(255.0f, std::max(0.0f, v + 0.5f))); }

struct Tap {
  int64_t i0, i1;
  float w1;  // weight of i1; i0 gets 1 - w1
};
std::vector<Tap> make_taps(int64_t out, int64_t start, int64_t len) {
  std::vector<Tap> taps(static_cast<size_t>(out));
  const double scale = double(len) / double(out);
  for (int64_t o = 0; o < out; ++o) {
    double s = (o + 0.5) * scale - 0.5;
    if (s < 0) s = 0;
    int64_t i0 = std::min<int64_t>(int64_t(s), len - 1);
    int64_t i1 = std::min<int64_t>(i0 + 1, len - 1);
    taps[size_t(o)] = {start + i0, start + i1, float(s - double(i0))};
  }
  return taps;
}
}  // namespace

Image resize_bilinear(const Image& src, CropRect r, int64_t out_h, int64_t out_w) {
  DETNAS_CHECK(out_h > 0 && out_w > 0, "resize_bilinear: output size must be positive, got ", out_w, "x", out_h);
  DETNAS_CHECK(r.w > 0 && r.h > 0 && r.x >= 0 && r.y >= 0 && r.x + r.w <= src.width && r.y + r.h <= src.height,
               "resize_bilinear: region x=", r.x, " y=", r.y, " w=", r.w, " h=", r.h, " is not inside the ", src.width,
               "x", src.height, " image");
  Image out(out_h, out_w);
  const std::vector<Tap> xt = make_taps(out_w, r.x, r.w), yt = make_taps(out_h, r.y, r.h);
#pragma omp parallel for schedule(static) if (out_h * out_w > 65536)
  for (int64_t oy = 0; oy < out_h; ++oy) {
    const Tap ty = yt[size_t(oy)];
    const uint8_t* r0 = src.row(ty.i0);
    const uint8_t* r1 = src.row(ty.i1);
    uint8_t* o = out.row(oy);
    for (int64_t ox = 0; ox < out_w; ++ox, o += 3) {
      const Tap tx = xt[size_t(ox)];
      const uint8_t *a = r0 + 3 * tx.i0, *b = r0 + 3 * tx.i1, *c = r1 + 3 * tx.i0, *d = r1 + 3 * tx.i1;
      for (int k = 0; k < 3; ++k) {
        float top = a[k] + tx.w1 * float(b[k] - a[k]);
        float bot = c[k] + tx.w1 * float(d[k] - c[k]);
        o[k] = to_u8(top + ty.w1 * (bot - top));
      }
    }
  }
  return out;
}

Image resize_bilinear(const Image& src, int64_t out_h, int64_t out_w) {
  DETNAS_CHECK(!src.empty(), "resize_bilinear: empty input image");
  return resize_bilinear(src, CropRect{0, 0, src.width, src.height}, out_h, out_w);
}

Image crop(const Image& src, CropRect r) {
  DETNAS_CHECK(r.w > 0 && r.h > 0 && r.x >= 0 && r.y >= 0 && r.x + r.w <= src.width && r.y + r.h <= src.height,
               "crop: region x=", r.x, " y=", r.y, " w=", r.w, " h=", r.h, " is not inside the ", src.width, "x",
               src.height, " image");
  Image out(r.h, r.w);
  for (int64_t y = 0; y < r.h; ++y) std::memcpy(out.row(y), src.at(r.y + y, r.x), size_t(out.row_bytes()));
  return out;
}

ImageSize short_side_size(ImageSize in, int64_t short_side, int64_t max_size) {
  DETNAS_CHECK(in.height > 0 && in.width > 0 && short_side > 0, "short_side_size: bad input ", in.width, "x", in.height,
               " or short side ", short_side);
  const int64_t w = in.width, h = in.height;
  int64_t size = short_side;
  if (max_size > 0) {
    double mn = double(std::min(w, h)), mx = double(std::max(w, h));
    if (mx / mn * double(size) > double(max_size)) size = int64_t(std::nearbyint(double(max_size) * mn / mx));
  }
  size = std::max<int64_t>(size, 1);
  if ((w <= h && w == size) || (h <= w && h == size)) return {h, w};
  if (w < h) return {std::max<int64_t>(1, int64_t(double(size * h) / double(w))), size};
  return {size, std::max<int64_t>(1, int64_t(double(size * w) / double(h)))};
}

void scale_boxes(float* boxes, int64_t n, double sx, double sy) {
  for (int64_t i = 0; i < n; ++i) {
    float* b = boxes + 4 * i;
    b[0] = float(b[0] * sx), b[1] = float(b[1] * sy), b[2] = float(b[2] * sx), b[3] = float(b[3] * sy);
  }
}

Image resize_short_side(const Image& img, int64_t short_side, int64_t max_size, float* boxes, int64_t num_boxes) {
  DETNAS_CHECK(!img.empty(), "resize_short_side: empty input image");
  ImageSize s = short_side_size(img.size(), short_side, max_size);
  if (boxes) scale_boxes(boxes, num_boxes, double(s.width) / double(img.width), double(s.height) / double(img.height));
  if (s.height == img.height && s.width == img.width) return img;
  return resize_bilinear(img, s.height, s.width);
}

void hflip(Image& img) {
  for (int64_t y = 0; y < img.height; ++y) {
    uint8_t* r = img.row(y);
    for (int64_t a = 0, b = img.width - 1; a < b; ++a, --b)
      for (int k = 0; k < 3; ++k) std::swap(r[3 * a + k], r[3 * b + k]);
  }
}

void hflip_boxes(float* boxes, int64_t n, int64_t image_width) {
  const float w = float(image_width);
  for (int64_t i = 0; i < n; ++i) {
    float* b = boxes + 4 * i;
    float x1 = b[0];
    b[0] = w - b[2];
    b[2] = w - x1;
  }
}

CropRect random_resized_crop_rect(ImageSize in, Rng& rng, RandomResizedCropParams p) {
  DETNAS_CHECK(in.height > 0 && in.width > 0, "random_resized_crop: empty image");
  DETNAS_CHECK(p.scale_min > 0 && p.scale_min <= p.scale_max && p.ratio_min > 0 && p.ratio_min <= p.ratio_max,
               "random_resized_crop: bad params scale [", p.scale_min, ", ", p.scale_max, "] ratio [", p.ratio_min,
               ", ", p.ratio_max, "]");
  const int64_t H = in.height, W = in.width;
  const double area = double(H) * double(W), lr0 = std::log(p.ratio_min), lr1 = std::log(p.ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    double target = area * rng.uniform(p.scale_min, p.scale_max);
    double ratio = std::exp(rng.uniform(lr0, lr1));
    int64_t w = int64_t(std::nearbyint(std::sqrt(target * ratio)));
    int64_t h = int64_t(std::nearbyint(std::sqrt(target / ratio)));
    if (w > 0 && w <= W && h > 0 && h <= H) {
      int64_t y = int64_t(rng.below(uint64_t(H - h + 1)));
      int64_t x = int64_t(rng.below(uint64_t(W - w + 1)));
      return {x, y, w, h};
    }
  }
  double in_ratio = double(W) / double(H);
  int64_t w = W, h = H;
  if (in_ratio < p.ratio_min) {
    h = std::max<int64_t>(1, int64_t(std::nearbyint(double(w) / p.ratio_min)));
  } else if (in_ratio > p.ratio_max) {
    w = std::max<int64_t>(1, int64_t(std::nearbyint(double(h) * p.ratio_max)));
  }
  return {(W - w) / 2, (H - h) / 2, w, h};
}

Image random_resized_crop(const Image& img, int64_t out_size, Rng& rng, RandomResizedCropParams p) {
  CropRect r = random_resized_crop_rect(img.size(), rng, p);
  return resize_bilinear(img, r, out_size, out_size);
}

void color_jitter(Image& img, Rng& rng, ColorJitterParams p) {
  DETNAS_CHECK(p.brightness >= 0 && p.contrast >= 0 && p.saturation >= 0 && p.hue >= 0 && p.hue <= 0.5f,
               "color_jitter: bad params brightness ", p.brightness, " contrast ", p.contrast, " saturation ",
               p.saturation, " hue ", p.hue, " (hue must be in [0, 0.5])");
  // Draw the order and the factors first (torchvision draws all, then applies).
  std::array<int, 4> order = {0, 1, 2, 3};
  for (int i = 3; i > 0; --i) std::swap(order[size_t(i)], order[size_t(rng.below(uint64_t(i + 1)))]);
  auto factor = [&](float v) { return v > 0 ? float(rng.uniform(std::max(0.0, 1.0 - v), 1.0 + v)) : 1.0f; };
  const float fb = factor(p.brightness), fc = factor(p.contrast), fs = factor(p.saturation);
  const float fh = p.hue > 0 ? float(rng.uniform(-p.hue, p.hue)) : 0.0f;
  if (img.empty()) return;
  std::vector<float> f(img.pixels.begin(), img.pixels.end());
  const int64_t npix = img.height * img.width;
  auto gray = [](const float* px) { return 0.114f * px[0] + 0.587f * px[1] + 0.299f * px[2]; };
  auto clamp = [](float v) { return std::min(255.0f, std::max(0.0f, v)); };
  for (int op : order) {
    if (op == 0 && p.brightness > 0) {
      for (float& v : f) v = clamp(v * fb);
    } else if (op == 1 && p.contrast > 0) {
      double sum = 0;
      for (int64_t i = 0; i < npix; ++i) sum += gray(&f[size_t(3 * i)]);
      const float mean = float(sum / double(npix));
      for (float& v : f) v = clamp(fc * v + (1 - fc) * mean);
    } else if (op == 2 && p.saturation > 0) {
      for (int64_t i = 0; i < npix; ++i) {
        float* px = &f[size_t(3 * i)];
        const float g = gray(px);
        for (int k = 0; k < 3; ++k) px[k] = clamp(fs * px[k] + (1 - fs) * g);
      }
    } else if (op == 3 && p.hue > 0) {
      // YIQ hue angle grows R -> B -> G, the opposite of HSV, hence the minus sign.
      const float c = std::cos(-6.2831853f * fh), s = std::sin(-6.2831853f * fh);
      for (int64_t i = 0; i < npix; ++i) {
        float* px = &f[size_t(3 * i)];
        const float B = px[0], G = px[1], R = px[2];
        const float y = 0.299f * R + 0.587f * G + 0.114f * B;
        const float ci = 0.596f * R - 0.274f * G - 0.322f * B, cq = 0.211f * R - 0.523f * G + 0.312f * B;
        const float i2 = c * ci - s * cq, q2 = s * ci + c * cq;
        px[2] = clamp(y + 0.956f * i2 + 0.621f * q2);
        px[1] = clamp(y - 0.272f * i2 - 0.647f * q2);
        px[0] = clamp(y - 1.106f * i2 + 1.703f * q2);
      }
    }
  }
  for (size_t i = 0; i < f.size(); ++i) img.pixels[i] = to_u8(f[i]);
}

void to_chw_float(const Image& img, float* out) {
  const int64_t hw = img.height * img.width;
  const uint8_t* s = img.pixels.data();
  for (int64_t i = 0; i < hw; ++i, s += 3) {
    out[i] = s[0];
    out[hw + i] = s[1];
    out[2 * hw + i] = s[2];
  }
}

int64_t round_up_to_multiple(int64_t v, int64_t multiple) {
  DETNAS_CHECK(multiple > 0 && v >= 0, "round_up_to_multiple: bad value ", v, " or multiple ", multiple);
  return (v + multiple - 1) / multiple * multiple;
}

ImageSize padded_batch_size(const std::vector<ImageSize>& sizes, int64_t multiple) {
  DETNAS_CHECK(!sizes.empty(), "padded_batch_size: empty batch");
  ImageSize m;
  for (const ImageSize& s : sizes) m.height = std::max(m.height, s.height), m.width = std::max(m.width, s.width);
  return {round_up_to_multiple(m.height, multiple), round_up_to_multiple(m.width, multiple)};
}

void pack_batch(const std::vector<const Image*>& imgs, float* out, int64_t out_h, int64_t out_w) {
  const int64_t n = int64_t(imgs.size()), plane = out_h * out_w;
  for (int64_t i = 0; i < n; ++i)
    DETNAS_CHECK(imgs[size_t(i)] && imgs[size_t(i)]->height <= out_h && imgs[size_t(i)]->width <= out_w,
                 "pack_batch: image ", i, " (", imgs[size_t(i)] ? imgs[size_t(i)]->width : 0, "x",
                 imgs[size_t(i)] ? imgs[size_t(i)]->height : 0, ") does not fit in ", out_w, "x", out_h);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t y = 0; y < out_h; ++y) {
      const Image& im = *imgs[size_t(i)];
      float* o = out + i * 3 * plane + y * out_w;
      for (int64_t c = 0; c < 3; ++c) {
        float* oc = o + c * plane;
        int64_t x = 0;
        if (y < im.height) {
          const uint8_t* s = im.row(y) + c;
          for (; x < im.width; ++x) oc[x] = s[3 * x];
        }
        for (; x < out_w; ++x) oc[x] = 0.0f;
      }
    }
}

rt::Tensor batch_to_tensor(const std::vector<const Image*>& imgs, int64_t multiple) {
  std::vector<ImageSize> sizes;
  for (const Image* im : imgs) {
    DETNAS_CHECK(im && !im->empty(), "batch_to_tensor: null or empty image in the batch");
    sizes.push_back(im->size());
  }
  ImageSize s = padded_batch_size(sizes, multiple);
  rt::Tensor t = rt::Tensor::empty({int64_t(imgs.size()), 3, s.height, s.width});
  pack_batch(imgs, t.data(), s.height, s.width);
  return t;
}

rt::Tensor pad_batch(const rt::Tensor& images, int64_t H, int64_t W) {
  DETNAS_CHECK(images.dim() == 4 && images.device() == rt::Device::CPU && images.is_contiguous(),
               "pad_batch: expected a contiguous CPU (N,3,H,W) batch, got ", images.describe());
  const int64_t N = images.size(0), C = images.size(1), h = images.size(2), w = images.size(3);
  DETNAS_CHECK(h <= H && w <= W, "pad_batch: batch ", rt::shape_str(images.shape()), " is larger than ", H, "x", W);
  if (h == H && w == W) return images;
  rt::Tensor out = rt::Tensor::zeros({N, C, H, W});
  const float* src = images.data();
  float* dst = out.data();
  for (int64_t p = 0; p < N * C; ++p)
    for (int64_t y = 0; y < h; ++y) std::copy(src + (p * h + y) * w, src + (p * h + y + 1) * w, dst + (p * H + y) * W);
  return out;
}

rt::Tensor pad_batch_across_ranks(const rt::Tensor& images) {
  if (!rt::dist::active()) return images;
  int64_t hw[2] = {images.size(2), images.size(3)};
  rt::dist::allreduce_max(hw, 2);
  return pad_batch(images, hw[0], hw[1]);
}

}  // namespace detnas::data
