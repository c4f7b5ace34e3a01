// safetensors: read (memory-mapped, fully validated header) and write.
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets},
// "__metadata__": {str: str}}, then the data buffer. Offsets are relative to the buffer.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/fs.h"

namespace rankrl {

enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL };

const char* dtype_name(DType d);
size_t dtype_size(DType d);
// The DType for a safetensors dtype string ("F32", "BF16", ...); nullopt when unknown.
std::optional<DType> dtype_from_name(std::string_view name);

// `name` in single quotes with control characters escaped (\xNN): names come from untrusted
// files and error messages must stay on one line.
std::string quote_name(std::string_view name);

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data buffer
  uint64_t end = 0;

  int64_t numel() const;
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // sorted by begin offset
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;          // absolute file offset of the data buffer
};

// Parses and validates the header of a whole safetensors file held in `bytes`: header length
// within the file, valid JSON object, known dtypes, non-negative shapes whose byte size equals the
// offset span, offsets inside the file, no overlaps. Throws Error(path, ...) on any defect.
SafetensorsHeader parse_safetensors_header(std::string_view bytes, const std::string& path);

// An open, validated, memory-mapped safetensors file.
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);

  const SafetensorsHeader& header() const { return header_; }
  const std::string& path() const { return map_->path(); }
  const TensorInfo* find(const std::string& name) const;  // nullptr when absent
  const uint8_t* data(const TensorInfo& t) const { return map_->data() + header_.data_start + t.begin; }
  const std::shared_ptr<MappedFile>& mapping() const { return map_; }

 private:
  std::shared_ptr<MappedFile> map_;
  SafetensorsHeader header_;
  std::map<std::string, size_t> index_;  // name -> position in header_.tensors
};

// A tensor to write: raw little-endian bytes in `dtype` with `shape`.
struct TensorBytes {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::string_view bytes;
};

// Writes a safetensors file atomically (temporary file + rename). Tensors are laid out in the
// given order with 8-byte aligned header padding.
void write_safetensors(const std::string& path, const std::vector<TensorBytes>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace rankrl

namespace rankrl {

// Like write_safetensors, but holding one tensor at a time: the header comes from `layout`'s names,
// dtypes and shapes (their `bytes` are ignored), then bytes_of(i) produces tensor i's bytes, in
// order. For writing checkpoints larger than RAM (bench/synth_checkpoint).
void write_safetensors_streamed(const std::string& path, const std::vector<TensorBytes>& layout,
                                const std::function<std::string(size_t)>& bytes_of,
                                const std::map<std::string, std::string>& metadata = {});

}  // namespace rankrl
