#include "search/env.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <queue>

#include "calib/calibrate.h"
#include "compress/factor_cache.h"
#include "core/error.h"
#include "core/log.h"
#include "io/weight_roles.h"
#include "model/transformer.h"

namespace rankrl {

namespace {

const double kCurveFractions[3] = {0.25, 0.5, 0.75};

// The weight's role (q, k, v, qkv, o, gate, up, down) and layer, read back through the one table
// of weight roles (io/weight_roles.h).
std::pair<std::string, int64_t> role_and_layer(const ModelConfig& config, const std::string& name) {
  const std::optional<ParsedName> p = parse_tensor_name(config.arch, name);
  check(p && *role_short_name(p->role) != 0, name, "not a projection weight of this architecture");
  return {role_short_name(p->role), p->layer};
}

// ‖E·Xᵀ‖_F² = Σ (E·G) ⊙ E with G = XᵀX, in float64.
double output_energy(const at::Tensor& E, const at::Tensor& gram) {
  at::Tensor e = E.to(at::kDouble);
  return at::matmul(e, gram).mul_(e).sum().item<double>();
}

// ‖(W − A_rB_r)X‖² for r = 0..k at once, in float64: with C = B·G·Wᵀ and P = (AᵀA) ⊙ (B·G·Bᵀ),
// ‖(W − A_rB_r)X‖² = ‖WX‖² − 2·Σ_{i<r} A_{:,i}·C_{i,:} + Σ_{i,j<r} P_ij. The same values as
// multiplying out every rank (which rounds W − A_rB_r to float32: they agree to ~1e-8 of ‖WX‖²)
// for O(k·n² + k²·(m+n)) work. With an output Gram G_out ([m,m]) the same expansion gives
// tr(Eᵀ·G_out·E·G) (AᵀA → Aᵀ·G_out·A and the cross term through G_out·A); `total` is then
// tr(Wᵀ·G_out·W·G). Returned relative to `total`.
std::vector<double> errors_by_rank(const at::Tensor& W, const at::Tensor& A, const at::Tensor& B, const at::Tensor& gram,
                                   double total, const at::Tensor& out_gram = at::Tensor()) {
  const at::Tensor w = W.to(at::kDouble), a = A.to(at::kDouble), b = B.to(at::kDouble);
  const at::Tensor left = out_gram.defined() ? at::matmul(out_gram, a) : a;
  const at::Tensor bg = at::matmul(b, gram);
  const at::Tensor cross = (at::matmul(bg, w.t()).t() * left).sum(0).contiguous();  // [k]
  const at::Tensor p = (at::matmul(a.t(), left) * at::matmul(bg, b.t())).contiguous();  // [k,k]
  const at::Tensor below = at::tril(p, -1).sum(1).contiguous(), diag = p.diagonal().contiguous();
  const int64_t k = a.size(1);
  std::vector<double> out(size_t(k + 1));
  const double *c = cross.data_ptr<double>(), *lo = below.data_ptr<double>(), *d = diag.data_ptr<double>();
  double cross_sum = 0.0, energy = 0.0;
  out[0] = 1.0;
  for (int64_t i = 0; i < k; ++i) {
    cross_sum += c[i];
    energy += 2.0 * lo[i] + d[i];
    out[size_t(i + 1)] = std::max(total - 2.0 * cross_sum + energy, 0.0) / total;
  }
  return out;
}

// WeightErrors::loss_by_rank of one factorization: ½·tr(Eᵀ·G_out·E·G) at r = 0..max_rank.
std::vector<double> loss_estimates_by_rank(const std::string& name, const at::Tensor& W, const Factors& f, int64_t max_rank,
                                   const LinearStats& st) {
  check(st.out_gram.defined(), name, "the kfac allocation needs output-gradient statistics for every weight");
  const at::Tensor w = W.to(at::kDouble);
  const double total = at::matmul(at::matmul(st.out_gram, w), at::matmul(st.gram, w.t())).trace().item<double>();
  std::vector<double> out =
      errors_by_rank(W, f.A.narrow(1, 0, max_rank), f.B.narrow(0, 0, max_rank), st.gram, std::max(total, 1e-300), st.out_gram);
  for (double& v : out) v *= 0.5 * std::max(total, 0.0);
  return out;
}

}  // namespace

const std::vector<std::string>& anchors() {
  static const std::vector<std::string> all = {"svdllm2", "kfac"};
  return all;
}

bool anchored_at_kfac(const EnvOptions& opts) { return opts.rank_action == "anchored" && opts.anchor == "kfac"; }

int64_t WeightInfo::rank_for(double rank_frac) const { return rank_for_fraction(cost, m, n, max_rank, rank_frac); }

double SearchEnv::smallest_keep(const Transformer& dense, double min_rank_frac) {
  return rankrl::smallest_keep(dense, weight_costs(dense, budgets::kParams, nullptr), min_rank_frac);
}

WeightErrors weight_errors(const Linear& l, FactorCache& cache, const LinearStats& st, const EnvOptions& opts,
                           const std::vector<int64_t>& exact_ranks) {
  c10::InferenceMode guard;
  check(st.gram.defined(), l.name(), "search needs calibration statistics for every weight");
  const int64_t m = l.out_features(), n = l.in_features(), max_rank = (m * n - 1) / (m + n);
  const bool pool_all = std::find(opts.selects.begin(), opts.selects.end(), "importance") != opts.selects.end();
  const at::Tensor W = l.dense_weight();
  WeightErrors e;
  const double total = std::max(output_energy(W, st.gram), 1e-300);
  e.output_energy = total;
  for (const std::string& method : opts.methods) {
    if (method == kDense) continue;
    const Factors& f = cache.get(l.name(), method, pool_all ? std::min(m, n) : max_rank);
    std::vector<double> curve;
    for (double frac : kCurveFractions) {
      int64_t r = std::max<int64_t>(1, int64_t(frac * double(max_rank)));
      at::Tensor approx = at::matmul(f.A.narrow(1, 0, r), f.B.narrow(0, 0, r));
      curve.push_back(output_energy(W - approx, st.gram) / total);
    }
    e.curve.push_back(curve);
    if (opts.step_errors)
      e.by_rank.push_back(errors_by_rank(W, f.A.narrow(1, 0, max_rank), f.B.narrow(0, 0, max_rank), st.gram, total));
    if (opts.loss_estimates) e.loss_by_rank.push_back(loss_estimates_by_rank(l.name(), W, f, max_rank, st));
    for (int64_t r : exact_ranks) {  // as SearchEnv::relative_error multiplies it out
      at::Tensor approx = at::matmul(f.A.narrow(1, 0, r), f.B.narrow(0, 0, r));
      e.exact[r].push_back(output_energy(W - approx, st.gram) / total);
    }
  }
  return e;
}

SearchEnv::SearchEnv(const Transformer& dense, FactorCache& cache, const CalibStats& stats, EnvOptions opts,
                     std::vector<WeightCost> costs)
    : dense_(dense), cache_(cache), stats_(&stats), opts_(std::move(opts)) {
  std::map<std::string, WeightErrors> errors;
  Progress progress("factorizations", int64_t(dense_.linears().size()), "weights");
  for (const Linear* l : dense_.linears()) {
    const LinearStats* st = stats.find(l->name());
    check(st != nullptr && st->gram.defined(), l->name(), "search needs calibration statistics for every weight");
    EnvOptions no_steps = opts_;
    no_steps.step_errors = false;  // relative_error() reads the Gram itself
    errors[l->name()] = weight_errors(*l, cache_, *st, no_steps);
    progress.advance();
  }
  progress.finish();
  init(errors, std::move(costs));
}

SearchEnv::SearchEnv(const Transformer& dense, FactorCache& cache, const std::map<std::string, WeightErrors>& errors,
                     EnvOptions opts, std::vector<WeightCost> costs)
    : dense_(dense), cache_(cache), opts_(std::move(opts)) {
  init(errors, std::move(costs));
}

void SearchEnv::init(const std::map<std::string, WeightErrors>& errors, std::vector<WeightCost> costs) {
  check(!opts_.methods.empty() && !opts_.selects.empty(), "", "search needs at least one method and selection");
  check(opts_.keep > 0.0 && opts_.keep <= 1.0, "", "keep must be in (0, 1]");
  if (costs.empty()) costs = weight_costs(dense_, opts_.budget, nullptr);
  check(costs.size() == dense_.linears().size(), "", "one budget cost per projection weight");
  for (const Linear* l : dense_.linears()) {
    const auto [type, layer] = role_and_layer(dense_.config(), l->name());
    WeightInfo w{l->name(), type, layer, l->out_features(), l->in_features()};
    w.max_rank = (w.m * w.n - 1) / (w.m + w.n);
    check(w.max_rank >= 1, w.name, "too small to factor");
    w.cost = costs[weights_.size()];
    auto it = errors.find(w.name);
    check(it != errors.end(), w.name, "search needs calibration statistics for every weight");
    w.output_energy = w.energy_share = it->second.output_energy;
    w.curve = it->second.curve;
    check(stats_ != nullptr || !opts_.step_errors || it->second.by_rank.size() == w.curve.size(), w.name,
          "internal: no per-rank errors for step_errors");
    by_rank_.push_back(it->second.by_rank);
    check(!opts_.loss_estimates || it->second.loss_by_rank.size() == w.curve.size(), w.name,
          "internal: no loss estimates for the kfac allocation");
    loss_by_rank_.push_back(it->second.loss_by_rank);
    exact_.push_back(it->second.exact);
    weights_.push_back(std::move(w));
  }
  // Energy share within each weight type; types for the one-hot.
  std::map<std::string, double> type_energy;
  for (const WeightInfo& w : weights_) type_energy[w.type] += w.energy_share;
  for (WeightInfo& w : weights_) w.energy_share /= std::max(type_energy[w.type], 1e-300);
  for (const WeightInfo& w : weights_) type_count_[w.type] += 1.0;
  // Suffix sums for the budget clip.
  const size_t N = weights_.size();
  cheapest_after_.assign(N + 1, 0.0);
  dense_after_.assign(N + 1, 0.0);
  for (size_t i = N; i-- > 0;) {
    const WeightInfo& w = weights_[i];
    cheapest_after_[i] = cheapest_after_[i + 1] + w.cost.factored(w.rank_for(opts_.min_rank_frac));
    dense_after_[i] = dense_after_[i + 1] + w.cost.dense;
    dense_params_ += w.cost.dense;
  }
  budget_ = opts_.keep * dense_params_;
  check(cheapest_after_[0] <= budget_ * 1.01, "",
        "keep " + std::to_string(opts_.keep) + " is below what factoring every weight at the smallest rank costs (" +
            opts_.budget + " budget)");
  const std::string& mode = opts_.rank_action;
  check(std::find(rank_actions().begin(), rank_actions().end(), mode) != rank_actions().end(), "",
        "unknown rank action '" + mode + "' (absolute, relative, anchored)");
  check(std::find(anchors().begin(), anchors().end(), opts_.anchor) != anchors().end(), "",
        "unknown anchor '" + opts_.anchor + "' (svdllm2, kfac)");
  check(!anchored_at_kfac(opts_) || opts_.loss_estimates, "", "internal: the kfac anchor needs loss estimates");
  if (mode == "anchored") anchor_to_loss_allocation();
}

const std::vector<std::string>& rank_actions() {
  static const std::vector<std::string> modes = {"absolute", "relative", "anchored"};
  return modes;
}

const std::vector<std::string>& policy_roles() {
  static const std::vector<std::string> roles = [] {
    std::vector<std::string> r;
    for (Role role : {Role::Q, Role::K, Role::V, Role::QKV, Role::O, Role::Gate, Role::Up, Role::Down})
      r.push_back(role_short_name(role));
    return r;
  }();
  return roles;
}

std::vector<std::string> SearchEnv::feature_names() const {
  std::vector<std::string> f = {"relative_depth", "position"};
  for (const std::string& r : policy_roles()) f.push_back("role:" + r);
  f.push_back("log_aspect");
  f.push_back("log_relative_cost");
  for (const std::string& m : opts_.methods) {
    if (m == kDense) continue;
    for (double frac : kCurveFractions) f.push_back("error:" + m + "@" + std::to_string(int(frac * 100)));
  }
  for (const char* n : {"log_relative_energy", "spent", "need", "keep"}) f.push_back(n);
  if (opts_.rank_action == "anchored") f.push_back("anchor_shift");
  if (anchored_at_kfac(opts_)) f.push_back("log_relative_anchor_loss");
  for (const std::string& m : opts_.methods) f.push_back("previous:" + m);
  f.push_back("previous_rank_frac");
  f.push_back("previous_select");
  return f;
}

size_t SearchEnv::state_size() const { return feature_names().size(); }

// Feature version 2: every entry means the same on every model (no dimension, depth or weight
// count enters unnormalised), so a policy trained on one model can act on another.
std::vector<float> SearchEnv::state() const {
  std::vector<float> s;
  const WeightInfo& w = weights_[pos_];
  const int64_t layers = dense_.config().n_layers;
  s.push_back(layers > 1 ? float(w.layer) / float(layers - 1) : 0.f);
  s.push_back(float(pos_) / float(weights_.size()));
  for (const std::string& r : policy_roles()) s.push_back(r == w.type ? 1.f : 0.f);
  s.push_back(float(std::log(double(w.m) / double(w.n))));
  const double mean_cost = dense_params_ / double(weights_.size());
  s.push_back(float(std::clamp(std::log(w.cost.dense / mean_cost), -3.0, 3.0)));
  for (const auto& curve : w.curve)
    for (double e : curve) s.push_back(float(std::min(e, 2.0)));
  // The energy share relative to the mean of its role (1 = average for a weight of that role).
  s.push_back(float(std::clamp(std::log(std::max(w.energy_share * type_count_.at(w.type), 1e-6)), -3.0, 3.0)));
  s.push_back(float(spent_ / budget_));
  const double rest = dense_after_[pos_];
  s.push_back(float(std::clamp((budget_ - spent_) / std::max(rest, 1.0), 0.0, 2.0)));
  s.push_back(float(opts_.keep));
  if (!anchor_shift_.empty()) s.push_back(float(anchor_shift_[pos_]));
  if (!anchor_loss_.empty()) s.push_back(float(anchor_loss_[pos_]));
  for (size_t k = 0; k < opts_.methods.size(); ++k) s.push_back(pos_ > 0 && int(k) == previous_.method ? 1.f : 0.f);
  s.push_back(pos_ > 0 ? float(previous_.rank_frac) : 0.f);
  s.push_back(pos_ > 0 ? float(previous_.select) : 0.f);
  return s;
}

std::vector<float> SearchEnv::reset() {
  plan_ = Plan{};
  plan_.keep = opts_.keep;
  plan_.seed = opts_.seed;
  plan_.model_identity = model_identity(dense_.config());
  applied_.clear();
  spent_ = requested_ = 0.0;
  pos_ = 0;
  previous_ = Action{};
  last_error_ = 0.0;
  return state();
}

WeightDecision SearchEnv::clip(size_t i, const Action& a, double spent, Action& applied) const {
  const WeightInfo& w = weights_[i];
  const double lo = budget_ - spent - dense_after_[i + 1];
  const double hi = budget_ - spent - cheapest_after_[i + 1];
  applied = a;
  applied.method = std::clamp(a.method, 0, int(opts_.methods.size()) - 1);
  applied.select = std::clamp(a.select, 0, int(opts_.selects.size()) - 1);
  std::string method = opts_.methods[applied.method];
  int64_t rank = w.rank_for(std::clamp(a.rank_frac, 1e-6, 1.0));
  if (method == kDense && w.cost.dense > hi) {  // dense does not fit: factor it
    auto it = std::find_if(opts_.methods.begin(), opts_.methods.end(), [](const std::string& s) { return s != kDense; });
    check(it != opts_.methods.end(), "", "keep < 1 needs at least one factoring method");
    applied.method = int(it - opts_.methods.begin());
    method = *it;
    rank = w.max_rank;
  }
  if (method != kDense) {
    // The upper bound wins when no whole rank fits between the two (the plan never overspends).
    rank = std::max<int64_t>(rank, w.cost.rank_at_least(lo));
    rank = std::min<int64_t>(rank, w.cost.rank_at_most(hi));
    // Even the largest saving rank spends too little: dense, if it is enabled and fits.
    const int dense = dense_method();
    if (rank > w.max_rank && dense >= 0 && w.cost.dense <= hi) {
      applied.method = dense;
      method = kDense;
    }
    rank = std::clamp<int64_t>(rank, 1, w.max_rank);
  }
  if (method == kDense) {
    applied.rank_frac = 1.0;
    return WeightDecision{kDense, 0, "top"};
  }
  applied.rank_frac = w.cost.factored(rank) / w.cost.dense;
  return WeightDecision{method, rank, opts_.selects[applied.select]};
}

namespace {
double logit(double p) {
  p = std::clamp(p, 1e-6, 1.0 - 1e-6);
  return std::log(p / (1.0 - p));
}
}  // namespace

double SearchEnv::relative_rank_frac(double frac) const {
  const double need = (budget_ - spent_) / std::max(dense_after_[pos_], 1.0);
  return std::clamp(frac * need / opts_.keep, 1e-6, 1.0);
}

void SearchEnv::anchor_to_loss_allocation() {
  const int method = lowest_error_method();
  check(method >= 0, "", "--rank-action anchored needs a factoring method among --methods");
  RankAllocation a = opts_.anchor == "kfac" ? kfac_allocation(method) : RankAllocation{loss_allocation(method), {}};
  anchor_ = a.fractions;
  anchor_dense_.assign(weights_.size(), 0);
  for (size_t i = 0; i < weights_.size(); ++i) anchor_dense_[i] = a.is_dense(i);
  anchor_after_.assign(weights_.size() + 1, 0.0);
  for (size_t i = weights_.size(); i-- > 0;)
    anchor_after_[i] = anchor_after_[i + 1] + (anchor_dense_[i] ? 1.0 : anchor_[i]) * weights_[i].cost.dense;
  anchor_features(method);
}

// What the anchor does to each weight, size-free: how far its fraction lies from keep (in logit
// space, the action's own scale), and, anchored at kfac, the estimated loss it leaves at this
// weight over the mean over weights. The estimate is second order, so it is least reliable where
// it is largest; with both entries a policy can learn where to trust the anchor. (Fine-tuning on
// the default model from a stories260K policy without them never reached the scratch run's best
// KL in 60 episodes; with them, at episode 39: README "Transfer experiment".)
void SearchEnv::anchor_features(int method) {
  const size_t N = weights_.size();
  anchor_shift_.resize(N);
  for (size_t i = 0; i < N; ++i) anchor_shift_[i] = std::clamp(logit(anchor_[i]) - logit(opts_.keep), -3.0, 3.0);
  if (!anchored_at_kfac(opts_)) return;
  const size_t factoring = factoring_index(method);
  std::vector<double> loss(N);
  for (size_t i = 0; i < N; ++i) {
    const std::vector<double>& by_rank = loss_by_rank_[i][factoring];
    const int64_t rank = std::min<int64_t>(weights_[i].rank_for(anchor_[i]), int64_t(by_rank.size()) - 1);
    loss[i] = anchor_dense_[i] ? 0.0 : std::max(by_rank[size_t(rank)], 0.0);
  }
  const double mean = std::accumulate(loss.begin(), loss.end(), 0.0) / double(N);
  anchor_loss_.resize(N);
  for (size_t i = 0; i < N; ++i) anchor_loss_[i] = std::clamp(std::log(std::max(loss[i] / std::max(mean, 1e-300), 1e-6)), -3.0, 3.0);
}

size_t SearchEnv::factoring_index(int method) const {
  const auto m = opts_.methods.begin() + method;
  return size_t(std::count_if(opts_.methods.begin(), m, [](const std::string& s) { return s != kDense; }));
}

double SearchEnv::read_rank_action(double frac) const {
  if (opts_.rank_action == "relative") return relative_rank_frac(frac);
  if (opts_.rank_action != "anchored") return frac;
  const double z = logit(anchor_[pos_]) + logit(frac) - logit(opts_.keep);
  // Budget-relative as well: what is left of the budget after the fractions asked for so far
  // (not the floored ranks, so following the anchor keeps this at 1: the anchor spends keep of
  // each role) over what the anchor would spend on the weights from here on. A deviation — a
  // weight kept dense, a rank raised — is paid for by every later weight rather than clipped
  // onto the last ones.
  const double scale = (budget_ - requested_) / std::max(anchor_after_[pos_], 1e-300);
  return std::clamp(scale / (1.0 + std::exp(-z)), 1e-6, 1.0);
}

void SearchEnv::read_action(Action& a) const {
  const bool shift_down = a.rank_frac < opts_.keep;
  a.rank_frac = read_rank_action(a.rank_frac);
  if (opts_.rank_action == "anchored" && anchor_dense_[pos_] && !shift_down) a.method = dense_method();
}

int SearchEnv::dense_method() const {
  const auto it = std::find(opts_.methods.begin(), opts_.methods.end(), kDense);
  return it == opts_.methods.end() ? -1 : int(it - opts_.methods.begin());
}

std::vector<double> SearchEnv::loss_allocation(int method) {
  const std::string& spec = opts_.methods.at(size_t(method));
  const double keep = opts_.keep, removed = 1.0 - keep;
  std::map<std::string, std::vector<size_t>> groups;
  for (size_t i = 0; i < weights_.size(); ++i) groups[weights_[i].type].push_back(i);
  std::vector<double> fractions(weights_.size(), keep);
  for (const auto& [type, idx] : groups) {
    std::vector<double> inv_log;
    bool usable = true;
    for (size_t i : idx) {
      const WeightInfo& w = weights_[i];
      const double loss = relative_error(i, spec, w.rank_for(keep)) * w.output_energy;
      usable = usable && loss > 1.0 + 1e-9;
      inv_log.push_back(usable ? 1.0 / std::log(loss) : 0.0);
    }
    if (!usable) continue;  // losses ≤ 1: the log rule is undefined; the group stays uniform
    double sum = 0.0;
    for (double v : inv_log) sum += v;
    for (size_t k = 0; k < idx.size(); ++k) {
      const double r_k = double(idx.size()) * removed * inv_log[k] / sum;
      fractions[idx[k]] = std::clamp(1.0 - r_k, opts_.min_rank_frac, 1.0);
    }
  }
  return fractions;
}

RankAllocation SearchEnv::kfac_allocation(int method) {
  check(opts_.loss_estimates, "", "internal: the kfac allocation needs loss estimates");
  const auto m = opts_.methods.begin() + method;
  check(method >= 0 && size_t(method) < opts_.methods.size() && *m != kDense, "", "internal: kfac needs a factoring method");
  const size_t factoring = factoring_index(method);
  const bool may_keep_dense = dense_method() >= 0;
  const size_t N = weights_.size();
  std::vector<int64_t> rank(N, 1);
  std::vector<char> dense(N, 0);
  double spent = 0.0;
  for (const WeightInfo& w : weights_) spent += w.cost.factored(1);
  // A step of weight i from its current rank: to the next rank, or to dense (loss 0).
  auto step_cost = [&](size_t i, bool to_dense) {
    const WeightCost& c = weights_[i].cost;
    return (to_dense ? c.dense : c.factored(rank[i] + 1)) - c.factored(rank[i]);
  };
  struct Step {
    double gain;  // estimated loss saved per unit of budget cost (a step that costs nothing more first)
    size_t i;
    int64_t from;  // the weight's rank when the step was offered: stale once it moved on
    bool to_dense;
    bool operator<(const Step& o) const { return gain < o.gain; }
  };
  std::priority_queue<Step> next;
  auto offer = [&](size_t i) {
    const std::vector<double>& loss = loss_by_rank_[i][factoring];
    const int64_t r = rank[i];
    const double floor = 1e-12 * weights_[i].cost.dense;
    if (r < weights_[i].max_rank) next.push({(loss[size_t(r)] - loss[size_t(r + 1)]) / std::max(step_cost(i, false), floor), i, r, false});
    if (may_keep_dense) next.push({loss[size_t(r)] / std::max(step_cost(i, true), floor), i, r, true});
  };
  // Takes every step that fits, best first, from the current ranks.
  auto fill = [&] {
    for (size_t i = 0; i < N; ++i)
      if (!dense[i]) offer(i);
    while (!next.empty()) {
      const Step s = next.top();
      next.pop();
      if (dense[s.i] || rank[s.i] != s.from) continue;
      const double cost = step_cost(s.i, s.to_dense);
      if (spent + cost > budget_) continue;  // this step no longer fits; others may
      spent += cost;
      if (s.to_dense) {
        dense[s.i] = 1;
        continue;
      }
      ++rank[s.i];
      offer(s.i);
    }
  };
  // The clip may change the allocation: what the greedy leaves unspent, less than any step, goes
  // to the weight before a run of dense ones, which then may not fit and are factored at their
  // largest rank, leaving more unspent; the greedy goes on from there until the clip agrees
  // (two passes in practice; at most four).
  for (int pass = 0; pass < 4; ++pass) {
    fill();
    if (!clip_allocation(method, rank, dense)) break;
    spent = 0.0;
    for (size_t i = 0; i < N; ++i) spent += dense[i] ? weights_[i].cost.dense : weights_[i].cost.factored(rank[i]);
  }
  RankAllocation a;
  a.fractions.resize(N);
  // A dense weight's fraction is its largest saving rank's, below 1 so that its logit is finite.
  for (size_t i = 0; i < N; ++i)
    a.fractions[i] = dense[i] ? std::min(0.999, fraction_of_rank(i, weights_[i].max_rank)) : fraction_of_rank(i, rank[i]);
  if (std::count(dense.begin(), dense.end(), 1) > 0) a.dense = std::move(dense);
  return a;
}

// A hair above a rank's own fraction, so that rank_for() floors back to exactly this rank.
double SearchEnv::fraction_of_rank(size_t i, int64_t rank) const {
  const WeightCost& c = weights_[i].cost;
  return std::min(1.0, c.factored(rank) / c.dense * (1.0 + 1e-9));
}

bool SearchEnv::clip_allocation(int method, std::vector<int64_t>& rank, std::vector<char>& dense) const {
  bool changed = false;
  double spent = 0.0;
  for (size_t i = 0; i < weights_.size(); ++i) {
    Action applied;
    const WeightDecision d = clip(i, Action{dense[i] ? dense_method() : method, fraction_of_rank(i, rank[i]), 0}, spent, applied);
    const bool now_dense = d.method == kDense;
    changed = changed || now_dense != bool(dense[i]) || (!now_dense && d.rank != rank[i]);
    dense[i] = now_dense;
    if (!now_dense) rank[i] = d.rank;
    spent += now_dense ? weights_[i].cost.dense : weights_[i].cost.factored(d.rank);
  }
  return changed;
}

std::vector<Action> SearchEnv::actions_of(const RankAllocation& a, int method) const {
  std::vector<Action> actions(weights_.size(), Action{method, opts_.keep, 0});
  for (size_t i = 0; i < actions.size(); ++i) {
    actions[i].rank_frac = a.fractions[i];
    if (a.is_dense(i)) actions[i].method = dense_method();
  }
  return actions;
}

std::vector<float> SearchEnv::step(const Action& requested) {
  check(pos_ < weights_.size(), "", "episode already finished");
  Action applied;
  WeightDecision d = clip(pos_, requested, spent_, applied);
  const WeightInfo& w = weights_[pos_];
  spent_ += d.method == kDense ? w.cost.dense : w.cost.factored(d.rank);
  const bool asked_dense = opts_.methods.at(size_t(requested.method)) == kDense;
  requested_ += asked_dense ? w.cost.dense : std::clamp(requested.rank_frac, 0.0, 1.0) * w.cost.dense;
  last_error_ = opts_.step_errors && d.method != kDense ? relative_error(pos_, d.method, d.rank) : 0.0;
  plan_.weights[w.name] = d;
  applied_.push_back(applied);
  previous_ = applied;
  ++pos_;
  return done() ? std::vector<float>{} : state();
}

Plan SearchEnv::decode(const std::vector<Action>& actions) {
  check(actions.size() == weights_.size(), "", "action sequence of the wrong length");
  reset();
  for (const Action& a : actions) step(a);
  return plan_;
}

Plan SearchEnv::dense_plan() const {
  Plan p;
  p.keep = opts_.keep;
  p.seed = opts_.seed;
  p.model_identity = model_identity(dense_.config());
  for (const WeightInfo& w : weights_) p.weights[w.name] = WeightDecision{kDense, 0, "top"};
  return p;
}

double SearchEnv::plan_cost(const Plan& plan) const {
  double cost = 0.0;
  for (const WeightInfo& w : weights_) {
    const WeightDecision& d = plan.weights.at(w.name);
    bool factored = d.method != kDense && d.rank * (w.m + w.n) < w.m * w.n;
    cost += factored ? w.cost.factored(d.rank) : w.cost.dense;
  }
  return cost;
}

double SearchEnv::relative_error(size_t i, const std::string& method, int64_t rank) {
  c10::InferenceMode guard;
  const WeightInfo& w = weights_[i];
  if (stats_ == nullptr) {  // from the errors computed with the Gram (the search's setup)
    const auto m = std::find(opts_.methods.begin(), opts_.methods.end(), method);
    check(m != opts_.methods.end() && *m != kDense, method, "not a factoring method of this search");
    const size_t factoring = factoring_index(int(m - opts_.methods.begin()));
    auto exact = exact_[i].find(rank);
    if (exact != exact_[i].end() && factoring < exact->second.size()) return exact->second[factoring];
    check(factoring < by_rank_[i].size() && rank >= 0 && size_t(rank) < by_rank_[i][factoring].size(), w.name,
          "internal: no per-rank error at rank " + std::to_string(rank));
    return by_rank_[i][factoring][size_t(rank)];
  }
  const Linear* l = const_cast<Transformer&>(dense_).find_linear(w.name);
  const LinearStats* st = stats_->find(w.name);
  const Factors& f = cache_.get(w.name, method, rank);
  const at::Tensor W = l->dense_weight();
  at::Tensor approx = at::matmul(f.A.narrow(1, 0, rank), f.B.narrow(0, 0, rank));
  return output_energy(W - approx, st->gram) / std::max(output_energy(W, st->gram), 1e-300);
}

int SearchEnv::lowest_error_method() const {
  int best = -1;
  double best_error = 1e300;
  size_t factoring = 0;  // curve index: the factoring methods in --methods order
  for (size_t m = 0; m < opts_.methods.size(); ++m) {
    if (opts_.methods[m] == kDense) continue;
    double sum = 0.0;
    for (const WeightInfo& w : weights_) sum += w.curve[factoring][1];
    if (sum < best_error) best_error = sum, best = int(m);
    ++factoring;
  }
  return best;
}

}  // namespace rankrl
