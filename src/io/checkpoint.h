// Checkpoints: load a model's config and weights from a llama2.c .bin file or a Hugging Face
// directory (config.json + model.safetensors, or sharded via model.safetensors.index.json), and
// save Hugging Face directories.
//
// Weights are returned under their checkpoint names, in float32, laid out as the transformer
// consumes them: every linear weight is [out, in] (GPT-2 Conv1D weights, stored [in, out], are
// returned as transposed *views*). F32 tensors are zero-copy views of the memory map; F16/BF16 are
// converted. llama2.c tensors are given Hugging Face Llama names
// (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ...; w1/w2/w3 =
// gate/down/up) and config.rope_interleaved = true, because their q/k use the adjacent-pair RoPE.
#pragma once
#include <ATen/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/config.h"

namespace rankrl {

using WeightMap = std::map<std::string, at::Tensor>;

struct Checkpoint {
  ModelConfig config;
  WeightMap weights;
  std::string path;                    // what was opened (file or directory)
  std::string format;                  // "llama2c" | "safetensors"
  std::map<std::string, DType> stored_dtypes;  // dtype on disk per tensor
  uint64_t stored_bytes = 0;           // bytes of tensor data on disk
  std::vector<std::string> files;      // every weight file read
};

// Opens `path`: a llama2.c .bin file, a directory with config.json, or a config.json's directory
// with sharded weights. Validates that every tensor the architecture needs is present, that shapes
// match the config, and that no weight is NaN/Inf. Throws Error naming the file at fault.
Checkpoint load_checkpoint(const std::string& path);

// Parses a Hugging Face config.json text (`path` is only used in errors).
ModelConfig parse_hf_config(const std::string& json_text, const std::string& path);

// Serialises `config` as a Hugging Face config.json (LlamaForCausalLM or GPT2LMHeadModel).
std::string hf_config_json(const ModelConfig& config);

// Writes a directory with config.json and model.safetensors (float32, atomic writes). Linear
// weights are written as given ([out, in]); for GPT-2 the Conv1D weights are transposed back.
void save_hf_checkpoint(const std::string& dir, const ModelConfig& config, const WeightMap& weights);

// The weight names the architecture requires, in canonical order (embeddings, per layer, final).
std::vector<std::string> required_weight_names(const ModelConfig& config);

}  // namespace rankrl
