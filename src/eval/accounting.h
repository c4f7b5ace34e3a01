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

// What `rankrl inspect --json` prints.
nlohmann::json describe_model(const Model& model);

}  // namespace rankrl
