// The one table of weight roles per architecture (as llama.cpp's LLM_TENSOR_NAMES with
// tn(role, layer)): what each tensor of a checkpoint is for, its name pattern and its shape as a
// function of the config. Everything that spells or parses tensor names reads it: the checkpoint
// loaders and writer (io/checkpoint.cpp, io/llama2c.cpp), the transformer's constructor and
// weights(), and (after the lead's switch) search/env.cpp and report/report.cpp.
//
// Adding a weight role: one row in weight_roles.cpp's table of its architecture (plus, for a new
// kind of role, its enumerator here and its slot in model/transformer.cpp).
// Torch-free.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"

namespace rankrl {

enum class Role {
  TokEmbed, PosEmbed, FinalNorm, FinalNormBias, LmHead,                  // once per model
  AttnNorm, AttnNormBias, Q, QBias, K, KBias, V, VBias, QKV, QKVBias,    // per layer
  O, OBias, FfnNorm, FfnNormBias, Gate, Up, UpBias, Down, DownBias,
};

// A dimension of a role's shape, resolved against a ModelConfig.
enum class Dim { Vocab, Model, QOut, KVOut, QKVOut, Hidden, MaxSeq };

// When a role is present in a checkpoint.
enum class Presence { Always, QKVBias /* config.attn_qkv_bias */, Untied /* !tie_embeddings */ };

struct RoleSpec {
  Role role;
  const char* pattern;       // checkpoint name; "{}" stands for the layer index
  bool per_layer;
  std::vector<Dim> shape;    // as the transformer consumes it: linear weights [out, in]
  Presence presence = Presence::Always;
  bool projection = false;   // an attention/MLP projection weight (may be stored low-rank)
  bool transposed = false;   // stored [in, out] on disk (GPT-2 Conv1D)
};

// The roles of `arch`, in canonical checkpoint order: per-model roles before the layers, the
// layers' roles (in layer order), then the rest (the table says which via `per_layer` and its
// position). The order is the order of weight_specs() and of written checkpoints.
const std::vector<RoleSpec>& weight_roles(Arch arch);
const RoleSpec& role_spec(Arch arch, Role role);  // throws std::out_of_range when absent

// tn(role, layer): the checkpoint name of `role` (layer ignored for per-model roles).
std::string tensor_name(Arch arch, Role role, int64_t layer = -1);

bool role_present(const RoleSpec& spec, const ModelConfig& config);
int64_t dim_size(const ModelConfig& config, Dim d);
std::vector<int64_t> role_shape(const ModelConfig& config, const RoleSpec& spec);

// Short type names of the projections, as the search and the report print them:
// q, k, v, qkv, o, gate, up, down ("" for non-projections).
const char* role_short_name(Role role);

// A checkpoint name read back: which role, which layer (-1 for per-model roles), and the low-rank
// suffix when the name is a factor (".lowrank_A" / ".lowrank_B", else "").
struct ParsedName {
  Role role;
  int64_t layer = -1;
  std::string factor;
};

// nullopt when `name` matches no role of `arch`.
std::optional<ParsedName> parse_tensor_name(Arch arch, const std::string& name);

}  // namespace rankrl
