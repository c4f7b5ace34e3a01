// load_tokenizer(): picks the tokenizer format from the path.
#include <filesystem>

#include "core/error.h"
#include "core/fs.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/llama2c_tokenizer.h"

namespace rankrl {

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

[[noreturn]] void reject_sentencepiece_model(const std::string& path) {
  throw Error(path,
              "SentencePiece tokenizer.model is not supported; use the model's tokenizer.json "
              "(Hugging Face fast tokenizer) instead");
}

// tokenizer.json plus the tokenizer_config.json beside it, when there is one.
std::unique_ptr<Tokenizer> load_tokenizer_json(const std::string& json_path) {
  const std::filesystem::path dir = std::filesystem::path(json_path).parent_path();
  const std::string config_path = (dir / "tokenizer_config.json").string();
  const std::string config = file_exists(config_path) ? read_file(config_path) : "";
  return BpeTokenizer::parse(read_file(json_path), json_path, config, config_path);
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  if (is_directory(path)) {
    const std::string json_path = (std::filesystem::path(path) / "tokenizer.json").string();
    if (file_exists(json_path)) return load_tokenizer_json(json_path);
    const std::string model_path = (std::filesystem::path(path) / "tokenizer.model").string();
    if (file_exists(model_path)) reject_sentencepiece_model(model_path);
    throw Error(path, "no tokenizer.json in this directory");
  }
  if (!file_exists(path)) throw Error(path, "no such file or directory");
  if (ends_with(path, ".json")) return load_tokenizer_json(path);
  if (ends_with(path, ".model")) reject_sentencepiece_model(path);
  return std::make_unique<Llama2cTokenizer>(Llama2cTokenizer::load(path));
}

}  // namespace rankrl
