// ASVD, Yuan et al. 2023 ("ASVD: Activation-aware Singular Value Decomposition for Compressing
// LLMs"): scale input channel j by sⱼ = (mean|xⱼ|)^α before truncating, so channels that carry
// large activations (outliers) are preserved. With S = diag(s): W·S = UΣVᵀ, Ŵ = U_kU_kᵀW
// (= U_kΣ_kV_kᵀS⁻¹, see common.h). tail_error = Σ discarded σ² of W·S = ‖(W−Ŵ)S‖_F²
// (metric "act_scaled_frobenius_sq").
// Channels with mean|x| below 1e-6·max are clamped to that floor (a dead channel would otherwise
// be weighted 0 and its column of W reconstructed from nothing but chance); all-zero stats give
// plain SVD.
#include <ATen/ATen.h>

#include "decompose/methods.h"

namespace rankrl::detail {

namespace {

constexpr double kRelativeFloor = 1e-6;

at::Tensor channel_scales(const at::Tensor& abs_mean, double alpha) {
  const at::Tensor a = abs_mean.to(at::kFloat);
  const double top = a.max().item<double>();
  if (top <= 0) return at::ones_like(a);
  return a.clamp_min(kRelativeFloor * top).pow(alpha);
}

class AsvdDecomposer final : public Decomposer {
 public:
  explicit AsvdDecomposer(double alpha) : alpha_(alpha) {}
  std::string name() const override { return "asvd"; }
  std::string spec() const override { return "asvd:alpha=" + format_number(alpha_); }
  bool needs_stats() const override { return true; }

  Factors decompose(const at::Tensor& W, const LinearStats* stats, int64_t max_rank) const override {
    const at::Tensor w = checked_weight(W, max_rank, spec());
    const LinearStats& st = require_stats(stats, w, {.abs_mean = true}, spec());
    const at::Tensor scaled = w * channel_scales(st.abs_mean, alpha_).unsqueeze(0);
    const ThinSvd svd = thin_svd(scaled, spec());
    Factors f = left_basis_factors(w, svd.U.narrow(1, 0, max_rank));
    f.tail_error = tail_errors(svd.S, max_rank);
    f.metric = "act_scaled_frobenius_sq";
    balance_to_float(f);
    return f;
  }

 private:
  double alpha_;
};

}  // namespace

std::unique_ptr<Decomposer> make_asvd(const Params& params) {
  params.allow_only({"alpha"});
  return std::make_unique<AsvdDecomposer>(params.get_double("alpha", 0.5, 0.0, 4.0));
}

}  // namespace rankrl::detail
