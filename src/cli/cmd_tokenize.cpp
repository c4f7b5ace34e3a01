// rankrl tokenize: token ids of a text file.
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "model/model.h"

namespace rankrl::cli {

namespace {
struct TokenizeOptions {
  std::string model, tokenizer, text;
  bool bos = false;
};
}  // namespace

Command add_tokenize(CLI::App& app, Common& common) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* sub = app.add_subcommand("tokenize", "Token ids of a text file ({\"ids\": [...]} with --json)");
  sub->add_option("--model", o->model, "Model (its tokenizer is used)");
  sub->add_option("--tokenizer", o->tokenizer, "tokenizer.json, tokenizer.bin or a directory");
  sub->add_option("--text", o->text, "Text file")->required();
  sub->add_flag("--bos", o->bos, "Prepend BOS (when the tokenizer has one)");
  add_common(sub, common);
  return {sub, [o, &common] {
            std::string path = !o->tokenizer.empty() ? o->tokenizer
                               : !o->model.empty()   ? default_tokenizer_path(o->model)
                                                     : "";
            if (path.empty()) throw usage_error("tokenize needs --tokenizer or --model");
            auto tok = load_tokenizer(path);
            std::string text = read_file(o->text);
            std::vector<int32_t> ids = tok->encode(text);
            if (o->bos && tok->bos_id() >= 0) ids.insert(ids.begin(), tok->bos_id());
            if (common.json) {
              print_json({{"ids", ids}});
            } else {
              for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
              std::cout << "\n";
            }
            return 0;
          }};
}

}  // namespace rankrl::cli
