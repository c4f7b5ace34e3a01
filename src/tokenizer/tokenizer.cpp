#include "tokenizer/tokenizer.h"

namespace rankrl {

std::vector<int32_t> Tokenizer::encode_with_bos(std::string_view text) const {
  std::vector<int32_t> ids = encode(text);
  if (adds_bos() && bos_id() >= 0) ids.insert(ids.begin(), bos_id());
  return ids;
}

}  // namespace rankrl
