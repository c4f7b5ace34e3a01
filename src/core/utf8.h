// UTF-8 validation for text inputs.
#pragma once
#include <cstdint>
#include <string_view>

namespace rankrl {

// Byte offset of the first invalid UTF-8 sequence in `s`, or -1 when `s` is valid UTF-8.
int64_t first_invalid_utf8(std::string_view s);

// Throws Error(path, "not valid UTF-8 (byte N)") unless `s` is valid UTF-8.
void require_utf8(std::string_view s, const std::string& path);

}  // namespace rankrl
