#include "model/generate.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <random>

#include "core/error.h"
#include "model/transformer.h"

namespace rankrl {

namespace {

int32_t pick(const at::Tensor& logits, double temperature, std::mt19937_64& rng) {
  if (temperature <= 0.0) return int32_t(logits.argmax().item<int64_t>());
  at::Tensor p = at::softmax(logits.to(at::kDouble) / temperature, -1).contiguous();
  const double* probs = p.data_ptr<double>();
  double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng), acc = 0.0;
  for (int64_t i = 0; i < p.numel(); ++i) {
    acc += probs[i];
    if (u < acc) return int32_t(i);
  }
  return int32_t(p.numel() - 1);  // rounding left u above the last cumulative sum
}

}  // namespace

std::vector<int32_t> generate(const Transformer& net, const std::vector<int32_t>& prompt,
                              const GenerateOptions& options,
                              const std::function<void(int32_t)>& on_token) {
  if (prompt.empty()) throw usage_error("generation needs at least one prompt token");
  c10::InferenceMode guard;
  std::mt19937_64 rng(options.seed);
  KVCache cache;
  int64_t limit = net.config().max_seq_len > 0 ? net.config().max_seq_len : INT64_MAX;
  at::Tensor input = at::tensor(at::ArrayRef<int32_t>(prompt)).to(at::kLong).unsqueeze(0);
  std::vector<int32_t> out;
  while (int64_t(out.size()) < options.max_new_tokens && cache.length() + input.size(1) <= limit) {
    at::Tensor logits = net.forward(input, &cache)[0][-1];
    int32_t next = pick(logits, options.temperature, rng);
    out.push_back(next);
    if (on_token) on_token(next);
    if (next == options.stop_token) break;
    input = at::full({1, 1}, int64_t(next), at::kLong);
  }
  return out;
}

}  // namespace rankrl
