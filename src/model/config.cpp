#include "model/config.h"

namespace rankrl {

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::Llama: return "llama";
    case Arch::GPT2: return "gpt2";
  }
  return "unknown";
}

}  // namespace rankrl
