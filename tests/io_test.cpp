// Tests for src/io: safetensors, config.json, llama2.c and Hugging Face checkpoints.
// Expected values for the shared checkpoints come from tests/reference/read_checkpoints_ref.py
// (an independent numpy reader) via tests/expected/checkpoint_values.json.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "io/checkpoint.h"
#include "io/hf_config.h"
#include "io/safetensors.h"

namespace rankrl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kData = RANKRL_SOURCE_DIR "/../shared/data";
const std::string kStories = kData + "/stories260K/stories260K.bin";
const std::string kGpt2 = kData + "/gpt2-random-tiny";

#define REQUIRE_FILE(p)                                                                       \
  if (!fs::exists(p)) GTEST_SKIP() << "shared test data not found: " << (p)                   \
                                   << " (expected ../shared/data next to the repository)"

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("rankrl_io_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Runs `fn`, which must throw rankrl::Error mentioning `path` and `phrase`.
void expect_error(const std::function<void()>& fn, const std::string& path, const std::string& phrase) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown; expected one mentioning '" << phrase << "'";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << "path '" << path << "' missing in: " << what;
    EXPECT_NE(what.find(phrase), std::string::npos) << "phrase '" << phrase << "' missing in: " << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << "multi-line message: " << what;
  }
}

// A safetensors file from a literal JSON header and `data_bytes` zero bytes of data.
std::string safetensors_bytes(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + std::string(data_bytes, '\0');
}

std::string u64_prefix(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

json expected_values() {
  return json::parse(read_file(RANKRL_SOURCE_DIR "/tests/expected/checkpoint_values.json"));
}

int64_t total_parameters(const WeightMap& w) {
  int64_t n = 0;
  for (const auto& [name, t] : w) n += t.numel();
  return n;
}

// Compares every spot value and the float64 sum recorded by the Python reference.
void expect_spot_values(const WeightMap& weights, const json& tensors) {
  for (const auto& spec : tensors) {
    const auto name = spec["name"].get<std::string>();
    SCOPED_TRACE(name);
    ASSERT_TRUE(weights.count(name));
    const at::Tensor& t = weights.at(name);
    EXPECT_EQ(t.sizes().vec(), spec["shape"].get<std::vector<int64_t>>());
    for (const auto& p : spec["points"]) {
      at::Tensor v = t;
      for (int64_t i : p["index"].get<std::vector<int64_t>>()) v = v.select(0, i);
      EXPECT_EQ(v.item<float>(), static_cast<float>(p["value"].get<double>()));
    }
    const double sum = t.to(at::kDouble).sum().item<double>();
    EXPECT_NEAR(sum, spec["sum"].get<double>(), 1e-9 * (1 + std::abs(sum)));
  }
}

ModelConfig tiny_llama(bool tie = false) {
  ModelConfig c = llama_config({.dim = 8, .hidden_dim = 12, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1,
                                .vocab_size = 10});
  c.max_seq_len = 16;
  c.norm_eps = 1e-5;
  c.tie_embeddings = tie;
  c.bos_id = 1;
  c.eos_id = 2;
  return c;
}

WeightMap random_weights(const ModelConfig& c, uint64_t seed = 1) {
  at::manual_seed(seed);
  WeightMap w;
  for (const auto& s : weight_specs(c)) w[s.name] = at::randn(s.shape);
  return w;
}

void expect_same_weights(const WeightMap& a, const WeightMap& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    EXPECT_TRUE(at::equal(t, b.at(name))) << name;
  }
}

// Writes a Llama-family HF directory with weights stored as `type` (F32, F16 or BF16).
void write_llama_dir(const std::string& dir, const ModelConfig& c, const WeightMap& w, DType type) {
  const at::ScalarType st = type == DType::F16 ? at::kHalf : type == DType::BF16 ? at::kBFloat16 : at::kFloat;
  std::vector<at::Tensor> keep;
  std::vector<TensorBytes> tensors;
  for (const auto& [name, t] : w) {
    keep.push_back(t.to(st).contiguous());
    tensors.push_back({name, type, t.sizes().vec(),
                       std::string_view(static_cast<const char*>(keep.back().data_ptr()), keep.back().nbytes())});
  }
  write_safetensors(dir + "/model.safetensors", tensors);
  write_file_atomic(dir + "/config.json", hf_config_json(c));
}

// ---------------------------------------------------------------- llama2.c: stories260K

