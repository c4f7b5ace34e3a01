#include "core/utf8.h"

#include <string>

#include "core/error.h"

namespace rankrl {

int64_t first_invalid_utf8(std::string_view s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    unsigned char c = s[i];
    int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > n) return int64_t(i);
    uint32_t cp = len == 1 ? c : c & (0x7F >> len);
    for (int k = 1; k < len; ++k) {
      unsigned char cc = s[i + k];
      if ((cc >> 6) != 0x2) return int64_t(i);
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are invalid.
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return int64_t(i);
    i += len;
  }
  return -1;
}

void require_utf8(std::string_view s, const std::string& path) {
  int64_t bad = first_invalid_utf8(s);
  if (bad >= 0) throw Error(path, "not valid UTF-8 (byte " + std::to_string(bad) + ")");
}

}  // namespace rankrl
