// A compiled PCRE2 pattern for pre-tokenizer splits and normalizer replacements (internal).
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rankrl {

struct Span {
  size_t begin, end;
};

class Regex {
 public:
  // Compiles `pattern` in UTF + UCP mode (\s, \p{L}, \w are Unicode-aware, as in the Oniguruma
  // and Python `regex` engines tokenizers are defined with), JIT when available. `literal`
  // matches the pattern text verbatim. Throws Error(path, ...) when the pattern is invalid.
  Regex(const std::string& pattern, bool literal, const std::string& path);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-overlapping, non-empty matches in `text`, left to right.
  // Invalid UTF-8: every byte that is not part of a well-formed sequence is matched as if it
  // were a distinct symbol that is neither a letter, a number nor a space (we substitute U+0001
  // for it in a scratch copy; offsets are unchanged). This is exactly how Python's `regex` sees
  // the lone surrogates of bytes.decode("utf-8", "surrogateescape"), which our reference
  // scripts use. Throws Error("", ...) only if PCRE2's match limits are hit (pathological
  // patterns from a corrupt tokenizer.json).
  std::vector<Span> find_all(std::string_view text) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct Impl;
  std::string pattern_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rankrl
