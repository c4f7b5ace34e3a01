#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace rankrl {

namespace {

// Bounds on backtracking so a hostile pattern fails with an Error instead of hanging.
constexpr uint32_t kMatchLimit = 1'000'000;
constexpr uint32_t kDepthLimit = 10'000;

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

// A copy of `text` where bytes outside well-formed UTF-8 sequences become U+0001.
std::string with_invalid_bytes_replaced(std::string_view text) {
  std::string out(text);
  for (size_t i = 0; i < out.size();) {
    const size_t n = utf8::valid_char_len(out, i);
    if (n == 0) out[i] = '\x01';
    i += n == 0 ? 1 : n;
  }
  return out;
}

}  // namespace

struct Regex::Impl {
  pcre2_code* code = nullptr;
  pcre2_match_context* context = nullptr;
  ~Impl() {
    pcre2_match_context_free(context);
    pcre2_code_free(code);
  }
};

Regex::Regex(const std::string& pattern, bool literal, const std::string& path)
    : pattern_(pattern), impl_(std::make_unique<Impl>()) {
  check(utf8::is_valid(pattern), path, "regex pattern is not valid UTF-8");
  int error = 0;
  PCRE2_SIZE offset = 0;
  const uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);  // UCP: no LITERAL
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              options, &error, &offset, nullptr);
  if (!impl_->code) {
    throw Error(path, "invalid regex pattern at offset " + std::to_string(offset) + ": " +
                          pcre2_message(error));
  }
  pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);  // optional speed-up; failure is harmless
  impl_->context = pcre2_match_context_create(nullptr);
  pcre2_set_match_limit(impl_->context, kMatchLimit);
  pcre2_set_depth_limit(impl_->context, kDepthLimit);
}

Regex::~Regex() = default;

std::vector<Span> Regex::find_all(std::string_view raw) const {
  std::string sanitized;
  std::string_view text = raw;
  if (!utf8::is_valid(raw)) {
    sanitized = with_invalid_bytes_replaced(raw);
    text = sanitized;
  }
  std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> match(
      pcre2_match_data_create_from_pattern(impl_->code, nullptr), pcre2_match_data_free);
  std::vector<Span> spans;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  for (size_t start = 0; start < text.size();) {
    const int rc = pcre2_match(impl_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK,
                               match.get(), impl_->context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) throw Error("", "regex " + utf8::quoted(pattern_) + " failed: " + pcre2_message(rc));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.get());
    const size_t begin = ovector[0], end = ovector[1];
    if (end > begin) {
      spans.push_back({begin, end});
      start = end;
    } else if (begin < text.size()) {
      start = begin + utf8::unit_len(text, begin);  // skip an empty match by one character
    } else {
      break;
    }
  }
  return spans;
}

}  // namespace rankrl
