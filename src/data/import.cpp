#include "data/import.h"

#include <nlohmann/json.hpp>

#include <sstream>

#include "core/error.h"
#include "core/fs.h"
#include "core/utf8.h"

namespace rankrl {

namespace {

using nlohmann::json;

std::string at_line(int64_t n) { return "line " + std::to_string(n) + ": "; }

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string s;
  while (std::getline(in, s)) {
    if (!s.empty() && s.back() == '\r') s.pop_back();
    lines.push_back(s);
  }
  return lines;
}

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }

std::string drop_one_space(std::string s) {
  if (!s.empty() && s[0] == ' ') s.erase(0, 1);
  return s;
}

std::string str(const json& j, const char* key, const std::string& path, int64_t n) {
  if (!j.contains(key) || !j[key].is_string())
    throw Error(path, at_line(n) + "missing or non-string field '" + key + "'");
  return j[key].get<std::string>();
}

// Every non-blank line as a JSON object, with its line number.
std::vector<std::pair<int64_t, json>> jsonl(const std::string& path) {
  std::string text = read_file(path);
  require_utf8(text, path);
  std::vector<std::pair<int64_t, json>> out;
  std::vector<std::string> lines = lines_of(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (blank(lines[i])) continue;
    int64_t n = int64_t(i) + 1;
    json j;
    try {
      j = json::parse(lines[i]);
    } catch (const json::exception&) {
      throw Error(path, at_line(n) + "malformed JSON");
    }
    if (!j.is_object()) throw Error(path, at_line(n) + "not a JSON object");
    out.push_back({n, std::move(j)});
  }
  if (out.empty()) throw Error(path, "no task items");
  return out;
}

void check_item(const TaskItem& item, const std::string& path, int64_t n) {
  for (const std::string& c : item.choices)
    if (blank(c)) throw Error(path, at_line(n) + "empty choice");
  if (item.kind == TaskKind::partial && blank(item.continuation))
    throw Error(path, at_line(n) + "empty continuation");
  if (item.gold < 0 || item.gold >= int(item.choices.size()))
    throw Error(path, at_line(n) + "gold index " + std::to_string(item.gold) + " out of range");
}

std::vector<TaskItem> import_piqa(const std::string& in, const std::string& labels) {
  auto rows = jsonl(in);
  if (!rows[0].second.contains("goal"))
    throw Error(in, at_line(rows[0].first) + "not original PIQA (no 'goal' field)");
  // The task reader knows this format (goal/sol1/sol2 + labels) already.
  return read_tasks(in, labels);
}

std::vector<TaskItem> import_hellaswag(const std::string& in) {
  std::string text = read_file(in);
  require_utf8(text, in);
  std::vector<std::string> lines = lines_of(text);
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  if (lines.empty()) throw Error(in, "no task items");
  if (lines.size() % 6 != 0)
    throw Error(in, std::to_string(lines.size()) + " lines, not a multiple of 6 (context, gold, 4 endings per task)");
  std::vector<TaskItem> items;
  for (size_t t = 0; t < lines.size(); t += 6) {
    int64_t n = int64_t(t) + 1;
    TaskItem item;
    item.query = lines[t];
    if (blank(item.query)) throw Error(in, at_line(n) + "empty context");
    const std::string& g = lines[t + 1];
    if (g.size() != 1 || g[0] < '0' || g[0] > '3')
      throw Error(in, at_line(n + 1) + "gold index must be 0, 1, 2 or 3, got '" + g + "'");
    item.gold = g[0] - '0';
    for (size_t k = 0; k < 4; ++k) {
      if (blank(lines[t + 2 + k])) throw Error(in, at_line(n + 2 + k) + "empty ending");
      item.choices.push_back(lines[t + 2 + k]);
    }
    items.push_back(std::move(item));
  }
  return items;
}

std::vector<TaskItem> import_cloze(const std::string& in) {
  std::vector<TaskItem> items;
  for (const auto& [n, j] : jsonl(in)) {
    TaskItem item;
    item.kind = TaskKind::cloze;
    item.query = str(j, "context", in, n);
    item.choices = {drop_one_space(str(j, "continuation", in, n))};
    item.gold = 0;
    check_item(item, in, n);
    items.push_back(std::move(item));
  }
  return items;
}

std::vector<TaskItem> import_partial(const std::string& in) {
  std::vector<TaskItem> items;
  for (const auto& [n, j] : jsonl(in)) {
    TaskItem item;
    item.kind = TaskKind::partial;
    if (!j.contains("context_options") || !j["context_options"].is_array())
      throw Error(in, at_line(n) + "missing or non-array field 'context_options'");
    for (const json& c : j["context_options"]) {
      if (!c.is_string()) throw Error(in, at_line(n) + "a context option is not a string");
      item.choices.push_back(c.get<std::string>());
    }
    if (item.choices.size() < 2) throw Error(in, at_line(n) + "fewer than two context options");
    item.continuation = drop_one_space(str(j, "continuation", in, n));
    if (j.contains("gold") && j["gold"].is_number_integer()) {
      item.gold = j["gold"].get<int>();
    } else if (j.contains("answer") && (j["answer"].is_number_integer() || j["answer"].is_string())) {
      // WinoGrande: "1" / "2".
      std::string a = j["answer"].is_string() ? j["answer"].get<std::string>() : std::to_string(j["answer"].get<int>());
      if (a.empty() || a.size() > 3 || a.find_first_not_of("0123456789") != std::string::npos)
        throw Error(in, at_line(n) + "answer must be a 1-based number");
      item.gold = std::stoi(a) - 1;
    } else {
      throw Error(in, at_line(n) + "missing 'gold' (0-based) or 'answer' (1-based)");
    }
    check_item(item, in, n);
    items.push_back(std::move(item));
  }
  return items;
}

}  // namespace

std::vector<TaskItem> import_tasks(const std::string& format, const std::string& in,
                                   const std::string& labels) {
  if (format != "piqa" && !labels.empty()) throw usage_error("--labels is only for --format piqa");
  if (format == "piqa") return import_piqa(in, labels);
  if (format == "hellaswag") return import_hellaswag(in);
  if (format == "cloze") return import_cloze(in);
  if (format == "partial") return import_partial(in);
  throw usage_error("unknown --format '" + format + "' (piqa, hellaswag, cloze or partial)");
}

}  // namespace rankrl
