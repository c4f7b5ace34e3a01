// Calibration, plans, applying plans, compressed checkpoints (save/load/export-dense), the
// method-ordering check against the independent Python reference, and the CLI's bad-input paths.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>
#include <nlohmann/json.hpp>

#include "calib/calibrate.h"
#include "calib/stats_file.h"
#include "compress/apply.h"
#include "compress/checkpoint_dir.h"
#include "compress/heal.h"
#include "core/error.h"
#include "core/fs.h"
#include "eval/perplexity.h"
#include "model/model.h"
#include "plan/plan.h"
#include "test_util.h"

namespace rankrl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::data_file;

using test::kBin;
using test::kTok;
using test::kVal;
const std::string kRef = std::string(RANKRL_SOURCE_DIR) + "/tests/expected/compress_ref.json";
constexpr int64_t kCtx = 256, kCalibTokens = 4096, kHeldStart = 200000, kHeldTokens = 32768;

Model stories() { return load_model(data_file(kBin), data_file(kTok)); }

// The whole validation file as the reference tokenizes it (BOS + one string); computed once.
const std::vector<int32_t>& val_ids() {
  static const std::vector<int32_t> ids = [] {
    Model m = stories();
    return m.tokenizer->encode_with_bos(test::read_text(data_file(kVal)));
  }();
  return ids;
}

const CalibStats& calib_stats() {
  static const CalibStats s = [] {
    Model m = stories();
    std::vector<int32_t> ids(val_ids().begin(), val_ids().begin() + kCalibTokens);
    return calibrate(*m.net, ids, {kCalibTokens, kCtx, 8, false});
  }();
  return s;
}

at::Tensor logits(const Transformer& net) {
  c10::InferenceMode guard;
  std::vector<int32_t> ids(val_ids().begin() + 1000, val_ids().begin() + 1000 + 64);
  return net.forward(at::tensor(at::ArrayRef<int32_t>(ids)).to(at::kLong).unsqueeze(0));
}

double heldout_ppl(const Transformer& net) {
  std::vector<int32_t> ids(val_ids().begin() + kHeldStart, val_ids().begin() + kHeldStart + kHeldTokens);
  return perplexity(net, ids, kCtx, 16, false).ppl;
}

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

// Rows (2j, 2j+1) of each head → (j, j + head_dim/2): what save_hf_checkpoint does to q/k rows.
at::Tensor to_rotate_half(const at::Tensor& w, int64_t heads, int64_t head_dim) {
  return w.reshape({heads, head_dim / 2, 2, w.size(1)}).transpose(1, 2).reshape({heads * head_dim, w.size(1)});
}

#define REQUIRE_STORIES()        \
  RANKRL_REQUIRE_DATA(kBin);     \
  RANKRL_REQUIRE_DATA(kVal)

// ---------------------------------------------------------------------------------------------
// Calibration

TEST(Calibration, SharedInputsShareOneGramAndMatchReferenceTraces) {
  REQUIRE_STORIES();
  const CalibStats& s = calib_stats();
  EXPECT_EQ(s.tokens, kCalibTokens);
  EXPECT_EQ(s.windows, 16);
  const std::string p = "model.layers.0.";
  EXPECT_EQ(s.shared_input.at(p + "self_attn.k_proj.weight"), p + "self_attn.q_proj.weight");
  EXPECT_EQ(s.shared_input.at(p + "self_attn.v_proj.weight"), p + "self_attn.q_proj.weight");
  EXPECT_EQ(s.shared_input.at(p + "mlp.up_proj.weight"), s.shared_input.at(p + "mlp.gate_proj.weight"));
  EXPECT_EQ(s.shared_input.at(p + "self_attn.o_proj.weight"), p + "self_attn.o_proj.weight");
  EXPECT_TRUE(s.stats.at(p + "self_attn.k_proj.weight").gram.is_same(s.stats.at(p + "self_attn.q_proj.weight").gram));
  if (!fs::exists(kRef)) GTEST_SKIP() << "reference " << kRef << " absent (tests/reference/compress_ref.py)";
  const json ref = json::parse(test::read_text(kRef))["calibration_checks"];
  const std::map<std::string, std::string> input_of = {{"attn_in", "self_attn.q_proj.weight"},
                                                       {"attn_out", "self_attn.o_proj.weight"},
                                                       {"ffn_in", "mlp.gate_proj.weight"},
                                                       {"ffn_hidden", "mlp.down_proj.weight"}};
  for (int layer = 0; layer < 5; ++layer)
    for (const auto& [key, weight] : input_of) {
      const std::string name = "model.layers." + std::to_string(layer) + "." + weight;
      const std::string rkey = std::to_string(layer) + "." + key;
      const double trace = s.stats.at(name).gram.trace().item<double>();
      EXPECT_NEAR(trace, ref["gram_trace"][rkey].get<double>(), 1e-5 * trace) << rkey;
      EXPECT_NEAR(s.stats.at(name).abs_mean.sum().item<double>(), ref["abs_mean_sum"][rkey].get<double>(), 1e-4)
          << rkey;
    }
}

