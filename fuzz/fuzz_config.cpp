// libFuzzer target: parse_hf_config on arbitrary text. rankrl::Error is the expected way to
// reject input; anything else is a finding. An accepted config must satisfy the invariants the
// transformer relies on and survive hf_config_json -> parse_hf_config unchanged.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "io/hf_config.h"

namespace {

void check_invariants(const rankrl::ModelConfig& c) {
  if (c.dim <= 0 || c.hidden_dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
      c.head_dim <= 0 || c.vocab_size <= 0 || c.max_seq_len <= 0)
    __builtin_trap();
  if (c.n_heads % c.n_kv_heads != 0 || !(c.norm_eps > 0) || !(c.rope_theta > 0)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  rankrl::ModelConfig config;
  try {
    config = rankrl::parse_hf_config(text, "fuzz/config.json");
  } catch (const rankrl::Error&) {
    return 0;
  }
  check_invariants(config);
  // Whatever we accept, we must be able to write and read back to the same config.
  const std::string json = rankrl::hf_config_json(config);
  const std::string again = rankrl::hf_config_json(rankrl::parse_hf_config(json, "fuzz/roundtrip.json"));
  if (json != again) __builtin_trap();
  return 0;
}
