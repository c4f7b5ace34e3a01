// rankrl eval: perplexity on a text file and/or accuracy on a multiple-choice task file.
#include <algorithm>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/utf8.h"
#include "data/tasks.h"
#include "eval/accounting.h"
#include "eval/bootstrap.h"
#include "eval/perplexity.h"
#include "eval/ranking.h"
#include "model/model.h"

namespace rankrl::cli {

namespace {

struct EvalOptions {
  std::string model, tokenizer, text, tasks, labels, split;
  std::string against;  // a second model scored on the same items: paired differences
  int64_t ctx = 0, batch = 0, limit = 0;
  uint64_t seed = 0;  // of the bootstrap resamples
  bool speed = false;
};

// Enough windows per batch to keep the matrix multiplies busy without huge logits tensors.
int64_t default_batch(int64_t ctx, int64_t vocab) {
  return std::clamp<int64_t>((int64_t(1) << 24) / std::max<int64_t>(1, ctx * vocab), 1, 64);
}

nlohmann::json run_perplexity(const Model& m, const EvalOptions& o) {
  const std::string text = read_text_file(o.text);
  int64_t ctx = o.ctx > 0 ? o.ctx : std::min<int64_t>(m.config().max_seq_len > 0 ? m.config().max_seq_len : 1024, 2048);
  int64_t batch = o.batch > 0 ? o.batch : default_batch(ctx, m.config().vocab_size);
  const std::vector<int32_t> ids = m.tokenizer->encode_with_bos(text);
  // perplexity() would reject this too, but without naming the file at fault.
  if (ids.size() < 2)
    throw Error(o.text, "text too short: " + std::to_string(ids.size()) +
                            " token(s), perplexity needs at least 2");
  PerplexityResult r = perplexity(*m.net, ids, ctx, batch);
  info("perplexity " + std::to_string(r.ppl) + " (" + std::to_string(r.nll) + " nats/token over " +
       std::to_string(r.tokens) + " tokens, " + std::to_string(r.seconds) + " s)");
  return {{"text", o.text}, {"ctx", ctx},           {"batch", batch},
          {"tokens", r.tokens}, {"text_tokens", r.text_tokens}, {"windows", r.windows},
          {"nll", r.nll},     {"ppl", r.ppl},       {"seconds", r.seconds},
          {"tokens_per_second", double(r.text_tokens) / std::max(r.seconds, 1e-9)}};
}

// acc / acc_norm / margin per "item_kind" (data build --kinds), in first-seen order; null when
// no item is tagged.
nlohmann::json per_item_kind(const std::vector<TaskItem>& items, const RankingResult& r) {
  std::vector<std::string> kinds;
  for (const TaskItem& it : items)
    if (!it.item_kind.empty() && std::find(kinds.begin(), kinds.end(), it.item_kind) == kinds.end())
      kinds.push_back(it.item_kind);
  if (kinds.empty()) return nullptr;
  nlohmann::json out = nlohmann::json::object();
  for (const std::string& kind : kinds) {
    std::vector<TaskItem> subset;
    std::vector<ItemScores> scores;
    for (size_t i = 0; i < items.size(); ++i)
      if (items[i].item_kind == kind) {
        subset.push_back(items[i]);
        scores.push_back(r.per_item[i]);
      }
    RankingResult k = summarize_ranking(subset, std::move(scores));
    out[kind] = {{"items", k.items}, {"acc", k.acc}, {"acc_norm", k.acc_norm}, {"margin", k.margin}};
    info(kind + ": acc " + std::to_string(k.acc) + ", acc_norm " + std::to_string(k.acc_norm) + " over " +
         std::to_string(k.items) + " items");
  }
  return out;
}

// One metric (acc, acc_norm or margin) of every item, in item order: what the intervals resample.
std::vector<double> outcome_values(const std::vector<ItemOutcome>& outcomes, const std::string& metric) {
  std::vector<double> x;
  for (const ItemOutcome& o : outcomes) x.push_back(metric == "acc" ? o.acc : metric == "acc_norm" ? o.acc_norm : o.margin);
  return x;
}

const char* const kTaskMetrics[] = {"acc", "acc_norm", "margin"};

// acc, acc_norm and margin with percentile bootstrap 95% intervals over the items.
nlohmann::json intervals_json(const RankingResult& r, const Bootstrap& boot) {
  nlohmann::json out = {{"level", boot.level()}, {"resamples", boot.resamples()}, {"seed", boot.seed()}};
  for (const char* name : kTaskMetrics) {
    Interval i = boot.mean(outcome_values(r.outcomes, name));
    out[name] = {{"lo", i.lo}, {"hi", i.hi}};
  }
  return out;
}

std::string with_interval(double v, const nlohmann::json& i) {
  return std::to_string(v) + " [" + std::to_string(i["lo"].get<double>()) + ", " + std::to_string(i["hi"].get<double>()) + "]";
}

// The task items `m` is scored on: the file or split, minus the items too long for its context.
std::vector<TaskItem> task_items(const Model& m, const EvalOptions& o, int64_t& skipped) {
  // A directory from `rankrl data build`: its test split unless --split says otherwise.
  const bool dir = is_directory(o.tasks);
  skipped = 0;
  std::vector<TaskItem> items = dir ? read_task_split(o.tasks, o.split, o.limit, &skipped)
                                    : read_tasks(o.tasks, o.labels, o.limit, &skipped);
  const std::string file = dir ? task_split_path(o.tasks, o.split) : o.tasks;
  skipped += drop_items_too_long(items, *m.tokenizer, m.config().max_seq_len, file);
  check(!items.empty(), file, "no item fits the model's context");
  return items;
}

// --against: the reference model's per-item outcomes, and the task-file lines of the items it
// scored, taken before the evaluated model is loaded (only one model is in memory at a time).
struct Reference {
  std::vector<ItemOutcome> outcomes;
  std::vector<int64_t> lines;
};

std::vector<int64_t> item_lines(const std::vector<TaskItem>& items) {
  std::vector<int64_t> lines;
  for (const TaskItem& it : items) lines.push_back(it.line);
  return lines;
}

Reference reference_outcomes(const EvalOptions& o) {
  Model ref = load_model(o.against, "");
  int64_t skipped = 0;
  const std::vector<TaskItem> items = task_items(ref, o, skipped);
  info("reference " + o.against + ": scoring " + std::to_string(items.size()) + " items");
  return {evaluate_ranking(*ref.net, *ref.tokenizer, items).outcomes, item_lines(items)};
}

// The evaluated model minus the reference, per metric: paired bootstrap intervals (the same
// resampled items for both), and the verdict.
nlohmann::json paired_json(const RankingResult& r, const std::vector<TaskItem>& items, const Reference& reference,
                           const EvalOptions& o) {
  check(item_lines(items) == reference.lines, o.against,
        "the two models fit different items (" + std::to_string(reference.lines.size()) + " vs " +
            std::to_string(items.size()) + "): their contexts or tokenizers differ");
  const std::vector<ItemOutcome>& ref = reference.outcomes;
  const Bootstrap boot(o.seed);
  nlohmann::json out = {{"against", o.against}, {"level", boot.level()}, {"resamples", boot.resamples()}};
  std::string line = "vs " + o.against + ":";
  for (const char* name : kTaskMetrics) {
    const Interval d = boot.paired_difference(outcome_values(r.outcomes, name), outcome_values(ref, name));
    out[name] = {{"difference", d.estimate}, {"lo", d.lo}, {"hi", d.hi}, {"verdict", verdict(d)}};
    line += std::string(" ") + name + " " + std::to_string(d.estimate) + " [" + std::to_string(d.lo) + ", " +
            std::to_string(d.hi) + "] " + verdict(d) + ";";
  }
  info(line);
  return out;
}

nlohmann::json run_tasks(const Model& m, const EvalOptions& o, const Reference* reference) {
  int64_t skipped = 0;
  const std::vector<TaskItem> items = task_items(m, o, skipped);
  if (skipped > 0) info("skipped " + std::to_string(skipped) + " item(s), see the warnings above");
  RankingResult r = evaluate_ranking(*m.net, *m.tokenizer, items);
  nlohmann::json out = {{"tasks", o.tasks}, {"items", r.items},       {"acc", r.acc},
                        {"acc_norm", r.acc_norm}, {"margin", r.margin}, {"truncated", r.truncated},
                        {"skipped", skipped}, {"seconds", r.seconds}};
  if (r.items > 0) {
    const nlohmann::json ci = out["ci95"] = intervals_json(r, Bootstrap(o.seed));
    info("acc " + with_interval(r.acc, ci["acc"]) + ", acc_norm " + with_interval(r.acc_norm, ci["acc_norm"]) +
         ", margin " + with_interval(r.margin, ci["margin"]) + " over " + std::to_string(r.items) +
         " items (bootstrap 95% intervals)");
  }
  if (reference) out["paired"] = paired_json(r, items, *reference, o);
  if (is_directory(o.tasks)) out["split"] = o.split.empty() ? "test" : o.split;
  if (r.cloze_items > 0)
    out["cloze"] = {{"items", r.cloze_items}, {"greedy_acc", r.cloze_greedy}, {"ll", r.cloze_ll}};
  nlohmann::json kinds = per_item_kind(items, r);
  if (!kinds.is_null()) out["item_kinds"] = kinds;
  return out;
}

}  // namespace

Command add_eval(CLI::App& app, Common& common) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* sub = app.add_subcommand(
      "eval",
      "Perplexity of a text file and/or accuracy on a multiple-choice task file.\n"
      "Perplexity: the whole file is tokenized as one string (BOS first when the tokenizer adds\n"
      "one) and cut into non-overlapping windows of --ctx tokens; every token but each window's\n"
      "first is scored; prints scored tokens, mean NLL (nats) and perplexity.\n"
      "Tasks: each choice is scored by the summed log-likelihood of ' ' + choice after the query\n"
      "(lm-evaluation-harness convention); acc = argmax, acc_norm = argmax of score / bytes of the\n"
      "choice, margin = mean log-softmax of the gold choice's score among the choices; each with a\n"
      "percentile bootstrap 95% interval over the items (ci95: 2000 resamples drawn from --seed).");
  sub->add_option("--model", o->model, "llama2.c .bin or Hugging Face model directory")->required();
  sub->add_option("--tokenizer", o->tokenizer, "Tokenizer (default: found beside the model)");
  sub->add_option("--text", o->text, "Plain UTF-8 text file for perplexity");
  sub->add_option("--ctx", o->ctx, "Window length in tokens (default: the model's maximum, at most 2048)");
  sub->add_option("--batch", o->batch, "Windows per forward pass (default: by vocabulary size)");
  sub->add_option("--tasks", o->tasks,
                  "Task file: JSONL {query, choices, gold[, kind]} or original PIQA {goal, sol1, sol2},\n"
                  "or a directory from rankrl data build (see --split)");
  sub->add_option("--labels", o->labels, "PIQA labels file (default: <tasks stem>-labels.lst)");
  sub->add_option("--split", o->split, "With a --tasks directory from rankrl data build: rkd, vrkd or test (default test)");
  sub->add_option("--limit", o->limit, "Evaluate only the first N task items");
  sub->add_option("--seed", o->seed, "Seed of the bootstrap resamples behind the tasks' 95% intervals (default 0)");
  sub->add_option("--against", o->against,
                  "A second model (e.g. the dense one) scored on the same --tasks items: the differences\n"
                  "(this model minus it) of acc, acc_norm and margin with paired bootstrap 95% intervals\n"
                  "(\"paired\" in --json); the two are loaded one after the other");
  sub->add_flag("--speed", o->speed,
                "Also report size and measured speed (\"speed\" in --json): parameters, bytes, linear FLOPs per\n"
                "token, and tokens/s of a prefill (8x256, T clipped to the model's context) and a decode\n"
                "(batch 1, after a 64-token cached context) forward pass (medians of 5 after warm-up)");
  add_common(sub, common);
  return {sub, [o, &common] {
            if (o->text.empty() && o->tasks.empty() && !o->speed) throw usage_error("eval needs --text, --tasks and/or --speed");
            if (!o->split.empty() && !o->tasks.empty() && !is_directory(o->tasks))
              throw usage_error("--split needs --tasks to be a directory from rankrl data build");
            if (o->ctx < 0 || o->batch < 0 || o->limit < 0) throw usage_error("--ctx, --batch and --limit must be positive");
            if (!o->against.empty() && o->tasks.empty()) throw usage_error("--against needs --tasks");
            Reference reference;
            if (!o->against.empty()) reference = reference_outcomes(*o);
            Model m = load_model(o->model, o->tokenizer);
            nlohmann::json out = {{"model", o->model}};
            if (!o->text.empty()) out.update(run_perplexity(m, *o));
            if (!o->tasks.empty()) out.update(run_tasks(m, *o, o->against.empty() ? nullptr : &reference));
            if (o->speed) {
              out["speed"] = size_and_speed(*m.net);
              info("speed: prefill " + std::to_string(out["speed"]["prefill_tokens_per_second"].get<double>()) +
                   " tokens/s, decode " + std::to_string(out["speed"]["decode_tokens_per_second"].get<double>()) +
                   " tokens/s; linear FLOPs/token " + std::to_string(out["speed"]["linear_flops_per_token"].get<int64_t>()));
            }
            print_result(out, common);
            return 0;
          }};
}

}  // namespace rankrl::cli
