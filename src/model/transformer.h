// The decoder-only transformer (Llama family and GPT-2), written with differentiable ATen ops so
// calibration, Fisher statistics and healing get gradients for free. Read transformer.cpp top to
// bottom against the papers: pre-norm blocks, causal self-attention with RoPE (Llama) or learned
// positions (GPT-2), SwiGLU (Llama) or GELU-tanh (GPT-2) MLP.
#pragma once
#include <ATen/Tensor.h>

#include <functional>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "model/config.h"
#include "model/linear.h"
#include "io/weight_roles.h"

namespace rankrl {

// Keys and values of the positions seen so far, per layer ([B, n_kv_heads, S, head_dim]).
struct KVCache {
  std::vector<at::Tensor> k, v;
  // Optional additive attention bias per key position, [B, S_total] float (0 = visible, a large
  // negative number = hidden), covering the cached and the coming positions. Batched ranking uses
  // it to hide the left padding of contexts of different lengths. Undefined = every key visible.
  at::Tensor key_bias;
  int64_t length() const { return k.empty() || !k[0].defined() ? 0 : k[0].size(2); }
  // Repeats batch row 0 `n` times (shares a prefix across continuations).
  KVCache expand(int64_t n) const;
  // Row i of the result is row rows[i] of this cache (rows: int64 [N]).
  KVCache select_rows(const at::Tensor& rows) const;
};

// Called with each Linear and its input just before the Linear runs (calibration hooks).
using LinearObserver = std::function<void(const Linear&, const at::Tensor& input)>;
// Called with each Linear and its output just after the Linear ran (the calibration's gradient
// statistics ask autograd for the gradient of the loss at these tensors).
using LinearOutputObserver = std::function<void(const Linear&, const at::Tensor& output)>;
// Called with each Linear and the wall-clock seconds its forward took (latency tables time the
// Linears inside whole forward passes: eval/latency.h).
using LinearTimer = std::function<void(const Linear&, double seconds)>;

struct Block {
  // Llama: attn_norm, ffn_norm weights (RMSNorm). GPT-2: LayerNorm weights and biases.
  at::Tensor attn_norm_w, attn_norm_b, ffn_norm_w, ffn_norm_b;
  // Llama: q, k, v, o, gate, up, down. GPT-2: qkv (fused c_attn), o (c_proj), up (c_fc), down.
  Linear q, k, v, qkv, o, gate, up, down;
};

class Transformer {
 public:
  Transformer(const ModelConfig& config, const WeightMap& weights);

  // tokens: int64 [B, T]. Returns float32 logits [B, T, vocab]. With `cache`, the tokens continue
  // the cached positions and the cache is extended.
  at::Tensor forward(const at::Tensor& tokens, KVCache* cache = nullptr) const;

  // forward, one stage at a time (layer-streamed calibration and compression carry the hidden
  // states between layers). forward(t) == head(block(L-1, ... block(0, embed(t)))).
  // embed: token ids [B, T] at positions pos0 .. pos0+T-1 -> hidden states [B, T, dim] (checks
  // the ids and the length). block: decoder layer `layer` on x [B, T, dim]; with `cache`, x
  // continues the cached positions (pos0 = the cache length before this forward). head: final
  // norm and LM head -> logits [B, T, vocab].
  at::Tensor embed(const at::Tensor& tokens, int64_t pos0 = 0) const;
  at::Tensor block(int64_t layer, const at::Tensor& x, KVCache* cache = nullptr, int64_t pos0 = 0) const;
  at::Tensor head(const at::Tensor& x) const;
  // The projections of one decoder layer, in forward order (a sub-list of linears()).
  std::vector<Linear*> layer_linears(int64_t layer);

  const ModelConfig& config() const { return config_; }
  // Every projection weight, in canonical order (layer by layer; q, k, v, o, gate, up, down).
  std::vector<Linear*> linears();
  std::vector<const Linear*> linears() const;
  Linear* find_linear(const std::string& name);

  void set_observer(LinearObserver observer) { observer_ = std::move(observer); }
  void set_output_observer(LinearOutputObserver observer) { output_observer_ = std::move(observer); }
  void set_timer(LinearTimer timer) { timer_ = std::move(timer); }

  // The current weights under their checkpoint names (low-rank layers as <name>.lowrank_A/_B).
  // Projection weights, the token embedding and the head are as stored (F16/BF16 views of the
  // checkpoint when it was stored so); norms and position embeddings are float32.
  WeightMap weights() const;
  int64_t parameters() const;
  // The dtype the model's weights were stored in (its token embedding's): what a compressed
  // directory is written in by default.
  DType stored_dtype() const;

 private:
  // `pos0`: absolute position of x's first token (the cache length before this forward).
  at::Tensor llama_block(const Block& b, const at::Tensor& x, KVCache* cache, int64_t layer,
                         int64_t pos0) const;
  at::Tensor gpt2_block(const Block& b, const at::Tensor& x, KVCache* cache, int64_t layer) const;
  at::Tensor attention(at::Tensor q, at::Tensor k, at::Tensor v, KVCache* cache, int64_t layer) const;
  at::Tensor rope(const at::Tensor& x, int64_t pos0) const;
  at::Tensor run(const Linear& l, const at::Tensor& x) const;
  at::Tensor* model_slot(Role role);  // the member holding a per-model role (weight_roles.h)

  ModelConfig config_;
  at::Tensor tok_emb_, pos_emb_, final_norm_w_, final_norm_b_, lm_head_;
  std::string lm_head_name_;
  std::vector<Block> blocks_;
  at::Tensor rope_cos_, rope_sin_;  // [max_seq_len, head_dim / 2]
  LinearObserver observer_;
  LinearOutputObserver output_observer_;
  LinearTimer timer_;
};

}  // namespace rankrl
