// Layer-streamed calibration and compression against the whole-model path: the per-layer forward
// API, statistics, factors, healed weights, the streamed statistics file, progress lines.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "calib/calibrate.h"
#include "calib/stats_file.h"
#include "compress/apply.h"
#include "compress/heal.h"
#include "compress/layer_stream.h"
#include "compress/pipeline.h"
#include "core/error.h"
#include "core/fs.h"
#include "io/checkpoint.h"
#include "io/mapped.h"
#include "io/safetensors.h"
#include "decompose/stats.h"
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
// 8 full windows of 256 in one batch, 2 more in a second, and a partial window of 100 alone: every
// batching case the stream carries.
constexpr int64_t kCtx = 256, kTokens = 10 * 256 + 100;

#define REQUIRE_STORIES()        \
  RANKRL_REQUIRE_DATA(kBin);     \
  RANKRL_REQUIRE_DATA(kTok);     \
  RANKRL_REQUIRE_DATA(kVal)

Model stories() { return load_model(data_file(kBin), data_file(kTok)); }

std::vector<int32_t> calib_ids() {
  Model m = stories();
  return calibration_ids(*m.tokenizer, data_file(kVal), kTokens);
}

// Every decoder layer's statistics from the streamed calibration, in layer order.
std::vector<CalibStats> stats_per_layer(const Model& m) {
  std::vector<CalibStats> layers;
  calibrate_layers(*m.net, calib_ids(), {kTokens, kCtx, 8, false}, [&](int64_t, CalibStats&& s) { layers.push_back(s); });
  return layers;
}

// The reference: statistics of every linear's input from whole-model forwards, one window at a
// time, through the observer hook (no sharing, no streaming, a batching unlike the stream's).
std::map<std::string, LinearStats> whole_model_stats(Transformer& net, const std::vector<int32_t>& ids) {
  c10::InferenceMode guard;
  std::map<std::string, StatsAccumulator> acc;
  net.set_observer([&](const Linear& l, const at::Tensor& x) {
    acc.try_emplace(l.name(), l.in_features(), l.name()).first->second.add(x);
  });
  const at::Tensor all = at::tensor(at::ArrayRef<int32_t>(ids)).to(at::kLong);
  for (int64_t s = 0; s < all.numel(); s += kCtx)
    net.forward(all.narrow(0, s, std::min(kCtx, all.numel() - s)).unsqueeze(0));
  net.set_observer(nullptr);
  std::map<std::string, LinearStats> out;
  for (const auto& [name, a] : acc) out[name] = a.finish();
  return out;
}

void expect_close(const at::Tensor& got, const at::Tensor& want, double rtol, const std::string& what) {
  ASSERT_TRUE(got.defined() && want.defined()) << what;
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const double err = (got.to(at::kDouble) - want.to(at::kDouble)).norm().item<double>();
  EXPECT_LE(err, rtol * want.to(at::kDouble).norm().item<double>() + 1e-12) << what;
}

TEST(LayerForward, EmbedBlocksHeadIsForward) {
  REQUIRE_STORIES();
  Model m = stories();
  c10::InferenceMode guard;
  const auto ids = calib_ids();
  const at::Tensor tokens = at::tensor(at::ArrayRef<int32_t>(ids)).to(at::kLong).narrow(0, 0, 2 * 64).view({2, 64});
  at::Tensor x = m.net->embed(tokens);
  for (int64_t i = 0; i < m.config().n_layers; ++i) x = m.net->block(i, x);
  EXPECT_TRUE(at::equal(m.net->head(x), m.net->forward(tokens)));
  // Positions continue through a cache exactly as in forward.
  KVCache cache;
  m.net->forward(tokens.narrow(1, 0, 40), &cache);
  at::Tensor y = m.net->embed(tokens.narrow(1, 40, 24), 40);
  KVCache cache2;
  m.net->forward(tokens.narrow(1, 0, 40), &cache2);
  for (int64_t i = 0; i < m.config().n_layers; ++i) y = m.net->block(i, y, &cache2, 40);
  EXPECT_TRUE(at::equal(m.net->head(y), m.net->forward(tokens.narrow(1, 40, 24), &cache)));
  std::vector<Linear*> by_layer;
  for (int64_t i = 0; i < m.config().n_layers; ++i)
    for (Linear* l : m.net->layer_linears(i)) by_layer.push_back(l);
  EXPECT_EQ(by_layer, m.net->linears());
  EXPECT_EQ(m.net->layer_linears(2).front()->name(), "model.layers.2.self_attn.q_proj.weight");
}

