// rankrl inspect: architecture, tensor groups, parameters, dtypes and bytes of a model.
#include <memory>

#include "cli/commands.h"
#include "eval/accounting.h"
#include "model/model.h"

namespace rankrl::cli {

Command add_inspect(CLI::App& app, Common& common) {
  auto model = std::make_shared<std::string>();
  auto tokenizer = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand("inspect", "Architecture, tensor groups, parameters, dtypes, bytes");
  sub->add_option("--model", *model, "llama2.c .bin or Hugging Face model directory")->required();
  sub->add_option("--tokenizer", *tokenizer, "Tokenizer (default: found beside the model)");
  add_common(sub, common);
  return {sub, [model, tokenizer, &common] {
            print_result(describe_model(load_model(*model, *tokenizer)), common);
            return 0;
          }};
}

}  // namespace rankrl::cli
