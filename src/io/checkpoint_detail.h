// Internals shared by the checkpoint loaders (not part of the public API).
#pragma once
#include <ATen/Tensor.h>

#include <memory>
#include <string>

#include "core/fs.h"
#include "io/checkpoint.h"

namespace rankrl::detail {

// A tensor of `type` viewing `bytes` inside `map` without copying; the tensor's deleter holds the
// map, so it stays mapped for as long as any view lives. `bytes` must be aligned to the element.
at::Tensor mapped_tensor(const std::shared_ptr<MappedFile>& map, const uint8_t* bytes,
                         at::IntArrayRef shape, at::ScalarType type);
inline at::Tensor mapped_f32(const std::shared_ptr<MappedFile>& map, const uint8_t* bytes,
                             at::IntArrayRef shape) {
  return mapped_tensor(map, bytes, shape, at::kFloat);
}

// Number of NaN/Inf values in `t` (any floating dtype, any layout), scanned a block of rows at a
// time in the stored dtype, so a large BF16 tensor is never upcast or flagged whole.
int64_t count_non_finite(const at::Tensor& t);

// Throws Error(path, ...) unless `t` has the spec's shape and (with `check_values`) only finite
// values.
void check_weight(const ModelConfig& config, const WeightSpec& spec, const at::Tensor& t,
                  const std::string& path, bool check_values = true);

std::string shape_string(at::IntArrayRef shape);

// Throws Error(path, ...) unless A [out, r] and B [r, in] (r ≥ 1) factor a weight of the spec's
// shape and hold only finite values.
void check_factors(const WeightSpec& spec, const at::Tensor& A, const at::Tensor& B,
                   const std::string& path, bool check_values = true);

Checkpoint load_llama2c(const std::string& path, const LoadOptions& options);
Checkpoint load_hf_directory(const std::string& dir, const LoadOptions& options);

}  // namespace rankrl::detail
