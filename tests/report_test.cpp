// The report: chart geometry against closed-form pixel positions, the Pareto front, the heat map's
// cells and fills, escaping, the spectra from a factor store, bad input, and a headless Chromium
// render (skipped without /usr/bin/chromium) whose screenshot is kept as a CI artifact.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "io/safetensors.h"
#include "report/report.h"
#include "test_util.h"

namespace rankrl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace rankrl::report;

int count(const std::string& s, const std::string& needle) {
  int n = 0;
  for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}

// The numbers in a polyline's points attribute, for the polyline whose attributes contain `marker`.
std::vector<double> polyline_points(const std::string& svg, const std::string& marker) {
  size_t at = svg.find(marker);
  EXPECT_NE(at, std::string::npos) << marker;
  if (at == std::string::npos) return {};
  size_t p = svg.find("points=\"", at) + 8, e = svg.find('"', p);
  std::vector<double> v;
  std::string s = svg.substr(p, e - p);
  for (char& c : s)
    if (c == ',') c = ' ';
  std::istringstream in(s);
  for (double x; in >> x;) v.push_back(x);
  return v;
}

TEST(Report, EscapesMarkupCharacters) {
  EXPECT_EQ(escape_xml("<a & \"b\" 'c'>"), "&lt;a &amp; &quot;b&quot; &#39;c&#39;&gt;");
  std::string svg = line_chart("c<1>", "T <&\">", "x&", "y\"", {{"s<&\"", {{0, 0}, {1, 1}}}});
  EXPECT_NE(svg.find("id=\"c&lt;1&gt;\""), std::string::npos);
  EXPECT_NE(svg.find(">T &lt;&amp;&quot;&gt;</text>"), std::string::npos);
  EXPECT_NE(svg.find("data-name=\"s&lt;&amp;&quot;\""), std::string::npos);
  EXPECT_EQ(svg.find("s<&"), std::string::npos);
  EXPECT_EQ(svg.find("T <"), std::string::npos);
}

TEST(Report, LineChartPlacesPointsAtTheFramesPixelCoordinates) {
  // Data x in [0, 10], y in [0, 1], padded by 5%: x ∈ [−0.5, 10.5], y ∈ [−0.05, 1.05]. The plot
  // area is x ∈ [70, 760 − 210] and y ∈ [360 − 50, 36] (pixels grow downwards).
  std::string svg = line_chart("c", "t", "x", "y", {{"a", {{0, 0}, {10, 1}, {5, 0.5}}}});
  std::vector<double> p = polyline_points(svg, "data-name=\"a\"");
  ASSERT_EQ(p.size(), 6u);
  auto X = [](double x) { return 70 + (x + 0.5) / 11.0 * 480; };
  auto Y = [](double y) { return 310 - (y + 0.05) / 1.1 * 274; };
  EXPECT_NEAR(p[0], X(0), 0.006);
  EXPECT_NEAR(p[1], Y(0), 0.006);
  EXPECT_NEAR(p[2], X(10), 0.006);
  EXPECT_NEAR(p[3], Y(1), 0.006);
  EXPECT_NEAR(p[4], X(5), 0.006);
  EXPECT_NEAR(p[5], Y(0.5), 0.006);
  // Ticks at 0, 2, ..., 10 on x, with labels.
  for (const char* t : {">0</text>", ">2</text>", ">10</text>"}) EXPECT_NE(svg.find(t), std::string::npos) << t;
  EXPECT_EQ(count(svg, "class=\"xtick\""), 6);
  // A log axis: 1 and 0.01 on [0.01, 1] (padded in log10 units: [−2.1, 0.1]).
  std::string lg = line_chart("l", "t", "x", "y", {{"b", {{1, 1}, {2, 0.01}}}}, true);
  std::vector<double> q = polyline_points(lg, "data-name=\"b\"");
  ASSERT_EQ(q.size(), 4u);
  EXPECT_NEAR(q[1], 310 - (0 + 2.1) / 2.2 * 274, 0.006);
  EXPECT_NEAR(q[3], 310 - (-2 + 2.1) / 2.2 * 274, 0.006);
}

