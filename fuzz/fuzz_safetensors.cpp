// libFuzzer target: parse_safetensors_header on arbitrary bytes. rankrl::Error is the expected
// way to reject input; any other exception, a sanitizer report or a broken invariant on an
// accepted header is a finding.
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "io/safetensors.h"

namespace {

// What a caller relies on once a header is accepted: every tensor's bytes lie inside the data
// buffer, match its shape, and do not overlap the previous tensor (they are sorted by offset).
void check_invariants(const rankrl::SafetensorsHeader& h, size_t file_size) {
  if (h.data_start > file_size) __builtin_trap();
  const uint64_t buffer = file_size - h.data_start;
  uint64_t previous_end = 0;
  for (const auto& t : h.tensors) {
    if (t.begin > t.end || t.end > buffer) __builtin_trap();
    if (uint64_t(t.numel()) * rankrl::dtype_size(t.dtype) != t.end - t.begin) __builtin_trap();
    if (t.begin != t.end) {
      if (t.begin < previous_end) __builtin_trap();
      previous_end = t.end;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    check_invariants(rankrl::parse_safetensors_header(bytes, "fuzz.safetensors"), size);
  } catch (const rankrl::Error&) {
  }
  return 0;
}
