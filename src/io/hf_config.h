// Hugging Face config.json <-> ModelConfig. Torch-free (the config fuzz target links it alone);
// checkpoint.h re-exports these declarations.
#pragma once
#include <string>

#include "model/config.h"

namespace rankrl {

// Parses a Hugging Face config.json text (`path` is only used in errors). Supports the Llama
// family (model_type llama, mistral, qwen2) and GPT-2; rejects options the transformer does not
// implement (rope_scaling, attention/MLP biases other than Qwen2's q/k/v, other activations).
ModelConfig parse_hf_config(const std::string& json_text, const std::string& path);

// Serialises `config` as a Hugging Face config.json (LlamaForCausalLM family or GPT2LMHeadModel).
// config.json has no field for the interleaved RoPE layout: save_hf_checkpoint permutes q/k
// weights to the rotate-half layout instead, so the output is always a rotate-half config.
std::string hf_config_json(const ModelConfig& config);

}  // namespace rankrl