TEST(Report, ParetoFrontAndScatter) {
  std::vector<LabeledPoint> pts = {{"dense", 1, 0}, {"a", 0.6, 0.5}, {"b", 0.6, 0.3}, {"c", 0.8, 0.1}, {"d", 0.7, 0.4}};
  std::vector<size_t> f = pareto_front(pts);
  EXPECT_EQ(f, (std::vector<size_t>{2, 3, 0}));
  std::string svg = scatter_chart("q", "t", "x", "y", pts);
  EXPECT_EQ(count(svg, "<circle class=\"pt"), 5);
  EXPECT_EQ(count(svg, "<circle class=\"pt front\""), 3);
  EXPECT_NE(svg.find("class=\"pt front\" data-label=\"b\""), std::string::npos);
  EXPECT_NE(svg.find("class=\"pt\" data-label=\"a\""), std::string::npos);
  // The front polyline joins b, c, dense in x order: x ∈ [0.58, 1.02], y ∈ [−0.025, 0.525].
  std::vector<double> p = polyline_points(svg, "class=\"front\"");
  ASSERT_EQ(p.size(), 6u);
  auto X = [](double x) { return 70 + (x - 0.58) / 0.44 * 480; };
  auto Y = [](double y) { return 310 - (y + 0.025) / 0.55 * 274; };
  EXPECT_NEAR(p[0], X(0.6), 0.006);
  EXPECT_NEAR(p[1], Y(0.3), 0.006);
  EXPECT_NEAR(p[4], X(1.0), 0.006);
  EXPECT_NEAR(p[5], Y(0.0), 0.006);
}

TEST(Report, WeightNamesGiveLayerAndType) {
  WeightSlot a = parse_weight_name("model.layers.3.self_attn.q_proj.weight");  // through the role table
  EXPECT_EQ(a.layer, 3);
  EXPECT_EQ(a.type, "q");
  WeightSlot g = parse_weight_name("transformer.h.11.mlp.c_proj.weight");
  EXPECT_EQ(g.layer, 11);
  EXPECT_EQ(g.type, "down");
  WeightSlot b = parse_weight_name("h.11.attn.c_attn.weight");  // no role's name: the generic reading
  EXPECT_EQ(b.layer, 11);
  EXPECT_EQ(b.type, "attn.c_attn");
  WeightSlot c = parse_weight_name("lm_head.weight");
  EXPECT_EQ(c.layer, -1);
  EXPECT_EQ(c.type, "lm_head");
}

TEST(Report, HeatMapHasOneCellPerWeightWithItsFill) {
  // svd #1f77b4 blended with white by 0.2 + 0.8·f: f = 1 is the colour, f = 0 is 80% white.
  EXPECT_EQ(cell_fill("svd", 1.0), "#1f77b4");
  EXPECT_EQ(cell_fill("svd", 0.0), "#d2e4f0");  // 255·0.8 + (31, 119, 180)·0.2, rounded
  EXPECT_EQ(cell_fill("asvd:alpha=0.5", 0.5), cell_fill("asvd", 0.5));
  EXPECT_EQ(cell_fill("dense", 0.3), "#555555");
  EXPECT_EQ(method_letter("svdllm"), "L");
  std::vector<HeatCell> cells;
  const char* types[3] = {"self_attn.q_proj", "self_attn.k_proj", "mlp.down_proj"};
  const char* methods[3] = {"svd", "dense", "svdllm"};
  for (int l = 0; l < 2; ++l)
    for (int t = 0; t < 3; ++t)
      cells.push_back({"model.layers." + std::to_string(l) + "." + types[t] + ".weight", methods[t], 0.25 * (l + 1), 8});
  std::string svg = heat_map("h", "plan", cells);
  EXPECT_EQ(count(svg, "<rect class=\"cell\""), 6);
  for (const HeatCell& c : cells) {
    std::regex re("data-weight=\"" + c.weight + "\" data-method=\"" + c.method +
                  "\" x=\"([0-9.]+)\" y=\"([0-9.]+)\" width=\"[0-9.]+\" height=\"[0-9.]+\" fill=\"([^\"]+)\"");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(svg, m, re)) << c.weight;
    EXPECT_EQ(m[3].str(), cell_fill(c.method, c.rank_frac)) << c.weight;
  }
  // Layer 1's q_proj sits one row (26 px) below layer 0's, k_proj one column (84 px) right of q_proj.
  std::smatch m0, m1, m2;
  ASSERT_TRUE(std::regex_search(svg, m0, std::regex("layers\\.0\\.self_attn\\.q_proj\\.weight\" data-method=\"svd\" x=\"([0-9.]+)\" y=\"([0-9.]+)\"")));
  ASSERT_TRUE(std::regex_search(svg, m1, std::regex("layers\\.1\\.self_attn\\.q_proj\\.weight\" data-method=\"svd\" x=\"([0-9.]+)\" y=\"([0-9.]+)\"")));
  ASSERT_TRUE(std::regex_search(svg, m2, std::regex("layers\\.0\\.self_attn\\.k_proj\\.weight\" data-method=\"dense\" x=\"([0-9.]+)\" y=\"([0-9.]+)\"")));
  EXPECT_DOUBLE_EQ(std::stod(m1[2]) - std::stod(m0[2]), 26);
  EXPECT_DOUBLE_EQ(std::stod(m2[1]) - std::stod(m0[1]), 84);
  for (const char* legend : {"S = svd", "D = dense", "L = svdllm"}) EXPECT_NE(svg.find(legend), std::string::npos);
}