TEST(Llama2c, Stories260KConfigMatchesReadme) {
  REQUIRE_FILE(kStories);
  const Checkpoint ck = load_checkpoint(kStories);
  const ModelConfig& c = ck.config;
  EXPECT_EQ(ck.format, "llama2c");
  EXPECT_EQ(c.arch, Arch::Llama);
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.kv_dim(), 32);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_seq_len, 512);
  EXPECT_TRUE(c.rope_interleaved);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_DOUBLE_EQ(c.norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.bos_id, 1);
  EXPECT_EQ(c.eos_id, 2);
  EXPECT_EQ(ck.weights.size(), required_weight_names(c).size());
  EXPECT_EQ(ck.weights.count("lm_head.weight"), 0u);  // shared classifier
}

TEST(Llama2c, Stories260KParameterCount) {
  REQUIRE_FILE(kStories);
  const Checkpoint ck = load_checkpoint(kStories);
  const int64_t params = total_parameters(ck.weights);
  EXPECT_EQ(params, 260032);  // data README
  EXPECT_EQ(params, expected_values()["stories260K"]["parameters"].get<int64_t>());
  EXPECT_EQ(ck.stored_bytes, 4u * 260032u);
  for (const auto& [name, d] : ck.stored_dtypes) EXPECT_EQ(d, DType::F32) << name;
}

TEST(Llama2c, Stories260KValuesMatchPythonReference) {
  REQUIRE_FILE(kStories);
  const Checkpoint ck = load_checkpoint(kStories);
  expect_spot_values(ck.weights, expected_values()["stories260K"]["tensors"]);
}

TEST(Llama2c, WeightsAreZeroCopyViewsThatOutliveTheCheckpoint) {
  REQUIRE_FILE(kStories);
  at::Tensor q0, q1;
  {
    const Checkpoint ck = load_checkpoint(kStories);
    q0 = ck.weights.at("model.layers.0.self_attn.q_proj.weight");
    q1 = ck.weights.at("model.layers.1.self_attn.q_proj.weight");
  }
  // Layer slices of one stacked block of the map: same storage, consecutive.
  EXPECT_TRUE(q0.storage().is_alias_of(q1.storage()));
  EXPECT_EQ(static_cast<const float*>(q1.data_ptr()) - static_cast<const float*>(q0.data_ptr()), 64 * 64);
  EXPECT_TRUE(std::isfinite(q1.sum().item<float>()));  // still mapped after the Checkpoint died
}

// ---------------------------------------------------------------- GPT-2 safetensors

TEST(Gpt2, RandomTinyLoads) {
  REQUIRE_FILE(kGpt2);
  const Checkpoint ck = load_checkpoint(kGpt2);
  const ModelConfig& c = ck.config;
  EXPECT_EQ(ck.format, "safetensors");
  EXPECT_EQ(c.arch, Arch::GPT2);
  EXPECT_EQ(c.hf_architecture, "GPT2LMHeadModel");
  EXPECT_EQ(c.dim, 2);
  EXPECT_EQ(c.n_layers, 1);
  EXPECT_EQ(c.n_heads, 1);
  EXPECT_EQ(c.hidden_dim, 8);  // n_inner null -> 4 * n_embd
  EXPECT_EQ(c.vocab_size, 50257);
  EXPECT_EQ(c.max_seq_len, 1024);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_DOUBLE_EQ(c.norm_eps, 1e-5);
  EXPECT_EQ(c.bos_id, 50256);
  EXPECT_EQ(c.eos_id, 50256);
  EXPECT_EQ(ck.weights.count("lm_head.weight"), 0u);
  EXPECT_EQ(total_parameters(ck.weights), expected_values()["gpt2-random-tiny"]["parameters"].get<int64_t>());
  ASSERT_EQ(ck.files.size(), 1u);
  EXPECT_EQ(ck.stored_bytes, 410560u);
}

TEST(Gpt2, Conv1DWeightIsTransposedViewOfStoredTensor) {
  REQUIRE_FILE(kGpt2);
  const Checkpoint ck = load_checkpoint(kGpt2);
  const at::Tensor w = ck.weights.at("transformer.h.0.attn.c_attn.weight");
  EXPECT_EQ(w.sizes().vec(), (std::vector<int64_t>{6, 2}));
  EXPECT_FALSE(w.is_contiguous());  // a view, not a copy
  const auto file = SafetensorsFile::open(kGpt2 + "/model.safetensors");
  const TensorInfo* info = file.find("transformer.h.0.attn.c_attn.weight");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->shape, (std::vector<int64_t>{2, 6}));
  at::Tensor stored = at::from_blob(const_cast<uint8_t*>(file.data(*info)), {2, 6}).clone();
  EXPECT_TRUE(at::equal(w, stored.t()));
  EXPECT_EQ(w.data_ptr(), static_cast<const void*>(ck.weights.at("transformer.h.0.attn.c_attn.weight").data_ptr()));
}