TEST(LayerStream, StatisticsEqualWholeModelCalibration) {
  REQUIRE_STORIES();
  Model m = stories();
  const auto ids = calib_ids();
  const auto want = whole_model_stats(*m.net, ids);
  int64_t layers_seen = 0;
  calibrate_layers(*m.net, ids, {kTokens, kCtx, 8, false}, [&](int64_t layer, CalibStats&& s) {
    EXPECT_EQ(layer, layers_seen++);
    EXPECT_EQ(s.windows, 11);
    EXPECT_EQ(s.stats.size(), 7u);  // this layer's linears only
    for (const auto& [name, st] : s.stats) {
      EXPECT_EQ(name.rfind("model.layers." + std::to_string(layer) + ".", 0), 0u) << name;
      expect_close(st.gram, want.at(name).gram, 1e-6, name + " gram");
      expect_close(st.abs_mean, want.at(name).abs_mean, 1e-6, name + " abs_mean");
      EXPECT_EQ(st.tokens, kTokens);
    }
  });
  EXPECT_EQ(layers_seen, 5);
}

TEST(LayerStream, CalibrateOutFileHasTheSameStatistics) {
  REQUIRE_STORIES();
  test::TempDir dir;
  const std::string out = dir.file("stats.safetensors");
  const test::CliResult r = test::run_cli("calibrate --model " + data_file(kBin) + " --tokenizer " + data_file(kTok) +
                                          " --calib " + data_file(kVal) + " --calib-tokens " + std::to_string(kTokens) +
                                          " --ctx 256 --json -q --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["linears"], 35);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);  // no temporaries
  const CalibStats back = load_calib_stats(out);
  EXPECT_EQ(back.tokens, kTokens);
  EXPECT_EQ(back.windows, 11);
  EXPECT_EQ(back.ctx, kCtx);
  Model m = stories();
  EXPECT_EQ(back.model_identity, model_identity(m.config()));
  const auto want = whole_model_stats(*m.net, calib_ids());
  ASSERT_EQ(back.stats.size(), want.size());
  for (const auto& [name, st] : want) {
    expect_close(back.stats.at(name).gram, st.gram, 1e-6, name);
    expect_close(back.stats.at(name).abs_mean, st.abs_mean, 1e-6, name);
  }
  EXPECT_EQ(back.shared_input.at("model.layers.3.self_attn.v_proj.weight"), "model.layers.3.self_attn.q_proj.weight");
  EXPECT_EQ(back.shared_input.at("model.layers.3.mlp.up_proj.weight"),
            back.shared_input.at("model.layers.3.mlp.gate_proj.weight"));  // either may run first
  EXPECT_NE(back.shared_input.at("model.layers.3.mlp.up_proj.weight"), "model.layers.3.mlp.down_proj.weight");
  // Read back layer by layer: compress --stats writes the model compress --calib does.
  const std::string compress = "compress --model " + data_file(kBin) + " --tokenizer " + data_file(kTok) +
                               " --keep 0.5 --method svdllm -q --out ";
  ASSERT_EQ(test::run_cli(compress + dir.file("from_stats") + " --stats " + out).exit_code, 0);
  ASSERT_EQ(test::run_cli(compress + dir.file("from_calib") + " --calib " + data_file(kVal) + " --calib-tokens " +
                          std::to_string(kTokens) + " --ctx 256").exit_code, 0);
  Model a = load_model(dir.file("from_stats")), b = load_model(dir.file("from_calib"));
  for (const Linear* l : a.net->linears())
    expect_close(l->dense_weight(), b.net->find_linear(l->name())->dense_weight(), 1e-6, l->name());
}

// Runs `fn`, which must throw one Error naming `path` and saying `phrase`.
void expect_error_of(const std::function<void()>& fn, const std::string& path, const std::string& phrase) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown; expected one mentioning '" << phrase << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), path);
    EXPECT_NE(e.message().find(phrase), std::string::npos) << e.what();
  }
}

