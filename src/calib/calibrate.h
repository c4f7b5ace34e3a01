// Calibration: per-linear input statistics (Gram XᵀX in float64, mean |x|, optional diagonal
// empirical Fisher) streamed through the transformer's LinearObserver hook. Activations are folded
// into the accumulators window batch by window batch and never held.
//
// Layer-streamed (as GPTQ and SVD-LLM calibrate): the hidden states of every calibration window
// ([windows, ctx, dim] float32, grouped in batches) are carried from one decoder layer to the
// next, and only the current layer's statistics are accumulated at a time. Every linear input is
// the same tensor the whole-model forward would feed it, so the statistics are the same.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "decompose/stats.h"

namespace rankrl {

struct Model;
class Tokenizer;
class Transformer;

// Weight name -> statistics of that linear's input. Linears that read the same tensor (Llama
// q/k/v read the attention-norm output, gate/up the MLP-norm output) share one accumulator, so
// their entries hold the same gram/abs_mean tensors; `shared_input` records which weight's
// accumulator each one uses (itself when not shared).
struct CalibStats {
  std::map<std::string, LinearStats> stats;
  std::map<std::string, std::string> shared_input;
  int64_t tokens = 0;  // calibration tokens seen
  int64_t ctx = 0;
  int64_t windows = 0;
  bool fisher = false;
  std::string model_identity;  // search::model_identity of the model they were taken on
  double seconds = 0.0;
  int64_t peak_rss_bytes = 0;  // process peak after calibration (getrusage)

  const LinearStats* find(const std::string& weight) const;
};

struct CalibOptions {
  int64_t tokens = 0;  // first N tokens of the file's tokenization (BOS included when added)
  int64_t ctx = 0;     // window length; a last partial window is KEPT so all N tokens count
  int64_t batch = 8;   // windows per forward pass
  bool fisher = false;
  // Also LinearStats::out_gram of every linear (the gradient of the whole calibration text's mean
  // NLL at each output token; whole-model backward like fisher).
  bool output_grads = false;
};

// The first `n` token ids of `path` tokenized as one string (BOS first when the tokenizer adds
// one). Error(path, "too few calibration tokens ...") when the file has fewer.
std::vector<int32_t> calibration_ids(const Tokenizer& tok, const std::string& path, int64_t n);

// Runs the model (dense or not, as it is) over `ids` in windows of opts.ctx under InferenceMode
// and accumulates the statistics of every linear's input, layer by layer. With opts.fisher, also
// sums over windows the squared gradient of the window's mean next-token NLL w.r.t. every weight
// (autograd on a grad-enabled clone of the dense weights; this part runs the whole model). With
// opts.output_grads, the same backward passes fill every LinearStats::out_gram.
CalibStats calibrate(const Transformer& net, const std::vector<int32_t>& ids, const CalibOptions& opts);

// The layer-streamed pass behind calibrate (no Fisher): `sink(layer, stats)` receives each decoder
// layer's statistics (only its linears; tokens/ctx/windows filled) as soon as they are complete,
// so a caller that writes or consumes them holds one layer's statistics at a time.
void calibrate_layers(const Transformer& net, const std::vector<int32_t>& ids, const CalibOptions& opts,
                      const std::function<void(int64_t layer, CalibStats&& stats)>& sink);

// Throws a usage error unless `ctx` is a valid calibration window for `net`.
void check_calib_ctx(const Transformer& net, int64_t ctx);

// The hidden states of the calibration windows between two decoder layers: batches of up to
// `batch` consecutive equal-length windows ([b, len, dim] float32, in window order; a shorter last
// window alone), the grouping the whole-model calibration forward uses.
struct HiddenStates {
  std::vector<at::Tensor> batches;
  int64_t windows() const;
};

// The embeddings of `ids` cut into windows of `ctx` (the last partial window kept).
HiddenStates embed_windows(const Transformer& net, const std::vector<int32_t>& ids, int64_t ctx, int64_t batch);

// Decoder layer `layer` of `net` applied to every batch (InferenceMode). With `stats`, the
// statistics of that layer's linear inputs are accumulated and stored into *stats (stats and
// shared_input of those linears; the other fields are left alone).
HiddenStates run_layer(const Transformer& net, int64_t layer, const HiddenStates& in, CalibStats* stats = nullptr);

// Process peak resident set size in bytes (getrusage ru_maxrss).
int64_t peak_rss_bytes();

}  // namespace rankrl
