// Ranking datasets: build (integrity properties on a synthetic corpus and on TinyStories; the
// item kinds of --kinds, each with its own properties, and that stories260K ranks them), check
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
#include "data/kinds.h"
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
// item kinds (--kinds)

std::vector<std::string> words_of(const std::string& s) {
  std::istringstream in(s);
  return {std::istream_iterator<std::string>(in), std::istream_iterator<std::string>()};
}

// `choice` without the end mark `end`; the test's own reading of "keeps the end mark".
std::string without_end(const std::string& choice, const std::string& end) {
  EXPECT_TRUE(choice.ends_with(end)) << choice << " | " << end;
  return choice.substr(0, choice.size() - std::min(end.size(), choice.size()));
}

// The sentence-closing punctuation of `s` (trailing . ! ? " ' only: the synthetic text's marks).
std::string end_mark(const std::string& s) {
  size_t e = s.find_last_not_of(".!?\"'");
  return s.substr(e + 1);
}

TEST(DataKinds, SentenceWordsAndEdits) {
  SentenceWords w = sentence_words("She felt  very sad.");
  EXPECT_EQ(w.core, std::vector<std::string>({"She", "felt", "very", "sad"}));
  EXPECT_EQ(w.end, ".");
  EXPECT_EQ(join_words(w), "She felt very sad.");
  EXPECT_EQ(sentence_words("\"Help me!\"").end, "!\"");
  EXPECT_EQ(sentence_words("Why, Roxy\xE2\x80\x9D?").end, "\xE2\x80\x9D?");
  SentenceWords wiki = sentence_words("It has 5 plain words .");
  EXPECT_EQ(wiki.core.size(), 5u);
  EXPECT_EQ(wiki.end, " .");
  EXPECT_EQ(join_words(wiki), "It has 5 plain words .");

  TokenParts p = token_parts("(hill),");
  EXPECT_EQ(p.lead, "(");
  EXPECT_EQ(p.word, "hill");
  EXPECT_EQ(p.trail, "),");
  EXPECT_TRUE(is_plain_word("don't"));
  EXPECT_FALSE(is_plain_word("2nd"));
  EXPECT_FALSE(is_plain_word("-x"));
  EXPECT_TRUE(is_content_word("garden"));
  EXPECT_FALSE(is_content_word("the"));
  EXPECT_FALSE(is_content_word("She"));
  EXPECT_FALSE(is_content_word("go"));  // too short

  SentenceWords g = sentence_words("Anna saw the (red) kite.");
  EXPECT_EQ(with_words(g, {{0, "ben"}, {3, "blue"}}), "Ben saw the (blue) kite.");
  EXPECT_EQ(with_span(g, 0, {"a", "dog"}), "A dog the (red) kite.");
  EXPECT_EQ(with_span(g, 2, {"my", "old"}), "Anna saw my old kite.");

  // Every permutation keeps the multiset of words and the end mark, and none reads as the
  // original; a 3-word sentence has exactly 5 other orders, a sentence of one repeated word none.
  Rng rng(3);
  std::vector<std::string> v = shuffled_variants(sentence_words("Ducks swim well."), 8, rng);
  EXPECT_EQ(v.size(), 5u);
  std::set<uint64_t> seen = {normalized_hash("Ducks swim well.")};
  for (const std::string& s : v) {
    std::vector<std::string> a = words_of(without_end(s, ".")), b = {"Ducks", "swim", "well"};
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    EXPECT_EQ(a, b) << s;
    EXPECT_TRUE(seen.insert(normalized_hash(s)).second) << s;
  }
  EXPECT_TRUE(shuffled_variants(sentence_words("Go go go!"), 3, rng).empty());

  // The shape checks data check runs on tagged items.
  EXPECT_EQ(item_kind_problem("shuffle", {"A b c.", "c b A."}, 0), "");
  EXPECT_NE(item_kind_problem("shuffle", {"A b c.", "c d A."}, 0).find("not a permutation"), std::string::npos);
  EXPECT_NE(item_kind_problem("shuffle", {"A b c.", "c b A!"}, 0).find("end mark"), std::string::npos);
  EXPECT_EQ(item_kind_problem("replace", {"We saw a big red kite.", "We saw a big blue kite."}, 0), "");
  EXPECT_NE(item_kind_problem("replace", {"We saw a big red kite.", "We hid a small blue kite."}, 0).find("3 words"),
            std::string::npos);
  EXPECT_EQ(item_kind_problem("swap", {"We saw a big red kite.", "We saw my old red kite."}, 0), "");
  EXPECT_NE(item_kind_problem("swap", {"We saw a big red kite.", "They saw a big red boat."}, 0).find("one span"),
            std::string::npos);
  EXPECT_NE(item_kind_problem("lastword", {"kite.", "red kite."}, 0).find("not one word"), std::string::npos);
  EXPECT_NE(item_kind_problem("nextword", {"a", "b"}, 0).find("unknown item_kind"), std::string::npos);
}

