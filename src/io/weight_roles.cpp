#include "io/weight_roles.h"

#include <stdexcept>

namespace rankrl {

namespace {

using D = Dim;

// Hugging Face Llama / Qwen2 / Mistral names (llama2.c checkpoints are given these names too).
const std::vector<RoleSpec> kLlama = {
    {Role::TokEmbed, "model.embed_tokens.weight", false, {D::Vocab, D::Model}},
    {Role::AttnNorm, "model.layers.{}.input_layernorm.weight", true, {D::Model}},
    {Role::Q, "model.layers.{}.self_attn.q_proj.weight", true, {D::QOut, D::Model}, Presence::Always, true},
    {Role::QBias, "model.layers.{}.self_attn.q_proj.bias", true, {D::QOut}, Presence::QKVBias},
    {Role::K, "model.layers.{}.self_attn.k_proj.weight", true, {D::KVOut, D::Model}, Presence::Always, true},
    {Role::KBias, "model.layers.{}.self_attn.k_proj.bias", true, {D::KVOut}, Presence::QKVBias},
    {Role::V, "model.layers.{}.self_attn.v_proj.weight", true, {D::KVOut, D::Model}, Presence::Always, true},
    {Role::VBias, "model.layers.{}.self_attn.v_proj.bias", true, {D::KVOut}, Presence::QKVBias},
    {Role::O, "model.layers.{}.self_attn.o_proj.weight", true, {D::Model, D::QOut}, Presence::Always, true},
    {Role::FfnNorm, "model.layers.{}.post_attention_layernorm.weight", true, {D::Model}},
    {Role::Gate, "model.layers.{}.mlp.gate_proj.weight", true, {D::Hidden, D::Model}, Presence::Always, true},
    {Role::Up, "model.layers.{}.mlp.up_proj.weight", true, {D::Hidden, D::Model}, Presence::Always, true},
    {Role::Down, "model.layers.{}.mlp.down_proj.weight", true, {D::Model, D::Hidden}, Presence::Always, true},
    {Role::FinalNorm, "model.norm.weight", false, {D::Model}},
    {Role::LmHead, "lm_head.weight", false, {D::Vocab, D::Model}, Presence::Untied},
};

// GPT-2 (GPT2LMHeadModel names; the output head is always the tied token embedding). Conv1D
// projection weights are stored [in, out].
const std::vector<RoleSpec> kGpt2 = {
    {Role::TokEmbed, "transformer.wte.weight", false, {D::Vocab, D::Model}},
    {Role::PosEmbed, "transformer.wpe.weight", false, {D::MaxSeq, D::Model}},
    {Role::AttnNorm, "transformer.h.{}.ln_1.weight", true, {D::Model}},
    {Role::AttnNormBias, "transformer.h.{}.ln_1.bias", true, {D::Model}},
    {Role::QKV, "transformer.h.{}.attn.c_attn.weight", true, {D::QKVOut, D::Model}, Presence::Always, true, true},
    {Role::QKVBias, "transformer.h.{}.attn.c_attn.bias", true, {D::QKVOut}},
    {Role::O, "transformer.h.{}.attn.c_proj.weight", true, {D::Model, D::Model}, Presence::Always, true, true},
    {Role::OBias, "transformer.h.{}.attn.c_proj.bias", true, {D::Model}},
    {Role::FfnNorm, "transformer.h.{}.ln_2.weight", true, {D::Model}},
    {Role::FfnNormBias, "transformer.h.{}.ln_2.bias", true, {D::Model}},
    {Role::Up, "transformer.h.{}.mlp.c_fc.weight", true, {D::Hidden, D::Model}, Presence::Always, true, true},
    {Role::UpBias, "transformer.h.{}.mlp.c_fc.bias", true, {D::Hidden}},
    {Role::Down, "transformer.h.{}.mlp.c_proj.weight", true, {D::Model, D::Hidden}, Presence::Always, true, true},
    {Role::DownBias, "transformer.h.{}.mlp.c_proj.bias", true, {D::Model}},
    {Role::FinalNorm, "transformer.ln_f.weight", false, {D::Model}},
    {Role::FinalNormBias, "transformer.ln_f.bias", false, {D::Model}},
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Matches `name` against `pattern`; the layer index (or -1 without "{}") on success.
std::optional<int64_t> match(const std::string& pattern, const std::string& name) {
  const size_t hole = pattern.find("{}");
  if (hole == std::string::npos) return pattern == name ? std::optional<int64_t>(-1) : std::nullopt;
  const std::string prefix = pattern.substr(0, hole), suffix = pattern.substr(hole + 2);
  if (name.size() <= prefix.size() + suffix.size() || name.compare(0, prefix.size(), prefix) != 0 ||
      !ends_with(name, suffix))
    return std::nullopt;
  const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.empty() || digits.size() > 9 || (digits.size() > 1 && digits[0] == '0')) return std::nullopt;
  for (char c : digits)
    if (c < '0' || c > '9') return std::nullopt;
  return std::stoll(digits);
}

}  // namespace

const std::vector<RoleSpec>& weight_roles(Arch arch) { return arch == Arch::GPT2 ? kGpt2 : kLlama; }

const RoleSpec& role_spec(Arch arch, Role role) {
  for (const RoleSpec& s : weight_roles(arch))
    if (s.role == role) return s;
  throw std::out_of_range(std::string("no role ") + std::to_string(int(role)) + " in " + arch_name(arch));
}

std::string tensor_name(Arch arch, Role role, int64_t layer) {
  std::string name = role_spec(arch, role).pattern;
  const size_t hole = name.find("{}");
  if (hole != std::string::npos) name.replace(hole, 2, std::to_string(layer));
  return name;
}

bool role_present(const RoleSpec& spec, const ModelConfig& c) {
  switch (spec.presence) {
    case Presence::Always: return true;
    case Presence::QKVBias: return c.attn_qkv_bias;
    case Presence::Untied: return !c.tie_embeddings;
  }
  return true;
}

int64_t dim_size(const ModelConfig& c, Dim d) {
  switch (d) {
    case Dim::Vocab: return c.vocab_size;
    case Dim::Model: return c.dim;
    case Dim::QOut: return c.n_heads * c.head_dim;
    case Dim::KVOut: return c.kv_dim();
    case Dim::QKVOut: return 3 * c.dim;
    case Dim::Hidden: return c.hidden_dim;
    case Dim::MaxSeq: return c.max_seq_len;
  }
  return 0;
}

std::vector<int64_t> role_shape(const ModelConfig& c, const RoleSpec& spec) {
  std::vector<int64_t> shape;
  for (Dim d : spec.shape) shape.push_back(dim_size(c, d));
  return shape;
}

const char* role_short_name(Role role) {
  switch (role) {
    case Role::Q: return "q";
    case Role::K: return "k";
    case Role::V: return "v";
    case Role::QKV: return "qkv";
    case Role::O: return "o";
    case Role::Gate: return "gate";
    case Role::Up: return "up";
    case Role::Down: return "down";
    default: return "";
  }
}

std::optional<ParsedName> parse_tensor_name(Arch arch, const std::string& name) {
  std::string base = name, factor;
  for (const char* suffix : {".lowrank_A", ".lowrank_B"})
    if (ends_with(name, suffix)) {
      factor = suffix;
      base = name.substr(0, name.size() - factor.size());
    }
  for (const RoleSpec& s : weight_roles(arch)) {
    if (!factor.empty() && !s.projection) continue;  // only projections are ever factored
    if (auto layer = match(s.pattern, base)) return ParsedName{s.role, *layer, factor};
  }
  return std::nullopt;
}

}  // namespace rankrl
