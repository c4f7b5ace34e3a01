#include "decompose/common.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "decompose/stats.h"

namespace rankrl::detail {

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

template <typename T>
bool parse_number(const std::string& text, T& out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && ptr == end;
}

}  // namespace

Params::Params(const std::string& spec) : spec_(spec) {
  const auto colon = spec.find(':');
  method_ = trim(spec.substr(0, colon));
  check(!method_.empty(), spec, "empty method name; known methods: " + join(known_methods()));
  if (colon == std::string::npos) return;
  std::string rest = spec.substr(colon + 1);
  size_t start = 0;
  while (start <= rest.size()) {
    const auto comma = std::min(rest.find(',', start), rest.size());
    const std::string item = rest.substr(start, comma - start);
    const auto eq = item.find('=');
    check(eq != std::string::npos, spec, "parameter '" + trim(item) + "' is not key=value");
    const std::string key = trim(item.substr(0, eq));
    check(!key.empty() && !values_.count(key), spec, "empty or repeated parameter '" + key + "'");
    values_[key] = trim(item.substr(eq + 1));
    start = comma + 1;
  }
}

void Params::allow_only(const std::vector<std::string>& known) const {
  for (const auto& [key, value] : values_) {
    bool ok = std::find(known.begin(), known.end(), key) != known.end();
    check(ok, spec_, "unknown parameter '" + key + "' for method '" + method_ + "'; known: " +
                         (known.empty() ? std::string("(none)") : join(known)));
  }
}

const std::string* Params::find(const std::string& key) const {
  auto it = values_.find(key);
  return it == values_.end() ? nullptr : &it->second;
}

int64_t Params::get_int(const std::string& key, int64_t def, int64_t min, int64_t max) const {
  const std::string* text = find(key);
  if (!text) return def;
  int64_t v = 0;
  check(parse_number(*text, v) && v >= min && v <= max, spec_,
        "parameter " + key + "='" + *text + "' must be an integer in [" + std::to_string(min) +
            ", " + std::to_string(max) + "]");
  return v;
}

double Params::get_double(const std::string& key, double def, double min, double max) const {
  const std::string* text = find(key);
  if (!text) return def;
  double v = 0;
  check(parse_number(*text, v) && std::isfinite(v) && v >= min && v <= max, spec_,
        "parameter " + key + "='" + *text + "' must be a number in [" + format_number(min) +
            ", " + format_number(max) + "]");
  return v;
}

std::string Params::get_choice(const std::string& key, const std::string& def,
                               const std::vector<std::string>& choices) const {
  const std::string* text = find(key);
  if (!text) return def;
  bool ok = std::find(choices.begin(), choices.end(), *text) != choices.end();
  check(ok, spec_, "parameter " + key + "='" + *text + "' must be one of: " + join(choices));
  return *text;
}

std::string format_number(double value) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::general);
  return std::string(buf, ptr);
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

at::Tensor checked_weight(const at::Tensor& W, int64_t max_rank, const std::string& spec) {
  check(W.defined() && W.dim() == 2 && W.numel() > 0, spec, "weight must be a non-empty 2-D tensor");
  check(at::isFloatingType(W.scalar_type()), spec, "weight must be floating point");
  const int64_t m = W.size(0), n = W.size(1);
  check(max_rank >= 1 && max_rank <= std::min(m, n), spec,
        "rank " + std::to_string(max_rank) + " outside [1, min(m,n)=" +
            std::to_string(std::min(m, n)) + "] for a " + std::to_string(m) + "x" +
            std::to_string(n) + " weight");
  at::Tensor w = W.to(at::kFloat).contiguous();
  check(at::isfinite(w).all().item<bool>(), spec, "weight contains NaN or Inf");
  return w;
}

const LinearStats& require_stats(const LinearStats* stats, const at::Tensor& W, StatsNeeds needs,
                                 const std::string& spec) {
  check(stats != nullptr, spec, "needs calibration statistics, none given");
  check(!needs.gram || stats->gram.defined(), spec, "needs stats.gram (XᵀX), absent");
  check(!needs.abs_mean || stats->abs_mean.defined(), spec, "needs stats.abs_mean, absent");
  check(!needs.fisher || stats->fisher.defined(), spec, "needs stats.fisher, absent");
  validate_stats(*stats, W.size(0), W.size(1), spec);
  return *stats;
}

