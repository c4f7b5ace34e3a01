#include "eval/divergence.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "core/dist.h"
#include "core/error.h"
#include "model/transformer.h"

namespace rankrl {

struct DivergenceScorer::Impl {
  const Transformer& reference;
  at::Tensor windows;                // int64 [W, ctx]
  int64_t per_unit = 1;              // windows per forward pass (a unit of work under mpirun)
  std::vector<at::Tensor> ref_logp;  // per unit, float32 [w, ctx, vocab]; empty: recomputed per call

  int64_t units() const { return (windows.size(0) + per_unit - 1) / per_unit; }
  at::Tensor unit_windows(int64_t u) const {
    const int64_t first = u * per_unit;
    return windows.narrow(0, first, std::min(per_unit, windows.size(0) - first));
  }
  at::Tensor log_probs(const Transformer& net, int64_t u) const { return at::log_softmax(net.forward(unit_windows(u)), -1); }
  // Σ over the unit's positions of KL(reference ‖ net), summed in float64.
  double unit_kl_sum(const Transformer& net, int64_t u) const {
    at::Tensor ref = ref_logp.empty() ? log_probs(reference, u) : ref_logp[size_t(u)];
    at::Tensor logq = log_probs(net, u);
    at::Tensor per_token = (ref.exp() * (ref - logq)).sum(-1);  // Σ_v p (log p − log q)
    return per_token.to(at::kDouble).sum().item<double>();
  }
};

DivergenceScorer::DivergenceScorer(const Transformer& reference, const std::vector<int32_t>& ids, int64_t ctx,
                                   int64_t cache_bytes, int64_t windows_per_unit) {
  check(ctx >= 1, "", "divergence: ctx must be positive");
  check(windows_per_unit >= 1, "", "divergence: windows per unit must be positive");
  const int64_t W = int64_t(ids.size()) / ctx;
  check(W >= 1, "", "divergence: the text has fewer than ctx = " + std::to_string(ctx) + " tokens");
  c10::InferenceMode guard;
  at::Tensor all = at::tensor(at::ArrayRef<int32_t>(ids.data(), size_t(W * ctx))).to(at::kLong);
  impl_.reset(new Impl{reference, all.view({W, ctx}), windows_per_unit, {}});
  const int64_t bytes = W * ctx * reference.config().vocab_size * int64_t(sizeof(float));
  if (bytes <= cache_bytes)
    for (int64_t u = 0; u < impl_->units(); ++u) impl_->ref_logp.push_back(impl_->log_probs(reference, u));
}

DivergenceScorer::~DivergenceScorer() = default;

int64_t DivergenceScorer::tokens() const { return impl_->windows.numel(); }

double DivergenceScorer::kl(const Transformer& net) const {
  c10::InferenceMode guard;
  // Units of whole windows, their sums added in unit order: the same bits on any rank count.
  const std::vector<double> sums =
      dist::share_doubles(size_t(impl_->units()), [&](size_t u) { return impl_->unit_kl_sum(net, int64_t(u)); });
  double total = 0.0;
  for (double s : sums) total += s;
  return total / double(tokens());
}

}  // namespace rankrl
