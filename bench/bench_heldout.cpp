// bench_heldout: perplexity by the DESIGN.md protocol on a token range of a text's tokenization
// (the whole file tokenized as one string, BOS first; then ids[start, start+tokens) in windows of
// ctx). The compression tables use ids[200000, 232768) of tinystories_val.txt at ctx 256.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <iostream>

#include "core/error.h"
#include "core/fs.h"
#include "eval/perplexity.h"
#include "model/model.h"

int main(int argc, char** argv) {
  using namespace rankrl;
  CLI::App app{"held-out perplexity on a token range"};
  std::string model, tokenizer, text;
  int64_t start = 200000, tokens = 32768, ctx = 256;
  app.add_option("--model", model)->required();
  app.add_option("--tokenizer", tokenizer);
  app.add_option("--text", text)->required();
  app.add_option("--start", start);
  app.add_option("--tokens", tokens);
  app.add_option("--ctx", ctx);
  CLI11_PARSE(app, argc, argv);
  try {
    Model m = load_model(model, tokenizer);
    std::vector<int32_t> ids = m.tokenizer->encode_with_bos(read_file(text));
    check(int64_t(ids.size()) >= start + tokens, text, "too few tokens for the requested range");
    std::vector<int32_t> range(ids.begin() + start, ids.begin() + start + tokens);
    PerplexityResult r = perplexity(*m.net, range, ctx, 16, false);
    std::cout << nlohmann::json{{"ppl", r.ppl}, {"nll", r.nll}, {"tokens", r.tokens}}.dump() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "bench_heldout: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
