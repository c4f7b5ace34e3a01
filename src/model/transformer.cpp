#include "model/transformer.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>

#include "core/error.h"
#include "io/weight_roles.h"

namespace rankrl {

namespace {

std::string bias_name(const std::string& weight_name) {
  return weight_name.substr(0, weight_name.size() - std::string("weight").size()) + "bias";
}

at::Tensor get(const WeightMap& w, const std::string& name) {
  auto it = w.find(name);
  if (it == w.end()) throw Error(name, "tensor missing from the checkpoint");
  return it->second;
}

at::Tensor get_optional(const WeightMap& w, const std::string& name) {
  auto it = w.find(name);
  return it == w.end() ? at::Tensor() : it->second;
}

// A projection stored either dense (<name>) or factored (<name>.lowrank_A / .lowrank_B).
Linear make_linear(const WeightMap& w, const std::string& name) {
  at::Tensor bias = get_optional(w, bias_name(name));
  if (w.count(name)) return Linear::dense(name, get(w, name), bias);
  if (w.count(name + ".lowrank_A"))
    return Linear::low_rank(name, get(w, name + ".lowrank_A"), get(w, name + ".lowrank_B"), bias);
  throw Error(name, "tensor missing from the checkpoint");
}

// Norm weights, biases and position embeddings are small: upcast once, here. (The token
// embedding and the output head stay as stored and are upcast where used: they are large.)
at::Tensor small_f32(const at::Tensor& t) { return upcast_reduced(t); }

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  return x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps) * w;
}

}  // namespace

KVCache KVCache::expand(int64_t n) const {
  KVCache out;
  for (size_t i = 0; i < k.size(); ++i) {
    out.k.push_back(k[i].narrow(0, 0, 1).expand({n, -1, -1, -1}).contiguous());
    out.v.push_back(v[i].narrow(0, 0, 1).expand({n, -1, -1, -1}).contiguous());
  }
  if (key_bias.defined()) out.key_bias = key_bias.narrow(0, 0, 1).expand({n, -1}).contiguous();
  return out;
}

KVCache KVCache::select_rows(const at::Tensor& rows) const {
  KVCache out;
  for (size_t i = 0; i < k.size(); ++i) {
    out.k.push_back(k[i].index_select(0, rows));
    out.v.push_back(v[i].index_select(0, rows));
  }
  if (key_bias.defined()) out.key_bias = key_bias.index_select(0, rows);
  return out;
}

namespace {

// Where each per-layer role of io/weight_roles.h lives in a Block: a norm tensor or a Linear
// (a projection's bias travels with its Linear, see make_linear).
struct BlockSlot {
  Role role;
  at::Tensor Block::*tensor;
  Linear Block::*linear;
};
constexpr BlockSlot kBlockSlots[] = {
    {Role::AttnNorm, &Block::attn_norm_w, nullptr}, {Role::AttnNormBias, &Block::attn_norm_b, nullptr},
    {Role::FfnNorm, &Block::ffn_norm_w, nullptr},   {Role::FfnNormBias, &Block::ffn_norm_b, nullptr},
    {Role::Q, nullptr, &Block::q},       {Role::K, nullptr, &Block::k},       {Role::V, nullptr, &Block::v},
    {Role::QKV, nullptr, &Block::qkv},   {Role::O, nullptr, &Block::o},       {Role::Gate, nullptr, &Block::gate},
    {Role::Up, nullptr, &Block::up},     {Role::Down, nullptr, &Block::down},
};

const BlockSlot* block_slot(Role role) {
  for (const BlockSlot& s : kBlockSlots)
    if (s.role == role) return &s;
  return nullptr;  // a bias role: loaded by its Linear
}

}  // namespace

at::Tensor* Transformer::model_slot(Role role) {
  switch (role) {
    case Role::TokEmbed: return &tok_emb_;
    case Role::PosEmbed: return &pos_emb_;
    case Role::FinalNorm: return &final_norm_w_;
    case Role::FinalNormBias: return &final_norm_b_;
    case Role::LmHead: return &lm_head_;
    default: return nullptr;
  }
}

