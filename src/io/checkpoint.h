// Checkpoints: load a model's config and weights from a llama2.c .bin file or a Hugging Face
// directory (config.json + model.safetensors, or sharded via model.safetensors.index.json), and
// save Hugging Face directories.
//
// Weights are returned under their checkpoint names, in their stored dtype (F32, F16 or BF16),
// laid out as the transformer consumes them: every linear weight is [out, in] (GPT-2 Conv1D
// weights, stored [in, out], are returned as transposed *views*). Every tensor is a zero-copy view
// of the memory map (a tensor whose bytes are not aligned to its element size is copied), so
// loading a 13 GB BF16 model costs address space, not RAM; model/linear.h upcasts a weight to
// float32 only while it is used. llama2.c tensors are given Hugging Face Llama names
// (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ...; w1/w2/w3 =
// gate/down/up) and config.rope_interleaved = true, because their q/k use the adjacent-pair RoPE.
// Zero-copy views point into a read-only memory map: never modify loaded weights in place (clone
// first); writing through a view crashes with SIGSEGV.
#pragma once
#include <ATen/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "io/hf_config.h"
#include "io/safetensors.h"
#include "model/config.h"

namespace rankrl {

using WeightMap = std::map<std::string, at::Tensor>;

struct Checkpoint {
  ModelConfig config;
  WeightMap weights;
  std::string path;                    // what was opened (file or directory)
  std::string format;                  // "llama2c" | "safetensors"
  std::map<std::string, DType> stored_dtypes;  // dtype on disk per tensor
  uint64_t stored_bytes = 0;           // bytes of tensor data on disk
  std::vector<std::string> files;      // every weight file read
};

struct LoadOptions {
  // Scan every weight for NaN/Inf (reads all tensor data). Off: only headers, shapes and byte
  // ranges are checked and no tensor byte is read (what `inspect` needs).
  bool check_values = true;
};

// Opens `path`: a llama2.c .bin file, a directory with config.json, or a config.json's directory
// with sharded weights. Validates that every tensor the architecture needs is present, that shapes
// match the config, and that no weight is NaN/Inf. Throws Error naming the file at fault.
Checkpoint load_checkpoint(const std::string& path, const LoadOptions& options = {});

// The dtype a model's weights are stored in: that of its token embedding (F32 for llama2.c).
DType stored_dtype(const at::Tensor& embedding);
at::ScalarType scalar_type_of(DType d);  // F32, F16, BF16 only (throws otherwise)
DType dtype_of(at::ScalarType t);        // kFloat, kHalf, kBFloat16 only (throws otherwise)

// parse_hf_config() and hf_config_json() are declared in io/hf_config.h (torch-free).

// Writes a directory with config.json and model.safetensors (atomic writes). Linear
// weights are written as given ([out, in]); for GPT-2 the Conv1D weights are transposed back.
// Creates `dir` if needed. Writes exactly the required weights (an lm_head.weight given for a tied
// model is skipped; any other unknown name is an error). A rope_interleaved (llama2.c) model gets
// its q/k rows permuted to the rotate-half layout, so the result is a standard HF Llama checkpoint.
// Every tensor is stored in `dtype` (rounded when narrower; config.json torch_dtype follows); a
// tensor already in `dtype` and in disk layout is written straight from its memory (no copy).
void save_hf_checkpoint(const std::string& dir, const ModelConfig& config, const WeightMap& weights,
                        DType dtype = DType::F32);

// A weight the architecture needs and its shape as returned by load_checkpoint ([out, in]).
struct WeightSpec {
  std::string name;
  std::vector<int64_t> shape;
};

// Every weight the architecture requires, in canonical order (embeddings, per layer, final):
// Llama names model.embed_tokens.weight, model.layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj,
// post_attention_layernorm, mlp.{gate,up,down}_proj}.weight (+ q/k/v biases for Qwen2),
// model.norm.weight, lm_head.weight unless tied; GPT-2 names transformer.{wte,wpe}.weight,
// transformer.h.N.{ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj}.{weight,bias},
// transformer.ln_f.{weight,bias}.
std::vector<WeightSpec> weight_specs(const ModelConfig& config);
std::vector<std::string> required_weight_names(const ModelConfig& config);

// True for GPT-2 Conv1D weights (stored [in, out] on disk, returned transposed).
bool is_conv1d_weight(const ModelConfig& config, const std::string& name);

// Low-rank storage: a projection weight W [out, in] may instead be stored as two tensors
// <name>.lowrank_A [out, r] and <name>.lowrank_B [r, in] with W ≈ A·B (always in this [out, in]
// orientation, also for GPT-2 Conv1D weights). load_checkpoint returns them under those names,
// validate_weights accepts them, save_hf_checkpoint writes them (for a rope_interleaved model the
// rows of a q/k factor A are permuted like the rows of a dense q/k weight, since P·W = (P·A)·B).
inline const std::string kLowRankA = ".lowrank_A";
inline const std::string kLowRankB = ".lowrank_B";
// True for the attention and MLP projection weights (the ones that may be stored low-rank).
bool is_projection_weight(const ModelConfig& config, const std::string& name);

// Throws Error(path, ...) unless every required weight is present with its expected shape and
// holds only finite values (projection weights may be given as a low-rank pair instead).
void validate_weights(const ModelConfig& config, const WeightMap& weights, const std::string& path,
                      bool check_values = true);

}  // namespace rankrl
