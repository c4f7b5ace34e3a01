// Weights in their stored dtype (issue 12 item 1), inspect without tensor data, factors written in
// the model's dtype, the streamed safetensors writer, and the table of weight roles (issue 15).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "compress/checkpoint_dir.h"
#include "core/error.h"
#include "core/fs.h"
#include "io/checkpoint.h"
#include "io/checkpoint_detail.h"
#include "io/hf_config.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "model/transformer.h"
#include "io/weight_roles.h"
#include "test_util.h"

namespace rankrl {
namespace {

using nlohmann::json;
using test::data_file;

const char* kTok512 = "stories260K/tok512.bin";

// A Llama small enough for milliseconds but with every feature: GQA, untied head, vocab 512 so
// stories260K's tokenizer fits.
ModelConfig small_llama(bool qkv_bias = false) {
  ModelConfig c = llama_config({.dim = 32, .hidden_dim = 48, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                                .vocab_size = 512, .max_seq_len = 64});
  if (qkv_bias) c.hf_architecture = "Qwen2ForCausalLM", c.model_type = "qwen2";
  c.attn_qkv_bias = qkv_bias;
  c.bos_id = 1;
  c.eos_id = 2;
  return c;
}

ModelConfig small_gpt2() {
  ModelConfig c;
  c.arch = Arch::GPT2;
  c.hf_architecture = "GPT2LMHeadModel";
  c.model_type = "gpt2";
  c.dim = 16;
  c.hidden_dim = 64;
  c.n_layers = 3;
  c.n_heads = 2;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 40;
  c.max_seq_len = 32;
  c.tie_embeddings = true;
  return c;
}

WeightMap random_weights(const ModelConfig& c, uint64_t seed = 1) {
  at::manual_seed(seed);
  WeightMap w;
  for (const auto& s : weight_specs(c)) w[s.name] = at::randn(s.shape) * (s.shape.size() == 1 ? 1.0 : 0.2);
  return w;
}

// Writes a Hugging Face directory stored as `dtype`, with stories260K's tokenizer.
std::string write_model(const test::TempDir& dir, const ModelConfig& c, const WeightMap& w, DType dtype) {
  save_hf_checkpoint(dir.path(), c, w, dtype);
  write_tokenizer_files(data_file(kTok512), 512, dir.path());
  return dir.path();
}

int64_t numel(const WeightMap& w) {
  int64_t n = 0;
  for (const auto& [name, t] : w) n += t.numel();
  return n;
}

WeightMap upcast_all(const WeightMap& w) {
  WeightMap out;
  for (const auto& [name, t] : w) out[name] = t.to(at::kFloat);
  return out;
}

// True when [p, p + bytes) lies inside a mapping of `file` in /proc/self/maps.
bool inside_mapping_of(const void* p, size_t bytes, const std::string& file) {
  std::ifstream maps("/proc/self/maps");
  const std::string canon = std::filesystem::canonical(file).string();
  const auto a = reinterpret_cast<uintptr_t>(p);
  for (std::string line; std::getline(maps, line);) {
    if (line.find(canon) == std::string::npos) continue;
    uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2 && a >= lo && a + bytes <= hi) return true;
  }
  return false;
}

// ---------------------------------------------------------------- stored dtype, zero copy

TEST(StoredDtype, HalfAndBFloat16LoadAsViewsOfTheMap) {
  RANKRL_REQUIRE_DATA(kTok512);
  const ModelConfig c = small_llama();
  const WeightMap w = random_weights(c);
  for (auto [dtype, type] : {std::pair{DType::F16, at::kHalf}, {DType::BF16, at::kBFloat16}, {DType::F32, at::kFloat}}) {
    SCOPED_TRACE(dtype_name(dtype));
    test::TempDir dir;
    write_model(dir, c, w, dtype);
    const Checkpoint ck = load_checkpoint(dir.path());
    for (const auto& [name, t] : w) {
      const at::Tensor& got = ck.weights.at(name);
      EXPECT_EQ(got.scalar_type(), type) << name;
      EXPECT_TRUE(at::equal(got, t.to(type))) << name;  // the rounding torch itself does
      EXPECT_TRUE(inside_mapping_of(got.data_ptr(), got.nbytes(), dir.file("model.safetensors"))) << name;
    }
    EXPECT_EQ(ck.stored_bytes, dtype_size(dtype) * uint64_t(numel(w)));
  }
}

// Logits of a BF16/F16 model equal those of the same weights upcast to float32 at load (the old
// behaviour), up to float summation order: the upcast-per-call path does the same float32 math.
TEST(StoredDtype, LogitsMatchUpcastAtLoadReference) {
  RANKRL_REQUIRE_DATA(kTok512);
  for (const ModelConfig& c : {small_llama(), small_llama(/*qkv_bias=*/true), small_gpt2()}) {
    const WeightMap w = random_weights(c, 3);
    for (DType dtype : {DType::F16, DType::BF16}) {
      SCOPED_TRACE(std::string(arch_name(c.arch)) + " " + dtype_name(dtype));
      test::TempDir dir;
      save_hf_checkpoint(dir.path(), c, w, dtype);
      const Checkpoint ck = load_checkpoint(dir.path());
      const Transformer stored(c, ck.weights);
      const Transformer reference(c, upcast_all(ck.weights));
      EXPECT_EQ(stored.stored_dtype(), dtype);
      EXPECT_EQ(stored.weights().at(tensor_name(c.arch, Role::TokEmbed)).scalar_type(), scalar_type_of(dtype));
      c10::InferenceMode guard;
      at::manual_seed(5);
      const at::Tensor tokens = at::randint(c.vocab_size, {2, 9}, at::kLong);
      const at::Tensor a = stored.forward(tokens), b = reference.forward(tokens);
      EXPECT_EQ(a.scalar_type(), at::kFloat);
      EXPECT_LE((a - b).abs().max().item<double>(), 1e-5 * (1 + b.abs().max().item<double>()));
    }
  }
}

TEST(StoredDtype, LinearUpcastsPerCallAndDenseWeightIsFloat32) {
  at::manual_seed(11);
  const at::Tensor W = at::randn({6, 5}).to(at::kBFloat16), bias = at::randn({6}).to(at::kBFloat16);
  const at::Tensor x = at::randn({3, 5});
  const Linear dense = Linear::dense("w", W, bias);
  EXPECT_EQ(dense.stored_type(), at::kBFloat16);
  EXPECT_EQ(dense.weight().scalar_type(), at::kBFloat16);  // kept as stored
  EXPECT_EQ(dense.dense_weight().scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(dense.forward(x), at::linear(x, W.to(at::kFloat), bias.to(at::kFloat))));
  const at::Tensor A = at::randn({6, 2}).to(at::kHalf), B = at::randn({2, 5}).to(at::kHalf);
  const Linear low = Linear::low_rank("w", A, B);
  EXPECT_EQ(low.stored_type(), at::kHalf);
  EXPECT_TRUE(at::equal(low.dense_weight(), at::mm(A.to(at::kFloat), B.to(at::kFloat))));
  EXPECT_TRUE(at::equal(low.forward(x), at::linear(at::linear(x, B.to(at::kFloat)), A.to(at::kFloat))));
}

// The blockwise NaN/Inf count equals a plain count, for any dtype and layout (a transposed view,
// tensors larger than one block).
TEST(StoredDtype, CountNonFiniteMatchesPlainCount) {
  at::manual_seed(2);
  at::Tensor t = at::randn({3000, 1500});
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  t[0][0] = nan;
  t[2999][1499] = -inf;
  t[1700][3] = inf;
  t[2800][700] = nan;
  for (at::ScalarType type : {at::kFloat, at::kHalf, at::kBFloat16}) {
    const at::Tensor s = t.to(type);
    EXPECT_EQ(detail::count_non_finite(s), 4);
    EXPECT_EQ(detail::count_non_finite(s.t()), 4);
    EXPECT_EQ(detail::count_non_finite(s.narrow(0, 1, 100)), 0);
  }
}

// ---------------------------------------------------------------- inspect reads headers only

// A BF16 checkpoint whose whole data region is 0xFF bytes (NaN in BF16): inspect describes it,
// --check-values and eval refuse it.
TEST(Inspect, ReadsNoTensorData) {
  RANKRL_REQUIRE_DATA(kTok512);
  const ModelConfig c = small_llama();
  const WeightMap w = random_weights(c);
  test::TempDir dir;
  write_model(dir, c, w, DType::BF16);
  {
    const std::string path = dir.file("model.safetensors");
    std::string bytes = test::read_text(path);
    const uint64_t data_start = SafetensorsFile::open(path).header().data_start;
    std::fill(bytes.begin() + int64_t(data_start), bytes.end(), char(0xFF));
    test::write_text(path, bytes);
  }
  const test::CliResult r = test::run_cli("inspect --json --model " + dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  const int64_t params = numel(w);
  EXPECT_EQ(j["total_parameters"].get<int64_t>(), params);
  EXPECT_EQ(j["total_bytes"].get<int64_t>(), 2 * params);
  EXPECT_EQ(j["stored_dtypes"]["BF16"].get<int64_t>(), int64_t(w.size()));
  const test::CliResult checked = test::run_cli("inspect --check-values --model " + dir.path());
  EXPECT_EQ(checked.exit_code, 1);
  EXPECT_NE(checked.err.find("NaN/Inf"), std::string::npos) << checked.err;
}

// ---------------------------------------------------------------- written dtype

TEST(WrittenDtype, SaveKeepsBFloat16BitExactAndDefaultsCompressToTheModelsDtype) {
  RANKRL_REQUIRE_DATA(kTok512);
  const ModelConfig c = small_llama();
  test::TempDir src;
  write_model(src, c, random_weights(c), DType::BF16);
  const Checkpoint ck = load_checkpoint(src.path());
  test::TempDir again;
  save_hf_checkpoint(again.path(), c, ck.weights, DType::BF16);
  EXPECT_EQ(test::read_text(again.file("model.safetensors")), test::read_text(src.file("model.safetensors")));

  test::TempDir out;
  for (const std::string& flag : {std::string(""), std::string(" --dtype f32")}) {
    SCOPED_TRACE("flag: '" + flag + "'");
    const std::string name = flag.empty() ? "small" : "small32";
    const test::CliResult r = test::run_cli("compress --json -q --model " + src.path() +
                                            " --keep 0.5 --method svd --force --out " + out.file(name) + flag);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const DType want = flag.empty() ? DType::BF16 : DType::F32;
    const auto file = SafetensorsFile::open(out.file(name + "/model.safetensors"));
    int factors = 0;
    for (const TensorInfo& t : file.header().tensors) {
      EXPECT_EQ(t.dtype, want) << t.name;
      factors += t.name.find(".lowrank_") != std::string::npos;
    }
    EXPECT_EQ(factors, 2 * 7 * int(c.n_layers));
    const json size = json::parse(r.out)["size"];
    EXPECT_EQ(size["dtype"], dtype_name(want));
    EXPECT_EQ(size["before"]["dtype"], "BF16");
    EXPECT_EQ(size["after"]["total_bytes"].get<int64_t>(),
              int64_t(dtype_size(want)) * size["after"]["total_parameters"].get<int64_t>());
    EXPECT_EQ(size["before"]["total_bytes"].get<int64_t>(), 2 * size["before"]["total_parameters"].get<int64_t>());
    // The data region holds exactly the parameters at the dtype's width.
    uint64_t data = 0;
    for (const TensorInfo& t : file.header().tensors) data += t.end - t.begin;
    EXPECT_EQ(int64_t(data), size["after"]["total_bytes"].get<int64_t>());
  }
  // The BF16 directory is the F32 one rounded to BF16 (same factors, the rest was BF16 already):
  // its model gives exactly the logits of the F32 directory's weights rounded to BF16.
  const Model bf16 = load_model(out.file("small"));
  const Checkpoint f32 = load_checkpoint(out.file("small32"));
  WeightMap rounded;
  for (const auto& [n, t] : f32.weights) rounded[n] = t.to(at::kBFloat16).to(at::kFloat);
  const Transformer reference(f32.config, rounded);
  EXPECT_EQ(bf16.net->linears()[0]->stored_type(), at::kBFloat16);
  EXPECT_TRUE(bf16.net->linears()[0]->is_low_rank());
  c10::InferenceMode guard;
  const at::Tensor tokens = at::randint(c.vocab_size, {1, 12}, at::kLong);
  EXPECT_TRUE(at::allclose(bf16.net->forward(tokens), reference.forward(tokens), 1e-5, 1e-5));
}

// ---------------------------------------------------------------- streamed safetensors writer

TEST(Safetensors, StreamedWriterWritesTheSameBytes) {
  test::TempDir dir;
  at::manual_seed(4);
  std::vector<at::Tensor> keep = {at::randn({3, 5}), at::randn({7}).to(at::kBFloat16), at::randn({2, 2}).to(at::kHalf)};
  std::vector<TensorBytes> tensors;
  const DType types[] = {DType::F32, DType::BF16, DType::F16};
  for (size_t i = 0; i < keep.size(); ++i)
    tensors.push_back({"t" + std::to_string(i), types[i], keep[i].sizes().vec(),
                       std::string_view(static_cast<const char*>(keep[i].data_ptr()), keep[i].nbytes())});
  write_safetensors(dir.file("a.safetensors"), tensors, {{"format", "pt"}});
  std::vector<TensorBytes> layout = tensors;
  for (auto& t : layout) t.bytes = {};
  write_safetensors_streamed(dir.file("b.safetensors"), layout,
                             [&](size_t i) { return std::string(tensors[i].bytes); }, {{"format", "pt"}});
  EXPECT_EQ(test::read_text(dir.file("a.safetensors")), test::read_text(dir.file("b.safetensors")));
  EXPECT_THROW(write_safetensors_streamed(dir.file("c.safetensors"), layout, [](size_t) { return std::string(3, 'x'); }),
               Error);
  EXPECT_FALSE(file_exists(dir.file("c.safetensors")));
}

// ---------------------------------------------------------------- the table of weight roles

// Every name an architecture requires parses back to the role and layer that spell it, factors
// keep their suffix, and names of no role do not parse.
TEST(WeightRoles, EveryRequiredNameRoundTrips) {
  ModelConfig tied = small_llama();
  tied.tie_embeddings = true;
  for (const ModelConfig& c : {small_llama(), small_llama(/*qkv_bias=*/true), tied, small_gpt2()}) {
    SCOPED_TRACE(c.model_type);
    std::set<Role> seen;
    for (const WeightSpec& s : weight_specs(c)) {
      const auto p = parse_tensor_name(c.arch, s.name);
      ASSERT_TRUE(p.has_value()) << s.name;
      EXPECT_EQ(tensor_name(c.arch, p->role, p->layer), s.name);
      EXPECT_EQ(p->factor, "");
      EXPECT_EQ(role_shape(c, role_spec(c.arch, p->role)), s.shape) << s.name;
      EXPECT_EQ(p->layer >= 0, role_spec(c.arch, p->role).per_layer) << s.name;
      EXPECT_LT(p->layer, c.n_layers);
      seen.insert(p->role);
      if (is_projection_weight(c, s.name)) {
        const auto a = parse_tensor_name(c.arch, s.name + kLowRankA);
        ASSERT_TRUE(a.has_value());
        EXPECT_EQ(a->role, p->role);
        EXPECT_EQ(a->layer, p->layer);
        EXPECT_EQ(a->factor, kLowRankA);
        EXPECT_NE(role_short_name(p->role), std::string(""));
      }
    }
    // Every role the config implies appears, each once per layer or once per model.
    size_t present = 0;
    for (const RoleSpec& r : weight_roles(c.arch)) present += role_present(r, c);
    EXPECT_EQ(seen.size(), present);
  }
  // Spot checks against names spelled by hand, and names that belong to no role.
  EXPECT_EQ(tensor_name(Arch::Llama, Role::Down, 17), "model.layers.17.mlp.down_proj.weight");
  EXPECT_EQ(tensor_name(Arch::GPT2, Role::QKV, 3), "transformer.h.3.attn.c_attn.weight");
  const auto gate = parse_tensor_name(Arch::Llama, "model.layers.12.mlp.gate_proj.weight.lowrank_B");
  ASSERT_TRUE(gate);
  EXPECT_EQ(gate->role, Role::Gate);
  EXPECT_EQ(gate->layer, 12);
  EXPECT_EQ(gate->factor, ".lowrank_B");
  for (const char* bad : {"model.layers.x.mlp.gate_proj.weight", "model.layers.01.mlp.gate_proj.weight",
                          "model.layers..mlp.gate_proj.weight", "model.norm.weight.lowrank_A",
                          "model.layers.0.mlp.gate_proj.bias", "transformer.h.0.attn.c_attn.weight", ""})
    EXPECT_FALSE(parse_tensor_name(Arch::Llama, bad)) << bad;
  EXPECT_TRUE(is_conv1d_weight(small_gpt2(), "transformer.h.2.mlp.c_proj.weight"));
  EXPECT_FALSE(is_conv1d_weight(small_gpt2(), "transformer.h.2.mlp.c_proj.bias"));
  EXPECT_FALSE(is_conv1d_weight(small_llama(), "model.layers.0.mlp.down_proj.weight"));
}

// The transformer reads and writes its weights through the table: weights() gives back exactly
// the loaded names (and is what save writes), for every architecture.
TEST(WeightRoles, TransformerWeightsAreTheRequiredNames) {
  for (const ModelConfig& c : {small_llama(), small_llama(true), small_gpt2()}) {
    SCOPED_TRACE(c.model_type);
    const WeightMap w = random_weights(c);
    const Transformer net(c, w);
    const WeightMap back = net.weights();
    ASSERT_EQ(back.size(), w.size());
    for (const auto& [name, t] : w) {
      ASSERT_TRUE(back.count(name)) << name;
      EXPECT_TRUE(at::equal(back.at(name), t)) << name;
    }
  }
}

}  // namespace
}  // namespace rankrl
