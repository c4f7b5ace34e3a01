// Policies as artifacts: a saved policy acts exactly as the trained one, --init-policy starts a
// search from it (and the resume fingerprint covers it by content), `rankrl plan --policy`
// decodes a plan that meets the budget with no evaluation, and a policy refuses what it does not
// know (corrupt file, method, keep, role) with a one-line error.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "model/model.h"
#include "model/transformer.h"
#include "plan/plan.h"
#include "search/agent.h"
#include "test_util.h"

namespace rankrl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::data_file;

PolicyInfo small_info() {
  PolicyInfo p;
  p.agent = "ppo";
  p.hidden = 16;
  p.feature_version = 2;
  p.features = {"a", "b", "c"};
  p.methods = {"dense", "svd", "svdllm"};
  p.selects = {"top", "importance"};
  p.roles = {"q", "k"};
  p.keep_min = p.keep_max = 0.6;
  p.trained_on = {json{{"model", "m.bin"}, {"keep", 0.6}}};
  p.episodes = 12;
  return p;
}

// An agent trained a little on a toy reward, so its network is no longer the initial one.
std::unique_ptr<Agent> trained_agent(const AgentOptions& o) {
  auto agent = make_agent("ppo", 3, 3, 2, o, 5);
  std::mt19937_64 rng(2);
  for (int e = 0; e < 8; ++e) {
    std::vector<StepRecord> ep;
    for (int t = 0; t < 3; ++t) {
      StepRecord rec;
      agent->act({float(t) / 3, 0.5f, 1.f}, rng, rec);
      ep.push_back(rec);
    }
    ep.back().reward = ep[0].action.rank_frac + (ep[1].action.method == 2);
    agent->finish_episode(std::move(ep));
  }
  return agent;
}

TEST(PolicyFile, SaveThenLoadActsIdentically) {
  test::TempDir dir;
  AgentOptions o;
  o.hidden = 16;
  o.episodes_per_update = 2;
  auto a = trained_agent(o);
  a->save_policy(dir.file("p.policy"), policy_info_json(small_info()));
  const PolicyInfo info = read_policy_info(dir.file("p.policy"));
  EXPECT_EQ(policy_info_json(info), policy_info_json(small_info()));
  auto b = make_agent(info.agent, 3, 3, 2, o, 999);  // another initialisation, then the file's weights
  b->load_policy(dir.file("p.policy"));
  std::mt19937_64 ra(7), rb(7);
  for (int t = 0; t < 20; ++t) {
    const std::vector<float> s = {float(t) / 20, float(t % 3), 0.25f};
    StepRecord x, y;
    const bool greedy = t % 2 == 0;
    Action p = a->act(s, ra, x, greedy), q = b->act(s, rb, y, greedy);
    EXPECT_EQ(p.method, q.method) << t;
    EXPECT_EQ(p.select, q.select) << t;
    EXPECT_DOUBLE_EQ(p.rank_frac, q.rank_frac) << t;
    EXPECT_DOUBLE_EQ(x.logp, y.logp) << t;
  }
  // Masked methods are never chosen, greedy or sampled.
  b->restrict_methods({true, false, false});
  for (int t = 0; t < 20; ++t) {
    StepRecord r;
    EXPECT_EQ(b->act({0.1f, 0.2f, 0.3f}, rb, r, t % 2 == 0).method, 0);
  }
}

