// Perplexity and ranking of stories260K against the independent Python reference
// (tests/reference/model_ref.py → tests/expected/stories260k_ref.json).
#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "data/tasks.h"
#include "eval/perplexity.h"
#include "eval/ranking.h"
#include "model/model.h"
#include "test_util.h"

namespace rankrl {
namespace {

using nlohmann::json;
using test::data_file;

json reference() {
  return json::parse(test::read_text(std::string(RANKRL_SOURCE_DIR) + "/tests/expected/stories260k_ref.json"));
}

Model load_stories() {
  return load_model(data_file("stories260K/stories260K.bin"), data_file("stories260K/tok512.bin"));
}

// The reference's perplexity entry for (ctx, bytes).
json ppl_case(int64_t ctx, int64_t bytes) {
  json ref = reference();  // named: iterating a member of a temporary would dangle
  for (const json& p : ref["perplexity"])
    if (p["ctx"] == ctx && p["bytes_used"] == bytes) return p;
  ADD_FAILURE() << "no reference for ctx " << ctx << " bytes " << bytes;
  return json();
}

void expect_perplexity_matches(int64_t ctx, int64_t bytes, int64_t batch) {
  Model m = load_stories();
  std::string text = read_file(data_file("tinystories/tinystories_val.txt")).substr(0, bytes);
  json ref = ppl_case(ctx, bytes);
  PerplexityResult r = perplexity(*m.net, m.tokenizer->encode_with_bos(text), ctx, batch, false);
  EXPECT_EQ(r.text_tokens, ref["n_tokens_with_bos"].get<int64_t>());
  EXPECT_EQ(r.tokens, ref["tokens_scored"].get<int64_t>());
  EXPECT_EQ(r.windows, ref["n_windows"].get<int64_t>());
  EXPECT_NEAR(r.nll, ref["mean_nll"].get<double>(), 2e-6);
  EXPECT_NEAR(r.ppl, ref["ppl"].get<double>(), 1e-5 * r.ppl);
}

TEST(Perplexity, FirstTwentyKilobytesMatchReference) {
  RANKRL_REQUIRE_DATA("stories260K/stories260K.bin");
  expect_perplexity_matches(256, 20000, 7);  // 7 does not divide the 37 full windows: tests the tail
}

TEST(Perplexity, WholeTinyStoriesFileMatchesReference) {
  RANKRL_REQUIRE_DATA("tinystories/tinystories_val.txt");
  expect_perplexity_matches(256, 794375, 64);
}

TEST(Perplexity, BatchSizeDoesNotChangeTheResult) {
  RANKRL_REQUIRE_DATA("stories260K/stories260K.bin");
  Model m = load_stories();
  std::string text = read_file(data_file("tinystories/tinystories_val.txt")).substr(0, 6000);
  std::vector<int32_t> ids = m.tokenizer->encode_with_bos(text);
  PerplexityResult a = perplexity(*m.net, ids, 64, 1, false), b = perplexity(*m.net, ids, 64, 16, false);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_NEAR(a.nll, b.nll, 1e-6);
}

void expect_ranking_matches(const std::string& name, const std::string& file,
                            const std::string& labels = "") {
  json ref = reference()["ranking"][name];
  Model m = load_stories();
  std::vector<TaskItem> items = read_tasks(data_file(file), labels, ref["first_n"].get<int64_t>());
  RankingResult r = evaluate_ranking(*m.net, *m.tokenizer, items, false);
  EXPECT_EQ(r.items, ref["items"].get<int64_t>());
  EXPECT_DOUBLE_EQ(r.acc, ref["acc"].get<double>());
  EXPECT_DOUBLE_EQ(r.acc_norm, ref["acc_norm"].get<double>());
  EXPECT_NEAR(r.margin, ref["margin"].get<double>(), 1e-4);
  EXPECT_EQ(r.truncated, ref["truncated_items"].get<int64_t>());
  for (const json& item : ref["first_items"]) {
    const ItemScores& s = r.per_item[item["index"].get<size_t>()];
    auto expected = item["scores"].get<std::vector<double>>();
    auto lengths = item["n_cont_tokens"].get<std::vector<int64_t>>();
    ASSERT_EQ(s.scores.size(), expected.size());
    for (size_t k = 0; k < expected.size(); ++k) {
      EXPECT_NEAR(s.scores[k], expected[k], 1e-3) << name << " item " << item["index"] << " choice " << k;
      EXPECT_EQ(s.lengths[k], lengths[k]);
    }
  }
}

TEST(Ranking, PiqaMatchesReference) {
  RANKRL_REQUIRE_DATA("tasks/piqa.jsonl");
  expect_ranking_matches("piqa", "tasks/piqa.jsonl");
}

TEST(Ranking, ArcEasyMatchesReference) {
  RANKRL_REQUIRE_DATA("tasks/arc_easy.jsonl");
  expect_ranking_matches("arc_easy", "tasks/arc_easy.jsonl");
}

TEST(Ranking, OriginalPiqaFormatWithLabelsFileMatchesReference) {
  RANKRL_REQUIRE_DATA("tasks/piqa_valid_original.jsonl");
  expect_ranking_matches("piqa_original", "tasks/piqa_valid_original.jsonl");
}

TEST(Ranking, MarginIsLogSoftmaxOfGold) {
  std::vector<TaskItem> items = {{"q", {"a", "bbbb"}, 1}, {"q", {"a", "b", "c"}, 0}};
  std::vector<ItemScores> scores(2);
  scores[0].scores = {-1.0, -2.0};
  scores[1].scores = {-3.0, -3.0, -1.0};
  RankingResult r = summarize_ranking(items, scores);
  double m0 = -2.0 - std::log(std::exp(-1.0) + std::exp(-2.0));
  double m1 = -3.0 - std::log(2 * std::exp(-3.0) + std::exp(-1.0));
  EXPECT_NEAR(r.margin, (m0 + m1) / 2, 1e-12);
  EXPECT_DOUBLE_EQ(r.acc, 0.0);       // item 0 argmax = 0 (gold 1); item 1 argmax = 2 (gold 0)
  EXPECT_DOUBLE_EQ(r.acc_norm, 0.5);  // item 0: -1/1 < -2/4, so the gold wins; item 1 → 2
  // The per-item outcomes (what bootstrap intervals resample) are the terms of those means.
  ASSERT_EQ(r.outcomes.size(), 2u);
  EXPECT_NEAR(r.outcomes[0].margin, m0, 1e-12);
  EXPECT_NEAR(r.outcomes[1].margin, m1, 1e-12);
  EXPECT_FALSE(r.outcomes[0].acc);
  EXPECT_TRUE(r.outcomes[0].acc_norm);
  EXPECT_FALSE(r.outcomes[1].acc);
  EXPECT_FALSE(r.outcomes[1].acc_norm);
}

TEST(Ranking, OutcomesFollowItemOrderAndKinds) {
  // A cloze item's margin is its log-likelihood and it is right when greedy; a choice item in between.
  TaskItem cloze{"q", {"x"}, 0};
  cloze.kind = TaskKind::cloze;
  std::vector<TaskItem> items = {cloze, {"q", {"a", "b"}, 0}, cloze};
  std::vector<ItemScores> scores(3);
  scores[0].scores = {-4.5};
  scores[0].greedy = true;
  scores[1].scores = {-0.5, -2.5};
  scores[2].scores = {-7.0};
  RankingResult r = summarize_ranking(items, scores);
  ASSERT_EQ(r.outcomes.size(), 3u);
  EXPECT_DOUBLE_EQ(r.outcomes[0].margin, -4.5);
  EXPECT_TRUE(r.outcomes[0].acc && r.outcomes[0].acc_norm);
  EXPECT_NEAR(r.outcomes[1].margin, -0.5 - std::log(std::exp(-0.5) + std::exp(-2.5)), 1e-12);
  EXPECT_TRUE(r.outcomes[1].acc && r.outcomes[1].acc_norm);
  EXPECT_DOUBLE_EQ(r.outcomes[2].margin, -7.0);
  EXPECT_FALSE(r.outcomes[2].acc || r.outcomes[2].acc_norm);
  EXPECT_NEAR(r.margin, (r.outcomes[0].margin + r.outcomes[1].margin + r.outcomes[2].margin) / 3, 1e-12);
  EXPECT_DOUBLE_EQ(r.acc, 2.0 / 3);
}

// PIQA line 315 has a 1,064-byte choice, longer than stories260K's 512-token context: that item
// is skipped with a file:line warning and counted, the others are scored.
TEST(EvalCli, ItemTooLongForTheContextIsSkippedWithFileAndLine) {
  RANKRL_REQUIRE_DATA("tasks/piqa_valid_original.jsonl");
  const std::string tasks = data_file("tasks/piqa_valid_original.jsonl");
  test::CliResult r = test::run_cli("eval --model " + data_file("stories260K/stories260K.bin") + " --tasks " + tasks +
                                    " --limit 320 --threads 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json out = json::parse(r.out);
  EXPECT_GE(out["skipped"].get<int64_t>(), 1);
  EXPECT_EQ(out["items"].get<int64_t>() + out["skipped"].get<int64_t>(), 320);
  EXPECT_NE(r.err.find("rankrl: warning: " + tasks + ":315: skipped: an answer is "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" tokens, the model's context is 512"), std::string::npos) << r.err;
  // stderr is a file, not a terminal: progress is plain lines, one at the end of a phase that
  // took at least a second (none for a shorter one; the margins keep the test off the boundary).
  const bool end_line = r.err.find("rankrl: ranking: " + std::to_string(out["items"].get<int64_t>()) + "/" +
                                   std::to_string(out["items"].get<int64_t>()) + " items, ") != std::string::npos;
  const double seconds = out["seconds"].get<double>();
  if (seconds > 1.3) EXPECT_TRUE(end_line) << r.err;
  if (seconds < 0.7) EXPECT_FALSE(end_line) << r.err;
  EXPECT_EQ(r.err.find('\r'), std::string::npos) << "no bar redraws in a log";
  // Independently: the item on line 315 really is longer than the context in tokens.
  Model m = load_model(data_file("stories260K/stories260K.bin"));
  std::vector<TaskItem> items = read_tasks(tasks, "", 320);
  ASSERT_EQ(items[314].line, 315);
  EncodedItem e = encode_item(*m.tokenizer, items[314]);
  size_t longest = 0;
  for (const auto& c : e.continuations) longest = std::max(longest, c.size());
  EXPECT_GE(int64_t(longest), m.config().max_seq_len);
  // data check with the model reports the same line (the uniform-schema copy of PIQA).
  const std::string piqa = data_file("tasks/piqa.jsonl");
  test::CliResult c = test::run_cli("data check " + piqa + " --model " + data_file("stories260K/stories260K.bin") + " --json");
  EXPECT_EQ(c.exit_code, 1) << c.err;
  json report = json::parse(c.out);
  EXPECT_GE(report["files"][0]["too_long"].get<int64_t>(), 1);
  bool noted = false;
  for (const json& e : report["errors"])
    noted = noted || (e["line"] == 315 && e["what"].get<std::string>().rfind("an answer is ", 0) == 0);
  EXPECT_TRUE(noted) << c.out.substr(0, 2000);
  EXPECT_NE(c.err.find(" error(s)"), std::string::npos);
}

// eval --tasks and data check apply one rule: a blank choice, or a gold choice equal to another
// up to whitespace, makes an item unusable; eval skips it (file:line warning, counted), data check
// reports the same lines as errors.
TEST(EvalCli, BlankAndDuplicateChoicesAreSkippedWhereDataCheckFlagsThem) {
  test::TempDir tmp;
  const std::string f = tmp.file("t.jsonl");
  test::write_text(f, R"({"query": "The cat sat on the", "choices": ["mat", "moon"], "gold": 0})" "\n"
                      R"({"query": "A dog", "choices": ["barks", " \t "], "gold": 0})" "\n"
                      R"({"query": "A cow", "choices": ["says  moo", "says moo ", "flies"], "gold": 0})" "\n"
                      R"({"query": "A bird", "choices": ["flies", "swims", "swims "], "gold": 0})" "\n"
                      R"({"query": "The sun is", "choices": ["hot", "cold"], "gold": 0})" "\n");
  test::CliResult r = test::run_cli("eval --model " + data_file("stories260K/stories260K.bin") + " --tasks " + f + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json out = json::parse(r.out);
  EXPECT_EQ(out["items"], 3);  // line 4 repeats a distractor only: scored
  EXPECT_EQ(out["skipped"], 2);
  EXPECT_NE(r.err.find(f + ":2: skipped: choice 1 is empty or whitespace"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(f + ":3: skipped: choices 0 and 1 are duplicates (one is gold)"), std::string::npos) << r.err;
  test::CliResult c = test::run_cli("data check " + f);
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_NE(c.out.find(f + ":2: choice 1 is empty or whitespace"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find(f + ":3: choices 0 and 1 are duplicates (one is gold)"), std::string::npos) << c.out;
  EXPECT_EQ(c.out.find(f + ":4:"), std::string::npos) << c.out;
  // The summary counts the duplicate pairs, the one it lists as an error included.
  EXPECT_NE(c.out.find("2 items with choices equal after normalisation"), std::string::npos) << c.out;
}

}  // namespace
}  // namespace rankrl
