// refit_compensated (compress/refit.h) on stories260K: (1) on a weight whose inputs the compression
// has not changed (layer 0's q_proj) it must reproduce SVD-LLM's factorization (x̃ = x); (2) on a
// downstream weight it must reach the reduced-rank-regression optimum of Σ‖W·x − Ŵ·x̃‖² computed
// by an independent route (eigenvectors of the fitted values' covariance instead of a whitened
// SVD), and beat the factors it replaced.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "calib/calibrate.h"
#include "compress/apply.h"
#include "compress/refit.h"
#include "model/linear.h"
#include "model/model.h"
#include "model/transformer.h"
#include "search/plan.h"
#include "test_util.h"

namespace rankrl {
namespace {

const char* kBin = "stories260K/stories260K.bin";
const char* kTok = "stories260K/tok512.bin";
const char* kVal = "tinystories/tinystories_val.txt";

// Rows = tokens: the inputs `name` receives in `net` on `windows`, float64 [N, n].
at::Tensor inputs_of(Transformer& net, const std::string& name, const at::Tensor& windows) {
  at::Tensor out;
  net.set_observer([&](const Linear& l, const at::Tensor& x) {
    if (l.name() == name) out = x.reshape({-1, x.size(-1)}).to(at::kDouble);
  });
  net.forward(windows);
  net.set_observer({});
  return out;
}

double objective(const at::Tensor& W, const at::Tensor& X, const at::Tensor& W_hat, const at::Tensor& X_tilde) {
  return (at::matmul(X, W.t()) - at::matmul(X_tilde, W_hat.t())).pow(2).sum().item<double>();
}

TEST(Refit, MatchesSvdLlmWhereInputsAreUnchangedAndReachesTheCompensatedOptimumDownstream) {
  RANKRL_REQUIRE_DATA(kBin);
  c10::InferenceMode guard;
  Model dense = load_model(test::data_file(kBin), test::data_file(kTok));
  const int64_t ctx = 128;
  std::vector<int32_t> ids = calibration_ids(*dense.tokenizer, test::data_file(kVal), 4 * ctx);
  CalibStats stats = calibrate(*dense.net, ids, {.tokens = 4 * ctx, .ctx = ctx});
  Transformer net(dense.net->config(), dense.net->weights());
  apply_plan(net, uniform_plan(net, 0.5, "svdllm"), &stats);

  const std::string first = "model.layers.0.self_attn.q_proj.weight", downstream = "model.layers.2.mlp.down_proj.weight";
  at::Tensor windows = at::tensor(at::ArrayRef<int32_t>(ids.data(), ids.size())).to(at::kLong).view({4, ctx});
  const at::Tensor first_before = net.find_linear(first)->dense_weight().to(at::kDouble);
  const at::Tensor down_before = net.find_linear(downstream)->dense_weight().to(at::kDouble);
  const int64_t down_rank = net.find_linear(downstream)->rank();

  RefitStats rs = refit_compensated(*dense.net, net, ids, ctx);
  EXPECT_EQ(rs.weights, 35);  // 5 layers × 7 projections, all factored at keep 0.5
  EXPECT_EQ(rs.passes, 2 * 5 * 4);  // per layer the stages {q, k, v}, {o}, {gate, up}, {down}

  // (1) Nothing upstream of layer 0's q_proj changed: the refit is SVD-LLM's Ŵ again.
  const at::Tensor first_after = net.find_linear(first)->dense_weight().to(at::kDouble);
  EXPECT_LT((first_after - first_before).norm().item<double>(), 1e-4 * first_before.norm().item<double>());

  // (2) Downstream: reduced-rank regression of Y = X·Wᵀ on X̃, solved as OLS then a projection
  // onto the top eigenvectors of the fitted values' covariance (Izenman 1975).
  const at::Tensor W = dense.net->find_linear(downstream)->dense_weight().to(at::kDouble);
  const at::Tensor X = inputs_of(*dense.net, downstream, windows), X_tilde = inputs_of(net, downstream, windows);
  const at::Tensor W_ols = std::get<0>(at::linalg_lstsq(X_tilde, at::matmul(X, W.t()))).t();  // [m, n]
  const at::Tensor fitted = at::matmul(X_tilde, W_ols.t());                                  // [N, m]
  auto [evals, evecs] = at::linalg_eigh(at::matmul(fitted.t(), fitted));                     // ascending
  const at::Tensor P = evecs.narrow(1, evecs.size(1) - down_rank, down_rank);
  const at::Tensor W_ref = at::matmul(P, at::matmul(P.t(), W_ols));
  const double want = objective(W, X, W_ref, X_tilde);
  const double got = objective(W, X, net.find_linear(downstream)->dense_weight().to(at::kDouble), X_tilde);
  EXPECT_NEAR(got, want, 1e-4 * want);
  EXPECT_LT(got, 0.9 * objective(W, X, down_before, X_tilde));  // the replaced SVD-LLM factors
  EXPECT_EQ(net.find_linear(downstream)->rank(), down_rank);
}

}  // namespace
}  // namespace rankrl
