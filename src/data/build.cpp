#include "data/build.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/utf8.h"
#include "data/hashing.h"
#include "data/kinds.h"
#include "data/rng.h"
#include "data/tasks.h"
#include "tokenizer/tokenizer.h"

namespace rankrl {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kRankrlVersion = "0.1.0";
constexpr const char* kEndOfText = "<|endoftext|>";
constexpr size_t kNearest = 16;  // other-document distractors are drawn from the 16 closest lengths

struct Sentence {
  std::string text;
  int paragraph = 0;
  int64_t units = 0;    // words or tokens (context budget)
  int64_t measure = 0;  // tokens, else bytes (length matching of choices)
  uint64_t hash = 0;
};

struct Document {
  int source = 0;
  int64_t line = 0;  // first line in its source
  std::vector<Sentence> sentences;
};

struct Source {
  std::string path;
  int64_t bytes = 0;
  std::string sha256;
  std::string mode;
  int64_t documents = 0;
};

// ---------------------------------------------------------------------------------------------
// Text → documents → paragraphs → sentences

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n\f\v");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n\f\v");
  return std::string(s.substr(b, e - b + 1));
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Length of a closing quote/bracket at p[i] (0 if none): " ' ) ] ” ’
size_t closer_len(std::string_view p, size_t i) {
  char c = p[i];
  if (c == '"' || c == '\'' || c == ')' || c == ']') return 1;
  if (p.compare(i, 3, "\xE2\x80\x9D") == 0 || p.compare(i, 3, "\xE2\x80\x99") == 0) return 3;
  return 0;
}

// A sentence may start with an upper-case letter, a digit, a quote or bracket, or any non-ASCII
// character (we cannot tell its case cheaply; a wrong split only shortens a sentence).
bool starts_sentence(unsigned char c) {
  return std::isupper(c) || std::isdigit(c) || c == '"' || c == '\'' || c == '(' || c == '[' || c >= 0x80;
}

bool is_abbreviation(std::string_view p, size_t dot) {
  size_t b = dot;
  while (b > 0 && !is_space(p[b - 1]) && p[b - 1] != '(' && p[b - 1] != '"') --b;
  std::string_view word = p.substr(b, dot - b);
  if (word.size() == 1 && std::isupper(static_cast<unsigned char>(word[0]))) return true;  // initials
  static const char* const kAbbrev[] = {"Mr", "Mrs", "Ms", "Dr", "St", "Jr", "Sr", "Prof", "Mt",
                                        "vs", "etc", "e.g", "i.e", "No", "Fig", "Inc", "Ltd", "Co",
                                        "Gen", "Col", "Lt", "Sgt", "Capt", "Rev", "Gov", "Sen", "approx"};
  for (const char* a : kAbbrev)
    if (word == a) return true;
  return false;
}

// Whether `s` leaves a quotation open: an odd number of straight double quotes, or more “ than ”.
bool inside_quote(std::string_view s) {
  int straight = 0, curly = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    straight += s[i] == '"';
    if (s.compare(i, 3, "\xE2\x80\x9C") == 0) ++curly;
    if (s.compare(i, 3, "\xE2\x80\x9D") == 0) --curly;
  }
  return straight % 2 == 1 || curly > 0;
}

std::vector<std::string> split_sentences(std::string_view p) {
  std::vector<std::string> out;
  size_t start = 0, n = p.size();
  for (size_t i = 0; i < n; ++i) {
    char c = p[i];
    if (c != '.' && c != '!' && c != '?') continue;
    size_t j = i + 1;
    while (j < n && (p[j] == '.' || p[j] == '!' || p[j] == '?')) ++j;
    while (j < n) {
      size_t len = closer_len(p, j);
      if (len == 0) break;
      j += len;
    }
    size_t k = j;
    if (j < n) {
      if (!is_space(p[j])) continue;
      while (k < n && is_space(p[k])) ++k;
      if (k < n && !starts_sentence(p[k])) continue;
    }
    if (c == '.' && j == i + 1 && is_abbreviation(p, i)) continue;
    // Not inside quoted speech ("I'm cold. Help me," she said.), unless quotes never close.
    if (inside_quote(p.substr(start, j - start)) && j - start < 600) continue;
    std::string s = trim(p.substr(start, j - start));
    if (!s.empty()) out.push_back(std::move(s));
    start = k;
    i = k > 0 ? k - 1 : 0;
  }
  std::string s = trim(p.substr(std::min(start, n)));
  if (!s.empty()) out.push_back(std::move(s));
  return out;
}

