// Building blocks shared by the decomposition methods (internal to src/decompose): spec
// parsing, input checks, SVD with a float64 retry, tail errors, balancing and float32 output.
// Each method file only states its own mathematics; everything else lives here.
#pragma once
#include <ATen/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "decompose/decomposer.h"

namespace rankrl::detail {

// "method:key=value,key=value" with typed, range-checked lookups. Every error names the spec.
class Params {
 public:
  explicit Params(const std::string& spec);
  const std::string& method() const { return method_; }
  const std::string& spec() const { return spec_; }
  // Throws unless every given key is one of `known` (the message lists them).
  void allow_only(const std::vector<std::string>& known) const;
  int64_t get_int(const std::string& key, int64_t def, int64_t min, int64_t max) const;
  double get_double(const std::string& key, double def, double min, double max) const;
  std::string get_choice(const std::string& key, const std::string& def,
                         const std::vector<std::string>& choices) const;

 private:
  const std::string* find(const std::string& key) const;
  std::string spec_;
  std::string method_;
  std::map<std::string, std::string> values_;
};

// Shortest text that parses back to the same double ("0.5", "0.0001").
std::string format_number(double value);
std::string join(const std::vector<std::string>& items);

// Validates W (2-D, floating, finite, non-empty) and 1 ≤ max_rank ≤ min(m,n); returns W as a
// contiguous float32 tensor.
at::Tensor checked_weight(const at::Tensor& W, int64_t max_rank, const std::string& spec);

struct StatsNeeds {
  bool gram = false;
  bool abs_mean = false;
  bool fisher = false;
};
// Returns *stats after checking that it exists, has what `needs` asks for, matches W's shape
// and is finite; otherwise Error(spec, ...).
const LinearStats& require_stats(const LinearStats* stats, const at::Tensor& W, StatsNeeds needs,
                                 const std::string& spec);

struct ThinSvd {
  at::Tensor U;   // [m,p]
  at::Tensor S;   // [p] descending
  at::Tensor Vh;  // [p,n]
};
// Economy SVD in M's dtype; if LAPACK fails to converge, retries in float64 (gesvd-like cases
// where gesdd gives up on clustered spectra) before reporting Error(spec, ...).
ThinSvd thin_svd(const at::Tensor& M, const std::string& spec);

// S with S·Sᵀ = gram (float64 [n,n]): the Cholesky factor when it exists, else (rank-deficient
// or indefinite-by-rounding Gram) S = Q·diag(√max(λ, 1e-10·λ_max)) from the eigendecomposition;
// an all-zero Gram gives S = I. See svdllm.cpp for why the floor is harmless there.
at::Tensor whitening_factor(const at::Tensor& gram);

// tail[r] = Σ_{i≥r} σᵢ² + residual for r = 0..k: the closed-form error of keeping r components
// when `sigma` holds the singular values of the (weighted) matrix being truncated and
// `residual` the energy outside them (0 for an exact full SVD).
std::vector<double> tail_errors(const at::Tensor& sigma, int64_t k, double residual = 0.0);

// Exact error of every prefix, r = 0..k, in O(mnk + kn²) without forming an m×n residual:
// ‖W − A[:, :r]·B[:r, :]‖_F² when `gram` is undefined, else the output error
// ‖(W − A_rB_r)·Xᵀ‖_F² = tr(Δ·G·Δᵀ) with G = XᵀX. For methods without a closed form (cur, nmf)
// and for svdllm, whose whitened σ² carry the eigenvalue floor when the Gram is singular.
std::vector<double> prefix_errors(const at::Tensor& W, const at::Tensor& A, const at::Tensor& B,
                                  const at::Tensor& gram = {});

// Projection factors, used by the weighted SVDs. With U_k the top-k left singular vectors of
// W·S (any right weighting S), Ŵ = U_k·U_kᵀ·W is the minimiser of ‖(W−Ŵ)S‖_F over rank k and
// equals the papers' U_kΣ_kV_kᵀS⁻¹ (because U_kᵀWS = Σ_kV_kᵀ) without ever applying S⁻¹: no
// amplified rounding in badly conditioned directions, no dependence on how a singular S was
// regularised. Same for a left weighting D: Ŵ = W·V_k·V_kᵀ with V_k from D·W.
Factors left_basis_factors(const at::Tensor& W, const at::Tensor& U_k);   // A = U_k, B = U_kᵀW
Factors right_basis_factors(const at::Tensor& W, const at::Tensor& V_k);  // A = W·V_k, B = V_kᵀ

// Rescales every component so that ‖A[:,i]‖ = ‖B[i,:]‖ (zero components stay zero) and casts
// both factors to contiguous float32.
void balance_to_float(Factors& f);

}  // namespace rankrl::detail
