// DivergenceScorer (the search's KL surrogate) against an independent float64 computation of
// KL(p_dense ‖ p_model) window by window, and the identities KL(p ‖ p) = 0, KL ≥ 0.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "calib/calibrate.h"
#include "core/error.h"
#include "eval/divergence.h"
#include "model/linear.h"
#include "model/model.h"
#include "model/transformer.h"
#include "test_util.h"

namespace rankrl {
namespace {

using test::kBin;
using test::kTok;
using test::kVal;

// Mean over every position of every ctx-token window of Σ_v p (log p − log q), in float64.
double reference_kl(const Transformer& p, const Transformer& q, const std::vector<int32_t>& ids, int64_t ctx) {
  c10::InferenceMode guard;
  double sum = 0.0;
  int64_t n = 0;
  for (size_t w = 0; (w + 1) * size_t(ctx) <= ids.size(); ++w) {
    at::Tensor window = at::tensor(at::ArrayRef<int32_t>(ids.data() + w * ctx, size_t(ctx))).to(at::kLong).unsqueeze(0);
    at::Tensor lp = at::log_softmax(p.forward(window).to(at::kDouble), -1);
    at::Tensor lq = at::log_softmax(q.forward(window).to(at::kDouble), -1);
    sum += (lp.exp() * (lp - lq)).sum().item<double>();
    n += ctx;
  }
  return sum / double(n);
}

TEST(Divergence, EqualsAFloat64ReferenceAndIsZeroForTheSameModel) {
  RANKRL_REQUIRE_DATA(kBin);
  Model dense = load_model(test::data_file(kBin), test::data_file(kTok));
  Model changed = load_model(test::data_file(kBin), test::data_file(kTok));
  // Halve two projections: a different model whose distributions differ everywhere.
  for (const char* name : {"model.layers.1.mlp.up_proj.weight", "model.layers.3.self_attn.v_proj.weight"}) {
    Linear* l = changed.net->find_linear(name);
    ASSERT_NE(l, nullptr) << name;
    l->set_dense(l->weight() * 0.5);
  }
  std::vector<int32_t> ids = calibration_ids(*dense.tokenizer, test::data_file(kVal), 600);
  const int64_t ctx = 128;  // 4 windows; the last 88 tokens are not scored
  DivergenceScorer cached(*dense.net, ids, ctx), uncached(*dense.net, ids, ctx, 0);
  EXPECT_EQ(cached.tokens(), 4 * ctx);
  EXPECT_NEAR(cached.kl(*dense.net), 0.0, 1e-6);
  const double want = reference_kl(*dense.net, *changed.net, ids, ctx);
  EXPECT_GT(want, 1e-3);
  EXPECT_NEAR(cached.kl(*changed.net), want, 1e-4 * want + 1e-6);
  EXPECT_NEAR(uncached.kl(*changed.net), want, 1e-4 * want + 1e-6);
  // The reverse direction is a different number (KL is not symmetric): the scorer's reference is `dense`.
  EXPECT_GT(std::abs(reference_kl(*changed.net, *dense.net, ids, ctx) - want), 1e-4);
}

TEST(Divergence, TextShorterThanOneWindowIsAnError) {
  RANKRL_REQUIRE_DATA(kBin);
  Model dense = load_model(test::data_file(kBin), test::data_file(kTok));
  EXPECT_THROW(DivergenceScorer(*dense.net, std::vector<int32_t>(50, 1), 128), Error);
}

}  // namespace
}  // namespace rankrl
