// UTF-8 helpers shared by the tokenizers (internal header).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rankrl::utf8 {

// Length (1..4) of the well-formed UTF-8 sequence starting at s[i], or 0 when the bytes there
// are not one (stray continuation byte, truncated sequence, overlong form, surrogate, > U+10FFFF).
// Follows the Unicode "well-formed byte sequence" table, so it agrees with Python's decoder.
size_t valid_char_len(std::string_view s, size_t i);

// Length of the unit starting at s[i] when splitting text into characters: the valid sequence,
// or 1 for a byte that does not start one (so arbitrary bytes split without loss).
inline size_t unit_len(std::string_view s, size_t i) {
  size_t n = valid_char_len(s, i);
  return n == 0 ? 1 : n;
}

bool is_valid(std::string_view s);

// Appends the UTF-8 encoding of code point `cp` (assumed valid) to `out`.
void append(std::string& out, uint32_t cp);

// `s` made safe for a one-line message: control characters and invalid bytes as \xNN, cut to
// `max_len` bytes with "..." after. quoted() also puts it in double quotes.
std::string escaped(std::string_view s, size_t max_len = 80);
std::string quoted(std::string_view s, size_t max_len = 80);

// "<0xAB>" for byte 0xAB: the SentencePiece byte-fallback piece.
std::string byte_piece(uint8_t byte);
// Parses "<0xAB>" (exactly six characters, upper- or lower-case hex); -1 when `piece` is not one.
int parse_byte_piece(std::string_view piece);

}  // namespace rankrl::utf8
