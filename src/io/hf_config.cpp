#include "io/hf_config.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "io/safetensors.h"  // quote_name()

namespace rankrl {

using nlohmann::json;

namespace {

// Sizes beyond this are corrupt configs; rejecting them keeps later size arithmetic in range.
constexpr int64_t kMaxSize = int64_t(1) << 30;

// Typed access to config.json fields with one-line errors naming the field.
class Fields {
 public:
  Fields(const json& j, const std::string& path) : j_(j), path_(path) {}

  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }

  [[noreturn]] void fail(const char* key, const std::string& what) const {
    throw Error(path_, std::string("config.json: field '") + key + "' " + what);
  }

  // A required positive integer.
  int64_t size(const char* key) const {
    if (!j_.contains(key)) fail(key, "is missing");
    return positive(key);
  }

  std::optional<int64_t> optional_size(const char* key) const {
    if (!has(key)) return std::nullopt;
    return positive(key);
  }

  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    if (!j_[key].is_number()) fail(key, "must be a number");
    return j_[key].get<double>();
  }

  double positive_number(const char* key, double fallback) const {
    double v = number(key, fallback);
    // JSON has no infinity, but an out-of-range literal like 1e999 parses to one.
    if (!(v > 0) || !std::isfinite(v)) fail(key, "must be a positive finite number");
    return v;
  }

  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!j_[key].is_boolean()) fail(key, "must be true or false");
    return j_[key].get<bool>();
  }

  std::string string(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    if (!j_[key].is_string()) fail(key, "must be a string");
    return j_[key].get<std::string>();
  }

  // bos/eos ids: an integer, a list of integers (the first is used) or null (-1).
  int64_t token_id(const char* key) const {
    if (!has(key)) return -1;
    const json* v = &j_[key];
    if (v->is_array()) {
      if (v->empty()) return -1;
      v = &(*v)[0];
    }
    if (!in_range(*v, 0)) fail(key, "must be a non-negative integer, a list of them, or null");
    return v->get<int64_t>();
  }

 private:
  static bool in_range(const json& v, int64_t min) {
    if (v.is_number_unsigned()) return v.get<uint64_t>() <= uint64_t(kMaxSize) && v.get<int64_t>() >= min;
    return v.is_number_integer() && v.get<int64_t>() >= min && v.get<int64_t>() <= kMaxSize;
  }

  int64_t positive(const char* key) const {
    const json& v = j_[key];
    if (!v.is_number_integer()) fail(key, "must be an integer");
    if (!in_range(v, 1)) fail(key, "must be a positive integer below 2^30 (got " + v.dump() + ")");
    return v.get<int64_t>();
  }

  const json& j_;
  const std::string& path_;
};

json parse_object(const std::string& text, const std::string& path) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(path, std::string("config.json is not valid JSON: ") + e.what());
  }
  check(j.is_object(), path, "config.json is not a JSON object");
  return j;
}

// model_type decides the family; old configs without it are recognised by their architecture.
std::string model_type_of(const Fields& f, const json& j, const std::string& path) {
  std::string type = f.string("model_type", "");
  if (!type.empty()) return type;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string()) {
    const auto arch = j["architectures"][0].get<std::string>();
    if (arch == "LlamaForCausalLM") return "llama";
    if (arch == "MistralForCausalLM") return "mistral";
    if (arch == "Qwen2ForCausalLM") return "qwen2";
    if (arch == "GPT2LMHeadModel") return "gpt2";
  }
  throw Error(path, "config.json: field 'model_type' is missing and 'architectures' is not recognised");
}

std::string architecture_of(const json& j, const std::string& fallback) {
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    return j["architectures"][0].get<std::string>();
  return fallback;
}

void reject_rope_scaling(const Fields& f, const json& j) {
  if (!f.has("rope_scaling")) return;
  const json& s = j["rope_scaling"];
  std::string type = "?";
  if (s.is_object()) {
    for (const char* key : {"rope_type", "type"})
      if (s.contains(key) && s[key].is_string()) type = s[key].get<std::string>();
  }
  if (type == "default") return;  // transformers' spelling of "no scaling"
  f.fail("rope_scaling", "type " + quote_name(type) + " is not supported (only unscaled RoPE, null)");
}

void parse_llama(ModelConfig& c, const Fields& f, const json& j, const std::string& path) {
  static const char* const kDefaultArch[][2] = {
      {"llama", "LlamaForCausalLM"}, {"mistral", "MistralForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"}};
  std::string default_arch;
  for (const auto& [type, arch] : kDefaultArch)
    if (c.model_type == type) default_arch = arch;
  c.arch = Arch::Llama;
  c.hf_architecture = architecture_of(j, default_arch);
  c.dim = f.size("hidden_size");
  c.hidden_dim = f.size("intermediate_size");
  c.n_layers = f.size("num_hidden_layers");
  c.n_heads = f.size("num_attention_heads");
  c.n_kv_heads = f.optional_size("num_key_value_heads").value_or(c.n_heads);
  if (auto hd = f.optional_size("head_dim")) {
    c.head_dim = *hd;
  } else {
    check(c.dim % c.n_heads == 0, path,
          "config.json: hidden_size " + std::to_string(c.dim) +
              " is not divisible by num_attention_heads " + std::to_string(c.n_heads));
    c.head_dim = c.dim / c.n_heads;
  }
  check(c.head_dim % 2 == 0, path, "config.json: head_dim must be even for RoPE");
  check(c.n_heads % c.n_kv_heads == 0, path,
        "config.json: num_attention_heads " + std::to_string(c.n_heads) +
            " is not a multiple of num_key_value_heads " + std::to_string(c.n_kv_heads));
  c.vocab_size = f.size("vocab_size");
  c.max_seq_len = f.size("max_position_embeddings");
  c.rope_theta = f.positive_number("rope_theta", 10000.0);
  c.rope_interleaved = false;
  c.norm_eps = f.positive_number("rms_norm_eps", 1e-6);  // transformers' LlamaConfig default
  c.tie_embeddings = f.boolean("tie_word_embeddings", false);
  c.attn_qkv_bias = c.model_type == "qwen2";
  reject_rope_scaling(f, j);
  if (f.boolean("attention_bias", false)) f.fail("attention_bias", "= true is not supported");
  if (f.boolean("mlp_bias", false)) f.fail("mlp_bias", "= true is not supported");
  if (f.boolean("use_sliding_window", false)) f.fail("use_sliding_window", "= true is not supported");
  const std::string act = f.string("hidden_act", "silu");
  if (act != "silu") f.fail("hidden_act", quote_name(act) + " is not supported (only silu)");
}