TEST(Gpt2, ValuesMatchPythonReference) {
  REQUIRE_FILE(kGpt2);
  const Checkpoint ck = load_checkpoint(kGpt2);
  expect_spot_values(ck.weights, expected_values()["gpt2-random-tiny"]["tensors"]);
}

TEST(Gpt2, AcceptsNamesWithoutTransformerPrefix) {
  REQUIRE_FILE(kGpt2);
  const Checkpoint ref = load_checkpoint(kGpt2);
  TempDir dir;
  const auto file = SafetensorsFile::open(kGpt2 + "/model.safetensors");
  std::vector<TensorBytes> tensors;
  for (const auto& t : file.header().tensors)
    tensors.push_back({t.name.substr(std::string("transformer.").size()), t.dtype, t.shape,
                       std::string_view(reinterpret_cast<const char*>(file.data(t)), t.end - t.begin)});
  write_safetensors(dir.file("model.safetensors"), tensors);
  fs::copy_file(kGpt2 + "/config.json", dir.file("config.json"));
  expect_same_weights(ref.weights, load_checkpoint(dir.str()).weights);
}

TEST(Gpt2, SaveWritesConv1DBackAsStoredAndReloadsIdentically) {
  REQUIRE_FILE(kGpt2);
  const Checkpoint ref = load_checkpoint(kGpt2);
  TempDir dir;
  save_hf_checkpoint(dir.str(), ref.config, ref.weights);
  const auto file = SafetensorsFile::open(dir.file("model.safetensors"));
  EXPECT_EQ(file.find("transformer.h.0.attn.c_attn.weight")->shape, (std::vector<int64_t>{2, 6}));
  EXPECT_EQ(file.header().metadata.at("format"), "pt");
  EXPECT_EQ(file.header().data_start % 8, 0u);
  const Checkpoint back = load_checkpoint(dir.str());
  expect_same_weights(ref.weights, back.weights);
  EXPECT_EQ(hf_config_json(back.config), hf_config_json(ref.config));
}

// ---------------------------------------------------------------- safetensors round trips

TEST(Safetensors, RoundTripIsBitExactForFloatTypes) {
  TempDir dir;
  at::manual_seed(7);
  const std::pair<DType, at::ScalarType> types[] = {
      {DType::F32, at::kFloat}, {DType::F16, at::kHalf}, {DType::BF16, at::kBFloat16}};
  std::vector<at::Tensor> keep;
  std::vector<TensorBytes> tensors;
  for (const auto& [dtype, st] : types) {
    keep.push_back(at::randn({3, 5}).to(st));
    tensors.push_back({std::string("t_") + dtype_name(dtype), dtype, {3, 5},
                       std::string_view(static_cast<const char*>(keep.back().data_ptr()), keep.back().nbytes())});
  }
  tensors.push_back({"empty", DType::F32, {0, 4}, {}});
  tensors.push_back({"scalar", DType::F32, {}, std::string_view(static_cast<const char*>(keep[0].data_ptr()), 4)});
  const std::string path = dir.file("x.safetensors");
  write_safetensors(path, tensors, {{"format", "pt"}, {"note", "hi"}});
  const auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f.header().data_start % 8, 0u);
  EXPECT_EQ(f.header().metadata, (std::map<std::string, std::string>{{"format", "pt"}, {"note", "hi"}}));
  ASSERT_EQ(f.header().tensors.size(), tensors.size());
  for (const auto& t : tensors) {
    const TensorInfo* info = f.find(t.name);
    ASSERT_NE(info, nullptr) << t.name;
    EXPECT_EQ(info->dtype, t.dtype);
    EXPECT_EQ(info->shape, t.shape);
    ASSERT_EQ(info->end - info->begin, t.bytes.size());
    EXPECT_EQ(std::memcmp(f.data(*info), t.bytes.data(), t.bytes.size()), 0) << t.name;
  }
  EXPECT_EQ(f.find("absent"), nullptr);
}

