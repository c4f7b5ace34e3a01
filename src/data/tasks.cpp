#include "data/tasks.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "core/fs.h"

namespace rankrl {

namespace {

using nlohmann::json;

struct Line {
  int64_t number;
  std::string text;
};

std::vector<Line> non_empty_lines(const std::string& text) {
  std::vector<Line> out;
  std::istringstream in(text);
  std::string s;
  for (int64_t n = 1; std::getline(in, s); ++n) {
    if (!s.empty() && s.back() == '\r') s.pop_back();
    if (s.find_first_not_of(" \t") != std::string::npos) out.push_back({n, s});
  }
  return out;
}

json parse_line(const std::string& path, const Line& line) {
  try {
    json j = json::parse(line.text);
    if (!j.is_object()) throw Error(path, "line " + std::to_string(line.number) + ": not a JSON object");
    return j;
  } catch (const json::exception&) {
    throw Error(path, "line " + std::to_string(line.number) + ": malformed JSON");
  }
}

std::string string_field(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_string())
    throw Error(where, std::string("missing or non-string field '") + key + "'");
  return j[key].get<std::string>();
}

TaskKind kind_field(const json& j, const std::string& where) {
  if (!j.contains("kind")) return TaskKind::choice;
  if (!j["kind"].is_string()) throw Error(where, "non-string field 'kind'");
  std::string k = j["kind"].get<std::string>();
  if (k == "choice") return TaskKind::choice;
  if (k == "cloze") return TaskKind::cloze;
  if (k == "partial") return TaskKind::partial;
  throw Error(where, "unknown kind '" + k + "' (choice, cloze or partial)");
}

TaskItem uniform_item(const json& j, const std::string& where) {
  TaskItem item;
  item.kind = kind_field(j, where);
  // A partial item's contexts are its choices; it has no query of its own.
  if (item.kind != TaskKind::partial || j.contains("query")) item.query = string_field(j, "query", where);
  if (item.kind == TaskKind::partial) item.continuation = string_field(j, "continuation", where);
  if (!j.contains("choices") || !j["choices"].is_array())
    throw Error(where, "missing or non-array field 'choices'");
  for (const json& c : j["choices"]) {
    if (!c.is_string()) throw Error(where, "a choice is not a string");
    item.choices.push_back(c.get<std::string>());
  }
  if (!j.contains("gold") || !j["gold"].is_number_integer())
    throw Error(where, "missing or non-integer field 'gold'");
  item.gold = j["gold"].get<int>();
  if (j.contains("item_kind")) {
    if (!j["item_kind"].is_string()) throw Error(where, "non-string field 'item_kind'");
    item.item_kind = j["item_kind"].get<std::string>();
  }
  return item;
}

}  // namespace

bool blank_text(const std::string& s) { return s.find_first_not_of(" \t\r\n\f\v") == std::string::npos; }

