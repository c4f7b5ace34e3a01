// Perplexity by the DESIGN.md protocol: the whole text tokenized as one string (BOS first when the
// tokenizer adds one), split into non-overlapping windows of `ctx` tokens; every token except the
// first of each window is scored given the window's earlier tokens. Sums in float64.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rankrl {

class Transformer;

struct PerplexityResult {
  int64_t tokens = 0;       // scored tokens
  int64_t text_tokens = 0;  // tokens of the whole text (BOS included)
  int64_t windows = 0;
  double nll = 0.0;         // mean negative log-likelihood, nats per scored token
  double ppl = 0.0;         // exp(nll)
  double seconds = 0.0;
};

// `ids` is the tokenized text (with BOS when applicable). `batch` windows run together.
PerplexityResult perplexity(const Transformer& net, const std::vector<int32_t>& ids, int64_t ctx,
                            int64_t batch, bool show_progress = true);

}  // namespace rankrl
