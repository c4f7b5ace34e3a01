#include "train/tokenizer_trainer.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_map>

#include "core/error.h"
#include "core/log.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/regex.h"

namespace rankrl {

namespace {

// GPT-2's encoder.py pattern (the same one the ByteLevel pre-tokenizer uses when loading).
const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

using Pair = uint64_t;  // (left id << 32) | right id
Pair make_pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
int32_t left_of(Pair p) { return int32_t(p >> 32); }
int32_t right_of(Pair p) { return int32_t(p & 0xffffffffu); }

struct Word {
  std::vector<int32_t> symbols;
  int64_t count;
};

class Trainer {
 public:
  Trainer(std::vector<Word> words, std::vector<std::string>& tokens)
      : words_(std::move(words)), tokens_(tokens) {}

  void run(int64_t vocab_size, int64_t min_frequency,
           std::vector<std::pair<std::string, std::string>>& merges) {
    for (size_t w = 0; w < words_.size(); ++w) add_word_pairs(uint32_t(w), +1, nullptr);
    for (const auto& [pair, count] : counts_)
      if (count > 0) heap_.push({count, pair});
    Progress bar("bpe merges", vocab_size - int64_t(tokens_.size()), "merges");
    while (int64_t(tokens_.size()) < vocab_size && !heap_.empty()) {
      const Entry top = heap_.top();
      heap_.pop();
      auto it = counts_.find(top.pair);
      const int64_t current = it == counts_.end() ? 0 : it->second;
      if (current != top.count) {  // stale: counts only fall for pairs already in the heap
        if (current > 0) heap_.push({current, top.pair});
        continue;
      }
      if (current < std::max<int64_t>(min_frequency, 1)) break;
      merge(top.pair);
      merges.emplace_back(tokens_[left_of(top.pair)], tokens_[right_of(top.pair)]);
      bar.advance();
    }
    bar.finish();
  }

 private:
  struct Entry {
    int64_t count;
    Pair pair;
  };
  // Heap order: highest count first; ties: smallest left bytes, then smallest right bytes.
  struct Less {
    const std::vector<std::string>* tokens;
    bool operator()(const Entry& x, const Entry& y) const {  // true when x ranks below y
      if (x.count != y.count) return x.count < y.count;
      const std::string& xl = (*tokens)[left_of(x.pair)];
      const std::string& yl = (*tokens)[left_of(y.pair)];
      if (int c = xl.compare(yl); c != 0) return c > 0;
      return (*tokens)[right_of(x.pair)].compare((*tokens)[right_of(y.pair)]) > 0;
    }
  };

  // Adds (sign +1) or removes (-1) the word's pairs from the counts; records pairs that grew.
  void add_word_pairs(uint32_t w, int sign, std::vector<Pair>* grown) {
    const Word& word = words_[w];
    for (size_t i = 0; i + 1 < word.symbols.size(); ++i) {
      const Pair p = make_pair_key(word.symbols[i], word.symbols[i + 1]);
      counts_[p] += sign * word.count;
      if (sign > 0) {
        where_[p].push_back(w);
        if (grown) grown->push_back(p);
      }
    }
  }

  void merge(Pair pair) {
    const int32_t a = left_of(pair), b = right_of(pair), id = int32_t(tokens_.size());
    tokens_.push_back(tokens_[a] + tokens_[b]);
    std::vector<uint32_t> affected = std::move(where_[pair]);
    where_.erase(pair);
    std::sort(affected.begin(), affected.end());
    affected.erase(std::unique(affected.begin(), affected.end()), affected.end());
    std::vector<Pair> grown;
    for (uint32_t w : affected) {
      std::vector<int32_t>& s = words_[w].symbols;
      bool found = false;
      for (size_t i = 0; i + 1 < s.size() && !found; ++i) found = s[i] == a && s[i + 1] == b;
      if (!found) continue;  // stale entry: the pair left this word in an earlier merge
      add_word_pairs(w, -1, nullptr);
      std::vector<int32_t> merged;
      merged.reserve(s.size());
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          merged.push_back(id);
          ++i;
        } else {
          merged.push_back(s[i]);
        }
      }
      s = std::move(merged);
      add_word_pairs(w, +1, &grown);
    }
    counts_.erase(pair);
    std::sort(grown.begin(), grown.end());
    grown.erase(std::unique(grown.begin(), grown.end()), grown.end());
    for (Pair p : grown) {
      // Only pairs with the new token can be new or larger; others are already in the heap.
      if (left_of(p) != id && right_of(p) != id) continue;
      if (int64_t c = counts_[p]; c > 0) heap_.push({c, p});
    }
  }

