#include "tokenizer/files.h"

#include <filesystem>

#include "core/dist.h"
#include "core/fs.h"
#include "tokenizer/llama2c_tokenizer.h"

namespace rankrl {

namespace fs = std::filesystem;

namespace {

bool is_hf_tokenizer(const std::string& path) {
  return is_directory(path) || fs::path(path).extension() == ".json";
}

}  // namespace

void write_tokenizer_files(const std::string& tokenizer_path, int64_t vocab_size, const std::string& dir) {
  if (!dist::is_root()) return;
  if (!is_hf_tokenizer(tokenizer_path)) {
    write_tokenizer_json_from_llama2c(Llama2cTokenizer::load(tokenizer_path, int32_t(vocab_size)), dir);
    return;
  }
  const fs::path src = is_directory(tokenizer_path) ? fs::path(tokenizer_path) : fs::path(tokenizer_path).parent_path();
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                           "merges.txt"}) {
    const fs::path from = src / name;
    if (file_exists(from.string())) write_file_atomic((fs::path(dir) / name).string(), read_file(from.string()));
  }
}

void check_tokenizer_writable(const std::string& tokenizer_path, int64_t vocab_size) {
  if (is_hf_tokenizer(tokenizer_path)) return;  // copied verbatim
  check_llama2c_convertible(Llama2cTokenizer::load(tokenizer_path, int32_t(vocab_size)), tokenizer_path);
}

}  // namespace rankrl
