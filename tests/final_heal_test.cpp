// search --final-heal: each approach's finalists scored after the compensating heal, checked
// against an independent `rankrl compress --plan P --heal-compensate` + `rankrl eval` of the same
// plan; the choice and the written model are the healed ones; `none` changes nothing; the healed
// scores survive an interruption; results.json counts the items skipped as too long.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "search/results.h"
#include "test_util.h"

namespace rankrl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::data_file;
using test::kBin;
using test::kVal;

struct FinalHeal : ::testing::Test {
  void SetUp() override {
    if (!fs::exists(data_file(kBin)) || !fs::exists(data_file("tasks/arc_easy.jsonl"))) GTEST_SKIP() << "shared data missing";
    test::write_small_task_splits(dir.file("tasks"));
    // A short held-out text, so `eval --text` covers the same tokens as the search's perplexity.
    const std::string text = test::read_text(data_file(kVal)).substr(0, 2000);
    test::write_text(dir.file("heldout.txt"), text.substr(0, text.rfind(' ')));
  }
  std::string calib() const { return " --model " + data_file(kBin) + " --calib " + data_file(kVal) + " --calib-tokens 1024 --ctx 128"; }
  // A small search: two factoring methods, uniform and random baselines, two finalists each.
  std::string search(const std::string& out, const std::string& extra) const {
    return "search" + calib() + " --heldout " + dir.file("heldout.txt") + " --keep 0.6 --rkd " + dir.file("tasks") +
           " --vrkd " + dir.file("tasks") + " --test " + dir.file("tasks") +
           " --episodes 4 --episodes-per-update 2 --reward-items 8 --promote 3 --baseline-evaluations 3 --finalists 2"
           " --methods dense,svd,svdllm --baselines uniform,random --threads 1 --seed 3 -q --out " +
           dir.file(out) + " " + extra;
  }
  static json read_json(const std::string& path) { return json::parse(test::read_text(path)); }
  static json eval_json(const std::string& args) {
    test::CliResult r = test::run_cli("eval " + args + " --threads 1 --json -q");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? json::parse(r.out) : json::object();
  }
  test::TempDir dir;
};

