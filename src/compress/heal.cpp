#include "compress/heal.h"

#include <ATen/ATen.h>
#include <functional>
#include <c10/core/InferenceMode.h>
#include <torch/optim/adam.h>

#include <nlohmann/json.hpp>

#include "calib/calibrate.h"
#include "core/error.h"
#include "core/log.h"
#include "model/transformer.h"

namespace rankrl {

namespace {

using nlohmann::json;

// ‖(W − A·B)·Xᵀ‖² / ‖W·Xᵀ‖² through the Gram: tr(Δ·G·Δᵀ) / tr(W·G·Wᵀ).
double relative_output_error(const at::Tensor& W, const at::Tensor& A, const at::Tensor& B, const at::Tensor& G) {
  const at::Tensor D = W - at::mm(A, B);
  const double num = (at::mm(D, G) * D).sum().item<double>();
  const double den = (at::mm(W, G) * W).sum().item<double>();
  return den > 0 ? num / den : 0.0;
}

// Least-squares A for fixed B on inputs with Gram G (see heal.h).
at::Tensor refit_A(const at::Tensor& W, const at::Tensor& B, const at::Tensor& G) {
  const at::Tensor BG = at::mm(B, G);
  at::Tensor M = at::mm(BG, B.t());
  const int64_t r = M.size(0);
  const double ridge = 1e-6 * std::max(M.trace().item<double>(), 1e-30) / double(r);
  M = M + ridge * at::eye(r, M.options());
  const at::Tensor rhs = at::mm(W, BG.t());  // W·G·Bᵀ [m, r]
  return at::linalg_solve(M, rhs.t()).t();  // M symmetric: A = rhs·M⁻¹
}

// Groups of consecutive linears that read the same input, in forward order.
std::vector<std::vector<std::string>> input_groups(const CalibStats& s, const Transformer& net) {
  std::vector<std::vector<std::string>> groups;
  std::string last_owner;
  for (const Linear* l : net.linears()) {
    const std::string& owner = s.shared_input.at(l->name());
    if (groups.empty() || owner != last_owner) groups.emplace_back();
    groups.back().push_back(l->name());
    last_owner = owner;
  }
  return groups;
}

// Thrown by the observer once the group's input has been seen: the rest of the forward (later
// layers, the LM head) cannot change that input, so it is skipped.
struct StopForward {};

// Rows = tokens, float64: the input that `first` (the first linear of a group) reads when `run`
// runs `net`, stopping the forward at that linear. Forward order is what makes the early exit
// valid: every linear upstream of `first` has already been healed when this is called.
at::Tensor group_input(Transformer& net, const std::function<void()>& run, const std::string& first) {
  c10::InferenceMode guard;
  at::Tensor rows;
  net.set_observer([&](const Linear& l, const at::Tensor& x) {
    if (l.name() != first) return;
    rows = x.reshape({-1, x.size(-1)}).to(at::kDouble);
    throw StopForward{};
  });
  struct Reset {
    Transformer& n;
    ~Reset() { n.set_observer(nullptr); }
  } reset{net};
  try {
    run();
  } catch (const StopForward&) {
  }
  check(rows.defined(), first, "the forward never reached this projection");
  return rows;
}

// The input of `first` on token batch `tokens` through the whole model.
at::Tensor model_group_input(Transformer& net, const at::Tensor& tokens, const std::string& first) {
  return group_input(net, [&] { net.forward(tokens); }, first);
}

// The input of `first` (a linear of decoder layer `layer`) with x entering that layer.
at::Tensor layer_group_input(Transformer& net, int64_t layer, const at::Tensor& x, const std::string& first) {
  return group_input(net, [&] { net.block(layer, x); }, first);
}

// The Grams a group's refit needs, summed over `windows` in batches of `batch` windows: G = Σ x̃x̃ᵀ
// of the compressed model's input; with `dense`, also C = Σ x x̃ᵀ and D = Σ x xᵀ (x: the dense
// model's input on the same tokens).
struct GroupGrams {
  at::Tensor G, C, D;
  // Adds the rows of one batch: xc (compressed input) and, when defined, xd (the dense one).
  // D is left alone when `with_D` is false (known from the calibration statistics).
  void add(const at::Tensor& xc, const at::Tensor& xd, bool with_D = true) {
    sum(G, xc, xc);
    if (!xd.defined()) return;
    sum(C, xd, xc);
    if (with_D) sum(D, xd, xd);
  }
  static void sum(at::Tensor& s, const at::Tensor& a, const at::Tensor& b) {
    s = s.defined() ? s.addmm_(a.t(), b) : at::mm(a.t(), b);
  }
};

GroupGrams group_grams(Transformer& net, Transformer* dense, const std::vector<at::Tensor>& windows,
                       const std::string& first, int64_t batch) {
  GroupGrams g;
  for (const at::Tensor& w : windows)
    for (int64_t i = 0; i < w.size(0); i += batch) {
      const at::Tensor part = w.narrow(0, i, std::min(batch, w.size(0) - i));
      g.add(model_group_input(net, part, first), dense ? model_group_input(*dense, part, first) : at::Tensor());
    }
  return g;
}

// The compensating closed form (see heal.h): Ŵ = U_r·U_rᵀ·W* as A = U_r, B = U_rᵀ·W*.
std::pair<at::Tensor, at::Tensor> compensated_factors(const at::Tensor& W, int64_t rank, const GroupGrams& g) {
  const int64_t n = W.size(1);
  const double ridge = 1e-6 * std::max(g.G.diagonal().mean().item<double>(), 1e-30);
  const at::Tensor G = g.G + ridge * at::eye(n, g.G.options());
  const at::Tensor W_star = at::linalg_solve(G, (at::mm(W, g.C) + ridge * W).t()).t();  // G symmetric
  const at::Tensor U = std::get<0>(at::linalg_svd(at::mm(W_star, at::linalg_cholesky(G)), false));
  const at::Tensor Ur = U.narrow(1, 0, rank);
  return {Ur, at::mm(Ur.t(), W_star)};
}

// Σ‖W·x − A·B·x̃‖² / Σ‖W·x‖² through the Grams.
double compensated_error(const at::Tensor& W, const at::Tensor& A, const at::Tensor& B, const GroupGrams& g) {
  const at::Tensor What = at::mm(A, B);
  const double dense = (at::mm(W, g.D) * W).sum().item<double>();
  const double num = dense - 2.0 * (at::mm(W, g.C) * What).sum().item<double>() + (at::mm(What, g.G) * What).sum().item<double>();
  return dense > 0 ? num / dense : 0.0;
}

// Refits the factored linears of `group` from the Grams of their (shared) input and appends one
// report entry per refitted weight to `layers`. W comes from `dense`.
void refit_group(Transformer& net, Transformer& dense, const std::vector<std::string>& group,
                 const GroupGrams& g, bool compensate, json& layers) {
  for (const std::string& name : group) {
    Linear* l = net.find_linear(name);
    if (!l->is_low_rank()) continue;
    const at::Tensor W = dense.find_linear(name)->dense_weight().to(at::kDouble);
    const at::Tensor A0 = l->A().to(at::kDouble), B0 = l->B().to(at::kDouble);
    json entry = {{"name", name}};
    if (compensate) {
      auto [A, B] = compensated_factors(W, l->rank(), g);
      entry["rel_error_before"] = compensated_error(W, A0, B0, g);
      entry["rel_error_after"] = compensated_error(W, A, B, g);
      l->set_low_rank(A.to(at::kFloat).contiguous(), B.to(at::kFloat).contiguous());
    } else {
      const at::Tensor A = refit_A(W, B0, g.G);
      entry["rel_error_before"] = relative_output_error(W, A0, B0, g.G);
      entry["rel_error_after"] = relative_output_error(W, A, B0, g.G);
      l->set_low_rank(A.to(at::kFloat).contiguous(), l->B());
    }
    layers.push_back(entry);
  }
}

bool any_low_rank(Transformer& net, const std::vector<std::string>& group) {
  for (const std::string& name : group)
    if (net.find_linear(name)->is_low_rank()) return true;
  return false;
}

// Calibration ids as [windows, ctx] (whole windows only) plus the shorter tail window, if any.
std::vector<at::Tensor> window_batches(const std::vector<int32_t>& ids, int64_t ctx) {
  const at::Tensor all = at::tensor(at::ArrayRef<int32_t>(ids)).to(at::kLong);
  const int64_t full = all.numel() / ctx, tail = all.numel() - full * ctx;
  std::vector<at::Tensor> out;
  if (full > 0) out.push_back(all.narrow(0, 0, full * ctx).view({full, ctx}));
  if (tail > 0) out.push_back(all.narrow(0, full * ctx, tail).view({1, tail}));
  return out;
}

json closed_form(Transformer& net, Transformer& dense, const std::vector<int32_t>& ids, const HealOptions& o) {
  const int64_t batch = std::max<int64_t>(o.batch, 1);
  // One full pass only to learn which linears share an input (the groups).
  const CalibOptions calib{int64_t(ids.size()), o.ctx, batch, false};
  const auto groups = input_groups(calibrate(net, ids, calib), net);
  const auto windows = window_batches(ids, o.ctx);
  json layers = json::array();
  Progress progress("heal", int64_t(groups.size()), "groups");
  for (const auto& group : groups) {
    progress.advance(1);
    if (!any_low_rank(net, group)) continue;
    // Inputs as the model compressed & healed so far produces them.
    const GroupGrams g = group_grams(net, o.compensate ? &dense : nullptr, windows, group.front(), batch);
    refit_group(net, dense, group, g, o.compensate, layers);
  }
  progress.finish();
  return layers;
}

json gradient_steps(Transformer& net, const std::vector<int32_t>& ids, const HealOptions& o) {
  WeightMap w = net.weights();
  std::vector<at::Tensor> params;
  std::map<std::string, std::pair<at::Tensor, at::Tensor>> factors;
  for (const Linear* l : net.linears()) {
    if (!l->is_low_rank()) continue;
    at::Tensor A = l->A().detach().clone().requires_grad_(true), B = l->B().detach().clone().requires_grad_(true);
    w[l->name() + ".lowrank_A"] = A;
    w[l->name() + ".lowrank_B"] = B;
    params.insert(params.end(), {A, B});
    factors[l->name()] = {A, B};
  }
  if (params.empty()) return json::array();
  Transformer trainable(net.config(), w);
  const int64_t windows = int64_t(ids.size()) / o.ctx;
  check(windows >= 1, "", "--heal-steps needs at least one full calibration window");
  at::Tensor all = at::tensor(at::ArrayRef<int32_t>(ids)).to(at::kLong).narrow(0, 0, windows * o.ctx).view({windows, o.ctx});
  torch::optim::Adam opt(params, torch::optim::AdamOptions(o.lr));
  json losses = json::array();
  for (int64_t step = 0; step < o.steps; ++step) {
    const int64_t b = std::min(o.batch, windows), first = (step * b) % windows;
    at::Tensor batch = all.index_select(0, (at::arange(b, at::kLong) + first).remainder(windows));
    at::Tensor logits = trainable.forward(batch);
    const int64_t T = o.ctx;
    at::Tensor loss = at::cross_entropy_loss(logits.narrow(1, 0, T - 1).reshape({-1, logits.size(-1)}),
                                             batch.narrow(1, 1, T - 1).reshape({-1}));
    opt.zero_grad();
    loss.backward();
    opt.step();
    losses.push_back(loss.item<double>());
  }
  for (auto& [name, f] : factors) net.find_linear(name)->set_low_rank(f.first.detach(), f.second.detach());
  return losses;
}

}  // namespace

void heal_layer(Transformer& net, Transformer& dense, int64_t layer, const HiddenStates& compressed,
                const HiddenStates* dense_in, const std::map<std::string, std::string>& shared_input,
                json& layers, const CalibStats* dense_stats) {
  check(!dense_in || dense_in->batches.size() == compressed.batches.size(), "",
        "dense and compressed hidden states differ in their batches");
  // Consecutive linears that read the same input, in forward order.
  std::vector<std::vector<std::string>> groups;
  std::string last_owner;
  for (const Linear* l : net.layer_linears(layer)) {
    auto it = shared_input.find(l->name());
    const std::string& owner = it == shared_input.end() ? l->name() : it->second;
    if (groups.empty() || owner != last_owner) groups.emplace_back();
    groups.back().push_back(l->name());
    last_owner = owner;
  }
  for (const auto& group : groups) {
    if (!any_low_rank(net, group)) continue;
    // The inputs as this layer, compressed and healed up to this group, produces them.
    GroupGrams g;
    const LinearStats* known = dense_in && dense_stats ? dense_stats->find(group.front()) : nullptr;
    if (known) g.D = known->gram;  // Σ x xᵀ of the dense input: the calibration Gram itself
    for (size_t i = 0; i < compressed.batches.size(); ++i)
      g.add(layer_group_input(net, layer, compressed.batches[i], group.front()),
            dense_in ? layer_group_input(dense, layer, dense_in->batches[i], group.front()) : at::Tensor(), !known);
    refit_group(net, dense, group, g, dense_in != nullptr, layers);
  }
}

json heal(Transformer& net, Transformer& dense, const std::vector<int32_t>& ids, const HealOptions& o) {
  json out = json::object();
  if (o.closed_form) out["layers"] = closed_form(net, dense, ids, o);
  if (o.steps > 0) out["step_losses"] = gradient_steps(net, ids, o);
  return out;
}

}  // namespace rankrl
