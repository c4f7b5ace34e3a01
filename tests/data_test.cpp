// Ranking datasets: build (integrity properties on a synthetic corpus and on TinyStories), check
// (each kind of error at its line), importers, and cloze/partial scoring against the independent
// reference (tests/reference/data_ref.py → tests/expected/data_ref.json).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <map>
#include <sstream>
#include <set>

#include "core/error.h"
#include "core/fs.h"
#include "data/build.h"
#include "data/check.h"
#include "data/hashing.h"
#include "data/import.h"
#include "data/tasks.h"
#include "eval/ranking.h"
#include "model/model.h"
#include "test_util.h"

namespace rankrl {
namespace {

using nlohmann::json;
using test::data_file;
using test::run_cli;
using test::TempDir;

json reference() {
  return json::parse(test::read_text(std::string(RANKRL_SOURCE_DIR) + "/tests/expected/data_ref.json"));
}

// ---------------------------------------------------------------------------------------------
// hashing

TEST(DataHashing, Sha256MatchesHashlib) {
  json ref = reference();
  ASSERT_GE(ref["sha256"].size(), 6u);
  for (const json& c : ref["sha256"])
    EXPECT_EQ(sha256_hex(c["text"].get<std::string>()), c["sha256"].get<std::string>())
        << "length " << c["text"].get<std::string>().size();
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");  // FIPS 180-2
}

TEST(DataHashing, NormalisationIgnoresCaseSpacingAndPunctuation) {
  EXPECT_EQ(normalize_text("  Hello,\t World!\n"), "hello world");
  EXPECT_EQ(normalize_text("\xE2\x80\x9C" "Don\xE2\x80\x99t go\xE2\x80\xA6\xE2\x80\x9D"), "dont go");
  EXPECT_EQ(normalized_hash("The cat sat."), normalized_hash("the  CAT sat"));
  EXPECT_NE(normalized_hash("The cat sat."), normalized_hash("The cat sat down."));
}

// ---------------------------------------------------------------------------------------------
// build on a synthetic corpus

struct Corpus {
  std::vector<std::string> docs;  // normalised text of each document
  int doc_of(const std::string& text) const {  // the one document containing `text`, else -1/-2
    std::string n = normalize_text(text);
    int found = -1;
    for (size_t d = 0; d < docs.size(); ++d)
      if (docs[d].find(n) != std::string::npos) found = found == -1 ? int(d) : -2;
    return found;
  }
};

Corpus parse_synthetic(const std::string& text) {
  Corpus c;
  size_t b = 0;
  while (b < text.size()) {
    size_t e = text.find("<|endoftext|>", b);
    if (e == std::string::npos) e = text.size();
    c.docs.push_back(normalize_text(text.substr(b, e - b)));
    b = e + 13;
  }
  return c;
}

BuildOptions synthetic_options(const std::string& corpus, const std::string& out, uint64_t seed) {
  BuildOptions o;
  o.corpora = {corpus};
  o.out = out;
  o.split_items = {10, 4, 4};
  o.context_tokens = 24;
  o.seed = seed;
  o.progress = false;
  return o;
}

TEST(DataBuild, SyntheticCorpusIntegrity) {
  json ref = reference();
  TempDir tmp;
  std::string corpus = tmp.file("corpus.txt");
  test::write_text(corpus, ref["corpus"]["text"].get<std::string>());
  Corpus docs = parse_synthetic(ref["corpus"]["text"].get<std::string>());
  ASSERT_EQ(docs.docs.size(), 12u);

  json m = build_ranking_data(synthetic_options(corpus, tmp.file("a"), 7));
  EXPECT_EQ(m["sources"][0]["sha256"], ref["corpus"]["sha256"]);
  EXPECT_EQ(m["sources"][0]["bytes"], ref["corpus"]["bytes"]);
  EXPECT_EQ(m["sources"][0]["documents"], "endoftext");
  EXPECT_EQ(m["sources"][0]["document_count"], 12);
  EXPECT_DOUBLE_EQ(m["chance"].get<double>(), 0.25);
  EXPECT_EQ(m["seed"], 7);
  EXPECT_EQ(m["counts"], json({{"rkd", 10}, {"vrkd", 4}, {"test", 4}}));
  EXPECT_EQ(json::parse(read_file(tmp.file("a/manifest.json"))), m);

  std::map<int, std::string> split_of_doc;
  for (const std::string& split : task_splits()) {
    std::vector<TaskItem> items = read_task_split(tmp.file("a"), split);
    ASSERT_EQ(int64_t(items.size()), m["counts"][split].get<int64_t>());
    std::vector<int> hist(4, 0);
    for (const TaskItem& it : items) {
      ASSERT_EQ(it.choices.size(), 4u);
      hist[it.gold]++;
      int d = docs.doc_of(it.query);
      ASSERT_GE(d, 0) << "context not from exactly one document: " << it.query;
      // gold = the true next sentence; no distractor continues the context.
      EXPECT_GE(docs.doc_of(it.query + " " + it.choices[it.gold]), 0) << it.query << " | " << it.choices[it.gold];
      int same_doc = 0;
      std::set<uint64_t> hashes;
      for (size_t k = 0; k < it.choices.size(); ++k) {
        hashes.insert(normalized_hash(it.choices[k]));
        int cd = docs.doc_of(it.choices[k]);
        ASSERT_GE(cd, 0) << it.choices[k];
        // every choice comes from a document of this split
        auto [pos, fresh] = split_of_doc.emplace(cd, split);
        EXPECT_EQ(pos->second, split) << "document " << cd << " in two splits";
        if (int(k) == it.gold) continue;
        EXPECT_EQ(docs.doc_of(it.query + " " + it.choices[k]), -1) << "distractor continues the context";
        same_doc += cd == d;
      }
      EXPECT_EQ(hashes.size(), 4u) << "duplicate choices";
      EXPECT_EQ(same_doc, 1) << "one hard distractor from the same document";
      auto [pos, fresh] = split_of_doc.emplace(d, split);
      EXPECT_EQ(pos->second, split) << "document " << d << " in two splits";
    }
    EXPECT_LE(*std::max_element(hist.begin(), hist.end()) - *std::min_element(hist.begin(), hist.end()), 1)
        << split << " gold positions unbalanced";
    EXPECT_EQ(m["splits"][split]["gold_positions"], json(hist));
  }
  CheckReport r = check_tasks(tmp.file("a"));
  EXPECT_TRUE(r.ok()) << check_report_text(r);
  for (const auto& [pair, n] : r.overlap) EXPECT_EQ(n, 0) << pair;

  // Same seed: the same bytes. Another seed: other items.
  build_ranking_data(synthetic_options(corpus, tmp.file("b"), 7));
  build_ranking_data(synthetic_options(corpus, tmp.file("c"), 8));
  bool differs = false;
  for (const std::string& split : task_splits()) {
    EXPECT_EQ(read_file(tmp.file("a/" + split + ".jsonl")), read_file(tmp.file("b/" + split + ".jsonl")));
    differs = differs || read_file(tmp.file("a/" + split + ".jsonl")) != read_file(tmp.file("c/" + split + ".jsonl"));
  }
  EXPECT_TRUE(differs);
  EXPECT_EQ(read_file(tmp.file("a/manifest.json")), read_file(tmp.file("b/manifest.json")));
}

// --max-choice-tokens: sentences longer than the cap (in words here) are neither gold nor
// distractor; the synthetic corpus has sentences of 7 to 14 words.
TEST(DataBuild, LongSentencesAreNotChoices) {
  json ref = reference();
  TempDir tmp;
  std::string corpus = tmp.file("corpus.txt");
  test::write_text(corpus, ref["corpus"]["text"].get<std::string>());
  BuildOptions o = synthetic_options(corpus, tmp.file("a"), 7);
  o.split_items = {6, 2, 2};
  o.max_choice_tokens = 11;
  json m = build_ranking_data(o);
  EXPECT_EQ(m["max_choice_tokens"], 11);
  int64_t longest = 0;
  for (const std::string& split : task_splits())
    for (const TaskItem& it : read_task_split(tmp.file("a"), split))
      for (const std::string& c : it.choices) {
        std::istringstream words(c);
        longest = std::max<int64_t>(longest, std::distance(std::istream_iterator<std::string>(words),
                                                           std::istream_iterator<std::string>()));
      }
  EXPECT_EQ(longest, 11);  // the cap binds (without it 13- and 14-word choices occur)
  o.max_choice_tokens = 0;
  o.out = tmp.file("b");
  EXPECT_THROW(build_ranking_data(o), Error);
}

// WikiText layout: " = Title = " starts an article, " = = Section = = " does not; CRLF lines.
TEST(DataBuild, WikiTextHeadingsDelimitDocuments) {
  TempDir tmp;
  std::string text;
  const char* topics[] = {"river", "castle", "comet", "violin", "glacier",
                          "harbour", "desert", "temple", "falcon", "meadow"};
  for (int a = 0; a < 10; ++a) {
    std::string t = topics[a];
    text += " = The " + t + " article = \r\n \r\n";
    for (int p = 0; p < 2; ++p) {
      text += " = = Part " + std::to_string(p) + " = = \r\n";
      for (int k = 0; k < 5; ++k)
        text += "Fact " + std::to_string(10 * p + k) + " about the " + t + " is written here in " +
                std::to_string(a + k + 3) + " plain words . ";
      text += "\r\n";
    }
  }
  test::write_text(tmp.file("wiki.raw"), text);
  BuildOptions o;
  o.corpora = {tmp.file("wiki.raw")};
  o.out = tmp.file("w");
  o.split_items = {4, 2, 2};
  o.context_tokens = 30;
  o.progress = false;
  json m = build_ranking_data(o);
  EXPECT_EQ(m["sources"][0]["documents"], "heading");
  EXPECT_EQ(m["sources"][0]["document_count"], 10);
  EXPECT_EQ(m["split_order"], "shuffle");
  EXPECT_EQ(m["splits"]["rkd"]["sentences"].get<int>() + m["splits"]["vrkd"]["sentences"].get<int>() +
                m["splits"]["test"]["sentences"].get<int>(),
            100);  // headings are not sentences
  for (const std::string& split : task_splits())
    for (const TaskItem& it : read_task_split(o.out, split)) {
      EXPECT_EQ(it.query.find("= ="), std::string::npos);
      // the context's article: all its sentences name one topic
      int topics_named = 0;
      for (const char* t : topics) topics_named += it.query.find(t) != std::string::npos;
      EXPECT_EQ(topics_named, 1) << it.query;
    }
}

TEST(DataBuild, BadInputWritesNothing) {
  json ref = reference();
  TempDir tmp;
  test::write_text(tmp.file("empty.txt"), " \n\n \n");
  test::write_text(tmp.file("latin1.txt"), "caf\xE9 au lait. It was good. Very good.\n");
  test::write_text(tmp.file("corpus.txt"), ref["corpus"]["text"].get<std::string>());
  struct Case {
    std::string args, file, what;
  } cases[] = {
      {"--corpus " + tmp.file("empty.txt"), tmp.file("empty.txt"), "empty corpus"},
      {"--corpus " + tmp.file("latin1.txt"), tmp.file("latin1.txt"), "not valid UTF-8"},
      {"--corpus " + tmp.file("corpus.txt") + " --items 500", tmp.file("corpus.txt"), "too few documents"},
      {"--corpus " + tmp.file("missing.txt"), tmp.file("missing.txt"), ""},
  };
  for (const Case& c : cases) {
    test::CliResult r = run_cli("data build " + c.args + " --out " + tmp.file("out"));
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("rankrl: error: " + c.file + ": " + c.what, 0), 0u) << r.err;
    EXPECT_TRUE(r.out.empty());
    EXPECT_FALSE(std::filesystem::exists(tmp.file("out")));
    for (const auto& e : std::filesystem::directory_iterator(tmp.path()))
      EXPECT_EQ(e.path().string().find("out.tmp"), std::string::npos) << "leftover " << e.path();
  }
  // An existing output is kept unless --force.
  std::filesystem::create_directories(tmp.file("keep"));
  test::CliResult r = run_cli("data build --corpus " + tmp.file("corpus.txt") + " --items 10 --out " + tmp.file("keep"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--force"), std::string::npos);
  r = run_cli("data build --corpus " + tmp.file("corpus.txt") + " --items 10 --out " + tmp.file("keep") + " --force -q");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(file_exists(tmp.file("keep/test.jsonl")));
  // Usage errors exit 2.
  r = run_cli("data build --corpus " + tmp.file("corpus.txt") + " --choices 1 --out " + tmp.file("x"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = run_cli("data build --corpus " + tmp.file("corpus.txt") + " --split 0.5,0.5 --out " + tmp.file("x"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
}

// The default TinyStories set (word lengths; the token-length set is in the README).
TEST(DataBuild, TinyStoriesCountsAndLengths) {
  RANKRL_REQUIRE_DATA("tinystories/tinystories_val.txt");
  TempDir tmp;
  test::CliResult r = run_cli("data build --corpus " + data_file("tinystories/tinystories_val.txt") + " --out " +
                              tmp.file("ts") + " --items 300 --seed 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json m = json::parse(r.out);
  EXPECT_EQ(m["sources"][0]["sha256"], "5fc1fb0113df62b567fb271806cd645ce8d75f59c58ca0b764c03d3b6ff34ca6");
  EXPECT_EQ(m["sources"][0]["bytes"], 794375);
  EXPECT_EQ(m["sources"][0]["documents"], "blank");
  EXPECT_EQ(m["split_order"], "file");
  EXPECT_EQ(m["counts"], json({{"rkd", 180}, {"vrkd", 60}, {"test", 60}}));
  for (const std::string& split : task_splits()) {
    const json& s = m["splits"][split];
    EXPECT_GE(s["context_length"]["min"].get<int64_t>(), 32) << split;  // context_tokens / 2
    EXPECT_LE(s["context_length"]["mean"].get<double>(), 64) << split;
    // Distractors are matched in length: their mean within 15% of the golds'.
    double gold = s["gold_bytes"]["mean"], other = s["distractor_bytes"]["mean"];
    EXPECT_NEAR(other / gold, 1.0, 0.15) << split;
  }
  CheckReport rep = check_tasks(tmp.file("ts"));
  EXPECT_TRUE(rep.ok()) << check_report_text(rep);
  r = run_cli("data check " + tmp.file("ts") + " --json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["ok"], true);
}

// ---------------------------------------------------------------------------------------------
// check

TEST(DataCheck, ReportsEachErrorAtItsLine) {
  TempDir tmp;
  std::string f = tmp.file("bad.jsonl");
  test::write_text(f,
                   R"({"query": "Q1", "choices": ["A cat.", "A dog."], "gold": 0})" "\n"   // 1 ok
                   R"({"query": "Q2", "choices": ["x", "y"], "gold": 0)" "\n"              // 2 malformed
                   R"({"query": "Q3", "choices": ["x", "y"], "gold": 2})" "\n"             // 3 gold range
                   R"({"query": "Q4", "choices": ["x"], "gold": 0})" "\n"                  // 4 one choice
                   "\n"                                                                     // 5 blank: skipped
                   R"({"query": "Q6", "choices": ["x", "  "], "gold": 0})" "\n"            // 6 empty choice
                   R"({"query": "Q7", "choices": ["A  cat.", "A cat. "], "gold": 1})" "\n"  // 7 duplicate choices
                   R"({"query": "q1", "choices": ["a cat", "A dog!"], "gold": 1})" "\n"    // 8 duplicate of 1
                   R"({"choices": ["x", "y"], "gold": 0})" "\n"                            // 9 no query
                   R"({"query": "Q10", "choices": ["x", "y"], "gold": "0"})" "\n"        // 10 gold type
                   R"({"query": "Q11", "choices": ["100% Rr", "100% rr"], "gold": 0})" "\n"); // 11 ok: case matters
  CheckReport r = check_tasks(f);
  std::map<int64_t, std::string> got;
  for (const CheckIssue& e : r.errors) got[e.line] += e.what + ";";
  std::map<int64_t, std::string> want = {{2, "malformed JSON"}, {3, "out of range"}, {4, "fewer than two"},
                                         {6, "empty or whitespace"}, {7, "duplicates"},
                                         {8, "duplicate of the item on line 1"}, {9, "'query'"}, {10, "'gold'"}};
  EXPECT_EQ(got.size(), want.size());
  for (const auto& [line, what] : want) EXPECT_NE(got[line].find(what), std::string::npos) << line << ": " << got[line];
  EXPECT_EQ(r.files[0].items, 10);  // the blank line is not an item
  EXPECT_EQ(r.files[0].near_duplicate_choices, 2);  // line 11, and line 7's exact duplicates

  test::CliResult cli = run_cli("data check " + f);
  EXPECT_EQ(cli.exit_code, 1);
  EXPECT_NE(cli.out.find(f + ":3: gold 2 out of range"), std::string::npos) << cli.out;
  EXPECT_NE(cli.out.find(f + ":8: duplicate of the item on line 1"), std::string::npos) << cli.out;
  EXPECT_EQ(cli.err, "rankrl: error: " + f + ": 8 error(s), first " + f + ":2: malformed JSON\n");
}

TEST(DataCheck, CrossSplitOverlapAndManifest) {
  TempDir tmp;
  auto line = [](const std::string& q, int gold) {
    return json({{"query", q}, {"choices", {"Yes.", "No.", "Maybe."}}, {"gold", gold}}).dump() + "\n";
  };
  test::write_text(tmp.file("rkd.jsonl"), line("The cat sat.", 0) + line("A dog ran.", 1));
  test::write_text(tmp.file("vrkd.jsonl"), line("Birds fly.", 2));
  test::write_text(tmp.file("test.jsonl"), line("Fish swim.", 0) + line("the CAT sat", 1));
  CheckReport r = check_tasks(tmp.path());
  ASSERT_EQ(r.errors.size(), 1u) << check_report_text(r);
  EXPECT_EQ(r.errors[0].where(), "test.jsonl:2");
  EXPECT_EQ(r.errors[0].what, "context also in rkd.jsonl:1");
  EXPECT_EQ(r.overlap.at("rkd/test"), 1);
  EXPECT_EQ(r.overlap.at("rkd/vrkd"), 0);
  EXPECT_EQ(r.files[0].gold_positions, std::vector<int64_t>({1, 1}));
  EXPECT_EQ(r.files[1].gold_positions, std::vector<int64_t>({0, 0, 1}));

  test::write_text(tmp.file("test.jsonl"), line("Fish swim.", 0));
  test::write_text(tmp.file("manifest.json"), R"({"counts": {"rkd": 2, "vrkd": 1, "test": 3}})");
  r = check_tasks(tmp.path());
  ASSERT_EQ(r.errors.size(), 1u) << check_report_text(r);
  EXPECT_EQ(r.errors[0].file, "manifest.json");
  test::write_text(tmp.file("manifest.json"), R"({"counts": {"rkd": 2, "vrkd": 1, "test": 1}})");
  EXPECT_TRUE(check_tasks(tmp.path()).ok());
  std::filesystem::remove(tmp.file("vrkd.jsonl"));
  r = check_tasks(tmp.path());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].what, "missing split file");
}

// ---------------------------------------------------------------------------------------------
// import

TEST(DataImport, HellaSwagSixLinesPerTask) {
  TempDir tmp;
  test::write_text(tmp.file("hs.txt"),
                   "Baking: A man mixes flour.\n2\nhe sings.\nhe jumps.\nhe adds eggs.\nhe sleeps.\n"
                   "Dogs: A dog runs.\r\n0\r\nit barks.\r\nit flies.\r\nit swims.\r\nit reads.\r\n");
  std::vector<TaskItem> items = import_tasks("hellaswag", tmp.file("hs.txt"));
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].query, "Baking: A man mixes flour.");
  EXPECT_EQ(items[0].gold, 2);
  EXPECT_EQ(items[0].choices, std::vector<std::string>({"he sings.", "he jumps.", "he adds eggs.", "he sleeps."}));
  EXPECT_EQ(items[1].query, "Dogs: A dog runs.");
  EXPECT_EQ(items[1].choices[3], "it reads.");

  test::write_text(tmp.file("seven.txt"), "c\n0\na\nb\nc\nd\nextra\n");
  test::write_text(tmp.file("gold.txt"), "c\n0\na\nb\nc\nd\nc2\n4\na\nb\nc\nd\n");
  test::CliResult r = run_cli("data import --format hellaswag --in " + tmp.file("seven.txt") + " --out " + tmp.file("o.jsonl"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "rankrl: error: " + tmp.file("seven.txt") + ": 7 lines, not a multiple of 6 (context, gold, 4 endings per task)\n");
  r = run_cli("data import --format hellaswag --in " + tmp.file("gold.txt") + " --out " + tmp.file("o.jsonl"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "rankrl: error: " + tmp.file("gold.txt") + ": line 8: gold index must be 0, 1, 2 or 3, got '4'\n");
  EXPECT_FALSE(file_exists(tmp.file("o.jsonl")));

  r = run_cli("data import --format hellaswag --in " + tmp.file("hs.txt") + " --out " + tmp.file("o.jsonl") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["items"], 2);
  std::vector<TaskItem> back = read_tasks(tmp.file("o.jsonl"));
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1].choices, items[1].choices);
  EXPECT_EQ(back[0].gold, 2);
}

TEST(DataImport, ClozeAndPartialRoundTrip) {
  json ref = reference();
  TempDir tmp;
  std::string cloze, partial;
  for (const json& it : ref["cloze"]["items"]) cloze += it["line"].dump() + "\n";
  for (const json& it : ref["partial"]["items"]) partial += it["line"].dump() + "\n";
  test::write_text(tmp.file("cloze.jsonl"), cloze);
  test::write_text(tmp.file("partial.jsonl"), partial);
  std::vector<TaskItem> c = import_tasks("cloze", tmp.file("cloze.jsonl"));
  ASSERT_EQ(c.size(), ref["cloze"]["items"].size());
  EXPECT_EQ(c[0].kind, TaskKind::cloze);
  EXPECT_EQ(c[0].query, "Once upon a time, there was a little girl named");
  EXPECT_EQ(c[0].choices, std::vector<std::string>({"Lily"}));  // the joining space is the scorer's
  std::vector<TaskItem> p = import_tasks("partial", tmp.file("partial.jsonl"));
  ASSERT_EQ(p.size(), ref["partial"]["items"].size());
  EXPECT_EQ(p[0].kind, TaskKind::partial);
  EXPECT_EQ(p[0].gold, 1);  // answer "2"
  EXPECT_EQ(p[0].continuation, "was too high.");
  EXPECT_EQ(p[4].choices.size(), 3u);
  // Written and read back through the uniform schema.
  write_tasks(tmp.file("c.jsonl"), c);
  write_tasks(tmp.file("p.jsonl"), p);
  std::vector<TaskItem> c2 = read_tasks(tmp.file("c.jsonl")), p2 = read_tasks(tmp.file("p.jsonl"));
  ASSERT_EQ(c2.size(), c.size());
  ASSERT_EQ(p2.size(), p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    EXPECT_EQ(p2[i].kind, TaskKind::partial);
    EXPECT_EQ(p2[i].choices, p[i].choices);
    EXPECT_EQ(p2[i].continuation, p[i].continuation);
    EXPECT_EQ(p2[i].gold, p[i].gold);
  }
  EXPECT_EQ(c2[5].choices[0], "milk and bread");
  EXPECT_TRUE(check_tasks(tmp.file("p.jsonl")).ok());
  EXPECT_TRUE(check_tasks(tmp.file("c.jsonl")).ok());

  // Malformed line N names the file and the line; nothing is written.
  test::write_text(tmp.file("bad.jsonl"), cloze + "{\"context\": \"x\"\n");
  test::CliResult r = run_cli("data import --format cloze --in " + tmp.file("bad.jsonl") + " --out " + tmp.file("x.jsonl"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "rankrl: error: " + tmp.file("bad.jsonl") + ": line 8: malformed JSON\n");
  test::write_text(tmp.file("bad2.jsonl"), R"({"context_options": ["a b", "c d"], "continuation": "e", "answer": "3"})" "\n");
  r = run_cli("data import --format partial --in " + tmp.file("bad2.jsonl") + " --out " + tmp.file("x.jsonl"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "rankrl: error: " + tmp.file("bad2.jsonl") + ": line 1: gold index 2 out of range\n");
  EXPECT_FALSE(file_exists(tmp.file("x.jsonl")));
}

TEST(DataImport, PiqaMatchesTheTaskReader) {
  RANKRL_REQUIRE_DATA("tasks/piqa_valid_original.jsonl");
  TempDir tmp;
  std::string in = data_file("tasks/piqa_valid_original.jsonl");
  test::CliResult r = run_cli("data import --format piqa --in " + in + " --out " + tmp.file("piqa.jsonl") + " -q");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<TaskItem> a = read_tasks(in), b = read_tasks(tmp.file("piqa.jsonl"));
  ASSERT_EQ(a.size(), 1838u);
  ASSERT_EQ(b.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(b[i].query, a[i].query);
    EXPECT_EQ(b[i].choices, a[i].choices);
    EXPECT_EQ(b[i].gold, a[i].gold);
  }
  // A labels file of the wrong length: error naming it, nothing written.
  test::write_text(tmp.file("labels.lst"), "0\n1\n");
  r = run_cli("data import --format piqa --in " + in + " --labels " + tmp.file("labels.lst") + " --out " + tmp.file("p2.jsonl"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "rankrl: error: " + tmp.file("labels.lst") + ": 2 labels for 1838 items\n");
  EXPECT_FALSE(file_exists(tmp.file("p2.jsonl")));
  // Not PIQA.
  r = run_cli("data import --format piqa --in " + data_file("tasks/piqa.jsonl") + " --out " + tmp.file("p3.jsonl"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not original PIQA"), std::string::npos) << r.err;
}

// ---------------------------------------------------------------------------------------------
// scoring of the new kinds against the reference

Model load_stories() {
  return load_model(data_file("stories260K/stories260K.bin"), data_file("stories260K/tok512.bin"));
}

TEST(DataScoring, ClozeMatchesReference) {
  RANKRL_REQUIRE_DATA("stories260K/stories260K.bin");
  json ref = reference();
  TempDir tmp;
  std::string lines;
  for (const json& it : ref["cloze"]["items"]) lines += it["line"].dump() + "\n";
  test::write_text(tmp.file("cloze.jsonl"), lines);
  Model m = load_stories();
  RankingResult r = evaluate_ranking(*m.net, *m.tokenizer, import_tasks("cloze", tmp.file("cloze.jsonl")), false);
  ASSERT_EQ(r.cloze_items, int64_t(ref["cloze"]["items"].size()));
  for (size_t i = 0; i < r.per_item.size(); ++i) {
    const json& e = ref["cloze"]["items"][i];
    EXPECT_NEAR(r.per_item[i].scores[0], e["ll"].get<double>(), 1e-4) << i;
    EXPECT_EQ(r.per_item[i].lengths[0], e["n_tokens"].get<int64_t>()) << i;
    EXPECT_EQ(r.per_item[i].greedy, e["greedy"].get<bool>()) << i;
  }
  EXPECT_DOUBLE_EQ(r.cloze_greedy, ref["cloze"]["greedy_acc"].get<double>());
  EXPECT_DOUBLE_EQ(r.acc, ref["cloze"]["greedy_acc"].get<double>());
  EXPECT_NEAR(r.cloze_ll, ref["cloze"]["mean_ll"].get<double>(), 1e-4);
  EXPECT_NEAR(r.margin, ref["cloze"]["mean_ll"].get<double>(), 1e-4);
}

TEST(DataScoring, PartialMatchesReference) {
  RANKRL_REQUIRE_DATA("stories260K/stories260K.bin");
  json ref = reference();
  TempDir tmp;
  std::string lines;
  for (const json& it : ref["partial"]["items"]) lines += it["line"].dump() + "\n";
  test::write_text(tmp.file("partial.jsonl"), lines);
  Model m = load_stories();
  RankingResult r = evaluate_ranking(*m.net, *m.tokenizer, import_tasks("partial", tmp.file("partial.jsonl")), false);
  ASSERT_EQ(r.items, int64_t(ref["partial"]["items"].size()));
  EXPECT_EQ(r.cloze_items, 0);
  for (size_t i = 0; i < r.per_item.size(); ++i) {
    auto want = ref["partial"]["items"][i]["scores"].get<std::vector<double>>();
    ASSERT_EQ(r.per_item[i].scores.size(), want.size());
    for (size_t k = 0; k < want.size(); ++k) EXPECT_NEAR(r.per_item[i].scores[k], want[k], 1e-4) << i << "/" << k;
  }
  EXPECT_DOUBLE_EQ(r.acc, ref["partial"]["acc"].get<double>());
  EXPECT_DOUBLE_EQ(r.acc_norm, r.acc);  // one shared continuation
  EXPECT_NEAR(r.margin, ref["partial"]["margin"].get<double>(), 1e-4);
}

TEST(DataEval, EvalTakesASplitDirectory) {
  RANKRL_REQUIRE_DATA("stories260K/stories260K.bin");
  json ref = reference();
  TempDir tmp;
  test::write_text(tmp.file("corpus.txt"), ref["corpus"]["text"].get<std::string>());
  build_ranking_data(synthetic_options(tmp.file("corpus.txt"), tmp.file("d"), 3));
  EXPECT_EQ(read_task_split(tmp.file("d")).size(), 4u);  // test by default
  EXPECT_EQ(read_task_split(tmp.file("d"), "rkd").size(), 10u);
  EXPECT_THROW(read_task_split(tmp.file("d"), "train"), Error);
  EXPECT_THROW(read_task_split(tmp.file("d/rkd.jsonl"), "rkd"), Error);
  std::string model = data_file("stories260K/stories260K.bin");
  test::CliResult r = run_cli("eval --model " + model + " --tasks " + tmp.file("d") + " --split rkd --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["items"], 10);
  EXPECT_EQ(j["split"], "rkd");
  // The same numbers as the library on the same file.
  Model m = load_stories();
  RankingResult lib = evaluate_ranking(*m.net, *m.tokenizer, read_task_split(tmp.file("d"), "rkd"), false);
  EXPECT_DOUBLE_EQ(j["acc"].get<double>(), lib.acc);
  EXPECT_NEAR(j["margin"].get<double>(), lib.margin, 1e-9);
  r = run_cli("eval --model " + model + " --tasks " + tmp.file("d/rkd.jsonl") + " --split rkd");
  EXPECT_EQ(r.exit_code, 2) << r.err;
}

}  // namespace
}  // namespace rankrl
