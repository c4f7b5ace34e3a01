// Hugging Face checkpoint directories: config.json + model.safetensors (or shards listed in
// model.safetensors.index.json). Loading and saving.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/checkpoint_detail.h"
#include "io/mapped.h"
#include "io/safetensors_writer.h"

namespace rankrl {

namespace {
namespace fs = std::filesystem;
using nlohmann::json;

std::string join(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / name).string();
}
}  // namespace

namespace detail {

namespace {

// Where each tensor lives: the opened shard files and a name -> (file, entry) table.
struct TensorSource {
  std::vector<SafetensorsFile> files;
  std::map<std::string, std::pair<const SafetensorsFile*, const TensorInfo*>> tensors;
  std::string path;  // the file to blame for a missing tensor (weights file or index)
};

// Shard names must stay inside the directory: an index is input, not a licence to read anywhere.
void check_shard_name(const std::string& shard, const std::string& index_path) {
  const fs::path p(shard);
  bool ok = !shard.empty() && p.is_relative();
  for (const auto& part : p) ok = ok && part != "..";
  check(ok, index_path, "weight_map names shard " + quote_name(shard) + " outside the checkpoint directory");
}

std::map<std::string, std::string> read_weight_map(const std::string& index_path) {
  json j;
  try {
    j = json::parse(read_file(index_path));
  } catch (const json::exception& e) {
    throw Error(index_path, std::string("not valid JSON: ") + e.what());
  }
  check(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(), index_path,
        "missing object 'weight_map'");
  std::map<std::string, std::string> map;
  for (const auto& [name, shard] : j["weight_map"].items()) {
    check(shard.is_string(), index_path, "weight_map entry for " + quote_name(name) + " is not a string");
    check_shard_name(shard.get<std::string>(), index_path);
    map[name] = shard.get<std::string>();
  }
  check(!map.empty(), index_path, "weight_map is empty");
  return map;
}

void add_file_tensors(TensorSource& src, const SafetensorsFile& f) {
  for (const auto& t : f.header().tensors) src.tensors[t.name] = {&f, &t};
}

TensorSource open_sharded(const std::string& dir, const std::string& index_path) {
  const auto weight_map = read_weight_map(index_path);
  std::set<std::string> shards;
  for (const auto& [name, shard] : weight_map) shards.insert(shard);
  TensorSource src;
  src.path = index_path;
  src.files.reserve(shards.size());  // entries point into `files`: no reallocation
  std::map<std::string, const SafetensorsFile*> by_shard;
  for (const auto& shard : shards) {
    const std::string p = join(dir, shard);
    check(file_exists(p), index_path, "shard " + quote_name(shard) + " does not exist (" + p + ")");
    src.files.push_back(SafetensorsFile::open(p));
    by_shard[shard] = &src.files.back();
  }
  for (const auto& [name, shard] : weight_map) {
    const SafetensorsFile* f = by_shard[shard];
    const TensorInfo* t = f->find(name);
    if (t == nullptr) {
      // Name where it really is, if anywhere: an index written for other shards is the usual cause.
      std::string elsewhere;
      for (const auto& other : src.files)
        if (other.find(name)) elsewhere = " (it is in " + other.path() + ")";
      throw Error(f->path(), "the index lists tensor " + quote_name(name) + " in this shard, but it is absent" +
                                 elsewhere);
    }
    src.tensors[name] = {f, t};
  }
  return src;
}

TensorSource open_weights(const std::string& dir) {
  const std::string single = join(dir, "model.safetensors");
  const std::string index = join(dir, "model.safetensors.index.json");
  if (file_exists(single)) {
    TensorSource src;
    src.path = single;
    src.files.push_back(SafetensorsFile::open(single));
    add_file_tensors(src, src.files.back());
    return src;
  }
  check(file_exists(index), dir, "no model.safetensors or model.safetensors.index.json");
  return open_sharded(dir, index);
}

// GPT-2 checkpoints saved from GPT2Model (not GPT2LMHeadModel) lack the "transformer." prefix.
std::string canonical_name(const ModelConfig& c, const std::string& name) {
  if (c.arch != Arch::GPT2) return name;
  for (const char* bare : {"h.", "wte.", "wpe.", "ln_f."})
    if (name.rfind(bare, 0) == 0) return "transformer." + name;
  return name;
}

// The tensor in its stored dtype: a zero-copy view of the map. safetensors only promises byte
// offsets, so a tensor whose data is not aligned to its element size (legal, rare: writers pad to
// 8) cannot be viewed (misaligned loads) and is copied instead.
at::Tensor load_tensor(const SafetensorsFile& f, const TensorInfo& t) {
  const at::ScalarType type = [&] {
    try {
      return scalar_type_of(t.dtype);
    } catch (const Error&) {
      throw Error(f.path(), "tensor " + quote_name(t.name) + " has dtype " + dtype_name(t.dtype) +
                                "; weights must be F32, F16 or BF16");
    }
  }();
  const uint8_t* bytes = f.data(t);
  if (reinterpret_cast<uintptr_t>(bytes) % dtype_size(t.dtype) == 0)
    return mapped_tensor(f.mapping(), bytes, t.shape, type);
  at::Tensor copy = at::empty(t.shape, at::TensorOptions().dtype(type));
  std::memcpy(copy.data_ptr(), bytes, t.end - t.begin);
  return copy;
}

using TensorTable = std::map<std::string, std::pair<const SafetensorsFile*, const TensorInfo*>>;

// A projection stored as <name>.lowrank_A / .lowrank_B (see checkpoint.h); never transposed.
void load_factors(Checkpoint& ck, const WeightSpec& spec, const TensorTable& by_name, bool check_values) {
  auto b = by_name.find(spec.name + kLowRankB);
  const auto& [file_a, info_a] = by_name.at(spec.name + kLowRankA);
  check(b != by_name.end(), file_a->path(), "tensor '" + spec.name + kLowRankA + "' has no matching '" +
                                                spec.name + kLowRankB + "'");
  const auto& [file_b, info_b] = b->second;
  at::Tensor A = load_tensor(*file_a, *info_a), B = load_tensor(*file_b, *info_b);
  check_factors(spec, A, B, file_a->path(), check_values);
  ck.weights[spec.name + kLowRankA] = A;
  ck.weights[spec.name + kLowRankB] = B;
  ck.stored_dtypes[spec.name + kLowRankA] = info_a->dtype;
  ck.stored_dtypes[spec.name + kLowRankB] = info_b->dtype;
  ck.stored_bytes += (info_a->end - info_a->begin) + (info_b->end - info_b->begin);
}

}  // namespace

Checkpoint load_hf_directory(const std::string& dir, const LoadOptions& options) {
  Checkpoint ck;
  const std::string config_path = join(dir, "config.json");
  check(file_exists(config_path), dir, "no config.json in this directory");
  ck.config = parse_hf_config(read_file(config_path), config_path);
  ck.path = dir;
  ck.format = "safetensors";
  const TensorSource src = open_weights(dir);
  // Each layer has tensors of its own, so a config claiming more layers than the weights hold
  // tensors is wrong; listing its weight names would also cost unbounded time and memory.
  check(uint64_t(ck.config.n_layers) <= src.tensors.size(), config_path,
        "config.json: " + std::to_string(ck.config.n_layers) + " layers, but the weights hold only " +
            std::to_string(src.tensors.size()) + " tensors");
  for (const auto& f : src.files) ck.files.push_back(f.path());
  std::map<std::string, std::pair<const SafetensorsFile*, const TensorInfo*>> by_name;
  for (const auto& [name, entry] : src.tensors) by_name[canonical_name(ck.config, name)] = entry;
  for (const auto& spec : weight_specs(ck.config)) {
    auto it = by_name.find(spec.name);
    if (it == by_name.end() && by_name.count(spec.name + kLowRankA) && is_projection_weight(ck.config, spec.name)) {
      load_factors(ck, spec, by_name, options.check_values);
      continue;
    }
    check(it != by_name.end(), src.path, "missing tensor '" + spec.name + "' (required by the config)");
    const auto& [file, info] = it->second;
    at::Tensor t = load_tensor(*file, *info);
    if (is_conv1d_weight(ck.config, spec.name)) t = t.t();
    check_weight(ck.config, spec, t, file->path(), options.check_values);
    ck.weights[spec.name] = t;
    ck.stored_dtypes[spec.name] = info->dtype;
    ck.stored_bytes += info->end - info->begin;
  }
  return ck;
}

}  // namespace detail

