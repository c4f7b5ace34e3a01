#include "report/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>


namespace rankrl::report {

std::string escape_xml(std::string_view s) {
  std::string r;
  r.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': r += "&amp;"; break;
      case '<': r += "&lt;"; break;
      case '>': r += "&gt;"; break;
      case '"': r += "&quot;"; break;
      case '\'': r += "&#39;"; break;
      default: r += c;
    }
  }
  return r;
}

std::string num(double v, int prec) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}
std::string px(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}
namespace {

std::string tick_label(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", std::abs(v) < 1e-12 ? 0.0 : v);
  return buf;
}

}  // namespace

const std::vector<std::string> kPalette = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

namespace {

// "Nice" tick positions (1, 2, 5 × 10^k steps) covering [lo, hi].
std::vector<double> linear_ticks(double lo, double hi) {
  double span = hi - lo;
  if (!(span > 0)) return {lo};
  double raw = span / 5, mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag * (raw / mag < 1.5 ? 1 : raw / mag < 3.5 ? 2 : raw / mag < 7.5 ? 5 : 10);
  if (span >= 3) step = std::max(step, 1.0);  // no 2.5th episode
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) t.push_back(v);
  return t;
}

}  // namespace

std::string svg_open(const std::string& id, const Frame& f, const std::string& title) {
  std::ostringstream s;
  s << "<svg id=\"" << escape_xml(id) << "\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << px(f.width)
    << "\" height=\"" << px(f.height) << "\" viewBox=\"0 0 " << px(f.width) << " " << px(f.height)
    << "\" role=\"img\" aria-label=\"" << escape_xml(title) << "\">\n"
    << "<rect x=\"0\" y=\"0\" width=\"" << px(f.width) << "\" height=\"" << px(f.height) << "\" fill=\"#fff\"/>\n"
    << "<text class=\"title\" x=\"" << px(f.width / 2) << "\" y=\"20\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">"
    << escape_xml(title) << "</text>\n";
  return s.str();
}

namespace {

std::string axes(const Frame& f, const std::string& xlabel, const std::string& ylabel) {
  std::ostringstream s;
  double x0 = f.left, x1 = f.width - f.right, y0 = f.height - f.bottom, y1 = f.top;
  s << "<g class=\"axes\" font-size=\"11\" fill=\"#333\">\n";
  s << "<rect x=\"" << px(x0) << "\" y=\"" << px(y1) << "\" width=\"" << px(x1 - x0) << "\" height=\"" << px(y0 - y1)
    << "\" fill=\"none\" stroke=\"#999\"/>\n";
  for (double t : linear_ticks(f.x.lo, f.x.hi)) {
    double p = f.x(t);
    s << "<line x1=\"" << px(p) << "\" y1=\"" << px(y0) << "\" x2=\"" << px(p) << "\" y2=\"" << px(y0 + 5)
      << "\" stroke=\"#333\"/><line x1=\"" << px(p) << "\" y1=\"" << px(y0) << "\" x2=\"" << px(p) << "\" y2=\""
      << px(y1) << "\" stroke=\"#eee\"/><text class=\"xtick\" x=\"" << px(p) << "\" y=\"" << px(y0 + 17)
      << "\" text-anchor=\"middle\">" << tick_label(t) << "</text>\n";
  }
  std::vector<double> yt;
  if (f.y.log) {
    // Powers of ten inside the range; when fewer than two, add 2× and 5× multiples.
    for (int k = int(std::floor(f.y.lo)); k <= int(std::ceil(f.y.hi)); ++k)
      for (double m : {1.0, 2.0, 5.0}) {
        double v = m * std::pow(10.0, k), l = std::log10(v);
        if (l >= f.y.lo - 1e-9 && l <= f.y.hi + 1e-9 && (m == 1.0 || f.y.hi - f.y.lo < 2)) yt.push_back(v);
      }
  } else {
    yt = linear_ticks(f.y.lo, f.y.hi);
  }
  for (double t : yt) {
    double p = f.y(t);
    s << "<line x1=\"" << px(x0 - 5) << "\" y1=\"" << px(p) << "\" x2=\"" << px(x0) << "\" y2=\"" << px(p)
      << "\" stroke=\"#333\"/><line x1=\"" << px(x0) << "\" y1=\"" << px(p) << "\" x2=\"" << px(x1) << "\" y2=\""
      << px(p) << "\" stroke=\"#eee\"/><text class=\"ytick\" x=\"" << px(x0 - 8) << "\" y=\"" << px(p + 4)
      << "\" text-anchor=\"end\">" << tick_label(t) << "</text>\n";
  }
  s << "<text class=\"xlabel\" x=\"" << px((x0 + x1) / 2) << "\" y=\"" << px(f.height - 12)
    << "\" text-anchor=\"middle\" font-size=\"12\">" << escape_xml(xlabel) << "</text>\n";
  s << "<text class=\"ylabel\" transform=\"translate(16," << px((y0 + y1) / 2)
    << ") rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">" << escape_xml(ylabel) << "</text>\n";
  s << "</g>\n";
  return s.str();
}

}  // namespace

std::string legend_entry(const Frame& f, int i, const std::string& name, const std::string& color, bool dashed,
                         bool dot) {
  std::ostringstream s;
  double x = f.width - f.right + 12, y = f.top + 8 + 18 * i;
  if (dot)
    s << "<circle cx=\"" << px(x + 10) << "\" cy=\"" << px(y) << "\" r=\"4\" fill=\"" << color << "\"/>";
  else
    s << "<line x1=\"" << px(x) << "\" y1=\"" << px(y) << "\" x2=\"" << px(x + 20) << "\" y2=\"" << px(y)
      << "\" stroke=\"" << color << "\" stroke-width=\"2\"" << (dashed ? " stroke-dasharray=\"5,3\"" : "") << "/>";
  s << "<text x=\"" << px(x + 26) << "\" y=\"" << px(y + 4) << "\" font-size=\"11\">" << escape_xml(name)
    << "</text>\n";
  return s.str();
}


