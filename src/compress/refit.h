// Error-compensating refit of a compressed model's factored weights ("sequential" calibration,
// as GPTQ does for quantization (Frantar et al. 2023) and SVD-LLM's sequential update does for
// low rank). A factored weight was fitted to reproduce W·x on the *dense* model's inputs x; in
// the compressed model its inputs x̃ already carry the upstream layers' errors. Layer by layer,
// refit_compensated replaces every factored weight at its rank by
//     Ŵ = argmin_{rank r} Σ_t ‖W·x_t − Ŵ·x̃_t‖²,
// which also undoes part of the upstream error. Closed form: with G̃ = Σ x̃x̃ᵀ (+ ridge λ·I toward
// W), C = Σ x x̃ᵀ, the unconstrained solution W* = (W·C + λW)(G̃ + λI)⁻¹; with S̃S̃ᵀ = G̃ + λI,
// Ŵ = U_r U_rᵀ W* where U_r are the top r left singular vectors of W*·S̃ (Eckart–Young in the
// x̃-whitened norm). When x̃ = x and λ = 0 this is exactly SVD-LLM. Dense weights are untouched.
// Cost: weights that read the same input (q/k/v, gate/up) form one stage; each stage runs the
// dense and the compressed model over the calibration windows once (4 stages per Llama layer).
// Each pass runs the whole model (no early exit), and the ranks are the plan's: the refit does
// not revisit the method or the selection rule, it replaces their factors.
#pragma once
#include <cstdint>
#include <vector>

namespace rankrl {

class Transformer;

struct RefitStats {
  int64_t weights = 0;   // factored weights refitted
  int64_t passes = 0;    // forward passes over the calibration windows (dense + compressed)
  double seconds = 0.0;
};

// `net` is the compressed model (same architecture and weight names as `dense`); `ids` are the
// calibration tokens, cut into ⌊|ids|/ctx⌋ full windows. Observers of both models are cleared.
RefitStats refit_compensated(Transformer& dense, Transformer& net, const std::vector<int32_t>& ids, int64_t ctx);

}  // namespace rankrl
