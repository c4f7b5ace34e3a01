// search --budget params|flops|latency, the latency table (eval/latency.h) and the speed fields of
// results.json and eval --json. Timings are never asserted: the latency plumbing runs on injected
// tables (a counting "measurement" or a table file), whose numbers the tests know.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "eval/latency.h"
#include "model/model.h"
#include "model/transformer.h"
#include "search/budget.h"
#include "test_util.h"

namespace rankrl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::data_file;
using test::kBin;
using test::kVal;

// --- costs ---------------------------------------------------------------------------------

TEST(BudgetCost, FlopsAreTwiceTheParametersPerToken) {
  for (auto [m, n] : {std::pair<int64_t, int64_t>{64, 172}, {32, 64}, {4096, 11008}}) {
    const WeightCost p = linear_cost("params", m, n), f = linear_cost("flops", m, n);
    EXPECT_EQ(f.dense, 2.0 * double(m) * double(n));  // 2·in·out
    EXPECT_EQ(p.dense, double(m) * double(n));
    for (int64_t r : {1, 7, 20}) {
      EXPECT_EQ(f.factored(r), 2.0 * double(r) * double(m + n));  // 2·r·(in+out)
      EXPECT_EQ(p.factored(r), double(r) * double(m + n));
      // The same rank fraction means the same rank in both (the fractions are equal).
      const int64_t max_rank = largest_saving_rank(m, n);
      const double frac = double(r * (m + n)) / double(m * n);
      EXPECT_EQ(rank_for_fraction(p, m, n, max_rank, frac), rank_for_fraction(f, m, n, max_rank, frac));
    }
    // Bounds: the smallest rank reaching lo, the largest within hi.
    EXPECT_EQ(f.rank_at_least(2.0 * double(3 * (m + n)) + 1.0), 4);
    EXPECT_EQ(f.rank_at_most(2.0 * double(3 * (m + n)) + 1.0), 3);
  }
}

TEST(BudgetCost, TabulatedBoundsAndFractions) {
  WeightCost c{10.0, 0.0, {1.0, 2.0, 2.0, 4.0, 8.0}};  // ranks 1..5
  EXPECT_EQ(c.factored(3), 2.0);
  EXPECT_EQ(c.rank_at_least(2.0), 2);
  EXPECT_EQ(c.rank_at_least(2.5), 4);
  EXPECT_EQ(c.rank_at_least(9.0), 6);  // past the table: the caller clamps
  EXPECT_EQ(c.rank_at_most(2.0), 3);
  EXPECT_EQ(c.rank_at_most(0.5), 0);
  EXPECT_EQ(rank_for_fraction(c, 8, 8, 5, 0.4), 4);  // largest rank with time ≤ 0.4·10
  EXPECT_EQ(rank_for_fraction(c, 8, 8, 5, 0.01), 1);
  EXPECT_EQ(latency_grid(20), (std::vector<int64_t>{1, 2, 3, 4, 6, 8, 12, 16, 20}));
  EXPECT_EQ(latency_grid(1), (std::vector<int64_t>{1}));
}

// --- the latency table ---------------------------------------------------------------------

// A fake clock: the time of a Linear is known, and every call counted.
struct CountingMeasure {
  int* calls;
  double operator()(const LinearShape& s) const {
    ++*calls;
    return 1e-6 * double(s.rank == 0 ? s.in * s.out : s.rank * (s.in + s.out) + 100);
  }
};

