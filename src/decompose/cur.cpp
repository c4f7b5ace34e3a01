// CUR-type decompositions: W is approximated from actual columns C = W[:, J] and/or actual rows
// R = W[I, :] of W. Selection from the top-k singular vectors of W (or of a data-weighted W·S):
//   select=deim     DEIM, Sorensen & Embree 2016 ("A DEIM induced CUR factorization"),
//                   deterministic; the row pivots of a partially pivoted LU of the singular
//                   vectors, which is exactly the DEIM greedy (Chaturantabut & Sorensen 2010).
//   select=leverage the k largest leverage scores ‖V_k[j,:]‖² (Papailiopoulos et al. 2014).
// Component i belongs to the i-th selected column/row (selection order: DEIM order, or
// decreasing leverage).
//
// Budget: every form is stored as dense factors A [m,r], B [r,n] like any other method (the core
// is folded into A), so rank r costs r·(m+n), exactly the SVD's budget. Constraining BOTH sides
// to actual columns and rows (the classic C·U·R) therefore buys no storage and costs accuracy:
// on stories260K at keep 0.6 (rank ≈ 0.3·min(m,n)) the two-sided form had relative Frobenius
// error 0.43 (held-out ppl 190,314) where columns only had 0.31 (2,998), rows only 0.28 (2,402)
// and svd 0.20 (1,206). Hence the default is one-sided and data-aware:
//   core=rows (default)  row skeleton (interpolative decomposition): prefix r = A_r·R_r with R_r
//                   the first r selected rows and A_r the least-squares coefficients in the data
//                   metric: with weight=gram (default) A_r minimises ‖(W − A_r·R_r)·Xᵀ‖_F, i.e.
//                   Ŵ_r = W·G·R_rᵀ(R_r·G·R_rᵀ)⁻¹·R_r (G = XᵀX), the G-orthogonal projection of W's
//                   rows onto span(R_r). Rows are chosen by DEIM/leverage on U_k of W·S (S·Sᵀ = G,
//                   the SVD-LLM whitening), i.e. the output channels that matter for the layer's
//                   output. Nested form: Q·T = (R·S)ᵀ (QR), A = W·S·Q, B = T⁻ᵀ·R (B·G·Bᵀ = I,
//                   rows of B span the same prefixes as the rows of R). stories260K keep 0.6:
//                   output error 0.033 of ‖W·Xᵀ‖² (svd 0.034, svdllm 0.021), held-out ppl 431.
//                   weight=act uses S = diag(mean|x|), weight=none S = I (Frobenius metric).
//   core=optimal    prefix r = C_r·(C_r⁺·W·R⁺)·R: r columns, the k rows I (on U_k), the optimal
//                   core of that CUR. A = orth(C) in selection order (QR: span of the first r
//                   columns of A = span C_r), B = Aᵀ·W·P_R. Equals the Sorensen–Embree DEIM-CUR
//                   at r = k. The optimal core C_r⁺·W·R_r⁺ itself cannot be nested in r for r
//                   columns AND r rows (going from r to r+1 pairs changes it by a rank-2 term).
//   core=cross      prefix r = C_r·W[I_r,J_r]⁻¹·R_r (skeleton, Goreinov, Tyrtyshnikov &
//                   Zamarashkin 1997): r columns and r rows, reproduces them exactly. Rows are
//                   DEIM on C itself (partially pivoted LU of C, P·C = L·U), which keeps every
//                   cross W[I_r,J_r] well conditioned: A = Pᵀ·L (|entries| ≤ 1),
//                   B = L[:k,:k]⁻¹·R. Rows from U_k instead gave ‖W−Ŵ‖ > ‖W‖ on a 1/i spectrum.
//                   Typically ~3x the error of core=optimal at the same rank (1/i spectrum).
// For optimal/cross, weight=act selects columns on W·diag(mean|x|) (favouring columns fed by
// large activations); weight=gram is only defined for core=rows (columns of W·S are not columns
// of W). The default weight is gram for core=rows and none for the two-sided forms.
// All forms are exact when rank(W) ≤ r. A selected column/row that is numerically a combination
// of the earlier ones (pivot ≤ 1e-10·max; with DEIM only when rank(W) < k, with leverage also
// for repeated rows/columns) ends the useful prefix: it and all later components are zero.
// tail_error = exact error of every prefix in the core's metric: "output_sq" (rows, gram),
// "act_scaled_frobenius_sq" with s = mean|x| (rows, act), "frobenius_sq" otherwise.
#include <ATen/ATen.h>