TEST(Calibration, FisherAndStatsFileRoundTrip) {
  REQUIRE_STORIES();
  Model m = stories();
  std::vector<int32_t> ids(val_ids().begin(), val_ids().begin() + 600);  // 2 windows + 88 kept
  CalibStats s = calibrate(*m.net, ids, {600, kCtx, 8, true});
  EXPECT_EQ(s.windows, 3);
  const LinearStats& q = s.stats.at("model.layers.1.self_attn.q_proj.weight");
  ASSERT_TRUE(q.fisher.defined());
  EXPECT_EQ(q.fisher.sizes(), (at::IntArrayRef{64, 64}));
  EXPECT_GT(q.fisher.sum().item<double>(), 0.0);
  test::TempDir dir;
  save_calib_stats(dir.file("s.safetensors"), s, "calib.txt");
  CalibStats back = load_calib_stats(dir.file("s.safetensors"));
  EXPECT_EQ(back.model_identity, s.model_identity);
  EXPECT_EQ(back.tokens, 600);
  for (const auto& [name, st] : s.stats) {
    EXPECT_TRUE(at::equal(back.stats.at(name).gram, st.gram)) << name;
    EXPECT_TRUE(at::equal(back.stats.at(name).abs_mean, st.abs_mean)) << name;
    EXPECT_TRUE(at::equal(back.stats.at(name).fisher, st.fisher)) << name;
  }
}

// The output-gradient Grams (LinearStats::out_gram) against the independent reference
// (tests/reference/model_ref.py outgram: a zero probe on every projection output of its own
// forward): first 512 tokens, windows of 128, Σ g·gᵀ / N² of the whole text's mean-NLL gradient.
TEST(Calibration, OutputGradientGramsMatchTheReference) {
  REQUIRE_STORIES();
  Model m = stories();
  const json ref = json::parse(test::read_text(std::string(RANKRL_SOURCE_DIR) + "/tests/expected/outgram_ref.json"));
  const int64_t n = ref["tokens"], ctx = ref["ctx"];
  std::vector<int32_t> ids(val_ids().begin(), val_ids().begin() + n);
  CalibOptions opts{n, ctx, 8, false};
  opts.output_grads = true;
  const CalibStats s = calibrate(*m.net, ids, opts);
  const std::vector<const Linear*> linears = static_cast<const Transformer&>(*m.net).linears();
  for (const auto& [index, r] : ref["weights"].items()) {
    const Linear& l = *linears.at(std::stoul(index));
    const at::Tensor& g = s.stats.at(l.name()).out_gram;
    ASSERT_TRUE(g.defined()) << l.name();
    ASSERT_EQ(g.sizes(), at::IntArrayRef(r["shape"].get<std::vector<int64_t>>())) << l.name();
    const double trace = r["trace"];
    EXPECT_NEAR(g.trace().item<double>(), trace, 1e-4 * trace) << l.name();
    EXPECT_NEAR(g.sum().item<double>(), r["sum"].get<double>(), 1e-4 * trace) << l.name();
    // Entry by entry where rows are not reordered (rankrl permutes q and k rows for its RoPE layout).
    if (l.name().find("q_proj") != std::string::npos) continue;
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 3; ++j)
        EXPECT_NEAR(g[i][j].item<double>(), r["block"][i][j].get<double>(), 1e-4 * trace) << l.name() << " " << i << "," << j;
  }
}