TEST(LatencyTable, MeasuresOnceCachesAndRefusesCorruptOrForeignFiles) {
  test::TempDir dir;
  int calls = 0;
  const Workload w = parse_workload("prefill:2x16");
  LatencyTable a("host A", 1, w, "f32", CountingMeasure{&calls});
  EXPECT_DOUBLE_EQ(a.seconds({64, 32, 0}), 64 * 32 * 1e-6);
  EXPECT_DOUBLE_EQ(a.seconds({64, 32, 0}), 64 * 32 * 1e-6);
  EXPECT_DOUBLE_EQ(a.seconds({64, 32, 4}), (4 * 96 + 100) * 1e-6);
  EXPECT_EQ(calls, 2);
  a.set_rest_seconds("model", 0.25);
  const std::string path = dir.file(a.file_name());
  a.save(path);
  // Loaded from the file: nothing measured again, the same values.
  LatencyTable b("host A", 1, w, "f32", CountingMeasure{&calls});
  EXPECT_EQ(b.load(path), 2);
  EXPECT_DOUBLE_EQ(b.seconds({64, 32, 4}), (4 * 96 + 100) * 1e-6);
  ASSERT_NE(b.rest_seconds("model"), nullptr);
  EXPECT_EQ(*b.rest_seconds("model"), 0.25);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(b.load(dir.file("absent.json")), 0);
  // Another thread count or workload is another file, and another key's file is refused.
  LatencyTable c("host A", 2, w, "f32", CountingMeasure{&calls});
  LatencyTable d("host A", 1, parse_workload("decode:1"), "f32", CountingMeasure{&calls});
  EXPECT_NE(c.file_name(), a.file_name());
  EXPECT_NE(d.file_name(), a.file_name());
  EXPECT_THROW(c.load(path), Error);
  // A truncated file is an error naming it (the search warns and measures again).
  const std::string text = test::read_text(path);
  test::write_text(path, text.substr(0, text.size() / 2));
  LatencyTable e("host A", 1, w, "f32", CountingMeasure{&calls});
  try {
    e.load(path);
    ADD_FAILURE() << "a truncated latency table was accepted";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find(path), std::string::npos) << err.what();
  }
  // An injected (fixed) table never measures: a missing entry is an error.
  test::write_text(path, text);
  LatencyTable f("other host", 8, w, "bf16", CountingMeasure{&calls});
  f.load_fixed(path);
  EXPECT_DOUBLE_EQ(f.seconds({64, 32, 0}), 64 * 32 * 1e-6);
  EXPECT_THROW(f.seconds({64, 32, 5}), Error);
  EXPECT_EQ(calls, 2);
}

// The Transformer's timer sees every Linear once a forward pass and changes nothing it computes.
TEST(LatencyTable, TheForwardTimerSeesEachLinearOnceAndChangesNothing) {
  if (!fs::exists(data_file(kBin))) GTEST_SKIP() << "shared data missing";
  Model m = load_model(data_file(kBin), "");
  const at::Tensor ids = at::arange(32, at::kLong).remainder_(m.config().vocab_size).reshape({2, 16});
  const at::Tensor plain = m.net->forward(ids);
  Transformer timed = *m.net;
  std::map<std::string, int> calls;
  timed.set_timer([&](const Linear& l, double seconds) {
    EXPECT_GT(seconds, 0.0);
    ++calls[l.name()];
  });
  EXPECT_TRUE(at::equal(timed.forward(ids), plain));
  EXPECT_EQ(calls.size(), m.net->linears().size());
  for (const auto& [name, n] : calls) EXPECT_EQ(n, 1) << name;
  // One pass (no medians): the Linears' times lie inside the pass's.
  const ForwardTimes t = time_forward_by_linear(*m.net, parse_workload("prefill:2x16"), 1);
  ASSERT_EQ(t.linears.size(), m.net->linears().size());
  double sum = 0.0;
  for (double s : t.linears) {
    EXPECT_GT(s, 0.0);
    sum += s;
  }
  EXPECT_LT(sum, t.forward);
}

// measure_in_forward gives every shape of the model its dense time and a time at every grid rank,
// and the rest of the pass; the model is left as it was; a complete table measures nothing more.
TEST(LatencyTable, MeasuredInsideForwardPassesForEveryShapeAndGridRank) {
  if (!fs::exists(data_file(kBin))) GTEST_SKIP() << "shared data missing";
  test::TempDir dir;
  Model m = load_model(data_file(kBin), "");
  const at::Tensor ids = at::arange(32, at::kLong).remainder_(m.config().vocab_size).reshape({2, 16});
  const at::Tensor before = m.net->forward(ids);
  const Workload w = parse_workload("prefill:2x16");
  const RanksOf grid = [](int64_t in, int64_t out) { return latency_grid(largest_saving_rank(out, in)); };
  LatencyTable a("host", 1, w, "f32");
  measure_in_forward(a, *m.net, "model", grid, 1);
  int64_t expected = 0;
  std::map<std::string, bool> shapes;
  for (const Linear* l : m.net->linears()) {
    EXPECT_FALSE(l->is_low_rank()) << l->name();
    const int64_t in = l->in_features(), out = l->out_features();
    if (shapes[LinearShape{in, out, 0}.key()]) continue;
    shapes[LinearShape{in, out, 0}.key()] = true;
    EXPECT_TRUE(a.has({in, out, 0}));
    for (int64_t r : grid(in, out)) EXPECT_TRUE(a.has({in, out, r})) << in << "x" << out << " r" << r;
    expected += 1 + int64_t(grid(in, out).size());
  }
  EXPECT_TRUE(at::equal(m.net->forward(ids), before));
  ASSERT_NE(a.rest_seconds("model"), nullptr);
  EXPECT_GE(*a.rest_seconds("model"), 0.0);
  const std::string path = dir.file(a.file_name());
  a.save(path);
  const json saved = json::parse(test::read_text(path));
  EXPECT_EQ(int64_t(saved["linear_seconds"].size()), expected);
  // Loaded back, nothing is missing: nothing is measured again (the file stays byte for byte).
  LatencyTable b("host", 1, w, "f32");
  EXPECT_EQ(b.load(path), expected);
  measure_in_forward(b, *m.net, "model", grid, 1);
  b.save(path);
  EXPECT_EQ(json::parse(test::read_text(path)), saved);
  // A table without a measure function refuses a shape it lacks.
  EXPECT_THROW(b.seconds({3, 5, 0}), Error);
  // Decode passes (a KV cache through the truncated passes too) fill the same entries.
  LatencyTable d("host", 1, parse_workload("decode:1"), "f32");
  measure_in_forward(d, *m.net, "model", grid, 1);
  d.save(path);
  EXPECT_EQ(int64_t(json::parse(test::read_text(path))["linear_seconds"].size()), expected);
}

