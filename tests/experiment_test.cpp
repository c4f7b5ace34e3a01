// rankrl experiment: a tiny sweep (one keep × two seeds) runs both cells, aggregates mean and
// sample standard deviation exactly as recomputed here from the cells' results.json, skips
// finished cells on a second run, and rejects a bad spec with one line naming it.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_util.h"

namespace rankrl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::data_file;

struct ExperimentCli : ::testing::Test {
  void SetUp() override {
    if (!fs::exists(data_file("stories260K/stories260K.bin")) || !fs::exists(data_file("tasks/arc_easy.jsonl")))
      GTEST_SKIP() << "shared data missing";
    std::ifstream in(data_file("tasks/arc_easy.jsonl"));
    std::string line, parts[3];
    for (int i = 0; i < 24 && std::getline(in, line); ++i) parts[i / 8] += line + "\n";
    fs::create_directories(dir.file("tasks"));
    const char* names[3] = {"rkd.jsonl", "vrkd.jsonl", "test.jsonl"};
    for (int s = 0; s < 3; ++s) test::write_text(dir.file(std::string("tasks/") + names[s]), parts[s]);
    json spec = {{"name", "tiny"},
                 {"model", data_file("stories260K/stories260K.bin")},
                 {"calib", data_file("tinystories/tinystories_val.txt")},
                 {"calib_tokens", 1024},
                 {"ctx", 128},
                 {"data", "tasks"},  // relative to the spec file
                 {"heldout", "heldout.txt"},
                 {"keeps", {0.6}},
                 {"agents", {"ppo"}},
                 {"seeds", {1, 2}},
                 {"episodes", 2},
                 {"extra_args",
                  {{"baselines", "uniform,random"}, {"methods", "dense,svd"}, {"reward_items", 8},
                   {"--episodes-per-update", 2}, {"finalists", 1}, {"heldout-tokens", 1024}, {"sensitivity-grid", 1}}}};
    std::string text = test::read_text(data_file("tinystories/tinystories_val.txt")).substr(0, 1500);
    test::write_text(dir.file("heldout.txt"), text.substr(0, text.rfind(' ')));
    test::write_text(dir.file("tiny.json"), spec.dump(2));
  }
  test::TempDir dir;
};

double mean(const std::vector<double>& v) { return (v[0] + v[1]) / 2; }
double sample_std(const std::vector<double>& v) { return std::abs(v[0] - v[1]) / std::sqrt(2.0); }

