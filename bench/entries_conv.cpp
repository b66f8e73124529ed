// Bench entries for the convolutions: depthwise k3/5/7 stride 1 and 2 and
// pointwise 1x1 at each backbone stage, the stem conv, and the dense 3x3 convs
// of the RetinaNet head at P3..P7 (forward, backward input, backward weight).
// The reference is a plain loop in double over sampled output elements. The
// head's 3x3 convs take the Winograd path (kernels/winograd_cpu.h) when
// conv2d_* prefers it; the "conv3x3_im2col" entries time the same shapes with it
// switched off, for the comparison.
// Not here: the kernels (kernels/dwconv.h, kernels/conv2d.h).
#include <cmath>
#include <limits>

#include "bench/harness.h"
#include "bench/shapes.h"
#include "kernels/conv2d.h"
#include "kernels/dwconv.h"
#include "kernels/winograd_cpu.h"

namespace detnas::bench {
namespace {

using kernels::Conv2dShape;
using kernels::DwconvShape;

enum class Pass { Fwd, BwdIn, BwdW };
const char* pass_name(Pass p) { return p == Pass::Fwd ? "fwd" : (p == Pass::BwdIn ? "bwd_in" : "bwd_w"); }

enum class Bias { None, Yes };

// One convolution: x (N,C,H,W)  w (Cout,C/G,K,K)  y (N,Cout,Ho,Wo). G == C == Cout
// runs the direct depthwise kernel, anything else im2col / pointwise + GEMM.
struct ConvSpec {
  int64_t N = 0, C = 0, H = 0, W = 0, Cout = 0, K = 1, S = 1, P = 0, G = 1;
  Bias bias = Bias::None;
  bool no_winograd = false;  // time the im2col + GEMM path even where Winograd is preferred
  bool depthwise() const { return G == C && G == Cout && G > 1; }
  int64_t Ho() const { return kernels::conv_out_size(H, K, S, P); }
  int64_t Wo() const { return kernels::conv_out_size(W, K, S, P); }
  int64_t x_numel() const { return N * C * H * W; }
  int64_t w_numel() const { return Cout * (C / G) * K * K; }
  int64_t y_numel() const { return N * Cout * Ho() * Wo(); }
  double macs() const { return double(N) * Cout * Ho() * Wo() * (C / G) * K * K; }
};

// Naive references in double, one element at a time.
double ref_output(const ConvSpec& s, const float* x, const float* w, const float* b, int64_t i, double* abs_sum) {
  const int64_t Ho = s.Ho(), Wo = s.Wo(), Cg = s.C / s.G, Og = s.Cout / s.G;
  const int64_t ow = i % Wo, oh = (i / Wo) % Ho, co = (i / (Wo * Ho)) % s.Cout, n = i / (Wo * Ho * s.Cout);
  const int64_t g = co / Og;
  double acc = b ? double(b[co]) : 0.0, mag = std::fabs(acc);
  for (int64_t ci = 0; ci < Cg; ++ci)
    for (int64_t kh = 0; kh < s.K; ++kh)
      for (int64_t kw = 0; kw < s.K; ++kw) {
        const int64_t ih = oh * s.S - s.P + kh, iw = ow * s.S - s.P + kw;
        if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
        const double t = double(w[((co * Cg + ci) * s.K + kh) * s.K + kw]) *
                         double(x[((n * s.C + g * Cg + ci) * s.H + ih) * s.W + iw]);
        acc += t;
        mag += std::fabs(t);
      }
  *abs_sum = mag;
  return acc;
}

double ref_input_grad(const ConvSpec& s, const float* w, const float* dy, int64_t i, double* abs_sum) {
  const int64_t Ho = s.Ho(), Wo = s.Wo(), Cg = s.C / s.G, Og = s.Cout / s.G;
  const int64_t iw = i % s.W, ih = (i / s.W) % s.H, c = (i / (s.W * s.H)) % s.C, n = i / (s.W * s.H * s.C);
  const int64_t g = c / Cg, ci = c % Cg;
  double acc = 0, mag = 0;
  for (int64_t co = g * Og; co < (g + 1) * Og; ++co)
    for (int64_t kh = 0; kh < s.K; ++kh)
      for (int64_t kw = 0; kw < s.K; ++kw) {
        const int64_t th = ih + s.P - kh, tw = iw + s.P - kw;  // = oh*S, ow*S
        if (th < 0 || tw < 0 || th % s.S || tw % s.S || th / s.S >= Ho || tw / s.S >= Wo) continue;
        const double t = double(w[((co * Cg + ci) * s.K + kh) * s.K + kw]) *
                         double(dy[((n * s.Cout + co) * Ho + th / s.S) * Wo + tw / s.S]);
        acc += t;
        mag += std::fabs(t);
      }
  *abs_sum = mag;
  return acc;
}

double ref_weight_grad(const ConvSpec& s, const float* x, const float* dy, int64_t i, double* abs_sum) {
  const int64_t Ho = s.Ho(), Wo = s.Wo(), Cg = s.C / s.G, Og = s.Cout / s.G;
  const int64_t kw = i % s.K, kh = (i / s.K) % s.K, ci = (i / (s.K * s.K)) % Cg, co = i / (s.K * s.K * Cg);
  const int64_t c = (co / Og) * Cg + ci;
  double acc = 0, mag = 0;
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t oh = 0; oh < Ho; ++oh) {
      const int64_t ih = oh * s.S - s.P + kh;
      if (ih < 0 || ih >= s.H) continue;
      for (int64_t ow = 0; ow < Wo; ++ow) {
        const int64_t iw = ow * s.S - s.P + kw;
        if (iw < 0 || iw >= s.W) continue;
        const double t =
            double(x[((n * s.C + c) * s.H + ih) * s.W + iw]) * double(dy[((n * s.Cout + co) * Ho + oh) * Wo + ow]);
        acc += t;
        mag += std::fabs(t);
      }
    }
  *abs_sum = mag;
  return acc;
}

Case make_conv_case(const ConvSpec& s, Pass pass) {
  struct Bufs {
    rt::Tensor x, w, b, y, dy, dx, dw, ws;
  };
  auto B = std::make_shared<Bufs>();
  const bool need_x = pass != Pass::BwdIn, need_dy = pass != Pass::Fwd;
  if (need_x) B->x = uniform_buffer(s.x_numel(), 11);
  B->w = uniform_buffer(s.w_numel(), 12);
  if (s.bias == Bias::Yes) B->b = uniform_buffer(s.Cout, 13);
  if (need_dy) B->dy = uniform_buffer(s.y_numel(), 14);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  if (pass == Pass::Fwd) B->y = rt::Tensor::full({s.y_numel()}, nan);
  if (pass == Pass::BwdIn) B->dx = rt::Tensor::full({s.x_numel()}, nan);
  if (pass == Pass::BwdW) B->dw = rt::Tensor::full({s.w_numel()}, nan);

  Case c;
  if (s.depthwise()) {
    DwconvShape d;
    d.N = s.N, d.C = s.C, d.H = s.H, d.W = s.W, d.K = s.K, d.S = s.S, d.P = s.P, d.x_batch_stride = s.C * s.H * s.W;
    if (pass == Pass::Fwd)
      c.run = [B, d] {
        kernels::cpu::dwconv_forward<float>(d, B->x.data(), B->w.data(), B->b.defined() ? B->b.data() : nullptr,
                                            B->y.data());
      };
    else if (pass == Pass::BwdIn)
      c.run = [B, d] {
        kernels::cpu::dwconv_backward_input<float>(d, B->w.data(), B->dy.data(), B->dx.data(), GradientMode::Overwrite);
      };
    else
      c.run = [B, d] {
        kernels::cpu::dwconv_backward_weight<float>(d, B->x.data(), B->dy.data(), B->dw.data(),
                                                    GradientMode::Overwrite);
      };
  } else {
    Conv2dShape d;
    d.N = s.N, d.C = s.C, d.H = s.H, d.W = s.W, d.Cout = s.Cout, d.KH = s.K, d.KW = s.K, d.S = s.S, d.P = s.P,
    d.G = s.G;
    d.x_batch_stride = s.C * s.H * s.W;
    const int64_t wsn = kernels::cpu::conv2d_workspace_size(d);
    if (wsn > 0) B->ws = rt::Tensor::empty({wsn});
    auto ws = [B] { return B->ws.defined() ? B->ws.data() : nullptr; };
    if (pass == Pass::Fwd)
      c.run = [B, d, ws] {
        kernels::cpu::conv2d_forward<float>(d, B->x.data(), B->w.data(), B->b.defined() ? B->b.data() : nullptr,
                                            B->y.data(), ws());
      };
    else if (pass == Pass::BwdIn)
      c.run = [B, d, ws] {
        kernels::cpu::conv2d_backward_input<float>(d, B->w.data(), B->dy.data(), B->dx.data(), GradientMode::Overwrite,
                                                   ws());
      };
    else
      c.run = [B, d, ws] {
        kernels::cpu::conv2d_backward_weight<float>(d, B->x.data(), B->dy.data(), B->dw.data(), GradientMode::Overwrite,
                                                    ws());
      };
  }

  if (s.no_winograd) {
    const auto inner = c.run;
    c.run = [inner] {
      const bool was = kernels::cpu::winograd_enabled();
      kernels::cpu::set_winograd_enabled(false);
      inner();
      kernels::cpu::set_winograd_enabled(was);
    };
  }

  // Sample about 2e7 reference multiply-adds (at least 64 elements).
  const double per_out = double(s.C / s.G) * s.K * s.K, per_in = double(s.Cout / s.G) * s.K * s.K;
  const double per_w = double(s.N) * s.Ho() * s.Wo();
  auto count = [](double cost) { return int64_t(std::fmax(64.0, std::fmin(4096.0, 2e7 / std::fmax(cost, 1.0)))); };
  const auto run = c.run;
  c.validate = [B, s, pass, run, count, per_out, per_in, per_w](Checker& chk) {
    run();
    double mag = 0;
    if (pass == Pass::Fwd) {
      const std::vector<int64_t> shape{s.N, s.Cout, s.Ho(), s.Wo()};
      for (int64_t i : sample_indices(s.y_numel(), count(per_out), 1)) {
        double ref = ref_output(s, B->x.data(), B->w.data(), B->b.defined() ? B->b.data() : nullptr, i, &mag);
        chk.expect("y", shape, i, B->y.data()[i], ref, Tol::reduction(int64_t(per_out) + 1, mag));
      }
    } else if (pass == Pass::BwdIn) {
      const std::vector<int64_t> shape{s.N, s.C, s.H, s.W};
      for (int64_t i : sample_indices(s.x_numel(), count(per_in), 2)) {
        double ref = ref_input_grad(s, B->w.data(), B->dy.data(), i, &mag);
        chk.expect("dx", shape, i, B->dx.data()[i], ref, Tol::reduction(int64_t(per_in), mag));
      }
    } else {
      const std::vector<int64_t> shape{s.Cout, s.C / s.G, s.K, s.K};
      for (int64_t i : sample_indices(s.w_numel(), count(per_w), 3)) {
        double ref = ref_weight_grad(s, B->x.data(), B->dy.data(), i, &mag);
        chk.expect("dw", shape, i, B->dw.data()[i], ref, Tol::reduction(int64_t(per_w), mag));
      }
    }
  };
  c.flops = 2.0 * s.macs();
  const double bias_bytes = s.bias == Bias::Yes ? 4.0 * s.Cout : 0.0;
  if (pass == Pass::Fwd) c.bytes = 4.0 * (s.x_numel() + s.w_numel() + s.y_numel()) + bias_bytes;
  if (pass == Pass::BwdIn) c.bytes = 4.0 * (s.w_numel() + s.y_numel() + s.x_numel());
  if (pass == Pass::BwdW) c.bytes = 4.0 * (s.x_numel() + s.y_numel() + s.w_numel());
  return c;
}

std::string dims(std::initializer_list<int64_t> d) {
  std::string s;
  for (int64_t v : d) s += (s.empty() ? "" : "x") + std::to_string(v);
  return s;
}

void add_conv(Registry& r, const std::string& prefix, const ConvSpec& s, Pass pass, bool in_default) {
  Entry e;
  e.name = prefix + "/" + pass_name(pass);
  e.op = std::string("conv2d.") + pass_name(pass);
  e.shape = "x " + dims({s.N, s.C, s.H, s.W}) + " w " + dims({s.Cout, s.C / s.G, s.K, s.K}) + " s" +
            std::to_string(s.S) + " p" + std::to_string(s.P) + (s.G > 1 ? " g" + std::to_string(s.G) : "") + " -> " +
            dims({s.N, s.Cout, s.Ho(), s.Wo()});
  e.params = {{"N", s.N}, {"C", s.C}, {"H", s.H}, {"W", s.W}, {"Cout", s.Cout},
              {"K", s.K}, {"S", s.S}, {"P", s.P}, {"G", s.G}, {"bias", s.bias == Bias::Yes ? 1 : 0}};
  e.in_default = in_default;
  e.make = [s, pass] { return make_conv_case(s, pass); };
  r.push_back(std::move(e));
}

}  // namespace

