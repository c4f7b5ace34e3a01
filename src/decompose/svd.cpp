// Exact truncated SVD: the Eckart–Young–Mirsky optimum in Frobenius norm,
// error(r) = Σ_{i>r} σᵢ² (tail_error, metric "frobenius_sq").
#include <ATen/ATen.h>

#include "decompose/methods.h"

namespace rankrl::detail {

namespace {

class SvdDecomposer final : public Decomposer {
 public:
  std::string name() const override { return "svd"; }
  std::string spec() const override { return "svd"; }

  Factors decompose(const at::Tensor& W, const LinearStats*, int64_t max_rank) const override {
    const at::Tensor w = checked_weight(W, max_rank, spec());
    const ThinSvd svd = thin_svd(w, spec());
    Factors f;
    f.A = svd.U.narrow(1, 0, max_rank) * svd.S.narrow(0, 0, max_rank).unsqueeze(0);
    f.B = svd.Vh.narrow(0, 0, max_rank);
    f.tail_error = tail_errors(svd.S, max_rank);
    f.metric = "frobenius_sq";
    balance_to_float(f);
    return f;
  }
};

}  // namespace

std::unique_ptr<Decomposer> make_svd(const Params& params) {
  params.allow_only({});
  return std::make_unique<SvdDecomposer>();
}

}  // namespace rankrl::detail
