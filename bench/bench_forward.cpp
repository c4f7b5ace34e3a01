// bench_forward: prefill throughput of a random Llama-shaped model, next to the same machine's
// matrix-multiply speed on exactly the matrix products that forward pass performs.
//   achieved GFLOP/s = matmul FLOPs of one forward / forward time
//   peak GFLOP/s     = the same FLOPs / time of running only those products with at::mm / at::matmul
// so the ratio says how much of the time goes to anything but the multiplies (norms, RoPE,
// softmax, copies). Optionally factors every projection at --keep to time low-rank layers.
// --dtype bf16|f16 stores the matrices as a real checkpoint does (Linear upcasts them per call, so
// the upcast counts against the forward; the mm-only replay stays float32).
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "core/threads.h"
#include "eval/accounting.h"
#include "model/transformer.h"

using namespace rankrl;

namespace {

struct Shape {
  int64_t dim = 1024, hidden = 2816, layers = 8, heads = 16, kv_heads = 16, vocab = 32000;
  int64_t batch = 4, T = 512;
  at::ScalarType type = at::kFloat;  // of the weight matrices
};

ModelConfig make_config(const Shape& s) {
  return llama_config({s.dim, s.hidden, s.layers, s.heads, s.kv_heads, s.vocab, s.T});
}

// Norm weights 1, matrices Gaussian with 1/sqrt(fan-in) scale in `matrix_type`: every tensor the
// config requires.
WeightMap random_weights(const ModelConfig& c, at::ScalarType matrix_type) {
  WeightMap w;
  for (const WeightSpec& spec : weight_specs(c))
    w[spec.name] = spec.shape.size() == 1
                       ? at::ones(spec.shape)
                       : (at::randn(spec.shape) / std::sqrt(double(spec.shape[1]))).to(matrix_type);
  return w;
}

// Factors every projection at rank floor(keep·m·n/(m+n)) with random factors (timing only).
void make_low_rank(Transformer& net, double keep, at::ScalarType type) {
  for (Linear* l : net.linears()) {
    int64_t m = l->out_features(), n = l->in_features();
    int64_t r = std::max<int64_t>(1, int64_t(keep * double(m * n) / double(m + n)));
    l->set_low_rank((at::randn({m, r}) / std::sqrt(double(r))).to(type),
                    (at::randn({r, n}) / std::sqrt(double(n))).to(type));
  }
}

template <class F>
double best_seconds(int reps, F&& f) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// Replays the forward pass's matrix products (same shapes, same count) with bare at::mm/matmul,
// in float32 whatever the stored type (the peak the forward's float32 math could reach).
double matmul_only_seconds(const Transformer& net, const Shape& s, int reps) {
  const ModelConfig& c = net.config();
  int64_t BT = s.batch * s.T;
  std::vector<std::pair<at::Tensor, at::Tensor>> products;
  for (const Linear* l : net.linears()) {
    if (l->is_low_rank()) {
      products.push_back({at::randn({BT, l->in_features()}), l->B().to(at::kFloat).t()});
      products.push_back({at::randn({BT, l->rank()}), l->A().to(at::kFloat).t()});
    } else {
      products.push_back({at::randn({BT, l->in_features()}), l->weight().to(at::kFloat).t()});
    }
  }
  products.push_back({at::randn({BT, c.dim}), at::randn({c.vocab_size, c.dim}).t()});
  int64_t G = c.n_heads / c.n_kv_heads;
  at::Tensor q = at::randn({s.batch, c.n_kv_heads, G * s.T, c.head_dim});
  at::Tensor k = at::randn({s.batch, c.n_kv_heads, c.head_dim, s.T});
  at::Tensor p = at::randn({s.batch, c.n_kv_heads, G * s.T, s.T});
  at::Tensor v = at::randn({s.batch, c.n_kv_heads, s.T, c.head_dim});
  return best_seconds(reps, [&] {
    for (auto& [a, b] : products) at::mm(a, b);
    for (int64_t i = 0; i < c.n_layers; ++i) {
      at::matmul(q, k);
      at::matmul(p, v);
    }
  });
}

// Only the projections (every Linear::forward of one pass, on random inputs of the right widths):
// isolates the low-rank path from attention, norms and the LM head, which keep does not shrink.
double linears_only_seconds(const Transformer& net, const Shape& s, int reps, double* flops) {
  std::vector<std::pair<const Linear*, at::Tensor>> calls;
  *flops = 0;
  for (const Linear* l : net.linears()) {
    calls.push_back({l, at::randn({s.batch, s.T, l->in_features()})});
    *flops += double(l->forward_flops_per_token()) * double(s.batch * s.T);
  }
  for (auto& [l, x] : calls) l->forward(x);  // warm-up
  return best_seconds(reps, [&] {
    for (auto& [l, x] : calls) l->forward(x);
  });
}

struct Row {
  double fwd = 0, flops = 0, lin = 0, lin_flops = 0;
};

Row run(const Shape& s, double keep, int reps, const Row* dense) {
  c10::InferenceMode guard;
  at::manual_seed(0);
  ModelConfig c = make_config(s);
  Transformer net(c, random_weights(c, s.type));
  if (keep < 1.0) make_low_rank(net, keep, s.type);
  at::Tensor tokens = at::randint(0, c.vocab_size, {s.batch, s.T}, at::TensorOptions().dtype(at::kLong));
  net.forward(tokens);  // warm-up
  double fwd = best_seconds(reps, [&] { net.forward(tokens); });
  double mm = matmul_only_seconds(net, s, reps);
  double flops = forward_flops(net, s.batch, s.T);
  Row row{fwd, flops, 0, 0};
  row.lin = linears_only_seconds(net, s, reps, &row.lin_flops);
  const Row& d = dense ? *dense : row;
  // speed-up / FLOP ratio: the goal is >= 0.8 for the whole forward.
  std::printf("| %.2f | %.0f | %.1f | %.1f | %.2f | %.1f | %.2f | %.2f | %.2f | %.1f | %.2f | %.2f | %.2f |\n", keep,
              double(s.batch * s.T) / fwd, flops / fwd / 1e9, flops / mm / 1e9, mm / fwd, fwd * 1e3,
              d.flops / flops, d.fwd / fwd, (d.fwd / fwd) / (d.flops / flops), row.lin * 1e3,
              d.lin_flops / row.lin_flops, d.lin / row.lin, (d.lin / row.lin) / (d.lin_flops / row.lin_flops));
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Prefill benchmark of a random Llama-shaped model (dense and low-rank)"};
  Shape s;
  int threads = 0, reps = 3;
  std::vector<double> keeps = {1.0};
  app.add_option("--dim", s.dim);
  app.add_option("--hidden", s.hidden);
  app.add_option("--layers", s.layers);
  app.add_option("--heads", s.heads);
  app.add_option("--kv-heads", s.kv_heads);
  app.add_option("--vocab", s.vocab);
  app.add_option("--batch", s.batch);
  app.add_option("--seq", s.T);
  app.add_option("--keep", keeps, "Keep fractions to time (1 = dense), e.g. --keep 1 0.7 0.5 0.3");
  app.add_option("--reps", reps);
  app.add_option("--threads", threads);
  std::string dtype = "f32";
  app.add_option("--dtype", dtype, "Stored type of the weight matrices")->check(CLI::IsMember({"f32", "f16", "bf16"}));
  CLI11_PARSE(app, argc, argv);
  s.type = dtype == "bf16" ? at::kBFloat16 : dtype == "f16" ? at::kHalf : at::kFloat;
  int n = setup_threads(threads);
  std::printf("model: d=%lld ffn=%lld layers=%lld heads=%lld/%lld vocab=%lld, B×T=%lld×%lld, %s weights, %d threads\n\n",
              (long long)s.dim, (long long)s.hidden, (long long)s.layers, (long long)s.heads,
              (long long)s.kv_heads, (long long)s.vocab, (long long)s.batch, (long long)s.T, dtype.c_str(), n);
  std::printf("Speed-ups are against the first --keep row (give 1 first). 'linears' times only the\n"
              "projections (Linear::forward), without attention, norms and the LM head.\n\n");
  std::printf("| keep | tokens/s | achieved GFLOP/s | mm-only GFLOP/s | ratio | ms/forward | FLOP ratio | speed-up "
              "| speed-up/FLOP ratio | linears ms | linears FLOP ratio | linears speed-up | linears speed-up/FLOP ratio |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  Row first;
  bool have_first = false;
  for (double keep : keeps) {
    Row r = run(s, keep, reps, have_first ? &first : nullptr);
    if (!have_first) first = r, have_first = true;
  }
  return 0;
}
