// SVG chart rendering (cli/svg_plot.h).
#include "cli/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

namespace detnas::cli {

namespace {

constexpr double kW = 720, kH = 300, kLeft = 70, kRight = 170, kTop = 34, kBottom = 46;

std::string esc(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '<')
      r += "&lt;";
    else if (c == '>')
      r += "&gt;";
    else if (c == '&')
      r += "&amp;";
    else if (c == '"')
      r += "&quot;";
    else
      r += c;
  }
  return r;
}

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

std::string tick_label(double v, double step) {
  char b[32];
  const int digits = step >= 1 ? 0 : int(std::ceil(-std::log10(step) - 1e-9));
  std::snprintf(b, sizeof b, "%.*f", std::min(digits, 6), v);
  return b;
}

// A "nice" step (1, 2, 5 x 10^k) for about n ticks over [lo, hi].
double nice_step(double lo, double hi, int n) {
  const double raw = (hi - lo) / n;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * p) return m * p;
  return 10 * p;
}

struct Range {
  double lo = INFINITY, hi = -INFINITY;
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  void finish() {
    if (!(lo <= hi)) lo = 0, hi = 1;
    if (hi - lo < 1e-12) {
      const double pad = std::max(std::fabs(lo) * 0.05, 1e-3);
      lo -= pad;
      hi += pad;
    }
  }
};

void render_chart(std::string& s, const Chart& c, double y0) {
  Range xr, yr;
  for (const Series& se : c.series)
    for (size_t i = 0; i < se.x.size() && i < se.y.size(); ++i)
      if (std::isfinite(se.x[i]) && std::isfinite(se.y[i])) xr.add(se.x[i]), yr.add(se.y[i]);
  for (const VLine& v : c.vlines) xr.add(v.x);
  xr.finish();
  yr.finish();
  const double xs = nice_step(xr.lo, xr.hi, 6), ys = nice_step(yr.lo, yr.hi, 5);
  const double xlo = std::floor(xr.lo / xs) * xs, xhi = std::ceil(xr.hi / xs) * xs;
  const double ylo = std::floor(yr.lo / ys) * ys, yhi = std::ceil(yr.hi / ys) * ys;
  const double pw = kW - kLeft - kRight, ph = kH - kTop - kBottom;
  auto X = [&](double v) { return kLeft + (v - xlo) / (xhi - xlo) * pw; };
  auto Y = [&](double v) { return y0 + kTop + ph - (v - ylo) / (yhi - ylo) * ph; };
  s += "<text x=\"" + num(kW / 2 - kRight / 2 + kLeft / 2) + "\" y=\"" + num(y0 + 20) +
       "\" text-anchor=\"middle\" font-size=\"15\">" + esc(c.title) + "</text>\n";
  s += "<rect x=\"" + num(kLeft) + "\" y=\"" + num(y0 + kTop) + "\" width=\"" + num(pw) + "\" height=\"" + num(ph) +
       "\" fill=\"none\" stroke=\"#444\"/>\n";
  for (double v = xlo; v <= xhi + xs * 1e-6; v += xs) {
    s += "<line x1=\"" + num(X(v)) + "\" x2=\"" + num(X(v)) + "\" y1=\"" + num(y0 + kTop) + "\" y2=\"" +
         num(y0 + kTop + ph) + "\" stroke=\"#ddd\"/>\n";
    s += "<text x=\"" + num(X(v)) + "\" y=\"" + num(y0 + kTop + ph + 16) + "\" text-anchor=\"middle\">" +
         tick_label(v, xs) + "</text>\n";
  }
  for (double v = ylo; v <= yhi + ys * 1e-6; v += ys) {
    s += "<line x1=\"" + num(kLeft) + "\" x2=\"" + num(kLeft + pw) + "\" y1=\"" + num(Y(v)) + "\" y2=\"" + num(Y(v)) +
         "\" stroke=\"#ddd\"/>\n";
    s += "<text x=\"" + num(kLeft - 6) + "\" y=\"" + num(Y(v) + 4) + "\" text-anchor=\"end\">" + tick_label(v, ys) +
         "</text>\n";
  }
  s += "<text x=\"" + num(kLeft + pw / 2) + "\" y=\"" + num(y0 + kH - 8) + "\" text-anchor=\"middle\">" +
       esc(c.xlabel) + "</text>\n";
  s += "<text transform=\"translate(16," + num(y0 + kTop + ph / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
       esc(c.ylabel) + "</text>\n";
  for (const VLine& v : c.vlines) {
    s += "<line x1=\"" + num(X(v.x)) + "\" x2=\"" + num(X(v.x)) + "\" y1=\"" + num(y0 + kTop) + "\" y2=\"" +
         num(y0 + kTop + ph) + "\" stroke=\"" + v.color + "\" stroke-dasharray=\"6,4\"/>\n";
    s += "<text x=\"" + num(X(v.x) + 4) + "\" y=\"" + num(y0 + kTop + 12) + "\" fill=\"" + v.color + "\">" +
         esc(v.label) + "</text>\n";
  }
  double legend_y = y0 + kTop + 10;
  for (const Series& se : c.series) {
    std::string pts;
    for (size_t i = 0; i < se.x.size() && i < se.y.size(); ++i) {
      if (!std::isfinite(se.x[i]) || !std::isfinite(se.y[i])) continue;
      pts += num(X(se.x[i])) + "," + num(Y(se.y[i])) + " ";
      if (se.points) {
        const std::string& col = i < se.point_colors.size() ? se.point_colors[i] : se.color;
        s += "<circle cx=\"" + num(X(se.x[i])) + "\" cy=\"" + num(Y(se.y[i])) + "\" r=\"3\" fill=\"" + col +
             "\" fill-opacity=\"0.8\"/>\n";
      }
    }
    if (se.line && !pts.empty())
      s += "<polyline points=\"" + pts + "\" fill=\"none\" stroke=\"" + se.color + "\" stroke-width=\"1.5\"/>\n";
    if (!se.label.empty()) {
      s += "<rect x=\"" + num(kW - kRight + 12) + "\" y=\"" + num(legend_y - 9) +
           "\" width=\"12\" height=\"10\" fill=\"" + se.color + "\"/>\n";
      s += "<text x=\"" + num(kW - kRight + 30) + "\" y=\"" + num(legend_y) + "\">" + esc(se.label) + "</text>\n";
      legend_y += 18;
    }
  }
}

}  // namespace