TEST(Safetensors, WriterRejectsWrongByteCount) {
  TempDir dir;
  const float x[3] = {1, 2, 3};
  const std::string path = dir.file("bad.safetensors");
  expect_error([&] { write_safetensors(path, {{"t", DType::F32, {2, 2}, std::string_view(reinterpret_cast<const char*>(x), 12)}}); },
               path, "needs 16 bytes");
  EXPECT_FALSE(fs::exists(path));
}

TEST(Checkpoint, HalfAndBFloat16ConvertLikeTorch) {
  const ModelConfig c = tiny_llama();
  const WeightMap w = random_weights(c);
  for (DType type : {DType::F16, DType::BF16}) {
    SCOPED_TRACE(dtype_name(type));
    TempDir dir;
    write_llama_dir(dir.str(), c, w, type);
    const Checkpoint ck = load_checkpoint(dir.str());
    const at::ScalarType st = type == DType::F16 ? at::kHalf : at::kBFloat16;
    for (const auto& [name, t] : w) {
      EXPECT_TRUE(at::equal(ck.weights.at(name), t.to(st))) << name;  // kept in the stored dtype
      EXPECT_TRUE(at::equal(ck.weights.at(name).to(at::kFloat), t.to(st).to(at::kFloat))) << name;
      EXPECT_EQ(ck.stored_dtypes.at(name), type);
    }
    EXPECT_EQ(ck.stored_bytes, 2u * static_cast<uint64_t>(total_parameters(w)));
  }
}

TEST(Checkpoint, ShardedDirectoryLoadsLikeSingleFile) {
  const ModelConfig c = tiny_llama();
  const WeightMap w = random_weights(c);
  TempDir single, sharded;
  save_hf_checkpoint(single.str(), c, w);
  // Split the tensors over two shards in alternation and write the index.
  std::vector<at::Tensor> keep;
  std::vector<TensorBytes> shard[2];
  json weight_map = json::object();
  int i = 0;
  for (const auto& [name, t] : w) {
    keep.push_back(t.contiguous());
    const int s = i++ % 2;
    shard[s].push_back({name, DType::F32, t.sizes().vec(),
                        std::string_view(static_cast<const char*>(keep.back().data_ptr()), keep.back().nbytes())});
    weight_map[name] = "model-0000" + std::to_string(s + 1) + "-of-00002.safetensors";
  }
  write_safetensors(sharded.file("model-00001-of-00002.safetensors"), shard[0]);
  write_safetensors(sharded.file("model-00002-of-00002.safetensors"), shard[1]);
  write_file_atomic(sharded.file("model.safetensors.index.json"),
                    json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump());
  write_file_atomic(sharded.file("config.json"), hf_config_json(c));
  const Checkpoint a = load_checkpoint(single.str());
  const Checkpoint b = load_checkpoint(sharded.str());
  EXPECT_EQ(b.files.size(), 2u);
  expect_same_weights(a.weights, b.weights);
  expect_same_weights(w, b.weights);
  EXPECT_EQ(a.stored_bytes, b.stored_bytes);
  EXPECT_EQ(load_checkpoint(sharded.file("config.json")).weights.size(), w.size());
}

TEST(Checkpoint, TiedLlamaIgnoresStoredLmHead) {
  const ModelConfig c = tiny_llama(/*tie=*/true);
  WeightMap w = random_weights(c);
  w["lm_head.weight"] = at::randn({c.vocab_size, c.dim});
  TempDir dir;
  write_llama_dir(dir.str(), c, w, DType::F32);
  const Checkpoint ck = load_checkpoint(dir.str());
  EXPECT_EQ(ck.weights.count("lm_head.weight"), 0u);
  EXPECT_EQ(ck.weights.size(), w.size() - 1);
}

TEST(Checkpoint, Stories260KSavesAsRotateHalfHfLlama) {
  REQUIRE_FILE(kStories);
  const Checkpoint ref = load_checkpoint(kStories);
  TempDir dir;
  save_hf_checkpoint(dir.str(), ref.config, ref.weights);
  const Checkpoint back = load_checkpoint(dir.str());
  EXPECT_FALSE(back.config.rope_interleaved);
  EXPECT_TRUE(back.config.tie_embeddings);
  EXPECT_EQ(back.config.n_kv_heads, 4);
  // Rotate-half row j of a head (j < head_dim/2) is interleaved row 2j; row j + head_dim/2 is 2j+1.
  const at::Tensor q = ref.weights.at("model.layers.0.self_attn.q_proj.weight");
  const at::Tensor q_hf = back.weights.at("model.layers.0.self_attn.q_proj.weight");
  const int64_t hd = 8;
  for (int64_t head : {0, 7})
    for (int64_t j = 0; j < hd / 2; ++j) {
      EXPECT_TRUE(at::equal(q_hf[head * hd + j], q[head * hd + 2 * j]));
      EXPECT_TRUE(at::equal(q_hf[head * hd + j + hd / 2], q[head * hd + 2 * j + 1]));
    }
  EXPECT_TRUE(at::equal(back.weights.at("model.layers.3.mlp.down_proj.weight"),
                        ref.weights.at("model.layers.3.mlp.down_proj.weight")));
}