// A small search output written by hand: two layers × two weights, three approaches.
void write_synthetic_out(const std::string& dir) {
  fs::create_directories(dir);
  auto metrics = [](double m, double a) { return json{{"margin", m}, {"acc", a}, {"acc_norm", a}}; };
  auto row = [&](const std::string& name, double keep, double margin) {
    return json{{"name", name}, {"evaluations", 5}, {"seconds", 1.5}, {"rkd", metrics(margin, 0.5)},
                {"vrkd", metrics(margin, 0.5)}, {"test", metrics(margin, 0.5)}, {"heldout_ppl", 12.5},
                {"linear_parameters", 1000}, {"keep_actual", keep}, {"total_parameters", 2000}, {"total_bytes", 8000},
                {"found_at_unit", 1}, {"train_reward", -0.1}};
  };
  json res = {{"command", "rankrl search --model m.bin --note '<&\">'"}, {"rankrl_version", "0.1.0"},
              {"libtorch_version", "1.13.1"}, {"seed", 7}, {"threads", 1}, {"model", "m.bin"}, {"keep", 0.6},
              {"agents", {"ppo"}}, {"episodes", 4},
              {"dense", {{"rkd", metrics(-1.0, 0.6)}, {"vrkd", metrics(-1.0, 0.6)}, {"test", metrics(-1.0, 0.6)},
                         {"heldout_ppl", 10.0}, {"linear_parameters", 1600}, {"total_parameters", 2600}, {"total_bytes", 10400}}},
              {"approaches", {row("uniform:svd", 0.6, -1.3), row("ppo", 0.59, -1.1), row("random", 0.61, -1.4)}},
              {"chosen", "ppo"}};
  test::write_text(dir + "/results.json", res.dump(2));
  std::string log;
  for (int i = 0; i < 4; ++i) log += json{{"approach", "ppo"}, {"unit", i}, {"reward", -0.5 + 0.1 * i}}.dump() + "\n";
  for (int i = 0; i < 4; ++i) log += json{{"approach", "random"}, {"unit", i}, {"reward", -0.4 - 0.05 * i}}.dump() + "\n";
  log += json{{"approach", "sensitivity"}, {"unit", 0}, {"reward", -3.0}, {"probe_weight", "x"}}.dump() + "\n";
  test::write_text(dir + "/log.jsonl", log);
  json weights = json::object();
  for (int l = 0; l < 2; ++l) {
    weights["model.layers." + std::to_string(l) + ".self_attn.q_proj.weight"] = {{"method", "svd"}, {"rank", 2}, {"select", "top"}};
    weights["model.layers." + std::to_string(l) + ".mlp.down_proj.weight"] = {{"method", "dense"}, {"rank", 0}, {"select", "top"}};
  }
  test::write_text(dir + "/plan.json", json{{"weights", weights}, {"keep", 0.6}, {"seed", 7}, {"model_identity", "fnv1a64:0"}}.dump());
  // Factor store: q_proj of layer 0 with σ = 3, 2, 1 (tail = cumulative discarded σ² from the end).
  static const double tail[4] = {14, 5, 1, 0};
  std::string bytes(reinterpret_cast<const char*>(tail), sizeof tail);
  json entries = {{{"weight", "model.layers.0.self_attn.q_proj.weight"}, {"spec", "svd"}, {"metric", "frobenius_sq"}},
                  {{"weight", "model.layers.1.self_attn.q_proj.weight"}, {"spec", "svd"}, {"metric", "frobenius_sq"}}};
  write_safetensors(dir + "/factors-0123456789abcdef.safetensors",
                    {{"0.tail", DType::F64, {4}, bytes}, {"1.tail", DType::F64, {4}, bytes}}, {{"entries", entries.dump()}});
}