// 40 short stories over shared vocabulary, so that every kind has material: names are unique to a
// story, objects, places, animals and colours recur across stories.
std::string kinds_corpus() {
  const char* names[] = {"Anna", "Ben", "Cara", "Dan", "Eva", "Finn", "Gus", "Hana", "Ivan", "Jade",
                         "Kurt", "Lena", "Milo", "Nora", "Otto", "Pia", "Quinn", "Rosa", "Sami", "Tess",
                         "Umar", "Vera", "Wade", "Xena", "Yuri", "Zoe", "Arlo", "Bea", "Cole", "Dina",
                         "Emil", "Fay", "Glen", "Hugo", "Iris", "Joel", "Kira", "Luca", "Maya", "Ned"};
  const char* objects[] = {"kite", "drum", "lamp", "boat", "ball", "hat", "book"};
  const char* places[] = {"garden", "harbour", "market", "forest", "meadow"};
  const char* animals[] = {"puppy", "kitten", "parrot", "goat"};
  const char* colours[] = {"red", "green", "yellow", "purple", "orange", "silver"};
  std::string text;
  for (int i = 0; i < 40; ++i) {
    std::string n = names[i], m = names[(i + 7) % 40], o = objects[i % 7], p = places[i % 5],
                a = animals[i % 4], c = colours[i % 6], c2 = colours[(i + 2) % 6];
    text += n + " found a " + c + " " + o + " near the " + p + ". The " + o + " was heavy and " + n +
            " carried it home slowly. At home " + n + " showed the " + o + " to a sleepy " + a + ".\n\n" +
            "The " + a + " sniffed the " + o + " and wagged its tail " + std::to_string(i + 2) + " times. Later " +
            n + " painted the " + o + " with bright " + c2 + " paint. Everyone in the " + p +
            " admired the shiny " + o + " of " + n + ". " + n + " kept the " + o + " beside the window for " +
            std::to_string(i + 3) + " days. Then " + n + " gave the " + o + " to a friend named " + m + ".\n" +
            "<|endoftext|>\n";
  }
  return text;
}

BuildOptions kinds_options(const std::string& corpus, const std::string& out, uint64_t seed) {
  BuildOptions o = synthetic_options(corpus, out, seed);
  o.split_items = {40, 20, 20};
  o.kinds = {"next", "shuffle", "swap", "replace", "lastword"};
  return o;
}

