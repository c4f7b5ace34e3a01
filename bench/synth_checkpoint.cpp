// synth_checkpoint: writes a random-weight Hugging Face Llama checkpoint of a real model's shape,
// sharded like the published one (model-0000N-of-0000M.safetensors + model.safetensors.index.json),
// in BF16 by default, with a tokenizer.json converted from a llama2.c tokenizer (stories260K's
// 512-token tok512.bin: any tokenizer whose vocabulary fits the model's works, and the tokens of
// any text then stay inside the embedding). Tensors are generated and written one at a time, so a
// 13.5 GB Llama-2-7B checkpoint needs well under 1 GB of RAM.
//
// Weights ~ N(0, 0.02²) as at initialisation (no overflow in BF16 or float32 activations), norms 1.
// Same --seed, same bytes.
//
//   build/synth_checkpoint --shape tinyllama-1.1b --out /tmp/tl [--dtype bf16] [--seed 1]
//       [--tokenizer ../shared/data/stories260K/tok512.bin]
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "compress/checkpoint_dir.h"
#include "core/error.h"
#include "core/fs.h"
#include "io/checkpoint.h"
#include "io/hf_config.h"
#include "io/safetensors.h"

namespace {

using namespace rankrl;
namespace fs = std::filesystem;

struct Shape {
  const char* name;
  int64_t layers, dim, ffn, heads, kv_heads, vocab, max_seq;
  int shards;
};

// The published configs (config.json of TinyLlama/TinyLlama-1.1B-Chat-v1.0 and
// meta-llama/Llama-2-7b-hf); the tiny ones are for tests.
constexpr Shape kShapes[] = {
    {"tinyllama-1.1b", 22, 2048, 5632, 32, 4, 32000, 2048, 2},
    {"llama2-7b", 32, 4096, 11008, 32, 32, 32000, 4096, 2},
    {"small", 4, 256, 688, 8, 4, 512, 512, 2},
    {"tiny", 2, 64, 172, 4, 2, 512, 256, 2},
};

const Shape& find_shape(const std::string& name) {
  for (const Shape& s : kShapes)
    if (name == s.name) return s;
  throw usage_error("unknown --shape '" + name + "' (tinyllama-1.1b, llama2-7b, small, tiny)");
}

ModelConfig config_of(const Shape& s) {
  ModelConfig c = llama_config({s.dim, s.ffn, s.layers, s.heads, s.kv_heads, s.vocab, s.max_seq});
  c.norm_eps = 1e-5;
  c.tie_embeddings = false;
  c.bos_id = 1;
  c.eos_id = 2;
  return c;
}

const char* torch_dtype_name(DType d) {
  return d == DType::BF16 ? "bfloat16" : d == DType::F16 ? "float16" : "float32";
}

// The tensor's bytes: N(0, 0.02²) for matrices, ones for norm vectors, rounded to `dtype`.
std::string tensor_bytes(const WeightSpec& spec, DType dtype, at::Generator& gen) {
  at::Tensor t = spec.shape.size() == 1 ? at::ones(spec.shape)
                                        : at::normal(0.0, 0.02, spec.shape, gen);
  t = t.to(scalar_type_of(dtype)).contiguous();
  return std::string(static_cast<const char*>(t.data_ptr()), t.nbytes());
}

// Splits the specs into `shards` runs of about equal bytes, cutting only between tensors.
std::vector<std::vector<WeightSpec>> split(const std::vector<WeightSpec>& specs, int shards, DType dtype) {
  auto bytes = [&](const WeightSpec& s) {
    int64_t n = int64_t(dtype_size(dtype));
    for (int64_t d : s.shape) n *= d;
    return n;
  };
  int64_t total = 0;
  for (const auto& s : specs) total += bytes(s);
  std::vector<std::vector<WeightSpec>> out(shards);
  int64_t done = 0;
  for (const auto& s : specs) {
    const int shard = std::min<int64_t>(shards - 1, done * shards / std::max<int64_t>(total, 1));
    out[shard].push_back(s);
    done += bytes(s);
  }
  return out;
}

std::string shard_name(int i, int n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", i + 1, n);
  return buf;
}

void write_checkpoint(const Shape& shape, DType dtype, uint64_t seed, const std::string& tokenizer,
                      const std::string& out) {
  const ModelConfig c = config_of(shape);
  check_tokenizer_writable(tokenizer, 512);
  fs::create_directories(out);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto shards = split(weight_specs(c), shape.shards, dtype);
  nlohmann::json weight_map = nlohmann::json::object();
  int64_t total = 0;
  for (int i = 0; i < shape.shards; ++i) {
    std::vector<TensorBytes> layout;
    for (const auto& s : shards[i]) {
      layout.push_back({s.name, dtype, s.shape, {}});
      weight_map[s.name] = shard_name(i, shape.shards);
      int64_t n = int64_t(dtype_size(dtype));
      for (int64_t d : s.shape) n *= d;
      total += n;
    }
    const std::string path = (fs::path(out) / shard_name(i, shape.shards)).string();
    write_safetensors_streamed(path, layout, [&](size_t k) { return tensor_bytes(shards[i][k], dtype, gen); },
                               {{"format", "pt"}});
    std::fprintf(stderr, "wrote %s\n", path.c_str());
  }
  const nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  write_file_atomic((fs::path(out) / "model.safetensors.index.json").string(), index.dump(2) + "\n");
  nlohmann::json config = nlohmann::json::parse(hf_config_json(c));
  config["torch_dtype"] = torch_dtype_name(dtype);
  write_file_atomic((fs::path(out) / "config.json").string(), config.dump(2) + "\n");
  write_tokenizer_files(tokenizer, 512, out);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Random-weight Hugging Face checkpoint of a named real shape (see the file's comment)");
  std::string shape = "tinyllama-1.1b", out, dtype = "bf16";
  std::string tokenizer = "../shared/data/stories260K/tok512.bin";
  uint64_t seed = 1;
  app.add_option("--shape", shape, "tinyllama-1.1b | llama2-7b | small | tiny")->capture_default_str();
  app.add_option("--out", out, "Output directory")->required();
  app.add_option("--dtype", dtype, "bf16 | f16 | f32")->capture_default_str();
  app.add_option("--seed", seed, "Random seed")->capture_default_str();
  app.add_option("--tokenizer", tokenizer, "llama2.c tokenizer.bin (512 tokens) or HF tokenizer")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    at::set_num_threads(1);
    const DType d = dtype == "bf16" ? DType::BF16 : dtype == "f16" ? DType::F16 : dtype == "f32" ? DType::F32
                    : throw usage_error("--dtype must be bf16, f16 or f32");
    write_checkpoint(find_shape(shape), d, seed, tokenizer, out);
  } catch (const Error& e) {
    std::fprintf(stderr, "synth_checkpoint: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
