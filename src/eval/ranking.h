// Multiple-choice ranking by log-likelihood (the lm-evaluation-harness convention).
// For a choice c of an item with query q: context = q, continuation = " " + c, then (as the
// harness's _encode_pair does) trailing whitespace of the context moves to the front of the
// continuation, so "Question: ...\n" + " c" is split as "Question: ..." | "\n c".
// context_ids = [BOS] + encode(context);
// cont_ids = (BOS + encode(context + continuation))[len(context_ids):]. The model reads
// context_ids + cont_ids; the choice's score is the summed log-probability of cont_ids.
// acc: argmax of scores; acc_norm: argmax of score / (bytes of c); margin: log-softmax of the
// gold score among the item's scores (nats; 0 is a certain right answer). Ties go to the first.
// The context runs once per item; its keys and values are shared by every choice.
// Other kinds (data/tasks.h): a "cloze" item scores its one continuation after the query; it is
// right when every continuation token is the model's argmax (greedy match, LAMBADA), and its
// margin is the continuation's log-likelihood. A "partial" item scores the shared continuation
// after each context in `choices` (WinoGrande partial scoring); acc = acc_norm = argmax.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/tasks.h"

namespace rankrl {

class Transformer;
class Tokenizer;

// An item's token ids: context_ids (BOS first) and each choice's continuation ids.
struct EncodedItem {
  std::vector<int32_t> context;
  std::vector<std::vector<int32_t>> continuations;
};
EncodedItem encode_item(const Tokenizer& tok, const TaskItem& item);

struct ItemScores {
  std::vector<double> scores;  // summed log-likelihood per choice
  std::vector<int64_t> lengths;  // continuation tokens per choice
  bool truncated = false;      // context cut from the left to fit the model
  bool greedy = false;         // cloze: every continuation token is the model's argmax
};

// One item as the aggregates count it: its gold margin (a cloze item: its log-likelihood) and
// whether acc and acc_norm count it right (a cloze item: the greedy match, for both).
struct ItemOutcome {
  double margin = 0.0;
  bool acc = false, acc_norm = false;
};

struct RankingResult {
  int64_t items = 0;
  double acc = 0.0, acc_norm = 0.0, margin = 0.0;
  int64_t truncated = 0;
  int64_t cloze_items = 0;     // of `items`: cloze items, also counted in acc/acc_norm/margin
  double cloze_greedy = 0.0, cloze_ll = 0.0;  // their greedy-match rate and mean log-likelihood
  double seconds = 0.0;
  std::vector<ItemScores> per_item;
  std::vector<ItemOutcome> outcomes;  // per item, in item order (what bootstrap intervals resample)
};

ItemScores score_item(const Transformer& net, const Tokenizer& tok, const TaskItem& item);

// Scores as bytes and back, bit for bit (units of work gathered from MPI ranks, core/dist.h).
std::string pack_scores(const std::vector<ItemScores>& items);
std::vector<ItemScores> unpack_scores(const std::string& bytes);
ItemScores score_encoded(const Transformer& net, EncodedItem item);

// Tokens of the item's longest answer (a choice; the continuation of cloze and partial items).
int64_t longest_answer_tokens(const Tokenizer& tok, const TaskItem& item);

// Items that cannot be scored in `max_len` tokens because a choice (a cloze or partial
// continuation) alone fills the context: contexts are truncated from the left, the answers never.
// Removes them from `items`, notes each as `file:line: skipped: ...` on stderr, returns how many.
int64_t drop_items_too_long(std::vector<TaskItem>& items, const Tokenizer& tok, int64_t max_len,
                            const std::string& file);

RankingResult evaluate_ranking(const Transformer& net, const Tokenizer& tok,
                               const std::vector<TaskItem>& items, bool show_progress = true);

// acc / acc_norm / margin of precomputed scores.
RankingResult summarize_ranking(const std::vector<TaskItem>& items, std::vector<ItemScores> scores);

}  // namespace rankrl
