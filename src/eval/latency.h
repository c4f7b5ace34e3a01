// Measured speed on this machine: the time of a whole forward pass for a stated workload, the time
// of each Linear inside such passes, and a table of Linear times per shape and rank cached on disk
// (as the factor store is) so that a latency budget (search --budget latency) can add up the
// predicted time of a plan without timing every candidate.
//
// A workload is what one forward pass processes: `prefill:BxT` (B sequences of T tokens, no cache)
// or `decode:B` (B sequences, one new token each, after a short cached context). A Linear sees
// B·T input rows in prefill and B in decode.
//
// Times are medians over repeats after warm-up passes; they are noisy on a shared machine, so the
// table is measured once per (machine, threads, workload, dtype) and reused.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace rankrl {

class Transformer;

struct Workload {
  bool decode = false;
  int64_t batch = 8, tokens = 256;  // tokens = 1 for decode
  // Rows a Linear multiplies per forward pass.
  int64_t rows() const { return decode ? batch : batch * tokens; }
  // Tokens one forward pass produces (the tokens/s numerator).
  int64_t tokens_per_forward() const { return rows(); }
  std::string text() const;  // "prefill:8x256" | "decode:1"
};

// "prefill:8x256" | "decode:1"; throws usage_error on anything else.
Workload parse_workload(const std::string& text);

// One Linear: in → out features, rank 0 = dense; dtype of the stored weights ("bf16", "f16", "f32").
struct LinearShape {
  int64_t in = 0, out = 0, rank = 0;
  std::string key() const;  // "in x out r rank" (the table's entry name)
};

// Median seconds of one forward pass of `net` on the workload (random token ids; decode: one
// token per sequence after a cached context of up to 64 tokens, the cache growing by one a pass).
double time_forward(const Transformer& net, const Workload& w, int repeats = 7);

// The same forward passes with each Linear timed inside them: the median seconds of a pass and,
// per Linear (net.linears() order), of its calls in one pass. A Linear timed inside the forward
// sees the cache and allocator state of the real model, which isolated timings of one Linear at a
// time do not: they put a plan of thin factor pairs at 0.835 of the dense forward where it
// measured 0.908 (default model, prefill 8x256; README "Budget"). `layers` > 0: the passes stop
// after the first `layers` decoder layers (the Linears of later layers then read 0).
struct ForwardTimes {
  double forward = 0.0;
  std::vector<double> linears;
};
ForwardTimes time_forward_by_linear(const Transformer& net, const Workload& w, int repeats = 7, int64_t layers = 0);

// Prefill and decode speed of `net` in tokens per second (1 / time_forward · tokens per pass).
struct Speed {
  double prefill_tokens_per_second = 0.0, decode_tokens_per_second = 0.0;
  std::string prefill_workload, decode_workload;
};
Speed measure_speed(const Transformer& net, const Workload& prefill, const Workload& decode, int repeats = 5);
// The workloads every speed report uses: prefill:8x256 (T clipped to the model's context), decode:1.
Workload default_prefill(const Transformer& net);
Workload default_decode();

// Storage dtype name of `net`'s weights ("bf16", "f16", "f32").
std::string weight_dtype_name(const Transformer& net);

// Machine identity in the cache key: host name, CPU model and logical CPU count.
std::string machine_identity();

// Linear times (seconds) per shape for one (machine, threads, workload, dtype), plus the measured
// time of the non-linear rest of the forward pass per model identity. Entries are set by
// measure_in_forward() (or, when a `measure` function is given, measured on first use) and kept;
// save() writes the file atomically.
class LatencyTable {
 public:
  using Measure = std::function<double(const LinearShape&)>;
  LatencyTable(std::string machine, int threads, Workload workload, std::string dtype, Measure measure = {});

  // The cache file name inside a directory: latency-<hash of machine, threads, workload, dtype>.json.
  std::string file_name() const;
  // Reads `path` when it exists. A file for another key or a corrupt one throws Error(path, ...)
  // (the caller warns and measures again). Returns the number of entries loaded.
  int64_t load(const std::string& path);
  // Loads an injected table file (tests, or a table measured elsewhere) whatever its key; entries
  // it lacks are an error rather than measured.
  void load_fixed(const std::string& path);
  void save(const std::string& path) const;

  // The entry of `shape`; a missing one is measured when the table has a `measure` function (not
  // after load_fixed), else an error.
  double seconds(const LinearShape& shape);
  bool has(const LinearShape& shape) const { return entries_.count(shape.key()) > 0; }
  void set(const LinearShape& shape, double seconds) { entries_[shape.key()] = seconds; }
  // The rest of the forward pass (embedding, norms, attention, head) for a model identity.
  void set_rest_seconds(const std::string& model, double s) { rest_[model] = s; }
  const double* rest_seconds(const std::string& model) const;
  const Workload& workload() const { return workload_; }
  const std::string& dtype() const { return dtype_; }
  int threads() const { return threads_; }

 private:
  std::string to_text() const;
  void read(const std::string& path, bool check_key);

  std::string machine_;
  int threads_;
  Workload workload_;
  std::string dtype_;
  Measure measure_;
  std::map<std::string, double> entries_, rest_;
};

// Sets what `table` lacks for `net` (model identity `model`): each Linear shape's time measured
// inside whole forward passes (time_forward_by_linear), the median over the Linears of that shape.
// Dense times and the rest of the pass (forward minus its Linears) come from the model itself; the
// time at the k-th rank of `ranks(in, out)` (k = 0, 1, ...; a shorter list repeats its last rank)
// from a copy whose first two decoder layers have every projection replaced by factors of that
// rank (deterministic values of the stored dtype), timed in passes that stop after those two
// layers: every shape gets a time in context, while the copy costs two layers' factors rather
// than a second model and a pass two layers' time rather than the whole model's (a 22-layer model
// would otherwise spend 16 × 9 whole forward passes on the table).
using RanksOf = std::function<std::vector<int64_t>(int64_t in, int64_t out)>;
void measure_in_forward(LatencyTable& table, const Transformer& net, const std::string& model, const RanksOf& ranks,
                        int repeats = 7);

}  // namespace rankrl
