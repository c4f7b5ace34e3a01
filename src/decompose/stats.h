// Calibration statistics of one linear layer's input, as consumed by the data-aware
// decomposition methods (asvd, svdllm, fwsvd, importance selection). Produced by calib/
// (streamed through StatsAccumulator; the activations themselves are never held).
#pragma once
#include <ATen/Tensor.h>

#include <cstdint>
#include <string>

namespace rankrl {

struct LinearStats {
  at::Tensor gram;      // [n,n] float64: XᵀX summed over calibration tokens
  at::Tensor abs_mean;  // [n] float32: mean |x| per input channel
  at::Tensor fisher;    // optional [m,n] float32: diagonal empirical Fisher of W (sum of
                        // squared gradients); undefined when absent
  at::Tensor out_gram;  // optional [m,m] float64: Σ over calibration tokens of g·gᵀ, g = ∂(mean
                        // next-token NLL over all calibration tokens)/∂(this linear's output at
                        // that token); ½·tr(Eᵀ·out_gram·E·gram) is the K-FAC estimate of the mean
                        // NLL increase when W becomes W − E (search/loss_estimate.h); undefined
                        // when absent
  int64_t tokens = 0;
};

// Throws Error(name, ...) unless the stats are shaped for a weight with `n` input channels
// (and `m` outputs when fisher is present; pass m < 0 to skip that check), typed as documented
// above, and free of NaN/Inf. Undefined gram/abs_mean are accepted (not every method needs them).
void validate_stats(const LinearStats& stats, int64_t m, int64_t n, const std::string& name);

// Streams calibration batches into LinearStats. The Gram is accumulated in float64 (addmm):
// a float32 sum over ~1e5-1e6 tokens would lose the small eigenvalues that whitening depends on.
class StatsAccumulator {
 public:
  explicit StatsAccumulator(int64_t in_features, std::string name = "");

  // x: [..., n] float32 activations (any leading shape); NaN/Inf → Error.
  void add(const at::Tensor& x);
  // grad_w: [m,n] gradient of the weight for one sample (or micro-batch); accumulates grad².
  void add_weight_grad(const at::Tensor& grad_w);

  int64_t tokens() const { return tokens_; }
  // The statistics so far (tensors are copies; the accumulator may keep streaming).
  LinearStats finish() const;

 private:
  int64_t n_;
  std::string name_;
  int64_t tokens_ = 0;
  at::Tensor gram_;     // [n,n] float64
  at::Tensor abs_sum_;  // [n] float64
  at::Tensor fisher_;   // [m,n] float64, undefined until the first gradient
};

}  // namespace rankrl
