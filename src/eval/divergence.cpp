#include "eval/divergence.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "core/error.h"
#include "model/transformer.h"

namespace rankrl {

struct DivergenceScorer::Impl {
  const Transformer& reference;
  at::Tensor windows;    // int64 [W, ctx]
  at::Tensor ref_logp;   // float32 [W, ctx, vocab], or undefined (recomputed per call)

  at::Tensor log_probs(const Transformer& net) const { return at::log_softmax(net.forward(windows), -1); }
};

DivergenceScorer::DivergenceScorer(const Transformer& reference, const std::vector<int32_t>& ids, int64_t ctx,
                                   int64_t cache_bytes) {
  check(ctx >= 1, "", "divergence: ctx must be positive");
  const int64_t W = int64_t(ids.size()) / ctx;
  check(W >= 1, "", "divergence: the text has fewer than ctx = " + std::to_string(ctx) + " tokens");
  c10::InferenceMode guard;
  at::Tensor all = at::tensor(at::ArrayRef<int32_t>(ids.data(), size_t(W * ctx))).to(at::kLong);
  impl_.reset(new Impl{reference, all.view({W, ctx}), {}});
  const int64_t bytes = W * ctx * reference.config().vocab_size * int64_t(sizeof(float));
  if (bytes <= cache_bytes) impl_->ref_logp = impl_->log_probs(reference);
}

DivergenceScorer::~DivergenceScorer() = default;

int64_t DivergenceScorer::tokens() const { return impl_->windows.numel(); }

double DivergenceScorer::kl(const Transformer& net) const {
  c10::InferenceMode guard;
  at::Tensor ref = impl_->ref_logp.defined() ? impl_->ref_logp : impl_->log_probs(impl_->reference);
  at::Tensor logq = impl_->log_probs(net);
  // Σ_v p (log p − log q), summed in float64 over positions.
  at::Tensor per_token = (ref.exp() * (ref - logq)).sum(-1);
  return per_token.to(at::kDouble).sum().item<double>() / double(tokens());
}

}  // namespace rankrl
