#include "calib/calibrate.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <sys/resource.h>

#include <chrono>
#include <memory>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "model/config.h"
#include "model/transformer.h"
#include "tokenizer/tokenizer.h"

namespace rankrl {

namespace {

// Feeds each Linear's input to an accumulator. A linear whose input is the very tensor the
// previous linear just saw (q/k/v, gate/up) reuses that accumulator: the Gram of a shared input
// is computed once. Holding `last_input_` keeps the tensor alive, so pointer identity cannot be
// fooled by an allocator reusing the address of a freed activation.
class InputStatsObserver {
 public:
  void observe(const Linear& l, const at::Tensor& x) {
    if (last_input_.defined() && x.is_same(last_input_)) {
      owner_[l.name()] = last_owner_;
      return;
    }
    owner_[l.name()] = l.name();
    auto it = acc_.find(l.name());
    if (it == acc_.end()) it = acc_.emplace(l.name(), StatsAccumulator(l.in_features(), l.name())).first;
    it->second.add(x.detach());
    last_input_ = x;
    last_owner_ = l.name();
  }
  // Drops the held activation between forwards.
  void end_forward() { last_input_ = at::Tensor(); }

  void finish(CalibStats& out) const {
    std::map<std::string, LinearStats> by_owner;
    for (const auto& [name, acc] : acc_) by_owner[name] = acc.finish();
    for (const auto& [name, owner] : owner_) {
      out.stats[name] = by_owner.at(owner);
      out.shared_input[name] = owner;
    }
  }