// The healed scores of every approach's chosen plan are those of `compress --plan
// plans/<approach>.json --heal-compensate` evaluated by `eval` (VRkD, test, held-out ppl); the
// chosen approach is the one best on healed VRkD; model/ is the healed model; the healed
// differences are paired differences of the healed test means.
TEST_F(FinalHeal, HealedScoresEqualCompressHealCompensateThenEval) {
  test::CliResult r = test::run_cli(search("run", "--final-heal compensate --json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json res = json::parse(r.out);
  EXPECT_EQ(res["final_heal"], "compensate");
  std::string best;
  double best_vrkd = -1e300;
  std::string best_uniform;
  double best_uniform_vrkd = -1e300;
  for (const json& a : res["approaches"]) {
    ASSERT_TRUE(a.contains("healed")) << a["name"];
    const double v = a["healed"]["vrkd"]["margin"];
    if (v > best_vrkd) best = a["name"], best_vrkd = v;
    if (a["name"].get<std::string>().rfind("uniform:", 0) == 0 && v > best_uniform_vrkd) best_uniform = a["name"], best_uniform_vrkd = v;
  }
  EXPECT_EQ(res["chosen"], best);
  EXPECT_EQ(res["bootstrap"]["best_uniform_healed"], best_uniform);
  std::map<std::string, json> healed_test;
  for (const json& a : res["approaches"]) healed_test[a["name"]] = a["healed"]["test"];
  for (const std::string& name : std::set<std::string>{"uniform:svdllm", "ppo", res["chosen"].get<std::string>()}) {
    const json* a = nullptr;
    for (const json& x : res["approaches"])
      if (x["name"] == name) a = &x;
    ASSERT_NE(a, nullptr) << name;
    std::string file = name;
    std::replace(file.begin(), file.end(), ':', '-');
    const std::string out = dir.file("healed-" + file);
    test::CliResult c = test::run_cli("compress" + calib() + " --plan " + dir.file("run/plans/" + file + ".json") +
                                      " --heal-compensate --threads 1 -q --out " + out);
    ASSERT_EQ(c.exit_code, 0) << c.err;
    const json& h = (*a)["healed"];
    for (const char* split : {"vrkd", "test"}) {
      const json e = eval_json("--model " + out + " --tasks " + dir.file(std::string("tasks/") + split + ".jsonl"));
      EXPECT_NEAR(e["margin"].get<double>(), h[split]["margin"].get<double>(), 1e-4) << name << " " << split;
      EXPECT_DOUBLE_EQ(e["acc"].get<double>(), h[split]["acc"].get<double>()) << name << " " << split;
    }
    const json p = eval_json("--model " + out + " --text " + dir.file("heldout.txt") + " --ctx 128");
    EXPECT_NEAR(p["ppl"].get<double>(), h["heldout_ppl"].get<double>(), 1e-5 * p["ppl"].get<double>()) << name;
    // Healing changed the plan's scores (the unhealed ones are beside them).
    EXPECT_NE(h["heldout_ppl"].get<double>(), (*a)["heldout_ppl"].get<double>()) << name;
    // Paired differences of the healed test means: vs dense and vs the healed best uniform plan.
    EXPECT_NEAR(h["vs_dense"]["margin"]["diff"].get<double>(),
                h["test"]["margin"].get<double>() - res["dense"]["test"]["margin"].get<double>(), 1e-9);
    EXPECT_NEAR(h["vs_best_uniform"]["margin"]["diff"].get<double>(),
                h["test"]["margin"].get<double>() - healed_test[best_uniform]["margin"].get<double>(), 1e-9);
    EXPECT_GT(h["seconds"].get<double>(), 0.0);
  }
  // The written model is the chosen plan healed: it scores the test split as results.json says.
  const json* chosen = nullptr;
  for (const json& a : res["approaches"])
    if (a["name"] == res["chosen"]) chosen = &a;
  const json e = eval_json("--model " + dir.file("run/model") + " --tasks " + dir.file("tasks/test.jsonl"));
  EXPECT_NEAR(e["margin"].get<double>(), (*chosen)["healed"]["test"]["margin"].get<double>(), 1e-4);
  EXPECT_EQ(read_json(dir.file("run/model/report.json"))["search"]["final_heal"], "compensate");
  // The report shows both, and results.json reads back through its type byte for byte.
  const std::string md = test::read_text(dir.file("run/report.md"));
  EXPECT_NE(md.find("healed test margin"), std::string::npos);
  EXPECT_NE(md.find("chosen: " + res["chosen"].get<std::string>() + " (best healed VRkD margin)"), std::string::npos);
  const std::string text = test::read_text(dir.file("run/results.json"));
  EXPECT_EQ(results_to_json(read_results(dir.file("run/results.json"))).dump(2) + "\n", text);
}

// --final-heal none: no healed field, no healed checkpoint entry, and the same plans, log and
// model as the unhealed choice always gave (the compensate run's unhealed numbers of an approach
// whose choice healing did not move are the same numbers).
TEST_F(FinalHeal, NoneLeavesTheRunAsItWas) {
  test::CliResult r = test::run_cli(search("none", "--final-heal none --json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json res = json::parse(r.out);
  EXPECT_EQ(res["final_heal"], "none");
  EXPECT_FALSE(res["bootstrap"].contains("best_uniform_healed"));
  for (const json& a : res["approaches"]) EXPECT_FALSE(a.contains("healed")) << a["name"];
  EXPECT_FALSE(read_json(dir.file("none/checkpoint/state.json")).contains("final_heal"));
  EXPECT_FALSE(read_json(dir.file("none/model/report.json"))["search"].contains("final_heal"));
  EXPECT_EQ(test::read_text(dir.file("none/report.md")).find("healed"), std::string::npos);
  // The uniform approaches have one candidate each: healing cannot change their plan, so their
  // unhealed scores are the same numbers in both runs.
  test::CliResult h = test::run_cli(search("healed", "--final-heal compensate --json"));
  ASSERT_EQ(h.exit_code, 0) << h.err;
  const json hres = json::parse(h.out);
  for (size_t i = 0; i < 2; ++i) {
    ASSERT_EQ(res["approaches"][i]["name"], hres["approaches"][i]["name"]);
    for (const char* k : {"rkd", "vrkd", "test", "heldout_ppl", "vs_dense"})
      EXPECT_EQ(res["approaches"][i][k], hres["approaches"][i][k]) << res["approaches"][i]["name"] << " " << k;
  }
  // The search itself (its log of every evaluation, times aside) is the same with or without healing.
  const std::vector<json> log = test::log_without_times(dir.file("none/log.jsonl"));
  EXPECT_GT(log.size(), 10u);
  EXPECT_EQ(log, test::log_without_times(dir.file("healed/log.jsonl")));
}

// Killed right after the checkpoint that saved the first approach's healed scores, then resumed:
// the same choice, plan, model and results (times aside), and the saved healed entry is taken as
// it was (its seconds unchanged: nothing recomputed). --finalists and --final-heal are part of the
// resume fingerprint.
TEST_F(FinalHeal, ResumeKeepsTheHealedScores) {
  test::CliResult whole = test::run_cli(search("whole", "--final-heal compensate"));
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  // The search proper checkpoints 15 times (2 uniform plans, 4 episodes, the greedy plan, 3
  // promoted plans and done, 4 random units); then uniform:svd's healed VRkD (16th) and its full
  // healed scores (17th): killed there.
  const std::string part = "part";
  ASSERT_EQ(test::run_cli(search(part, "--final-heal compensate --abort-after 17")).exit_code, 3);
  EXPECT_FALSE(fs::exists(dir.file(part + "/results.json")));
  const json state = read_json(dir.file(part + "/checkpoint/state.json"));
  ASSERT_TRUE(state.contains("final_heal"));
  ASSERT_EQ(state["final_heal"].size(), 1u);
  ASSERT_TRUE(state["final_heal"]["uniform:svd"].begin()->contains("test"));
  const json saved = read_json(dir.file(part + "/checkpoint/state.json"))["final_heal"]["uniform:svd"];
  // Another --finalists or --final-heal is another run.
  std::string other = search(part, "--final-heal none --resume");
  other.replace(other.find("--finalists 2"), 13, "--finalists 3");
  test::CliResult refused = test::run_cli(other);
  EXPECT_EQ(refused.exit_code, 1) << refused.err;
  EXPECT_NE(refused.err.find("--finalists differs: 2 vs 3"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--final-heal differs: \"compensate\" vs \"none\""), std::string::npos) << refused.err;
  test::CliResult resumed = test::run_cli(search(part, "--final-heal compensate --resume"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(read_json(dir.file(part + "/checkpoint/state.json"))["final_heal"]["uniform:svd"], saved);
  EXPECT_EQ(test::read_text(dir.file("whole/plan.json")), test::read_text(dir.file(part + "/plan.json")));
  EXPECT_EQ(test::read_text(dir.file("whole/model/model.safetensors")), test::read_text(dir.file(part + "/model/model.safetensors")));
  json w = read_json(dir.file("whole/results.json")), p = read_json(dir.file(part + "/results.json"));
  EXPECT_EQ(w["chosen"], p["chosen"]);
  ASSERT_EQ(w["approaches"].size(), p["approaches"].size());
  for (size_t i = 0; i < w["approaches"].size(); ++i) {
    json a = w["approaches"][i]["healed"], b = p["approaches"][i]["healed"];
    a.erase("seconds"), b.erase("seconds");
    EXPECT_EQ(a, b) << i;
  }
}

// results.json counts, per split, the items dropped because an answer fills the model's context
// (stories260K: 512 tokens); the items that remain are the ones scored.
TEST_F(FinalHeal, ResultsCountItemsSkippedAsTooLong) {
  std::string words;
  for (int i = 0; i < 700; ++i) words += "once upon a time ";
  json item = {{"query", "Question: which one?"}, {"choices", {"a cat", words}}, {"gold", 0}};
  std::string vrkd = test::read_text(dir.file("tasks/vrkd.jsonl"));
  test::write_text(dir.file("tasks/vrkd.jsonl"), vrkd + item.dump() + "\n" + item.dump() + "\n");
  std::string cmd = search("skip", "--json");
  cmd.replace(cmd.find("--episodes 4"), 12, "--episodes 2");
  cmd.replace(cmd.find("--baselines uniform,random"), 26, "--baselines uniform");
  test::CliResult r = test::run_cli(cmd);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json res = json::parse(r.out);
  EXPECT_EQ(res["skipped_too_long"], json({{"rkd", 0}, {"vrkd", 2}, {"test", 0}}));
  EXPECT_EQ(res["splits"], json({{"rkd", 16}, {"vrkd", 16}, {"test", 16}}));
  EXPECT_EQ(read_results(dir.file("skip/results.json")).skipped_too_long.vrkd, 2u);
}

}  // namespace
}  // namespace rankrl
