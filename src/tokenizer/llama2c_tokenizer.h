// llama2.c tokenizer.bin: `uint32 max_token_len`, then per id `float32 score, int32 len, bytes`.
// Encoding reproduces llama2.c run.c `encode()` exactly; see llama2c_tokenizer.cpp.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/merge.h"
#include "tokenizer/string_map.h"
#include "tokenizer/tokenizer.h"

namespace rankrl {

class Llama2cTokenizer : public Tokenizer {
 public:
  static constexpr int32_t kUnk = 0, kBos = 1, kEos = 2, kFirstByte = 3;
  // llama2.c's merge loop starts from best_score = -1e10 with a strict `>`, so pairs whose
  // token scores at or below this never merge.
  static constexpr float kNoMergeScore = -1e10f;

  // Reads `path`; `vocab_size` < 0 means "as many entries as the file holds".
  static Llama2cTokenizer load(const std::string& path, int32_t vocab_size = -1);
  // Parses the bytes of a tokenizer.bin; `path` only names the source in errors.
  static Llama2cTokenizer parse(std::string_view bytes, const std::string& path,
                                int32_t vocab_size = -1);

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  int32_t bos_id() const override { return kBos; }
  int32_t eos_id() const override { return kEos; }
  bool adds_bos() const override { return true; }
  std::string kind() const override { return "llama2c"; }

  const std::vector<std::string>& pieces() const { return pieces_; }
  const std::vector<float>& scores() const { return scores_; }
  uint32_t max_token_length() const { return max_token_length_; }
  // Whether ids 3..258 are the byte tokens <0x00>..<0xFF>.
  bool has_byte_fallback() const { return byte_fallback_; }
  // Id of the piece with exactly these bytes (the first such id), or -1.
  int32_t find(std::string_view piece) const;

  struct Merge {
    int32_t left, right, merged;
  };
  // Every pair of pieces whose concatenation is a piece llama2.c may merge into (score above
  // kNoMergeScore): the pairs run.c finds by looking up concatenations of neighbours.
  std::vector<Merge> merges() const;

 private:
  Llama2cTokenizer() = default;
  void build_index();
  void append_unit(std::string_view unit, std::vector<int32_t>& ids) const;

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  uint32_t max_token_length_ = 0;
  bool byte_fallback_ = false;
  StringMap<int32_t> index_;
  MergeTable merges_;
};

// Writes `out_dir`/tokenizer.json (Hugging Face, SentencePiece-style BPE with byte fallback) and
// `out_dir`/tokenizer_config.json equivalent to `tok`: merges are derived from the vocabulary
// scores so that lowest-rank-first merging reproduces llama2.c's highest-score-first merging.
// Known difference: text containing "<unk>", "<s>" or "</s>" literally maps to the special ids
// in Hugging Face semantics. Throws Error when a piece is not valid UTF-8 or pieces collide.
void write_tokenizer_json_from_llama2c(const Llama2cTokenizer& tok, const std::string& out_dir);

// Throws Error(source, ...) when write_tokenizer_json_from_llama2c would reject `tok`; lets a
// caller blame the tokenizer file and fail before writing anything.
void check_llama2c_convertible(const Llama2cTokenizer& tok, const std::string& source);

}  // namespace rankrl