TEST(DataKinds, EachKindHasItsProperties) {
  TempDir tmp;
  std::string corpus = tmp.file("stories.txt");
  std::string text = kinds_corpus();
  test::write_text(corpus, text);
  Corpus docs = parse_synthetic(text);
  docs.docs.pop_back();  // the empty tail after the last marker
  ASSERT_EQ(docs.docs.size(), 40u);
  json m = build_ranking_data(kinds_options(corpus, tmp.file("a"), 5));
  EXPECT_EQ(m["kinds"], json({"next", "shuffle", "swap", "replace", "lastword"}));

  // Documents of each split, from where every item's query comes (a split's items only).
  std::map<int, std::string> split_of_doc;
  std::map<std::string, std::vector<TaskItem>> items;
  for (const std::string& split : task_splits()) {
    items[split] = read_task_split(tmp.file("a"), split);
    for (const TaskItem& it : items[split]) {
      int d = docs.doc_of(it.query);
      ASSERT_GE(d, 0) << it.query;
      auto [pos, fresh] = split_of_doc.emplace(d, split);
      EXPECT_EQ(pos->second, split) << "document " << d << " in two splits";
    }
  }
  // A word or span of the split's text outside document `d`: in another document that no other
  // split uses.
  auto elsewhere_in_split = [&](const std::string& text, int d, const std::string& split) {
    std::string n = " " + normalize_text(text) + " ";
    for (size_t e = 0; e < docs.docs.size(); ++e) {
      if (int(e) == d || (split_of_doc.count(e) && split_of_doc[e] != split)) continue;
      if ((" " + docs.docs[e] + " ").find(n) != std::string::npos) return true;
    }
    return false;
  };

  for (const std::string& split : task_splits()) {
    int per_kind = m["counts"][split].get<int>() / 5;
    std::map<std::string, std::vector<int64_t>> gold_hist;
    for (const TaskItem& it : items[split]) {
      SCOPED_TRACE(it.item_kind + ": " + it.query);
      ASSERT_EQ(it.choices.size(), 4u);
      std::vector<int64_t>& hist = gold_hist[it.item_kind];
      hist.resize(4, 0);
      hist[it.gold]++;
      std::set<uint64_t> distinct;
      for (const std::string& c : it.choices) distinct.insert(normalized_hash(c));
      EXPECT_EQ(distinct.size(), 4u) << "choices equal after normalisation";
      int d = docs.doc_of(it.query);
      const std::string& gold = it.choices[it.gold];
      // The gold is what the document really says next (for lastword: the sentence's last word).
      EXPECT_GE(docs.doc_of(it.query + " " + gold), 0) << gold;
      std::string end = end_mark(gold);
      std::vector<std::string> g = words_of(without_end(gold, end));
      for (size_t k = 0; k < it.choices.size(); ++k) {
        if (int(k) == it.gold) continue;
        const std::string& c = it.choices[k];
        EXPECT_EQ(docs.doc_of(it.query + " " + c), -1) << "distractor continues the context: " << c;
        if (it.item_kind == "next") continue;
        std::vector<std::string> w = words_of(without_end(c, end));
        if (it.item_kind == "shuffle") {
          std::vector<std::string> a = w, b = g;
          std::sort(a.begin(), a.end());
          std::sort(b.begin(), b.end());
          EXPECT_EQ(a, b) << c;
          continue;
        }
        if (it.item_kind == "lastword") {
          ASSERT_EQ(w.size(), 1u) << c;
          std::string query_words = " " + normalize_text(it.query) + " ";
          EXPECT_NE(query_words.find(" " + normalize_text(w[0]) + " "), std::string::npos) << c << " not in the passage";
          EXPECT_TRUE(is_content_word(w[0])) << c;
          continue;
        }
        ASSERT_EQ(w.size(), g.size()) << c;
        std::vector<size_t> diff;
        for (size_t i = 0; i < w.size(); ++i)
          if (normalize_text(w[i]) != normalize_text(g[i])) diff.push_back(i);
        ASSERT_FALSE(diff.empty()) << c;
        if (it.item_kind == "replace") {
          // exactly the replaced words differ: one or two content words, by words of other documents
          EXPECT_LE(diff.size(), 2u) << c;
          for (size_t i : diff) {
            EXPECT_TRUE(is_content_word(token_parts(g[i]).word)) << g[i];
            EXPECT_TRUE(elsewhere_in_split(token_parts(w[i]).word, d, split)) << w[i];
          }
        } else {  // swap: one span of at most three words, found in another document of the split
          ASSERT_EQ(it.item_kind, "swap");
          EXPECT_LT(diff.back() - diff.front(), 3u) << c;
          std::string span;
          for (size_t i = diff.front(); i <= diff.back(); ++i) span += w[i] + " ";
          EXPECT_TRUE(elsewhere_in_split(span, d, split)) << span;
        }
      }
    }
    // Equal shares per kind, each with balanced gold positions (4 choices: exactly equal here).
    ASSERT_EQ(gold_hist.size(), 5u) << split;
    for (const auto& [kind, hist] : gold_hist) {
      std::vector<int64_t> want(4, per_kind / 4);
      EXPECT_EQ(hist, want) << split << " " << kind;
      EXPECT_EQ(m["splits"][split]["kinds"][kind]["items"], per_kind);
      EXPECT_EQ(m["splits"][split]["kinds"][kind]["gold_positions"], json(want));
    }
  }
  CheckReport r = check_tasks(tmp.file("a"));
  EXPECT_TRUE(r.ok()) << check_report_text(r);
  ASSERT_EQ(r.files.size(), 3u);
  EXPECT_EQ(r.files[0].item_kinds.size(), 5u);
  EXPECT_EQ(r.files[0].item_kinds["swap"].items, 8);
  EXPECT_EQ(r.files[0].item_kinds["swap"].gold_positions, std::vector<int64_t>({2, 2, 2, 2}));

  // Same seed: the same bytes; another seed: other items.
  build_ranking_data(kinds_options(corpus, tmp.file("b"), 5));
  build_ranking_data(kinds_options(corpus, tmp.file("c"), 6));
  for (const char* f : {"rkd.jsonl", "vrkd.jsonl", "test.jsonl", "manifest.json"})
    EXPECT_EQ(read_file(tmp.file("a/") + f), read_file(tmp.file("b/") + f)) << f;
  EXPECT_NE(read_file(tmp.file("a/rkd.jsonl")), read_file(tmp.file("c/rkd.jsonl")));
}

