// The SVG toolkit of the report: scales, frames, line and scatter charts with axes and legends,
// drawn as inline SVG text (no scripts). The primitives at the end are shared by the report's own
// drawings (the plan heat map). Public so tests can check geometry and escaping.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rankrl::report {

// Escapes & < > " ' for HTML/SVG text and attributes.
std::string escape_xml(std::string_view s);

// A linear (or log10) map from a data range onto a pixel range.
struct Scale {
  double lo = 0, hi = 1;  // data range (log10 of it when log)
  double p0 = 0, p1 = 1;  // pixels (p1 < p0 for a y axis)
  bool log = false;
  double operator()(double v) const;
};

// The plot area of a chart: width × height overall, margins leave room for axes, labels, legend.
struct Frame {
  double width = 760, height = 360;
  double left = 70, right = 210, top = 36, bottom = 50;
  Scale x, y;
};
// A frame whose scales cover [xlo, xhi] × [ylo, yhi], padded by 5% of the range (a point range
// is widened to ±0.5, or ±10% of the value).
Frame make_frame(double xlo, double xhi, double ylo, double yhi, bool log_y = false);

struct Point {
  double x = 0, y = 0;
};
struct Series {
  std::string name;
  std::vector<Point> points;
  std::string color = "#1f77b4";
  bool dashed = false;
  double width = 1.5;
};

// Line chart: <svg id=...> with axes, ticks, labels, a title and a legend. Each series is a
// <polyline class="series" data-name=...> through the frame's pixel coordinates.
std::string line_chart(const std::string& id, const std::string& title, const std::string& xlabel,
                       const std::string& ylabel, const std::vector<Series>& series, bool log_y = false);

struct LabeledPoint {
  std::string label;
  double x = 0, y = 0;
  std::string color;  // empty: a palette colour by position
};
// Indices of the points on the Pareto front when smaller x and smaller y are both better: no
// other point is ≤ in both and < in one. Sorted by x.
std::vector<size_t> pareto_front(const std::vector<LabeledPoint>& pts);
// Scatter chart; every point is a <circle class="pt" data-label=...> (front points: class
// "pt front") and the Pareto front is a <polyline class="front">.
// `labels`: also write each label beside its point (class "ptlabel").
std::string scatter_chart(const std::string& id, const std::string& title, const std::string& xlabel,
                          const std::string& ylabel, const std::vector<LabeledPoint>& pts, bool labels = false);

// --- primitives --------------------------------------------------------------------------------
// A number with `prec` decimals ("nan", "inf", "-inf" when not finite).
std::string num(double v, int prec = 4);
// A pixel coordinate: two decimals are plenty and keep the SVG small.
std::string px(double v);
// Series colours, in order.
extern const std::vector<std::string> kPalette;
// <svg> with its background and centred title (the caller closes it).
std::string svg_open(const std::string& id, const Frame& f, const std::string& title);
// The i-th legend entry right of the plot area: a line (dashed or not) or a dot, and the name.
std::string legend_entry(const Frame& f, int i, const std::string& name, const std::string& color, bool dashed,
                         bool dot);

}  // namespace rankrl::report