double Scale::operator()(double v) const {
  double t = log ? std::log10(std::max(v, 1e-300)) : v;
  return p0 + (t - lo) / (hi - lo) * (p1 - p0);
}

Frame make_frame(double xlo, double xhi, double ylo, double yhi, bool log_y) {
  auto pad = [](double& lo, double& hi) {
    if (!(hi > lo)) {
      double w = lo == 0 ? 0.5 : std::abs(lo) * 0.1;
      lo -= w, hi += w;
    } else {
      double w = (hi - lo) * 0.05;
      lo -= w, hi += w;
    }
  };
  Frame f;
  if (log_y) ylo = std::log10(ylo), yhi = std::log10(yhi);
  pad(xlo, xhi);
  pad(ylo, yhi);
  f.x = {xlo, xhi, f.left, f.width - f.right, false};
  f.y = {ylo, yhi, f.height - f.bottom, f.top, log_y};
  return f;
}

std::string line_chart(const std::string& id, const std::string& title, const std::string& xlabel,
                       const std::string& ylabel, const std::vector<Series>& series, bool log_y) {
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  for (const Series& s : series)
    for (const Point& p : s.points) {
      if (!std::isfinite(p.y) || (log_y && p.y <= 0)) continue;
      xlo = std::min(xlo, p.x), xhi = std::max(xhi, p.x), ylo = std::min(ylo, p.y), yhi = std::max(yhi, p.y);
    }
  if (!std::isfinite(xlo)) xlo = 0, xhi = 1, ylo = log_y ? 0.1 : 0, yhi = 1;
  Frame f = make_frame(xlo, xhi, ylo, yhi, log_y);
  std::ostringstream s;
  s << svg_open(id, f, title) << axes(f, xlabel, ylabel);
  int i = 0;
  for (const Series& se : series) {
    s << "<polyline class=\"series\" data-name=\"" << escape_xml(se.name) << "\" fill=\"none\" stroke=\"" << se.color
      << "\" stroke-width=\"" << px(se.width) << "\"" << (se.dashed ? " stroke-dasharray=\"5,3\"" : "") << " points=\"";
    for (const Point& p : se.points)
      if (std::isfinite(p.y) && !(log_y && p.y <= 0)) s << px(f.x(p.x)) << "," << px(f.y(p.y)) << " ";
    s << "\"/>\n" << legend_entry(f, i++, se.name, se.color, se.dashed, false);
  }
  s << "</svg>\n";
  return s.str();
}

std::vector<size_t> pareto_front(const std::vector<LabeledPoint>& pts) {
  std::vector<size_t> front;
  for (size_t i = 0; i < pts.size(); ++i) {
    bool dominated = false;
    for (size_t j = 0; j < pts.size() && !dominated; ++j)
      dominated = j != i && pts[j].x <= pts[i].x && pts[j].y <= pts[i].y && (pts[j].x < pts[i].x || pts[j].y < pts[i].y);
    if (!dominated) front.push_back(i);
  }
  std::sort(front.begin(), front.end(), [&](size_t a, size_t b) { return pts[a].x < pts[b].x; });
  return front;
}

std::string scatter_chart(const std::string& id, const std::string& title, const std::string& xlabel,
                          const std::string& ylabel, const std::vector<LabeledPoint>& pts, bool labels) {
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  for (const LabeledPoint& p : pts)
    xlo = std::min(xlo, p.x), xhi = std::max(xhi, p.x), ylo = std::min(ylo, p.y), yhi = std::max(yhi, p.y);
  if (pts.empty()) xlo = 0, xhi = 1, ylo = 0, yhi = 1;
  Frame f = make_frame(xlo, xhi, ylo, yhi);
  std::vector<size_t> front = pareto_front(pts);
  std::set<size_t> on_front(front.begin(), front.end());
  std::ostringstream s;
  s << svg_open(id, f, title) << axes(f, xlabel, ylabel);
  s << "<polyline class=\"front\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\" stroke-dasharray=\"6,3\" points=\"";
  for (size_t i : front) s << px(f.x(pts[i].x)) << "," << px(f.y(pts[i].y)) << " ";
  s << "\"/>\n";
  for (size_t i = 0; i < pts.size(); ++i) {
    const LabeledPoint& p = pts[i];
    bool fr = on_front.count(i);
    const std::string& color = p.color.empty() ? kPalette[i % kPalette.size()] : p.color;
    s << "<circle class=\"pt" << (fr ? " front" : "") << "\" data-label=\"" << escape_xml(p.label) << "\" cx=\""
      << px(f.x(p.x)) << "\" cy=\"" << px(f.y(p.y)) << "\" r=\"" << (fr ? 6 : 4.5) << "\" fill=\"" << color
      << "\"" << (fr ? " stroke=\"#d62728\" stroke-width=\"2\"" : "") << "><title>" << escape_xml(p.label) << ": x="
      << num(p.x) << ", y=" << num(p.y) << "</title></circle>\n";
    if (labels)
      s << "<text class=\"ptlabel\" x=\"" << px(f.x(p.x) + 8) << "\" y=\"" << px(f.y(p.y) + 4) << "\" font-size=\"10\">"
        << escape_xml(p.label) << "</text>\n";
    s << legend_entry(f, int(i), p.label + (fr ? " (front)" : ""), color, false, true);
  }
  s << legend_entry(f, int(pts.size()), "Pareto front", "#d62728", true, false);
  s << "</svg>\n";
  return s.str();
}

}  // namespace rankrl::report
