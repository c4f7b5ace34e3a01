#include "compress/refit.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>

#include "core/error.h"
#include "model/transformer.h"

namespace rankrl {

namespace {

// Σ x̃x̃ᵀ and Σ x x̃ᵀ of one weight's inputs, float64 [n, n].
struct PairGram {
  at::Tensor gram, cross;
};

std::map<std::string, PairGram> pair_grams(Transformer& dense, Transformer& net, const std::vector<std::string>& names,
                                           const at::Tensor& windows) {
  std::map<std::string, at::Tensor> dense_inputs;
  std::map<std::string, PairGram> acc;
  auto wanted = [&](const Linear& l) { return std::find(names.begin(), names.end(), l.name()) != names.end(); };
  dense.set_observer([&](const Linear& l, const at::Tensor& x) {
    if (wanted(l)) dense_inputs[l.name()] = x.reshape({-1, x.size(-1)}).to(at::kDouble);
  });
  net.set_observer([&](const Linear& l, const at::Tensor& x) {
    if (!wanted(l)) return;
    at::Tensor xt = x.reshape({-1, x.size(-1)}).to(at::kDouble);
    const at::Tensor& xd = dense_inputs.at(l.name());
    PairGram& p = acc[l.name()];
    at::Tensor g = at::matmul(xt.t(), xt), c = at::matmul(xd.t(), xt);
    p.gram = p.gram.defined() ? p.gram + g : g;
    p.cross = p.cross.defined() ? p.cross + c : c;
  });
  constexpr int64_t kBatch = 8;
  for (int64_t w = 0; w < windows.size(0); w += kBatch) {
    at::Tensor batch = windows.narrow(0, w, std::min(kBatch, windows.size(0) - w));
    dense.forward(batch);
    net.forward(batch);
  }
  dense.set_observer({});
  net.set_observer({});
  return acc;
}

// The factored weights of `net` in forward order, grouped into runs that read the same input
// tensor (found by one probe window through the dense model; holding every input keeps the
// allocator from reusing an address, so equal pointers mean the same tensor).
std::vector<std::vector<std::string>> factored_stages(Transformer& dense, Transformer& net, const at::Tensor& probe) {
  std::map<std::string, at::Tensor> input_of;
  dense.set_observer([&](const Linear& l, const at::Tensor& x) { input_of[l.name()] = x; });
  dense.forward(probe);
  dense.set_observer({});
  std::vector<std::vector<std::string>> stages;
  const void* last = nullptr;
  for (const Linear* l : net.linears()) {
    if (!l->is_low_rank()) continue;
    const void* in = input_of.at(l->name()).data_ptr();
    if (stages.empty() || in != last) stages.emplace_back();
    stages.back().push_back(l->name());
    last = in;
  }
  return stages;
}

// Ŵ = U_r U_rᵀ W* (see refit.h), as factors A = U_r [m, r], B = U_rᵀ W* [r, n].
void refit_weight(const at::Tensor& W, Linear& target, const PairGram& p) {
  const int64_t n = W.size(1), r = target.rank();
  at::Tensor w = W.to(at::kDouble);
  // A small ridge toward W keeps G̃ invertible (dead channels) without pulling the fit to zero.
  const double lambda = 1e-6 * p.gram.diagonal().mean().item<double>() + 1e-12;
  at::Tensor eye = at::eye(n, w.options());
  at::Tensor g = p.gram + lambda * eye;
  at::Tensor w_star = at::linalg_solve(g, (at::matmul(w, p.cross) + lambda * w).t()).t();
  at::Tensor s = at::linalg_cholesky(g);
  auto [U, S, Vh] = at::linalg_svd(at::matmul(w_star, s), false);
  at::Tensor Ur = U.narrow(1, 0, r);
  target.set_low_rank(Ur.to(at::kFloat).contiguous(), at::matmul(Ur.t(), w_star).to(at::kFloat).contiguous());
}

}  // namespace

RefitStats refit_compensated(Transformer& dense, Transformer& net, const std::vector<int32_t>& ids, int64_t ctx) {
  auto start = std::chrono::steady_clock::now();
  check(ctx >= 1 && int64_t(ids.size()) >= ctx, "", "refit: needs at least ctx = " + std::to_string(ctx) + " calibration tokens");
  c10::InferenceMode guard;
  const int64_t W = int64_t(ids.size()) / ctx;
  at::Tensor windows = at::tensor(at::ArrayRef<int32_t>(ids.data(), size_t(W * ctx))).to(at::kLong).view({W, ctx});
  RefitStats out;
  // Stages in forward order, so each weight sees the inputs its refitted predecessors give;
  // weights that read the same tensor (q/k/v, gate/up) share a stage and its two passes.
  for (const std::vector<std::string>& stage : factored_stages(dense, net, windows.narrow(0, 0, 1))) {
    std::map<std::string, PairGram> grams = pair_grams(dense, net, stage, windows);
    out.passes += 2;
    for (const std::string& name : stage) {
      refit_weight(dense.find_linear(name)->dense_weight(), *net.find_linear(name), grams.at(name));
      out.weights++;
    }
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace rankrl
