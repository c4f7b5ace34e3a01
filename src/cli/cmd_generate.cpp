// rankrl generate: continue a prompt (greedy by default), streaming the text to stdout.
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "model/generate.h"
#include "model/model.h"

namespace rankrl::cli {

namespace {

struct GenerateCliOptions {
  std::string model, tokenizer, prompt;
  GenerateOptions gen;
};

std::vector<int32_t> prompt_ids(const Tokenizer& tok, const std::string& prompt) {
  std::vector<int32_t> ids = tok.encode_with_bos(prompt);
  if (ids.empty() && tok.bos_id() >= 0) ids.push_back(tok.bos_id());  // e.g. GPT-2's <|endoftext|>
  if (ids.empty()) throw usage_error("empty --prompt and the tokenizer has no BOS token to start from");
  return ids;
}

int run_generate(const GenerateCliOptions& o, const Common& common) {
  Model m = load_model(o.model, o.tokenizer);
  std::vector<int32_t> ids = prompt_ids(*m.tokenizer, o.prompt);
  std::vector<int32_t> text_ids(ids.begin() + (ids[0] == m.tokenizer->bos_id() ? 1 : 0), ids.end());
  GenerateOptions g = o.gen;
  g.stop_token = m.tokenizer->eos_id();
  // Stream by decoding everything so far and printing what is new: merges and byte-fallback
  // tokens only become text in context.
  std::string printed = m.tokenizer->decode(text_ids);
  if (!common.json) std::cout << printed << std::flush;
  std::vector<int32_t> out = generate(*m.net, ids, g, [&](int32_t id) {
    text_ids.push_back(id);
    if (common.json) return;
    std::string now = m.tokenizer->decode(text_ids);
    if (now.size() > printed.size() && now.compare(0, printed.size(), printed) == 0)
      std::cout << now.substr(printed.size()) << std::flush;
    printed = now;
  });
  if (common.json) {
    print_json({{"model", o.model}, {"prompt", o.prompt}, {"prompt_ids", ids}, {"ids", out},
                {"text", m.tokenizer->decode(text_ids)}, {"temperature", g.temperature},
                {"seed", g.seed}});
  } else {
    std::cout << std::endl;
  }
  return 0;
}

}  // namespace

Command add_generate(CLI::App& app, Common& common) {
  auto o = std::make_shared<GenerateCliOptions>();
  CLI::App* sub = app.add_subcommand("generate", "Continue a prompt with the model (KV-cached)");
  sub->add_option("--model", o->model, "llama2.c .bin or Hugging Face model directory")->required();
  sub->add_option("--tokenizer", o->tokenizer, "Tokenizer (default: found beside the model)");
  sub->add_option("--prompt", o->prompt, "Prompt text (default: empty, start from BOS)");
  sub->add_option("-n,--tokens", o->gen.max_new_tokens, "New tokens to generate")->check(CLI::PositiveNumber);
  sub->add_option("--temperature", o->gen.temperature, "0 = greedy (default); else sampling temperature")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--seed", o->gen.seed, "Sampling seed");
  add_common(sub, common);
  return {sub, [o, &common] { return run_generate(*o, common); }};
}

}  // namespace rankrl::cli
