// Weight specs per architecture, validation, and the load_checkpoint dispatcher.
#include <ATen/ATen.h>
#include <sys/mman.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/checkpoint_detail.h"
#include "io/mapped.h"
#include "io/weight_roles.h"

namespace rankrl {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void add_spec(std::vector<WeightSpec>& specs, const ModelConfig& c, const RoleSpec& r, int64_t layer) {
  if (role_present(r, c)) specs.push_back({tensor_name(c.arch, r.role, layer), role_shape(c, r)});
}

const RoleSpec* role_of(const ModelConfig& c, const std::string& name) {
  const auto parsed = parse_tensor_name(c.arch, name);
  return parsed ? &role_spec(c.arch, parsed->role) : nullptr;
}

}  // namespace

// The role table's order: per-model roles listed before the first per-layer role, every layer,
// then the remaining per-model roles.
std::vector<WeightSpec> weight_specs(const ModelConfig& config) {
  const auto& roles = weight_roles(config.arch);
  std::vector<WeightSpec> specs;
  size_t first_layer_role = 0;
  while (first_layer_role < roles.size() && !roles[first_layer_role].per_layer) ++first_layer_role;
  for (size_t i = 0; i < first_layer_role; ++i) add_spec(specs, config, roles[i], -1);
  for (int64_t l = 0; l < config.n_layers; ++l)
    for (const RoleSpec& r : roles)
      if (r.per_layer) add_spec(specs, config, r, l);
  for (size_t i = first_layer_role; i < roles.size(); ++i)
    if (!roles[i].per_layer) add_spec(specs, config, roles[i], -1);
  return specs;
}

std::vector<std::string> required_weight_names(const ModelConfig& config) {
  std::vector<std::string> names;
  for (auto& s : weight_specs(config)) names.push_back(std::move(s.name));
  return names;
}

bool is_conv1d_weight(const ModelConfig& config, const std::string& name) {
  const RoleSpec* r = role_of(config, name);
  return r && r->transposed && !ends_with(name, kLowRankA) && !ends_with(name, kLowRankB);
}

