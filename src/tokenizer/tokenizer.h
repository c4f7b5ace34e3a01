// Tokenizers: one interface, three implementations (llama2.c tokenizer.bin; Hugging Face
// tokenizer.json BPE in its byte-level and SentencePiece-style variants).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rankrl {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text`, without BOS. Never throws on arbitrary bytes (invalid UTF-8 included).
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // Text of `ids` (special tokens included as their text, BOS/EOS omitted).
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;

  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 when the tokenizer has none
  virtual int32_t eos_id() const = 0;  // -1 when the tokenizer has none
  // Whether this tokenizer's convention prepends BOS to a sequence (llama2.c: yes; HF: per
  // tokenizer_config.json add_bos_token or a post-processor template that starts with it).
  virtual bool adds_bos() const = 0;
  virtual std::string kind() const = 0;  // "llama2c", "bpe-bytelevel", "bpe-sentencepiece"

  // encode() with BOS in front when adds_bos().
  std::vector<int32_t> encode_with_bos(std::string_view text) const;
};

// Loads a tokenizer from a llama2.c tokenizer.bin, a tokenizer.json, or a model directory holding
// tokenizer.json (and optionally tokenizer_config.json). Throws Error naming the file at fault.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

// Parses tokenizer.json text (and tokenizer_config.json text, or "" when there is none) without
// touching the file system; `path` names the source in errors. Throws Error on bad input.
std::unique_ptr<Tokenizer> parse_tokenizer_json(std::string_view json,
                                                std::string_view config_json,
                                                const std::string& path);

}  // namespace rankrl
