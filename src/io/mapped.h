// Memory-mapped tensors beyond loading: a view of one tensor of a safetensors file, and dropping
// a mapped weight's pages from the resident set once it is no longer needed.
#pragma once
#include <ATen/Tensor.h>

#include <string>

namespace rankrl {

class SafetensorsFile;

// A zero-copy, read-only view of tensor `name` of `file` (F32, F16 or BF16; copied only when its
// bytes are not aligned to the element size); the view keeps the file mapped.
// Error(file, ...) when the tensor is missing or of another dtype.
at::Tensor mapped_view(const SafetensorsFile& file, const std::string& name);

// Drops the pages of `t` from this process's resident set when `t` views a checkpoint's memory
// map (a loaded weight, read-only): they are read back from the file (page cache) if used again.
// No effect on any other tensor (anonymous memory is never touched). Called after a weight's
// load-time NaN/Inf scan (so the scan leaves no map resident) and after a layer is compressed or
// calibrated, so peak RSS does not grow with the layers already done.
void release_mapped_pages(const at::Tensor& t);

}  // namespace rankrl
