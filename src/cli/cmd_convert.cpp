// rankrl convert: llama2.c checkpoint → Hugging Face Llama directory.
#include <memory>

#include "cli/commands.h"
#include "core/log.h"
#include "model/convert.h"
#include "model/model.h"

namespace rankrl::cli {

namespace {
struct ConvertOptions {
  std::string model, tokenizer, out;
};
}  // namespace

Command add_convert(CLI::App& app, Common& common) {
  auto o = std::make_shared<ConvertOptions>();
  CLI::App* sub = app.add_subcommand(
      "convert", "Write a llama2.c checkpoint as a Hugging Face Llama directory (same logits)");
  sub->add_option("--model", o->model, "llama2.c .bin checkpoint")->required();
  sub->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin (default: found beside the model)");
  sub->add_option("--out", o->out, "Output directory")->required();
  add_common(sub, common);
  return {sub, [o, &common] {
            std::string tok = o->tokenizer.empty() ? default_tokenizer_path(o->model) : o->tokenizer;
            convert_llama2c(o->model, tok, o->out);
            info("wrote " + o->out);
            if (common.json) print_json({{"model", o->model}, {"tokenizer", tok}, {"out", o->out}});
            return 0;
          }};
}

}  // namespace rankrl::cli