std::string collapse_spaces(const std::string& s) {
  std::string out;
  for (char c : s) {
    bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r';
    if (space && (out.empty() || out.back() == ' ')) continue;
    out += space ? ' ' : c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

namespace {

void validate(const TaskItem& item, const std::string& where) {
  if (item.kind == TaskKind::cloze) {
    if (item.choices.size() != 1) throw Error(where, "a cloze item needs exactly one choice");
  } else if (item.choices.size() < 2) {
    throw Error(where, "fewer than two choices");
  }
  for (const std::string& c : item.choices)
    if (c.empty()) throw Error(where, "empty choice");
  if (item.kind == TaskKind::partial && item.continuation.empty())
    throw Error(where, "empty continuation");
  if (item.gold < 0 || item.gold >= int(item.choices.size()))
    throw Error(where, "gold index " + std::to_string(item.gold) + " out of range");
}

// Why the item's choices cannot be ranked ("" when they can): the rule `data check` reports too.
std::string choice_defect(const TaskItem& item) {
  for (size_t k = 0; k < item.choices.size(); ++k) {
    if (blank_text(item.choices[k])) return "choice " + std::to_string(k) + " is empty or whitespace";
    // A repeated distractor is harmless; a gold answer that is also a distractor is no answer.
    for (size_t m = 0; m < k; ++m)
      if ((int(k) == item.gold || int(m) == item.gold) && collapse_spaces(item.choices[k]) == collapse_spaces(item.choices[m]))
        return "choices " + std::to_string(m) + " and " + std::to_string(k) + " are duplicates (one is gold)";
  }
  return "";
}

std::vector<int> read_labels(const std::string& path) {
  std::vector<int> labels;
  for (const Line& line : non_empty_lines(read_file(path))) {
    std::string s = line.text;
    s.erase(s.find_last_not_of(" \t") + 1);
    if (s != "0" && s != "1")
      throw Error(path, "line " + std::to_string(line.number) + ": label must be 0 or 1");
    labels.push_back(s == "1");
  }
  return labels;
}

std::string default_labels_path(const std::string& path) {
  std::string stem = path.size() > 6 && path.ends_with(".jsonl") ? path.substr(0, path.size() - 6) : path;
  return stem + "-labels.lst";
}

}  // namespace

std::vector<TaskItem> read_tasks(const std::string& path, const std::string& labels_path,
                                 int64_t limit, int64_t* skipped) {
  std::vector<Line> lines = non_empty_lines(read_file(path));
  if (lines.empty()) throw Error(path, "no task items");
  bool piqa = parse_line(path, lines[0]).contains("goal");
  std::vector<int> labels;
  std::string labels_file = labels_path.empty() ? default_labels_path(path) : labels_path;
  if (piqa) {
    if (!file_exists(labels_file))
      throw Error(path, "original PIQA format needs a labels file (looked for " + labels_file + ")");
    labels = read_labels(labels_file);
    if (labels.size() != lines.size())
      throw Error(labels_file, std::to_string(labels.size()) + " labels for " +
                                   std::to_string(lines.size()) + " items");
  }
  std::vector<TaskItem> items;
  for (size_t i = 0; i < lines.size() && (limit <= 0 || int64_t(items.size()) < limit); ++i) {
    std::string where = path + ": line " + std::to_string(lines[i].number);
    json j = parse_line(path, lines[i]);
    TaskItem item;
    if (piqa) {
      item.query = string_field(j, "goal", where);
      item.choices = {string_field(j, "sol1", where), string_field(j, "sol2", where)};
      item.gold = labels[i];
    } else {
      item = uniform_item(j, where);
    }
    validate(item, where);
    item.line = lines[i].number;
    const std::string defect = choice_defect(item);
    if (!defect.empty()) {  // a real data set's slip (ARC has a few): skip the item, not the file
      warn(path + ":" + std::to_string(item.line) + ": skipped: " + defect);
      if (skipped) ++*skipped;
      continue;
    }
    items.push_back(std::move(item));
  }
  if (items.empty()) throw Error(path, "no usable task items (every item was skipped)");
  return items;
}

const char* task_kind_name(TaskKind kind) {
  switch (kind) {
    case TaskKind::cloze: return "cloze";
    case TaskKind::partial: return "partial";
    default: return "choice";
  }
}

const std::vector<std::string>& task_splits() {
  static const std::vector<std::string> names = {"rkd", "vrkd", "test"};
  return names;
}

std::string task_split_path(const std::string& dir_or_file, const std::string& split) {
  if (!is_directory(dir_or_file)) {
    if (!split.empty()) throw Error(dir_or_file, "a split ('" + split + "') needs a data directory");
    return dir_or_file;
  }
  std::string name = split.empty() ? "test" : split;
  const auto& names = task_splits();
  if (std::find(names.begin(), names.end(), name) == names.end())
    throw Error(dir_or_file, "unknown split '" + name + "' (rkd, vrkd or test)");
  std::string path = dir_or_file + "/" + name + ".jsonl";
  if (!file_exists(path)) throw Error(path, "missing split file");
  return path;
}

std::vector<TaskItem> read_task_split(const std::string& dir_or_file, const std::string& split,
                                      int64_t limit, int64_t* skipped) {
  return read_tasks(task_split_path(dir_or_file, split), "", limit, skipped);
}

std::string task_item_json(const TaskItem& item) {
  json j = json::object();
  if (item.kind != TaskKind::choice) j["kind"] = task_kind_name(item.kind);
  if (item.kind != TaskKind::partial) j["query"] = item.query;
  j["choices"] = item.choices;
  if (item.kind == TaskKind::partial) j["continuation"] = item.continuation;
  j["gold"] = item.gold;
  if (!item.item_kind.empty()) j["item_kind"] = item.item_kind;
  // Invalid UTF-8 is replaced rather than thrown on: callers validate their inputs first.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

void write_tasks(const std::string& path, const std::vector<TaskItem>& items) {
  std::string out;
  for (const TaskItem& item : items) out += task_item_json(item) + "\n";
  write_file_atomic(path, out);
}

}  // namespace rankrl
