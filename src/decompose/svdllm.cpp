// SVD-LLM, Wang et al. 2024 ("SVD-LLM: Truncation-aware Singular Value Decomposition for LLM
// Compression"): whiten with S, S·Sᵀ = XᵀX (the float64 calibration Gram), truncate the SVD of
// W·S. Because ‖(W−Ŵ)Xᵀ‖_F² = tr(ΔGΔᵀ) = ‖ΔS‖_F², discarding σᵢ of W·S costs exactly σᵢ² of
// output error: Σ_{i>r} σᵢ² = ‖(W−Ŵ_r)Xᵀ‖_F². tail_error[r] is that output error (metric
// "output_sq"), evaluated with the true Gram rather than from σ (which, after the fallback
// below, includes the eigenvalue floor); same value whenever Cholesky succeeded.
// Ŵ = U_kU_kᵀW (= U_kΣ_kV_kᵀS⁻¹ of the paper, see common.h): S⁻¹ is never applied, which is
// what makes singular Grams harmless here.
// Never fails on finite input: S is the Cholesky factor when it exists; when Cholesky fails
// (rank-deficient or indefinite-by-rounding Gram: dead channels, duplicated features, fewer
// tokens than channels) S = Q·diag(√max(λ, 1e-10·λ_max)) from the eigendecomposition. The floor
// only decides how never-excited directions are weighted (they count ~1e-5 as much as the
// strongest, enough to break ties in favour of W's energy there); it perturbs the output error
// by ≤ 1e-10·λ_max·‖W‖² at most. An all-zero Gram (no signal) falls back to S = I, i.e. plain SVD.
#include <ATen/ATen.h>

#include "decompose/methods.h"

namespace rankrl::detail {

namespace {

class SvdLlmDecomposer final : public Decomposer {
 public:
  std::string name() const override { return "svdllm"; }
  std::string spec() const override { return "svdllm"; }
  bool needs_stats() const override { return true; }

  Factors decompose(const at::Tensor& W, const LinearStats* stats, int64_t max_rank) const override {
    const at::Tensor w = checked_weight(W, max_rank, spec()).to(at::kDouble);
    const LinearStats& st = require_stats(stats, w, {.gram = true}, spec());
    const ThinSvd svd = thin_svd(at::matmul(w, whitening_factor(st.gram)), spec());
    Factors f = left_basis_factors(w, svd.U.narrow(1, 0, max_rank));
    f.tail_error = prefix_errors(w, f.A, f.B, st.gram);
    f.metric = "output_sq";
    balance_to_float(f);
    return f;
  }
};

}  // namespace

std::unique_ptr<Decomposer> make_svdllm(const Params& params) {
  params.allow_only({});
  return std::make_unique<SvdLlmDecomposer>();
}

}  // namespace rankrl::detail