 private:
  std::map<std::string, StatsAccumulator> acc_;
  std::map<std::string, std::string> owner_;
  at::Tensor last_input_;
  std::string last_owner_;
};

// [start, length) of each window over n tokens; the last partial window is kept.
std::vector<std::pair<int64_t, int64_t>> windows_of(int64_t n, int64_t ctx) {
  std::vector<std::pair<int64_t, int64_t>> w;
  for (int64_t s = 0; s < n; s += ctx) w.push_back({s, std::min(ctx, n - s)});
  return w;
}

// Clears the observer of a net on scope exit (also when an exception unwinds).
struct ObserverReset {
  Transformer& net;
  ~ObserverReset() { net.set_observer(nullptr); }
};

}  // namespace

int64_t HiddenStates::windows() const {
  int64_t n = 0;
  for (const at::Tensor& b : batches) n += b.size(0);
  return n;
}

HiddenStates embed_windows(const Transformer& net, const std::vector<int32_t>& ids, int64_t ctx, int64_t batch) {
  c10::InferenceMode guard;
  const at::Tensor all = at::tensor(at::ArrayRef<int32_t>(ids)).to(at::kLong);
  const auto wins = windows_of(all.numel(), ctx);
  HiddenStates out;
  for (size_t i = 0; i < wins.size();) {
    // Equal-length windows go together; the (shorter) last one runs alone.
    size_t j = i;
    while (j < wins.size() && int64_t(j - i) < batch && wins[j].second == wins[i].second) ++j;
    const int64_t len = wins[i].second, b = int64_t(j - i);
    out.batches.push_back(net.embed(all.narrow(0, wins[i].first, b * len).view({b, len})));
    i = j;
  }
  return out;
}

HiddenStates run_layer(const Transformer& net, int64_t layer, const HiddenStates& in, CalibStats* stats) {
  c10::InferenceMode guard;
  InputStatsObserver obs;
  // set_observer is non-const; the observer only reads. The net is restored before returning.
  auto& mutable_net = const_cast<Transformer&>(net);
  if (stats) mutable_net.set_observer([&obs](const Linear& l, const at::Tensor& x) { obs.observe(l, x); });
  ObserverReset reset{mutable_net};
  HiddenStates out;
  for (const at::Tensor& x : in.batches) {
    out.batches.push_back(net.block(layer, x));
    obs.end_forward();
  }
  if (stats) obs.finish(*stats);
  return out;
}

void check_calib_ctx(const Transformer& net, int64_t ctx) {
  if (ctx < 1) throw usage_error("the calibration window length must be at least 1");
  const int64_t max_len = net.config().max_seq_len;
  if (max_len > 0 && ctx > max_len)
    throw usage_error("calibration window length " + std::to_string(ctx) +
                      " exceeds the model's maximum sequence length " + std::to_string(max_len));
}

void calibrate_layers(const Transformer& net, const std::vector<int32_t>& ids, const CalibOptions& opts,
                      const std::function<void(int64_t, CalibStats&&)>& sink) {
  check_calib_ctx(net, opts.ctx);
  HiddenStates hidden = embed_windows(net, ids, opts.ctx, std::max<int64_t>(opts.batch, 1));
  const int64_t layers = net.config().n_layers;
  Progress progress("calibrate", layers, "layers");
  for (int64_t i = 0; i < layers; ++i) {
    CalibStats layer;
    layer.tokens = int64_t(ids.size());
    layer.ctx = opts.ctx;
    layer.windows = hidden.windows();
    layer.model_identity = model_identity(net.config());
    hidden = run_layer(net, i, hidden, &layer);
    sink(i, std::move(layer));
    progress.set_note("layer " + std::to_string(i + 1) + "/" + std::to_string(layers));
    progress.advance(1);
  }
  progress.finish();
}

namespace {

// Gradient statistics through a copy of the network whose dense weights require grad, one
// calibration window at a time (windows of fewer than 2 tokens predict nothing):
// - fisher: diagonal empirical Fisher, Σ_windows (∂ mean-NLL(window) / ∂W)² for every weight;
// - out_grams: Σ_tokens g·gᵀ per linear, g = ∂(mean NLL over all N predicted tokens)/∂(the
//   linear's output at that token). A window's backward gives the gradient of its own mean, which
//   is (len−1)/N of the whole mean's: so g·gᵀ is accumulated at the window's scale and divided by
//   N² at the end (one backward serves both statistics).
void accumulate_gradients(const Transformer& net, const at::Tensor& all, int64_t ctx, bool fisher, bool out_grams,
                          CalibStats& out) {
  WeightMap w = net.weights();
  std::map<std::string, at::Tensor> params;
  for (const Linear* l : net.linears()) {
    at::Tensor p = l->dense_weight().detach().clone().requires_grad_(true);
    w.erase(l->name() + ".lowrank_A");
    w.erase(l->name() + ".lowrank_B");
    w[l->name()] = p;
    params[l->name()] = p;
  }
  Transformer grad_net(net.config(), w);
  std::map<std::string, at::Tensor> outputs;  // this window's linear outputs, by weight name
  if (out_grams) grad_net.set_output_observer([&outputs](const Linear& l, const at::Tensor& y) { outputs[l.name()] = y; });
  std::map<std::string, StatsAccumulator> acc;
  for (const auto& [name, p] : params) acc.emplace(name, StatsAccumulator(p.size(1), name));
  std::map<std::string, at::Tensor> grams;
  int64_t predicted = 0;
  Progress progress(fisher ? "fisher" : "gradients", all.numel(), "tok");
  for (const auto& [start, len] : windows_of(all.numel(), ctx)) {
    progress.advance(len);
    if (len < 2) continue;  // nothing to predict
    at::Tensor win = all.narrow(0, start, len).view({1, len});
    outputs.clear();
    at::Tensor logits = grad_net.forward(win);
    at::Tensor loss = at::cross_entropy_loss(logits.narrow(1, 0, len - 1).reshape({len - 1, -1}),
                                             win.narrow(1, 1, len - 1).reshape({len - 1}));
    std::vector<at::Tensor> inputs;
    if (fisher)
      for (const auto& [name, p] : params) inputs.push_back(p);
    if (out_grams)
      for (const auto& [name, y] : outputs) inputs.push_back(y);
    std::vector<at::Tensor> grads = torch::autograd::grad({loss}, inputs);
    size_t i = 0;
    if (fisher)
      for (auto& [name, a] : acc) a.add_weight_grad(grads[i++]);
    if (out_grams)
      for (const auto& [name, y] : outputs) {
        at::Tensor g = grads[i++].reshape({-1, y.size(-1)}).to(at::kDouble).mul_(double(len - 1));
        at::Tensor& gram = grams[name];
        if (!gram.defined()) gram = at::zeros({g.size(1), g.size(1)}, at::kDouble);
        gram.addmm_(g.t(), g);
      }
    predicted += len - 1;
  }
  progress.finish();
  if (fisher)
    for (const auto& [name, a] : acc) out.stats.at(name).fisher = a.finish().fisher;
  if (out_grams) {
    check(predicted > 0, "", "the calibration text has no window of 2 or more tokens to take gradients on");
    for (auto& [name, gram] : grams) out.stats.at(name).out_gram = gram.div_(double(predicted) * double(predicted));
  }
}

}  // namespace

const LinearStats* CalibStats::find(const std::string& weight) const {
  auto it = stats.find(weight);
  return it == stats.end() ? nullptr : &it->second;
}

int64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return int64_t(u.ru_maxrss) * 1024;  // Linux reports kilobytes
}

std::vector<int32_t> calibration_ids(const Tokenizer& tok, const std::string& path, int64_t n) {
  check(n >= 1, path, "--calib-tokens must be at least 1");
  std::vector<int32_t> ids = tok.encode_with_bos(read_text_file(path));
  check(int64_t(ids.size()) >= n, path,
        "too few calibration tokens: the file has " + std::to_string(ids.size()) + ", " +
            std::to_string(n) + " requested");
  ids.resize(size_t(n));
  return ids;
}

CalibStats calibrate(const Transformer& net, const std::vector<int32_t>& ids, const CalibOptions& opts) {
  const auto start = std::chrono::steady_clock::now();
  CalibStats out;
  out.tokens = int64_t(ids.size());
  out.ctx = opts.ctx;
  out.fisher = opts.fisher;
  out.model_identity = model_identity(net.config());
  calibrate_layers(net, ids, opts, [&out](int64_t, CalibStats&& layer) {
    out.windows = layer.windows;
    out.stats.merge(layer.stats);
    out.shared_input.merge(layer.shared_input);
  });
  if (opts.fisher || opts.output_grads) {
    const at::Tensor all = at::tensor(at::ArrayRef<int32_t>(ids)).to(at::kLong);
    accumulate_gradients(net, all, opts.ctx, opts.fisher, opts.output_grads, out);
  }
  out.seconds = seconds_since(start);
  out.peak_rss_bytes = peak_rss_bytes();
  return out;
}

}  // namespace rankrl
