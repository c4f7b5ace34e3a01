// `rankrl data check`: integrity report for a task file or a split directory.
// Errors (each with file:line): malformed JSON or schema, gold out of range, fewer than two
// choices (cloze: not exactly one), empty or whitespace-only choices, choices of an item that are
// identical up to whitespace, duplicate items within a file (normalised), a context present in
// two splits (normalised hash, directories only), item counts that disagree with manifest.json
// (per item kind too). Items tagged "item_kind" (data build --kinds) are also checked per kind:
// an unknown kind, choices equal after normalisation, and the kind's shape (data/kinds.h).
// Reported without being errors: gold-position histograms, kinds, contexts repeated within a
// file with other choices, choices equal only after normalisation (case and punctuation can
// matter: "100% Rr" / "100% rr" in ARC-Easy).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace rankrl {

struct CheckIssue {
  std::string file;
  int64_t line = 0;  // 0: about the whole file
  std::string what;
  std::string where() const { return line > 0 ? file + ":" + std::to_string(line) : file; }
};

// Items of one "item_kind" (data build --kinds) in a file.
struct ItemKindCheck {
  int64_t items = 0, errors = 0;
  std::vector<int64_t> gold_positions;
};

struct FileCheck {
  std::string file, split;  // split "" for a lone file
  int64_t items = 0, duplicate_items = 0, repeated_contexts = 0, errors = 0;
  int64_t near_duplicate_choices = 0;  // items with two choices equal after normalisation
  int64_t too_long = 0;                // items whose answer alone fills the model's context (with --model)
  std::map<std::string, int64_t> kinds;
  std::map<std::string, ItemKindCheck> item_kinds;  // tagged items only
  std::vector<int64_t> gold_positions;  // histogram of gold indices
};

struct CheckReport {
  std::string path;
  std::vector<FileCheck> files;
  std::map<std::string, int64_t> overlap;  // "rkd/test" -> items of the later split whose context is in the earlier
  std::vector<CheckIssue> errors;
  bool ok() const { return errors.empty(); }
};

// A model's context and how many tokens an item's longest answer (choice, or cloze/partial
// continuation) takes under its tokenizer: an item whose answer alone fills the context cannot
// be scored (eval and search skip it), so check reports it as an error.
struct TaskItem;
struct ContextLimit {
  std::function<int64_t(const TaskItem&)> answer_tokens;
  int64_t max_len = 0;
};

// Checks a file or a directory holding rkd.jsonl, vrkd.jsonl and test.jsonl. Throws Error only
// when the path cannot be read; problems in the data go into the report.
CheckReport check_tasks(const std::string& path, const ContextLimit* limit = nullptr);

nlohmann::json check_report_json(const CheckReport& report);
std::string check_report_text(const CheckReport& report, size_t max_errors = 100);

}  // namespace rankrl
