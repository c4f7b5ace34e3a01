// rankrl inspect: architecture, tensor groups, parameters, dtypes and bytes of a model. Reads
// headers only (weights are memory-mapped and never touched) unless --check-values.
#include <memory>

#include "cli/commands.h"
#include "eval/accounting.h"
#include "model/model.h"

namespace rankrl::cli {

Command add_inspect(CLI::App& app, Common& common) {
  auto model = std::make_shared<std::string>();
  auto tokenizer = std::make_shared<std::string>();
  auto check_values = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand("inspect", "Architecture, tensor groups, parameters, dtypes, bytes");
  sub->add_option("--model", *model, "llama2.c .bin or Hugging Face model directory")->required();
  sub->add_option("--tokenizer", *tokenizer, "Tokenizer (default: found beside the model)");
  sub->add_flag("--check-values", *check_values,
                "Also scan every weight for NaN/Inf (reads all tensor data; default: headers only)");
  add_common(sub, common);
  return {sub, [model, tokenizer, check_values, &common] {
            LoadOptions options;
            options.check_values = *check_values;
            print_result(describe_model(load_model(*model, *tokenizer, options)), common);
            return 0;
          }};
}

}  // namespace rankrl::cli