std::string render_svg(const std::vector<Chart>& charts) {
  const double height = kH * double(std::max<size_t>(1, charts.size()));
  std::string s =
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(kW) + "\" height=\"" + num(height) +
      "\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  for (size_t i = 0; i < charts.size(); ++i) render_chart(s, charts[i], kH * double(i));
  s += "</svg>\n";
  return s;
}

std::string ramp_color(double t) {
  t = std::min(1.0, std::max(0.0, std::isfinite(t) ? t : 0.0));
  const int r = int(std::lround(40 + 200 * t)), g = int(std::lround(90 + 40 * (1 - std::fabs(2 * t - 1)))),
            b = int(std::lround(220 - 190 * t));
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", r, g, b);
  return buf;
}

std::vector<size_t> pareto_front(const std::vector<double>& x, const std::vector<double>& y) {
  std::vector<size_t> idx(std::min(x.size(), y.size()));
  std::iota(idx.begin(), idx.end(), size_t(0));
  std::stable_sort(idx.begin(), idx.end(),
                   [&](size_t a, size_t b) { return x[a] < x[b] || (x[a] == x[b] && y[a] > y[b]); });
  std::vector<size_t> front;
  double best = -INFINITY;
  for (size_t i : idx)
    if (std::isfinite(y[i]) && y[i] > best) {
      front.push_back(i);
      best = y[i];
    }
  return front;
}

}  // namespace detnas::cli
