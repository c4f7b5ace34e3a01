// Healing a compressed model on the calibration text.
//
// Closed form (--heal): projections are refitted in forward order, one group of layers sharing an
// input at a time (q/k/v, o, gate/up, down). For a factored layer W ≈ A·B with X_c the input the
// *compressed* model (upstream layers already healed) feeds it, A minimises ‖X_c·Bᵀ·Aᵀ − X_c·Wᵀ‖_F
// (the dense layer's outputs on the same inputs), B fixed. With G = X_cᵀX_c:
//     A = W·G·Bᵀ · (B·G·Bᵀ + λI)⁻¹,   λ = 1e-6 · tr(B·G·Bᵀ)/r  (a small ridge for rank-deficient G).
// The refit fits each layer to the inputs the compressed model really feeds it, which plain
// per-layer decomposition (on the dense inputs) cannot; its target is still W on those inputs, so
// it does not undo what the upstream layers got wrong.
//
// Compensating closed form (compensate = true, --heal-compensate): A and B are refitted together,
// at the layer's rank, to the *dense model's* outputs: Ŵ = argmin_{rank r} Σ‖W·x − Ŵ·x̃‖², x the
// input the dense model feeds the layer, x̃ the compressed one's (sequential calibration, as GPTQ
// does for quantization; a reduced-rank regression). With G̃ = Σ x̃x̃ᵀ, C = Σ x x̃ᵀ and a small ridge
// λ toward W: W* = (W·C + λW)(G̃ + λI)⁻¹ is the full-rank solution, and Ŵ = U_r·U_rᵀ·W* with U_r the
// top r left singular vectors of W*·S̃, S̃S̃ᵀ = G̃ + λI (Eckart–Young in the x̃-whitened norm). Where
// x̃ = x it is SVD-LLM's factorization; downstream it also corrects the upstream layers' errors.
// The report's errors are then Σ‖W·x − Ŵ·x̃‖² / Σ‖W·x‖².
//
// Gradient steps (--heal-steps N): then N Adam steps on every A and B, minimising the mean
// next-token NLL of the calibration windows.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rankrl {

class Transformer;
struct CalibStats;
struct HiddenStates;

struct HealOptions {
  bool closed_form = true;
  int64_t steps = 0;
  double lr = 1e-3;
  int64_t ctx = 256;
  int64_t batch = 8;  // windows per gradient step
  bool compensate = false;  // closed form: A and B to the dense outputs (see above), not A alone
};

// `net` is the compressed model (modified in place); `dense` the original with the same names
// (its weights are only read; its observer is set and cleared while the compensating form runs).
// Returns a report: per-layer relative output error before/after the refit, loss per step.
// Runs the closed form (whole-model forwards: every group re-runs the model from the embedding,
// so its cost grows with the square of the depth) and then the gradient steps.
nlohmann::json heal(Transformer& net, Transformer& dense, const std::vector<int32_t>& ids,
                    const HealOptions& opts);

// The closed form for one decoder layer, as layer-streamed compression runs it: the factored
// linears of layer `layer` of `net` are refitted group by group (linears sharing an input, by
// `shared_input`: weight -> owner as in CalibStats), in forward order, from `compressed` (the
// hidden states the compressed and healed model feeds that layer). With `dense_in` (the hidden
// states the dense model feeds it) the compensating form, else the A-only refit. Appends one
// report entry per refitted weight to `layers`. The same refit as heal()'s for that layer.
// `dense_stats`: this layer's statistics taken on `dense_in` itself (optional); their Grams stand
// in for Σ x xᵀ, which is then not recomputed.
void heal_layer(Transformer& net, Transformer& dense, int64_t layer, const HiddenStates& compressed,
                const HiddenStates* dense_in, const std::map<std::string, std::string>& shared_input,
                nlohmann::json& layers, const CalibStats* dense_stats = nullptr);

}  // namespace rankrl
