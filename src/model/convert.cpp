#include "model/convert.h"

#include <ATen/ATen.h>

#include <filesystem>

#include "core/error.h"
#include "io/checkpoint.h"
#include "tokenizer/llama2c_tokenizer.h"

namespace rankrl {

namespace {

// Within each head, output rows (2j, 2j+1) — an adjacent RoPE pair — move to (j, j + head_dim/2),
// the rotate-half pair. (The inverse of the permutation in HF's convert_llama_weights_to_hf.)
at::Tensor interleaved_to_half(const at::Tensor& w, int64_t heads, int64_t head_dim) {
  int64_t in = w.size(1);
  return w.reshape({heads, head_dim / 2, 2, in}).transpose(1, 2).reshape({heads * head_dim, in});
}

}  // namespace

void convert_llama2c(const std::string& bin_path, const std::string& tokenizer_path,
                     const std::string& out_dir) {
  Checkpoint ckpt = load_checkpoint(bin_path);
  if (ckpt.format != "llama2c") throw Error(bin_path, "not a llama2.c checkpoint");
  Llama2cTokenizer tokenizer = Llama2cTokenizer::load(tokenizer_path, int32_t(ckpt.config.vocab_size));
  check_llama2c_convertible(tokenizer, tokenizer_path);  // fail before writing anything
  ModelConfig config = ckpt.config;
  WeightMap weights = ckpt.weights;
  for (int64_t i = 0; i < config.n_layers; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".self_attn.";
    weights[p + "q_proj.weight"] =
        interleaved_to_half(weights[p + "q_proj.weight"], config.n_heads, config.head_dim);
    weights[p + "k_proj.weight"] =
        interleaved_to_half(weights[p + "k_proj.weight"], config.n_kv_heads, config.head_dim);
  }
  config.rope_interleaved = false;
  config.hf_architecture = "LlamaForCausalLM";
  config.model_type = "llama";
  std::error_code ec;
  const bool created = !std::filesystem::exists(out_dir, ec);
  std::filesystem::create_directories(out_dir, ec);
  if (ec) throw Error(out_dir, "cannot create directory: " + ec.message());
  try {
    save_hf_checkpoint(out_dir, config, weights);
    write_tokenizer_json_from_llama2c(tokenizer, out_dir);
  } catch (...) {
    if (created) std::filesystem::remove_all(out_dir, ec);  // no half-written model directory
    throw;
  }
}

}  // namespace rankrl
