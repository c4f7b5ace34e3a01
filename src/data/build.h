// `rankrl data build`: multiple-choice ranking items from plain text.
//
// The corpus is cut into documents (`<|endoftext|>` lines, WikiText `= Title =` headings, or
// blank-line blocks), documents into paragraphs and sentences. An item is
//   query   = a window of consecutive sentences of one document, about `context_tokens` long,
//             ending at a sentence boundary;
//   gold    = the true next sentence;
//   others  = `hard` later sentences of the same document (never the next one nor the one right
//             after it) plus sentences of similar length from other documents of the same split.
// Documents are split disjointly into rkd / vrkd / test, so no text crosses splits; duplicate
// documents, contexts and choices are removed by normalised hashing (data/hashing.h); gold
// positions are balanced per split (each position equally often up to one); everything follows
// from `seed`. Other item kinds (`kinds`, see data/kinds.h) edit the true next sentence into
// its distractors or ask for a sentence's last word. The output directory (rkd.jsonl, vrkd.jsonl, test.jsonl, manifest.json) appears
// at once by renaming a finished temporary directory.
#pragma once
#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace rankrl {

class Tokenizer;

struct BuildOptions {
  std::vector<std::string> corpora;
  std::string out;
  int64_t items = 300;               // total over the three splits, shared by `fractions`
  std::array<int64_t, 3> split_items = {-1, -1, -1};  // explicit per-split counts (override)
  int choices = 4;
  int hard = 1;                      // same-document distractors per item (kind next)
  // Item kinds (data/kinds.h), sharing each split's items equally; {"next"} writes untagged items.
  std::vector<std::string> kinds = {"next"};
  int64_t context_tokens = 64;       // words, or tokens when `tokenizer` is given
  // Longest usable choice (same unit): longer sentences are neither gold nor distractor, so an
  // item always fits a small model's context (one 300-token "sentence" would not).
  int64_t max_choice_tokens = 96;
  uint64_t seed = 1;
  std::array<double, 3> fractions = {0.6, 0.2, 0.2};  // documents (and items) per split
  std::string docs = "auto";         // auto | endoftext | heading | blank
  std::string split_order = "auto";  // auto | shuffle | file (auto: file for blank-line documents)
  const Tokenizer* tokenizer = nullptr;  // counts lengths in tokens when set
  std::string tokenizer_name;        // recorded in the manifest
  std::string command;               // recorded in the manifest
  bool force = false;                // replace an existing output directory
  bool progress = true;
};

// Builds the items and writes the directory; returns the manifest it wrote. Throws Error naming
// the corpus (empty, not UTF-8, too few documents or items) or the output directory; on error
// nothing is written.
nlohmann::json build_ranking_data(const BuildOptions& options);

}  // namespace rankrl
