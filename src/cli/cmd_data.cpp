// rankrl data build | check | import: ranking datasets (RkD / VRkD / test) and their integrity.
#include <memory>
#include <optional>
#include <sstream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/build.h"
#include "data/check.h"
#include "data/import.h"
#include "data/tasks.h"
#include "eval/ranking.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace rankrl::cli {

namespace {

struct DataOptions {
  BuildOptions build;
  std::string model, tokenizer, split = "0.6,0.2,0.2", split_items;
  std::string check_path, check_model, check_tokenizer;
  std::string format, in, labels, out;
  bool force_import = false;
};

// "a,b,c" → three numbers; `what` names the flag in the usage error.
template <class T>
std::array<T, 3> three(const std::string& s, const std::string& what) {
  std::array<T, 3> v{};
  std::istringstream in(s);
  char comma = 0;
  if (!(in >> v[0] >> comma >> v[1] >> comma >> v[2]) || !(in >> std::ws).eof())
    throw usage_error(what + " takes three comma-separated numbers, got '" + s + "'");
  return v;
}

// This process's command line, shell-quoted, for the manifest.
std::string quoted_command_line() {
  std::string raw;
  try {
    raw = read_file("/proc/self/cmdline");
  } catch (const Error&) {
    return "";
  }
  std::string out;
  size_t b = 0;
  while (b < raw.size()) {
    size_t e = raw.find('\0', b);
    if (e == std::string::npos) e = raw.size();
    std::string arg = raw.substr(b, e - b);
    bool plain = !arg.empty() && arg.find_first_not_of(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=,:+@") == std::string::npos;
    if (!out.empty()) out += ' ';
    if (plain) {
      out += arg;
    } else {
      out += '\'';
      for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
      out += '\'';
    }
    b = e + 1;
  }
  return out;
}

int run_build(DataOptions& o, const Common& common) {
  BuildOptions& b = o.build;
  b.fractions = three<double>(o.split, "--split");
  if (!o.split_items.empty()) {
    b.split_items = three<int64_t>(o.split_items, "--split-items");
    for (int64_t n : b.split_items)
      if (n < 0) throw usage_error("--split-items must be >= 0");
  }
  b.command = quoted_command_line();
  b.progress = !common.json && !common.quiet;
  std::unique_ptr<Tokenizer> tok;
  std::string tok_path = o.tokenizer;
  if (tok_path.empty() && !o.model.empty()) {
    tok_path = default_tokenizer_path(o.model);
    if (tok_path.empty()) throw Error(o.model, "no tokenizer found beside the model (use --tokenizer)");
  }
  if (!tok_path.empty()) {
    tok = load_tokenizer(tok_path);
    b.tokenizer = tok.get();
    b.tokenizer_name = tok_path;
  }
  nlohmann::json m = build_ranking_data(b);
  info("wrote " + b.out);
  nlohmann::json out = {{"out", b.out}, {"counts", m["counts"]}, {"chance", m["chance"]},
                        {"length_unit", m["length_unit"]}};
  for (const auto& [split, s] : m["splits"].items())
    out[split] = {{"documents", s["documents"]}, {"context_length_mean", s["context_length"]["mean"]},
                  {"choice_length_mean", s["choice_length"]["mean"]}};
  print_result(common.json ? m : out, common);
  return 0;
}

int run_check(DataOptions& o, const Common& common) {
  if (!file_exists(o.check_path) && !is_directory(o.check_path)) throw Error(o.check_path, "no such file or directory");
  // With --model: items whose answer alone fills that model's context are errors too.
  std::optional<Model> model;
  ContextLimit limit;
  if (!o.check_model.empty()) {
    model = load_model(o.check_model, o.check_tokenizer);
    limit.max_len = model->config().max_seq_len;
    limit.answer_tokens = [&](const TaskItem& item) { return longest_answer_tokens(*model->tokenizer, item); };
  }
  CheckReport r = check_tasks(o.check_path, model ? &limit : nullptr);
  if (common.json) print_json(check_report_json(r));
  else std::cout << check_report_text(r);
  if (!r.ok())
    throw Error(r.path, std::to_string(r.errors.size()) + " error(s), first " + r.errors[0].where() + ": " +
                            r.errors[0].what);
  return 0;
}

int run_import(DataOptions& o, const Common& common) {
  if (file_exists(o.out) && !o.force_import) throw Error(o.out, "output exists (use --force to replace it)");
  std::vector<TaskItem> items = import_tasks(o.format, o.in, o.labels);
  write_tasks(o.out, items);
  info("wrote " + std::to_string(items.size()) + " items to " + o.out);
  print_result({{"in", o.in}, {"out", o.out}, {"format", o.format}, {"items", items.size()}}, common);
  return 0;
}

}  // namespace

Command add_data(CLI::App& app, Common& common) {
  auto o = std::make_shared<DataOptions>();
  CLI::App* data = app.add_subcommand("data", "Ranking datasets: build from text, check, import");
  data->require_subcommand(1);

  CLI::App* build = data->add_subcommand(
      "build",
      "Build multiple-choice ranking items from plain text into rkd.jsonl, vrkd.jsonl, test.jsonl\n"
      "and manifest.json. Item: query = a window of a document ending at a sentence boundary (about\n"
      "--context-tokens long), gold = the true next sentence, distractors = --hard later sentences\n"
      "of the same document plus sentences of similar length from other documents of the same\n"
      "split. Documents are split disjointly; duplicate documents, contexts and choices are removed\n"
      "by normalised hashing; gold positions are balanced; everything follows from --seed.");
  BuildOptions& b = o->build;
  build->add_option("--corpus", b.corpora, "Plain UTF-8 text file(s)")->required();
  build->add_option("--out", b.out, "Output directory (written atomically)")->required();
  build->add_option("--items", b.items, "Items over all splits, shared by --split (default 300)");
  build->add_option("--split", o->split, "Fractions of documents (and items) for rkd,vrkd,test (default 0.6,0.2,0.2)");
  build->add_option("--split-items", o->split_items, "Exact item counts for rkd,vrkd,test (instead of --items)");
  build->add_option("--choices", b.choices, "Choices per item, K (default 4; chance = 1/K)");
  build->add_option("--hard", b.hard, "Same-document distractors per next-sentence item (default 1)");
  build->add_option("--kinds", b.kinds,
                    "Item kinds, comma-separated, sharing each split's items equally (default next):\n"
                    "next (gold = the true next sentence, distractors = other sentences), shuffle (its\n"
                    "words permuted), swap (a 2-3 word span from another document swapped in), replace\n"
                    "(1-2 content words replaced by other documents' words), lastword (the sentence's\n"
                    "last word among content words of the passage). Items are tagged \"item_kind\"\n"
                    "unless the kind is next alone")
      ->delimiter(',');
  build->add_option("--max-choice-tokens", b.max_choice_tokens,
                    "Longest usable choice, same unit as --context-tokens; longer sentences are skipped (default 96)");
  build->add_option("--context-tokens", b.context_tokens,
                    "Context length: whitespace words, or tokens with --model/--tokenizer (default 64)");
  build->add_option("--seed", b.seed, "Seed for every random choice (default 1)");
  build->add_option("--model", o->model, "Count tokens with this model's tokenizer");
  build->add_option("--tokenizer", o->tokenizer, "Count tokens with this tokenizer");
  build->add_option("--docs", b.docs,
                    "Document boundaries: auto (endoftext if '<|endoftext|>' occurs, heading if WikiText\n"
                    "'= Title =' lines do, else blank), endoftext, heading, blank (default auto)");
  build->add_option("--split-order", b.split_order,
                    "auto (file for blank-line documents, else shuffle), shuffle, file (default auto)");
  build->add_flag("--force", b.force, "Replace an existing --out directory");
  add_common(build, common);

  CLI::App* check = data->add_subcommand(
      "check",
      "Validate a task file or a split directory: schema, gold in range, >= 2 choices, empty\n"
      "choices, duplicate choices and items, cross-split context overlap, manifest counts; items\n"
      "tagged item_kind (data build --kinds) also per kind: choices equal after normalisation and\n"
      "the kind's shape. Prints a report with gold-position histograms (per item kind too).\n"
      "Exit 1 with file:line for every error.");
  check->add_option("path", o->check_path, "Task file or directory with rkd/vrkd/test.jsonl")->required();
  check->add_option("--model", o->check_model, "Also report items whose answer alone fills this model's context");
  check->add_option("--tokenizer", o->check_tokenizer, "Tokenizer of --model (default: found beside it)");
  add_common(check, common);

  CLI::App* import = data->add_subcommand(
      "import",
      "Convert a task file to the uniform schema. Formats: piqa (original jsonl + labels),\n"
      "hellaswag (llama.cpp text, 6 lines per task), cloze ({context, continuation}, LAMBADA style),\n"
      "partial ({context_options, continuation, gold|answer}, WinoGrande partial scoring).");
  import->add_option("--format", o->format, "piqa | hellaswag | cloze | partial")->required();
  import->add_option("--in", o->in, "Input file")->required();
  import->add_option("--labels", o->labels, "PIQA labels file (default: <in stem>-labels.lst)");
  import->add_option("--out", o->out, "Output JSONL (written atomically)")->required();
  import->add_flag("--force", o->force_import, "Replace an existing --out");
  add_common(import, common);

  return {data, [o, &common, build, check, import] {
            if (build->parsed()) return run_build(*o, common);
            if (check->parsed()) return run_check(*o, common);
            if (import->parsed()) return run_import(*o, common);
            throw usage_error("data needs a subcommand: build, check or import");
          }};
}

}  // namespace rankrl::cli
