// Measured speed on this machine: the time of one Linear of a given shape (dense or at a rank) for
// a stated workload, the time of a whole forward pass, and a table of Linear times cached on disk
// (as the factor store is) so that a latency budget (search --budget latency) can add up the
// predicted time of a plan without timing every candidate.
//
// A workload is what one forward pass processes: `prefill:BxT` (B sequences of T tokens, no cache)
// or `decode:B` (B sequences, one new token each, after a short cached context). A Linear sees
// B·T input rows in prefill and B in decode.
//
// Times are medians over repeats after warm-up calls; they are noisy on a shared machine, so the
// table is measured once per (machine, threads, workload, dtype) and reused.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>

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

// Median seconds of one call of a Linear of `shape` (random weights of `dtype`) on the workload's
// input, after warm-up. Decode calls are timed in batches of several calls (each is microseconds).
double time_linear(const LinearShape& shape, const std::string& dtype, const Workload& w, int repeats = 7);

// Median seconds of one forward pass of `net` on the workload (random token ids; decode: one
// token per sequence after a cached context of up to 64 tokens, the cache growing by one a pass).
double time_forward(const Transformer& net, const Workload& w, int repeats = 7);

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
// time of the non-linear rest of the forward pass per model identity. Entries are measured on
// first use through `measure` and kept; save() writes the file atomically.
class LatencyTable {
 public:
  using Measure = std::function<double(const LinearShape&)>;
  LatencyTable(std::string machine, int threads, Workload workload, std::string dtype, Measure measure);

  // The cache file name inside a directory: latency-<hash of machine, threads, workload, dtype>.json.
  std::string file_name() const;
  // Reads `path` when it exists. A file for another key or a corrupt one throws Error(path, ...)
  // (the caller warns and measures again). Returns the number of entries loaded.
  int64_t load(const std::string& path);
  // Loads an injected table file (tests, or a table measured elsewhere) whatever its key; entries
  // it lacks are an error rather than measured.
  void load_fixed(const std::string& path);
  void save(const std::string& path) const;

  double seconds(const LinearShape& shape);  // measured on first use (unless fixed)
  bool has(const LinearShape& shape) const { return entries_.count(shape.key()) > 0; }
  int64_t measured() const { return measured_; }  // entries measured by this object
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
  bool fixed_ = false;
  std::map<std::string, double> entries_, rest_;
  int64_t measured_ = 0;
};

}  // namespace rankrl
