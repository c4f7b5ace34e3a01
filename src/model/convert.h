// llama2.c → Hugging Face Llama conversion.
#pragma once
#include <string>

namespace rankrl {

// Writes `out_dir` (created if needed) as a standard HF Llama directory: config.json,
// model.safetensors, tokenizer.json, tokenizer_config.json. q/k rows are permuted from llama2.c's
// adjacent-pair RoPE layout to HF's rotate-half layout, so the result computes the same logits.
void convert_llama2c(const std::string& bin_path, const std::string& tokenizer_path,
                     const std::string& out_dir);

}  // namespace rankrl
