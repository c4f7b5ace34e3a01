// Byte-level BPE training (GPT-2 style), written as a Hugging Face tokenizer.json.
//
// Algorithm (the reference is tests/reference/bpe_train_ref.py):
//  1. Pre-tokenize every document with GPT-2's regex and count the distinct pre-tokens ("words")
//     as byte strings. Documents are the given texts; nothing crosses their boundaries.
//  2. The initial vocabulary is the special tokens (ids 0..) then the 256 bytes in byte order, each
//     shown as its GPT-2 printable character (bytes_to_unicode).
//  3. Repeat until the vocabulary has `vocab_size` entries: count every adjacent symbol pair over
//     all words (weighted by word count); take the pair with the highest count; ties go to the
//     pair whose left token's bytes are lexicographically smallest, then the right token's bytes
//     (unsigned byte comparison, a shorter prefix first). Stop early when the best count is below
//     `min_frequency` or no pair is left. Merge it in every word, left to right, non-overlapping.
// Pair counts are updated incrementally (only the words holding the merged pair are revisited),
// so a 10 MB corpus trains in seconds.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace rankrl {

struct BpeTrainOptions {
  int64_t vocab_size = 4096;  // including the special tokens and the 256 byte tokens
  int64_t min_frequency = 2;  // a pair seen fewer times is never merged
  std::vector<std::string> special_tokens{"<|endoftext|>"};  // the first one is BOS and EOS
};

struct BpeTrainResult {
  std::vector<std::string> tokens;                            // id -> raw bytes (specials as text)
  std::vector<std::pair<std::string, std::string>> merges;   // raw bytes of (left, right), by rank
  int64_t n_special = 0;
  int64_t words = 0, distinct_words = 0;  // pre-token counts of the corpus
  double seconds = 0;
};

// Trains on `documents` (raw bytes; invalid UTF-8 is handled like the encoder does).
BpeTrainResult train_bpe(const std::vector<std::string>& documents, const BpeTrainOptions& options);

// tokenizer.json text: BPE model (vocab + merges in GPT-2's printable-character form),
// ByteLevel pre-tokenizer (add_prefix_space false, GPT-2 regex) and decoder, the special tokens
// as added tokens, and a TemplateProcessing post-processor that puts the first special token
// in front of every sequence (BOS).
std::string bpe_tokenizer_json(const BpeTrainResult& result);
// tokenizer_config.json text naming the first special token as BOS and EOS (add_bos_token true).
std::string bpe_tokenizer_config_json(const BpeTrainResult& result);

}  // namespace rankrl
