// ModelConfig: the architecture of a decoder-only transformer, as plain data (no torch).
// Filled from a Hugging Face config.json or a llama2.c header; consumed by the transformer.
#pragma once
#include <cstdint>
#include <string>

namespace rankrl {

enum class Arch { Llama, GPT2 };

struct ModelConfig {
  Arch arch = Arch::Llama;
  std::string hf_architecture;   // e.g. "LlamaForCausalLM", "Qwen2ForCausalLM", "GPT2LMHeadModel"
  std::string model_type;        // config.json "model_type" ("llama", "qwen2", "mistral", "gpt2")
  int64_t dim = 0;               // hidden size
  int64_t hidden_dim = 0;        // MLP inner size (GPT-2: n_inner or 4*dim)
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;        // == n_heads without grouped-query attention
  int64_t head_dim = 0;          // usually dim / n_heads; Llama-family configs may override
  int64_t vocab_size = 0;
  int64_t max_seq_len = 0;       // max_position_embeddings / n_positions / llama2.c seq_len
  double rope_theta = 10000.0;
  bool rope_interleaved = false; // true: rotate pairs (2i, 2i+1) (llama2.c); false: rotate-half (HF)
  double norm_eps = 1e-5;        // RMSNorm eps (Llama) or LayerNorm eps (GPT-2)
  bool tie_embeddings = false;   // lm_head shares the token embedding
  bool attn_qkv_bias = false;    // Qwen2: biases on q/k/v projections
  int64_t bos_id = -1;           // from config.json when present
  int64_t eos_id = -1;

  int64_t kv_dim() const { return n_kv_heads * head_dim; }
};

const char* arch_name(Arch a);

// A Llama-family model of this shape, every other field at its default (head_dim = dim / n_heads,
// rope_theta 10000, rotate-half RoPE, untied): what llama2.c headers, `rankrl train` and the
// benchmarks' random models are built from.
struct LlamaShape {
  int64_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0, max_seq_len = 0;
};
ModelConfig llama_config(const LlamaShape& shape);

// A stable hash of the architecture (config fields that shape the weights) and of every weight
// name and [out, in] shape: "fnv1a64:<16 hex digits>". Equal for a llama2.c file, its
// conversion and its compressed directories (q/k row order and storage form do not count).
std::string model_identity(const ModelConfig& config);

}  // namespace rankrl
