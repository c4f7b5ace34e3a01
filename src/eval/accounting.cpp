#include "eval/accounting.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "eval/latency.h"
#include "model/model.h"

namespace rankrl {

std::string tensor_group(const std::string& name) {
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("embed_tokens") || has(".wte.") || has(".wpe.")) return "embedding";
  if (has("lm_head")) return "head";
  if (has("norm") || has(".ln_")) return "norm";
  if (has("self_attn") || has(".attn.")) return "attention";
  if (has("mlp")) return "mlp";
  return "other";
}

ParameterCounts count_parameters(const Transformer& net) {
  ParameterCounts c;
  for (const auto& [name, t] : net.weights()) {
    std::string g = tensor_group(name);
    c.by_group[g] += t.numel();
    c.tensors_by_group[g] += 1;
    c.total += t.numel();
  }
  for (const Linear* l : net.linears())
    c.linear += l->parameters() - (l->bias().defined() ? l->bias().numel() : 0);
  return c;
}

double forward_flops(const Transformer& net, int64_t batch, int64_t T) {
  const ModelConfig& c = net.config();
  double tokens = double(batch) * double(T), flops = 0.0;
  for (const Linear* l : net.linears()) flops += tokens * double(l->forward_flops_per_token());
  flops += 2.0 * tokens * double(c.dim) * double(c.vocab_size);
  flops += 4.0 * double(batch) * c.n_layers * c.n_heads * c.head_dim * double(T) * double(T);
  return flops;
}

int64_t linear_flops_per_token(const Transformer& net) {
  int64_t flops = 0;
  for (const Linear* l : net.linears()) flops += l->forward_flops_per_token();
  return flops;
}

nlohmann::json size_and_speed(const Transformer& net) {
  const ParameterCounts p = count_parameters(net);
  const Speed s = measure_speed(net, default_prefill(net), default_decode());
  return {{"linear_parameters", p.linear},
          {"total_parameters", p.total},
          {"total_bytes", int64_t(dtype_size(net.stored_dtype())) * p.total},
          {"linear_flops_per_token", linear_flops_per_token(net)},
          {"flops_per_token", forward_flops(net, 1, 1)},
          {"prefill_workload", s.prefill_workload},
          {"prefill_tokens_per_second", s.prefill_tokens_per_second},
          {"decode_workload", s.decode_workload},
          {"decode_tokens_per_second", s.decode_tokens_per_second}};
}

nlohmann::json describe_model(const Model& m) {
  const ModelConfig& c = m.config();
  ParameterCounts p = count_parameters(*m.net);
  nlohmann::json dtypes = nlohmann::json::object();
  for (const auto& [name, d] : m.checkpoint.stored_dtypes) {
    std::string key = dtype_name(d);
    dtypes[key] = dtypes.value(key, 0) + 1;
  }
  nlohmann::json groups = nlohmann::json::object();
  for (const auto& [g, n] : p.by_group)
    groups[g] = {{"parameters", n}, {"tensors", p.tensors_by_group[g]}};
  int64_t low_rank = 0;
  for (const Linear* l : m.net->linears()) low_rank += l->is_low_rank();
  return {
      {"path", m.checkpoint.path},
      {"format", m.checkpoint.format},
      {"architecture", c.hf_architecture},
      {"arch", arch_name(c.arch)},
      {"config",
       {{"dim", c.dim}, {"hidden_dim", c.hidden_dim}, {"n_layers", c.n_layers},
        {"n_heads", c.n_heads}, {"n_kv_heads", c.n_kv_heads}, {"head_dim", c.head_dim},
        {"vocab_size", c.vocab_size}, {"max_seq_len", c.max_seq_len}, {"rope_theta", c.rope_theta},
        {"rope_interleaved", c.rope_interleaved}, {"norm_eps", c.norm_eps},
        {"tie_embeddings", c.tie_embeddings}, {"attn_qkv_bias", c.attn_qkv_bias}}},
      {"tokenizer", {{"kind", m.tokenizer->kind()}, {"vocab_size", m.tokenizer->vocab_size()},
                     {"bos_id", m.tokenizer->bos_id()}, {"eos_id", m.tokenizer->eos_id()},
                     {"adds_bos", m.tokenizer->adds_bos()}}},
      {"total_parameters", p.total},
      {"linear_parameters", p.linear},
      {"linear_weights", m.net->linears().size()},
      {"low_rank_weights", low_rank},
      {"groups", groups},
      {"stored_dtypes", dtypes},
      {"total_bytes", m.checkpoint.stored_bytes},  // as stored on disk
      {"flops_per_token", forward_flops(*m.net, 1, 1)},
  };
}

}  // namespace rankrl
