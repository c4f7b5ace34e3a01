// Component selection: which r of the k ordered components of a Factors to keep.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "decompose/decomposer.h"

namespace rankrl {

enum class Selection {
  top,         // the first r components (each method's own order)
  importance,  // the r components with the largest output energy on the calibration data
};

// "top" | "importance"; anything else → Error(text, ...).
Selection parse_selection(const std::string& text);
const char* selection_name(Selection rule);

// Output energy of each component on the calibration data: component i maps x to
// A_i·(B_i·x), so over the calibration tokens ‖X·B_iᵀ·A_iᵀ‖_F² = ‖A_i‖₂²·(B_i·G·B_iᵀ) with
// G = XᵀX: exact, and independent of how the method split scales between A and B.
// Needs stats->gram ([n,n] float64). Returns k float64 scores.
std::vector<double> component_output_energy(const Factors& factors, const LinearStats& stats);

// Indices of the r components to keep (0 ≤ r ≤ k). top: 0..r−1. importance: the r largest
// output energies, ordered by decreasing energy (ties → lower index first) so that a slice of
// the result is again ordered. Needs stats with a gram for importance (else Error).
std::vector<int64_t> select_components(const Factors& factors, int64_t r, Selection rule,
                                       const LinearStats* stats);
// The importance rule on output energies computed beforehand (component_output_energy of the same
// factors): the r largest, ordered as select_components orders them.
std::vector<int64_t> select_by_energy(const std::vector<double>& energy, int64_t r);

// The factors restricted to `idx` (in that order). tail_error survives only when idx is the
// prefix 0..r−1 (the closed form no longer applies to other subsets); loss_history, metric and
// bias_correction are kept as they are.
Factors slice(const Factors& factors, const std::vector<int64_t>& idx);

}  // namespace rankrl
