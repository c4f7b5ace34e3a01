#include "data/kinds.h"

#include <algorithm>
#include <cctype>
#include <unordered_set>

#include "data/hashing.h"

namespace rankrl {

namespace {

// Bytes of a punctuation character starting at s[i] (0 if none): ASCII punctuation or one of
// ‘ ’ “ ” – — … (the set normalize_text drops).
size_t punct_at(std::string_view s, size_t i) {
  static const char* const kUnicode[] = {"\xE2\x80\x98", "\xE2\x80\x99", "\xE2\x80\x9C",
                                         "\xE2\x80\x9D", "\xE2\x80\x93", "\xE2\x80\x94", "\xE2\x80\xA6"};
  unsigned char c = s[i];
  if (c < 128) return std::ispunct(c) ? 1 : 0;
  for (const char* p : kUnicode)
    if (s.compare(i, 3, p) == 0) return 3;
  return 0;
}

// Bytes of a punctuation character ending at s[e-1] (0 if none).
size_t punct_before(std::string_view s, size_t e) {
  if (e >= 3 && punct_at(s, e - 3) == 3) return 3;
  return e >= 1 && punct_at(s, e - 1) == 1 ? 1 : 0;
}

size_t trailing_punct(std::string_view s) {
  size_t e = s.size();
  while (size_t n = punct_before(s, e)) e -= n;
  return s.size() - e;
}

std::vector<std::string> tokens(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    size_t b = i;
    while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    if (i > b) out.emplace_back(s.substr(b, i - b));
  }
  return out;
}

std::string join(const std::vector<std::string>& words) {
  std::string s;
  for (const std::string& w : words) s += (s.empty() ? "" : " ") + w;
  return s;
}

std::string capitalised(std::string s) {
  for (char& c : s)
    if (std::isalpha(static_cast<unsigned char>(c))) {
      c = char(std::toupper(static_cast<unsigned char>(c)));
      break;
    }
  return s;
}

// The tokens of `choice` once the gold's end mark is removed; false when it does not end so.
bool core_tokens(const std::string& choice, const std::string& end, std::vector<std::string>& out) {
  if (!choice.ends_with(end)) return false;
  out = tokens(std::string_view(choice).substr(0, choice.size() - end.size()));
  return true;
}

}  // namespace

const std::vector<std::string>& item_kind_names() {
  static const std::vector<std::string> names = {"next", "shuffle", "swap", "replace", "lastword"};
  return names;
}

bool is_item_kind(std::string_view name) {
  const auto& n = item_kind_names();
  return std::find(n.begin(), n.end(), name) != n.end();
}

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

SentenceWords sentence_words(std::string_view sentence) {
  SentenceWords w;
  w.core = tokens(sentence);
  if (w.core.empty()) return w;
  std::string& last = w.core.back();
  size_t n = trailing_punct(last);
  if (n == last.size()) {  // a detached mark ("words ." in WikiText) keeps its space
    w.end = " " + last;
    w.core.pop_back();
  } else {
    w.end = last.substr(last.size() - n);
    last.resize(last.size() - n);
  }
  return w;
}

std::string join_words(const SentenceWords& words) { return join(words.core) + words.end; }

TokenParts token_parts(std::string_view token) {
  size_t b = 0;
  while (size_t n = b < token.size() ? punct_at(token, b) : 0) b += n;
  size_t e = token.size();
  while (e > b) {
    size_t n = punct_before(token, e);
    if (n == 0) break;
    e -= n;
  }
  return {std::string(token.substr(0, b)), std::string(token.substr(b, e - b)), std::string(token.substr(e))};
}

bool is_plain_word(std::string_view w) {
  if (w.empty() || !std::isalpha(static_cast<unsigned char>(w.front())) ||
      !std::isalpha(static_cast<unsigned char>(w.back())))
    return false;
  for (size_t i = 0; i < w.size(); ++i) {
    char c = w[i];
    bool inner = (c == '\'' || c == '-') && std::isalpha(static_cast<unsigned char>(w[i - 1]));
    if (!std::isalpha(static_cast<unsigned char>(c)) && !inner) return false;
  }
  return true;
}

