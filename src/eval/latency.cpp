#include "eval/latency.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.h"
#include "core/fs.h"
#include "data/hashing.h"
#include "model/linear.h"
#include "model/transformer.h"

namespace rankrl {

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Median over `repeats` timings of `calls` calls of f (per call), after two warm-up calls.
template <class F>
double median_seconds(F&& f, int repeats, int calls) {
  f();
  f();
  std::vector<double> t;
  for (int r = 0; r < std::max(repeats, 1); ++r) {
    auto start = Clock::now();
    for (int c = 0; c < calls; ++c) f();
    t.push_back(std::chrono::duration<double>(Clock::now() - start).count() / calls);
  }
  return median(t);
}

at::ScalarType dtype_of(const std::string& name) {
  if (name == "bf16") return at::kBFloat16;
  if (name == "f16") return at::kHalf;
  check(name == "f32", "", "unknown weight dtype '" + name + "'");
  return at::kFloat;
}

// Deterministic, non-degenerate values (no draw from the global generator, which the search's
// determinism relies on): a small sawtooth.
at::Tensor fill(std::vector<int64_t> shape, at::ScalarType type) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return at::arange(n, at::kFloat).remainder_(17.0).sub_(8.0).mul_(0.01).reshape(shape).to(type);
}

at::Tensor token_ids(int64_t batch, int64_t tokens, int64_t vocab) {
  return at::arange(batch * tokens, at::kLong).mul_(7919).remainder_(std::max<int64_t>(vocab, 1)).reshape({batch, tokens});
}

}  // namespace

std::string Workload::text() const {
  return decode ? "decode:" + std::to_string(batch) : "prefill:" + std::to_string(batch) + "x" + std::to_string(tokens);
}

Workload parse_workload(const std::string& text) {
  auto bad = [&] { return usage_error("--latency-workload '" + text + "': expected prefill:BxT or decode:B (positive integers)"); };
  auto number = [&](const std::string& s) {
    if (s.empty() || s.size() > 9 || !std::all_of(s.begin(), s.end(), ::isdigit)) throw bad();
    int64_t v = std::stoll(s);
    if (v <= 0) throw bad();
    return v;
  };
  Workload w;
  if (text.rfind("decode:", 0) == 0) {
    w.decode = true;
    w.batch = number(text.substr(7));
    w.tokens = 1;
    return w;
  }
  if (text.rfind("prefill:", 0) != 0) throw bad();
  const std::string rest = text.substr(8);
  const size_t x = rest.find('x');
  if (x == std::string::npos) throw bad();
  w.batch = number(rest.substr(0, x));
  w.tokens = number(rest.substr(x + 1));
  return w;
}

std::string LinearShape::key() const {
  return std::to_string(in) + "x" + std::to_string(out) + " r" + std::to_string(rank);
}

double time_linear(const LinearShape& s, const std::string& dtype, const Workload& w, int repeats) {
  c10::InferenceMode guard;
  const at::ScalarType type = dtype_of(dtype);
  const Linear l = s.rank == 0 ? Linear::dense("t", fill({s.out, s.in}, type))
                               : Linear::low_rank("t", fill({s.out, s.rank}, type), fill({s.rank, s.in}, type));
  const at::Tensor x = w.decode ? fill({w.batch, 1, s.in}, at::kFloat) : fill({w.batch, w.tokens, s.in}, at::kFloat);
  const int calls = w.decode ? 20 : 1;
  return median_seconds([&] { (void)l.forward(x); }, repeats, calls);
}

double time_forward(const Transformer& net, const Workload& w, int repeats) {
  c10::InferenceMode guard;
  const int64_t vocab = net.config().vocab_size, max_len = net.config().max_seq_len > 0 ? net.config().max_seq_len : 4096;
  if (!w.decode) {
    const at::Tensor ids = token_ids(w.batch, std::min(w.tokens, max_len), vocab);
    return median_seconds([&] { (void)net.forward(ids); }, repeats, 1);
  }
  // Decode: a short cached context, then one token per sequence a pass (the cache grows by one).
  const int64_t context = std::clamp<int64_t>(max_len - repeats * 20 - 8, 1, 64);
  KVCache cache;
  (void)net.forward(token_ids(w.batch, context, vocab), &cache);
  const at::Tensor next = token_ids(w.batch, 1, vocab);
  const int calls = 10;
  check(context + (repeats + 2) * calls <= max_len, "", "the model's context is too short to time decoding");
  return median_seconds([&] { (void)net.forward(next, &cache); }, repeats, calls);
}

