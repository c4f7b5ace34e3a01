// Hugging Face tokenizer.json with a BPE model, in its two common flavours:
//  - byte-level (GPT-2, Llama-3, Qwen2): regex pre-tokenization (ByteLevel, or Split followed by
//    ByteLevel(use_regex=false)), bytes mapped to printable characters, merges by rank;
//  - SentencePiece-style (Llama-2, TinyLlama, Mistral): "▁" for spaces via a Prepend/Replace
//    normalizer or a Metaspace pre-tokenizer, character symbols with byte fallback (<0xNN>).
// Supported components: normalizers Sequence/Prepend/Replace/NFC (NFC is accepted as a no-op:
// exact for text that is already NFC, which is nearly all text); pre-tokenizers
// Sequence/Split/ByteLevel/Metaspace. Anything else is rejected with a clear Error rather than
// silently tokenizing differently. The decoder section is not interpreted: decoding follows the
// flavour (byte-level: unmap bytes; SentencePiece: ▁ -> space, <0xNN> -> byte, and one leading
// space removed when encoding prepends "▁"). Bytes are returned raw, never replaced by U+FFFD.
// Added tokens are matched in the raw text (leftmost-longest) before normalization; their
// lstrip/rstrip/single_word flags are ignored.
#pragma once
#include <array>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/merge.h"
#include "tokenizer/regex.h"
#include "tokenizer/string_map.h"
#include "tokenizer/tokenizer.h"

namespace rankrl {

// Added tokens, found in text leftmost-longest.
class AddedTokens {
 public:
  void add(const std::string& content, int32_t id);
  struct Segment {
    std::string_view text;
    int32_t id;  // >= 0 for an added token, -1 for ordinary text
  };
  std::vector<Segment> split(std::string_view text) const;
  // Id of the added token with this content, or -1.
  int32_t find(std::string_view content) const;
  const StringMap<int32_t>& all() const { return by_content_; }

 private:
  StringMap<int32_t> by_content_;
  std::array<bool, 256> first_byte_{};
  std::vector<size_t> lengths_;  // distinct content lengths, longest first
};

struct Normalizer {
  enum class Kind { kPrepend, kReplace };
  Kind kind;
  std::string content;                  // text prepended, or the replacement
  std::shared_ptr<const Regex> pattern;  // kReplace
  void apply(std::string& text) const;
};

enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreTokenizer {
  enum class Kind { kSplit, kByteLevel, kMetaspace };
  enum class Prepend { kAlways, kFirst, kNever };
  Kind kind = Kind::kSplit;
  std::shared_ptr<const Regex> pattern;  // Split; ByteLevel with use_regex; Metaspace with split
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;  // ByteLevel
  std::string replacement;        // Metaspace
  Prepend prepend = Prepend::kNever;
  // Splits every piece further; `at_text_start`: the first piece begins the whole input.
  void apply(std::vector<std::string>& pieces, bool at_text_start) const;
};

class BpeTokenizer : public Tokenizer {
 public:
  // Parses tokenizer.json text; `config_json` is tokenizer_config.json text or empty. The paths
  // only name the sources in errors. Throws Error on anything malformed or unsupported.
  static std::unique_ptr<BpeTokenizer> parse(std::string_view json, const std::string& path,
                                             std::string_view config_json = {},
                                             const std::string& config_path = {});

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int32_t vocab_size() const override { return vocab_size_; }
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }
  bool adds_bos() const override { return adds_bos_; }
  std::string kind() const override { return byte_level_ ? "bpe-bytelevel" : "bpe-sentencepiece"; }

  // Id of a vocabulary or added token, or -1.
  int32_t token_id(std::string_view token) const;

 private:
  friend class BpeJsonParser;
  BpeTokenizer() = default;
  void finish_setup();
  void encode_segment(std::string_view text, bool at_text_start,
                      std::vector<int32_t>& ids) const;
  void encode_word(std::string_view word, std::vector<int32_t>& ids) const;
  std::vector<int32_t> initial_symbols(std::string_view word) const;
  void append_unknown(std::string_view unit, std::vector<int32_t>& ids) const;
  std::string token_text(int32_t id) const;

  // tokenizer.json pipeline
  AddedTokens added_;
  std::vector<Normalizer> normalizers_;
  std::vector<PreTokenizer> pre_tokenizers_;
  bool byte_level_ = false;
  bool strip_leading_space_ = false;  // SentencePiece flavour with a prepended "▁"

  // BPE model
  StringMap<int32_t> vocab_;
  std::unordered_map<int32_t, std::string> id_to_token_;
  MergeTable merges_;
  int32_t unk_id_ = -1;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  std::array<int32_t, 256> byte_fallback_ids_{};  // <0xNN> token ids; -1 when absent
  std::array<int32_t, 256> byte_level_ids_{};     // id of each byte's printable character

  int32_t vocab_size_ = 0, bos_id_ = -1, eos_id_ = -1;
  bool adds_bos_ = false;

  // Words recur: cache their ids (short words only, bounded size).
  mutable std::mutex cache_mutex_;
  mutable StringMap<std::vector<int32_t>> cache_;
};

// GPT-2's byte -> printable character table (bytes_to_unicode in GPT-2's encoder.py).
const std::array<std::string, 256>& byte_level_chars();

}  // namespace rankrl