// WikiText heading lines: "= Title =" (top level, starts a document), "= = Section = =" (not).
int heading_level(const std::string& line) {
  std::string t = trim(line);
  if (t.size() < 3 || t.front() != '=' || t.back() != '=') return 0;
  int level = 0;
  for (size_t i = 0; i < t.size() && (t[i] == '=' || t[i] == ' '); ++i) level += t[i] == '=';
  return level;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t b = 0;
  while (b <= text.size()) {
    size_t e = text.find('\n', b);
    if (e == std::string::npos) e = text.size();
    std::string line = text.substr(b, e - b);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    b = e + 1;
  }
  return lines;
}

std::string detect_mode(const std::string& text, const std::vector<std::string>& lines) {
  if (text.find(kEndOfText) != std::string::npos) return "endoftext";
  int top = 0;
  for (const std::string& l : lines) top += heading_level(l) == 1;
  return top >= 2 ? "heading" : "blank";
}

// Parses one corpus into documents of paragraphs (lists of sentences without lengths yet).
std::vector<Document> parse_corpus(const std::string& text, int source, const std::string& mode) {
  std::vector<std::string> lines = split_lines(text);
  std::vector<Document> docs;
  Document doc;
  std::string para;

  int paragraph = 0;
  auto end_paragraph = [&] {
    for (std::string& s : split_sentences(para)) {
      Sentence sent;
      sent.text = std::move(s);
      sent.paragraph = paragraph;
      doc.sentences.push_back(std::move(sent));
    }
    if (!para.empty()) ++paragraph;
    para.clear();
  };
  auto end_document = [&] {
    end_paragraph();
    if (!doc.sentences.empty()) docs.push_back(std::move(doc));
    doc = Document();
    doc.source = source;
    paragraph = 0;
  };
  doc.source = source;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string line = lines[i];
    int64_t number = int64_t(i) + 1;
    if (mode == "endoftext" && line.find(kEndOfText) != std::string::npos) {
      // Text on the marker line either side of the marker belongs to the two documents.
      size_t at = line.find(kEndOfText);
      std::string before = trim(line.substr(0, at)), after = trim(line.substr(at + std::strlen(kEndOfText)));
      if (!before.empty()) para += (para.empty() ? "" : " ") + before;
      end_document();
      line = after;
      if (line.empty()) continue;
    }
    if (mode == "heading") {
      int level = heading_level(line);
      if (level == 1) end_document();
      if (level > 0) {
        end_paragraph();
        continue;
      }
    }
    std::string t = trim(line);
    if (t.empty()) {
      if (mode == "blank") end_document();
      else end_paragraph();
      continue;
    }
    if (doc.sentences.empty() && para.empty()) doc.line = number;
    para += (para.empty() ? "" : " ") + t;
  }
  end_document();
  return docs;
}