std::string detail::shape_string(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t detail::count_non_finite(const at::Tensor& t) {
  if (t.numel() == 0) return 0;
  if (t.dim() == 0) return at::isfinite(t).item<bool>() ? 0 : 1;
  // Blocks of ~4M elements along dim 0: bounded temporaries whatever the tensor's size or layout.
  const int64_t row = std::max<int64_t>(1, t.numel() / t.size(0));
  const int64_t rows_per_block = std::max<int64_t>(1, (int64_t(1) << 22) / row);
  int64_t bad = 0;
  for (int64_t r = 0; r < t.size(0); r += rows_per_block) {
    const at::Tensor block = t.narrow(0, r, std::min(rows_per_block, t.size(0) - r));
    const at::Tensor finite = at::isfinite(block);
    if (!finite.all().item<bool>()) bad += block.numel() - finite.sum().item<int64_t>();
  }
  return bad;
}

void detail::check_weight(const ModelConfig& config, const WeightSpec& spec, const at::Tensor& t,
                          const std::string& path, bool check_values) {
  if (t.sizes() != at::IntArrayRef(spec.shape)) {
    const char* note = is_conv1d_weight(config, spec.name) ? " (as [out, in]; stored transposed)" : "";
    throw Error(path, "tensor '" + spec.name + "' has shape " + shape_string(t.sizes()) +
                          ", the config implies " + shape_string(spec.shape) + note);
  }
  if (!check_values) return;
  const int64_t bad = count_non_finite(t);
  release_mapped_pages(t);  // the scan read every page: keep them out of the resident set
  check(bad == 0, path, "tensor '" + spec.name + "' contains " + std::to_string(bad) +
                            " NaN/Inf value(s)");
}

bool is_projection_weight(const ModelConfig& config, const std::string& name) {
  const RoleSpec* r = role_of(config, name);
  return r && r->projection && !ends_with(name, kLowRankA) && !ends_with(name, kLowRankB);
}

void detail::check_factors(const WeightSpec& spec, const at::Tensor& A, const at::Tensor& B,
                           const std::string& path, bool check_values) {
  const bool shaped = A.dim() == 2 && B.dim() == 2 && A.size(1) == B.size(0) && A.size(1) >= 1 &&
                      A.size(0) == spec.shape[0] && B.size(1) == spec.shape[1];
  check(shaped, path, "low-rank factors of '" + spec.name + "' have shapes " + shape_string(A.sizes()) +
                          " and " + shape_string(B.sizes()) + ", expected [" + std::to_string(spec.shape[0]) +
                          ", r] and [r, " + std::to_string(spec.shape[1]) + "]");
  for (const at::Tensor* t : {&A, &B}) {
    if (!check_values) break;
    const int64_t bad = count_non_finite(*t);
    release_mapped_pages(*t);
    check(bad == 0, path, "low-rank factors of '" + spec.name + "' contain " + std::to_string(bad) +
                              " NaN/Inf value(s)");
  }
}

void validate_weights(const ModelConfig& config, const WeightMap& weights, const std::string& path,
                      bool check_values) {
  for (const auto& spec : weight_specs(config)) {
    auto it = weights.find(spec.name);
    auto a = weights.find(spec.name + kLowRankA), b = weights.find(spec.name + kLowRankB);
    if (it == weights.end() && a != weights.end() && b != weights.end() &&
        is_projection_weight(config, spec.name)) {
      detail::check_factors(spec, a->second, b->second, path, check_values);
      continue;
    }
    check(it != weights.end(), path, "missing tensor '" + spec.name + "' (required by the config)");
    detail::check_weight(config, spec, it->second, path, check_values);
  }
}

namespace {

// The live mappings that tensors view (mapped_tensor), so release_mapped_pages can tell a view of
// a file (whose pages may be dropped: they are read again from the file) from anonymous memory
// (where MADV_DONTNEED would zero the data).
std::mutex mappings_mutex;
std::vector<std::weak_ptr<MappedFile>> mappings;

void register_mapping(const std::shared_ptr<MappedFile>& map) {
  std::lock_guard<std::mutex> lock(mappings_mutex);
  std::erase_if(mappings, [](const std::weak_ptr<MappedFile>& w) { return w.expired(); });
  for (const auto& w : mappings)
    if (w.lock() == map) return;
  mappings.push_back(map);
}

bool inside_a_mapping(const uint8_t* begin, size_t n) {
  std::lock_guard<std::mutex> lock(mappings_mutex);
  for (const auto& w : mappings)
    if (auto m = w.lock(); m && begin >= m->data() && begin + n <= m->data() + m->size()) return true;
  return false;
}

}  // namespace

void release_mapped_pages(const at::Tensor& t) {
  if (!t.defined() || !t.has_storage() || t.storage().nbytes() == 0) return;
  const auto* begin = static_cast<const uint8_t*>(t.storage().data());
  const size_t n = t.storage().nbytes();
  if (!inside_a_mapping(begin, n)) return;
  // Only whole pages inside the tensor: a page shared with a neighbour tensor is left alone.
  const auto page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t first = (uintptr_t(begin) + page - 1) / page * page, last = (uintptr_t(begin) + n) / page * page;
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

at::Tensor detail::mapped_tensor(const std::shared_ptr<MappedFile>& map, const uint8_t* bytes,
                                 at::IntArrayRef shape, at::ScalarType type) {
  register_mapping(map);
  // from_blob wants a mutable pointer; the mapping is PROT_READ, so writes would fault loudly.
  return at::from_blob(const_cast<uint8_t*>(bytes), shape, [map](void*) {},
                       at::TensorOptions().dtype(type));
}

at::Tensor mapped_view(const SafetensorsFile& file, const std::string& name) {
  const TensorInfo* t = file.find(name);
  check(t, file.path(), "missing tensor " + quote_name(name));
  const at::ScalarType type = scalar_type_of(t->dtype);
  const uint8_t* bytes = file.data(*t);
  at::Tensor view = detail::mapped_tensor(file.mapping(), bytes, t->shape, type);
  return uintptr_t(bytes) % dtype_size(t->dtype) == 0 ? view : view.clone();
}

at::ScalarType scalar_type_of(DType d) {
  switch (d) {
    case DType::F32: return at::kFloat;
    case DType::F16: return at::kHalf;
    case DType::BF16: return at::kBFloat16;
    default: throw Error("", std::string("weights must be F32, F16 or BF16, not ") + dtype_name(d));
  }
}

DType dtype_of(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return DType::F32;
    case at::kHalf: return DType::F16;
    case at::kBFloat16: return DType::BF16;
    default: throw Error("", std::string("weights must be float32, float16 or bfloat16, not ") + c10::toString(t));
  }
}

DType stored_dtype(const at::Tensor& embedding) { return dtype_of(embedding.scalar_type()); }

Checkpoint load_checkpoint(const std::string& path, const LoadOptions& options) {
  namespace fs = std::filesystem;
  check(file_exists(path), path, "no such file or directory");
  if (is_directory(path)) return detail::load_hf_directory(path, options);
  const fs::path p(path);
  const std::string name = p.filename().string();
  // A file inside a Hugging Face directory stands for the directory.
  if (name == "config.json" || name == "model.safetensors.index.json" || ends_with(name, ".safetensors")) {
    const std::string dir = p.has_parent_path() ? p.parent_path().string() : ".";
    return detail::load_hf_directory(dir, options);
  }
  return detail::load_llama2c(path, options);
}

}  // namespace rankrl
