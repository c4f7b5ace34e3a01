// Internals shared by the checkpoint loaders (not part of the public API).
#pragma once
#include <ATen/Tensor.h>

#include <memory>
#include <string>

#include "core/fs.h"
#include "io/checkpoint.h"

namespace rankrl::detail {

// A float32 tensor viewing `bytes` inside `map` without copying; the tensor's deleter holds the
// map, so it stays mapped for as long as any view lives. `bytes` must be 4-byte aligned.
at::Tensor mapped_f32(const std::shared_ptr<MappedFile>& map, const uint8_t* bytes,
                      at::IntArrayRef shape);

// Throws Error(path, ...) unless `t` has the spec's shape and only finite values.
void check_weight(const ModelConfig& config, const WeightSpec& spec, const at::Tensor& t,
                  const std::string& path);

std::string shape_string(at::IntArrayRef shape);

// Throws Error(path, ...) unless A [out, r] and B [r, in] (r ≥ 1) factor a weight of the spec's
// shape and hold only finite values.
void check_factors(const WeightSpec& spec, const at::Tensor& A, const at::Tensor& B,
                   const std::string& path);

Checkpoint load_llama2c(const std::string& path);
Checkpoint load_hf_directory(const std::string& dir);

}  // namespace rankrl::detail
