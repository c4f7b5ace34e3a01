#include "tokenizer/bpe_tokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace rankrl {

namespace {

constexpr size_t kMaxCachedWord = 256;      // longer words are rare; do not cache them
constexpr size_t kMaxCacheEntries = 1 << 18;  // bounds memory on adversarial input

struct Part {
  Span span;
  bool is_match;
};

// The text cut into alternating gaps and matches, with `invert` swapping the two roles.
std::vector<Part> classify(std::string_view text, const Regex& re, bool invert) {
  std::vector<Part> parts;
  size_t pos = 0;
  for (const Span& m : re.find_all(text)) {
    if (m.begin > pos) parts.push_back({{pos, m.begin}, invert});
    parts.push_back({m, !invert});
    pos = m.end;
  }
  if (pos < text.size()) parts.push_back({{pos, text.size()}, invert});
  return parts;
}

// Hugging Face's SplitDelimiterBehavior applied to classified parts (same folding rules).
std::vector<Span> combine(const std::vector<Part>& parts, SplitBehavior behavior) {
  std::vector<Span> out;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Part& p : parts) out.push_back(p.span);
      break;
    case SplitBehavior::kRemoved:
      for (const Part& p : parts)
        if (!p.is_match) out.push_back(p.span);
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Part& p : parts) {
        if (p.is_match && !previous_match && !out.empty()) out.back().end = p.span.end;
        else out.push_back(p.span);
        previous_match = p.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto p = parts.rbegin(); p != parts.rend(); ++p) {
        if (p->is_match && !previous_match && !out.empty()) out.back().begin = p->span.begin;
        else out.push_back(p->span);
        previous_match = p->is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    case SplitBehavior::kContiguous:
      for (size_t i = 0; i < parts.size(); ++i) {
        if (i > 0 && parts[i].is_match == parts[i - 1].is_match) out.back().end = parts[i].span.end;
        else out.push_back(parts[i].span);
      }
      break;
  }
  return out;
}

void split_into(const std::string& text, const Regex& re, SplitBehavior behavior, bool invert,
                std::vector<std::string>& out) {
  for (const Span& s : combine(classify(text, re, invert), behavior))
    out.emplace_back(text, s.begin, s.end - s.begin);
}

void replace_all(std::string& text, char from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == from) out += to;
    else out += c;
  }
  text = std::move(out);
}

bool starts_with(const std::string& s, std::string_view prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

const StringMap<char>& byte_level_inverse() {
  static const StringMap<char> inverse = [] {
    StringMap<char> m;
    for (int b = 0; b < 256; ++b) m.emplace(byte_level_chars()[b], static_cast<char>(b));
    return m;
  }();
  return inverse;
}

}  // namespace

const std::array<std::string, 256>& byte_level_chars() {
  // Printable Latin-1 bytes stand for themselves; the others map to U+0100 onwards in order.
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      utf8::append(t[b], printable ? b : next++);
    }
    return t;
  }();
  return table;
}

// ---- added tokens ----

void AddedTokens::add(const std::string& content, int32_t id) {
  if (content.empty()) return;  // would match everywhere
  by_content_.emplace(content, id);
  first_byte_[static_cast<unsigned char>(content[0])] = true;
  if (std::find(lengths_.begin(), lengths_.end(), content.size()) == lengths_.end()) {
    lengths_.push_back(content.size());
    std::sort(lengths_.rbegin(), lengths_.rend());
  }
}

int32_t AddedTokens::find(std::string_view content) const {
  auto it = by_content_.find(content);
  return it == by_content_.end() ? -1 : it->second;
}

