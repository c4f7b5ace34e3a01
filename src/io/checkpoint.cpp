// Weight specs per architecture, validation, and the load_checkpoint dispatcher.
#include <ATen/ATen.h>

#include <filesystem>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/checkpoint_detail.h"

namespace rankrl {

namespace {

void add_llama_layer(std::vector<WeightSpec>& specs, const ModelConfig& c, int64_t layer) {
  const std::string p = "model.layers." + std::to_string(layer) + ".";
  const int64_t q_dim = c.n_heads * c.head_dim;
  specs.push_back({p + "input_layernorm.weight", {c.dim}});
  for (auto [proj, rows] : {std::pair{"q_proj", q_dim}, {"k_proj", c.kv_dim()}, {"v_proj", c.kv_dim()}}) {
    specs.push_back({p + "self_attn." + proj + ".weight", {rows, c.dim}});
    if (c.attn_qkv_bias) specs.push_back({p + "self_attn." + proj + ".bias", {rows}});
  }
  specs.push_back({p + "self_attn.o_proj.weight", {c.dim, q_dim}});
  specs.push_back({p + "post_attention_layernorm.weight", {c.dim}});
  specs.push_back({p + "mlp.gate_proj.weight", {c.hidden_dim, c.dim}});
  specs.push_back({p + "mlp.up_proj.weight", {c.hidden_dim, c.dim}});
  specs.push_back({p + "mlp.down_proj.weight", {c.dim, c.hidden_dim}});
}

void add_gpt2_layer(std::vector<WeightSpec>& specs, const ModelConfig& c, int64_t layer) {
  const std::string p = "transformer.h." + std::to_string(layer) + ".";
  auto layer_norm = [&](const std::string& name) {
    specs.push_back({p + name + ".weight", {c.dim}});
    specs.push_back({p + name + ".bias", {c.dim}});
  };
  auto linear = [&](const std::string& name, int64_t out, int64_t in) {
    specs.push_back({p + name + ".weight", {out, in}});
    specs.push_back({p + name + ".bias", {out}});
  };
  layer_norm("ln_1");
  linear("attn.c_attn", 3 * c.dim, c.dim);
  linear("attn.c_proj", c.dim, c.dim);
  layer_norm("ln_2");
  linear("mlp.c_fc", c.hidden_dim, c.dim);
  linear("mlp.c_proj", c.dim, c.hidden_dim);
}

std::vector<WeightSpec> llama_specs(const ModelConfig& c) {
  std::vector<WeightSpec> specs{{"model.embed_tokens.weight", {c.vocab_size, c.dim}}};
  for (int64_t l = 0; l < c.n_layers; ++l) add_llama_layer(specs, c, l);
  specs.push_back({"model.norm.weight", {c.dim}});
  if (!c.tie_embeddings) specs.push_back({"lm_head.weight", {c.vocab_size, c.dim}});
  return specs;
}

std::vector<WeightSpec> gpt2_specs(const ModelConfig& c) {
  std::vector<WeightSpec> specs{{"transformer.wte.weight", {c.vocab_size, c.dim}},
                                {"transformer.wpe.weight", {c.max_seq_len, c.dim}}};
  for (int64_t l = 0; l < c.n_layers; ++l) add_gpt2_layer(specs, c, l);
  specs.push_back({"transformer.ln_f.weight", {c.dim}});
  specs.push_back({"transformer.ln_f.bias", {c.dim}});
  return specs;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::vector<WeightSpec> weight_specs(const ModelConfig& config) {
  return config.arch == Arch::GPT2 ? gpt2_specs(config) : llama_specs(config);
}

std::vector<std::string> required_weight_names(const ModelConfig& config) {
  std::vector<std::string> names;
  for (auto& s : weight_specs(config)) names.push_back(std::move(s.name));
  return names;
}

bool is_conv1d_weight(const ModelConfig& config, const std::string& name) {
  if (config.arch != Arch::GPT2) return false;
  for (const char* suffix : {".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight",
                             ".mlp.c_proj.weight"})
    if (ends_with(name, suffix)) return true;
  return false;
}

std::string detail::shape_string(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void detail::check_weight(const ModelConfig& config, const WeightSpec& spec, const at::Tensor& t,
                          const std::string& path) {
  if (t.sizes() != at::IntArrayRef(spec.shape)) {
    const char* note = is_conv1d_weight(config, spec.name) ? " (as [out, in]; stored transposed)" : "";
    throw Error(path, "tensor '" + spec.name + "' has shape " + shape_string(t.sizes()) +
                          ", the config implies " + shape_string(spec.shape) + note);
  }
  const int64_t bad = (~at::isfinite(t)).sum().item<int64_t>();
  check(bad == 0, path, "tensor '" + spec.name + "' contains " + std::to_string(bad) +
                            " NaN/Inf value(s)");
}

bool is_projection_weight(const ModelConfig& config, const std::string& name) {
  if (config.arch == Arch::GPT2) return is_conv1d_weight(config, name);
  return name.rfind("model.layers.", 0) == 0 && ends_with(name, "_proj.weight") &&
         (name.find(".self_attn.") != std::string::npos || name.find(".mlp.") != std::string::npos);
}

void detail::check_factors(const WeightSpec& spec, const at::Tensor& A, const at::Tensor& B,
                           const std::string& path) {
  const bool shaped = A.dim() == 2 && B.dim() == 2 && A.size(1) == B.size(0) && A.size(1) >= 1 &&
                      A.size(0) == spec.shape[0] && B.size(1) == spec.shape[1];
  check(shaped, path, "low-rank factors of '" + spec.name + "' have shapes " + shape_string(A.sizes()) +
                          " and " + shape_string(B.sizes()) + ", expected [" + std::to_string(spec.shape[0]) +
                          ", r] and [r, " + std::to_string(spec.shape[1]) + "]");
  for (const at::Tensor* t : {&A, &B}) {
    const int64_t bad = (~at::isfinite(*t)).sum().item<int64_t>();
    check(bad == 0, path, "low-rank factors of '" + spec.name + "' contain " + std::to_string(bad) +
                              " NaN/Inf value(s)");
  }
}

void validate_weights(const ModelConfig& config, const WeightMap& weights, const std::string& path) {
  for (const auto& spec : weight_specs(config)) {
    auto it = weights.find(spec.name);
    auto a = weights.find(spec.name + kLowRankA), b = weights.find(spec.name + kLowRankB);
    if (it == weights.end() && a != weights.end() && b != weights.end() &&
        is_projection_weight(config, spec.name)) {
      detail::check_factors(spec, a->second, b->second, path);
      continue;
    }
    check(it != weights.end(), path, "missing tensor '" + spec.name + "' (required by the config)");
    detail::check_weight(config, spec, it->second, path);
  }
}

at::Tensor detail::mapped_f32(const std::shared_ptr<MappedFile>& map, const uint8_t* bytes,
                              at::IntArrayRef shape) {
  // from_blob wants a mutable pointer; the mapping is PROT_READ, so writes would fault loudly.
  return at::from_blob(const_cast<uint8_t*>(bytes), shape, [map](void*) {},
                       at::TensorOptions().dtype(at::kFloat));
}

Checkpoint load_checkpoint(const std::string& path) {
  namespace fs = std::filesystem;
  check(file_exists(path), path, "no such file or directory");
  if (is_directory(path)) return detail::load_hf_directory(path);
  const fs::path p(path);
  const std::string name = p.filename().string();
  // A file inside a Hugging Face directory stands for the directory.
  if (name == "config.json" || name == "model.safetensors.index.json" || ends_with(name, ".safetensors")) {
    const std::string dir = p.has_parent_path() ? p.parent_path().string() : ".";
    return detail::load_hf_directory(dir);
  }
  return detail::load_llama2c(path);
}

}  // namespace rankrl