ThinSvd thin_svd(const at::Tensor& M, const std::string& spec) {
  try {
    auto [U, S, Vh] = at::linalg_svd(M, /*full_matrices=*/false);
    return {U, S, Vh};
  } catch (const c10::Error&) {
    check(M.scalar_type() != at::kDouble, spec, "SVD failed to converge");
  }
  ThinSvd d = thin_svd(M.to(at::kDouble), spec);
  return {d.U.to(M.scalar_type()), d.S.to(M.scalar_type()), d.Vh.to(M.scalar_type())};
}

namespace {
constexpr double kEigenFloor = 1e-10;

at::Tensor eigen_whitening(const at::Tensor& gram) {
  auto [lambda, Q] = at::linalg_eigh(gram);
  const double top = lambda.max().item<double>();
  if (top <= 0) return at::eye(gram.size(0), gram.options());
  return Q * lambda.clamp_min(kEigenFloor * top).sqrt().unsqueeze(0);
}
}  // namespace

at::Tensor whitening_factor(const at::Tensor& gram) {
  auto [L, info] = at::linalg_cholesky_ex(gram);
  if (info.item<int64_t>() == 0 && at::isfinite(L).all().item<bool>()) return L;
  return eigen_whitening(gram);
}

std::vector<double> tail_errors(const at::Tensor& sigma, int64_t k, double residual) {
  at::Tensor s2 = sigma.to(at::kDouble).square().contiguous();
  const double* p = s2.data_ptr<double>();
  const int64_t len = s2.numel();
  double suffix = std::max(residual, 0.0);
  for (int64_t i = len - 1; i >= k; --i) suffix += p[i];
  std::vector<double> tail(k + 1);
  tail[k] = suffix;
  for (int64_t r = k - 1; r >= 0; --r) tail[r] = tail[r + 1] + p[r];
  return tail;
}

std::vector<double> prefix_errors(const at::Tensor& W, const at::Tensor& A, const at::Tensor& B,
                                 const at::Tensor& gram) {
  const at::Tensor w = W.to(at::kDouble), a = A.to(at::kDouble), b = B.to(at::kDouble);
  const auto metric = [&](const at::Tensor& rows) { return gram.defined() ? at::matmul(rows, gram) : rows; };
  const at::Tensor wg = metric(w), bg = metric(b);
  const at::Tensor cross = (a * at::matmul(wg, b.t())).sum(0);            // ⟨A_i, W·M·B_iᵀ⟩
  const at::Tensor pair = at::matmul(a.t(), a) * at::matmul(bg, b.t());  // ⟨A_iB_i, A_jB_j⟩_M
  const at::Tensor block = 2 * at::tril(pair, -1).sum(1) + pair.diagonal();
  const at::Tensor gain = at::cumsum(2 * cross - block, 0).contiguous();
  const double total = (w * wg).sum().item<double>();
  const double* g = gain.data_ptr<double>();
  std::vector<double> err(A.size(1) + 1, total);
  for (int64_t r = 1; r <= A.size(1); ++r) err[r] = std::max(total - g[r - 1], 0.0);
  return err;
}

Factors left_basis_factors(const at::Tensor& W, const at::Tensor& U_k) {
  Factors f;
  f.A = U_k;
  f.B = at::matmul(U_k.t(), W.to(U_k.scalar_type()));
  return f;
}

Factors right_basis_factors(const at::Tensor& W, const at::Tensor& V_k) {
  Factors f;
  f.A = at::matmul(W.to(V_k.scalar_type()), V_k);
  f.B = V_k.t();
  return f;
}

void balance_to_float(Factors& f) {
  at::Tensor a_norm = at::linalg_vector_norm(f.A, 2, {0});
  at::Tensor b_norm = at::linalg_vector_norm(f.B, 2, {1});
  at::Tensor live = (a_norm > 0) & (b_norm > 0);
  at::Tensor scale = at::where(live, at::sqrt(b_norm / at::where(live, a_norm, at::ones_like(a_norm))),
                               at::zeros_like(a_norm));
  at::Tensor inv = at::where(live, 1.0 / at::where(live, scale, at::ones_like(scale)), at::zeros_like(scale));
  f.A = (f.A * scale.unsqueeze(0)).to(at::kFloat).contiguous();
  f.B = (f.B * inv.unsqueeze(1)).to(at::kFloat).contiguous();
}

}  // namespace rankrl::detail
