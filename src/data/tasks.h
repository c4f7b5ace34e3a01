// Multiple-choice ("ranking") task files.
// Uniform schema, one JSON object per line: {"query": str, "choices": [str, ...], "gold": int}.
// Original PIQA: {"goal", "sol1", "sol2"} per line plus a labels file (one 0/1 per line); its
// default location is <name>-labels.lst beside <name>.jsonl.
#pragma once
#include <string>
#include <vector>

namespace rankrl {

struct TaskItem {
  std::string query;
  std::vector<std::string> choices;
  int gold = 0;
};

// Reads either format (detected from the first item). `labels_path` overrides the PIQA labels
// location. Throws Error naming the file and line for malformed JSON, a missing or ill-typed
// field, fewer than two choices, an empty choice, a gold index out of range, a labels file of
// the wrong length, or an empty task file. `limit` > 0 keeps the first `limit` items.
std::vector<TaskItem> read_tasks(const std::string& path, const std::string& labels_path = "",
                                 int64_t limit = 0);

}  // namespace rankrl
