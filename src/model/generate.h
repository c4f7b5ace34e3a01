// Autoregressive generation with a KV cache: greedy at temperature 0, else sampling from
// softmax(logits / temperature) with a seeded generator (same seed, same text).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

namespace rankrl {

class Transformer;

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  double temperature = 0.0;
  uint64_t seed = 0;
  int32_t stop_token = -1;  // stop after emitting this id (e.g. EOS); -1 = never
};

// Returns the generated ids (prompt excluded). `on_token` sees each new id as it is produced.
std::vector<int32_t> generate(const Transformer& net, const std::vector<int32_t>& prompt,
                              const GenerateOptions& options,
                              const std::function<void(int32_t)>& on_token = {});

}  // namespace rankrl
