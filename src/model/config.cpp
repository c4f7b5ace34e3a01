#include "model/config.h"

#include <cstdio>

#include "io/checkpoint.h"

namespace rankrl {

namespace {

uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ULL) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

ModelConfig llama_config(const LlamaShape& s) {
  ModelConfig c;
  c.arch = Arch::Llama;
  c.hf_architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.dim = s.dim;
  c.hidden_dim = s.hidden_dim;
  c.n_layers = s.n_layers;
  c.n_heads = s.n_heads;
  c.n_kv_heads = s.n_kv_heads;
  c.head_dim = s.n_heads > 0 ? s.dim / s.n_heads : 0;
  c.vocab_size = s.vocab_size;
  c.max_seq_len = s.max_seq_len;
  return c;
}

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::Llama: return "llama";
    case Arch::GPT2: return "gpt2";
  }
  return "unknown";
}

std::string model_identity(const ModelConfig& c) {
  std::string s = std::string(arch_name(c.arch)) + "|" + std::to_string(c.dim) + "|" +
                  std::to_string(c.hidden_dim) + "|" + std::to_string(c.n_layers) + "|" +
                  std::to_string(c.n_heads) + "|" + std::to_string(c.n_kv_heads) + "|" +
                  std::to_string(c.head_dim) + "|" + std::to_string(c.vocab_size) + "|" +
                  std::to_string(c.tie_embeddings) + "|" + std::to_string(c.attn_qkv_bias);
  for (const auto& spec : weight_specs(c)) {
    s += "|" + spec.name;
    for (int64_t d : spec.shape) s += "," + std::to_string(d);
  }
  return "fnv1a64:" + hex64(fnv1a(s));
}

}  // namespace rankrl