// The GPT-2 layout (fused qkv, biases, LayerNorm, one layer): every shape and grid rank too.
TEST(LatencyTable, MeasuredInsideForwardPassesOfTheGpt2Layout) {
  const std::string dir = data_file("gpt2-random-tiny");
  if (!fs::exists(dir)) GTEST_SKIP() << "shared data missing";
  Model m = load_model(dir, "");
  const RanksOf grid = [](int64_t in, int64_t out) { return latency_grid(largest_saving_rank(out, in)); };
  LatencyTable t("host", 1, parse_workload("prefill:2x8"), "f32");
  measure_in_forward(t, *m.net, "gpt2", grid, 1);
  for (const Linear* l : m.net->linears()) {
    EXPECT_TRUE(t.has({l->in_features(), l->out_features(), 0})) << l->name();
    for (int64_t r : grid(l->in_features(), l->out_features()))
      EXPECT_TRUE(t.has({l->in_features(), l->out_features(), r})) << l->name() << " r" << r;
  }
  EXPECT_NE(t.rest_seconds("gpt2"), nullptr);
}

TEST(LatencyWorkload, ParsesAndRefuses) {
  const Workload p = parse_workload("prefill:8x256"), d = parse_workload("decode:3");
  EXPECT_EQ(p.rows(), 2048);
  EXPECT_EQ(p.text(), "prefill:8x256");
  EXPECT_TRUE(d.decode);
  EXPECT_EQ(d.rows(), 3);
  EXPECT_EQ(d.text(), "decode:3");
  for (const char* bad : {"prefill:8", "prefill:0x4", "decode:", "decode:-1", "train:1", "prefill:8x2x"})
    EXPECT_THROW(parse_workload(bad), Error) << bad;
}

// --- through the CLI -------------------------------------------------------------------------

struct BudgetCli : ::testing::Test {
  void SetUp() override {
    if (!fs::exists(data_file(kBin)) || !fs::exists(data_file("tasks/arc_easy.jsonl"))) GTEST_SKIP() << "shared data missing";
    test::write_small_task_splits(dir.file("tasks"));
  }
  // The run whose plans tests/expected/budget_params/ holds (written by rankrl before --budget).
  std::string args(const std::string& out, const std::string& extra, const std::string& keep = "0.6") const {
    return "search --model " + data_file(kBin) + " --calib " + data_file(kVal) +
           " --calib-tokens 1024 --ctx 128 --heldout-tokens 256 --keep " + keep + " --rkd " + dir.file("tasks") + " --vrkd " +
           dir.file("tasks") + " --test " + dir.file("tasks") +
           " --episodes 4 --episodes-per-update 2 --reward-items 8 --threads 1 --seed 3 --finalists 1 --promote 2"
           " --baseline-evaluations 3 --surrogate-tokens 256 -q --out " + dir.file(out) + " " + extra;
  }
  // A latency table for stories260K's shapes whose times are linear in the rank (so interpolation
  // is exact): dense a·in·out, rank r: b·(r·(in+out) + c). Returns the file.
  std::string write_table(double overhead) const {
    Model m = load_model(data_file(kBin), "");
    json entries = json::object();
    for (const Linear* l : m.net->linears()) {
      const int64_t in = l->in_features(), out = l->out_features();
      entries[LinearShape{in, out, 0}.key()] = dense_time(in, out);
      for (int64_t r : latency_grid(largest_saving_rank(out, in)))
        entries[LinearShape{in, out, r}.key()] = factored_time(in, out, r, overhead);
    }
    json t = {{"machine", "test"}, {"threads", 1}, {"workload", "prefill:8x256"}, {"dtype", "f32"},
              {"linear_seconds", entries}, {"rest_seconds", {{model_identity(m.config()), kRest}}}};
    const std::string path = dir.file("table.json");
    test::write_text(path, t.dump());
    return path;
  }
  static double dense_time(int64_t in, int64_t out) { return 1e-6 * double(in * out); }
  static double factored_time(int64_t in, int64_t out, int64_t r, double overhead) {
    return 1e-6 * (double(r * (in + out)) + overhead);
  }
  static constexpr double kRest = 0.01;
  test::TempDir dir;
};