bool is_content_word(std::string_view w) {
  // Function words, pronouns and auxiliaries: swapping one for a random noun is too easy a tell,
  // and as cloze answers they test grammar rather than the passage.
  static const std::unordered_set<std::string> kFunction = {
      "the", "and", "but", "for", "nor", "yet", "with", "from", "into", "onto", "over", "under",
      "about", "after", "before", "then", "than", "that", "this", "these", "those", "there", "here",
      "they", "them", "their", "she", "her", "hers", "his", "him", "you", "your", "our", "ours",
      "its", "who", "whom", "what", "which", "when", "where", "why", "how", "was", "were", "are",
      "been", "being", "have", "has", "had", "did", "does", "doing", "will", "would", "shall",
      "should", "can", "could", "may", "might", "must", "not", "all", "any", "some", "very", "too",
      "also", "just", "said", "says", "unto", "thee", "thou", "thy", "hath", "one", "out", "off",
      "upon", "each", "every", "such", "other", "because", "while", "again", "only", "own", "same"};
  return is_plain_word(w) && w.size() >= 3 && !kFunction.count(lower_ascii(w));
}

std::vector<std::string> shuffled_variants(const SentenceWords& gold, size_t n, Rng& rng) {
  std::vector<uint64_t> seen = {normalized_hash(join_words(gold))};
  std::vector<std::string> out;
  SentenceWords w = gold;
  // Enough attempts to find n orders of a 3-word sentence (5 others) with high probability.
  for (size_t attempt = 0; attempt < 20 * (n + 1) && out.size() < n; ++attempt) {
    rng.shuffle(w.core);
    std::string s = join_words(w);
    uint64_t h = normalized_hash(s);
    if (std::find(seen.begin(), seen.end(), h) != seen.end()) continue;
    seen.push_back(h);
    out.push_back(std::move(s));
  }
  return out;
}

std::string with_span(const SentenceWords& gold, size_t at, const std::vector<std::string>& span) {
  SentenceWords w = gold;
  for (size_t i = 0; i < span.size(); ++i) w.core[at + i] = span[i];
  if (at == 0) w.core[0] = capitalised(w.core[0]);
  return join_words(w);
}

std::string with_words(const SentenceWords& gold, const std::vector<WordEdit>& edits) {
  SentenceWords w = gold;
  for (const WordEdit& e : edits) {
    TokenParts p = token_parts(w.core[e.at]);
    bool upper = !p.word.empty() && std::isupper(static_cast<unsigned char>(p.word[0]));
    w.core[e.at] = p.lead + (upper ? capitalised(e.word) : e.word) + p.trail;
  }
  return join_words(w);
}

std::string item_kind_problem(std::string_view kind, const std::vector<std::string>& choices, int gold) {
  if (!is_item_kind(kind)) return "unknown item_kind '" + std::string(kind) + "'";
  if (gold < 0 || gold >= int(choices.size())) return "";  // reported elsewhere
  if (kind == "lastword") {
    for (size_t k = 0; k < choices.size(); ++k)
      if (tokens(choices[k]).size() != 1) return "lastword choice " + std::to_string(k) + " is not one word";
    return "";
  }
  if (kind == "next") return "";
  SentenceWords g = sentence_words(choices[gold]);
  for (size_t k = 0; k < choices.size(); ++k) {
    if (int(k) == gold) continue;
    std::string what = std::string(kind) + " distractor " + std::to_string(k);
    std::vector<std::string> t;
    if (!core_tokens(choices[k], g.end, t)) return what + " does not keep the gold's end mark";
    if (kind == "shuffle") {
      std::vector<std::string> a = g.core, b = t;
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      if (a != b) return what + " is not a permutation of the gold's words";
      continue;
    }
    if (t.size() != g.core.size()) return what + " has " + std::to_string(t.size()) + " words, the gold " +
                                            std::to_string(g.core.size());
    std::vector<size_t> diff;
    for (size_t i = 0; i < t.size(); ++i)
      if (lower_ascii(t[i]) != lower_ascii(g.core[i])) diff.push_back(i);
    if (kind == "replace" && (diff.empty() || diff.size() > 2))
      return what + " differs from the gold in " + std::to_string(diff.size()) + " words, not 1 or 2";
    if (kind == "swap" && (diff.empty() || diff.back() - diff.front() >= kMaxSwapSpan))
      return what + " does not differ from the gold in one span of at most " + std::to_string(kMaxSwapSpan) + " words";
  }
  return "";
}

}  // namespace rankrl
