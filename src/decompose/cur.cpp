// CUR: W ≈ C·U·R with C = W[:, J] (actual columns) and R = W[I, :] (actual rows).
// Selection (both from the top-k singular vectors of W, or of W·diag(mean|x|) with weight=act
// so that columns fed by large activations are favoured):
//   select=deim     DEIM, Sorensen & Embree 2016 ("A DEIM induced CUR factorization"),
//                   deterministic; computed as the row pivots of a partially pivoted LU of U_k
//                   (resp. V_k), which is exactly the DEIM greedy (Chaturantabut & Sorensen 2010).
//   select=leverage the k largest leverage scores ‖U_k[i,:]‖² (Papailiopoulos et al. 2014),
//                   deterministic.
// Ordering / prefix property: the i-th component pairs the i-th selected column with the i-th
// selected row (selection order: DEIM order, or decreasing leverage). The optimal core
// C⁺·W·R⁺ cannot be nested — going from r to r+1 column/row pairs changes the optimal product by
// a rank-2 term — so we return the nested cross (skeleton) CUR of Goreinov, Tyrtyshnikov &
// Zamarashkin 1997: prefix r = C_r·W[I_r,J_r]⁻¹·R_r, for every r. With W[I,J] = L·D·Û (LDU
// without pivoting, in selection order): A = C·Û⁻¹·D⁻¹ and B = L⁻¹·R; Û⁻¹ upper and L⁻¹ lower
// triangular keep every prefix inside the first r columns/rows. Each prefix interpolates W
// exactly on its selected rows and columns and is exact when rank(W) ≤ r. A pivot that
// vanishes (selected row/column already explained by the previous ones) yields a zero
// component. tail_error = exact ‖W − Ŵ_r‖_F² (metric "frobenius_sq").
#include <ATen/ATen.h>

#include "core/error.h"
#include "decompose/methods.h"

namespace rankrl::detail {

namespace {

constexpr double kPivotTolerance = 1e-10;  // relative to max |W[I,J]|

// First k row pivots of the partially pivoted LU of basis [p,k] (p ≥ k) = the DEIM indices.
at::Tensor deim_indices(const at::Tensor& basis) {
  const int64_t p = basis.size(0), k = basis.size(1);
  auto [lu, pivots] = at::linalg_lu_factor(basis.to(at::kDouble));
  const at::Tensor piv = pivots.to(at::kLong).contiguous();
  const int64_t* swap_with = piv.data_ptr<int64_t>();
  std::vector<int64_t> perm(p);
  for (int64_t i = 0; i < p; ++i) perm[i] = i;
  for (int64_t i = 0; i < k; ++i) std::swap(perm[i], perm[swap_with[i] - 1]);  // LAPACK: 1-based
  return at::tensor(std::vector<int64_t>(perm.begin(), perm.begin() + k), at::kLong);
}

at::Tensor leverage_indices(const at::Tensor& basis) {
  return std::get<1>(at::topk(basis.square().sum(1), basis.size(1)));
}

struct Ldu {
  at::Tensor L;      // unit lower
  at::Tensor d_inv;  // 1/pivot, 0 for a vanished pivot
  at::Tensor U;      // unit upper
};

// Gaussian elimination without pivoting (the order IS the selection order), float64.
Ldu ldu_no_pivoting(at::Tensor X) {
  const int64_t k = X.size(0);
  const double tol = kPivotTolerance * X.abs().max().item<double>();
  Ldu f{at::eye(k, X.options()), at::zeros({k}, X.options()), at::eye(k, X.options())};
  for (int64_t t = 0; t < k; ++t) {
    const double pivot = X[t][t].item<double>();
    if (std::abs(pivot) <= tol) continue;
    f.d_inv[t] = 1.0 / pivot;
    if (t + 1 == k) break;
    const at::Tensor col = X.narrow(0, t + 1, k - t - 1).select(1, t) / pivot;
    const at::Tensor row = X.select(0, t).narrow(0, t + 1, k - t - 1);
    f.L.narrow(0, t + 1, k - t - 1).select(1, t).copy_(col);
    f.U.select(0, t).narrow(0, t + 1, k - t - 1).copy_(row / pivot);
    X.narrow(0, t + 1, k - t - 1).narrow(1, t + 1, k - t - 1).addr_(col, row, 1.0, -1.0);
  }
  return f;
}

Factors cross_factors(const at::Tensor& w, const at::Tensor& rows, const at::Tensor& cols) {
  const at::Tensor C = w.index_select(1, cols).to(at::kDouble);
  const at::Tensor R = w.index_select(0, rows).to(at::kDouble);
  const Ldu ldu = ldu_no_pivoting(C.index_select(0, rows));
  Factors f;
  f.A = at::linalg_solve_triangular(ldu.U, C, /*upper=*/true, /*left=*/false, /*unitriangular=*/true) *
        ldu.d_inv.unsqueeze(0);
  f.B = at::linalg_solve_triangular(ldu.L, R, /*upper=*/false, /*left=*/true, /*unitriangular=*/true);
  return f;
}

class CurDecomposer final : public Decomposer {
 public:
  CurDecomposer(std::string select, std::string weight) : select_(std::move(select)), weight_(std::move(weight)) {}
  std::string name() const override { return "cur"; }
  std::string spec() const override { return "cur:select=" + select_ + ",weight=" + weight_; }
  bool needs_stats() const override { return weight_ == "act"; }

  Factors decompose(const at::Tensor& W, const LinearStats* stats, int64_t max_rank) const override {
    const at::Tensor w = checked_weight(W, max_rank, spec());
    at::Tensor guide = w;
    if (weight_ == "act")
      guide = w * require_stats(stats, w, {.abs_mean = true}, spec()).abs_mean.unsqueeze(0);
    const ThinSvd svd = thin_svd(guide, spec());
    const auto pick = select_ == "deim" ? deim_indices : leverage_indices;
    Factors f = cross_factors(w, pick(svd.U.narrow(1, 0, max_rank)), pick(svd.Vh.narrow(0, 0, max_rank).t()));
    f.tail_error = prefix_errors(w, f.A, f.B);
    f.metric = "frobenius_sq";
    balance_to_float(f);
    return f;
  }

 private:
  std::string select_, weight_;
};

}  // namespace

std::unique_ptr<Decomposer> make_cur(const Params& params) {
  params.allow_only({"select", "weight"});
  return std::make_unique<CurDecomposer>(params.get_choice("select", "deim", {"deim", "leverage"}),
                                         params.get_choice("weight", "none", {"none", "act"}));
}

}  // namespace rankrl::detail
