// Multiple-choice ("ranking") task files.
// Uniform schema, one JSON object per line: {"query": str, "choices": [str, ...], "gold": int}.
// An optional "kind" says how the item is scored (default "choice", the schema above):
//   "cloze":   {"kind": "cloze", "query": context, "choices": [continuation], "gold": 0}
//              one continuation; scored by greedy match and its log-likelihood (LAMBADA style).
//   "partial": {"kind": "partial", "choices": [context, ...], "continuation": str, "gold": int}
//              several contexts share one continuation; each context is scored by the
//              log-likelihood of the continuation after it (WinoGrande partial scoring).
// An optional string "item_kind" (written by `rankrl data build --kinds`, data/kinds.h) names how
// the item was made; scoring ignores it, `data check` and `eval` report per item kind.
// Original PIQA: {"goal", "sol1", "sol2"} per line plus a labels file (one 0/1 per line); its
// default location is <name>-labels.lst beside <name>.jsonl.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rankrl {

enum class TaskKind { choice, cloze, partial };

struct TaskItem {
  std::string query;
  std::vector<std::string> choices;
  int gold = 0;
  TaskKind kind = TaskKind::choice;
  std::string continuation;  // partial only: shared by every context in `choices`
  std::string item_kind;     // "item_kind" of `data build --kinds` items ("" if none); not for scoring
  int64_t line = 0;          // line in the task file it was read from (0: not from a file)
};

const char* task_kind_name(TaskKind kind);

// The rules every reader applies to choices (read_tasks skips, `data check` reports): a choice
// must not be blank, and the gold choice must not equal another up to whitespace (a repeated
// distractor is allowed: ARC-Easy has a few, and lm-evaluation-harness scores them).
bool blank_text(const std::string& s);
// Runs of ASCII whitespace collapsed to one space, trailing whitespace dropped.
std::string collapse_spaces(const std::string& s);

// Reads either format (detected from the first item). `labels_path` overrides the PIQA labels
// location. Throws Error naming the file and line for malformed JSON, a missing or ill-typed
// field, fewer than two choices, an empty choice, a gold index out of range, a labels file of
// the wrong length, or an empty task file. An item with a blank choice or a gold choice equal to
// another up to whitespace is skipped with a `path:line: skipped: ...` warning and counted in `*skipped`.
// `limit` > 0 keeps the first `limit` items.
std::vector<TaskItem> read_tasks(const std::string& path, const std::string& labels_path = "",
                                 int64_t limit = 0, int64_t* skipped = nullptr);

// The split names of a ranking data directory, in order: rkd, vrkd, test.
const std::vector<std::string>& task_splits();

// `dir_or_file` is a task file (read as read_tasks does; `split` must then be empty) or a
// directory written by `rankrl data build` / holding <split>.jsonl; `split` = "" means "test".
// Throws Error naming the path for an unknown split or a missing file.
std::vector<TaskItem> read_task_split(const std::string& dir_or_file, const std::string& split = "",
                                      int64_t limit = 0, int64_t* skipped = nullptr);
// The file read_task_split reads.
std::string task_split_path(const std::string& dir_or_file, const std::string& split = "");

// One line of the uniform schema (no trailing newline); "kind" only when not "choice",
// "item_kind" only when set.
std::string task_item_json(const TaskItem& item);
// Writes items as JSONL atomically.
void write_tasks(const std::string& path, const std::vector<TaskItem>& items);

}  // namespace rankrl
