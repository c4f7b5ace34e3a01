// Hashes for data integrity: SHA-256 of source files (recorded in manifests) and the normalised
// text hash used to find near-duplicate contexts and choices.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace rankrl {

// Lower-case hex SHA-256 (FIPS 180-4) of `bytes`.
std::string sha256_hex(std::string_view bytes);

// Normal form for near-duplicate detection: ASCII letters lower-cased, ASCII punctuation and the
// common Unicode quotes/dashes/ellipsis removed, runs of whitespace collapsed to one space,
// leading and trailing whitespace dropped. "Hello,  World!" and "hello world" are the same.
std::string normalize_text(std::string_view text);

// 64-bit FNV-1a of normalize_text(text).
uint64_t normalized_hash(std::string_view text);

}  // namespace rankrl
