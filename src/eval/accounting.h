// Parameter, byte and FLOP accounting. "Decomposable linear weights" are the attention and MLP
// projections (not embeddings, norms or the output head), as DESIGN.md's --keep budget defines.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <string>

namespace rankrl {

struct Model;
class Transformer;

struct ParameterCounts {
  std::map<std::string, int64_t> by_group;    // embedding, attention, mlp, norm, head
  std::map<std::string, int64_t> tensors_by_group;
  int64_t total = 0;
  int64_t linear = 0;  // decomposable projection weights (factors when low-rank), no biases
};

// Which group a checkpoint tensor name belongs to.
std::string tensor_group(const std::string& name);

ParameterCounts count_parameters(const Transformer& net);

// Matrix-multiply FLOPs of one forward pass over [batch, T] tokens as this implementation runs
// it: projections, attention scores and values over the full T×T square (masked, not skipped),
// and the output head.
double forward_flops(const Transformer& net, int64_t batch, int64_t T);

// Multiply-add FLOPs per token of the decomposable projection weights: Σ 2·out·in (dense) or
// 2·r·(out+in) (low-rank), the --budget flops quantity.
int64_t linear_flops_per_token(const Transformer& net);

// Size and measured speed of `net`: linear_parameters, total_parameters, total_bytes (as stored:
// the weights' dtype size × parameters), linear_flops_per_token, flops_per_token, and
// prefill/decode tokens_per_second with their workloads (eval/latency.h measure_speed).
nlohmann::json size_and_speed(const Transformer& net);

// What `rankrl inspect --json` prints.
nlohmann::json describe_model(const Model& model);

}  // namespace rankrl