void parse_gpt2(ModelConfig& c, const Fields& f, const json& j, const std::string& path) {
  c.arch = Arch::GPT2;
  c.hf_architecture = architecture_of(j, "GPT2LMHeadModel");
  c.dim = f.size("n_embd");
  c.n_layers = f.size("n_layer");
  c.n_heads = f.size("n_head");
  c.n_kv_heads = c.n_heads;
  check(c.dim % c.n_heads == 0, path,
        "config.json: n_embd " + std::to_string(c.dim) + " is not divisible by n_head " +
            std::to_string(c.n_heads));
  c.head_dim = c.dim / c.n_heads;
  c.hidden_dim = f.optional_size("n_inner").value_or(4 * c.dim);
  c.max_seq_len = f.size("n_positions");
  c.vocab_size = f.size("vocab_size");
  c.norm_eps = f.positive_number("layer_norm_epsilon", 1e-5);
  c.tie_embeddings = true;
  if (!f.boolean("tie_word_embeddings", true))
    f.fail("tie_word_embeddings", "= false is not supported for GPT-2");
  const std::string act = f.string("activation_function", "gelu_new");
  if (act != "gelu_new" && act != "gelu_pytorch_tanh")
    f.fail("activation_function", quote_name(act) + " is not supported (gelu_new or gelu_pytorch_tanh)");
  if (!f.boolean("scale_attn_weights", true)) f.fail("scale_attn_weights", "= false is not supported");
  if (f.boolean("scale_attn_by_inverse_layer_idx", false))
    f.fail("scale_attn_by_inverse_layer_idx", "= true is not supported");
}

}  // namespace

ModelConfig parse_hf_config(const std::string& json_text, const std::string& path) {
  const json j = parse_object(json_text, path);
  const Fields f(j, path);
  ModelConfig c;
  c.model_type = model_type_of(f, j, path);
  if (c.model_type == "llama" || c.model_type == "mistral" || c.model_type == "qwen2")
    parse_llama(c, f, j, path);
  else if (c.model_type == "gpt2")
    parse_gpt2(c, f, j, path);
  else
    f.fail("model_type", quote_name(c.model_type) + " is not supported (llama, mistral, qwen2, gpt2)");
  c.bos_id = f.token_id("bos_token_id");
  c.eos_id = f.token_id("eos_token_id");
  return c;
}

namespace {

json llama_config_json(const ModelConfig& c) {
  const std::string type = c.model_type.empty() ? (c.attn_qkv_bias ? "qwen2" : "llama") : c.model_type;
  check(c.attn_qkv_bias == (type == "qwen2"), "",
        "cannot write config.json: q/k/v biases need model_type qwen2 (have '" + type + "')");
  json j = {
      {"architectures", {c.hf_architecture.empty() ? "LlamaForCausalLM" : c.hf_architecture}},
      {"model_type", type},
      {"hidden_size", c.dim},
      {"intermediate_size", c.hidden_dim},
      {"num_hidden_layers", c.n_layers},
      {"num_attention_heads", c.n_heads},
      {"num_key_value_heads", c.n_kv_heads},
      {"vocab_size", c.vocab_size},
      {"max_position_embeddings", c.max_seq_len},
      {"rope_theta", c.rope_theta},
      {"rms_norm_eps", c.norm_eps},
      {"tie_word_embeddings", c.tie_embeddings},
      {"hidden_act", "silu"},
      {"rope_scaling", nullptr},
  };
  if (c.head_dim * c.n_heads != c.dim) j["head_dim"] = c.head_dim;
  return j;
}

json gpt2_config_json(const ModelConfig& c) {
  return {
      {"architectures", {"GPT2LMHeadModel"}},
      {"model_type", "gpt2"},
      {"n_embd", c.dim},
      {"n_layer", c.n_layers},
      {"n_head", c.n_heads},
      {"n_inner", c.hidden_dim},
      {"n_positions", c.max_seq_len},
      {"n_ctx", c.max_seq_len},
      {"vocab_size", c.vocab_size},
      {"layer_norm_epsilon", c.norm_eps},
      {"activation_function", "gelu_new"},
      {"tie_word_embeddings", true},
  };
}

}  // namespace

std::string hf_config_json(const ModelConfig& config) {
  json j = config.arch == Arch::GPT2 ? gpt2_config_json(config) : llama_config_json(config);
  j["torch_dtype"] = "float32";
  j["bos_token_id"] = config.bos_id >= 0 ? json(config.bos_id) : json(nullptr);
  j["eos_token_id"] = config.eos_id >= 0 ? json(config.eos_id) : json(nullptr);
  return j.dump(2) + "\n";
}

}  // namespace rankrl