// The reference writer of a layer-streamed statistics file (the one before the header-first
// writer): every layer's tensors in the order they come (by name within a layer; gram and abs_mean
// under the owner of a shared input), after a header with the same metadata, by write_safetensors.
std::string reference_stats_bytes(const std::vector<CalibStats>& layers, const CalibStats& meta,
                                  const std::string& calib_file, const std::string& path) {
  std::vector<TensorBytes> tensors;
  std::vector<at::Tensor> keep;
  std::map<std::string, std::string> shared;
  auto add = [&](const std::string& name, const at::Tensor& t) {
    keep.push_back(t.contiguous());
    tensors.push_back({name, t.scalar_type() == at::kDouble ? DType::F64 : DType::F32, t.sizes().vec(),
                       std::string_view(static_cast<const char*>(keep.back().data_ptr()), keep.back().nbytes())});
  };
  keep.reserve(1000);
  for (const CalibStats& layer : layers)
    for (const auto& [name, st] : layer.stats) {
      shared[name] = layer.shared_input.at(name);
      if (shared[name] != name) continue;
      add(name + ".gram", st.gram);
      add(name + ".abs_mean", st.abs_mean);
    }
  write_safetensors(path, tensors,
                    {{"format", "rankrl-calib-stats-v1"}, {"model_identity", meta.model_identity},
                     {"tokens", std::to_string(meta.tokens)}, {"ctx", std::to_string(meta.ctx)},
                     {"windows", std::to_string(meta.windows)}, {"fisher", "false"}, {"calib_file", calib_file},
                     {"shared_input", json(shared).dump()}});
  return read_file(path);
}

// calibrate --out writes the header first and each layer in place: the same bytes as the
// reference writer, and no temporary left beside it.
TEST(LayerStream, CalibrateOutIsByteEqualToTheReferenceWriter) {
  REQUIRE_STORIES();
  test::TempDir dir;
  Model m = stories();
  const std::vector<CalibStats> layers = stats_per_layer(m);
  CalibStats meta;
  meta.tokens = kTokens, meta.ctx = kCtx, meta.windows = 11, meta.model_identity = model_identity(m.config());
  const std::string want = reference_stats_bytes(layers, meta, data_file(kVal), dir.file("reference.safetensors"));

  const std::string out = dir.file("stats.safetensors");
  StatsSource src;
  src.calib_file = data_file(kVal), src.calib_tokens = kTokens, src.ctx = kCtx;
  const CalibStats written = calibrate_to_file(m, src, out);
  EXPECT_EQ(written.shared_input.size(), 35u);
  EXPECT_EQ(read_file(out), want);  // byte for byte
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 2);  // no temporaries

  // save_calib_stats (one group: all weights, by name) reads back the same statistics.
  CalibStats all = meta;
  for (const CalibStats& l : layers) {
    all.stats.insert(l.stats.begin(), l.stats.end());
    all.shared_input.insert(l.shared_input.begin(), l.shared_input.end());
  }
  save_calib_stats(dir.file("whole.safetensors"), all, "x");
  const CalibStats back = load_calib_stats(dir.file("whole.safetensors"));
  ASSERT_EQ(back.stats.size(), 35u);
  for (const auto& [name, st] : all.stats) EXPECT_TRUE(at::equal(back.stats.at(name).gram, st.gram)) << name;
}