#include "decompose/methods.h"

namespace rankrl::detail {

namespace {

constexpr double kPivotTolerance = 1e-10;
constexpr double kActFloor = 1e-6;  // mean|x| below 1e-6·max counts as that floor (as asvd)

// Row order chosen by the partially pivoted LU of M [p,k] (p ≥ k): order[i] = original row
// at position i. Its first k entries are the DEIM indices of M.
std::vector<int64_t> pivot_order(const at::Tensor& lu_pivots, int64_t p) {
  const at::Tensor piv = lu_pivots.to(at::kLong).contiguous();
  const int64_t* swap_with = piv.data_ptr<int64_t>();
  std::vector<int64_t> order(p);
  for (int64_t i = 0; i < p; ++i) order[i] = i;
  for (int64_t i = 0; i < piv.numel(); ++i) std::swap(order[i], order[swap_with[i] - 1]);  // 1-based
  return order;
}

at::Tensor first(const std::vector<int64_t>& order, int64_t k) {
  return at::tensor(at::IntArrayRef(order.data(), k), at::kLong);
}

at::Tensor deim_indices(const at::Tensor& basis) {
  const auto [lu, pivots] = at::linalg_lu_factor(basis.to(at::kDouble));
  return first(pivot_order(pivots, basis.size(0)), basis.size(1));
}

at::Tensor leverage_indices(const at::Tensor& basis) {
  return std::get<1>(at::topk(basis.square().sum(1), basis.size(1)));
}

// Zeroes components useful.. of f, where `useful` = the first pivot ≤ tolerance (see top).
void drop_after_degenerate_pivot(Factors& f, const at::Tensor& pivots) {
  const at::Tensor magnitude = pivots.abs();
  const at::Tensor ok = magnitude > kPivotTolerance * magnitude.max();
  const int64_t useful = ok.to(at::kLong).cumprod(0).sum().item<int64_t>(), k = ok.numel();
  f.A.narrow(1, useful, k - useful).zero_();
  f.B.narrow(0, useful, k - useful).zero_();
}

// prefix r = C_r·C_r⁺·W·P_R (see top).
Factors optimal_core_factors(const at::Tensor& w, const at::Tensor& rows, const at::Tensor& cols,
                             const std::string& spec) {
  const at::Tensor W = w.to(at::kDouble);
  const auto [Qc, Tc] = at::linalg_qr(W.index_select(1, cols), "reduced");
  const ThinSvd r_svd = thin_svd(W.index_select(0, rows), spec);  // orthonormal basis of span(R)
  const at::Tensor keep = r_svd.S > kPivotTolerance * r_svd.S.max();
  const at::Tensor row_basis = r_svd.Vh * keep.unsqueeze(1).to(at::kDouble);
  Factors f;
  f.A = Qc;
  f.B = at::matmul(at::matmul(at::matmul(Qc.t(), W), row_basis.t()), row_basis);
  drop_after_degenerate_pivot(f, Tc.diagonal());
  return f;
}

// prefix r = C_r·W[I_r,J_r]⁻¹·R_r, rows by partial pivoting on C (see top).
Factors cross_factors(const at::Tensor& w, const at::Tensor& cols) {
  const at::Tensor C = w.index_select(1, cols).to(at::kDouble);
  const int64_t m = C.size(0), k = C.size(1);
  const auto [lu, pivots] = at::linalg_lu_factor(C);
  const std::vector<int64_t> order = pivot_order(pivots, m);
  const at::Tensor L = at::tril(lu, -1) + at::eye(m, k, C.options());
  Factors f;
  f.A = at::empty_like(L).index_copy_(0, at::tensor(order, at::kLong), L);
  const at::Tensor R = w.index_select(0, first(order, k)).to(at::kDouble);
  f.B = at::linalg_solve_triangular(L.narrow(0, 0, k), R, /*upper=*/false, /*left=*/true, /*unitriangular=*/true);
  drop_after_degenerate_pivot(f, lu.diagonal());
  return f;
}

// Row skeleton in the metric S·Sᵀ (S undefined: identity), see top.
Factors row_skeleton_factors(const at::Tensor& w, const at::Tensor& S, int64_t k,
                             at::Tensor (*pick)(const at::Tensor&), const std::string& spec) {
  const at::Tensor W = w.to(at::kDouble);
  const at::Tensor guide = S.defined() ? at::matmul(W, S) : W;
  const at::Tensor rows = pick(thin_svd(guide, spec).U.narrow(1, 0, k));
  const auto [Q, T] = at::linalg_qr(guide.index_select(0, rows).t(), "reduced");  // (R·S)ᵀ = Q·T
  Factors f;
  f.A = at::matmul(guide, Q);
  f.B = at::linalg_solve_triangular(T.t(), W.index_select(0, rows), /*upper=*/false);
  drop_after_degenerate_pivot(f, T.diagonal());
  return f;
}

class CurDecomposer final : public Decomposer {
 public:
  CurDecomposer(std::string select, std::string core, std::string weight)
      : select_(std::move(select)), core_(std::move(core)), weight_(std::move(weight)) {}
  std::string name() const override { return "cur"; }
  std::string spec() const override {
    return "cur:select=" + select_ + ",core=" + core_ + ",weight=" + weight_;
  }
  bool needs_stats() const override { return weight_ != "none"; }

