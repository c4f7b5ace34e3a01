// Linear: every projection weight of the transformer goes through this type, so that a weight
// can be swapped between its dense form y = x·Wᵀ + b and a low-rank form y = (x·Bᵀ)·Aᵀ + b
// (W ≈ A·B, A [out, r], B [r, in]) without the forward pass knowing which.
//
// Weights and factors are kept in their stored dtype (F32, or F16/BF16 straight from a memory-
// mapped checkpoint); forward() upcasts an F16/BF16 weight to float32 for the duration of the call
// only, so a BF16 model costs its BF16 bytes plus one weight's float32 copy at a time.
#pragma once
#include <ATen/Tensor.h>

#include <cstdint>
#include <string>

namespace rankrl {

// F16/BF16 → float32 (a copy); any other dtype (float32, or float64 in gradient checks) is returned
// as is, without a copy. What every stored weight goes through before it is used.
at::Tensor upcast_reduced(const at::Tensor& t);

class Linear {
 public:
  Linear() = default;
  // `weight` is [out, in] (may be a transposed view); `bias` is [out] or undefined.
  static Linear dense(std::string name, at::Tensor weight, at::Tensor bias = {});
  static Linear low_rank(std::string name, at::Tensor A, at::Tensor B, at::Tensor bias = {});

  at::Tensor forward(const at::Tensor& x) const;

  const std::string& name() const { return name_; }  // checkpoint name of the weight
  bool is_low_rank() const { return A_.defined(); }
  int64_t out_features() const { return out_; }
  int64_t in_features() const { return in_; }
  int64_t rank() const;                               // min(out, in) when dense
  int64_t parameters() const;                         // weight (or factors) + bias
  int64_t forward_flops_per_token() const;            // 2 multiply-adds per weight entry used

  // As stored (may be F16/BF16 views of the checkpoint's memory map: read-only, never modify in
  // place). weight() is undefined when low-rank; A()/B() when dense.
  const at::Tensor& weight() const { return weight_; }
  const at::Tensor& A() const { return A_; }
  const at::Tensor& B() const { return B_; }
  const at::Tensor& bias() const { return bias_; }
  at::ScalarType stored_type() const;  // of the weight, or of A when low-rank
  // The dense equivalent in float32 (for linear algebra): weight, or A·B for a low-rank layer.
  at::Tensor dense_weight() const;

  // Replaces this layer by factors (keeps the bias).
  void set_low_rank(at::Tensor A, at::Tensor B);
  void set_dense(at::Tensor weight);

 private:
  std::string name_;
  at::Tensor weight_, A_, B_, bias_;
  int64_t out_ = 0, in_ = 0;
};

}  // namespace rankrl