// A writer that is given statistics unlike the first group's layout, or too few groups, fails
// naming its file and leaves nothing behind.
TEST(LayerStream, CalibStatsWriterRefusesAnotherLayoutAndMissingGroups) {
  REQUIRE_STORIES();
  test::TempDir dir;
  Model m = stories();
  const std::vector<CalibStats> layers = stats_per_layer(m);
  std::vector<std::vector<std::string>> names(2);
  for (int i = 0; i < 2; ++i)
    for (const Linear* l : m.net->layer_linears(i)) names[i].push_back(l->name());
  const std::string out = dir.file("s.safetensors");
  {
    CalibStatsWriter w(out, layers[0], "x", names);
    w.add(layers[0]);
    expect_error_of([&] { w.add(layers[2]); }, out, "do not fit the layout of the first group");
  }
  {
    CalibStatsWriter w(out, layers[0], "x", names);
    w.add(layers[0]);
    expect_error_of([&] { w.commit(); }, out, "statistics of 1 group(s) are missing");
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

// The path of the file mapped at address `p` in this process (/proc/self/maps), "" when anonymous.
std::string mapped_file_at(const void* p) {
  std::istringstream maps(read_file("/proc/self/maps"));
  for (std::string line; std::getline(maps, line);) {
    uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) != 2 || uintptr_t(p) < lo || uintptr_t(p) >= hi) continue;
    const auto slash = line.find('/');
    return slash == std::string::npos ? "" : line.substr(slash);
  }
  return "";
}

// With a spill directory, every finished layer's factors are written there and viewed from the
// file (not held in RAM), with the very values of the in-memory path: the saved checkpoints are
// byte-equal.
TEST(LayerStream, SpilledFactorsAreMappedAndWriteTheSameBytes) {
  REQUIRE_STORIES();
  test::TempDir dir;
  const auto ids = calib_ids();
  Model kept = stories(), spilled = stories();
  const Plan plan = uniform_plan(*kept.net, 0.5, "svdllm");
  LayerStreamOptions o;
  o.ids = &ids, o.ctx = kCtx, o.compensate = true, o.factor_dtype = DType::BF16;
  compress_layers(*kept.net, plan, o);
  fs::create_directories(dir.file("spill"));
  o.spill_dir = dir.file("spill");
  compress_layers(*spilled.net, plan, o);
  for (int64_t i = 0; i < 5; ++i) {
    const std::string file = dir.file("spill/layer-" + std::to_string(i) + ".safetensors");
    ASSERT_TRUE(fs::exists(file)) << file;
    for (const Linear* l : spilled.net->layer_linears(i)) {
      ASSERT_TRUE(l->is_low_rank()) << l->name();
      EXPECT_EQ(mapped_file_at(l->A().data_ptr()), fs::canonical(file).string()) << l->name();
      EXPECT_EQ(mapped_file_at(l->B().data_ptr()), fs::canonical(file).string()) << l->name();
      EXPECT_EQ(l->A().scalar_type(), at::kBFloat16);
      const Linear* k = kept.net->find_linear(l->name());
      EXPECT_TRUE(at::equal(l->A(), k->A()) && at::equal(l->B(), k->B())) << l->name();
    }
  }
  save_hf_checkpoint(dir.file("kept"), kept.config(), kept.net->weights(), DType::BF16);
  save_hf_checkpoint(dir.file("spilled"), spilled.config(), spilled.net->weights(), DType::BF16);
  EXPECT_EQ(read_file(dir.file("spilled/model.safetensors")), read_file(dir.file("kept/model.safetensors")));
}

// release_mapped_pages drops a loaded weight's pages (read again from the file: same values) and
// leaves any other tensor alone (MADV_DONTNEED on anonymous memory would zero it).
TEST(LayerStream, ReleasedPagesReadBackTheSameValues) {
  REQUIRE_STORIES();
  test::TempDir dir;
  Model m = stories();
  save_hf_checkpoint(dir.file("hf"), m.config(), m.net->weights(), DType::F32);
  const Checkpoint ck = load_checkpoint(dir.file("hf"));
  const at::Tensor& w = ck.weights.at("model.layers.1.mlp.down_proj.weight");
  ASSERT_NE(mapped_file_at(w.data_ptr()), "");
  const at::Tensor before = w.clone();
  release_mapped_pages(w);
  EXPECT_TRUE(at::equal(w, before));
  const at::Tensor anon = at::arange(1 << 20, at::kFloat);
  release_mapped_pages(anon);
  EXPECT_TRUE(at::equal(anon, at::arange(1 << 20, at::kFloat)));
}