TEST(Report, RendersEveryPartOfASearchOutput) {
  test::TempDir dir;
  write_synthetic_out(dir.path());
  Rendered r = render_report(dir.path());
  EXPECT_EQ(r.charts, (std::vector<std::string>{"chart-reward", "chart-best", "chart-pareto", "chart-pareto-zoom", "chart-plan", "chart-spectra"}));
  for (const std::string& id : r.charts) EXPECT_EQ(count(r.html, "<svg id=\"" + id + "\""), 1) << id;
  EXPECT_EQ(r.html.find("<script"), std::string::npos);
  EXPECT_EQ(r.html.find("http://") , r.html.find("http://www.w3.org/2000/svg"));  // only the SVG namespace
  // Curves: ppo and random, not the sensitivity probe; best-so-far of random stays at −0.4.
  std::vector<double> best = polyline_points(r.html.substr(r.html.find("id=\"chart-best\"")), "data-name=\"random\"");
  ASSERT_EQ(best.size(), 8u);
  EXPECT_EQ(best[1], best[3]);
  EXPECT_EQ(best[1], best[7]);
  EXPECT_EQ(r.html.find("data-name=\"sensitivity\""), std::string::npos);
  // Quality vs size: dense (1, 0) and ppo (0.59, 0.1) are on the front; random (0.61, 0.4) is not.
  std::string pareto = r.html.substr(r.html.find("id=\"chart-pareto\""));
  EXPECT_NE(pareto.find("class=\"pt front\" data-label=\"ppo\""), std::string::npos);
  EXPECT_NE(pareto.find("class=\"pt\" data-label=\"random\""), std::string::npos);
  // Without dense, ppo alone is the front; every point is labelled.
  std::string zoom = r.html.substr(r.html.find("id=\"chart-pareto-zoom\""));
  zoom = zoom.substr(0, zoom.find("</svg>"));
  EXPECT_EQ(count(zoom, "class=\"pt front\""), 1);
  EXPECT_NE(zoom.find("class=\"pt front\" data-label=\"ppo\""), std::string::npos);
  EXPECT_EQ(count(zoom, "class=\"ptlabel\""), 3);
  // Plan: 4 cells; q_proj rank 2 of full rank 3.
  EXPECT_EQ(count(r.html, "<rect class=\"cell\""), 4);
  EXPECT_NE(r.html.find("fill=\"" + cell_fill("svd", 2.0 / 3) + "\""), std::string::npos);
  // Spectra: σ/σ₁ = 1, 2/3, 1/3 at i = 1, 2, 3 for one q_proj (one weight per type).
  std::string spec = r.html.substr(r.html.find("id=\"chart-spectra\""));
  std::vector<double> s = polyline_points(spec, "data-name=\"layer 0 q\"");
  ASSERT_EQ(s.size(), 6u);
  Frame f = make_frame(1, 3, 1.0 / 3, 1, true);
  EXPECT_NEAR(s[1], f.y(1.0), 0.006);
  EXPECT_NEAR(s[3], f.y(2.0 / 3), 0.006);
  EXPECT_NEAR(s[5], f.y(1.0 / 3), 0.006);
  EXPECT_EQ(count(spec.substr(0, spec.find("</svg>")), "class=\"series\""), 1);
  // Tables and the escaped command, in HTML and markdown.
  EXPECT_NE(r.html.find("--note &#39;&lt;&amp;&quot;&gt;&#39;"), std::string::npos);
  EXPECT_NE(r.md.find("| ppo (chosen) | 5 | 1.5 | 0.5900 |"), std::string::npos);
  EXPECT_NE(r.md.find("| dense | - | - | 1 | -1.0000 |"), std::string::npos);
  EXPECT_NE(r.md.find("rankrl search --model m.bin --note '<&\">'"), std::string::npos);
}