TEST(Checkpoint, SaveRejectsUnknownWeight) {
  const ModelConfig c = tiny_llama();
  WeightMap w = random_weights(c);
  w["model.layers.0.self_attn.q_proj.lowrank_A"] = at::zeros({2, 2});
  TempDir dir;
  expect_error([&] { save_hf_checkpoint(dir.str(), c, w); }, dir.str(), "is not part of a llama checkpoint");
}

// ---------------------------------------------------------------- config.json variants

const char* kLlamaConfig = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
  "intermediate_size": 172, "num_hidden_layers": 5, "num_attention_heads": 8,
  "num_key_value_heads": 4, "vocab_size": 512, "max_position_embeddings": 512,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "rope_scaling": null,
  "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": [2, 3]})";

json llama_json() { return json::parse(kLlamaConfig); }

ModelConfig parse(const json& j) { return parse_hf_config(j.dump(), "dir/config.json"); }

TEST(HfConfig, LlamaWithGqaAndTie) {
  const ModelConfig c = parse(llama_json());
  EXPECT_EQ(c.arch, Arch::Llama);
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_FALSE(c.rope_interleaved);
  EXPECT_FALSE(c.attn_qkv_bias);
  EXPECT_EQ(c.bos_id, 1);
  EXPECT_EQ(c.eos_id, 2);  // first of a list
  EXPECT_EQ(weight_specs(c)[2].shape, (std::vector<int64_t>{64, 64}));  // q_proj
  EXPECT_EQ(weight_specs(c)[3].shape, (std::vector<int64_t>{32, 64}));  // k_proj
  const auto names = required_weight_names(c);
  EXPECT_EQ(std::count(names.begin(), names.end(), "lm_head.weight"), 0);
}

TEST(HfConfig, DefaultsAndUntied) {
  json j = llama_json();
  for (const char* key : {"num_key_value_heads", "rope_theta", "tie_word_embeddings", "rms_norm_eps"}) j.erase(key);
  j["bos_token_id"] = nullptr;
  const ModelConfig c = parse(j);
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_EQ(c.bos_id, -1);
  const auto names = required_weight_names(c);
  EXPECT_EQ(names.back(), "lm_head.weight");
}

TEST(HfConfig, HeadDimOverride) {
  json j = llama_json();
  j["head_dim"] = 16;
  const ModelConfig c = parse(j);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.kv_dim(), 64);
  const auto specs = weight_specs(c);
  EXPECT_EQ(specs[2].shape, (std::vector<int64_t>{128, 64}));  // q_proj: heads * head_dim rows
  EXPECT_EQ(specs[5].shape, (std::vector<int64_t>{64, 128}));  // o_proj
  EXPECT_EQ(parse_hf_config(hf_config_json(c), "x").head_dim, 16);
}

TEST(HfConfig, Qwen2HasQkvBias) {
  json j = llama_json();
  j["model_type"] = "qwen2";
  j["architectures"] = {"Qwen2ForCausalLM"};
  j["tie_word_embeddings"] = false;
  const ModelConfig c = parse(j);
  EXPECT_TRUE(c.attn_qkv_bias);
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_EQ(c.hf_architecture, "Qwen2ForCausalLM");
  const auto names = required_weight_names(c);
  EXPECT_NE(std::find(names.begin(), names.end(), "model.layers.4.self_attn.k_proj.bias"), names.end());
  EXPECT_EQ(std::find(names.begin(), names.end(), "model.layers.4.self_attn.o_proj.bias"), names.end());
}

TEST(HfConfig, JsonRoundTrip) {
  for (const ModelConfig& c : {tiny_llama(), tiny_llama(true), parse(llama_json())}) {
    const ModelConfig back = parse_hf_config(hf_config_json(c), "x");
    EXPECT_EQ(hf_config_json(back), hf_config_json(c));
    EXPECT_EQ(back.dim, c.dim);
    EXPECT_EQ(back.n_kv_heads, c.n_kv_heads);
    EXPECT_EQ(back.tie_embeddings, c.tie_embeddings);
    EXPECT_EQ(back.norm_eps, c.norm_eps);
  }
}