  Factors decompose(const at::Tensor& W, const LinearStats* stats, int64_t max_rank) const override {
    const at::Tensor w = checked_weight(W, max_rank, spec());
    const auto pick = select_ == "deim" ? deim_indices : leverage_indices;
    if (core_ == "rows") return rows_core(w, stats, max_rank, pick);
    at::Tensor guide = w;
    if (weight_ == "act")
      guide = w * require_stats(stats, w, {.abs_mean = true}, spec()).abs_mean.unsqueeze(0);
    const ThinSvd svd = thin_svd(guide, spec());
    const at::Tensor cols = pick(svd.Vh.narrow(0, 0, max_rank).t());
    Factors f = core_ == "cross" ? cross_factors(w, cols)
                                 : optimal_core_factors(w, pick(svd.U.narrow(1, 0, max_rank)), cols, spec());
    f.tail_error = prefix_errors(w, f.A, f.B);
    f.metric = "frobenius_sq";
    balance_to_float(f);
    return f;
  }

 private:
  Factors rows_core(const at::Tensor& w, const LinearStats* stats, int64_t k,
                    at::Tensor (*pick)(const at::Tensor&)) const {
    at::Tensor S, gram;  // metric square root and its Gram (undefined: Frobenius)
    if (weight_ == "gram") {
      gram = require_stats(stats, w, {.gram = true}, spec()).gram;
      S = whitening_factor(gram);
    } else if (weight_ == "act") {
      const at::Tensor a = require_stats(stats, w, {.abs_mean = true}, spec()).abs_mean.to(at::kDouble);
      const double top = a.max().item<double>();
      const at::Tensor s = top > 0 ? a.clamp_min(kActFloor * top) : at::ones_like(a);
      S = at::diag(s);
      gram = at::diag(s.square());
    }
    Factors f = row_skeleton_factors(w, S, k, pick, spec());
    f.tail_error = prefix_errors(w, f.A, f.B, gram);
    f.metric = weight_ == "gram" ? "output_sq" : weight_ == "act" ? "act_scaled_frobenius_sq" : "frobenius_sq";
    balance_to_float(f);
    return f;
  }

  std::string select_, core_, weight_;
};

}  // namespace

std::unique_ptr<Decomposer> make_cur(const Params& params) {
  params.allow_only({"select", "core", "weight"});
  const std::string core = params.get_choice("core", "rows", {"rows", "optimal", "cross"});
  const std::string weight = core == "rows" ? params.get_choice("weight", "gram", {"gram", "act", "none"})
                                            : params.get_choice("weight", "none", {"none", "act"});
  return std::make_unique<CurDecomposer>(params.get_choice("select", "deim", {"deim", "leverage"}), core, weight);
}

}  // namespace rankrl::detail