void register_conv_entries(Registry& r) {
  const Pass all[] = {Pass::Fwd, Pass::BwdIn, Pass::BwdW};
  for (const NetConfig& cfg : net_configs()) {
    const BackboneShapes bb = backbone_shapes(cfg.space, cfg.res);
    const std::string tag = cfg.tag();
    // The stem sees the image: no input gradient.
    ConvSpec stem{kBatch, 3, cfg.res, cfg.res, bb.stem_out, 3, 2, 1, 1, Bias::Yes};
    add_conv(r, tag + "/stem/conv3x3s2", stem, Pass::Fwd, cfg.in_default);
    add_conv(r, tag + "/stem/conv3x3s2", stem, Pass::BwdW, cfg.in_default);
    for (const StageShape& st : bb.stages) {
      const std::string sp = tag + "/stage" + std::to_string(st.stage);
      for (int64_t K : {3, 5, 7}) {
        ConvSpec s1{kBatch, st.mid, st.H, st.H, st.mid, K, 1, K / 2, st.mid, Bias::None};
        for (Pass p : all) add_conv(r, sp + "/dw_k" + std::to_string(K) + "s1", s1, p, cfg.in_default);
      }
      for (int64_t K : {3, 5, 7}) {
        ConvSpec s2{kBatch, st.s2_mid, st.H_in, st.H_in, st.s2_mid, K, 2, K / 2, st.s2_mid, Bias::None};
        for (Pass p : all) add_conv(r, sp + "/dw_k" + std::to_string(K) + "s2", s2, p, cfg.in_default);
      }
      ConvSpec pw{kBatch, st.main_in, st.H, st.H, st.mid, 1, 1, 0, 1, Bias::None};
      for (Pass p : all) add_conv(r, sp + "/pw", pw, p, cfg.in_default);
    }
  }
  // RetinaNet head towers (256 -> 256, 3x3) at every level, and the classification
  // output conv (256 -> 9 anchors x 80 classes) at P3, the largest level.
  for (int64_t res : {320, 800}) {
    const std::string tag = "retina@" + std::to_string(res);
    for (int l = 3; l <= 7; ++l) {
      const int64_t H = level_size(res, l);
      ConvSpec s{kBatch, kFpnChannels, H, H, kFpnChannels, 3, 1, 1, 1, Bias::Yes};
      for (Pass p : all) add_conv(r, tag + "/P" + std::to_string(l) + "/conv3x3", s, p, true);
      ConvSpec off = s;
      off.no_winograd = true;
      for (Pass p : {Pass::Fwd, Pass::BwdIn})
        add_conv(r, tag + "/P" + std::to_string(l) + "/conv3x3_im2col", off, p, res == 320);
    }
    const int64_t H3 = level_size(res, 3);
    ConvSpec cls{kBatch, kFpnChannels, H3, H3, kAnchorsPerCell * kClasses, 3, 1, 1, 1, Bias::Yes};
    for (Pass p : all) add_conv(r, tag + "/P3/cls3x3", cls, p, res == 320);
  }
}

}  // namespace detnas::bench
