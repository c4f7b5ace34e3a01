#include "model/model.h"

#include <filesystem>
#include <vector>

#include "core/error.h"
#include "core/fs.h"

namespace fs = std::filesystem;

namespace rankrl {

std::string default_tokenizer_path(const std::string& model_path) {
  if (is_directory(model_path)) return model_path;
  fs::path dir = fs::path(model_path).parent_path();
  if (dir.empty()) dir = ".";
  if (fs::exists(dir / "tokenizer.bin")) return (dir / "tokenizer.bin").string();
  std::vector<fs::path> candidates;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind("tok", 0) == 0 && e.path().extension() == ".bin") candidates.push_back(e.path());
  }
  return candidates.size() == 1 ? candidates[0].string() : "";
}

Model load_model(const std::string& path, const std::string& tokenizer_path, const LoadOptions& options) {
  Model m;
  m.checkpoint = load_checkpoint(path, options);
  std::string tok = tokenizer_path.empty() ? default_tokenizer_path(path) : tokenizer_path;
  if (tok.empty()) throw Error(path, "no tokenizer found beside the model; pass --tokenizer");
  m.tokenizer = load_tokenizer(tok);
  if (m.tokenizer->vocab_size() > m.config().vocab_size)
    throw Error(tok, "tokenizer has " + std::to_string(m.tokenizer->vocab_size()) +
                         " tokens but the model's vocabulary is " +
                         std::to_string(m.config().vocab_size));
  m.net = std::make_unique<Transformer>(m.config(), m.checkpoint.weights);
  return m;
}

}  // namespace rankrl
