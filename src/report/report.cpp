#include "report/report.h"

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

#include "core/error.h"
#include "core/fs.h"
#include "eval/bootstrap.h"
#include "io/safetensors.h"

namespace rankrl::report {

namespace fs = std::filesystem;
using nlohmann::json;

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

namespace {

std::string num(double v, int prec = 4) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}
// Pixel coordinates: two decimals are plenty and keep the SVG small.
std::string px(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}
std::string tick_label(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", std::abs(v) < 1e-12 ? 0.0 : v);
  return buf;
}

const std::vector<std::string> kPalette = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

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

}  // namespace

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

WeightSlot parse_weight_name(const std::string& name) {
  std::string n = name;
  if (n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0) n.resize(n.size() - 7);
  // The first all-digit dotted component is the layer; the type is what follows it.
  size_t start = 0;
  while (start < n.size()) {
    size_t end = n.find('.', start);
    if (end == std::string::npos) end = n.size();
    std::string part = n.substr(start, end - start);
    if (!part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        part.size() < 7 && end < n.size())
      return {std::stoi(part), n.substr(end + 1)};
    start = end + 1;
  }
  return {-1, n};
}

std::string method_letter(const std::string& method) {
  std::string base = method.substr(0, method.find(':'));
  static const std::map<std::string, std::string> letters = {
      {"dense", "D"}, {"svd", "S"}, {"asvd", "A"}, {"svdllm", "L"}, {"fwsvd", "F"}, {"cur", "C"}, {"nmf", "N"}, {"rsvd", "R"}};
  auto it = letters.find(base);
  if (it != letters.end()) return it->second;
  return base.empty() ? "?" : std::string(1, char(std::toupper(static_cast<unsigned char>(base[0]))));
}

std::string method_color(const std::string& method) {
  std::string base = method.substr(0, method.find(':'));
  static const std::map<std::string, std::string> colors = {
      {"dense", "#555555"}, {"svd", "#1f77b4"}, {"asvd", "#ff7f0e"}, {"svdllm", "#2ca02c"},
      {"fwsvd", "#d62728"}, {"cur", "#9467bd"}, {"nmf", "#8c564b"}, {"rsvd", "#e377c2"}};
  auto it = colors.find(base);
  if (it != colors.end()) return it->second;
  size_t h = std::hash<std::string>{}(base);
  return kPalette[h % kPalette.size()];
}