namespace {

// llama2.c rotates adjacent pairs (2i, 2i+1) of each head; HF Llama rotates (i, i + head_dim/2).
// Reordering each head's output rows [0, 2, 4, ..., 1, 3, 5, ...] turns one layout into the other.
at::Tensor interleaved_to_rotate_half(const at::Tensor& w, int64_t heads, int64_t head_dim) {
  auto sizes = w.sizes().vec();
  std::vector<int64_t> split{heads, head_dim / 2, 2};
  split.insert(split.end(), sizes.begin() + 1, sizes.end());
  return w.reshape(split).transpose(1, 2).reshape(sizes);
}

// The tensor exactly as it goes on disk: `type`, contiguous, in the checkpoint's own layout. A
// contiguous tensor already of `type` (a memory-mapped weight saved in its own dtype) is returned
// as is, so saving a large model does not copy its unchanged weights into RAM.
at::Tensor disk_layout(const ModelConfig& c, const std::string& name, const at::Tensor& w, at::ScalarType type) {
  at::Tensor t = w.to(type);
  // Low-rank factors stay [out, r] / [r, in]; only A's rows (the outputs) follow a q/k permutation.
  const bool factor_b = name.size() > kLowRankB.size() &&
                        name.compare(name.size() - kLowRankB.size(), kLowRankB.size(), kLowRankB) == 0;
  if (factor_b) return t.contiguous();
  if (is_conv1d_weight(c, name)) t = t.t();
  if (c.rope_interleaved && name.find(".self_attn.q_proj.") != std::string::npos)
    t = interleaved_to_rotate_half(t, c.n_heads, c.head_dim);
  if (c.rope_interleaved && name.find(".self_attn.k_proj.") != std::string::npos)
    t = interleaved_to_rotate_half(t, c.n_kv_heads, c.head_dim);
  return t.contiguous();
}

// disk_layout's shape, without converting: only a Conv1D weight is stored transposed (the q/k
// permutation keeps the shape).
std::vector<int64_t> disk_shape(const ModelConfig& c, const std::string& name, const at::Tensor& w) {
  std::vector<int64_t> shape = w.sizes().vec();
  if (is_conv1d_weight(c, name)) std::reverse(shape.begin(), shape.end());
  return shape;
}

// True when `name` is <known projection>.lowrank_A or .lowrank_B.
bool factor_base(const std::string& name, const std::set<std::string>& known) {
  for (const std::string& suffix : {kLowRankA, kLowRankB})
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        known.count(name.substr(0, name.size() - suffix.size())))
      return true;
  return false;
}