TEST(PolicyFile, CorruptTruncatedOrForeignFilesAreErrors) {
  test::TempDir dir;
  AgentOptions o;
  o.hidden = 16;
  auto a = trained_agent(o);
  a->save_policy(dir.file("p.policy"), policy_info_json(small_info()));
  const std::string bytes = test::read_text(dir.file("p.policy"));
  test::write_text(dir.file("half.policy"), bytes.substr(0, bytes.size() / 2));
  test::write_text(dir.file("text.policy"), "{\"format\": \"rankrl-policy\"}\n");
  a->save(dir.file("agent.pt"));  // an agent checkpoint is not a policy
  json other = policy_info_json(small_info());
  other["format"] = "something-else";
  a->save_policy(dir.file("foreign.policy"), other);
  json newer = policy_info_json(small_info());
  newer["format_version"] = 99;
  a->save_policy(dir.file("newer.policy"), newer);
  const std::map<std::string, std::string> expected = {
      {"half.policy", "not a readable policy file"}, {"text.policy", "not a readable policy file"},
      {"agent.pt", "not a rankrl policy file"},      {"foreign.policy", "not a rankrl policy file"},
      {"newer.policy", "policy format version 99"},  {"missing.policy", "no such policy file"}};
  for (const auto& [file, what] : expected) {
    try {
      read_policy_info(dir.file(file));
      ADD_FAILURE() << file << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(dir.file(file)), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  }
}

// --- through the CLI --------------------------------------------------------------------------

struct PolicyCli : ::testing::Test {
  void SetUp() override {
    if (!fs::exists(data_file(test::kBin)) || !fs::exists(data_file("tasks/arc_easy.jsonl"))) GTEST_SKIP() << "shared data missing";
    std::ifstream in(data_file("tasks/arc_easy.jsonl"));
    std::string line, part;
    for (int i = 0; i < 12 && std::getline(in, line); ++i) part += line + "\n";
    test::write_text(dir.file("items.jsonl"), part);
  }
  std::string calib() const {
    return " --calib " + data_file(test::kVal) + " --calib-tokens 1024 --ctx 128 --threads 1 -q";
  }
  std::string search(const std::string& out, const std::string& extra, int episodes = 6,
                     const std::string& methods = "dense,svd,svdllm") const {
    const std::string items = dir.file("items.jsonl");
    return "search --model " + data_file(test::kBin) + calib() + " --heldout-tokens 512 --keep 0.6 --rkd " + items +
           " --vrkd " + items + " --test " + items + " --episodes " + std::to_string(episodes) + " --episodes-per-update 2 --reward-items 4" +
           " --seed 3 --finalists 1 --promote 2 --baselines uniform --methods " + methods + " --out " + dir.file(out) +
           " " + extra;
  }
  std::string plan(const std::string& policy, const std::string& out, const std::string& extra = "") const {
    return "plan --policy " + policy + " --model " + data_file(test::kBin) + calib() + " --out " + dir.file(out) +
           " --json " + extra;
  }
  // The agent's greedy plan in a search log: its applied actions.
  static json greedy_actions(const std::string& log) {
    std::ifstream in(log);
    for (std::string line; std::getline(in, line);) {
      json j = json::parse(line);
      if (j["approach"] == "ppo" && j.value("greedy", false)) return j["actions"];
    }
    return nullptr;
  }
  void expect_error(const std::string& args, int code, const std::string& what) const {
    test::CliResult r = test::run_cli(args);
    EXPECT_EQ(r.exit_code, code) << args << "\n" << r.err;
    EXPECT_EQ(r.err.rfind("rankrl: error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
  }
  test::TempDir dir;
};

// An anchored policy (its rank action and anchor read from the policy file; the env anchors
// itself to the allocation it computes on the model: svdllm2's loss rule, or kfac's K-FAC loss
// estimates from a backward pass in calibration) decodes on its own model to the search's greedy plan.
TEST_F(PolicyCli, AnchoredPolicyPlansAsTheSearchDecodedIt) {
  for (const std::string anchor : {"svdllm2", "kfac"}) {
    SCOPED_TRACE(anchor);
    const std::string policy = dir.file(anchor + ".policy"), run = "run-" + anchor, planned_file = anchor + "-plan.json";
    test::CliResult r = test::run_cli(
        search(run, "--rank-action anchored --anchor " + anchor + " --selects top --save-policy " + policy, 4, "svdllm"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(read_policy_info(policy).rank_action, "anchored");
    EXPECT_EQ(read_policy_info(policy).anchor, anchor);
    test::CliResult p = test::run_cli(plan(policy, planned_file, "--keep 0.6"));
    ASSERT_EQ(p.exit_code, 0) << p.err;
    const Plan planned = read_plan(dir.file(planned_file));
    const json greedy = greedy_actions(dir.file(run + "/log.jsonl"));
    Model m = load_model(data_file(test::kBin), data_file(test::kTok));
    const auto linears = m.net->linears();
    ASSERT_EQ(greedy.size(), linears.size());
    for (size_t i = 0; i < linears.size(); ++i) {
      const int64_t rows = linears[i]->out_features(), cols = linears[i]->in_features();
      const WeightDecision& d = planned.weights.at(linears[i]->name());
      EXPECT_EQ(d.method, "svdllm") << linears[i]->name();
      EXPECT_EQ(d.rank, std::llround(greedy[i][1].get<double>() * double(rows * cols) / double(rows + cols))) << linears[i]->name();
    }
  }
  // Fine-tuning must keep the anchor the policy learned against.
  expect_error(search("tune", "--rank-action anchored --anchor svdllm2 --selects top --init-policy " + dir.file("kfac.policy"), 2,
                      "svdllm"),
               1, "the policy was trained with --anchor kfac");
}

TEST_F(PolicyCli, SavedPolicyPlansWithoutEvaluationsAndFineTunes) {
  const std::string policy = dir.file("p.policy");
  test::CliResult r = test::run_cli(search("run", "--save-policy " + policy));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const PolicyInfo info = read_policy_info(policy);
  EXPECT_EQ(info.methods, (std::vector<std::string>{"dense", "svd", "svdllm"}));
  EXPECT_DOUBLE_EQ(info.keep_min, 0.6);
  EXPECT_EQ(info.episodes, 6);
  std::vector<std::string> roles = info.roles;
  std::sort(roles.begin(), roles.end());
  EXPECT_EQ(roles, (std::vector<std::string>{"down", "gate", "k", "o", "q", "up", "v"}));
  EXPECT_EQ(info.features.size(), 2 + 8 + 2 + 2 * 3 + 4 + 3 + 2u);
  // plan --policy on the model it was trained on, same calibration: the search's greedy plan,
  // action for action (rank = applied rank fraction · m·n/(m+n)), with zero evaluations.
  test::CliResult p = test::run_cli(plan(policy, "plan.json", "--keep 0.6"));
  ASSERT_EQ(p.exit_code, 0) << p.err;
  const json summary = json::parse(p.out);
  EXPECT_EQ(summary["rkd_evaluations"], 0);
  EXPECT_EQ(summary["surrogate_evaluations"], 0);
  EXPECT_LE(summary["keep_actual"].get<double>(), 0.6 + 1e-9);
  EXPECT_GE(summary["keep_actual"].get<double>(), 0.6 * 0.99);
  const Plan planned = read_plan(dir.file("plan.json"));
  Model m = load_model(data_file(test::kBin), data_file(test::kTok));
  EXPECT_NO_THROW(validate_plan(planned, *m.net, "plan.json"));
  const json greedy = greedy_actions(dir.file("run/log.jsonl"));
  ASSERT_TRUE(greedy.is_array());
  const std::vector<std::string> methods = {"dense", "svd", "svdllm"};
  const auto linears = m.net->linears();
  ASSERT_EQ(greedy.size(), linears.size());
  int64_t factored = 0;
  double cost = 0.0, total = 0.0;
  for (size_t i = 0; i < linears.size(); ++i) {
    const int64_t rows = linears[i]->out_features(), cols = linears[i]->in_features();
    const WeightDecision& d = planned.weights.at(linears[i]->name());
    EXPECT_EQ(d.method, methods[greedy[i][0].get<size_t>()]) << linears[i]->name();
    if (d.method != kDense) {
      ++factored;
      EXPECT_EQ(d.rank, std::llround(greedy[i][1].get<double>() * double(rows * cols) / double(rows + cols))) << linears[i]->name();
    }
    cost += d.method == kDense ? double(rows * cols) : double(d.rank * (rows + cols));
    total += double(rows * cols);
  }
  EXPECT_NEAR(summary["keep_actual"].get<double>(), cost / total, 1e-12);
  EXPECT_EQ(summary["closed_form_errors_computed"], factored);
  // The same flags give the same plan; samples are scored only by closed-form errors.
  ASSERT_EQ(test::run_cli(plan(policy, "again.json", "--keep 0.6")).exit_code, 0);
  EXPECT_EQ(test::read_text(dir.file("plan.json")), test::read_text(dir.file("again.json")));
  test::CliResult s = test::run_cli(plan(policy, "sampled.json", "--keep 0.62 --samples 3 --seed 1"));
  ASSERT_EQ(s.exit_code, 0) << s.err;
  const json sampled = json::parse(s.out);
  EXPECT_EQ(sampled["candidates"], 4);
  EXPECT_LE(sampled["closed_form_error"].get<double>(), sampled["greedy_closed_form_error"].get<double>());
  EXPECT_GE(sampled["closed_form_errors_computed"].get<int64_t>(), factored);
  // compress --plan applies it.
  test::CliResult c = test::run_cli("compress --model " + data_file(test::kBin) + calib() + " --plan " +
                                    dir.file("plan.json") + " --out " + dir.file("small"));
  ASSERT_EQ(c.exit_code, 0) << c.err;

  // --init-policy: one episode (no update yet with 2 episodes per update), so the greedy plan is
  // the loaded policy's, and the saved policy's history grows.
  const std::string tuned = dir.file("tuned.policy");
  test::CliResult f = test::run_cli(search("tune", "--init-policy " + policy + " --save-policy " + tuned, 1));
  ASSERT_EQ(f.exit_code, 0) << f.err;
  EXPECT_EQ(greedy_actions(dir.file("tune/log.jsonl")), greedy);
  const PolicyInfo t = read_policy_info(tuned);
  EXPECT_EQ(t.episodes, 7);
  EXPECT_EQ(t.trained_on.size(), 2u);
  // From scratch with one episode the greedy plan is the initial network's, not the policy's.
  ASSERT_EQ(test::run_cli(search("scratch", "", 1)).exit_code, 0);
  EXPECT_NE(greedy_actions(dir.file("scratch/log.jsonl")), greedy);
  // The resume fingerprint covers the init policy by content.
  ASSERT_EQ(test::run_cli(search("fp", "--init-policy " + policy + " --abort-after 3", 4)).exit_code, 3);
  fs::copy_file(tuned, policy, fs::copy_options::overwrite_existing);
  expect_error(search("fp", "--init-policy " + policy + " --resume", 4), 1, "--init-policy differs");

  // Wrong-model cases, each one line and no plan written.
  expect_error(plan(tuned, "bad.json", "--keep 0.8"), 1, "outside the keeps the policy was trained at");
  expect_error(plan(tuned, "bad.json", "--keep 0.6 --methods dense,asvd"), 1, "does not know method 'asvd'");
  expect_error(search("bad", "--init-policy " + tuned, 6, "dense,svdllm"), 1, "trained on --methods dense,svd,svdllm");
  const std::string gpt2 = data_file("gpt2-random-tiny");
  expect_error("plan --policy " + tuned + " --model " + gpt2 + calib() + " --keep 0.6 --out " + dir.file("bad.json"), 1,
               "never acted on a 'qkv' weight");
  test::write_text(dir.file("cut.policy"), test::read_text(tuned).substr(0, 500));
  expect_error(plan(dir.file("cut.policy"), "bad.json", "--keep 0.6"), 1, "not a readable policy file");
  EXPECT_FALSE(fs::exists(dir.file("bad.json")));
}

// plan --policy makes its factor store as search does: streamed layer by layer with --calib (no
// Fisher method), the same plan and closed-form errors as from whole-model statistics; a
// search's --factor-cache store (with per-rank errors: --shaping) is loaded by a plan on the same
// inputs and plans the same.
TEST_F(PolicyCli, StreamedPlanEqualsWholeModelAndLoadsTheSearchStore) {
  const std::string policy = dir.file("p.policy"), store = dir.file("fc");
  test::CliResult r = test::run_cli(search("run", "--shaping 0.5 --save-policy " + policy + " --factor-cache " + store, 2));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto summary_of = [](const test::CliResult& c) {
    json j = json::parse(c.out);
    j.erase("seconds"), j.erase("out");
    return j;
  };
  Model m = load_model(data_file(test::kBin), data_file(test::kTok));
  const int64_t two_methods = 2 * int64_t(m.net->linears().size());  // svd and svdllm of every projection
  // Greedy alone, and with samples scored by closed-form errors.
  for (const std::string& extra : {std::string("--keep 0.6"), std::string("--keep 0.62 --samples 3 --seed 1")}) {
    test::CliResult streamed = test::run_cli(plan(policy, "streamed.json", extra));
    ASSERT_EQ(streamed.exit_code, 0) << streamed.err;
    test::CliResult whole = test::run_cli(plan(policy, "whole.json", extra + " --whole-model-setup"));
    ASSERT_EQ(whole.exit_code, 0) << whole.err;
    EXPECT_EQ(test::read_text(dir.file("streamed.json")), test::read_text(dir.file("whole.json"))) << extra;
    EXPECT_EQ(summary_of(streamed), summary_of(whole)) << extra;
    EXPECT_EQ(summary_of(streamed)["factorizations_loaded"], 0) << extra;
    // The search's store: every factorization loaded (no calibration), the same plan and errors.
    test::CliResult cached = test::run_cli(plan(policy, "cached.json", extra + " --factor-cache " + store));
    ASSERT_EQ(cached.exit_code, 0) << cached.err;
    json loaded = summary_of(cached);
    EXPECT_EQ(loaded["factorizations_loaded"], two_methods) << extra;
    loaded["factorizations_loaded"] = 0;
    EXPECT_EQ(loaded, summary_of(streamed)) << extra;
    EXPECT_EQ(test::read_text(dir.file("cached.json")), test::read_text(dir.file("streamed.json"))) << extra;
  }
}

}  // namespace
}  // namespace rankrl
