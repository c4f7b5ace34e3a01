#include "model/linear.h"

#include <ATen/ATen.h>

#include "core/error.h"

namespace rankrl {

// F16/BF16 → float32; anything else unchanged (no copy: F32 models run exactly as before).
//
// Why not BF16 kernels, measured with libtorch 1.13 on this machine's CPU (AMD EPYC with
// AVX512-BF16, one thread, other jobs running), at::linear of x [T, 2048] by W [5632, 2048],
// error = max |y − y_float64| with max |y| ≈ 4-5:
//   T      float32   upcast W + float32   BF16 x and W   error upcast   error BF16
//   1      0.021 s   0.104 s              0.005 s        0.0055         0.011
//   512    0.302 s   0.482 s              0.100 s        0.0075         0.017
//   2048   1.561 s   1.625 s              0.404 s        0.0088         0.017
// BF16 kernels are ~4x faster but round the activations and the outputs to 8-bit mantissas
// too (twice the error of rounding the weights alone, and results that differ from an F32
// model's), so rankrl keeps float32 math: the upcast costs ~4% at T = 2048, much more for
// one-token decoding (generate).
at::Tensor upcast_reduced(const at::Tensor& t) {
  if (!t.defined()) return t;
  const at::ScalarType s = t.scalar_type();
  return s == at::kHalf || s == at::kBFloat16 ? t.to(at::kFloat) : t;
}

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
  if (!is_low_rank()) return at::linear(x, upcast_reduced(weight_), upcast_reduced(bias_));
  return at::linear(at::linear(x, upcast_reduced(B_)), upcast_reduced(A_), upcast_reduced(bias_));
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

at::Tensor Linear::dense_weight() const { return is_low_rank() ? at::mm(upcast_reduced(A_), upcast_reduced(B_)) : upcast_reduced(weight_); }

}  // namespace rankrl
