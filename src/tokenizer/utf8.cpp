#include "tokenizer/utf8.h"

namespace rankrl::utf8 {

namespace {
bool in_range(unsigned char c, unsigned char lo, unsigned char hi) { return c >= lo && c <= hi; }
}  // namespace

size_t valid_char_len(std::string_view s, size_t i) {
  const size_t left = s.size() - i;
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  if (in_range(c, 0xC2, 0xDF)) return left >= 2 && in_range(b(1), 0x80, 0xBF) ? 2 : 0;
  if (in_range(c, 0xE0, 0xEF)) {
    if (left < 3) return 0;
    // E0 excludes overlongs, ED excludes UTF-16 surrogates.
    const unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return in_range(b(1), lo, hi) && in_range(b(2), 0x80, 0xBF) ? 3 : 0;
  }
  if (in_range(c, 0xF0, 0xF4)) {
    if (left < 4) return 0;
    // F0 excludes overlongs, F4 caps at U+10FFFF.
    const unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return in_range(b(1), lo, hi) && in_range(b(2), 0x80, 0xBF) && in_range(b(3), 0x80, 0xBF)
               ? 4
               : 0;
  }
  return 0;
}

bool is_valid(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = valid_char_len(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

void append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string escaped(std::string_view s, size_t max_len) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (size_t i = 0; i < s.size() && i < max_len;) {
    const size_t n = valid_char_len(s, i);
    const auto c = static_cast<unsigned char>(s[i]);
    if (n == 0 || c < 0x20 || c == 0x7F) {
      out += std::string("\\x") + hex[c >> 4] + hex[c & 15];
      ++i;
    } else {
      out.append(s, i, n);
      i += n;
    }
  }
  if (s.size() > max_len) out += "...";
  return out;
}

std::string quoted(std::string_view s, size_t max_len) { return '"' + escaped(s, max_len) + '"'; }

std::string byte_piece(uint8_t byte) {
  static const char* hex = "0123456789ABCDEF";
  return std::string("<0x") + hex[byte >> 4] + hex[byte & 15] + ">";
}

int parse_byte_piece(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  int value = 0;
  for (size_t k = 3; k < 5; ++k) {
    const char c = piece[k];
    int digit;
    if (c >= '0' && c <= '9') digit = c - '0';
    else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    else return -1;
    value = value * 16 + digit;
  }
  return value;
}

}  // namespace rankrl::utf8