TEST(HfConfig, Gpt2Variants) {
  json j = {{"model_type", "gpt2"}, {"n_embd", 12}, {"n_layer", 2}, {"n_head", 3},
            {"n_inner", nullptr}, {"n_positions", 32}, {"vocab_size", 100},
            {"activation_function", "gelu_pytorch_tanh"}};
  ModelConfig c = parse(j);
  EXPECT_EQ(c.arch, Arch::GPT2);
  EXPECT_EQ(c.hidden_dim, 48);
  EXPECT_EQ(c.head_dim, 4);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(std::string(arch_name(c.arch)), "gpt2");
  j["n_inner"] = 20;
  EXPECT_EQ(parse(j).hidden_dim, 20);
  j["activation_function"] = "relu";
  expect_error([&] { parse(j); }, "dir/config.json", "field 'activation_function' 'relu' is not supported");
}

TEST(HfConfig, RejectsUnsupportedAndMalformed) {
  const std::string p = "dir/config.json";
  json j = llama_json();
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  expect_error([&] { parse(j); }, p, "rope_scaling' type 'llama3' is not supported");
  j = llama_json();
  j["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_EQ(parse(j).dim, 64);  // transformers' spelling of "no scaling"
  j.erase("hidden_size");
  expect_error([&] { parse(j); }, p, "config.json: field 'hidden_size' is missing");
  j = llama_json();
  j["num_hidden_layers"] = "5";
  expect_error([&] { parse(j); }, p, "field 'num_hidden_layers' must be an integer");
  j = llama_json();
  j["num_attention_heads"] = -8;
  expect_error([&] { parse(j); }, p, "field 'num_attention_heads' must be a positive integer");
  j = llama_json();
  j["num_key_value_heads"] = 3;
  expect_error([&] { parse(j); }, p, "not a multiple of num_key_value_heads");
  j = llama_json();
  j["model_type"] = "bert";
  expect_error([&] { parse(j); }, p, "'bert' is not supported");
  j = llama_json();
  j["attention_bias"] = true;
  expect_error([&] { parse(j); }, p, "attention_bias");
  expect_error([&] { parse_hf_config("{\"model_type\": ", p); }, p, "config.json is not valid JSON");
  expect_error([&] { parse_hf_config("[1, 2]", p); }, p, "not a JSON object");
}

// ---------------------------------------------------------------- malformed safetensors

class MalformedSafetensors : public ::testing::Test {
 protected:
  void expect_open_error(const std::string& bytes, const std::string& phrase) {
    const std::string path = dir_.file("bad.safetensors");
    write_bytes(path, bytes);
    expect_error([&] { SafetensorsFile::open(path); }, path, phrase);
  }
  static std::string one(const std::string& entry, size_t data) {
    return safetensors_bytes("{\"t\": " + entry + "}", data);
  }
  TempDir dir_;
};

TEST_F(MalformedSafetensors, FileAndHeaderLength) {
  expect_open_error("", "file too short");
  expect_open_error("1234567", "file too short");
  expect_open_error(u64_prefix(100) + "{}", "runs past the end of the file");
  expect_open_error(u64_prefix(uint64_t(1) << 40) + "{}", "is absurd");
  expect_open_error(u64_prefix(~uint64_t(0)) + "{}", "is absurd");
}

TEST_F(MalformedSafetensors, HeaderJson) {
  expect_open_error(safetensors_bytes("{\"t\": ", 0), "not valid JSON");
  expect_open_error(safetensors_bytes("[1, 2]", 0), "not a JSON object");
  expect_open_error(safetensors_bytes("{\"t\": 5}", 0), "entry is not a JSON object");
  expect_open_error(safetensors_bytes("{\"__metadata__\": {\"a\": 1}}", 0), "is not a string");
  expect_open_error(safetensors_bytes("{\"__metadata__\": 3}", 0), "__metadata__ is not a JSON object");
  const std::string e = R"({"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})";
  expect_open_error(safetensors_bytes("{\"t\": " + e + ", \"t\": " + e + "}", 4), "names tensor 't' twice");
  // Names come from the file: control characters are escaped so the message stays on one line.
  expect_open_error(safetensors_bytes(R"({"a\nb": {"dtype": "X", "shape": [], "data_offsets": [0, 0]}})", 0),
                    "tensor 'a\\x0ab': unknown dtype 'X'");
}

