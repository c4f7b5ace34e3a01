// Calibration: per-linear input statistics (Gram XᵀX in float64, mean |x|, optional diagonal
// empirical Fisher) streamed through the transformer's LinearObserver hook. Activations are folded
// into the accumulators window batch by window batch and never held.
#pragma once
#include <cstdint>
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
};

// The first `n` token ids of `path` tokenized as one string (BOS first when the tokenizer adds
// one). Error(path, "too few calibration tokens ...") when the file has fewer.
std::vector<int32_t> calibration_ids(const Tokenizer& tok, const std::string& path, int64_t n);

// Runs the model (dense or not, as it is) over `ids` in windows of opts.ctx under InferenceMode
// and accumulates the statistics of every linear's input. With opts.fisher, also sums over
// windows the squared gradient of the window's mean next-token NLL w.r.t. every weight (autograd
// on a grad-enabled clone of the dense weights).
CalibStats calibrate(const Transformer& net, const std::vector<int32_t>& ids, const CalibOptions& opts);

// Process peak resident set size in bytes (getrusage ru_maxrss).
int64_t peak_rss_bytes();

}  // namespace rankrl
