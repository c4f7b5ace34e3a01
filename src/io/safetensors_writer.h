// Writing a safetensors file tensor by tensor, header first (io/safetensors.h has the format).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/safetensors.h"

namespace rankrl {

// The header (from `layout`'s names, dtypes and shapes; their `bytes` are ignored) goes to a
// temporary file at once, then write_next() appends the next tensor's bytes (checked against its
// shape), and commit() renames the file into place once every tensor is written. Destroyed before
// commit(): nothing is left at `path`. Same bytes as write_safetensors with the same tensors.
class SafetensorsWriter {
 public:
  SafetensorsWriter(std::string path, std::vector<TensorBytes> layout,
                    const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  const std::vector<TensorBytes>& layout() const { return layout_; }
  size_t written() const { return next_; }  // tensors written so far
  void write_next(std::string_view bytes);
  void commit();

 private:
  std::string path_;
  std::vector<TensorBytes> layout_;
  std::unique_ptr<AtomicFileWriter> out_;
  size_t next_ = 0;
};

}  // namespace rankrl
