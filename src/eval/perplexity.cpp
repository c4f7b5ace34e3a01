#include "eval/perplexity.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>

#include "core/dist.h"
#include "core/error.h"
#include "core/log.h"
#include "model/transformer.h"

namespace rankrl {

namespace {

// Summed NLL (float64) of tokens 1.. of each row of `windows` [B, T] given the earlier ones.
double window_nll_sum(const Transformer& net, const at::Tensor& windows) {
  at::Tensor logits = net.forward(windows);
  int64_t T = windows.size(1);
  at::Tensor logp = at::log_softmax(logits.narrow(1, 0, T - 1), -1);
  at::Tensor targets = windows.narrow(1, 1, T - 1).unsqueeze(-1);
  return -logp.gather(-1, targets).to(at::kDouble).sum().item<double>();
}

}  // namespace

PerplexityResult perplexity(const Transformer& net, const std::vector<int32_t>& ids, int64_t ctx,
                            int64_t batch, bool show_progress) {
  if (ctx < 2) throw usage_error("--ctx must be at least 2");
  if (batch < 1) throw usage_error("--batch must be at least 1");
  int64_t max_len = net.config().max_seq_len;
  if (max_len > 0 && ctx > max_len)
    throw usage_error("--ctx " + std::to_string(ctx) + " exceeds the model's maximum sequence length " +
                      std::to_string(max_len));
  auto start = std::chrono::steady_clock::now();
  c10::InferenceMode guard;
  at::Tensor all = at::tensor(at::ArrayRef<int32_t>(ids)).to(at::kLong);
  int64_t n = all.numel(), full = n / ctx, rest = n % ctx;

  PerplexityResult r;
  r.text_tokens = n;
  r.windows = full + (rest > 0 ? 1 : 0);
  // Units: the full batches, then the short last window. Under mpirun each unit runs whole on one
  // rank and the sums are added in unit order on every rank, so the result is bit-identical to
  // one process (core/dist.h).
  const int64_t batches = (full + batch - 1) / batch;
  const size_t units = size_t(batches + (rest >= 2 ? 1 : 0));
  Progress progress("perplexity", n, "tok", show_progress);
  const std::vector<double> sums = dist::share_doubles(units, [&](size_t u) {
    if (int64_t(u) == batches) return window_nll_sum(net, all.narrow(0, full * ctx, rest).view({1, rest}));
    const int64_t w = int64_t(u) * batch, b = std::min(batch, full - w);
    const double s = window_nll_sum(net, all.narrow(0, w * ctx, b * ctx).view({b, ctx}));
    progress.advance(b * ctx * dist::size());  // this rank's share of the windows, as the whole
    return s;
  });
  double sum = 0.0;
  for (double s : sums) sum += s;
  r.tokens = full * (ctx - 1) + (rest >= 2 ? rest - 1 : 0);
  progress.finish();
  if (r.tokens == 0) throw Error("", "text too short: no token to score");
  r.nll = sum / double(r.tokens);
  r.ppl = std::exp(r.nll);
  r.seconds = seconds_since(start);
  return r;
}

}  // namespace rankrl