std::vector<AddedTokens::Segment> AddedTokens::split(std::string_view text) const {
  std::vector<Segment> out;
  size_t plain_start = 0;
  for (size_t i = 0; i < text.size();) {
    size_t len = 0;
    int32_t id = -1;
    if (first_byte_[static_cast<unsigned char>(text[i])]) {
      for (size_t candidate : lengths_) {
        if (candidate > text.size() - i) continue;
        if ((id = find(text.substr(i, candidate))) >= 0) {
          len = candidate;
          break;
        }
      }
    }
    if (len == 0) {
      ++i;
      continue;
    }
    if (i > plain_start) out.push_back({text.substr(plain_start, i - plain_start), -1});
    out.push_back({text.substr(i, len), id});
    i += len;
    plain_start = i;
  }
  if (plain_start < text.size()) out.push_back({text.substr(plain_start), -1});
  return out;
}

// ---- normalizers and pre-tokenizers ----

void Normalizer::apply(std::string& text) const {
  if (kind == Kind::kPrepend) {
    if (!text.empty()) text.insert(0, content);  // HF's Prepend leaves empty text alone
    return;
  }
  std::string out;
  size_t pos = 0;
  for (const Span& m : pattern->find_all(text)) {
    out.append(text, pos, m.begin - pos);
    out += content;
    pos = m.end;
  }
  out.append(text, pos, std::string::npos);
  text = std::move(out);
}

void PreTokenizer::apply(std::vector<std::string>& pieces, bool at_text_start) const {
  std::vector<std::string> out;
  out.reserve(pieces.size());
  for (size_t i = 0; i < pieces.size(); ++i) {
    std::string& piece = pieces[i];
    switch (kind) {
      case Kind::kSplit:
        split_into(piece, *pattern, behavior, invert, out);
        break;
      case Kind::kByteLevel:
        if (add_prefix_space && !starts_with(piece, " ")) piece.insert(0, " ");
        if (pattern) split_into(piece, *pattern, SplitBehavior::kIsolated, false, out);
        else out.push_back(std::move(piece));
        break;
      case Kind::kMetaspace: {
        replace_all(piece, ' ', replacement);
        const bool first = i == 0 && at_text_start;
        const bool prepend_here =
            prepend == Prepend::kAlways || (prepend == Prepend::kFirst && first);
        if (prepend_here && !starts_with(piece, replacement)) piece.insert(0, replacement);
        if (pattern) split_into(piece, *pattern, SplitBehavior::kMergedWithNext, false, out);
        else out.push_back(std::move(piece));
        break;
      }
    }
  }
  pieces = std::move(out);
}

// ---- BPE tokenizer ----

void BpeTokenizer::finish_setup() {
  for (int b = 0; b < 256; ++b) {
    byte_fallback_ids_[b] = token_id(utf8::byte_piece(static_cast<uint8_t>(b)));
    auto it = vocab_.find(byte_level_chars()[b]);
    byte_level_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
  byte_level_ = std::any_of(pre_tokenizers_.begin(), pre_tokenizers_.end(),
                            [](const PreTokenizer& p) { return p.kind == PreTokenizer::Kind::kByteLevel; });
  const bool prepends_normalizer =
      std::any_of(normalizers_.begin(), normalizers_.end(), [](const Normalizer& n) {
        return n.kind == Normalizer::Kind::kPrepend && n.content == "\u2581";
      });
  const bool prepends_metaspace =
      std::any_of(pre_tokenizers_.begin(), pre_tokenizers_.end(), [](const PreTokenizer& p) {
        return p.kind == PreTokenizer::Kind::kMetaspace && p.prepend != PreTokenizer::Prepend::kNever;
      });
  strip_leading_space_ = !byte_level_ && (prepends_normalizer || prepends_metaspace);
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab_) max_id = std::max(max_id, id);
  for (const auto& [content, id] : added_.all()) max_id = std::max(max_id, id);
  vocab_size_ = max_id + 1;
}

int32_t BpeTokenizer::token_id(std::string_view token) const {
  const int32_t added = added_.find(token);
  if (added >= 0) return added;
  auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  bool at_text_start = true;
  for (const AddedTokens::Segment& segment : added_.split(text)) {
    if (segment.id >= 0) ids.push_back(segment.id);
    else encode_segment(segment.text, at_text_start, ids);
    at_text_start = false;
  }
  return ids;
}