void check_no_unknown_weights(const ModelConfig& c, const WeightMap& weights,
                              const std::vector<WeightSpec>& specs, const std::string& dir) {
  std::set<std::string> known;
  for (const auto& s : specs) known.insert(s.name);
  for (const auto& [name, t] : weights) {
    if (known.count(name) || (c.tie_embeddings && name == "lm_head.weight")) continue;
    if (factor_base(name, known)) continue;
    throw Error(dir, "cannot save: weight " + quote_name(name) + " is not part of a " +
                         arch_name(c.arch) + " checkpoint");
  }
}

}  // namespace

void save_hf_checkpoint(const std::string& dir, const ModelConfig& config, const WeightMap& weights,
                        DType dtype) {
  check(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16, dir,
        std::string("cannot save weights as ") + dtype_name(dtype) + " (F32, F16 or BF16 only)");
  const auto specs = weight_specs(config);
  validate_weights(config, weights, dir);
  check_no_unknown_weights(config, weights, specs, dir);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  check(!ec, dir, "cannot create directory: " + ec.message());

  // The file's tensors in order, then written one at a time: each converted tensor lives only
  // while it is written, and the pages of a memory-mapped source (an unchanged weight, a spilled
  // low-rank factor) leave the resident set after it, so saving a 7B model stays flat in memory.
  std::vector<std::string> names;
  for (const auto& spec : specs) {
    if (weights.count(spec.name)) {
      names.push_back(spec.name);
    } else {  // validate_weights accepted a low-rank pair
      names.push_back(spec.name + kLowRankA);
      names.push_back(spec.name + kLowRankB);
    }
  }
  std::vector<TensorBytes> layout;
  for (const std::string& name : names) layout.push_back({name, dtype, disk_shape(config, name, weights.at(name)), {}});
  SafetensorsWriter writer(join(dir, "model.safetensors"), std::move(layout), {{"format", "pt"}});
  for (const std::string& name : names) {
    const at::Tensor& source = weights.at(name);
    at::Tensor t = disk_layout(config, name, source, scalar_type_of(dtype));
    writer.write_next(std::string_view(static_cast<const char*>(t.data_ptr()), t.nbytes()));
    release_mapped_pages(source);
  }
  writer.commit();
  ModelConfig on_disk = config;
  on_disk.rope_interleaved = false;  // q/k were permuted above
  std::string config_json = hf_config_json(on_disk);
  if (dtype != DType::F32) {
    nlohmann::json j = nlohmann::json::parse(config_json);
    j["torch_dtype"] = dtype == DType::F16 ? "float16" : "bfloat16";
    config_json = j.dump(2) + "\n";
  }
  write_file_atomic(join(dir, "config.json"), config_json);
}

}  // namespace rankrl