TEST(Report, DifferencesTableAndChoiceSummaryShowTheIntervals) {
  test::TempDir dir;
  write_synthetic_out(dir.path());
  // Without intervals (results.json from before they existed): no differences section, no summary.
  Rendered old = render_report(dir.path());
  EXPECT_EQ(old.md.find("Differences"), std::string::npos);
  EXPECT_EQ(old.html.find("diff-table"), std::string::npos);
  EXPECT_EQ(choice_summary(json::parse(test::read_text(dir.file("results.json")))), "");
  json res = json::parse(test::read_text(dir.file("results.json")));
  auto d = [](double diff, double lo, double hi) { return json{{"diff", diff}, {"lo", lo}, {"hi", hi}}; };
  res["bootstrap"] = {{"split", "test"}, {"level", 0.95}, {"resamples", 2000}, {"seed", 7}, {"best_uniform", "uniform:svd"}};
  res["splits"] = {{"rkd", 40}, {"vrkd", 40}, {"test", 40}};
  res["reward"] = {{"kind", "margin"}};
  for (json& a : res["approaches"]) {
    const bool ppo = a["name"] == "ppo";
    a["vs_dense"] = {{"margin", ppo ? d(-0.1, -0.2, -0.02) : d(-0.3, -0.5, -0.1)}, {"acc", d(0.0, -0.05, 0.05)}};
    a["vs_best_uniform"] = {{"margin", ppo ? d(0.2, 0.05, 0.35) : d(0.0, 0.0, 0.0)}, {"acc", d(0.025, 0.0, 0.075)}};
  }
  test::write_text(dir.file("results.json"), res.dump(2));
  Rendered r = render_report(dir.path());
  EXPECT_NE(r.md.find("| approach | test margin - dense | test acc - dense | test margin - uniform:svd | test acc - uniform:svd |"),
            std::string::npos) << r.md;
  // better/worse only when the interval excludes 0; an interval touching 0 is n.s.
  EXPECT_NE(r.md.find("| ppo (chosen) | -0.100 [-0.200, -0.020] worse | +0.000 [-0.050, +0.050] n.s. | "
                      "+0.200 [+0.050, +0.350] better | +0.025 [+0.000, +0.075] n.s. |"), std::string::npos) << r.md;
  EXPECT_NE(r.md.find("| uniform:svd | -0.300 [-0.500, -0.100] worse | +0.000 [-0.050, +0.050] n.s. | "
                      "+0.000 [+0.000, +0.000] n.s. |"), std::string::npos) << r.md;
  EXPECT_EQ(count(r.html, "<table id=\"diff-table\">"), 1);
  const std::string summary =
      "chosen: ppo (best VRkD margin); on test, 95% paired bootstrap intervals over 40 items: vs dense margin "
      "-0.100 [-0.200, -0.020] worse, acc +0.000 [-0.050, +0.050] no significant difference; vs best uniform "
      "uniform:svd margin +0.200 [+0.050, +0.350] better, acc +0.025 [+0.000, +0.075] no significant difference";
  EXPECT_EQ(choice_summary(res), summary);
  EXPECT_NE(r.md.find(summary + "."), std::string::npos);
  EXPECT_NE(r.html.find("<p id=\"choice-summary\">" + summary + ".</p>"), std::string::npos);
  EXPECT_EQ(interval_text(d(-0.0004, -0.0009, 0.0004)), "+0.000 [-0.001, +0.000]");  // no "-0.000"
  EXPECT_EQ(interval_text(json::object()), "-");
}