// --budget params (the default) decides exactly what rankrl decided before --budget existed: the
// plans of every approach are the files tests/expected/budget_params/ holds byte for byte.
TEST_F(BudgetCli, ParamsBudgetPlansAreByteIdenticalToBefore) {
  test::CliResult r = test::run_cli(args("p", "--budget params --baselines uniform,svdllm2,random,evolution --methods dense,svd,svdllm"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string expected = std::string(RANKRL_SOURCE_DIR) + "/tests/expected/budget_params/";
  int compared = 0;
  for (const auto& e : fs::directory_iterator(expected)) {
    const std::string name = e.path().filename().string();
    const std::string got = name == "chosen.json" ? dir.file("p/plan.json") : dir.file("p/plans/" + name);
    EXPECT_EQ(test::read_text(got), test::read_text(e.path().string())) << name;
    ++compared;
  }
  EXPECT_EQ(compared, 7);
}

// --budget flops: the same fractions as params (2·r·(in+out) / 2·in·out), so the same plans; the
// env's accounting (keep_actual · dense) equals the compressed model's counted FLOPs per token.
TEST_F(BudgetCli, FlopsBudgetCountsTwiceTheParametersAndPlansAsParams) {
  const std::string common = "--baselines uniform --methods dense,svd";
  test::CliResult p = test::run_cli(args("p", common));
  test::CliResult f = test::run_cli(args("f", common + " --budget flops"));
  ASSERT_EQ(p.exit_code, 0) << p.err;
  ASSERT_EQ(f.exit_code, 0) << f.err;
  EXPECT_EQ(test::read_text(dir.file("p/plan.json")), test::read_text(dir.file("f/plan.json")));
  const json rp = json::parse(test::read_text(dir.file("p/results.json")));
  const json rf = json::parse(test::read_text(dir.file("f/results.json")));
  EXPECT_EQ(rf["budget"]["kind"], "flops");
  EXPECT_EQ(rp["budget"]["kind"], "params");
  const double dense_params = rp["budget"]["dense"];
  EXPECT_EQ(dense_params, rp["dense"]["linear_parameters"].get<double>());
  EXPECT_EQ(rf["budget"]["dense"].get<double>(), 2.0 * dense_params);
  EXPECT_NEAR(rf["budget"]["budget"].get<double>(), 0.6 * 2.0 * dense_params, 1e-6);
  for (const json* res : {&rp, &rf}) {
    std::vector<json> rows = {(*res)["dense"]};
    for (const json& a : (*res)["approaches"]) rows.push_back(a);
    for (const json& row : rows) {
      EXPECT_EQ(row["linear_flops_per_token"].get<int64_t>(), 2 * row["linear_parameters"].get<int64_t>());
      EXPECT_GT(row["prefill_tokens_per_second"].get<double>(), 0.0);
      EXPECT_GT(row["decode_tokens_per_second"].get<double>(), 0.0);
      EXPECT_TRUE(row["predicted_seconds"].is_null());
      EXPECT_TRUE(row["measured_seconds"].is_null());
    }
  }
  for (const json& a : rf["approaches"])
    EXPECT_NEAR(a["keep_actual"].get<double>() * rf["budget"]["dense"].get<double>(),
                a["linear_flops_per_token"].get<double>(), 1e-6 * dense_params)
        << a["name"];
}

// --budget latency on an injected table: every plan's predicted time (recomputed here from the plan
// and the table's closed form) is the reported one and within the budget; the report shows it.
TEST_F(BudgetCli, LatencyBudgetOnAnInjectedTable) {
  const std::string table = write_table(50.0);
  test::CliResult r = test::run_cli(args("l", "--budget latency --latency-table " + table +
                                                  " --baselines uniform,svdllm2,random --methods dense,svd", "0.7"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json res = json::parse(test::read_text(dir.file("l/results.json")));
  Model m = load_model(data_file(kBin), "");
  double dense_linear = 0.0;
  for (const Linear* l : m.net->linears()) dense_linear += dense_time(l->in_features(), l->out_features());
  const json& b = res["budget"];
  EXPECT_EQ(b["kind"], "latency");
  EXPECT_EQ(b["latency_workload"], "prefill:8x256");
  EXPECT_NEAR(b["dense"].get<double>(), dense_linear, 1e-12);
  EXPECT_NEAR(b["rest_seconds"].get<double>(), kRest, 1e-15);
  EXPECT_NEAR(b["budget_forward_seconds"].get<double>(), kRest + 0.7 * dense_linear, 1e-12);
  EXPECT_NEAR(res["dense"]["predicted_seconds"].get<double>(), kRest + dense_linear, 1e-12);
  EXPECT_GT(res["dense"]["measured_seconds"].get<double>(), 0.0);
  for (const json& a : res["approaches"]) {
    std::string file = a["name"];
    std::replace(file.begin(), file.end(), ':', '-');
    const json plan = json::parse(test::read_text(dir.file("l/plans/" + file + ".json")));
    double predicted = kRest;
    for (const Linear* l : m.net->linears()) {
      const json& d = plan["weights"][l->name()];
      const int64_t in = l->in_features(), out = l->out_features();
      predicted += d["method"] == "dense" ? dense_time(in, out) : factored_time(in, out, d["rank"].get<int64_t>(), 50.0);
    }
    EXPECT_NEAR(a["predicted_seconds"].get<double>(), predicted, 1e-12) << a["name"];
    EXPECT_LE(predicted, b["budget_forward_seconds"].get<double>() + 1e-12) << a["name"];
    EXPECT_GT(predicted - kRest, 0.6 * 0.7 * dense_linear) << a["name"];  // spends most of it
    EXPECT_NEAR(a["keep_actual"].get<double>(), (predicted - kRest) / dense_linear, 1e-9) << a["name"];
    EXPECT_GT(a["measured_seconds"].get<double>(), 0.0);
  }
  const std::string md = test::read_text(dir.file("l/report.md"));
  EXPECT_NE(md.find("predicted s"), std::string::npos);
  EXPECT_NE(md.find("prefill tok/s"), std::string::npos);
}

// A latency budget factoring cannot reach (each thin product costs more than the dense Linear, as
// at decode batch 1 on small weights) is a usage error before any work, and nothing is written.
TEST_F(BudgetCli, InfeasibleLatencyBudgetIsAnErrorBeforeAnyWork) {
  const std::string table = write_table(1e6);
  test::CliResult r = test::run_cli(args("inf", "--budget latency --latency-table " + table, "0.9"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("rankrl: error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("two thin products are slower than one"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir.file("inf")));
  test::CliResult bad = test::run_cli(args("bad", "--budget time"));
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("unknown --budget 'time'"), std::string::npos) << bad.err;
  test::CliResult w = test::run_cli(args("badw", "--budget latency --latency-workload prefill:8"));
  EXPECT_EQ(w.exit_code, 2) << w.err;
  EXPECT_NE(w.err.find("--latency-workload"), std::string::npos) << w.err;
}

// eval --speed --json: size next to measured speed; FLOPs and bytes from their closed forms.
TEST(EvalSpeed, ReportsSizeFlopsAndTokensPerSecond) {
  if (!fs::exists(data_file(kBin))) GTEST_SKIP() << "shared data missing";
  test::CliResult r = test::run_cli("eval --model " + data_file(kBin) + " --speed --json --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json s = json::parse(r.out)["speed"];
  Model m = load_model(data_file(kBin), "");
  int64_t flops = 0;
  for (const Linear* l : m.net->linears()) flops += 2 * l->in_features() * l->out_features();
  EXPECT_EQ(s["linear_flops_per_token"].get<int64_t>(), flops);
  EXPECT_EQ(s["linear_parameters"].get<int64_t>() * 2, flops);
  EXPECT_EQ(s["total_bytes"].get<int64_t>(), 4 * s["total_parameters"].get<int64_t>());  // llama2.c: float32
  EXPECT_EQ(s["prefill_workload"], "prefill:8x256");
  EXPECT_EQ(s["decode_workload"], "decode:1");
  EXPECT_GT(s["prefill_tokens_per_second"].get<double>(), 0.0);
  EXPECT_GT(s["decode_tokens_per_second"].get<double>(), 0.0);
}

}  // namespace
}  // namespace rankrl
