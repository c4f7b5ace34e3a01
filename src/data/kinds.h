// Item kinds of `rankrl data build --kinds` and the word-level edits behind them.
//
// Every kind has the uniform schema ({"query", "choices", "gold"}) and is scored the same way;
// the kind is recorded in an "item_kind" field that the scorer ignores ("kind" already selects a
// scoring mode in data/tasks.h). With the default `next` alone, items carry no tag and the
// output is what it always was.
//   next      query = context, gold = the true next sentence, distractors = other sentences.
//   shuffle   query = context, gold = the next sentence, distractors = its words permuted.
//   swap      query = context, gold = the next sentence, distractors = it with a span of 2-3
//             words replaced by a span of the same length from another document's sentence.
//   replace   query = context, gold = the next sentence, distractors = it with one or two content
//             words replaced by content words of other documents (same frequency class).
//   lastword  query = context + the next sentence without its last word, choices = that word
//             and other words of the context (each with the sentence's end mark), gold = the word.
// A sentence is seen as whitespace-separated tokens ("core" words) and its end mark: the
// punctuation that closes its last token (`.`, `!"`, or a detached ` .` in WikiText), which
// every edit keeps in place so no distractor gives itself away by a misplaced full stop.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "data/rng.h"

namespace rankrl {

// The kind names in canonical order: next, shuffle, swap, replace, lastword.
const std::vector<std::string>& item_kind_names();
bool is_item_kind(std::string_view name);

struct SentenceWords {
  std::vector<std::string> core;  // whitespace tokens, the last without its end mark
  std::string end;                // closing punctuation ("" when none)
};
SentenceWords sentence_words(std::string_view sentence);
std::string join_words(const SentenceWords& words);  // core joined by single spaces, then end

// A token as leading punctuation + word + trailing punctuation ("(hill)," -> "(", "hill", "),").
struct TokenParts {
  std::string lead, word, trail;
};
TokenParts token_parts(std::string_view token);
// ASCII letters with optional inner ' or - ("don't", "well-known"): a word a cloze can ask for.
bool is_plain_word(std::string_view word);
// A plain word of at least three letters that is not a function word ("the", "she", "was").
bool is_content_word(std::string_view word);
std::string lower_ascii(std::string_view s);

// Up to `n` distinct permutations of the core words, none equal to the sentence after
// normalisation (data/hashing.h); fewer when the sentence has too few distinct orders.
std::vector<std::string> shuffled_variants(const SentenceWords& gold, size_t n, Rng& rng);
// Core words [at, at + span.size()) replaced by `span` (first letter capitalised at the start).
std::string with_span(const SentenceWords& gold, size_t at, const std::vector<std::string>& span);
// Core token `at` has its word replaced by `word`, keeping the token's punctuation.
struct WordEdit {
  size_t at;
  std::string word;
};
std::string with_words(const SentenceWords& gold, const std::vector<WordEdit>& edits);

// Longest span `swap` replaces; the shape check allows no more.
constexpr size_t kMaxSwapSpan = 3;

// For `data check`: what is wrong with the choices of an item tagged `kind` ("" when nothing):
// shuffle distractors must be permutations of the gold's words with its end mark, replace
// distractors must differ from the gold in one or two tokens, swap distractors in one span of
// at most kMaxSwapSpan tokens, lastword choices must be single words.
std::string item_kind_problem(std::string_view kind, const std::vector<std::string>& choices, int gold);

}  // namespace rankrl
