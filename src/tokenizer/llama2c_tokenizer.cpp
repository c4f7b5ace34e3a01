#include "tokenizer/llama2c_tokenizer.h"

#include <cstring>

#include "core/error.h"
#include "core/fs.h"
#include "tokenizer/utf8.h"

namespace rankrl {

namespace {

// Little-endian reader over the file bytes that reports truncation as an Error naming the file.
class BinReader {
 public:
  BinReader(std::string_view bytes, const std::string& path) : bytes_(bytes), path_(path) {}
  bool at_end() const { return pos_ == bytes_.size(); }
  template <typename T>
  T read(const char* what, int32_t id) {
    T value;
    std::memcpy(&value, take(sizeof(T), what, id).data(), sizeof(T));
    return value;
  }
  std::string_view take(size_t n, const char* what, int32_t id) {
    if (bytes_.size() - pos_ < n) {
      throw Error(path_, "truncated tokenizer.bin: " + std::string(what) + " of token " +
                             std::to_string(id) + " needs " + std::to_string(n) +
                             " bytes at offset " + std::to_string(pos_) + ", file has " +
                             std::to_string(bytes_.size()));
    }
    std::string_view out = bytes_.substr(pos_, n);
    pos_ += n;
    return out;
  }

 private:
  std::string_view bytes_;
  const std::string& path_;
  size_t pos_ = 0;
};

bool is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// run.c's units: a byte plus the continuation bytes after it, at most four bytes in all. This is
// a code point for valid UTF-8; for invalid input it reproduces run.c's grouping exactly.
template <typename F>
void for_each_unit(std::string_view text, F&& f) {
  for (size_t i = 0; i < text.size();) {
    size_t len = 1;
    while (i + len < text.size() && len < 4 && is_continuation(text[i + len])) ++len;
    f(text.substr(i, len));
    i += len;
  }
}

}  // namespace

Llama2cTokenizer Llama2cTokenizer::load(const std::string& path, int32_t vocab_size) {
  return parse(read_file(path), path, vocab_size);
}

Llama2cTokenizer Llama2cTokenizer::parse(std::string_view bytes, const std::string& path,
                                         int32_t vocab_size) {
  Llama2cTokenizer tok;
  BinReader in(bytes, path);
  tok.max_token_length_ = in.read<uint32_t>("max_token_len header", -1);
  for (int32_t id = 0; vocab_size < 0 ? !in.at_end() : id < vocab_size; ++id) {
    const float score = in.read<float>("score", id);
    const int32_t len = in.read<int32_t>("length", id);
    check(len >= 0, path, "token " + std::to_string(id) + " has negative length " +
                              std::to_string(len));
    tok.scores_.push_back(score);
    tok.pieces_.emplace_back(in.take(static_cast<size_t>(len), "bytes", id));
  }
  check(tok.pieces_.size() >= 3, path,
        "tokenizer.bin has " + std::to_string(tok.pieces_.size()) +
            " tokens, need at least 3 (<unk>, <s>, </s>)");
  tok.build_index();
  return tok;
}

void Llama2cTokenizer::build_index() {
  const int32_t n = vocab_size();
  for (int32_t id = 0; id < n; ++id) index_.emplace(pieces_[id], id);  // first id wins

  byte_fallback_ = n >= kFirstByte + 256;
  for (int b = 0; b < 256 && byte_fallback_; ++b)
    byte_fallback_ = pieces_[kFirstByte + b] == utf8::byte_piece(static_cast<uint8_t>(b));

  for (const Merge& m : merges()) merges_.add(m.left, m.right, {m.merged, -double(scores_[m.merged])});
}

std::vector<Llama2cTokenizer::Merge> Llama2cTokenizer::merges() const {
  std::vector<Merge> out;
  for (int32_t id = 0; id < vocab_size(); ++id) {
    const std::string_view piece = pieces_[id];
    if (find(piece) != id || !(scores_[id] > kNoMergeScore)) continue;  // duplicates: first wins
    for (size_t k = 1; k < piece.size(); ++k) {
      const int32_t left = find(piece.substr(0, k)), right = find(piece.substr(k));
      if (left >= 0 && right >= 0) out.push_back({left, right, id});
    }
  }
  return out;
}

int32_t Llama2cTokenizer::find(std::string_view piece) const {
  auto it = index_.find(piece);
  return it == index_.end() ? -1 : it->second;
}

void Llama2cTokenizer::append_unit(std::string_view unit, std::vector<int32_t>& ids) const {
  const int32_t id = find(unit);
  if (id >= 0) {
    ids.push_back(id);
  } else if (byte_fallback_) {
    for (unsigned char byte : unit) ids.push_back(kFirstByte + byte);
  } else {
    ids.push_back(kUnk);
  }
}

// run.c encode(): a dummy " " in front of non-empty text, one token per code point (byte
// fallback otherwise), then highest-score-first merging. Unlike run.c (C strings), a NUL byte
// does not end the text; it is encoded like any other byte.
std::vector<int32_t> Llama2cTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  if (text.empty()) return ids;
  ids.reserve(text.size() + 1);
  append_unit(" ", ids);
  for_each_unit(text, [&](std::string_view unit) { append_unit(unit, ids); });
  apply_merges(ids, merges_);
  return ids;
}

// run.c decode(): byte tokens become raw bytes and the leading space of the first token after
// BOS is dropped; we also drop it at the start of `ids`, so decode(encode(x)) == x.
std::string Llama2cTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  bool at_start = true;
  for (int32_t id : ids) {
    check(id >= 0 && id < vocab_size(), "",
          "token id " + std::to_string(id) + " outside the vocabulary [0, " +
              std::to_string(vocab_size()) + ")");
    if (id == kBos || id == kEos) {
      at_start = at_start || id == kBos;
      continue;
    }
    const int byte = utf8::parse_byte_piece(pieces_[id]);
    std::string_view text = pieces_[id];
    const char byte_char = static_cast<char>(byte);
    if (byte >= 0) text = std::string_view(&byte_char, 1);
    if (at_start && !text.empty() && text[0] == ' ') text.remove_prefix(1);
    out += text;
    at_start = false;
  }
  return out;
}

}  // namespace rankrl