Workload default_prefill(const Transformer& net) {
  Workload w;
  if (net.config().max_seq_len > 0) w.tokens = std::min<int64_t>(w.tokens, net.config().max_seq_len);
  return w;
}

Workload default_decode() { return Workload{true, 1, 1}; }

Speed measure_speed(const Transformer& net, const Workload& prefill, const Workload& decode, int repeats) {
  Speed s;
  s.prefill_workload = prefill.text();
  s.decode_workload = decode.text();
  s.prefill_tokens_per_second = double(prefill.tokens_per_forward()) / time_forward(net, prefill, repeats);
  s.decode_tokens_per_second = double(decode.tokens_per_forward()) / time_forward(net, decode, repeats);
  return s;
}

std::string weight_dtype_name(const Transformer& net) {
  const DType t = net.stored_dtype();
  return t == DType::BF16 ? "bf16" : t == DType::F16 ? "f16" : "f32";
}

std::string machine_identity() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  std::string cpu = "unknown";
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  return std::string(host) + "; " + cpu + "; " + std::to_string(std::thread::hardware_concurrency()) + " CPUs";
}

LatencyTable::LatencyTable(std::string machine, int threads, Workload workload, std::string dtype, Measure measure)
    : machine_(std::move(machine)), threads_(threads), workload_(workload), dtype_(std::move(dtype)), measure_(std::move(measure)) {}

std::string LatencyTable::file_name() const {
  const std::string id = machine_ + "|" + std::to_string(threads_) + "|" + workload_.text() + "|" + dtype_;
  return "latency-" + sha256_hex(id).substr(0, 16) + ".json";
}

std::string LatencyTable::to_text() const {
  nlohmann::json j = {{"machine", machine_}, {"threads", threads_}, {"workload", workload_.text()},
                      {"dtype", dtype_}, {"linear_seconds", entries_}, {"rest_seconds", rest_}};
  return j.dump(2) + "\n";
}

void LatencyTable::read(const std::string& path, bool check_key) {
  const nlohmann::json j = nlohmann::json::parse(read_file(path), nullptr, false);
  check(!j.is_discarded() && j.is_object(), path, "not a latency table (invalid JSON)");
  try {
    if (check_key) {
      check(j.at("machine") == machine_ && j.at("threads") == threads_ && j.at("workload") == workload_.text() &&
                j.at("dtype") == dtype_,
            path, "a latency table for another machine, thread count, workload or dtype");
    }
    std::map<std::string, double> entries = j.at("linear_seconds"), rest = j.at("rest_seconds");
    for (const auto& [k, v] : entries) check(v > 0.0, path, "latency of '" + k + "' is not positive");
    entries_ = std::move(entries);
    rest_ = std::move(rest);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path, std::string("not a latency table: ") + e.what());
  }
}

int64_t LatencyTable::load(const std::string& path) {
  if (!file_exists(path)) return 0;
  read(path, true);
  return int64_t(entries_.size());
}

void LatencyTable::load_fixed(const std::string& path) {
  read(path, false);
  fixed_ = true;
}

void LatencyTable::save(const std::string& path) const { write_file_atomic(path, to_text()); }

double LatencyTable::seconds(const LinearShape& shape) {
  const std::string k = shape.key();
  auto it = entries_.find(k);
  if (it != entries_.end()) return it->second;
  check(!fixed_, "", "the latency table lacks the Linear " + k);
  const double s = measure_(shape);
  check(s > 0.0, "", "measured a non-positive time for the Linear " + k);
  ++measured_;
  return entries_[k] = s;
}

const double* LatencyTable::rest_seconds(const std::string& model) const {
  auto it = rest_.find(model);
  return it == rest_.end() ? nullptr : &it->second;
}

}  // namespace rankrl