Transformer::Transformer(const ModelConfig& config, const WeightMap& w) : config_(config) {
  const ModelConfig& c = config_;
  blocks_.resize(c.n_layers);
  for (const RoleSpec& r : weight_roles(c.arch)) {
    if (!role_present(r, c)) continue;
    if (!r.per_layer) {
      at::Tensor t = get(w, tensor_name(c.arch, r.role));
      // The token embedding and the head stay as stored (large); the rest is small.
      *model_slot(r.role) = r.role == Role::TokEmbed || r.role == Role::LmHead ? t : small_f32(t);
      continue;
    }
    const BlockSlot* slot = block_slot(r.role);
    if (!slot) continue;
    for (int64_t i = 0; i < c.n_layers; ++i) {
      const std::string name = tensor_name(c.arch, r.role, i);
      if (slot->tensor) blocks_[i].*(slot->tensor) = small_f32(get(w, name));
      else blocks_[i].*(slot->linear) = make_linear(w, name);
    }
  }
  if (c.arch != Arch::GPT2) {
    // RoPE tables: angle(pos, i) = pos · theta^(-2i / head_dim), i < head_dim / 2.
    int64_t max_len = c.max_seq_len > 0 ? c.max_seq_len : 4096;
    auto opts = at::TensorOptions().dtype(at::kDouble);
    at::Tensor inv_freq =
        at::pow(c.rope_theta, -at::arange(0, c.head_dim, 2, opts) / double(c.head_dim));
    at::Tensor angles = at::outer(at::arange(max_len, opts), inv_freq);
    rope_cos_ = angles.cos().to(at::kFloat);
    rope_sin_ = angles.sin().to(at::kFloat);
  }
  lm_head_name_ = c.tie_embeddings ? "" : "lm_head.weight";
  if (c.tie_embeddings || !lm_head_.defined()) lm_head_ = tok_emb_;
}