TEST(Report, CliWritesBothFilesAndRejectsBadInputWithoutWriting) {
  test::TempDir dir;
  write_synthetic_out(dir.file("ok"));
  test::CliResult r = test::run_cli("report " + dir.file("ok") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["charts"].size(), 6u);
  EXPECT_TRUE(fs::exists(dir.file("ok/report.html")));
  EXPECT_TRUE(fs::exists(dir.file("ok/report.md")));

  write_synthetic_out(dir.file("nores"));
  fs::remove(dir.file("nores/results.json"));
  r = test::run_cli("report " + dir.file("nores"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count(r.err, "\n"), 1) << r.err;
  EXPECT_NE(r.err.find("rankrl: error: " + dir.file("nores/results.json")), std::string::npos) << r.err;

  write_synthetic_out(dir.file("badres"));
  test::write_text(dir.file("badres/results.json"), "{\"approaches\": [");
  r = test::run_cli("report " + dir.file("badres"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("results.json: not valid JSON"), std::string::npos) << r.err;

  write_synthetic_out(dir.file("badlog"));
  std::string log = test::read_text(dir.file("badlog/log.jsonl"));
  size_t second = log.find('\n', log.find('\n') + 1);
  test::write_text(dir.file("badlog/log.jsonl"), log.substr(0, second + 1) + "{oops\n" + log.substr(second + 1));
  r = test::run_cli("report " + dir.file("badlog"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(dir.file("badlog/log.jsonl") + ": line 3: not a JSON object"), std::string::npos) << r.err;
  for (const char* d : {"nores", "badres", "badlog"}) {
    EXPECT_FALSE(fs::exists(dir.file(std::string(d) + "/report.html"))) << d;
    EXPECT_FALSE(fs::exists(dir.file(std::string(d) + "/report.md"))) << d;
  }
}

// Headless Chromium: `html` rendered to a screenshot and a DOM dump; returns the browser log.
struct Browser {
  int exit_code = -1;
  std::string dom, log;
};
Browser render_in_chromium(const std::string& html_path, const std::string& png, const std::string& tmp) {
  const std::string flags =
      "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking "
      "--disable-component-update --disable-sync --enable-logging=stderr --v=0 --hide-scrollbars ";
  Browser b;
  std::string shot = "/usr/bin/chromium " + flags + "--user-data-dir=" + tmp + "/profile1 --screenshot=" + png +
                     " --window-size=1280,2400 file://" + html_path + " >" + tmp + "/shot.out 2>" + tmp + "/shot.err";
  int s1 = std::system(shot.c_str());
  std::string dump = "/usr/bin/chromium " + flags + "--user-data-dir=" + tmp + "/profile2 --dump-dom file://" +
                     html_path + " >" + tmp + "/dom.out 2>" + tmp + "/dom.err";
  int s2 = std::system(dump.c_str());
  b.exit_code = s1 != 0 ? s1 : s2;
  b.dom = test::read_text(tmp + "/dom.out");
  b.log = test::read_text(tmp + "/shot.err") + test::read_text(tmp + "/dom.err");
  return b;
}

// Console messages from the page ("CONSOLE(line)" in Chromium's log); the page has no scripts,
// so there should be none.
std::vector<std::string> console_lines(const std::string& log) {
  std::vector<std::string> out;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);)
    if (line.find("CONSOLE") != std::string::npos) out.push_back(line);
  return out;
}

TEST(ReportBrowser, RendersInHeadlessChromiumWithoutConsoleErrors) {
  if (!fs::exists("/usr/bin/chromium"))
    GTEST_SKIP() << "/usr/bin/chromium not installed (scripts/setup.sh installs Debian's chromium)";
  test::TempDir dir;
  write_synthetic_out(dir.file("out"));
  ASSERT_EQ(test::run_cli("report " + dir.file("out") + " -q").exit_code, 0);
  // The screenshot is a CI artifact: <build>/artifacts/report.png.
  std::string artifacts = fs::path(RANKRL_CLI).parent_path().string() + "/artifacts";
  fs::create_directories(artifacts);
  std::string png = artifacts + "/report.png";
  fs::remove(png);
  Browser b = render_in_chromium(dir.file("out/report.html"), png, dir.path());
  ASSERT_EQ(b.exit_code, 0) << b.log;
  EXPECT_TRUE(console_lines(b.log).empty()) << console_lines(b.log)[0];
  for (const char* id : {"chart-reward", "chart-best", "chart-pareto", "chart-pareto-zoom", "chart-plan", "chart-spectra", "results-table"})
    EXPECT_NE(b.dom.find(std::string("id=\"") + id + "\""), std::string::npos) << id;
  ASSERT_TRUE(fs::exists(png));
  EXPECT_GT(fs::file_size(png), 20000u);  // a blank 1280×2400 PNG compresses to a few KB
  std::string head = test::read_text(png).substr(0, 8);
  EXPECT_EQ(head, std::string("\x89PNG\r\n\x1a\n", 8));

  // The console check can fail: a page whose script throws is caught by it.
  test::write_text(dir.file("bad.html"), "<!DOCTYPE html><html><body><script>throw new Error('boom')</script></body></html>");
  Browser bad = render_in_chromium(dir.file("bad.html"), dir.file("bad.png"), dir.path());
  EXPECT_FALSE(console_lines(bad.log).empty()) << bad.log;
}

}  // namespace
}  // namespace rankrl