TEST_F(ExperimentCli, RunsEveryCellAggregatesOverSeedsAndSkipsFinishedCells) {
  test::CliResult r = test::run_cli("experiment " + dir.file("tiny.json") + " --out-root " + dir.file("xo") +
                                    " --threads 1 --json -q");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["ran"], 2);
  EXPECT_EQ(j["skipped"], 0);
  // Per approach, the metrics of the two seeds recomputed from the cells' own results.json.
  std::map<std::string, std::map<std::string, std::vector<double>>> values;
  int64_t rows = 0;
  for (const char* cell : {"0.6-1", "0.6-2"}) {
    json res = json::parse(test::read_text(dir.file(std::string("xo/tiny/") + cell + "/results.json")));
    EXPECT_TRUE(fs::exists(dir.file(std::string("xo/tiny/") + cell + "/report.html"))) << cell;
    double dense = res["dense"]["test"]["margin"];
    for (const json& a : res["approaches"]) {
      auto& v = values[a["name"]];
      v["test_margin_drop"].push_back(dense - a["test"]["margin"].get<double>());
      v["test_acc"].push_back(a["test"]["acc"]);
      v["heldout_ppl"].push_back(a["heldout_ppl"]);
      v["evaluations"].push_back(a["evaluations"]);
      v["seconds"].push_back(a["seconds"]);
      ++rows;
    }
  }
  EXPECT_EQ(json::parse(test::read_text(dir.file("xo/tiny/0.6-1/results.json")))["seed"], 1);
  // "heldout": the dense perplexity is that of the whole heldout.txt, as `rankrl eval --text` says.
  test::CliResult e = test::run_cli("eval --model " + data_file("stories260K/stories260K.bin") + " --text " +
                                    dir.file("heldout.txt") + " --ctx 128 --threads 1 --json -q");
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_NEAR(json::parse(test::read_text(dir.file("xo/tiny/0.6-1/results.json")))["dense"]["heldout_ppl"].get<double>(),
              json::parse(e.out)["ppl"].get<double>(), 1e-9);
  EXPECT_EQ(json::parse(test::read_text(dir.file("xo/tiny/0.6-2/results.json")))["seed"], 2);
  ASSERT_EQ(j["groups"].size(), values.size());
  for (const json& g : j["groups"]) {
    const auto& v = values.at(g["approach"]);
    EXPECT_EQ(g["n"], 2);
    EXPECT_DOUBLE_EQ(g["keep"].get<double>(), 0.6);
    for (const auto& [metric, xs] : v) {
      EXPECT_NEAR(g[metric]["mean"].get<double>(), mean(xs), 1e-12) << g["approach"] << " " << metric;
      EXPECT_NEAR(g[metric]["std"].get<double>(), sample_std(xs), 1e-12) << g["approach"] << " " << metric;
    }
  }
  EXPECT_EQ(j["groups"].size(), 3u);  // uniform:svd, ppo, random
  // summary.csv: header + one row per cell × approach; summary.md: one row per approach, mean ± std.
  std::string csv = test::read_text(dir.file("xo/tiny/summary.csv"));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), rows + 1);
  std::string md = test::read_text(dir.file("xo/tiny/summary.md"));
  const auto& ppo = values.at("ppo")["test_margin_drop"];
  char expect[128];
  std::snprintf(expect, sizeof expect, "| 0.6 | ppo | ppo | 2 | %.4f ± %.4f |", mean(ppo), sample_std(ppo));
  EXPECT_NE(md.find(expect), std::string::npos) << md;

  // A second run finds both cells finished and only aggregates again.
  std::string before = test::read_text(dir.file("xo/tiny/0.6-1/results.json"));
  r = test::run_cli("experiment " + dir.file("tiny.json") + " --out-root " + dir.file("xo") + " --threads 1 --json -q");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = json::parse(r.out);
  EXPECT_EQ(j["ran"], 0);
  EXPECT_EQ(j["skipped"], 2);
  EXPECT_EQ(test::read_text(dir.file("xo/tiny/0.6-1/results.json")), before);
}

TEST_F(ExperimentCli, ResumesACellInterruptedAfterACheckpoint) {
  json spec = json::parse(test::read_text(dir.file("tiny.json")));
  spec["seeds"] = {1};
  spec["extra_args"]["abort-after"] = 3;  // the process exits(3) as if killed
  test::write_text(dir.file("killed.json"), spec.dump());
  test::CliResult r = test::run_cli("experiment " + dir.file("killed.json") + " --out-root " + dir.file("xo") + " --threads 1 -q");
  ASSERT_EQ(r.exit_code, 3) << r.err;
  EXPECT_TRUE(fs::exists(dir.file("xo/tiny/0.6-1/checkpoint/state.json")));
  EXPECT_FALSE(fs::exists(dir.file("xo/tiny/0.6-1/results.json")));
  spec["extra_args"].erase("abort-after");
  test::write_text(dir.file("killed.json"), spec.dump());
  r = test::run_cli("experiment " + dir.file("killed.json") + " --out-root " + dir.file("xo") + " --threads 1 --json -q");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["ran"], 1);
  EXPECT_EQ(j["resumed"], 1);
  json res = json::parse(test::read_text(dir.file("xo/tiny/0.6-1/results.json")));
  for (const json& a : res["approaches"])
    if (a["name"] == "ppo") EXPECT_EQ(a["evaluations"], 3);  // 2 episodes + the greedy plan, none lost or repeated
}

TEST_F(ExperimentCli, BadSpecIsOneLineNamingTheFile) {
  json spec = json::parse(test::read_text(dir.file("tiny.json")));
  spec["extra_args"]["no-such-flag"] = 1;
  test::write_text(dir.file("bad.json"), spec.dump());
  test::CliResult r = test::run_cli("experiment " + dir.file("bad.json") + " --out-root " + dir.file("xo"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "rankrl: error: " + dir.file("bad.json") + ": unknown extra_args key 'no-such-flag'\n");
  spec = json::parse(test::read_text(dir.file("tiny.json")));
  spec["keeps"] = {1.5};
  test::write_text(dir.file("bad.json"), spec.dump());
  r = test::run_cli("experiment " + dir.file("bad.json") + " --out-root " + dir.file("xo"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bad.json: every keep must be a number in (0, 1)"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir.file("xo")));
}

}  // namespace
}  // namespace rankrl