int64_t word_count(std::string_view s) {
  int64_t n = 0;
  bool in = false;
  for (char c : s) {
    bool sp = is_space(c);
    n += !sp && !in;
    in = !sp;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Items

struct Stat {
  double sum = 0;
  int64_t n = 0, min = 0, max = 0;
  void add(int64_t v) {
    min = n == 0 ? v : std::min(min, v);
    max = n == 0 ? v : std::max(max, v);
    sum += v;
    ++n;
  }
  json to_json() const { return {{"mean", n ? sum / n : 0.0}, {"min", min}, {"max", max}}; }
};

struct SplitStats {
  int64_t documents = 0, sentences = 0, candidates = 0, items = 0;
  int64_t contexts_duplicate = 0, candidates_without_distractors = 0;
  Stat context_units, context_bytes, choice_units, choice_bytes, gold_bytes, distractor_bytes;
  std::vector<int64_t> gold_positions;
  std::vector<int64_t> kind_items;                     // per --kinds entry
  std::vector<std::vector<int64_t>> kind_gold_positions;
};

struct PoolEntry {
  int64_t measure;
  int doc;
  int sent;
};

struct Choice {
  std::string text;
  int64_t units = 0;
};

// Content words of one split, for `replace`: how often each occurs, where, and in which form.
struct Vocabulary {
  struct Word {
    std::string surface;       // as written inside a sentence (so "Roxy" stays capitalised)
    bool inner = false;        // surface seen away from a sentence start
    int64_t count = 0;
    int first_doc = -1;
    bool many_docs = false;    // occurs in more than one document
  };
  std::unordered_map<std::string, Word> words;         // by lower-case form
  std::vector<std::vector<std::string>> by_class;      // frequency class floor(log2 count) -> words, sorted

  static size_t frequency_class(int64_t count) {
    size_t c = 0;
    while (count > 1) count >>= 1, ++c;
    return c;
  }

  void add(const std::string& word, bool sentence_start, int doc) {
    Word& w = words[lower_ascii(word)];
    if (!w.inner && (!sentence_start || w.surface.empty())) {
      w.surface = sentence_start ? lower_ascii(word) : word;
      w.inner = !sentence_start;
    }
    w.count++;
    if (w.first_doc < 0) w.first_doc = doc;
    w.many_docs = w.many_docs || w.first_doc != doc;
  }

  void finish() {
    by_class.clear();
    std::vector<std::string> keys;
    for (const auto& [k, w] : words) keys.push_back(k);
    std::sort(keys.begin(), keys.end());
    for (const std::string& k : keys) {
      size_t c = frequency_class(words[k].count);
      if (by_class.size() <= c) by_class.resize(c + 1);
      by_class[c].push_back(k);
    }
  }

  // A content word of another document, of `word`'s frequency class or the nearest one that has
  // one, capitalised inside a sentence exactly when `word` is (a name for a name); "" when there
  // is none.
  std::string draw(const std::string& word, bool sentence_start, int doc, Rng& rng) const {
    bool name = !sentence_start && std::isupper(static_cast<unsigned char>(word[0]));
    auto it = words.find(lower_ascii(word));
    if (it == words.end() || by_class.empty()) return "";
    int home = int(frequency_class(it->second.count));
    for (int step = 0; step < 2 * int(by_class.size()); ++step) {
      int c = home + (step % 2 ? -(step + 1) / 2 : step / 2);
      if (c < 0 || c >= int(by_class.size()) || by_class[c].empty()) continue;
      for (int attempt = 0; attempt < 8; ++attempt) {
        const std::string& k = by_class[c][rng.below(by_class[c].size())];
        const Word& w = words.at(k);
        bool capital = std::isupper(static_cast<unsigned char>(w.surface[0]));
        if (k != it->first && capital == name && (w.many_docs || w.first_doc != doc)) return w.surface;
      }
    }
    return "";
  }
};

struct Builder {
  const BuildOptions& o;
  std::vector<Document> docs;
  std::unordered_set<uint64_t> contexts_seen;  // across splits: a context appears once at most
  int64_t choices_rejected = 0;
  Vocabulary vocabulary;  // of the split being built (replace only)
  std::vector<PoolEntry> pool;  // usable sentences of the split being built, by length

  explicit Builder(const BuildOptions& opts) : o(opts) {}

  // Sentences [a, b) of `d` joined: a space within a paragraph, a newline between paragraphs.
  std::string join(const Document& d, int a, int b) const {
    std::string s;
    for (int i = a; i < b; ++i) {
      if (i > a) s += d.sentences[i].paragraph == d.sentences[i - 1].paragraph ? " " : "\n";
      s += d.sentences[i].text;
    }
    return s;
  }

  // First sentence of the context window that ends before sentence `b`, or -1 when it is shorter
  // than half the budget (a model can only rank continuations of a context that says something).
  int window_start(const Document& d, int b) const {
    int64_t total = 0;
    int a = b;
    while (a > 0 && (a == b || total + d.sentences[a - 1].units <= o.context_tokens)) {
      total += d.sentences[a - 1].units;
      --a;
    }
    return total >= std::max<int64_t>(1, o.context_tokens / 2) ? a : -1;
  }

  bool usable_choice(const Sentence& s) const { return s.units <= o.max_choice_tokens; }

  int64_t units_of(const std::string& text) const {
    return o.tokenizer ? int64_t(o.tokenizer->encode(text).size()) : word_count(text);
  }

  bool wants(const std::string& kind) const { return std::find(o.kinds.begin(), o.kinds.end(), kind) != o.kinds.end(); }

  void build_vocabulary(const std::vector<int>& split_docs) {
    vocabulary = Vocabulary();
    for (int d : split_docs)
      for (const Sentence& s : docs[d].sentences) {
        std::vector<std::string> core = sentence_words(s.text).core;
        for (size_t i = 0; i < core.size(); ++i) {
          std::string w = token_parts(core[i]).word;
          if (is_content_word(w)) vocabulary.add(w, i == 0, d);
        }
      }
    vocabulary.finish();
  }

  // Items for one split from its documents (indices into docs).
  std::vector<TaskItem> build_split(int split, const std::vector<int>& split_docs, int64_t wanted,
                                    SplitStats& st, Progress& progress) {
    Rng rng(o.seed * 0x2545f4914f6cdd1dull + uint64_t(split) + 1);
    pool.clear();
    for (int d : split_docs)
      for (size_t i = 0; i < docs[d].sentences.size(); ++i)
        if (usable_choice(docs[d].sentences[i])) pool.push_back({docs[d].sentences[i].measure, d, int(i)});
    std::sort(pool.begin(), pool.end(), [](const PoolEntry& x, const PoolEntry& y) {
      return std::tie(x.measure, x.doc, x.sent) < std::tie(y.measure, y.doc, y.sent);
    });
    st.documents = split_docs.size();
    st.sentences = pool.size();
    if (wants("replace")) build_vocabulary(split_docs);

    // Candidates (doc, boundary) in random order, but round-robin over documents: every document
    // gives its first item before any gives its second.
    std::vector<std::pair<int, int>> cands;
    for (int d : split_docs) {
      int n = docs[d].sentences.size();
      for (int b = 1; b + 2 < n; ++b)
        if (usable_choice(docs[d].sentences[b])) cands.push_back({d, b});
    }
    st.candidates = cands.size();
    rng.shuffle(cands);
    {
      std::vector<int> seen(docs.size(), 0);
      std::vector<std::pair<int, size_t>> order;
      for (size_t i = 0; i < cands.size(); ++i) order.push_back({seen[cands[i].first]++, i});
      std::stable_sort(order.begin(), order.end(),
                       [](const auto& x, const auto& y) { return x.first < y.first; });
      std::vector<std::pair<int, int>> sorted;
      for (const auto& [round, i] : order) sorted.push_back(cands[i]);
      cands = std::move(sorted);
    }

    // Equal shares per kind (the first kinds take the remainder), and within each kind balanced
    // gold positions: 0..K-1 repeated, shuffled. With one kind this is the original sequence.
    int K = o.choices, kinds = o.kinds.size();
    std::vector<int64_t> share(kinds);
    std::vector<std::vector<int>> positions(kinds);
    for (int k = 0; k < kinds; ++k) {
      share[k] = wanted / kinds + (k < wanted % kinds);
      for (int64_t i = 0; i < share[k]; ++i) positions[k].push_back(int(i % K));
      rng.shuffle(positions[k]);
    }
    st.gold_positions.assign(K, 0);
    st.kind_items.assign(kinds, 0);
    st.kind_gold_positions.assign(kinds, std::vector<int64_t>(K, 0));

    // Kinds take turns over the candidates; a candidate one kind cannot use (too short a sentence
    // to shuffle, say) goes to the next kind that still needs items.
    std::vector<TaskItem> items;
    int turn = 0;
    for (const auto& [d, b] : cands) {
      if (int64_t(items.size()) == wanted) break;
      for (int t = 0; t < kinds; ++t) {
        int k = (turn + t) % kinds;
        int64_t& made = st.kind_items[k];
        if (made == share[k]) continue;
        TaskItem item;
        if (!make_item(o.kinds[k], d, b, positions[k][made], rng, st, item)) continue;
        made++;
        st.kind_gold_positions[k][item.gold]++;
        st.gold_positions[item.gold]++;
        items.push_back(std::move(item));
        progress.advance();
        turn = (k + 1) % kinds;
        break;
      }
    }
    st.items = items.size();
    return items;
  }

  bool make_item(const std::string& kind, int d, int b, int gold_pos, Rng& rng, SplitStats& st, TaskItem& item) {
    const Document& doc = docs[d];
    int a = window_start(doc, b);
    if (a < 0) return false;
    std::string query = join(doc, a, b);
    int64_t query_units = 0;
    for (int i = a; i < b; ++i) query_units += doc.sentences[i].units;
    const Sentence& sentence = doc.sentences[b];
    Choice gold{sentence.text, sentence.units};
    SentenceWords words = sentence_words(sentence.text);
    if (kind != "next") {
      // Edits rebuild sentences from their words; so is the gold, lest spacing tell them apart.
      std::string rebuilt = join_words(words);
      if (rebuilt != gold.text) gold = {rebuilt, units_of(rebuilt)};
    }
    if (kind == "lastword") {
      if (words.core.size() < 3 || !is_plain_word(words.core.back())) return false;
      std::vector<std::string> prefix(words.core.begin(), words.core.end() - 1);
      std::string lead;
      for (const std::string& w : prefix) lead += (lead.empty() ? "" : " ") + w;
      query += (sentence.paragraph == doc.sentences[b - 1].paragraph ? " " : "\n") + lead;
      query_units += units_of(lead);
      gold = {words.core.back() + words.end, 0};
      gold.units = units_of(gold.text);
    }
    uint64_t ctx_hash = normalized_hash(query);
    if (contexts_seen.count(ctx_hash)) {
      st.contexts_duplicate++;
      return false;
    }
    std::vector<Choice> distractors;
    size_t need = o.choices - 1;
    if (kind == "next") {
      if (!next_distractors(d, b, rng, st, distractors)) return false;
    } else {
      if (kind == "shuffle") shuffle_distractors(words, need, rng, distractors);
      else if (kind == "swap") swap_distractors(words, d, need, rng, distractors);
      else if (kind == "replace") replace_distractors(words, d, need, rng, distractors);
      else lastword_distractors(query, words, need, rng, distractors);
      if (distractors.size() < need) {
        st.candidates_without_distractors++;
        return false;
      }
    }
    rng.shuffle(distractors);
    item.query = query;
    item.gold = gold_pos;
    for (int k = 0, j = 0; k < o.choices; ++k)
      item.choices.push_back(k == gold_pos ? gold.text : distractors[j++].text);
    if (o.kinds != std::vector<std::string>{"next"}) item.item_kind = kind;
    contexts_seen.insert(ctx_hash);
    st.context_units.add(query_units);
    st.context_bytes.add(query.size());
    st.choice_units.add(gold.units);
    st.choice_bytes.add(gold.text.size());
    st.gold_bytes.add(gold.text.size());
    for (const Choice& c : distractors) {
      st.choice_units.add(c.units);
      st.choice_bytes.add(c.text.size());
      st.distractor_bytes.add(c.text.size());
    }
    return true;
  }

  // Distractors are kept only when no two choices are equal after normalisation.
  void add_distinct(std::string text, std::vector<uint64_t>& used, std::vector<Choice>& out) {
    uint64_t h = normalized_hash(text);
    if (std::find(used.begin(), used.end(), h) != used.end()) {
      choices_rejected++;
      return;
    }
    used.push_back(h);
    int64_t units = units_of(text);
    out.push_back({std::move(text), units});
  }

  void shuffle_distractors(const SentenceWords& words, size_t need, Rng& rng, std::vector<Choice>& out) {
    if (words.core.size() < 3) return;
    for (std::string& s : shuffled_variants(words, need, rng)) {
      int64_t units = units_of(s);
      out.push_back({std::move(s), units});
    }
  }

  // A span of 2 words (3 in sentences of 8 words or more) at a random place, replaced by as many
  // consecutive words from inside a sentence of another document of the split (never its first
  // word, whose capital would give the span away).
  void swap_distractors(const SentenceWords& words, int d, size_t need, Rng& rng, std::vector<Choice>& out) {
    size_t n = words.core.size(), span = n >= 8 ? kMaxSwapSpan : 2;
    if (n < 4 || pool.empty()) return;
    std::vector<uint64_t> used = {normalized_hash(join_words(words))};
    for (size_t attempt = 0; attempt < 20 * need && out.size() < need; ++attempt) {
      size_t at = rng.below(n - span + 1);
      const PoolEntry& e = pool[rng.below(pool.size())];
      if (e.doc == d) continue;
      std::vector<std::string> donor = sentence_words(docs[e.doc].sentences[e.sent].text).core;
      if (donor.size() < span + 1) continue;
      size_t from = 1 + rng.below(donor.size() - span);
      std::vector<std::string> piece(donor.begin() + from, donor.begin() + from + span);
      std::vector<std::string> old(words.core.begin() + at, words.core.begin() + at + span);
      if (normalize_text(join_words({piece, ""})) == normalize_text(join_words({old, ""}))) continue;
      add_distinct(with_span(words, at, piece), used, out);
    }
  }

  // One content word (one or two when the sentence has four or more) replaced by content words
  // of other documents of the split, of the same frequency class where there is one (names by
  // names: capitalisation would give a lower-case word in a name's place away).
  void replace_distractors(const SentenceWords& words, int d, size_t need, Rng& rng, std::vector<Choice>& out) {
    std::vector<size_t> content;
    for (size_t i = 0; i < words.core.size(); ++i)
      if (is_content_word(token_parts(words.core[i]).word)) content.push_back(i);
    if (content.empty()) return;
    std::vector<uint64_t> used = {normalized_hash(join_words(words))};
    for (size_t attempt = 0; attempt < 20 * need && out.size() < need; ++attempt) {
      size_t m = content.size() >= 4 ? 1 + rng.below(2) : 1;
      std::vector<WordEdit> edits;
      for (size_t i = 0; i < m; ++i) {
        std::swap(content[i], content[i + rng.below(content.size() - i)]);
        std::string word = vocabulary.draw(token_parts(words.core[content[i]]).word, content[i] == 0, d, rng);
        if (!word.empty()) edits.push_back({content[i], word});
      }
      if (edits.size() == m) add_distinct(with_words(words, edits), used, out);
    }
  }

  // Other content words of the passage (context and the sentence so far), never a sentence's
  // first word, each with the sentence's end mark as the true word has it.
  void lastword_distractors(const std::string& query, const SentenceWords& words, size_t need, Rng& rng,
                            std::vector<Choice>& out) {
    std::vector<std::string> found;
    std::vector<uint64_t> used = {normalized_hash(words.core.back())};
    for (const std::string& s : split_sentences_of(query)) {
      std::vector<std::string> core = sentence_words(s).core;
      for (size_t i = 1; i < core.size(); ++i) {
        std::string w = token_parts(core[i]).word;
        uint64_t h = normalized_hash(w);
        if (!is_content_word(w) || std::find(used.begin(), used.end(), h) != used.end()) continue;
        used.push_back(h);
        found.push_back(w);
      }
    }
    if (found.size() < need) return;
    for (size_t i = 0; i < need; ++i) {
      std::swap(found[i], found[i + rng.below(found.size() - i)]);
      std::string text = found[i] + words.end;
      int64_t units = units_of(text);
      out.push_back({std::move(text), units});
    }
  }

  // The sentences of a query (its paragraphs split again, as the corpus was).
  static std::vector<std::string> split_sentences_of(const std::string& query) {
    std::vector<std::string> out;
    for (const std::string& para : split_lines(query))
      for (std::string& s : split_sentences(para)) out.push_back(std::move(s));
    return out;
  }

  // The original next-sentence distractors: `hard` later sentences of the same document (at
  // least two after the boundary, so neither the gold nor the sentence right after it), closest
  // in length first, then random ones among the kNearest other-document sentences closest in
  // length to the gold.
  bool next_distractors(int d, int b, Rng& rng, SplitStats& st, std::vector<Choice>& out) {
    const Document& doc = docs[d];
    const Sentence& gold = doc.sentences[b];
    std::vector<uint64_t> used = {gold.hash};
    auto fresh = [&](const Sentence& s) {
      bool ok = std::find(used.begin(), used.end(), s.hash) == used.end();
      choices_rejected += !ok;
      return ok;
    };
    std::vector<int> later;
    for (int j = b + 2; j < int(doc.sentences.size()); ++j)
      if (usable_choice(doc.sentences[j])) later.push_back(j);
    std::stable_sort(later.begin(), later.end(), [&](int x, int y) {
      return std::llabs(doc.sentences[x].measure - gold.measure) < std::llabs(doc.sentences[y].measure - gold.measure);
    });
    std::vector<const Sentence*> distractors;
    int hard = std::min(o.hard, o.choices - 1);
    for (int j : later) {
      if (int(distractors.size()) == hard) break;
      if (!fresh(doc.sentences[j])) continue;
      used.push_back(doc.sentences[j].hash);
      distractors.push_back(&doc.sentences[j]);
    }
    if (int(distractors.size()) < hard) {
      st.candidates_without_distractors++;
      return false;
    }
    size_t need = o.choices - 1 - distractors.size();
    std::vector<const Sentence*> near;
    size_t hi = std::lower_bound(pool.begin(), pool.end(), gold.measure,
                                 [](const PoolEntry& e, int64_t m) { return e.measure < m; }) - pool.begin();
    size_t lo = hi;  // pool[lo-1] and pool[hi] are the next candidates below and above
    std::vector<uint64_t> near_hashes;
    while (near.size() < std::max(need, kNearest) && (lo > 0 || hi < pool.size())) {
      bool take_hi = lo == 0 || (hi < pool.size() && pool[hi].measure - gold.measure <= gold.measure - pool[lo - 1].measure);
      const PoolEntry& e = take_hi ? pool[hi++] : pool[--lo];
      if (e.doc == d) continue;
      const Sentence& s = docs[e.doc].sentences[e.sent];
      if (!fresh(s) || std::find(near_hashes.begin(), near_hashes.end(), s.hash) != near_hashes.end()) continue;
      near_hashes.push_back(s.hash);
      near.push_back(&s);
    }
    if (near.size() < need) {
      st.candidates_without_distractors++;
      return false;
    }
    for (size_t i = 0; i < need; ++i) {
      std::swap(near[i], near[i + rng.below(near.size() - i)]);
      distractors.push_back(near[i]);
    }
    for (const Sentence* s : distractors) out.push_back({s->text, s->units});
    return true;
  }
};

// Per kind: items and gold positions.
json kinds_json(const std::vector<std::string>& kinds, const SplitStats& st) {
  json out = json::object();
  for (size_t k = 0; k < kinds.size(); ++k)
    out[kinds[k]] = {{"items", st.kind_items[k]}, {"gold_positions", st.kind_gold_positions[k]}};
  return out;
}

// Splits `n` by `fractions` (rounded; the last split takes the rest).
std::array<int64_t, 3> apportion(int64_t n, const std::array<double, 3>& f) {
  double total = f[0] + f[1] + f[2];
  int64_t a = std::llround(n * f[0] / total), b = std::llround(n * f[1] / total);
  a = std::min(a, n);
  b = std::min(b, n - a);
  return {a, b, n - a - b};
}

// Removes a directory tree on scope exit unless released.
struct DirGuard {
  std::string path;
  ~DirGuard() {
    if (!path.empty()) {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  }
};

void validate_options(const BuildOptions& o) {
  if (o.corpora.empty()) throw usage_error("data build needs at least one --corpus");
  if (o.out.empty()) throw usage_error("data build needs --out");
  if (o.choices < 2) throw usage_error("--choices must be at least 2");
  if (o.hard < 0) throw usage_error("--hard must be >= 0");
  if (o.context_tokens < 1) throw usage_error("--context-tokens must be positive");
  if (o.max_choice_tokens < 1) throw usage_error("--max-choice-tokens must be positive");
  for (double f : o.fractions)
    if (!(f >= 0)) throw usage_error("--split fractions must be >= 0");
  if (o.fractions[0] + o.fractions[1] + o.fractions[2] <= 0) throw usage_error("--split fractions sum to 0");
  if (o.docs != "auto" && o.docs != "endoftext" && o.docs != "heading" && o.docs != "blank")
    throw usage_error("--docs must be auto, endoftext, heading or blank");
  if (o.split_order != "auto" && o.split_order != "shuffle" && o.split_order != "file")
    throw usage_error("--split-order must be auto, shuffle or file");
  if (o.items < 1 && o.split_items[0] < 0) throw usage_error("--items must be positive");
  if (o.kinds.empty()) throw usage_error("--kinds lists no kind");
  for (size_t i = 0; i < o.kinds.size(); ++i) {
    if (!is_item_kind(o.kinds[i]))
      throw usage_error("unknown item kind '" + o.kinds[i] + "' in --kinds (next, shuffle, swap, replace, lastword)");
    if (std::find(o.kinds.begin(), o.kinds.begin() + i, o.kinds[i]) != o.kinds.begin() + i)
      throw usage_error("--kinds lists '" + o.kinds[i] + "' twice");
  }
}

}  // namespace

// The steps: (1) read the corpora into documents, dropping duplicate documents; (2) measure every
// sentence; (3) cut the documents into the three splits; (4) build each split's items; (5) describe
// it all in the manifest; (6) write into a temporary directory and rename it into place.
json build_ranking_data(const BuildOptions& o) {
  validate_options(o);
  if (fs::exists(o.out) && !o.force) throw Error(o.out, "output exists (use --force to replace it)");
  Builder B(o);

  // 1. Corpora → documents (format detected per file unless --docs says), each kept once by the
  // normalised hash of its text; a corpus without text is an error naming it.
  std::vector<Source> sources;
  std::unordered_set<uint64_t> doc_hashes;
  int64_t duplicate_docs = 0;
  std::string first_mode;
  for (size_t s = 0; s < o.corpora.size(); ++s) {
    const std::string& path = o.corpora[s];
    std::string text = read_file(path);
    require_utf8(text, path);
    if (trim(text).empty()) throw Error(path, "empty corpus");
    Source src{path, int64_t(text.size()), sha256_hex(text), o.docs, 0};
    std::vector<std::string> lines = split_lines(text);
    if (src.mode == "auto") src.mode = detect_mode(text, lines);
    for (Document& d : parse_corpus(text, int(s), src.mode)) {
      std::string all;
      for (const Sentence& x : d.sentences) all += x.text + " ";
      if (!doc_hashes.insert(normalized_hash(all)).second) {
        duplicate_docs++;
        continue;
      }
      B.docs.push_back(std::move(d));
      src.documents++;
    }
    if (src.documents == 0) throw Error(path, "no documents with text");
    if (first_mode.empty()) first_mode = src.mode;
    sources.push_back(src);
  }

  // 2. Sentence lengths and hashes (the slow part with a tokenizer): length in tokens or words
  // decides what fits a query or a choice; `measure` matches distractor lengths.
  {
    Progress progress("lengths", B.docs.size(), "docs", o.progress);
    for (Document& d : B.docs) {
      for (Sentence& s : d.sentences) {
        s.hash = normalized_hash(s.text);
        if (o.tokenizer) {
          s.units = o.tokenizer->encode(s.text).size();
          s.measure = s.units;
        } else {
          s.units = word_count(s.text);
          s.measure = s.text.size();
        }
      }
      progress.advance();
    }
    progress.finish();
  }

  // 3. Documents → splits. Blank-line "documents" are paragraphs, and a story's paragraphs follow
  // each other: cutting the file in order keeps all but the two stories at the cuts in one split.
  std::string order = o.split_order;
  if (order == "auto") order = first_mode == "blank" ? "file" : "shuffle";
  std::vector<int> doc_order(B.docs.size());
  std::iota(doc_order.begin(), doc_order.end(), 0);
  Rng rng(o.seed);
  if (order == "shuffle") rng.shuffle(doc_order);
  std::array<int64_t, 3> doc_counts = apportion(B.docs.size(), o.fractions);
  std::array<int64_t, 3> item_counts = o.split_items[0] >= 0 ? o.split_items : apportion(o.items, o.fractions);
  std::array<std::vector<int>, 3> split_docs;
  for (size_t i = 0, s = 0; i < doc_order.size(); ++i) {
    while (s < 2 && int64_t(split_docs[s].size()) >= doc_counts[s]) ++s;
    split_docs[s].push_back(doc_order[i]);
  }
  for (auto& v : split_docs) std::sort(v.begin(), v.end());

  // 4. Items per split, from that split's documents only (so no context crosses splits); too few
  // documents for the requested items is an error.
  std::array<SplitStats, 3> stats;
  std::array<std::vector<TaskItem>, 3> items;
  const auto& names = task_splits();
  {
    Progress progress("items", item_counts[0] + item_counts[1] + item_counts[2], "items", o.progress);
    for (int s = 0; s < 3; ++s) {
      items[s] = B.build_split(s, split_docs[s], item_counts[s], stats[s], progress);
      if (int64_t(items[s].size()) < item_counts[s])
        throw Error(o.corpora.size() == 1 ? o.corpora[0] : o.out,
                    "too few documents: split " + names[s] + " has " + std::to_string(split_docs[s].size()) +
                        " documents giving " + std::to_string(items[s].size()) + " items, " +
                        std::to_string(item_counts[s]) + " requested");
    }
    progress.finish();
  }

  // 5. The manifest: what was asked, the sources by hash, and per split the counts and length
  // statistics `data check` compares against.
  json manifest = {{"format", "rankrl-ranking-data"},
                   {"format_version", 1},
                   {"rankrl_version", kRankrlVersion},
                   {"command", o.command},
                   {"seed", o.seed},
                   {"choices", o.choices},
                   {"kinds", o.kinds},
                   {"hard_distractors", std::min(o.hard, o.choices - 1)},
                   {"chance", 1.0 / o.choices},
                   {"context_tokens", o.context_tokens},
                   {"max_choice_tokens", o.max_choice_tokens},
                   {"length_unit", o.tokenizer ? "tokens" : "words"},
                   {"choice_length_match", o.tokenizer ? "tokens" : "bytes"},
                   {"tokenizer", o.tokenizer_name.empty() ? json(nullptr) : json(o.tokenizer_name)},
                   {"split_order", order},
                   {"fractions", o.fractions}};
  manifest["sources"] = json::array();
  for (const Source& s : sources)
    manifest["sources"].push_back({{"path", s.path}, {"bytes", s.bytes}, {"sha256", s.sha256},
                                   {"documents", s.mode}, {"document_count", s.documents}});
  manifest["documents"] = {{"kept", B.docs.size()}, {"duplicates_removed", duplicate_docs}};
  manifest["dedup"] = {{"contexts_skipped", stats[0].contexts_duplicate + stats[1].contexts_duplicate + stats[2].contexts_duplicate},
                       {"choices_rejected", B.choices_rejected}};
  json counts = json::object(), splits = json::object();
  for (int s = 0; s < 3; ++s) {
    const SplitStats& st = stats[s];
    counts[names[s]] = st.items;
    splits[names[s]] = {{"file", names[s] + ".jsonl"},
                        {"items", st.items},
                        {"documents", st.documents},
                        {"sentences", st.sentences},
                        {"candidates", st.candidates},
                        {"gold_positions", st.gold_positions},
                        {"kinds", kinds_json(o.kinds, st)},
                        {"context_length", st.context_units.to_json()},
                        {"context_bytes", st.context_bytes.to_json()},
                        {"choice_length", st.choice_units.to_json()},
                        {"choice_bytes", st.choice_bytes.to_json()},
                        {"gold_bytes", st.gold_bytes.to_json()},
                        {"distractor_bytes", st.distractor_bytes.to_json()}};
  }
  manifest["counts"] = counts;
  manifest["splits"] = splits;

  // 6. Write into a temporary directory, then rename it into place (an existing --force target is
  // moved aside first and restored if the rename fails), so OUT appears whole or not at all.
  std::string tmp = o.out + ".tmp." + std::to_string(::getpid());
  DirGuard guard{tmp};
  std::error_code ec;
  fs::remove_all(tmp, ec);
  if (!fs::create_directories(tmp, ec) || ec) throw Error(o.out, "cannot create directory " + tmp + ": " + ec.message());
  for (int s = 0; s < 3; ++s) write_tasks(tmp + "/" + names[s] + ".jsonl", items[s]);
  write_file_atomic(tmp + "/manifest.json", manifest.dump(2) + "\n");
  if (fs::exists(o.out)) {
    std::string old = o.out + ".old." + std::to_string(::getpid());
    fs::rename(o.out, old, ec);
    if (ec) throw Error(o.out, "cannot replace: " + ec.message());
    DirGuard old_guard{old};
    fs::rename(tmp, o.out, ec);
    if (ec) {
      fs::rename(old, o.out);
      old_guard.path.clear();
      throw Error(o.out, "cannot rename " + tmp + ": " + ec.message());
    }
  } else {
    fs::rename(tmp, o.out, ec);
    if (ec) throw Error(o.out, "cannot rename " + tmp + ": " + ec.message());
  }
  guard.path.clear();
  return manifest;
}

}  // namespace rankrl