// Whole-model path (statistics from the reference, apply_plan, heal() with whole-model forwards)
// against compress_layers, for one plan and healing mode.
void expect_streamed_equals_whole(const std::string& method, bool heal_on, bool compensate) {
  const auto ids = calib_ids();
  Model whole = stories();
  CalibStats stats;
  stats.stats = whole_model_stats(*whole.net, ids);
  stats.tokens = kTokens;
  const Plan plan = uniform_plan(*whole.net, 0.5, method);
  Transformer dense(whole.config(), whole.net->weights());
  apply_plan(*whole.net, plan, &stats);
  json want_heal;
  if (heal_on) {
    HealOptions h;
    h.ctx = kCtx, h.compensate = compensate;
    want_heal = heal(*whole.net, dense, ids, h)["layers"];
  }

  Model streamed = stories();
  LayerStreamOptions o;
  o.ids = &ids, o.ctx = kCtx, o.heal = heal_on && !compensate, o.compensate = compensate;
  const LayerStreamResult r = compress_layers(*streamed.net, plan, o);
  EXPECT_EQ(r.calibration.windows, 11);
  EXPECT_EQ(r.applied.weights.size(), 35u);
  for (const Linear* l : whole.net->linears()) {
    const Linear* s = streamed.net->find_linear(l->name());
    ASSERT_EQ(s->is_low_rank(), l->is_low_rank()) << l->name();
    EXPECT_EQ(s->rank(), l->rank()) << l->name();
    expect_close(s->dense_weight(), l->dense_weight(), 1e-4, method + " " + l->name());
  }
  if (!heal_on) return;
  ASSERT_EQ(r.heal_layers.size(), want_heal.size());
  for (size_t i = 0; i < want_heal.size(); ++i) {
    EXPECT_EQ(r.heal_layers[i]["name"], want_heal[i]["name"]);
    for (const char* key : {"rel_error_before", "rel_error_after"})
      EXPECT_NEAR(r.heal_layers[i][key].get<double>(), want_heal[i][key].get<double>(),
                  1e-4 * want_heal[i][key].get<double>() + 1e-9)
          << want_heal[i]["name"] << " " << key;
  }
}

TEST(LayerStream, FactorsEqualWholeModelApply) {
  REQUIRE_STORIES();
  expect_streamed_equals_whole("svdllm", false, false);
  expect_streamed_equals_whole("asvd", false, false);
}

TEST(LayerStream, ClosedFormHealEqualsWholeModelHeal) {
  REQUIRE_STORIES();
  expect_streamed_equals_whole("svd", true, false);
}

TEST(LayerStream, CompensatingHealEqualsWholeModelHeal) {
  REQUIRE_STORIES();
  expect_streamed_equals_whole("svdllm", true, true);
}