  std::vector<Word> words_;
  std::vector<std::string>& tokens_;
  std::unordered_map<Pair, int64_t> counts_;
  std::unordered_map<Pair, std::vector<uint32_t>> where_;
  std::priority_queue<Entry, std::vector<Entry>, Less> heap_{Less{&tokens_}};
};

// Raw bytes -> GPT-2 printable characters.
std::string printable(const std::string& bytes) {
  const auto& chars = byte_level_chars();
  std::string out;
  for (unsigned char c : bytes) out += chars[c];
  return out;
}

}  // namespace

BpeTrainResult train_bpe(const std::vector<std::string>& documents, const BpeTrainOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  BpeTrainResult r;
  r.n_special = int64_t(o.special_tokens.size());
  if (o.vocab_size < r.n_special + 256)
    throw usage_error("--vocab-size must be at least " + std::to_string(r.n_special + 256) +
                      " (special tokens + 256 bytes)");
  for (const std::string& s : o.special_tokens) r.tokens.push_back(s);
  for (int b = 0; b < 256; ++b) r.tokens.push_back(std::string(1, char(b)));

  // Count pre-tokens.
  Regex regex(kGpt2Pattern, false, "");
  std::unordered_map<std::string, int64_t> word_counts;
  for (const std::string& doc : documents)
    for (const Span& sp : regex.find_all(doc)) {
      ++word_counts[doc.substr(sp.begin, sp.end - sp.begin)];
      ++r.words;
    }
  // Deterministic word order (the result does not depend on it, but debugging is easier).
  std::vector<std::pair<std::string, int64_t>> sorted(word_counts.begin(), word_counts.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (const auto& [text, count] : sorted) {
    Word w{{}, count};
    for (unsigned char c : text) w.symbols.push_back(int32_t(r.n_special + c));
    words.push_back(std::move(w));
  }
  r.distinct_words = int64_t(words.size());
  Trainer(std::move(words), r.tokens).run(o.vocab_size, o.min_frequency, r.merges);
  r.seconds = seconds_since(start);
  return r;
}

std::string bpe_tokenizer_json(const BpeTrainResult& r) {
  using nlohmann::ordered_json;
  check(r.n_special >= 1, "", "a trained tokenizer needs at least one special token");
  ordered_json vocab = ordered_json::object();
  // Special tokens are in the vocabulary too (as in GPT-2's), so the ids are contiguous.
  for (size_t id = 0; id < r.tokens.size(); ++id)
    vocab[int64_t(id) < r.n_special ? r.tokens[id] : printable(r.tokens[id])] = id;
  ordered_json merges = ordered_json::array();
  for (const auto& [left, right] : r.merges) merges.push_back(printable(left) + " " + printable(right));
  ordered_json added = ordered_json::array();
  for (int64_t id = 0; id < r.n_special; ++id)
    added.push_back({{"id", id}, {"content", r.tokens[id]}, {"single_word", false},
                     {"lstrip", false}, {"rstrip", false}, {"normalized", false}, {"special", true}});
  const std::string bos = r.tokens[0];
  ordered_json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false},
                             {"trim_offsets", true}, {"use_regex", true}};
  ordered_json post = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
                  {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"pair", {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                {{"SpecialToken", {{"id", bos}, {"type_id", 1}}}},
                {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
      {"special_tokens", {{bos, {{"id", bos}, {"ids", {0}}, {"tokens", {bos}}}}}}};
  ordered_json j = {{"version", "1.0"},
                    {"truncation", nullptr},
                    {"padding", nullptr},
                    {"added_tokens", added},
                    {"normalizer", nullptr},
                    {"pre_tokenizer", byte_level},
                    {"post_processor", post},
                    {"decoder", byte_level},
                    {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                               {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                               {"fuse_unk", false}, {"byte_fallback", false},
                               {"vocab", vocab}, {"merges", merges}}}};
  return j.dump(1) + "\n";
}

std::string bpe_tokenizer_config_json(const BpeTrainResult& r) {
  using nlohmann::ordered_json;
  const std::string bos = r.tokens.at(0);
  ordered_json j = {{"add_bos_token", true},  {"add_eos_token", false}, {"bos_token", bos},
                    {"eos_token", bos},       {"unk_token", bos},       {"model_max_length", 1 << 20},
                    {"tokenizer_class", "PreTrainedTokenizerFast"}};
  return j.dump(2) + "\n";
}

}  // namespace rankrl