TEST(Calibration, TooFewTokensIsAnError) {
  REQUIRE_STORIES();
  Model m = stories();
  test::TempDir dir;
  test::write_text(dir.file("short.txt"), "Once upon a time.");
  try {
    calibration_ids(*m.tokenizer, dir.file("short.txt"), 4096);
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("too few calibration tokens"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// Plans

TEST(Plan, UniformRanksJsonRoundTripAndValidation) {
  RANKRL_REQUIRE_DATA(kBin);
  Model m = stories();
  Plan p = uniform_plan(*m.net, 0.6, "svdllm");
  EXPECT_EQ(p.weights.size(), 35u);
  EXPECT_EQ(p.weights.at("model.layers.0.self_attn.q_proj.weight").rank, 19);
  EXPECT_EQ(p.weights.at("model.layers.0.self_attn.k_proj.weight").rank, 12);
  EXPECT_EQ(p.weights.at("model.layers.4.mlp.down_proj.weight").rank, 27);
  Plan back = plan_from_json(json::parse(plan_to_json(p).dump()), "p.json");
  EXPECT_EQ(plan_to_json(back), plan_to_json(p));
  validate_plan(back, *m.net, "p.json");

  auto expect_invalid = [&](Plan bad, const std::string& what) {
    try {
      validate_plan(bad, *m.net, "p.json");
      ADD_FAILURE() << "expected Error containing " << what;
    } catch (const Error& e) {
      EXPECT_EQ(e.file(), "p.json");
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  Plan bad = p;
  bad.weights["model.layers.9.mlp.up_proj.weight"] = {"svd", 3, "top"};
  expect_invalid(bad, "not a projection weight");
  bad = p;
  bad.weights.erase("model.layers.2.mlp.up_proj.weight");
  expect_invalid(bad, "no decision for weight");
  bad = p;
  bad.weights["model.layers.2.mlp.up_proj.weight"].rank = 65;
  expect_invalid(bad, "rank 65 outside [1, 64]");
  bad.weights["model.layers.2.mlp.up_proj.weight"].rank = 0;
  expect_invalid(bad, "rank 0 outside");
  bad = p;
  bad.weights["model.layers.2.mlp.up_proj.weight"].method = "magic";
  expect_invalid(bad, "magic");
  bad = p;
  bad.model_identity = "fnv1a64:0000000000000000";
  expect_invalid(bad, "another model");
  EXPECT_THROW(uniform_plan(*m.net, 0.0, "svd"), Error);
  EXPECT_THROW(uniform_plan(*m.net, 1.01, "svd"), Error);
}

// ---------------------------------------------------------------------------------------------
// Apply, save, load, export

TEST(CompressedCheckpoint, SaveLoadRoundTripAndLogits) {
  REQUIRE_STORIES();
  Model m = stories();
  apply_plan(*m.net, uniform_plan(*m.net, 0.6, "svdllm"), &calib_stats());
  test::TempDir tmp;
  const std::string dir = tmp.file("c");
  write_compressed_dir(dir, *m.net, uniform_plan(*m.net, 0.6, "svdllm"), json::object(), data_file(kTok), false);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "plan.json", "report.json"})
    EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
  EXPECT_TRUE(json::parse(test::read_text(dir + "/config.json")).contains("rankrl"));

  Model back = load_model(dir);
  const ModelConfig& c = m.config();
  for (const Linear* l : m.net->linears()) {
    const Linear* b = back.net->find_linear(l->name());
    ASSERT_TRUE(b && b->is_low_rank()) << l->name();
    at::Tensor A = l->A();  // llama2.c q/k rows are stored permuted to rotate-half
    if (l->name().find("q_proj") != std::string::npos) A = to_rotate_half(A, c.n_heads, c.head_dim);
    if (l->name().find("k_proj") != std::string::npos) A = to_rotate_half(A, c.n_kv_heads, c.head_dim);
    EXPECT_TRUE(at::equal(b->A(), A)) << l->name();
    EXPECT_TRUE(at::equal(b->B(), l->B())) << l->name();
  }
  // The llama2.c source runs interleaved RoPE, the saved directory rotate-half: same maths,
  // different float order (the dense convert shows the same few-1e-5 noise).
  EXPECT_LT(max_diff(logits(*back.net), logits(*m.net)), 1e-4);

  // A compressed HF directory saved again is bit-identical in its factors.
  write_compressed_dir(tmp.file("c2"), *back.net, uniform_plan(*back.net, 0.6, "svdllm"), json::object(), dir, false);
  Model again = load_model(tmp.file("c2"));
  for (const Linear* l : back.net->linears()) {
    EXPECT_TRUE(at::equal(again.net->find_linear(l->name())->A(), l->A())) << l->name();
    EXPECT_TRUE(at::equal(again.net->find_linear(l->name())->B(), l->B())) << l->name();
  }
  EXPECT_LT(max_diff(logits(*again.net), logits(*back.net)), 1e-5);  // same layout: identical

  export_dense(dir, "", tmp.file("dense"), false);
  Model dense = load_model(tmp.file("dense"));
  for (const Linear* l : dense.net->linears()) EXPECT_FALSE(l->is_low_rank());
  EXPECT_LT(max_diff(logits(*dense.net), logits(*m.net)), 1e-4);
}

TEST(CompressedCheckpoint, CliCompressThenEvalAndGenerate) {
  REQUIRE_STORIES();
  test::TempDir tmp;
  const std::string common = "--model " + data_file(kBin) + " --calib " + data_file(kVal) +
                             " --calib-tokens 1024 --ctx 256 --out " + tmp.file("c");
  test::CliResult r = test::run_cli("compress " + common + " --keep 0.6 --method asvd --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json report = json::parse(r.out);
  EXPECT_LT(report["size"]["linear_fraction"].get<double>(), 0.61);
  // Consecutive stages sum to the total; report.json on disk carries the same times, write included.
  const json& secs = report["seconds_by_stage"];
  EXPECT_EQ(report["seconds"], secs["total"]);  // a number, as in every other command
  double sum = 0.0;
  for (const char* stage : {"load", "calibrate", "apply", "write"}) {
    ASSERT_TRUE(secs.contains(stage)) << stage;
    EXPECT_GE(secs[stage].get<double>(), 0.0) << stage;
    sum += secs[stage].get<double>();
  }
  EXPECT_GT(secs["write"].get<double>(), 0.0);
  EXPECT_NEAR(sum, secs["total"].get<double>(), 0.01 + 0.01 * secs["total"].get<double>());
  EXPECT_LE(report["seconds_detail"]["decompose"].get<double>(), secs["apply"].get<double>());
  EXPECT_EQ(json::parse(test::read_text(tmp.file("c") + "/report.json"))["seconds_by_stage"], secs);
  r = test::run_cli("eval --model " + tmp.file("c") + " --text " + data_file(kVal) + " --ctx 256 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GT(json::parse(r.out)["ppl"].get<double>(), 1.0);
  r = test::run_cli("generate --model " + tmp.file("c") + " --tokens 8");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = test::run_cli("export-dense --model " + tmp.file("c") + " --out " + tmp.file("d"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = test::run_cli("compress " + common + " --keep 0.6 --method svd");  // exists → error
  EXPECT_EQ(r.exit_code, 1) << r.err;
}

// ---------------------------------------------------------------------------------------------
// The ordering test against the independent Python reference (tests/reference/compress_ref.py).

TEST(CompressOrdering, SvdllmBeatsAsvdBeatsSvdAndMatchesReference) {
  REQUIRE_STORIES();
  if (!fs::exists(kRef)) GTEST_SKIP() << "reference " << kRef << " absent (run tests/reference/compress_ref.py)";
  const json ref = json::parse(test::read_text(kRef))["ppl"];
  ASSERT_GE(int64_t(val_ids().size()), kHeldStart + kHeldTokens);
  std::map<std::string, double> ppl;
  {
    Model m = stories();
    ppl["dense"] = heldout_ppl(*m.net);
  }
  for (const std::string method : {"svd", "asvd", "svdllm"}) {
    Model m = stories();
    apply_plan(*m.net, uniform_plan(*m.net, 0.6, method), &calib_stats());
    ppl[method] = heldout_ppl(*m.net);
  }
  for (const auto& [name, value] : ppl)
    EXPECT_NEAR(value, ref[name].get<double>(), 0.01 * ref[name].get<double>()) << name;
  EXPECT_LT(ppl["svdllm"], ppl["asvd"]);
  EXPECT_LT(ppl["asvd"], ppl["svd"]);
}

TEST(Heal, ClosedFormRefitLowersOutputErrorAndPerplexity) {
  REQUIRE_STORIES();
  Model m = stories();
  Transformer dense(m.config(), m.net->weights());
  apply_plan(*m.net, uniform_plan(*m.net, 0.6, "svd"), &calib_stats());
  const double before = heldout_ppl(*m.net);
  std::vector<int32_t> ids(val_ids().begin(), val_ids().begin() + kCalibTokens);
  json r = heal(*m.net, dense, ids, {true, 0, 1e-3, kCtx, 8});
  ASSERT_EQ(r["layers"].size(), 35u);
  // The first layer sees the dense inputs, so the refit can only lower its own error.
  EXPECT_LE(r["layers"][0]["rel_error_after"].get<double>(), r["layers"][0]["rel_error_before"].get<double>() + 1e-9);
  EXPECT_LT(heldout_ppl(*m.net), before);
}

// Rows = tokens: the input `name` receives in `net` on `windows`, float64 [N, n].
at::Tensor inputs_of(Transformer& net, const std::string& name, const at::Tensor& windows) {
  c10::InferenceMode guard;
  at::Tensor out;
  net.set_observer([&](const Linear& l, const at::Tensor& x) {
    if (l.name() == name) out = x.reshape({-1, x.size(-1)}).to(at::kDouble);
  });
  net.forward(windows);
  net.set_observer(nullptr);
  return out;
}

// Σ‖W·x − Ŵ·x̃‖² over the rows of X and X̃.
double compensation_objective(const at::Tensor& W, const at::Tensor& X, const at::Tensor& W_hat, const at::Tensor& X_tilde) {
  return (at::mm(X, W.t()) - at::mm(X_tilde, W_hat.t())).pow(2).sum().item<double>();
}

// The compensating form is SVD-LLM where the inputs are unchanged (layer 0's q_proj) and, on a
// downstream weight, the reduced-rank-regression optimum of Σ‖W·x − Ŵ·x̃‖² computed by another
// route (OLS, then the top eigenvectors of the fitted values' covariance; Izenman 1975).
TEST(Heal, CompensatingFormIsSvdLlmUpstreamAndTheReducedRankRegressionOptimumDownstream) {
  REQUIRE_STORIES();
  Model m = stories();
  Transformer dense(m.config(), m.net->weights());
  apply_plan(*m.net, uniform_plan(*m.net, 0.5, "svdllm"), &calib_stats());
  const double ppl_before = heldout_ppl(*m.net);
  const std::string first = "model.layers.0.self_attn.q_proj.weight", down = "model.layers.2.mlp.down_proj.weight";
  const at::Tensor first_before = m.net->find_linear(first)->dense_weight().to(at::kDouble);
  const at::Tensor down_before = m.net->find_linear(down)->dense_weight().to(at::kDouble);
  const int64_t down_rank = m.net->find_linear(down)->rank();
  std::vector<int32_t> ids(val_ids().begin(), val_ids().begin() + kCalibTokens);
  HealOptions opts;
  opts.ctx = kCtx, opts.compensate = true;
  json r = heal(*m.net, dense, ids, opts);
  ASSERT_EQ(r["layers"].size(), 35u);
  for (const json& l : r["layers"])
    EXPECT_LE(l["rel_error_after"].get<double>(), l["rel_error_before"].get<double>() + 1e-6) << l["name"];

  const at::Tensor first_after = m.net->find_linear(first)->dense_weight().to(at::kDouble);
  EXPECT_LT((first_after - first_before).norm().item<double>(), 1e-4 * first_before.norm().item<double>());

  const at::Tensor windows = at::tensor(at::ArrayRef<int32_t>(ids)).to(at::kLong).view({-1, kCtx});
  const at::Tensor W = dense.find_linear(down)->dense_weight().to(at::kDouble);
  const at::Tensor X = inputs_of(dense, down, windows), X_tilde = inputs_of(*m.net, down, windows);
  const at::Tensor W_ols = std::get<0>(at::linalg_lstsq(X_tilde, at::mm(X, W.t()))).t();  // [m, n]
  const at::Tensor fitted = at::mm(X_tilde, W_ols.t());
  const at::Tensor evecs = std::get<1>(at::linalg_eigh(at::mm(fitted.t(), fitted)));  // ascending eigenvalues
  const at::Tensor P = evecs.narrow(1, evecs.size(1) - down_rank, down_rank);
  const double want = compensation_objective(W, X, at::mm(P, at::mm(P.t(), W_ols)), X_tilde);
  const double got = compensation_objective(W, X, m.net->find_linear(down)->dense_weight().to(at::kDouble), X_tilde);
  EXPECT_NEAR(got, want, 1e-4 * want);
  EXPECT_LT(got, 0.9 * compensation_objective(W, X, down_before, X_tilde));
  EXPECT_EQ(m.net->find_linear(down)->rank(), down_rank);
  EXPECT_LT(heldout_ppl(*m.net), 0.8 * ppl_before);
}

TEST(Heal, CompensateFromTheCliReportsEveryFactoredWeight) {
  REQUIRE_STORIES();
  test::TempDir tmp;
  test::CliResult r = test::run_cli("compress --model " + data_file(kBin) + " --calib " + data_file(kVal) +
                                    " --calib-tokens 1024 --ctx 256 --keep 0.6 --method svd --heal-compensate --json -q --out " +
                                    tmp.file("c"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json report = json::parse(r.out);
  ASSERT_EQ(report["heal"]["layers"].size(), 35u);
  for (const json& l : report["heal"]["layers"])
    EXPECT_LT(l["rel_error_after"].get<double>(), l["rel_error_before"].get<double>()) << l["name"];
  EXPECT_GT(report["seconds_by_stage"]["heal"].get<double>(), 0.0);
  r = test::run_cli("compress --model " + data_file(kBin) + " --stats " + tmp.file("none") + " --keep 0.6 --method svd --heal-compensate --out " + tmp.file("d"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--heal-compensate"), std::string::npos) << r.err;
}

// ---------------------------------------------------------------------------------------------
// Bad input through the CLI: exit 1, one error line, nothing written.

struct BadInput : ::testing::Test {
  void SetUp() override {
    if (!fs::exists(data_file(kBin)) || !fs::exists(data_file(kVal))) GTEST_SKIP() << "shared data missing";
  }
  test::TempDir tmp;
  std::string out() const { return tmp.file("out"); }
  void expect_rejected(const std::string& args, const std::string& what, int exit_code = 1) {
    test::CliResult r = test::run_cli("compress --model " + data_file(kBin) + " --out " + out() + " " + args);
    EXPECT_EQ(r.exit_code, exit_code) << args << "\n" << r.err;
    EXPECT_NE(r.err.find("rankrl: error: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out())) << args;
    for (const auto& e : fs::directory_iterator(tmp.path()))
      EXPECT_EQ(e.path().filename().string().find("out.tmp-"), std::string::npos) << e.path();
  }
  std::string plan_file(const std::function<void(json&)>& edit) {
    Model m = stories();
    json j = plan_to_json(uniform_plan(*m.net, 0.6, "svd"));
    edit(j);
    test::write_text(tmp.file("plan.json"), j.dump());
    return "--plan " + tmp.file("plan.json");
  }
};

TEST_F(BadInput, KeepOutOfRange) {
  // Bad usage (exit 2); keep 1 would keep every weight dense, refused as by search.
  expect_rejected("--keep 0 --method svd", "--keep must be in (0, 1)", 2);
  expect_rejected("--keep -0.5 --method svd", "--keep must be in (0, 1)", 2);
  expect_rejected("--keep 1.5 --method svd", "--keep must be in (0, 1)", 2);
  expect_rejected("--keep 1 --method svd", "--keep must be in (0, 1)", 2);
}

TEST_F(BadInput, PlanErrors) {
  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  expect_rejected(plan_file([&](json& j) { j["weights"][q]["rank"] = 65; }), "rank 65 outside");
  expect_rejected(plan_file([](json& j) { j["model_identity"] = "fnv1a64:0123456789abcdef"; }), "another model");
  expect_rejected(plan_file([](json& j) { j["weights"]["model.layers.7.mlp.up_proj.weight"] = {{"method", "svd"}, {"rank", 4}}; }),
                  "not a projection weight");
  expect_rejected(plan_file([&](json& j) { j["weights"][q]["method"] = "zip"; }), "zip");
  expect_rejected("--keep 0.5 --method zip", "unknown decomposition method 'zip'", 2);
}

// A llama2.c tokenizer.bin that loads but cannot become tokenizer.json (piece 300 not UTF-8):
// the error names the tokenizer, not the staging directory, and comes before any work.
TEST_F(BadInput, UnconvertibleTokenizerBin) {
  std::string bytes = test::read_text(data_file(kTok));
  size_t pos = 4;  // uint32 max_token_len, then per id: float32 score, int32 len, bytes
  for (int i = 0; i < 300; ++i) {
    int32_t len;
    std::memcpy(&len, &bytes[pos + 4], 4);
    pos += 8 + size_t(len);
  }
  bytes[pos + 8] = '\xff';
  const std::string tok = tmp.file("bad_tok.bin");
  test::write_text(tok, bytes);
  expect_rejected("--tokenizer " + tok + " --keep 0.6 --method svd", "bad_tok.bin: token 300 is not valid UTF-8");
  expect_rejected("--tokenizer " + tok + " --keep 0.6 --method svdllm --calib " + data_file(kVal) +
                      " --calib-tokens 1024 --ctx 256",
                  "bad_tok.bin: token 300 is not valid UTF-8");
  fs::remove(tok);
}

TEST_F(BadInput, NanStatsAndTooFewTokens) {
  CalibStats s = calib_stats();
  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  s.stats[q].gram = s.stats[q].gram.clone();
  s.stats[q].gram[0][0] = NAN;
  save_calib_stats(tmp.file("nan.safetensors"), s, "x");
  expect_rejected("--keep 0.6 --method svdllm --stats " + tmp.file("nan.safetensors"), "NaN");
  test::write_text(tmp.file("short.txt"), "Once upon a time there was a cat.");
  expect_rejected("--keep 0.6 --method svdllm --calib " + tmp.file("short.txt") + " --calib-tokens 4096 --ctx 256",
                  "too few calibration tokens");
}

}  // namespace
}  // namespace rankrl

namespace rankrl {
namespace {

// compress --out and export-dense claim their output directory (the lock file .<name>.lock beside
// it): a second writer is refused at once with one line and writes nothing; once the first is
// done the lock file is gone and the same command succeeds.
TEST(CompressCli, SecondWriterOfTheOutputIsRefused) {
  RANKRL_REQUIRE_DATA("stories260K/stories260K.bin");
  test::TempDir dir;
  const std::string model = test::data_file("stories260K/stories260K.bin");
  const std::string compress = "compress --model " + model + " --keep 0.6 --method svd --threads 1 -q --out ";
  const std::string export_dense = "export-dense --model " + dir.file("small") + " --threads 1 -q --out ";
  auto only_entries = [&](std::set<std::string> expected) {
    std::set<std::string> found;
    for (const auto& e : fs::directory_iterator(dir.path())) found.insert(e.path().filename().string());
    EXPECT_EQ(found, expected);
  };
  {
    std::unique_ptr<FileLock> held = FileLock::try_acquire(dir.file(".small.lock"));
    ASSERT_NE(held, nullptr);
    test::CliResult r = test::run_cli(compress + dir.file("small"));
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.err, "rankrl: error: " + dir.file("small") + ": another rankrl process is writing it (lock " +
                         dir.file(".small.lock") + "); wait for it or choose another output\n");
    only_entries({".small.lock"});
  }
  ASSERT_EQ(test::run_cli(compress + dir.file("small")).exit_code, 0);
  {
    std::unique_ptr<FileLock> held = FileLock::try_acquire(dir.file(".dense.lock"));
    test::CliResult r = test::run_cli(export_dense + dir.file("dense"));
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("another rankrl process is writing it"), std::string::npos) << r.err;
  }
  fs::remove(dir.file(".dense.lock"));
  ASSERT_EQ(test::run_cli(export_dense + dir.file("dense")).exit_code, 0);
  only_entries({"small", "dense"});  // no lock file and no staging directory left behind
}

}  // namespace
}  // namespace rankrl