std::string cell_fill(const std::string& method, double rank_frac) {
  std::string c = method_color(method);
  if (method == "dense") return c;
  double t = 0.2 + 0.8 * std::clamp(rank_frac < 0 ? 0.5 : rank_frac, 0.0, 1.0);
  char out[8];
  int rgb[3];
  for (int k = 0; k < 3; ++k) {
    int v = std::stoi(c.substr(1 + 2 * k, 2), nullptr, 16);
    rgb[k] = int(std::lround(255 * (1 - t) + v * t));
  }
  std::snprintf(out, sizeof out, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
  return out;
}

std::string heat_map(const std::string& id, const std::string& title, const std::vector<HeatCell>& cells) {
  std::vector<int> layers;
  std::vector<std::string> types;
  std::vector<std::string> methods;
  for (const HeatCell& c : cells) {
    WeightSlot s = parse_weight_name(c.weight);
    if (std::find(layers.begin(), layers.end(), s.layer) == layers.end()) layers.push_back(s.layer);
    if (std::find(types.begin(), types.end(), s.type) == types.end()) types.push_back(s.type);
    if (std::find(methods.begin(), methods.end(), c.method) == methods.end()) methods.push_back(c.method);
  }
  std::sort(layers.begin(), layers.end());
  std::sort(methods.begin(), methods.end());
  const double cw = 84, ch = 26, left = 70, top = 96, legend_w = 200;
  Frame f;
  f.width = std::max(420.0, left + cw * types.size() + legend_w);
  f.height = top + ch * layers.size() + 30;
  std::ostringstream s;
  s << svg_open(id, f, title);
  s << "<g font-size=\"10\">\n";
  for (size_t t = 0; t < types.size(); ++t)
    s << "<text class=\"coltype\" transform=\"translate(" << px(left + cw * t + cw / 2) << "," << px(top - 6)
      << ") rotate(-30)\" font-size=\"10\">" << escape_xml(types[t]) << "</text>\n";
  for (size_t l = 0; l < layers.size(); ++l)
    s << "<text class=\"rowlayer\" x=\"" << px(left - 8) << "\" y=\"" << px(top + ch * l + ch / 2 + 4)
      << "\" text-anchor=\"end\" font-size=\"11\">" << (layers[l] < 0 ? std::string("-") : "layer " + std::to_string(layers[l]))
      << "</text>\n";
  for (const HeatCell& c : cells) {
    WeightSlot sl = parse_weight_name(c.weight);
    size_t l = std::find(layers.begin(), layers.end(), sl.layer) - layers.begin();
    size_t t = std::find(types.begin(), types.end(), sl.type) - types.begin();
    double x = left + cw * t, y = top + ch * l;
    std::string fill = cell_fill(c.method, c.rank_frac);
    bool dark = c.method == "dense" || c.rank_frac > 0.55;
    s << "<rect class=\"cell\" data-weight=\"" << escape_xml(c.weight) << "\" data-method=\"" << escape_xml(c.method)
      << "\" x=\"" << px(x) << "\" y=\"" << px(y) << "\" width=\"" << px(cw - 2) << "\" height=\"" << px(ch - 2)
      << "\" fill=\"" << fill << "\"><title>" << escape_xml(c.weight) << ": " << escape_xml(c.method);
    if (c.method != "dense") s << " rank " << c.rank << (c.rank_frac >= 0 ? " (" + num(c.rank_frac, 3) + ")" : "");
    s << "</title></rect><text x=\"" << px(x + (cw - 2) / 2) << "\" y=\"" << px(y + ch / 2 + 3)
      << "\" text-anchor=\"middle\" fill=\"" << (dark ? "#fff" : "#000") << "\" font-size=\"11\">"
      << method_letter(c.method);
    if (c.method != "dense") s << " " << (c.rank_frac >= 0 ? num(c.rank_frac, 2) : "r" + std::to_string(c.rank));
    s << "</text>\n";
  }
  double lx = left + cw * types.size() + 20;
  s << "<text x=\"" << px(lx) << "\" y=\"" << px(top - 24) << "\" font-size=\"11\" font-weight=\"bold\">method (letter)</text>"
    << "<text x=\"" << px(lx) << "\" y=\"" << px(top - 10) << "\" font-size=\"10\">paler = smaller rank fraction</text>\n";
  for (size_t m = 0; m < methods.size(); ++m) {
    double y = top + 20 * m;
    s << "<rect class=\"legend\" x=\"" << px(lx) << "\" y=\"" << px(y) << "\" width=\"16\" height=\"14\" fill=\""
      << method_color(methods[m]) << "\"/><text x=\"" << px(lx + 22) << "\" y=\"" << px(y + 11) << "\" font-size=\"11\">"
      << method_letter(methods[m]) << " = " << escape_xml(methods[m]) << "</text>\n";
  }
  s << "</g>\n</svg>\n";
  return s.str();
}

// --- reading OUT ----------------------------------------------------------------------------

namespace {

json read_json_file(const std::string& path) {
  json j = json::parse(read_file(path), nullptr, false);
  check(!j.is_discarded(), path, "not valid JSON");
  check(j.is_object(), path, "not a JSON object");
  return j;
}

struct LogEntry {
  std::string approach;
  double reward = 0, best = 0;
  bool probe = false;
  bool surrogate = false;  // an agent's training episode on the surrogate (−KL), not an RkD reward
};

std::vector<LogEntry> read_log(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<LogEntry> log;
  int64_t n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    if (line.empty()) continue;
    std::string where = "line " + std::to_string(n) + ": ";
    json j = json::parse(line, nullptr, false);
    check(!j.is_discarded() && j.is_object(), path, where + "not a JSON object");
    check(j.contains("approach") && j["approach"].is_string(), path, where + "missing 'approach'");
    LogEntry e;
    e.surrogate = j.contains("surrogate") && !j.contains("reward");
    const char* key = e.surrogate ? "surrogate" : "reward";
    check(j.contains(key) && j[key].is_number(), path, where + "missing numeric '" + key + "'");
    e.approach = j["approach"];
    e.reward = j[key];
    e.best = j.contains("best") && j["best"].is_number() ? j["best"].get<double>() : e.reward;
    e.probe = j.contains("probe_weight");
    log.push_back(e);
  }
  return log;
}

// σ_i / σ_0 from a tail_error vector: σ_i² = tail[i] − tail[i+1].
std::vector<Point> spectrum(const std::vector<double>& tail) {
  std::vector<double> sig;
  for (size_t i = 0; i + 1 < tail.size(); ++i) sig.push_back(std::sqrt(std::max(0.0, tail[i] - tail[i + 1])));
  std::vector<Point> pts;
  if (sig.empty() || !(sig[0] > 0)) return pts;
  for (size_t i = 0; i < sig.size(); ++i)
    if (sig[i] / sig[0] > 1e-12) pts.push_back({double(i + 1), sig[i] / sig[0]});
  return pts;
}

struct FactorInfo {
  std::map<std::string, int64_t> full_rank;  // weight → min(m, n)
  std::vector<std::pair<std::string, std::vector<double>>> svd_tails;
};

FactorInfo read_factor_store(const std::string& out) {
  FactorInfo info;
  if (!is_directory(out)) return info;
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(out)) {
    std::string n = e.path().filename().string();
    if (n.rfind("factors-", 0) == 0 && n.size() > 20 && n.compare(n.size() - 12, 12, ".safetensors") == 0)
      files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  for (const std::string& path : files) {
    SafetensorsFile f = SafetensorsFile::open(path);
    auto it = f.header().metadata.find("entries");
    check(it != f.header().metadata.end(), path, "not a rankrl factor store (no 'entries' metadata)");
    json entries = json::parse(it->second, nullptr, false);
    check(entries.is_array(), path, "corrupt 'entries' metadata");
    for (size_t i = 0; i < entries.size(); ++i) {
      const json& e = entries[i];
      check(e.is_object() && e.contains("weight") && e["weight"].is_string() && e.contains("spec") && e["spec"].is_string(),
            path, "entry " + std::to_string(i) + " lacks weight/spec");
      const TensorInfo* t = f.find(std::to_string(i) + ".tail");
      if (!t) continue;
      check(t->dtype == DType::F64, path, "tensor " + quote_name(t->name) + " is not F64");
      std::vector<double> tail(size_t(t->numel()));
      std::memcpy(tail.data(), f.data(*t), tail.size() * sizeof(double));
      std::string w = e["weight"];
      if (!tail.empty()) info.full_rank[w] = int64_t(tail.size()) - 1;
      if (e["spec"] == "svd") info.svd_tails.emplace_back(w, std::move(tail));
    }
  }
  return info;
}

double getd(const json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : NAN;
}
std::string metric(const json& row, const char* split, const char* key, int prec = 4) {
  if (!row.contains(split) || !row[split].is_object()) return "-";
  double v = getd(row[split], key);
  return std::isfinite(v) ? num(v, prec) : "-";
}
std::string intstr(const json& row, const char* key) {
  return row.contains(key) && row[key].is_number() ? std::to_string(row[key].get<int64_t>()) : "-";
}

bool has_interval(const json& d) {
  return d.is_object() && d.contains("diff") && d.contains("lo") && d.contains("hi") && d["diff"].is_number() &&
         d["lo"].is_number() && d["hi"].is_number();
}
std::string signed_num(double v, int prec) {
  std::string s = num(v, prec);
  if (s[0] == '-' && s.substr(1) == num(0.0, prec)) s = s.substr(1);  // no "-0.000"
  return s[0] == '-' ? s : "+" + s;
}
// better / worse / no significant difference, by the same rule as the search (eval/bootstrap.h).
std::string verdict_of(const json& d) {
  return verdict(Interval{d["diff"].get<double>(), d["lo"].get<double>(), d["hi"].get<double>()});
}
// One comparison of an approach (`row`: vs_dense or vs_best_uniform) for one metric, or null.
json comparison(const json& row, const char* vs, const char* metric) {
  if (!row.is_object() || !row.contains(vs) || !row[vs].is_object() || !row[vs].contains(metric)) return nullptr;
  return has_interval(row[vs][metric]) ? row[vs][metric] : json(nullptr);
}

struct Table {
  std::vector<std::string> head;
  std::vector<std::vector<std::string>> rows;
};

std::string html_table(const Table& t, const std::string& id) {
  std::ostringstream s;
  s << "<table id=\"" << id << "\"><thead><tr>";
  for (const auto& h : t.head) s << "<th>" << escape_xml(h) << "</th>";
  s << "</tr></thead><tbody>\n";
  for (const auto& r : t.rows) {
    s << "<tr>";
    for (const auto& c : r) s << "<td>" << escape_xml(c) << "</td>";
    s << "</tr>\n";
  }
  s << "</tbody></table>\n";
  return s.str();
}

std::string md_cell(std::string c) {
  std::string r;
  for (char ch : c) {
    if (ch == '|') r += "\\|";
    else if (ch == '\n') r += ' ';
    else r += ch;
  }
  return r;
}
std::string md_table(const Table& t) {
  std::ostringstream s;
  s << "|";
  for (const auto& h : t.head) s << " " << md_cell(h) << " |";
  s << "\n|";
  for (size_t i = 0; i < t.head.size(); ++i) s << (i == 0 ? " --- |" : " ---: |");
  s << "\n";
  for (const auto& r : t.rows) {
    s << "|";
    for (const auto& c : r) s << " " << md_cell(c) << " |";
    s << "\n";
  }
  return s.str();
}

Table results_table(const json& res) {
  Table t;
  t.head = {"approach", "evals", "seconds", "keep", "rkd margin", "rkd acc", "rkd acc_norm", "vrkd margin", "vrkd acc",
            "vrkd acc_norm", "test margin", "test acc", "test acc_norm", "held-out ppl", "linear params",
            "total params", "bytes"};
  auto row = [&](const std::string& name, const json& r, bool dense) {
    std::vector<std::string> c = {name, dense ? "-" : intstr(r, "evaluations"),
                                  dense ? "-" : num(getd(r, "seconds"), 1),
                                  dense ? "1" : num(getd(r, "keep_actual"), 4)};
    for (const char* split : {"rkd", "vrkd", "test"})
      for (const char* k : {"margin", "acc", "acc_norm"}) c.push_back(metric(r, split, k));
    double ppl = getd(r, "heldout_ppl");
    c.push_back(std::isfinite(ppl) ? num(ppl, 3) : "-");
    c.push_back(intstr(r, "linear_parameters"));
    c.push_back(intstr(r, "total_parameters"));
    c.push_back(intstr(r, "total_bytes"));
    t.rows.push_back(c);
  };
  if (res.contains("dense") && res["dense"].is_object()) row("dense", res["dense"], true);
  std::string chosen = res.value("chosen", "");
  for (const json& a : res["approaches"]) row(a.value("name", "?") + (a.value("name", "") == chosen ? " (chosen)" : ""), a, false);
  return t;
}

// Test differences with their paired bootstrap intervals; no rows when results.json has none.
Table differences_table(const json& res) {
  Table t;
  const json& boot = res.contains("bootstrap") && res["bootstrap"].is_object() ? res["bootstrap"] : json::object();
  const std::string uniform = boot.value("best_uniform", std::string("best uniform"));
  t.head = {"approach", "test margin - dense", "test acc - dense", "test margin - " + uniform, "test acc - " + uniform};
  auto row = [&](const std::string& name, const json& r) {
    std::vector<std::string> c = {name};
    bool any = false;
    for (const char* vs : {"vs_dense", "vs_best_uniform"})
      for (const char* metric : {"margin", "acc"}) {
        json d = comparison(r, vs, metric);
        any = any || !d.is_null();
        const std::string word = d.is_null() ? "" : verdict_of(d) == "no significant difference" ? "n.s." : verdict_of(d);
        c.push_back(d.is_null() ? "-" : interval_text(d) + " " + word);
      }
    if (any) t.rows.push_back(c);
  };
  if (res.contains("dense")) row("dense", res["dense"]);
  std::string chosen = res.value("chosen", "");
  for (const json& a : res["approaches"]) row(a.value("name", "?") + (a.value("name", "") == chosen ? " (chosen)" : ""), a);
  return t;
}

Table meta_table(const json& res, const json& plan) {
  Table t;
  t.head = {"field", "value"};
  auto str = [](const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
  for (const char* k : {"command", "rankrl_version", "libtorch_version", "seed", "threads", "model", "keep", "methods",
                        "selects", "agents", "episodes", "reward", "splits", "heldout_tokens", "chosen", "bootstrap"})
    if (res.contains(k)) t.rows.push_back({k, str(res[k])});
  if (plan.is_object() && plan.contains("model_identity")) t.rows.push_back({"model_identity", str(plan["model_identity"])});
  if (plan.is_object() && plan.contains("seed")) t.rows.push_back({"plan seed", str(plan["seed"])});
  if (res.contains("timing") && res["timing"].is_object())
    for (const auto& [k, v] : res["timing"].items()) t.rows.push_back({"timing." + k, str(v)});
  return t;
}

const char* kStyle =
    "body{font-family:sans-serif;margin:24px;color:#222;max-width:1240px}"
    "h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}"
    "figure{margin:12px 0}figcaption{font-size:12px;color:#555;max-width:720px}"
    "code{background:#f3f3f3;padding:2px 4px;word-break:break-all}.note{color:#777;font-size:13px}"
    "#run-table td{text-align:left;word-break:break-all}";

}  // namespace

std::string interval_text(const json& d, int prec) {
  if (!has_interval(d)) return "-";
  return signed_num(d["diff"].get<double>(), prec) + " [" + signed_num(d["lo"].get<double>(), prec) + ", " +
         signed_num(d["hi"].get<double>(), prec) + "]";
}

std::string choice_summary(const json& res) {
  if (!res.is_object() || !res.contains("approaches") || !res["approaches"].is_array()) return "";
  const std::string chosen = res.value("chosen", "");
  const json* row = nullptr;
  for (const json& a : res["approaches"])
    if (a.is_object() && a.value("name", "") == chosen) row = &a;
  if (!row || comparison(*row, "vs_dense", "margin").is_null()) return "";
  const json boot = res.value("bootstrap", json::object()), reward = res.value("reward", json::object());
  const bool acc = reward.value("kind", "") == "acc";
  std::ostringstream s;
  s << "chosen: " << chosen << " (best VRkD " << (acc ? "acc" : "margin") << "); on test, "
    << int(std::lround(100 * boot.value("level", 0.95))) << "% paired bootstrap intervals over "
    << res.value("splits", json::object()).value("test", 0) << " items";
  const std::string uniform = boot.value("best_uniform", std::string("?"));
  for (const char* vs : {"vs_dense", "vs_best_uniform"}) {
    const bool dense = std::string(vs) == "vs_dense";
    s << (dense ? ": vs dense" : "; vs best uniform " + uniform + (uniform == chosen ? " (itself)" : ""));
    for (const char* metric : {"margin", "acc"}) {
      json d = comparison(*row, vs, metric);
      if (d.is_null()) continue;
      s << (metric[0] == 'm' ? " " : ", ") << metric << " " << interval_text(d) << " " << verdict_of(d);
    }
  }
  return s.str();
}

namespace {
Rendered render_unchecked(const std::string& out);
}

// Unexpected value types deep in results.json surface as one Error naming the file.
Rendered render_report(const std::string& out) {
  try {
    return render_unchecked(out);
  } catch (const nlohmann::json::exception& e) {
    throw Error(out + "/results.json", std::string("unexpected content: ") + e.what());
  }
}

namespace {
Rendered render_unchecked(const std::string& out) {
  const std::string rpath = out + "/results.json", lpath = out + "/log.jsonl";
  json res = read_json_file(rpath);
  check(res.contains("approaches") && res["approaches"].is_array(), rpath, "missing 'approaches' list");
  for (const json& a : res["approaches"])
    check(a.is_object() && a.contains("name") && a["name"].is_string(), rpath, "an approach has no 'name'");
  std::vector<LogEntry> log = read_log(lpath);
  json plan;
  if (file_exists(out + "/plan.json")) plan = read_json_file(out + "/plan.json");
  FactorInfo factors = read_factor_store(out);

  Rendered r;
  std::ostringstream body;
  // Reward and best-so-far per episode: the agents and the random/evolution baselines.
  std::vector<std::string> curve_names;
  for (const LogEntry& e : log)
    if (!e.probe && std::find(curve_names.begin(), curve_names.end(), e.approach) == curve_names.end()) {
      bool agent = res.contains("agents") && res["agents"].is_array() &&
                   std::find(res["agents"].begin(), res["agents"].end(), e.approach) != res["agents"].end();
      if (agent || e.approach == "random" || e.approach == "evolution" || e.approach == "evolution-kl") curve_names.push_back(e.approach);
    }
  // One colour per approach in every chart: dense first, then results.json's order.
  std::map<std::string, std::string> colour = {{"dense", kPalette[0]}};
  for (const json& a : res["approaches"]) colour.emplace(a["name"].get<std::string>(), kPalette[colour.size() % kPalette.size()]);
  for (const std::string& n : curve_names) colour.emplace(n, kPalette[colour.size() % kPalette.size()]);
  std::vector<Series> reward, best, surrogate;
  for (size_t i = 0; i < curve_names.size(); ++i) {
    Series g{curve_names[i], {}, colour[curve_names[i]], false, 1.2};
    for (const LogEntry& e : log)
      if (e.approach == curve_names[i] && e.surrogate) g.points.push_back({double(g.points.size() + 1), e.reward});
    if (!g.points.empty()) surrogate.push_back(g);
  }
  for (size_t i = 0; i < curve_names.size(); ++i) {
    Series s{curve_names[i], {}, colour[curve_names[i]], false, 1.2};
    Series b{curve_names[i], {}, s.color, curve_names[i] == "random" || curve_names[i] == "evolution", 2.0};
    double run = -INFINITY;
    for (const LogEntry& e : log)
      if (e.approach == curve_names[i] && !e.probe && !e.surrogate) {
        double x = double(s.points.size() + 1);
        s.points.push_back({x, e.reward});
        run = std::max(run, e.reward);
        b.points.push_back({x, run});
      }
    reward.push_back(s), best.push_back(b);
  }
  body << "<h2>Search curves</h2>\n";
  if (reward.empty()) {
    body << "<p class=\"note\">log.jsonl has no agent, random or evolution evaluations.</p>\n";
  } else {
    body << "<figure>" << line_chart("chart-reward", "Reward per episode", "episode (evaluation)", "reward", reward)
         << "<figcaption>Training reward of every evaluated plan, in order (agents: one episode each; "
            "random/evolution: one candidate each).</figcaption></figure>\n";
    body << "<figure>" << line_chart("chart-best", "Best reward so far", "episode (evaluation)", "best reward", best)
         << "<figcaption>Running maximum of the reward (dashed: random and evolution baselines).</figcaption></figure>\n";
    r.charts.push_back("chart-reward");
    r.charts.push_back("chart-best");
  }
  if (!surrogate.empty()) {
    body << "<figure>" << line_chart("chart-surrogate", "Agent training reward (surrogate)", "episode", "-KL(dense || plan)", surrogate)
         << "<figcaption>The agents' training reward per episode: minus the KL divergence from the dense model on the "
            "calibration text (nats/token). Their best plans by this reward are then scored on RkD (the curves above).</figcaption></figure>\n";
    r.charts.push_back("chart-surrogate");
  }
  // Quality vs size.
  std::vector<LabeledPoint> qs;
  double dense_margin = res.contains("dense") ? getd(res["dense"].value("test", json::object()), "margin") : NAN;
  if (std::isfinite(dense_margin)) {
    qs.push_back({"dense", 1.0, 0.0, colour["dense"]});
    for (const json& a : res["approaches"]) {
      double k = getd(a, "keep_actual"), m = a.contains("test") ? getd(a["test"], "margin") : NAN;
      if (std::isfinite(k) && std::isfinite(m)) qs.push_back({a["name"], k, dense_margin - m, colour[a["name"].get<std::string>()]});
    }
  }
  body << "<h2>Quality vs size</h2>\n";
  if (qs.size() > 1) {
    body << "<figure>"
         << scatter_chart("chart-pareto", "Test margin drop vs kept linear parameters",
                          "kept fraction of linear-weight parameters", "test margin drop vs dense (lower is better)", qs)
         << "<figcaption>One point per approach plus dense; the dashed red line joins the Pareto front "
            "(no other point is both smaller and better).</figcaption></figure>\n";
    r.charts.push_back("chart-pareto");
    // Every approach sits near the budget, far from dense at 1: the same without dense, zoomed in.
    std::vector<LabeledPoint> approaches(qs.begin() + 1, qs.end());
    body << "<figure>"
         << scatter_chart("chart-pareto-zoom", "Approaches only (zoomed)", "kept fraction of linear-weight parameters",
                          "test margin drop vs dense (lower is better)", approaches, true)
         << "<figcaption>The approaches without dense; Pareto front among them.</figcaption></figure>\n";
    r.charts.push_back("chart-pareto-zoom");
  } else {
    body << "<p class=\"note\">No test margins in results.json.</p>\n";
  }
  // Heat map of the chosen plan.
  body << "<h2>Chosen plan</h2>\n";
  if (plan.is_object() && plan.contains("weights") && plan["weights"].is_object() && !plan["weights"].empty()) {
    std::vector<HeatCell> cells;
    for (const auto& [w, d] : plan["weights"].items()) {
      HeatCell c;
      c.weight = w;
      c.method = d.is_object() ? d.value("method", "dense") : "dense";
      c.rank = d.is_object() && d.contains("rank") && d["rank"].is_number() ? d["rank"].get<int64_t>() : 0;
      auto it = factors.full_rank.find(w);
      c.rank_frac = c.method == "dense" ? 1.0 : it != factors.full_rank.end() && it->second > 0 ? double(c.rank) / it->second : -1;
      cells.push_back(c);
    }
    body << "<figure>" << heat_map("chart-plan", "Chosen plan (" + res.value("chosen", std::string("?")) + "): method and rank fraction", cells)
         << "<figcaption>Rows: layers; columns: weight types. Letter: method; number: rank / min(m, n).</figcaption></figure>\n";
    r.charts.push_back("chart-plan");
  } else {
    body << "<p class=\"note\">No plan.json in OUT.</p>\n";
  }
  // Singular-value spectra of a few weights: the first weight of each type in the first layer.
  body << "<h2>Singular-value spectra</h2>\n";
  std::vector<Series> spectra;
  std::set<std::string> seen_types;
  std::vector<std::pair<std::string, std::vector<double>>> tails = factors.svd_tails;
  std::sort(tails.begin(), tails.end(), [](const auto& a, const auto& b) {
    WeightSlot x = parse_weight_name(a.first), y = parse_weight_name(b.first);
    return std::tie(x.layer, a.first) < std::tie(y.layer, b.first);
  });
  for (const auto& [w, tail] : tails) {
    if (spectra.size() >= 4) break;
    if (!seen_types.insert(parse_weight_name(w).type).second) continue;
    std::vector<Point> pts = spectrum(tail);
    if (pts.empty()) continue;
    WeightSlot slot = parse_weight_name(w);
    std::string label = slot.layer >= 0 ? "layer " + std::to_string(slot.layer) + " " + slot.type : slot.type;
    spectra.push_back({label, pts, kPalette[spectra.size() % kPalette.size()], false, 1.5});
  }
  if (!spectra.empty()) {
    body << "<figure>" << line_chart("chart-spectra", "Normalised singular values", "index i", "σ_i / σ_1 (log scale)", spectra, true)
         << "<figcaption>From the factor store's svd entries (σ_i² = tail[i] − tail[i+1]).</figcaption></figure>\n";
    r.charts.push_back("chart-spectra");
  } else {
    body << "<p class=\"note\">No svd entries in a factor store in OUT: spectra skipped.</p>\n";
  }
  Table results = results_table(res), meta = meta_table(res, plan), diffs = differences_table(res);
  const std::string summary = choice_summary(res);
  body << "<h2>Results</h2>\n" << html_table(results, "results-table");
  const std::string diffs_note =
      "Differences on the test split (approach minus reference; margin in nats, acc as a fraction) with paired "
      "bootstrap 95% intervals over the test items, the same resampled items for every approach. "
      "\"better\"/\"worse\" only when the interval excludes 0; n.s. = no significant difference. The best uniform "
      "plan is the uniform:<method> approach with the best VRkD margin (acc with --reward acc), not the best on test.";
  if (!diffs.rows.empty())
    body << "<h2>Differences (paired bootstrap 95% intervals)</h2>\n<p class=\"note\">" << escape_xml(diffs_note)
         << "</p>\n" << html_table(diffs, "diff-table");
  body << "<h2>Run</h2>\n" << html_table(meta, "run-table");

  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><link rel=\"icon\" href=\"data:,\">"
       << "<title>rankrl report: " << escape_xml(res.value("model", std::string(""))) << "</title><style>" << kStyle
       << "</style></head><body>\n<h1>rankrl search report</h1>\n<p>Model <code>"
       << escape_xml(res.value("model", std::string("?"))) << "</code>, keep " << escape_xml(res.contains("keep") ? res["keep"].dump() : "?")
       << ", seed " << escape_xml(res.contains("seed") ? res["seed"].dump() : "?") << "; chosen approach <b>"
       << escape_xml(res.value("chosen", std::string("?"))) << "</b>.</p>\n"
       << (summary.empty() ? "" : "<p id=\"choice-summary\">" + escape_xml(summary) + ".</p>\n") << "<p>Command: <code>"
       << escape_xml(res.value("command", std::string(""))) << "</code></p>\n"
       << body.str() << "</body></html>\n";
  r.html = html.str();
  std::ostringstream md;
  md << "# rankrl search report\n\nModel `" << res.value("model", std::string("?")) << "`, chosen approach **"
     << res.value("chosen", std::string("?")) << "**.\n\n" << (summary.empty() ? "" : summary + ".\n\n")
     << "Command:\n\n```\n" << res.value("command", std::string(""))
     << "\n```\n\n## Results\n\n" << md_table(results);
  if (!diffs.rows.empty())
    md << "\n## Differences (paired bootstrap 95% intervals)\n\n" << diffs_note << "\n\n" << md_table(diffs);
  md << "\n## Run\n\n" << md_table(meta);
  r.md = md.str();
  return r;
}
}  // namespace

json write_report(const std::string& out) {
  Rendered r = render_report(out);
  write_file_atomic(out + "/report.html", r.html);
  write_file_atomic(out + "/report.md", r.md);
  return {{"html", out + "/report.html"}, {"md", out + "/report.md"}, {"charts", r.charts}};
}

}  // namespace rankrl::report
