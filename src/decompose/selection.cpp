#include "decompose/selection.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace rankrl {

Selection parse_selection(const std::string& text) {
  if (text == "top") return Selection::top;
  if (text == "importance") return Selection::importance;
  throw Error(text, "unknown component selection; known: top, importance");
}

const char* selection_name(Selection rule) { return rule == Selection::top ? "top" : "importance"; }

std::vector<double> component_output_energy(const Factors& factors, const LinearStats& stats) {
  check(stats.gram.defined(), "", "importance selection needs stats.gram");
  validate_stats(stats, -1, factors.B.size(1), "");
  const at::Tensor B = factors.B.to(at::kDouble);
  const at::Tensor through_gram = (at::matmul(B, stats.gram) * B).sum(1);  // B_i·G·B_iᵀ
  const at::Tensor a_energy = factors.A.to(at::kDouble).square().sum(0);   // ‖A_i‖²
  const at::Tensor energy = (a_energy * through_gram).contiguous();
  return {energy.data_ptr<double>(), energy.data_ptr<double>() + energy.numel()};
}

std::vector<int64_t> select_components(const Factors& factors, int64_t r, Selection rule,
                                       const LinearStats* stats) {
  const int64_t k = factors.rank();
  check(r >= 0 && r <= k, "", "cannot select " + std::to_string(r) + " of " + std::to_string(k) + " components");
  if (rule == Selection::importance) {
    check(stats != nullptr, "", "importance selection needs calibration statistics");
    return select_by_energy(component_output_energy(factors, *stats), r);
  }
  std::vector<int64_t> idx(k);
  std::iota(idx.begin(), idx.end(), 0);
  idx.resize(r);
  return idx;
}

std::vector<int64_t> select_by_energy(const std::vector<double>& energy, int64_t r) {
  check(r >= 0 && r <= int64_t(energy.size()), "", "cannot select " + std::to_string(r) + " of " + std::to_string(energy.size()) + " components");
  std::vector<int64_t> idx(energy.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return energy[a] > energy[b]; });
  idx.resize(r);
  return idx;
}

Factors slice(const Factors& factors, const std::vector<int64_t>& idx) {
  const int64_t k = factors.rank();
  for (int64_t i : idx) check(i >= 0 && i < k, "", "component index " + std::to_string(i) + " out of range");
  const at::Tensor index = at::tensor(idx, at::kLong);
  Factors out = factors;
  out.A = factors.A.index_select(1, index).contiguous();
  out.B = factors.B.index_select(0, index).contiguous();
  bool is_prefix = true;
  for (size_t i = 0; i < idx.size(); ++i) is_prefix = is_prefix && idx[i] == static_cast<int64_t>(i);
  if (is_prefix && !factors.tail_error.empty())
    out.tail_error.assign(factors.tail_error.begin(), factors.tail_error.begin() + idx.size() + 1);
  else
    out.tail_error.clear();
  return out;
}

}  // namespace rankrl
