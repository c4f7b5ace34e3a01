#include "eval/latency.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <numeric>
#include <memory>
#include <unordered_map>
#include <utility>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
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

namespace {

// One step of the workload on `net` (a prefill forward, or one new token per sequence on a cache
// that grows by one a step) and how many steps one timing averages over (decode steps are short).
struct Steps {
  std::function<void()> step;
  int calls = 1;
};

// `layers` > 0: each step runs the embedding and the first `layers` decoder layers only.
Steps workload_steps(const Transformer& net, const Workload& w, int repeats, int64_t layers = 0) {
  const int64_t vocab = net.config().vocab_size, max_len = net.config().max_seq_len > 0 ? net.config().max_seq_len : 4096;
  auto run = [&net, layers](const at::Tensor& ids, KVCache* cache) {
    if (layers <= 0) return (void)net.forward(ids, cache);
    const int64_t pos0 = cache ? cache->length() : 0;
    at::Tensor x = net.embed(ids, pos0);
    for (int64_t i = 0; i < layers; ++i) x = net.block(i, x, cache, pos0);
  };
  if (!w.decode) {
    const at::Tensor ids = token_ids(w.batch, std::min(w.tokens, max_len), vocab);
    return {[run, ids] { run(ids, nullptr); }, 1};
  }
  // Decode: a short cached context, then one token per sequence a step.
  const int calls = 10;
  const int64_t context = std::clamp<int64_t>(max_len - repeats * 20 - 8, 1, 64);
  check(context + (repeats + 2) * calls <= max_len, "", "the model's context is too short to time decoding");
  auto cache = std::make_shared<KVCache>();
  run(token_ids(w.batch, context, vocab), cache.get());
  const at::Tensor next = token_ids(w.batch, 1, vocab);
  return {[run, cache, next] { run(next, cache.get()); }, calls};
}

}  // namespace

double time_forward(const Transformer& net, const Workload& w, int repeats) {
  c10::InferenceMode guard;
  const Steps s = workload_steps(net, w, repeats);
  return median_seconds(s.step, repeats, s.calls);
}

ForwardTimes time_forward_by_linear(const Transformer& net, const Workload& w, int repeats, int64_t layers) {
  c10::InferenceMode guard;
  Transformer timed = net;  // shares the weights; only the copy carries the timer
  const std::vector<const Linear*> linears = std::as_const(timed).linears();
  std::unordered_map<const Linear*, size_t> index;
  for (size_t i = 0; i < linears.size(); ++i) index[linears[i]] = i;
  std::vector<double> pass(linears.size(), 0.0);
  timed.set_timer([&](const Linear& l, double seconds) { pass[index.at(&l)] += seconds; });
  const Steps s = workload_steps(timed, w, repeats, layers);
  s.step();
  s.step();
  std::vector<double> forward;
  std::vector<std::vector<double>> per(linears.size());
  for (int r = 0; r < std::max(repeats, 1); ++r) {
    std::fill(pass.begin(), pass.end(), 0.0);
    const auto start = Clock::now();
    for (int c = 0; c < s.calls; ++c) s.step();
    forward.push_back(std::chrono::duration<double>(Clock::now() - start).count() / s.calls);
    for (size_t i = 0; i < pass.size(); ++i) per[i].push_back(pass[i] / s.calls);
  }
  ForwardTimes t;
  t.forward = median(forward);
  for (size_t i = 0; i < per.size(); ++i) t.linears.push_back(median(per[i]));
  return t;
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
  // "in-forward": tables of Linears timed one at a time (before measure_in_forward) are not reused.
  const std::string id = "in-forward|" + machine_ + "|" + std::to_string(threads_) + "|" + workload_.text() + "|" + dtype_;
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
  measure_ = {};  // an injected table is the whole truth: a missing entry is an error
}

void LatencyTable::save(const std::string& path) const { write_file_atomic(path, to_text()); }

double LatencyTable::seconds(const LinearShape& shape) {
  const std::string k = shape.key();
  auto it = entries_.find(k);
  if (it != entries_.end()) return it->second;
  check(bool(measure_), "", "the latency table lacks the Linear " + k);
  const double s = measure_(shape);
  check(s > 0.0, "", "measured a non-positive time for the Linear " + k);
  return entries_[k] = s;
}

const double* LatencyTable::rest_seconds(const std::string& model) const {
  auto it = rest_.find(model);
  return it == rest_.end() ? nullptr : &it->second;
}

namespace {

// Sets, for each shape (rank included) of `linears` (only the low-rank ones with `factored_only`),
// the median of their `times` (in linears order) unless the table has it.
void set_shape_medians(LatencyTable& table, const std::vector<const Linear*>& linears, const std::vector<double>& times,
                       bool factored_only) {
  std::map<std::string, std::pair<LinearShape, std::vector<double>>> by_shape;
  for (size_t i = 0; i < linears.size(); ++i) {
    const Linear& l = *linears[i];
    if (factored_only && !l.is_low_rank()) continue;
    const LinearShape shape{l.in_features(), l.out_features(), l.is_low_rank() ? l.rank() : 0};
    by_shape.try_emplace(shape.key(), shape, std::vector<double>{}).first->second.second.push_back(times[i]);
  }
  for (const auto& [key, entry] : by_shape)
    if (!table.has(entry.first)) table.set(entry.first, median(entry.second));
}

}  // namespace

void measure_in_forward(LatencyTable& table, const Transformer& net, const std::string& model, const RanksOf& ranks,
                        int repeats) {
  c10::InferenceMode guard;
  const std::vector<const Linear*> linears = net.linears();
  bool dense_missing = table.rest_seconds(model) == nullptr;
  size_t rank_steps = 0;  // how many factored copies are needed (the longest list with a gap)
  for (const Linear* l : linears) {
    const int64_t in = l->in_features(), out = l->out_features();
    dense_missing = dense_missing || !table.has({in, out, 0});
    const std::vector<int64_t> rs = ranks(in, out);
    for (size_t k = 0; k < rs.size(); ++k)
      if (!table.has({in, out, rs[k]})) rank_steps = std::max(rank_steps, k + 1);
  }
  if (dense_missing) {
    info("latency table: timing the dense model's Linears inside " + table.workload().text() + " forward passes");
    const ForwardTimes d = time_forward_by_linear(net, table.workload(), repeats);
    set_shape_medians(table, linears, d.linears, false);
    const double linear_sum = std::accumulate(d.linears.begin(), d.linears.end(), 0.0);
    table.set_rest_seconds(model, std::max(d.forward - linear_sum, 0.0));
  }
  const int64_t layers = std::min<int64_t>(net.config().n_layers, 2);
  Progress bar("latency table: factored forward passes", int64_t(rank_steps), "pass");
  for (size_t k = 0; k < rank_steps; ++k) {
    Transformer copy = net;
    for (int64_t layer = 0; layer < layers; ++layer)
      for (Linear* l : copy.layer_linears(layer)) {
        const std::vector<int64_t> rs = ranks(l->in_features(), l->out_features());
        if (rs.empty()) continue;
        const int64_t r = rs[std::min(k, rs.size() - 1)];
        const at::ScalarType type = l->stored_type();
        l->set_low_rank(fill({l->out_features(), r}, type), fill({r, l->in_features()}, type));
      }
    const ForwardTimes f = time_forward_by_linear(copy, table.workload(), repeats, layers);
    // Only the factored layers ran: the dense Linears after them read 0.
    set_shape_medians(table, std::as_const(copy).linears(), f.linears, true);
    bar.advance();
  }
  bar.finish();
}

}  // namespace rankrl