TEST_F(MalformedSafetensors, TensorEntries) {
  expect_open_error(one(R"({"dtype": "F8_E9", "shape": [1], "data_offsets": [0, 1]})", 1), "unknown dtype 'F8_E9'");
  expect_open_error(one(R"({"shape": [1], "data_offsets": [0, 4]})", 4), "missing string 'dtype'");
  expect_open_error(one(R"({"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]})", 24), "needs 24 bytes but data_offsets span 20");
  expect_open_error(one(R"({"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]})", 4), "negative dimension");
  expect_open_error(one(R"({"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]})", 4), "'shape' must be an array of integers");
  expect_open_error(one(R"({"dtype": "F32", "shape": "2", "data_offsets": [0, 4]})", 4), "'shape' must be an array of integers");
  expect_open_error(one(R"({"dtype": "F64", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]})", 0), "overflows");
  expect_open_error(one(R"({"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]})", 8), "'data_offsets' must be two");
  expect_open_error(one(R"({"dtype": "F32", "shape": [1], "data_offsets": [8, 4]})", 8), "begin 8 > end 4");
  expect_open_error(one(R"({"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})", 4), "past the data buffer");
  expect_open_error(safetensors_bytes(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", 12), "overlap");
}

// ---------------------------------------------------------------- malformed llama2.c files

std::string llama2c_header(std::vector<int32_t> h) {
  return std::string(reinterpret_cast<const char*>(h.data()), h.size() * 4);
}

TEST(MalformedLlama2c, TruncatedAndTrailingBytes) {
  REQUIRE_FILE(kStories);
  TempDir dir;
  const std::string bytes = read_file(kStories);
  const std::string path = dir.file("cut.bin");
  write_bytes(path, bytes.substr(0, bytes.size() - 4));
  expect_error([&] { load_checkpoint(path); }, path, "truncated llama2.c checkpoint");
  write_bytes(path, bytes + "xxxx");
  expect_error([&] { load_checkpoint(path); }, path, "4 unexpected trailing bytes");
  write_bytes(path, bytes.substr(0, 20));
  expect_error([&] { load_checkpoint(path); }, path, "file too short for a llama2.c header");
}

TEST(MalformedLlama2c, BadHeaderDimensions) {
  TempDir dir;
  const std::string path = dir.file("bad.bin");
  const std::vector<std::vector<int32_t>> bad = {
      {0, 172, 5, 8, 4, 512, 512}, {64, -172, 5, 8, 4, 512, 512}, {64, 172, 5, 8, 4, 0, 512},
      {64, 172, 5, 8, 0, 512, 512}, {64, 172, -5, 8, 4, 512, 512}};
  for (const auto& h : bad) {
    write_bytes(path, llama2c_header(h) + std::string(1024, '\0'));
    expect_error([&] { load_checkpoint(path); }, path, "every dimension must be positive");
  }
  write_bytes(path, llama2c_header({64, 172, 5, 7, 7, 512, 512}));
  expect_error([&] { load_checkpoint(path); }, path, "dim must split into heads");
  write_bytes(path, llama2c_header({64, 172, 5, 8, 3, 512, 512}));
  expect_error([&] { load_checkpoint(path); }, path, "multiple of kv_heads");
  // Huge dims must not overflow into a plausible size.
  write_bytes(path, llama2c_header({1 << 30, 1 << 30, 1 << 30, 2, 2, 1 << 30, 1 << 30}));
  expect_error([&] { load_checkpoint(path); }, path, "truncated");
}

TEST(MalformedLlama2c, NaNWeightIsNamed) {
  REQUIRE_FILE(kStories);
  TempDir dir;
  std::string bytes = read_file(kStories);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(&bytes[28 + 4 * 5], &nan, 4);  // embedding row 0, column 5
  const std::string path = dir.file("nan.bin");
  write_bytes(path, bytes);
  expect_error([&] { load_checkpoint(path); }, path, "tensor 'model.embed_tokens.weight' contains 1 NaN/Inf");
}

// ---------------------------------------------------------------- malformed HF directories

class MalformedHfDir : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = tiny_llama();
    weights_ = random_weights(config_);
  }
  void write(const WeightMap& w) { write_llama_dir(dir_.str(), config_, w, DType::F32); }
  void expect_load_error(const std::string& path, const std::string& phrase) {
    expect_error([&] { load_checkpoint(dir_.str()); }, path, phrase);
  }
  TempDir dir_;
  ModelConfig config_;
  WeightMap weights_;
};

