// libFuzzer target: arbitrary bytes as tokenizer.json (optionally "\0" then tokenizer_config.json),
// then encode and decode fixed texts. rankrl::Error is the expected way to reject bad input;
// a crash, any other exception, a hang or an out-of-range id is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace {

const std::string_view kTexts[] = {
    "Hello world! It's 12345 caf\xC3\xA9 \xF0\x9F\x98\x80 <s></s><|endoftext|>\r\n\t  end",
    std::string_view("\xFF\x80 \xE4\xB8 \0x", 9),
    "",
};

void exercise(const rankrl::Tokenizer& tok) {
  for (std::string_view text : kTexts) {
    const std::vector<int32_t> ids = tok.encode_with_bos(text);
    for (int32_t id : ids)
      if (id < 0 || id >= tok.vocab_size()) std::abort();  // encode must stay in the vocabulary
    (void)tok.decode(ids);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view json = input.substr(0, nul);
  const std::string_view config = nul == std::string_view::npos ? "" : input.substr(nul + 1);
  try {
    exercise(*rankrl::parse_tokenizer_json(json, config, "fuzz/tokenizer.json"));
  } catch (const rankrl::Error&) {
  }
  return 0;
}
