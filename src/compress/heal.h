// Healing a compressed model on the calibration text.
//
// Closed form (--heal): projections are refitted in forward order, one group of layers sharing an
// input at a time (q/k/v, o, gate/up, down). For a factored layer W ≈ A·B with X_c the input the
// *compressed* model (upstream layers already healed) feeds it, A minimises ‖X_c·Bᵀ·Aᵀ − X_c·Wᵀ‖_F
// (the dense layer's outputs on the same inputs), B fixed. With G = X_cᵀX_c:
//     A = W·G·Bᵀ · (B·G·Bᵀ + λI)⁻¹,   λ = 1e-6 · tr(B·G·Bᵀ)/r  (a small ridge for rank-deficient G).
// The refit makes each layer correct the errors its upstream layers left, which plain
// per-layer decomposition (on the dense inputs) cannot.
//
// Gradient steps (--heal-steps N): then N Adam steps on every A and B, minimising the mean
// next-token NLL of the calibration windows.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <vector>

namespace rankrl {

class Transformer;

struct HealOptions {
  bool closed_form = true;
  int64_t steps = 0;
  double lr = 1e-3;
  int64_t ctx = 256;
  int64_t batch = 8;  // windows per gradient step
};

// `net` is the compressed model (modified in place); `dense` the original with the same names.
// Returns a report: per-layer relative output error before/after the refit, loss per step.
nlohmann::json heal(Transformer& net, const Transformer& dense, const std::vector<int32_t>& ids,
                    const HealOptions& opts);

}  // namespace rankrl
