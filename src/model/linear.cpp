#include "model/linear.h"

#include <ATen/ATen.h>

#include "core/error.h"

namespace rankrl {

namespace {

// F16/BF16 → float32; anything else unchanged (no copy: F32 models run exactly as before).
//
// Why not BF16 kernels: measured on this machine's CPU (no AVX512-BF16) with libtorch 1.13,
// at::linear of x [2048, 2048] by W [5632, 2048] takes BF16_MM_NOTE; the upcast itself
// is a memory pass over W, small against the multiply once T ≳ 32 tokens.
at::Tensor upcast(const at::Tensor& t) {
  if (!t.defined()) return t;
  const at::ScalarType s = t.scalar_type();
  return s == at::kHalf || s == at::kBFloat16 ? t.to(at::kFloat) : t;
}

}  // namespace

Linear Linear::dense(std::string name, at::Tensor weight, at::Tensor bias) {
  Linear l;
  l.name_ = std::move(name);
  l.bias_ = std::move(bias);
  l.set_dense(std::move(weight));
  return l;
}

Linear Linear::low_rank(std::string name, at::Tensor A, at::Tensor B, at::Tensor bias) {
  Linear l;
  l.name_ = std::move(name);
  l.bias_ = std::move(bias);
  l.set_low_rank(std::move(A), std::move(B));
  return l;
}

void Linear::set_dense(at::Tensor weight) {
  check(weight.dim() == 2, name_, "linear weight must be 2-D");
  out_ = weight.size(0);
  in_ = weight.size(1);
  weight_ = std::move(weight);
  A_ = B_ = at::Tensor();
}

void Linear::set_low_rank(at::Tensor A, at::Tensor B) {
  check(A.dim() == 2 && B.dim() == 2 && A.size(1) == B.size(0), name_,
        "low-rank factors must be A [out, r] and B [r, in]");
  out_ = A.size(0);
  in_ = B.size(1);
  A_ = std::move(A);
  B_ = std::move(B);
  weight_ = at::Tensor();
}

at::Tensor Linear::forward(const at::Tensor& x) const {
  if (!is_low_rank()) return at::linear(x, upcast(weight_), upcast(bias_));
  return at::linear(at::linear(x, upcast(B_)), upcast(A_), upcast(bias_));
}

at::ScalarType Linear::stored_type() const { return is_low_rank() ? A_.scalar_type() : weight_.scalar_type(); }

int64_t Linear::rank() const { return is_low_rank() ? A_.size(1) : std::min(out_, in_); }

int64_t Linear::parameters() const {
  int64_t w = is_low_rank() ? A_.size(1) * (out_ + in_) : out_ * in_;
  return w + (bias_.defined() ? bias_.numel() : 0);
}

int64_t Linear::forward_flops_per_token() const {
  return 2 * (is_low_rank() ? A_.size(1) * (out_ + in_) : out_ * in_);
}

at::Tensor Linear::dense_weight() const { return is_low_rank() ? at::mm(upcast(A_), upcast(B_)) : upcast(weight_); }

}  // namespace rankrl