// The default (next alone) writes what rankrl wrote before --kinds existed: sha256 of the files
// the previous build (commit 4f622b5) wrote for this command.
TEST(DataKinds, DefaultOutputUnchanged) {
  json ref = reference();
  TempDir tmp;
  std::string corpus = tmp.file("corpus.txt");
  test::write_text(corpus, ref["corpus"]["text"].get<std::string>());
  for (const std::string kinds : {"", " --kinds next"}) {
    std::string out = tmp.file(kinds.empty() ? "a" : "b");
    test::CliResult r = run_cli("data build --corpus " + corpus + " --out " + out +
                                " --split-items 10,4,4 --context-tokens 24 --seed 7 -q" + kinds);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(sha256_hex(read_file(out + "/rkd.jsonl")), "4556f715abff08d0d754b5395cd1c65bb1698592d5d0af8e40261ac9c8b266e3");
    EXPECT_EQ(sha256_hex(read_file(out + "/vrkd.jsonl")), "66772e9a967dcdba5f23269e0f3d6e78f7349e1a486474c720ecdf120b841e32");
    EXPECT_EQ(sha256_hex(read_file(out + "/test.jsonl")), "9ea7c3a58295456dd88c841f74f42bd7ea27e3e5bbde1f8839118e6c14a967da");
    json m = json::parse(read_file(out + "/manifest.json"));
    EXPECT_EQ(m["kinds"], json({"next"}));
    EXPECT_EQ(m["splits"]["rkd"]["kinds"]["next"]["items"], 10);
  }
  // Usage errors: an unknown or repeated kind.
  test::CliResult r = run_cli("data build --corpus " + corpus + " --out " + tmp.file("x") + " --kinds next,cloze");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("unknown item kind 'cloze'"), std::string::npos) << r.err;
  r = run_cli("data build --corpus " + corpus + " --out " + tmp.file("x") + " --kinds swap,swap");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("x")));
}

