// Model: what a user points rankrl at — config, transformer weights and tokenizer together.
#pragma once
#include <memory>
#include <string>

#include "io/checkpoint.h"
#include "model/transformer.h"
#include "tokenizer/tokenizer.h"

namespace rankrl {

struct Model {
  Checkpoint checkpoint;  // as loaded (config, weights as stored, provenance)
  std::unique_ptr<Transformer> net;
  std::unique_ptr<Tokenizer> tokenizer;

  const ModelConfig& config() const { return checkpoint.config; }
};

// Loads a model from a llama2.c .bin file or a Hugging Face directory. The tokenizer comes from
// `tokenizer_path` when given; otherwise from the directory, or for a .bin file from
// tokenizer.bin or a single tok*.bin beside it. Throws Error when anything is missing or broken.
// Weights stay in their stored dtype, memory-mapped (io/checkpoint.h); `options.check_values`
// off skips the NaN/Inf scan, so no tensor data is read (inspect).
Model load_model(const std::string& path, const std::string& tokenizer_path = "",
                 const LoadOptions& options = {});

// Where the tokenizer for `model_path` is found when none is given ("" when nothing fits).
std::string default_tokenizer_path(const std::string& model_path);

}  // namespace rankrl
