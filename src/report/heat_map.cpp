// The chosen plan as a layer × weight-type grid: the weight-name parser, the method letters and
// colours, and the SVG heat map.
#include <algorithm>
#include <cstdio>
#include <sstream>

#include "io/weight_roles.h"
#include "plan/plan.h"
#include "report/report.h"

namespace rankrl::report {

// A projection of either architecture reads back through the one table of weight roles
// (io/weight_roles.h) as its short type (q, k, v, qkv, o, gate, up, down); any other name (the
// report also renders hand-written plans) as whatever follows its first all-digit component.
WeightSlot parse_weight_name(const std::string& name) {
  for (Arch arch : {Arch::Llama, Arch::GPT2})
    if (const std::optional<ParsedName> p = parse_tensor_name(arch, name); p && *role_short_name(p->role) != 0)
      return {int(p->layer), role_short_name(p->role)};
  std::string n = name;
  if (n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0) n.resize(n.size() - 7);
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
      {kDense, "D"}, {"svd", "S"}, {"asvd", "A"}, {"svdllm", "L"}, {"fwsvd", "F"}, {"cur", "C"}, {"nmf", "N"}, {"rsvd", "R"}};
  auto it = letters.find(base);
  if (it != letters.end()) return it->second;
  return base.empty() ? "?" : std::string(1, char(std::toupper(static_cast<unsigned char>(base[0]))));
}

std::string method_color(const std::string& method) {
  std::string base = method.substr(0, method.find(':'));
  static const std::map<std::string, std::string> colors = {
      {kDense, "#555555"}, {"svd", "#1f77b4"}, {"asvd", "#ff7f0e"}, {"svdllm", "#2ca02c"},
      {"fwsvd", "#d62728"}, {"cur", "#9467bd"}, {"nmf", "#8c564b"}, {"rsvd", "#e377c2"}};
  auto it = colors.find(base);
  if (it != colors.end()) return it->second;
  size_t h = std::hash<std::string>{}(base);
  return kPalette[h % kPalette.size()];
}

std::string cell_fill(const std::string& method, double rank_frac) {
  std::string c = method_color(method);
  if (method == kDense) return c;
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
    bool dark = c.method == kDense || c.rank_frac > 0.55;
    s << "<rect class=\"cell\" data-weight=\"" << escape_xml(c.weight) << "\" data-method=\"" << escape_xml(c.method)
      << "\" x=\"" << px(x) << "\" y=\"" << px(y) << "\" width=\"" << px(cw - 2) << "\" height=\"" << px(ch - 2)
      << "\" fill=\"" << fill << "\"><title>" << escape_xml(c.weight) << ": " << escape_xml(c.method);
    if (c.method != kDense) s << " rank " << c.rank << (c.rank_frac >= 0 ? " (" + num(c.rank_frac, 3) + ")" : "");
    s << "</title></rect><text x=\"" << px(x + (cw - 2) / 2) << "\" y=\"" << px(y + ch / 2 + 3)
      << "\" text-anchor=\"middle\" fill=\"" << (dark ? "#fff" : "#000") << "\" font-size=\"11\">"
      << method_letter(c.method);
    if (c.method != kDense) s << " " << (c.rank_frac >= 0 ? num(c.rank_frac, 2) : "r" + std::to_string(c.rank));
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

}  // namespace rankrl::report