TEST(DataKinds, CheckFlagsProblemsPerKind) {
  TempDir tmp;
  auto line = [](const std::string& kind, const std::string& q, std::vector<std::string> choices, int gold) {
    return json({{"query", q}, {"choices", choices}, {"gold", gold}, {"item_kind", kind}}).dump() + "\n";
  };
  test::write_text(tmp.file("rkd.jsonl"),
                   line("shuffle", "Q1", {"Ann saw a kite.", "kite a saw Ann.", "a kite saw Ann."}, 0) +  // 1 ok
                   line("swap", "Q2", {"We saw a big red kite.", "We saw a big, red kite."}, 0) +          // 2 equal after normalisation
                   line("replace", "Q3", {"Ann saw a red kite.", "Ann hid a blue boat."}, 0) +             // 3 three words
                   line("lastword", "Q4", {"kite.", "big boat."}, 1) +                                     // 4 two words
                   line("nextword", "Q5", {"a.", "b."}, 0));                                               // 5 unknown kind
  test::write_text(tmp.file("vrkd.jsonl"), line("swap", "Q6", {"We saw a big red kite.", "We saw my old red kite."}, 1));
  test::write_text(tmp.file("test.jsonl"), line("swap", "Q7", {"We saw a big red kite.", "We saw my old red kite."}, 0));
  test::write_text(tmp.file("manifest.json"),
                   R"({"counts": {"rkd": 5, "vrkd": 1, "test": 1}, "splits": {"vrkd": {"kinds": {"swap": {"items": 1}}},)"
                   R"( "test": {"kinds": {"swap": {"items": 2}}}}})");
  CheckReport r = check_tasks(tmp.path());
  std::map<std::string, std::string> got;
  for (const CheckIssue& e : r.errors) got[e.where()] += e.what + ";";
  EXPECT_EQ(got.size(), 5u) << check_report_text(r);
  EXPECT_EQ(got["rkd.jsonl:2"], "choices 0 and 1 are equal after normalisation (item_kind swap);");
  EXPECT_NE(got["rkd.jsonl:3"].find("differs from the gold in 3 words"), std::string::npos) << got["rkd.jsonl:3"];
  EXPECT_NE(got["rkd.jsonl:4"].find("not one word"), std::string::npos) << got["rkd.jsonl:4"];
  EXPECT_NE(got["rkd.jsonl:5"].find("unknown item_kind 'nextword'"), std::string::npos) << got["rkd.jsonl:5"];
  EXPECT_NE(got["manifest.json"].find("splits.test.kinds.swap.items = 2 but test.jsonl has 1 swap items"),
            std::string::npos) << got["manifest.json"];
  EXPECT_EQ(r.files[0].item_kinds["shuffle"].items, 1);
  EXPECT_EQ(r.files[0].item_kinds["shuffle"].errors, 0);
  EXPECT_EQ(r.files[0].item_kinds["swap"].errors, 1);
  EXPECT_EQ(r.files[0].item_kinds["shuffle"].gold_positions, std::vector<int64_t>({1}));
  EXPECT_EQ(r.files[1].item_kinds["swap"].gold_positions, std::vector<int64_t>({0, 1}));
  EXPECT_NE(check_report_text(r).find("  item_kind swap: 1 items; gold positions; 1 errors"), std::string::npos)
      << check_report_text(r);
  json j = check_report_json(r);
  EXPECT_EQ(j["files"][0]["item_kinds"]["replace"]["errors"], 1);
}

// stories260K (260K parameters) ranks the edited kinds far above chance (0.25) on TinyStories:
// proof the kinds are rankable by a small model, unlike next-sentence items (~0.3). Measured
// with this command: shuffle 1.00, swap 0.90, replace 0.85, lastword 0.83 (100 items each).
TEST(DataKinds, Stories260KRanksTheEditedKinds) {
  RANKRL_REQUIRE_DATA("stories260K/stories260K.bin");
  RANKRL_REQUIRE_DATA("tinystories/tinystories_val.txt");
  TempDir tmp;
  std::string model = data_file("stories260K/stories260K.bin");
  test::CliResult r = run_cli("data build --corpus " + data_file("tinystories/tinystories_val.txt") + " --out " +
                              tmp.file("k") + " --split-items 0,0,400 --kinds shuffle,swap,replace,lastword --model " +
                              model + " --context-tokens 48 --seed 1 -q");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // One thread: two spin-waiting OpenMP threads on a loaded 2-core machine took minutes, not 15 s.
  r = run_cli("eval --model " + model + " --tasks " + tmp.file("k") + " --json --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  ASSERT_EQ(j["items"], 400);
  double mean = 0;
  for (const char* kind : {"shuffle", "swap", "replace", "lastword"}) {
    const json& k = j["item_kinds"][kind];
    EXPECT_EQ(k["items"], 100) << kind;
    EXPECT_GT(k["acc"].get<double>(), 0.6) << kind;
    mean += k["acc"].get<double>() / 4;
  }
  EXPECT_GT(j["item_kinds"]["shuffle"]["acc"].get<double>(), 0.9);
  EXPECT_NEAR(j["acc"].get<double>(), mean, 1e-12);  // equal shares: the overall acc is their mean
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
