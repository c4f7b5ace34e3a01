#include "decompose/stats.h"

#include <ATen/ATen.h>

#include "core/error.h"

namespace rankrl {

namespace {

bool all_finite(const at::Tensor& t) { return at::isfinite(t).all().item<bool>(); }

std::string shape_str(at::IntArrayRef sizes) {
  std::string s = "[";
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? "," : "") + std::to_string(sizes[i]);
  return s + "]";
}

void check_tensor(const at::Tensor& t, const char* what, std::vector<int64_t> shape,
                  at::ScalarType dtype, const std::string& name) {
  if (!t.defined()) return;
  check(t.sizes() == at::IntArrayRef(shape), name,
        std::string("stats.") + what + " has shape " + shape_str(t.sizes()) + ", expected " + shape_str(shape));
  check(t.scalar_type() == dtype, name,
        std::string("stats.") + what + " has dtype " + c10::toString(t.scalar_type()) +
            ", expected " + c10::toString(dtype));
  check(all_finite(t), name, std::string("stats.") + what + " contains NaN or Inf");
}

}  // namespace

void validate_stats(const LinearStats& stats, int64_t m, int64_t n, const std::string& name) {
  check(stats.tokens >= 0, name, "stats.tokens is negative");
  check_tensor(stats.gram, "gram", {n, n}, at::kDouble, name);
  check_tensor(stats.abs_mean, "abs_mean", {n}, at::kFloat, name);
  if (m >= 0) check_tensor(stats.fisher, "fisher", {m, n}, at::kFloat, name);
  if (m >= 0) check_tensor(stats.out_gram, "out_gram", {m, m}, at::kDouble, name);
}

StatsAccumulator::StatsAccumulator(int64_t in_features, std::string name)
    : n_(in_features), name_(std::move(name)) {
  check(n_ > 0, name_, "StatsAccumulator needs in_features > 0");
  gram_ = at::zeros({n_, n_}, at::kDouble);
  abs_sum_ = at::zeros({n_}, at::kDouble);
}

void StatsAccumulator::add(const at::Tensor& x) {
  check(x.dim() >= 1 && x.size(-1) == n_, name_,
        "activation batch has shape " + shape_str(x.sizes()) + ", expected [..., " + std::to_string(n_) + "]");
  check(all_finite(x), name_, "activation batch contains NaN or Inf");
  at::Tensor rows = x.reshape({-1, n_}).to(at::kDouble);
  gram_.addmm_(rows.t(), rows);
  abs_sum_.add_(rows.abs().sum(0));
  tokens_ += rows.size(0);
}

void StatsAccumulator::add_weight_grad(const at::Tensor& grad_w) {
  check(grad_w.dim() == 2 && grad_w.size(1) == n_, name_,
        "weight gradient has shape " + shape_str(grad_w.sizes()) + ", expected [m, " + std::to_string(n_) + "]");
  check(all_finite(grad_w), name_, "weight gradient contains NaN or Inf");
  at::Tensor g = grad_w.to(at::kDouble);
  if (!fisher_.defined()) fisher_ = at::zeros_like(g);
  check(fisher_.sizes() == g.sizes(), name_, "weight gradient changed shape between calls");
  fisher_.add_(g.square());
}

LinearStats StatsAccumulator::finish() const {
  LinearStats s;
  s.gram = gram_.clone();
  s.abs_mean = (abs_sum_ / std::max<int64_t>(tokens_, 1)).to(at::kFloat);
  if (fisher_.defined()) s.fisher = fisher_.to(at::kFloat);
  s.tokens = tokens_;
  return s;
}

}  // namespace rankrl
