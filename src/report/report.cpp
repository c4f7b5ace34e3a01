#include "report/report.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>

#include "core/dist.h"
#include "core/error.h"
#include "core/fs.h"
#include "plan/plan.h"
#include "report/out_dir.h"
#include "report/tables.h"
#include "search/names.h"

namespace rankrl::report {

using nlohmann::json;

namespace {

const char* kStyle =
    "body{font-family:sans-serif;margin:24px;color:#222;max-width:1240px}"
    "h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}"
    "figure{margin:12px 0}figcaption{font-size:12px;color:#555;max-width:720px}"
    "code{background:#f3f3f3;padding:2px 4px;word-break:break-all}.note{color:#777;font-size:13px}"
    "#run-table td{text-align:left;word-break:break-all}";

Rendered render_unchecked(const std::string& out);

}  // namespace

// Unexpected value types deep in results.json surface as one Error naming the file.
Rendered render_report(const std::string& out) {
  try {
    return render_unchecked(out);
  } catch (const nlohmann::json::exception& e) {
    throw Error(out + "/results.json", std::string("unexpected content: ") + e.what());
  }
}

namespace {

// What the sections read: OUT's files, and one colour per approach for every chart.
struct Inputs {
  json res, plan;
  std::vector<LogEntry> log;
  FactorInfo factors;
  std::vector<std::string> curve_names;  // approaches with search curves: agents, random, evolution(-kl)
  std::map<std::string, std::string> colour;
};

Inputs read_inputs(const std::string& out) {
  Inputs in;
  const std::string rpath = out + "/results.json", lpath = out + "/log.jsonl";
  in.res = read_json_file(rpath);
  const json& res = in.res;
  check(res.contains("approaches") && res["approaches"].is_array(), rpath, "missing 'approaches' list");
  for (const json& a : res["approaches"])
    check(a.is_object() && a.contains("name") && a["name"].is_string(), rpath, "an approach has no 'name'");
  in.log = read_log(lpath);
  if (file_exists(out + "/plan.json")) in.plan = read_json_file(out + "/plan.json");
  in.factors = read_factor_store(out);
  for (const LogEntry& e : in.log)
    if (!e.probe && std::find(in.curve_names.begin(), in.curve_names.end(), e.approach) == in.curve_names.end()) {
      bool agent = res.contains("agents") && res["agents"].is_array() &&
                   std::find(res["agents"].begin(), res["agents"].end(), e.approach) != res["agents"].end();
      if (agent || e.approach == names::kRandom || e.approach == names::kEvolution || e.approach == names::kEvolutionKl)
        in.curve_names.push_back(e.approach);
    }
  // One colour per approach in every chart: dense first, then results.json's order.
  std::map<std::string, std::string>& colour = in.colour;
  colour = {{"dense", kPalette[0]}};
  for (const json& a : res["approaches"]) colour.emplace(a["name"].get<std::string>(), kPalette[colour.size() % kPalette.size()]);
  for (const std::string& n : in.curve_names) colour.emplace(n, kPalette[colour.size() % kPalette.size()]);
  return in;
}

// Reward and best-so-far per episode (the agents and the random/evolution baselines), and the
// agents' surrogate reward.
void curves_section(const Inputs& in, std::ostringstream& body, Rendered& r) {
  const std::vector<std::string>& curve_names = in.curve_names;
  const std::vector<LogEntry>& log = in.log;
  std::map<std::string, std::string> colour = in.colour;
  std::vector<Series> reward, best, surrogate;
  for (size_t i = 0; i < curve_names.size(); ++i) {
    Series g{curve_names[i], {}, colour[curve_names[i]], false, 1.2};
    for (const LogEntry& e : log)
      if (e.approach == curve_names[i] && e.surrogate) g.points.push_back({double(g.points.size() + 1), e.reward});
    if (!g.points.empty()) surrogate.push_back(g);
  }
  for (size_t i = 0; i < curve_names.size(); ++i) {
    Series s{curve_names[i], {}, colour[curve_names[i]], false, 1.2};
    Series b{curve_names[i], {}, s.color, curve_names[i] == names::kRandom || curve_names[i] == names::kEvolution, 2.0};
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
}

// Test margin drop against kept parameters, with the Pareto front (and zoomed in without dense).
void quality_section(const Inputs& in, std::ostringstream& body, Rendered& r) {
  const json& res = in.res;
  std::map<std::string, std::string> colour = in.colour;
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
}

// The chosen plan as a layer × weight-type heat map.
void plan_section(const Inputs& in, std::ostringstream& body, Rendered& r) {
  const json& res = in.res;
  const json& plan = in.plan;
  const FactorInfo& factors = in.factors;
  body << "<h2>Chosen plan</h2>\n";
  if (plan.is_object() && plan.contains("weights") && plan["weights"].is_object() && !plan["weights"].empty()) {
    std::vector<HeatCell> cells;
    for (const auto& [w, d] : plan["weights"].items()) {
      HeatCell c;
      c.weight = w;
      c.method = d.is_object() ? d.value("method", kDense) : kDense;
      c.rank = d.is_object() && d.contains("rank") && d["rank"].is_number() ? d["rank"].get<int64_t>() : 0;
      auto it = factors.full_rank.find(w);
      c.rank_frac = c.method == kDense ? 1.0 : it != factors.full_rank.end() && it->second > 0 ? double(c.rank) / it->second : -1;
      cells.push_back(c);
    }
    body << "<figure>" << heat_map("chart-plan", "Chosen plan (" + res.value("chosen", std::string("?")) + "): method and rank fraction", cells)
         << "<figcaption>Rows: layers; columns: weight types. Letter: method; number: rank / min(m, n).</figcaption></figure>\n";
    r.charts.push_back("chart-plan");
  } else {
    body << "<p class=\"note\">No plan.json in OUT.</p>\n";
  }
}

// Singular-value spectra of a few weights: the first weight of each type in the first layer.
void spectra_section(const Inputs& in, std::ostringstream& body, Rendered& r) {
  const FactorInfo& factors = in.factors;
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
}

const char* kDifferencesNote =
    "Differences on the test split (approach minus reference; margin in nats, acc as a fraction) with paired "
    "bootstrap 95% intervals over the test items, the same resampled items for every approach. "
    "\"better\"/\"worse\" only when the interval excludes 0; n.s. = no significant difference. The best uniform "
    "plan is the uniform:<method> approach with the best VRkD margin (acc with --reward acc), not the best on test.";

struct Tables {
  Table results, meta, diffs;
};

// The results, differences and run tables (HTML here; page_md writes them as markdown).
void tables_section(const Tables& t, std::ostringstream& body) {
  body << "<h2>Results</h2>\n" << html_table(t.results, "results-table");
  if (!t.diffs.rows.empty())
    body << "<h2>Differences (paired bootstrap 95% intervals)</h2>\n<p class=\"note\">" << escape_xml(kDifferencesNote)
         << "</p>\n" << html_table(t.diffs, "diff-table");
  body << "<h2>Run</h2>\n" << html_table(t.meta, "run-table");
}

// The HTML page: head, title, the chosen approach's summary, the command, then the sections.
std::string page_html(const json& res, const std::string& summary, const std::string& body) {
  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><link rel=\"icon\" href=\"data:,\">"
       << "<title>rankrl report: " << escape_xml(res.value("model", std::string(""))) << "</title><style>" << kStyle
       << "</style></head><body>\n<h1>rankrl search report</h1>\n<p>Model <code>"
       << escape_xml(res.value("model", std::string("?"))) << "</code>, keep " << escape_xml(res.contains("keep") ? res["keep"].dump() : "?")
       << ", seed " << escape_xml(res.contains("seed") ? res["seed"].dump() : "?") << "; chosen approach <b>"
       << escape_xml(res.value("chosen", std::string("?"))) << "</b>.</p>\n"
       << (summary.empty() ? "" : "<p id=\"choice-summary\">" + escape_xml(summary) + ".</p>\n") << "<p>Command: <code>"
       << escape_xml(res.value("command", std::string(""))) << "</code></p>\n"
       << body << "</body></html>\n";
  return html.str();
}

// The markdown page: the summary, the command and the tables.
std::string page_md(const json& res, const std::string& summary, const Tables& t) {
  std::ostringstream md;
  md << "# rankrl search report\n\nModel `" << res.value("model", std::string("?")) << "`, chosen approach **"
     << res.value("chosen", std::string("?")) << "**.\n\n" << (summary.empty() ? "" : summary + ".\n\n")
     << "Command:\n\n```\n" << res.value("command", std::string(""))
     << "\n```\n\n## Results\n\n" << md_table(t.results);
  if (!t.diffs.rows.empty())
    md << "\n## Differences (paired bootstrap 95% intervals)\n\n" << kDifferencesNote << "\n\n" << md_table(t.diffs);
  md << "\n## Run\n\n" << md_table(t.meta);
  return md.str();
}

Rendered render_unchecked(const std::string& out) {
  const Inputs in = read_inputs(out);
  Rendered r;
  std::ostringstream body;
  curves_section(in, body, r);
  quality_section(in, body, r);
  plan_section(in, body, r);
  spectra_section(in, body, r);
  const Tables tables{results_table(in.res), meta_table(in.res, in.plan), differences_table(in.res)};
  const std::string summary = choice_summary(in.res);
  tables_section(tables, body);
  r.html = page_html(in.res, summary, body.str());
  r.md = page_md(in.res, summary, tables);
  return r;
}

}  // namespace

json write_report(const std::string& out) {
  if (!dist::is_root()) return json::object();  // rank 0 alone reads OUT back and writes (core/dist.h)
  Rendered r = render_report(out);
  write_file_atomic(out + "/report.html", r.html);
  write_file_atomic(out + "/report.md", r.md);
  return {{"html", out + "/report.html"}, {"md", out + "/report.md"}, {"charts", r.charts}};
}

}  // namespace rankrl::report