void BpeTokenizer::encode_segment(std::string_view text, bool at_text_start,
                                  std::vector<int32_t>& ids) const {
  std::string normalized(text);
  for (const Normalizer& n : normalizers_) n.apply(normalized);
  if (normalized.empty()) return;
  std::vector<std::string> pieces{std::move(normalized)};
  for (const PreTokenizer& p : pre_tokenizers_) p.apply(pieces, at_text_start);
  for (const std::string& piece : pieces) encode_word(piece, ids);
}

void BpeTokenizer::encode_word(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  const bool cacheable = word.size() <= kMaxCachedWord;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(word);
    if (it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> word_ids;
  if (ignore_merges_) {  // Llama-3: a word that is a token is taken whole
    std::string key;
    if (byte_level_) {
      for (unsigned char b : word) key += byte_level_chars()[b];
    } else {
      key = word;
    }
    auto it = vocab_.find(key);
    if (it != vocab_.end()) word_ids.push_back(it->second);
  }
  if (word_ids.empty()) {
    word_ids = initial_symbols(word);
    apply_merges(word_ids, merges_);
  }
  ids.insert(ids.end(), word_ids.begin(), word_ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() < kMaxCacheEntries) cache_.emplace(std::string(word), std::move(word_ids));
  }
}

std::vector<int32_t> BpeTokenizer::initial_symbols(std::string_view word) const {
  std::vector<int32_t> ids;
  ids.reserve(word.size());
  for (size_t i = 0; i < word.size();) {
    const size_t n = byte_level_ ? 1 : utf8::unit_len(word, i);
    const std::string_view unit = word.substr(i, n);
    int32_t id = -1;
    if (byte_level_) {
      id = byte_level_ids_[static_cast<unsigned char>(word[i])];
    } else if (auto it = vocab_.find(unit); it != vocab_.end()) {
      id = it->second;
    }
    if (id >= 0) ids.push_back(id);
    else append_unknown(unit, ids);
    i += n;
  }
  return ids;
}

// A character missing from the vocabulary: its bytes as <0xNN> tokens when byte fallback is on
// and they all exist, else the unknown token (fused with a preceding one when fuse_unk), else
// nothing at all, as Hugging Face does.
void BpeTokenizer::append_unknown(std::string_view unit, std::vector<int32_t>& ids) const {
  const bool bytes_exist = std::all_of(unit.begin(), unit.end(), [&](char c) {
    return byte_fallback_ids_[static_cast<unsigned char>(c)] >= 0;
  });
  if (byte_fallback_ && bytes_exist) {
    for (unsigned char c : unit) ids.push_back(byte_fallback_ids_[c]);
    return;
  }
  if (unk_id_ < 0) return;
  if (fuse_unk_ && !ids.empty() && ids.back() == unk_id_) return;
  ids.push_back(unk_id_);
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) {
    check(id >= 0 && id < vocab_size_, "",
          "token id " + std::to_string(id) + " outside the vocabulary [0, " +
              std::to_string(vocab_size_) + ")");
    if (id == bos_id_ || id == eos_id_) continue;
    out += token_text(id);
  }
  if (strip_leading_space_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

std::string BpeTokenizer::token_text(int32_t id) const {
  auto it = id_to_token_.find(id);
  if (it == id_to_token_.end()) return "";
  const std::string& token = it->second;
  if (added_.find(token) == id) return token;  // added tokens are verbatim text
  std::string out;
  if (byte_level_) {
    const auto& inverse = byte_level_inverse();
    for (size_t i = 0; i < token.size();) {
      const size_t n = utf8::unit_len(token, i);
      auto b = inverse.find(std::string_view(token).substr(i, n));
      if (b != inverse.end()) out += b->second;
      else out.append(token, i, n);
      i += n;
    }
    return out;
  }
  const int byte = utf8::parse_byte_piece(token);
  if (byte >= 0 && byte_fallback_) return std::string(1, static_cast<char>(byte));
  out = token;
  for (size_t pos; (pos = out.find("\u2581")) != std::string::npos;) out.replace(pos, 3, " ");
  return out;
}

}  // namespace rankrl
