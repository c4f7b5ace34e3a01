// FWSVD, Hsu et al. 2022 ("Language model compression with weighted low-rank factorization"):
// weight each output row i by Iᵢ = √(Σⱼ fisherᵢⱼ), the row's summed diagonal empirical Fisher,
// and truncate the SVD of D·W, D = diag(I). Ŵ = W·V_kV_kᵀ (= D⁻¹U_kΣ_kV_kᵀ of the paper, see
// common.h). tail_error = Σ discarded σ² of D·W = Σᵢ Iᵢ²‖(W−Ŵ)ᵢ‖² (metric
// "fisher_row_weighted_sq"). Rows with Iᵢ below 1e-6·max are clamped to that floor; an all-zero
// Fisher gives plain SVD.
#include <ATen/ATen.h>

#include "decompose/methods.h"

namespace rankrl::detail {

namespace {

constexpr double kRelativeFloor = 1e-6;

at::Tensor row_importance(const at::Tensor& fisher) {
  const at::Tensor rows = fisher.to(at::kDouble).sum(1).sqrt();
  const double top = rows.max().item<double>();
  if (top <= 0) return at::ones_like(rows, at::kFloat);
  return rows.clamp_min(kRelativeFloor * top).to(at::kFloat);
}

class FwsvdDecomposer final : public Decomposer {
 public:
  std::string name() const override { return "fwsvd"; }
  std::string spec() const override { return "fwsvd"; }
  bool needs_stats() const override { return true; }
  bool needs_fisher() const override { return true; }

  Factors decompose(const at::Tensor& W, const LinearStats* stats, int64_t max_rank) const override {
    const at::Tensor w = checked_weight(W, max_rank, spec());
    const LinearStats& st = require_stats(stats, w, {.fisher = true}, spec());
    const ThinSvd svd = thin_svd(w * row_importance(st.fisher).unsqueeze(1), spec());
    Factors f = right_basis_factors(w, svd.Vh.narrow(0, 0, max_rank).t());
    f.tail_error = tail_errors(svd.S, max_rank);
    f.metric = "fisher_row_weighted_sq";
    balance_to_float(f);
    return f;
  }
};

}  // namespace

std::unique_ptr<Decomposer> make_fwsvd(const Params& params) {
  params.allow_only({});
  return std::make_unique<FwsvdDecomposer>();
}

}  // namespace rankrl::detail