TEST_F(MalformedHfDir, ConfigProblems) {
  write(weights_);
  write_bytes(dir_.file("config.json"), "{ not json");
  expect_load_error(dir_.file("config.json"), "config.json is not valid JSON");
  json j = json::parse(hf_config_json(config_));
  j.erase("intermediate_size");
  write_bytes(dir_.file("config.json"), j.dump());
  expect_load_error(dir_.file("config.json"), "field 'intermediate_size' is missing");
  fs::remove(dir_.file("config.json"));
  expect_load_error(dir_.str(), "no config.json");
}

TEST_F(MalformedHfDir, MissingTensor) {
  WeightMap w = weights_;
  w.erase("model.layers.1.mlp.up_proj.weight");
  write(w);
  expect_load_error(dir_.file("model.safetensors"), "missing tensor 'model.layers.1.mlp.up_proj.weight'");
}

TEST_F(MalformedHfDir, UntiedWithoutLmHead) {
  WeightMap w = weights_;
  w.erase("lm_head.weight");
  write(w);
  expect_load_error(dir_.file("model.safetensors"), "missing tensor 'lm_head.weight'");
}

TEST_F(MalformedHfDir, WrongShape) {
  WeightMap w = weights_;
  w["model.layers.0.self_attn.k_proj.weight"] = at::randn({8, 8});
  write(w);
  expect_load_error(dir_.file("model.safetensors"),
                    "tensor 'model.layers.0.self_attn.k_proj.weight' has shape [8, 8], the config implies [4, 8]");
}

TEST_F(MalformedHfDir, NaNAndInfWeights) {
  WeightMap w = weights_;
  w["model.norm.weight"] = w["model.norm.weight"].clone();
  w["model.norm.weight"][3] = std::numeric_limits<float>::infinity();
  write(w);
  expect_load_error(dir_.file("model.safetensors"), "tensor 'model.norm.weight' contains 1 NaN/Inf");
}

TEST_F(MalformedHfDir, IntegerWeight) {
  WeightMap w = weights_;
  w["model.norm.weight"] = at::ones({8}, at::kLong);
  std::vector<TensorBytes> tensors;
  for (const auto& [name, t] : w)
    tensors.push_back({name, name == "model.norm.weight" ? DType::I64 : DType::F32, t.sizes().vec(),
                       std::string_view(static_cast<const char*>(t.data_ptr()), t.nbytes())});
  write_safetensors(dir_.file("model.safetensors"), tensors);
  write_file_atomic(dir_.file("config.json"), hf_config_json(config_));
  expect_load_error(dir_.file("model.safetensors"), "has dtype I64; weights must be F32, F16 or BF16");
}

TEST_F(MalformedHfDir, NoWeightsFile) {
  write_file_atomic(dir_.file("config.json"), hf_config_json(config_));
  expect_load_error(dir_.str(), "no model.safetensors or model.safetensors.index.json");
}

TEST_F(MalformedHfDir, ShardedIndexProblems) {
  write(weights_);
  fs::rename(dir_.file("model.safetensors"), dir_.file("shard-1.safetensors"));
  json map = json::object();
  for (const auto& [name, t] : weights_) map[name] = "shard-1.safetensors";
  const std::string index = dir_.file("model.safetensors.index.json");
  map["model.norm.weight"] = "shard-2.safetensors";
  write_bytes(index, json{{"weight_map", map}}.dump());
  expect_load_error(index, "shard 'shard-2.safetensors' does not exist");
  map["model.norm.weight"] = "shard-1.safetensors";
  map["extra.weight"] = "shard-1.safetensors";
  write_bytes(index, json{{"weight_map", map}}.dump());
  expect_load_error(dir_.file("shard-1.safetensors"), "lists tensor 'extra.weight' in this shard, but it is absent");
  map.erase("extra.weight");
  map["model.norm.weight"] = "../escape.safetensors";
  write_bytes(index, json{{"weight_map", map}}.dump());
  expect_load_error(index, "outside the checkpoint directory");
  write_bytes(index, "{\"weight_map\": 3}");
  expect_load_error(index, "missing object 'weight_map'");
}

TEST(LoadCheckpoint, MissingPath) {
  const std::string path = "/nonexistent/rankrl/model.bin";
  expect_error([&] { load_checkpoint(path); }, path, "no such file or directory");
}

}  // namespace
}  // namespace rankrl
