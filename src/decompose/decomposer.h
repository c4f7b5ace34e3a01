// One interface for every low-rank factorization of a linear weight W [out=m, in=n] (y = x·Wᵀ):
//   W ≈ A·B,  A [m,k], B [k,n], k = max_rank.
// Components are ORDERED: for every r ≤ k the slice A[:, :r]·B[:r, :] is the method's rank-r
// approximation, so one factorization at the largest rank of interest serves all smaller ranks.
//
// Scale split (all methods): components are BALANCED, ‖A[:,i]‖₂ = ‖B[i,:]‖₂. For plain SVD that
// is √σᵢ on both sides (A = U√Σ, B = √ΣVᵀ). Balancing keeps both factors in the same range
// (friendlier to float16/quantized storage) and does not change any product or any selection
// score. semi-NMF keeps B ≥ 0 (scaling by positive numbers preserves it).
#pragma once
#include <ATen/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "decompose/stats.h"

namespace rankrl {

struct Factors {
  at::Tensor A;                // [m,k] float32
  at::Tensor B;                // [k,n] float32
  at::Tensor bias_correction;  // optional [m] float32 (no current method produces one)
  // Optional: tail_error[r] = error of keeping the first r components (size k+1), in the
  // method's own metric (named by `metric`): closed form where one exists (discarded σ²),
  // otherwise computed exactly from the factors. Metrics: "frobenius_sq" ‖W−Ŵ_r‖_F² (svd,
  // rsvd, cur:weight=none, nmf), "output_sq" ‖(W−Ŵ_r)Xᵀ‖_F² (svdllm, cur:weight=gram), "act_scaled_frobenius_sq"
  // ‖(W−Ŵ_r)·diag(s)‖_F² (asvd; cur:weight=act with s = mean|x|), "fisher_input_weighted_sq"
  // Σⱼ Jⱼ²‖(W−Ŵ_r)₍:,ⱼ₎‖² (fwsvd, Jⱼ² = Σᵢ fisherᵢⱼ).
  std::vector<double> tail_error;
  std::string metric;
  // Optional: objective after each iteration of an iterative method (nmf), first entry = init.
  std::vector<double> loss_history;

  int64_t rank() const;
};

class Decomposer {
 public:
  virtual ~Decomposer();
  virtual std::string name() const = 0;
  // Canonical spec including every parameter, e.g. "rsvd:oversample=10,iters=2,seed=0";
  // make_decomposer(d.spec()) rebuilds an equal decomposer.
  virtual std::string spec() const = 0;
  virtual bool needs_stats() const;   // gram and/or abs_mean
  virtual bool needs_fisher() const;  // stats->fisher
  // W: [m,n] floating, finite. 1 ≤ max_rank ≤ min(m,n). stats: may be null unless needed.
  // Throws rankrl::Error(spec(), ...) on bad input; never fails on valid input.
  virtual Factors decompose(const at::Tensor& W, const LinearStats* stats, int64_t max_rank) const = 0;
};

// "method[:key=value[,key=value...]]", e.g. "svd", "rsvd:oversample=10,iters=2,seed=0",
// "asvd:alpha=0.5", "svdllm", "fwsvd", "cur:select=deim,core=rows,weight=gram", "nmf:iters=200,tol=1e-4".
// Unknown method or parameter, or a bad value → Error(spec, ...) listing what is known.
std::unique_ptr<Decomposer> make_decomposer(const std::string& spec);
std::vector<std::string> known_methods();

}  // namespace rankrl