// The CLI's compress (streamed) writes the model the whole-model path computes.
TEST(LayerStream, CompressCliWritesTheWholeModelResult) {
  REQUIRE_STORIES();
  test::TempDir dir;
  const std::string out = dir.file("c");
  const test::CliResult r = test::run_cli("compress --model " + data_file(kBin) + " --tokenizer " + data_file(kTok) +
                                          " --calib " + data_file(kVal) + " --calib-tokens " + std::to_string(kTokens) +
                                          " --ctx 256 --keep 0.5 --method svdllm --heal-compensate --json -q --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;  // --quiet: no progress
  const json report = json::parse(r.out);
  EXPECT_EQ(report["calibration"]["windows"], 11);
  EXPECT_EQ(report["heal"]["layers"].size(), 35u);
  for (const char* stage : {"load", "calibrate", "apply", "heal", "write"})
    EXPECT_GT(report["seconds_by_stage"][stage].get<double>(), 0.0) << stage;

  const auto ids = calib_ids();
  Model whole = stories();
  CalibStats stats;
  stats.stats = whole_model_stats(*whole.net, ids);
  Transformer dense(whole.config(), whole.net->weights());
  apply_plan(*whole.net, uniform_plan(*whole.net, 0.5, "svdllm"), &stats);
  HealOptions h;
  h.ctx = kCtx, h.compensate = true;
  heal(*whole.net, dense, ids, h);
  // The directory is in Hugging Face layout (q/k rows permuted for its RoPE): compare outputs.
  Model written = load_model(out);
  for (const Linear* l : whole.net->linears())
    if (l->name().find("q_proj") == std::string::npos && l->name().find("k_proj") == std::string::npos)
      expect_close(written.net->find_linear(l->name())->dense_weight(), l->dense_weight(), 1e-4, l->name());
  c10::InferenceMode guard;
  const at::Tensor tokens = at::tensor(at::ArrayRef<int32_t>(ids)).to(at::kLong).narrow(0, 0, 256).view({2, 128});
  expect_close(written.net->forward(tokens), whole.net->forward(tokens), 1e-4, "logits");
}

// Fisher statistics and gradient steps take the whole-model path; the CLI runs both.
TEST(LayerStream, FisherAndHealStepsRunOnTheWholeModelPath) {
  REQUIRE_STORIES();
  test::TempDir dir;
  const std::string args = "compress --model " + data_file(kBin) + " --tokenizer " + data_file(kTok) + " --calib " +
                           data_file(kVal) + " --calib-tokens 1024 --ctx 256 --keep 0.5 --json -q --heal-steps 2 ";
  test::CliResult r = test::run_cli(args + "--method fwsvd --heal --out " + dir.file("fw"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json report = json::parse(r.out);
  EXPECT_EQ(report["calibration"]["fisher"], true);
  ASSERT_EQ(report["heal"]["layers"].size(), 35u);
  // The first weight sees the dense inputs, so its refit can only lower its error.
  EXPECT_LE(report["heal"]["layers"][0]["rel_error_after"].get<double>(),
            report["heal"]["layers"][0]["rel_error_before"].get<double>() + 1e-9);
  ASSERT_EQ(report["heal"]["step_losses"].size(), 2u);
  for (const json& loss : report["heal"]["step_losses"]) EXPECT_TRUE(std::isfinite(loss.get<double>()));
  r = test::run_cli(args + "--method svdllm --out " + dir.file("steps"));  // streamed, then the steps
  ASSERT_EQ(r.exit_code, 0) << r.err;
  report = json::parse(r.out);
  EXPECT_EQ(report["calibration"]["fisher"], false);
  EXPECT_FALSE(report["heal"].contains("layers"));
  ASSERT_EQ(report["heal"]["step_losses"].size(), 2u);
  EXPECT_GT(report["seconds_by_stage"]["heal"].get<double>(), 0.0);
}

TEST(LayerStream, ProgressPerLayerOnStderrUnlessQuiet) {
  REQUIRE_STORIES();
  test::TempDir dir;
  ::setenv("RANKRL_PROGRESS", "1", 1);
  const std::string args = "compress --model " + data_file(kBin) + " --tokenizer " + data_file(kTok) + " --calib " +
                           data_file(kVal) + " --calib-tokens 1024 --ctx 256 --keep 0.5 --method svdllm --heal --out ";
  const test::CliResult loud = test::run_cli(args + dir.file("a"));
  const test::CliResult quiet = test::run_cli(args + dir.file("b") + " --quiet");
  ::unsetenv("RANKRL_PROGRESS");
  ASSERT_EQ(loud.exit_code, 0) << loud.err;
  ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_NE(loud.err.find("compress"), std::string::npos) << loud.err;
  EXPECT_NE(loud.err.find("5/5 layers"), std::string::npos) << loud.err;
  EXPECT_NE(loud.err.find("layer 5/5"), std::string::npos) << loud.err;
  EXPECT_EQ(quiet.err, "");
}

}  // namespace
}  // namespace rankrl
