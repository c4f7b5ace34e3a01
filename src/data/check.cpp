#include "data/check.h"

#include <sstream>
#include <unordered_map>

#include "core/error.h"
#include "core/fs.h"
#include "core/utf8.h"
#include "data/hashing.h"
#include "data/kinds.h"
#include "data/tasks.h"

namespace rankrl {

namespace {

using nlohmann::json;

struct Seen {
  std::string file;
  int64_t line;
};

bool blank(const std::string& s) { return blank_text(s); }

void count_gold(std::vector<int64_t>& positions, int gold) {
  if (positions.size() <= size_t(gold)) positions.resize(gold + 1, 0);
  positions[gold]++;
}

// " 75/75/75/75": a gold-position histogram as the text report prints it.
std::string histogram(const std::vector<int64_t>& positions) {
  std::string out;
  for (size_t i = 0; i < positions.size(); ++i) out += (i ? "/" : " ") + std::to_string(positions[i]);
  return out;
}

bool check_item(const json& j, std::vector<std::string>& problems, TaskItem& item, int64_t& near_duplicates) {
  if (!j.is_object()) {
    problems.push_back("not a JSON object");
    return false;
  }
  if (j.contains("goal")) {
    problems.push_back("original PIQA format (convert it with rankrl data import --format piqa)");
    return false;
  }
  std::string kind = "choice";
  if (j.contains("kind")) {
    if (!j["kind"].is_string()) problems.push_back("non-string field 'kind'");
    else kind = j["kind"].get<std::string>();
  }
  if (kind == "cloze") item.kind = TaskKind::cloze;
  else if (kind == "partial") item.kind = TaskKind::partial;
  else if (kind != "choice") problems.push_back("unknown kind '" + kind + "'");
  if (j.contains("item_kind")) {
    if (!j["item_kind"].is_string()) problems.push_back("non-string field 'item_kind'");
    else if ((item.item_kind = j["item_kind"].get<std::string>()).empty()) problems.push_back("empty item_kind");
  }
  bool partial = item.kind == TaskKind::partial;
  if (!partial || j.contains("query")) {
    if (!j.contains("query") || !j["query"].is_string()) problems.push_back("missing or non-string field 'query'");
    else item.query = j["query"].get<std::string>();
  }
  if (partial) {
    if (!j.contains("continuation") || !j["continuation"].is_string())
      problems.push_back("missing or non-string field 'continuation'");
    else if (blank(item.continuation = j["continuation"].get<std::string>()))
      problems.push_back("empty continuation");
  }
  bool choices_ok = j.contains("choices") && j["choices"].is_array();
  if (!choices_ok) problems.push_back("missing or non-array field 'choices'");
  else
    for (const json& c : j["choices"]) {
      if (!c.is_string()) {
        problems.push_back("a choice is not a string");
        choices_ok = false;
        break;
      }
      item.choices.push_back(c.get<std::string>());
    }
  if (choices_ok) {
    if (item.kind == TaskKind::cloze && item.choices.size() != 1)
      problems.push_back("a cloze item needs exactly one choice, has " + std::to_string(item.choices.size()));
    if (item.kind != TaskKind::cloze && item.choices.size() < 2)
      problems.push_back("fewer than two choices (" + std::to_string(item.choices.size()) + ")");
    for (size_t k = 0; k < item.choices.size(); ++k)
      if (blank(item.choices[k])) problems.push_back("choice " + std::to_string(k) + " is empty or whitespace");
    // Identical up to whitespace: an error. Equal only after normalisation ("100% Rr" / "100% rr"
    // in ARC): counted, since case and punctuation can carry meaning.
    // The summary counts items (not pairs) with any two choices equal after normalisation,
    // exact duplicates included.
    bool equal_after_normalisation = false;
    const int gold = j.contains("gold") && j["gold"].is_number_integer() ? j["gold"].get<int>() : -1;
    for (size_t k = 0; k < item.choices.size(); ++k)
      for (size_t m = 0; m < k; ++m) {
        if (blank(item.choices[k])) continue;
        if (collapse_spaces(item.choices[k]) == collapse_spaces(item.choices[m])) {
          // The rule read_tasks applies: a gold answer repeated as a distractor is an error, a
          // repeated distractor only counted.
          if (int(k) == gold || int(m) == gold)
            problems.push_back("choices " + std::to_string(m) + " and " + std::to_string(k) + " are duplicates (one is gold)");
          equal_after_normalisation = true;
        } else if (normalized_hash(item.choices[k]) == normalized_hash(item.choices[m])) {
          if (!item.item_kind.empty())  // a built item: a distractor that reads as the gold
            problems.push_back("choices " + std::to_string(m) + " and " + std::to_string(k) +
                               " are equal after normalisation (item_kind " + item.item_kind + ")");
          equal_after_normalisation = true;
        }
      }
    near_duplicates += equal_after_normalisation;
  }
  if (!j.contains("gold") || !j["gold"].is_number_integer()) {
    problems.push_back("missing or non-integer field 'gold'");
    return false;
  }
  item.gold = j["gold"].get<int>();
  if (choices_ok && (item.gold < 0 || item.gold >= int(item.choices.size())))
    problems.push_back("gold " + std::to_string(item.gold) + " out of range (" +
                       std::to_string(item.choices.size()) + " choices)");
  if (choices_ok && !item.item_kind.empty()) {
    std::string shape = item_kind_problem(item.item_kind, item.choices, item.gold);
    if (!shape.empty()) problems.push_back(shape);
  }
  return choices_ok && problems.empty();
}

// What identifies an item's context across splits.
uint64_t context_hash(const TaskItem& item) {
  if (item.kind != TaskKind::partial) return normalized_hash(item.query);
  std::string all = item.continuation;
  for (const std::string& c : item.choices) all += "\n" + c;
  return normalized_hash(all);
}

uint64_t item_hash(const TaskItem& item) {
  std::string all = std::string(task_kind_name(item.kind)) + "\x1f" + normalize_text(item.query) + "\x1f" +
                    normalize_text(item.continuation);
  for (const std::string& c : item.choices) all += "\x1f" + normalize_text(c);
  return normalized_hash(all) ^ std::hash<std::string>()(all);
}

void check_file(const std::string& path, const std::string& name, const std::string& split,
                const ContextLimit* limit, CheckReport& report, std::unordered_map<uint64_t, Seen>& contexts_of_earlier_splits,
                std::unordered_map<uint64_t, Seen>& contexts_of_this_split) {
  FileCheck fc;
  fc.file = name;
  fc.split = split;
  std::string text = read_file(path);
  auto error = [&](int64_t line, const std::string& what) {
    report.errors.push_back({name, line, what});
    fc.errors++;
  };
  if (first_invalid_utf8(text) >= 0) error(0, "not valid UTF-8 (byte " + std::to_string(first_invalid_utf8(text)) + ")");
  std::unordered_map<uint64_t, int64_t> items_seen;
  std::unordered_map<uint64_t, int64_t> contexts_seen;
  std::istringstream in(text);
  std::string s;
  for (int64_t n = 1; std::getline(in, s); ++n) {
    if (blank(s)) continue;
    fc.items++;  // every non-blank line is an item, well-formed or not
    json j;
    try {
      j = json::parse(s);
    } catch (const json::exception&) {
      error(n, "malformed JSON");
      continue;
    }
    std::vector<std::string> problems;
    TaskItem item;
    bool usable = check_item(j, problems, item, fc.near_duplicate_choices);
    for (const std::string& p : problems) error(n, p);
    if (!item.item_kind.empty()) {
      ItemKindCheck& kc = fc.item_kinds[item.item_kind];
      kc.items++;
      kc.errors += problems.size();
      if (usable) {
        count_gold(kc.gold_positions, item.gold);
      }
    }
    if (!usable) continue;
    if (limit && limit->max_len > 0) {
      const int64_t tokens = limit->answer_tokens(item);
      if (tokens >= limit->max_len) {
        fc.too_long++;
        error(n, "an answer is " + std::to_string(tokens) + " tokens, the model's context is " + std::to_string(limit->max_len));
      }
    }
    fc.kinds[task_kind_name(item.kind)]++;
    count_gold(fc.gold_positions, item.gold);
    auto [it, fresh] = items_seen.emplace(item_hash(item), n);
    if (!fresh) {
      fc.duplicate_items++;
      error(n, "duplicate of the item on line " + std::to_string(it->second));
      continue;
    }
    uint64_t ch = context_hash(item);
    if (!contexts_seen.emplace(ch, n).second) fc.repeated_contexts++;
    auto earlier = contexts_of_earlier_splits.find(ch);
    if (earlier != contexts_of_earlier_splits.end()) {
      report.overlap[earlier->second.file.substr(0, earlier->second.file.find('.')) + "/" + split]++;
      error(n, "context also in " + earlier->second.file + ":" + std::to_string(earlier->second.line));
    }
    contexts_of_this_split.emplace(ch, Seen{name, n});
  }
  if (fc.items == 0) error(0, "no items");
  report.files.push_back(fc);
}

// The manifest's per-kind item counts against the tagged items of a split file (untagged files,
// the default `next` alone, are covered by the total count).
void check_manifest_kinds(const json& m, const FileCheck& fc, std::vector<CheckIssue>& errors) {
  if (fc.item_kinds.empty() || !m.contains("splits") || !m["splits"].contains(fc.split) ||
      !m["splits"][fc.split].contains("kinds"))
    return;
  const json& kinds = m["splits"][fc.split]["kinds"];
  for (const auto& [kind, v] : kinds.items()) {
    auto it = fc.item_kinds.find(kind);
    int64_t found = it == fc.item_kinds.end() ? 0 : it->second.items;
    if (!v.contains("items") || v["items"] != found)
      errors.push_back({"manifest.json", 0, "splits." + fc.split + ".kinds." + kind + ".items = " +
                                                (v.contains("items") ? v["items"].dump() : "missing") + " but " +
                                                fc.file + " has " + std::to_string(found) + " " + kind + " items"});
  }
  for (const auto& [kind, kc] : fc.item_kinds)
    if (!kinds.contains(kind))
      errors.push_back({"manifest.json", 0, "splits." + fc.split + ".kinds has no " + kind + " but " + fc.file +
                                                " has " + std::to_string(kc.items) + " such items"});
}

}  // namespace

CheckReport check_tasks(const std::string& path, const ContextLimit* limit) {
  CheckReport report;
  report.path = path;
  std::unordered_map<uint64_t, Seen> earlier;
  if (!is_directory(path)) {
    std::unordered_map<uint64_t, Seen> mine;
    check_file(path, path, "", limit, report, earlier, mine);
    return report;
  }
  const auto& splits = task_splits();
  for (size_t a = 0; a < splits.size(); ++a)
    for (size_t b = a + 1; b < splits.size(); ++b) report.overlap[splits[a] + "/" + splits[b]] = 0;
  for (const std::string& split : splits) {
    std::string file = path + "/" + split + ".jsonl";
    if (!file_exists(file)) {
      report.errors.push_back({split + ".jsonl", 0, "missing split file"});
      continue;
    }
    std::unordered_map<uint64_t, Seen> mine;
    check_file(file, split + ".jsonl", split, limit, report, earlier, mine);
    earlier.insert(mine.begin(), mine.end());
  }
  std::string manifest_path = path + "/manifest.json";
  if (file_exists(manifest_path)) {
    try {
      json m = json::parse(read_file(manifest_path));
      for (const FileCheck& fc : report.files) {
        if (m.contains("counts") && m["counts"].contains(fc.split) && m["counts"][fc.split] != fc.items)
          report.errors.push_back({"manifest.json", 0, "counts." + fc.split + " = " + m["counts"][fc.split].dump() +
                                                           " but " + fc.file + " has " + std::to_string(fc.items) + " items"});
        check_manifest_kinds(m, fc, report.errors);
      }
    } catch (const json::exception&) {
      report.errors.push_back({"manifest.json", 0, "malformed JSON"});
    }
  }
  return report;
}

json check_report_json(const CheckReport& r) {
  json files = json::array();
  for (const FileCheck& f : r.files) {
    json kinds = json::object();
    for (const auto& [k, kc] : f.item_kinds)
      kinds[k] = {{"items", kc.items}, {"gold_positions", kc.gold_positions}, {"errors", kc.errors}};
    files.push_back({{"file", f.file}, {"split", f.split}, {"items", f.items}, {"kinds", f.kinds},
                     {"item_kinds", kinds}, {"gold_positions", f.gold_positions},
                     {"duplicate_items", f.duplicate_items}, {"repeated_contexts", f.repeated_contexts},
                     {"near_duplicate_choices", f.near_duplicate_choices}, {"too_long", f.too_long},
                     {"errors", f.errors}});
  }
  json errors = json::array();
  for (const CheckIssue& e : r.errors) errors.push_back({{"file", e.file}, {"line", e.line}, {"what", e.what}});
  return {{"path", r.path}, {"ok", r.ok()}, {"files", files}, {"overlap", r.overlap},
          {"error_count", r.errors.size()}, {"errors", errors}};
}

std::string check_report_text(const CheckReport& r, size_t max_errors) {
  std::ostringstream out;
  for (const FileCheck& f : r.files) {
    out << f.file << ": " << f.items << " items (";
    const char* sep = "";
    for (const auto& [k, n] : f.kinds) {
      out << sep << "kind " << k << ": " << n;
      sep = ", ";
    }
    out << "); gold positions";
    out << histogram(f.gold_positions);
    out << "; " << f.duplicate_items << " duplicate items, " << f.repeated_contexts << " repeated contexts, "
        << f.near_duplicate_choices << " items with choices equal after normalisation, " << f.too_long
        << " items too long for the model, " << f.errors << " errors\n";
    for (const auto& [k, kc] : f.item_kinds) {
      out << "  item_kind " << k << ": " << kc.items << " items; gold positions";
      out << histogram(kc.gold_positions);
      out << "; " << kc.errors << " errors\n";
    }
  }
  for (const auto& [pair, n] : r.overlap) out << "overlap " << pair << ": " << n << "\n";
  for (size_t i = 0; i < r.errors.size() && i < max_errors; ++i)
    out << r.errors[i].where() << ": " << r.errors[i].what << "\n";
  if (r.errors.size() > max_errors) out << "... " << r.errors.size() - max_errors << " more errors\n";
  out << (r.ok() ? "ok" : std::to_string(r.errors.size()) + " errors") << "\n";
  return out.str();
}

}  // namespace rankrl