at::Tensor Transformer::run(const Linear& l, const at::Tensor& x) const {
  if (observer_) observer_(l, x);
  if (output_observer_) {
    at::Tensor y = l.forward(x);
    output_observer_(l, y);
    return y;
  }
  if (!timer_) return l.forward(x);
  const auto start = std::chrono::steady_clock::now();
  at::Tensor y = l.forward(x);
  timer_(l, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return y;
}

// x: [B, heads, T, head_dim], positions pos0 .. pos0+T-1.
at::Tensor Transformer::rope(const at::Tensor& x, int64_t pos0) const {
  int64_t T = x.size(2), half = config_.head_dim / 2;
  at::Tensor cos = rope_cos_.narrow(0, pos0, T), sin = rope_sin_.narrow(0, pos0, T);
  if (config_.rope_interleaved) {  // llama2.c: rotate pairs (2i, 2i+1)
    at::Tensor xp = x.unflatten(-1, {half, 2});
    at::Tensor x0 = xp.select(-1, 0), x1 = xp.select(-1, 1);
    return at::stack({x0 * cos - x1 * sin, x0 * sin + x1 * cos}, -1).flatten(-2);
  }
  // Hugging Face: rotate halves (i, i + head_dim/2)
  at::Tensor x0 = x.narrow(-1, 0, half), x1 = x.narrow(-1, half, half);
  return at::cat({x0 * cos - x1 * sin, x1 * cos + x0 * sin}, -1);
}

// Causal attention with grouped-query heads. q: [B, H, T, hd]; k, v: [B, Hkv, T, hd] (new
// positions only; earlier ones come from the cache). Returns [B, T, H·hd].
at::Tensor Transformer::attention(at::Tensor q, at::Tensor k, at::Tensor v, KVCache* cache,
                                  int64_t layer) const {
  if (cache) {
    if (cache->k.size() <= size_t(layer)) {
      cache->k.resize(config_.n_layers);
      cache->v.resize(config_.n_layers);
    }
    if (cache->k[layer].defined()) {
      k = at::cat({cache->k[layer], k}, 2);
      v = at::cat({cache->v[layer], v}, 2);
    }
    cache->k[layer] = k;
    cache->v[layer] = v;
  }
  int64_t B = q.size(0), H = q.size(1), T = q.size(2), hd = q.size(3);
  int64_t Hkv = k.size(1), S = k.size(2), G = H / Hkv;
  // Group the G query heads that share a KV head as extra rows, so K and V are never copied.
  at::Tensor qg = q.reshape({B * Hkv, G * T, hd});
  // Query t sits at absolute position S - T + t and may see keys 0 .. S - T + t: an additive
  // causal bias (0 or -inf) that one baddbmm adds together with the scaled scores, so the
  // [B, H, T, S] scores are written once (no separate scaling and masking passes, forward or
  // backward: measured 10% of a training step at d 256).
  at::Tensor causal = at::zeros({T, S}, q.options()).masked_fill_(
      at::ones({T, S}, q.options().dtype(at::kBool)).triu_(S - T + 1), -INFINITY);
  at::Tensor scores = at::baddbmm(causal.expand({G, T, S}).reshape({G * T, S}),
                                  qg, k.reshape({B * Hkv, S, hd}).transpose(1, 2),
                                  /*beta=*/1.0, /*alpha=*/1.0 / std::sqrt(double(hd)))
                          .view({B, Hkv, G, T, S});
  if (cache && cache->key_bias.defined())  // hidden keys get a finite bias: a row of only hidden keys stays finite
    scores = scores + cache->key_bias.narrow(1, 0, S).view({B, 1, 1, 1, S});
  scores = scores.view({B, Hkv, G * T, S});
  at::Tensor out = at::matmul(at::softmax(scores, -1), v);  // [B, Hkv, G·T, hd]
  return out.view({B, H, T, hd}).transpose(1, 2).reshape({B, T, H * hd});
}

at::Tensor Transformer::llama_block(const Block& b, const at::Tensor& x, KVCache* cache,
                                    int64_t layer, int64_t pos0) const {
  const ModelConfig& c = config_;
  int64_t B = x.size(0), T = x.size(1);
  at::Tensor h = rms_norm(x, b.attn_norm_w, c.norm_eps);
  at::Tensor q = run(b.q, h).view({B, T, c.n_heads, c.head_dim}).transpose(1, 2);
  at::Tensor k = run(b.k, h).view({B, T, c.n_kv_heads, c.head_dim}).transpose(1, 2);
  at::Tensor v = run(b.v, h).view({B, T, c.n_kv_heads, c.head_dim}).transpose(1, 2);
  at::Tensor a = attention(rope(q, pos0), rope(k, pos0), v, cache, layer);
  at::Tensor x1 = x + run(b.o, a);
  h = rms_norm(x1, b.ffn_norm_w, c.norm_eps);
  return x1 + run(b.down, at::silu(run(b.gate, h)) * run(b.up, h));
}

at::Tensor Transformer::gpt2_block(const Block& b, const at::Tensor& x, KVCache* cache,
                                   int64_t layer) const {
  const ModelConfig& c = config_;
  int64_t B = x.size(0), T = x.size(1);
  at::Tensor h = at::layer_norm(x, {c.dim}, b.attn_norm_w, b.attn_norm_b, c.norm_eps);
  std::vector<at::Tensor> qkv = run(b.qkv, h).split(c.dim, -1);
  auto heads = [&](const at::Tensor& t) {
    return t.view({B, T, c.n_heads, c.head_dim}).transpose(1, 2);
  };
  at::Tensor a = attention(heads(qkv[0]), heads(qkv[1]), heads(qkv[2]), cache, layer);
  at::Tensor x1 = x + run(b.o, a);
  h = at::layer_norm(x1, {c.dim}, b.ffn_norm_w, b.ffn_norm_b, c.norm_eps);
  return x1 + run(b.down, at::gelu(run(b.up, h), "tanh"));
}

at::Tensor Transformer::embed(const at::Tensor& tokens, int64_t pos0) const {
  const ModelConfig& c = config_;
  check(tokens.dim() == 2, "", "forward expects token ids of shape [batch, time]");
  const int64_t T = tokens.size(1);
  if (c.max_seq_len > 0 && pos0 + T > c.max_seq_len)
    throw Error("", "sequence of " + std::to_string(pos0 + T) +
                        " tokens exceeds the model's maximum of " + std::to_string(c.max_seq_len));
  if (tokens.numel() > 0) {
    int64_t lo = tokens.min().item<int64_t>(), hi = tokens.max().item<int64_t>();
    check(lo >= 0 && hi < c.vocab_size, "",
          "token id " + std::to_string(lo < 0 ? lo : hi) + " outside the vocabulary");
  }
  at::Tensor x = upcast_reduced(at::embedding(tok_emb_, tokens));  // gather rows, then upcast
  return c.arch == Arch::GPT2 ? x + pos_emb_.narrow(0, pos0, T) : x;
}

at::Tensor Transformer::block(int64_t layer, const at::Tensor& x, KVCache* cache, int64_t pos0) const {
  check(layer >= 0 && layer < config_.n_layers, "", "no decoder layer " + std::to_string(layer));
  return config_.arch == Arch::GPT2 ? gpt2_block(blocks_[layer], x, cache, layer)
                                    : llama_block(blocks_[layer], x, cache, layer, pos0);
}

at::Tensor Transformer::head(const at::Tensor& x) const {
  const ModelConfig& c = config_;
  const at::Tensor h = c.arch == Arch::GPT2 ? at::layer_norm(x, {c.dim}, final_norm_w_, final_norm_b_, c.norm_eps)
                                            : rms_norm(x, final_norm_w_, c.norm_eps);
  return at::linear(h, upcast_reduced(lm_head_));  // an F16/BF16 head is upcast for this call only
}

at::Tensor Transformer::forward(const at::Tensor& tokens, KVCache* cache) const {
  const int64_t pos0 = cache ? cache->length() : 0;
  at::Tensor x = embed(tokens, pos0);
  for (int64_t i = 0; i < config_.n_layers; ++i) x = block(i, x, cache, pos0);
  return head(x);
}

std::vector<Linear*> Transformer::layer_linears(int64_t layer) {
  check(layer >= 0 && layer < config_.n_layers, "", "no decoder layer " + std::to_string(layer));
  Block& b = blocks_[layer];
  std::vector<Linear*> out;
  for (Linear* l : {&b.q, &b.k, &b.v, &b.qkv, &b.o, &b.gate, &b.up, &b.down})
    if (!l->name().empty()) out.push_back(l);
  return out;
}

std::vector<Linear*> Transformer::linears() {
  std::vector<Linear*> out;
  for (Block& b : blocks_)
    for (Linear* l : {&b.q, &b.k, &b.v, &b.qkv, &b.o, &b.gate, &b.up, &b.down})
      if (!l->name().empty()) out.push_back(l);
  return out;
}

std::vector<const Linear*> Transformer::linears() const {
  std::vector<const Linear*> out;
  for (Linear* l : const_cast<Transformer*>(this)->linears()) out.push_back(l);
  return out;
}

Linear* Transformer::find_linear(const std::string& name) {
  for (Linear* l : linears())
    if (l->name() == name) return l;
  return nullptr;
}

WeightMap Transformer::weights() const {
  const ModelConfig& c = config_;
  auto* self = const_cast<Transformer*>(this);  // model_slot only reads here
  WeightMap w;
  for (const RoleSpec& r : weight_roles(c.arch)) {
    if (!role_present(r, c)) continue;
    if (!r.per_layer) {
      w[tensor_name(c.arch, r.role)] = *self->model_slot(r.role);
      continue;
    }
    const BlockSlot* slot = block_slot(r.role);
    if (!slot || !slot->tensor) continue;  // projections and their biases: below
    for (int64_t i = 0; i < c.n_layers; ++i) w[tensor_name(c.arch, r.role, i)] = blocks_[i].*(slot->tensor);
  }
  for (const Linear* l : linears()) {
    if (l->is_low_rank()) {
      w[l->name() + ".lowrank_A"] = l->A();
      w[l->name() + ".lowrank_B"] = l->B();
    } else {
      w[l->name()] = l->weight();
    }
    if (l->bias().defined()) w[bias_name(l->name())] = l->bias();
  }
  return w;
}

DType Transformer::stored_dtype() const { return rankrl::stored_dtype(tok_emb_); }

int64_t Transformer::parameters() const {
  int64_t n = 0;
  for (const auto& [name, t] : weights()) n += t.numel();
  return n;
}

}  // namespace rankrl
