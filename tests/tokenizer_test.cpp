// Tokenizer tests: llama2.c tokenizer.bin, Hugging Face tokenizer.json (byte-level GPT-2 and
// SentencePiece-style), the llama2.c -> tokenizer.json converter, and error handling.
// Expected ids come from independent Python references in tests/reference/ (see there).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/fs.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/llama2c_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace rankrl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kSource = RANKRL_SOURCE_DIR;
const std::string kData = kSource + "/../shared/data";
const std::string kTok512 = kData + "/stories260K/tok512.bin";
const std::string kGpt2Dir = kData + "/gpt2-random-tiny";
const std::string kTinyStories = kData + "/tinystories/tinystories_val.txt";
const std::string kWikiText = kData + "/wikitext2/wiki.test.raw";

#define REQUIRE_SHARED_DATA()                                                             \
  do {                                                                                    \
    if (!fs::exists(kData))                                                               \
      GTEST_SKIP() << "shared data not found at " << kData << " (see shared/data/README)"; \
  } while (0)

// A scratch directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("rankrl_tok_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

json load_expected(const std::string& name) {
  return json::parse(read_file(kSource + "/tests/expected/" + name));
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  if (!text.empty() && text.back() == '\n') lines.push_back("");  // Python's split("\n")
  return lines;
}

// Same fingerprint as tests/reference/tokenize_cases.py.
uint64_t fnv1a64(const std::vector<int32_t>& ids) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (int32_t id : ids) {
    const auto u = static_cast<uint32_t>(id);
    for (int k = 0; k < 4; ++k) {
      h ^= (u >> (8 * k)) & 0xFF;
      h *= 0x100000001B3ull;
    }
  }
  return h;
}

// Encodes `text` once and reports MB/s on stderr.
std::vector<int32_t> timed_encode(const Tokenizer& tok, const std::string& text,
                                  const std::string& label) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<int32_t> ids = tok.encode(text);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "[throughput] " << label << ": " << text.size() / 1e6 << " MB -> " << ids.size()
            << " tokens in " << secs << " s = " << text.size() / 1e6 / secs << " MB/s\n";
  EXPECT_LT(secs, 5.0) << label;
  return ids;
}

// Every case of an expectations file: ids match, and valid UTF-8 round-trips through decode.
void expect_reference_cases(const Tokenizer& tok, const json& expected, bool check_round_trip) {
  ASSERT_GT(expected["cases"].size(), 30u);
  for (const json& c : expected["cases"]) {
    const std::string text = from_hex(c["hex"]);
    const auto ids = tok.encode(text);
    EXPECT_EQ(ids, c["ids"].get<std::vector<int32_t>>()) << "text hex " << c["hex"];
    if (check_round_trip && utf8::is_valid(text)) EXPECT_EQ(tok.decode(ids), text);
  }
}

// ---------------------------------------------------------------- llama2.c tokenizer.bin

TEST(Llama2cTokenizer, OracleSentenceHas35TokensWithBos) {
  REQUIRE_SHARED_DATA();
  auto tok = load_tokenizer(kTok512);
  EXPECT_EQ(tok->kind(), "llama2c");
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_TRUE(tok->adds_bos());
  const auto ids =
      tok->encode_with_bos("One day, a clever fox found a shiny key under the old oak tree.");
  ASSERT_EQ(ids.size(), 35u);
  EXPECT_EQ(ids.front(), 1);
}

TEST(Llama2cTokenizer, MatchesPythonReferenceOnTrickyText) {
  REQUIRE_SHARED_DATA();
  auto tok = load_tokenizer(kTok512);
  const json expected = load_expected("llama2c_tokens.json");
  expect_reference_cases(*tok, expected, /*check_round_trip=*/true);
}

TEST(Llama2cTokenizer, MatchesPythonReferenceOnEveryTinyStoriesLine) {
  REQUIRE_SHARED_DATA();
  auto tok = load_tokenizer(kTok512);
  const json corpus = load_expected("llama2c_tokens.json")["corpus"];
  const auto lines = lines_of(read_file(kTinyStories));
  ASSERT_EQ(lines.size(), corpus["lines"].get<size_t>());
  std::vector<int32_t> all;
  for (const auto& line : lines) {
    const auto ids = tok->encode(line);
    all.insert(all.end(), ids.begin(), ids.end());
    ASSERT_EQ(tok->decode(ids), line);
  }
  EXPECT_EQ(all.size(), corpus["count"].get<size_t>());
  EXPECT_EQ(std::to_string(fnv1a64(all)), corpus["fnv1a64"].get<std::string>());
}

TEST(Llama2cTokenizer, WholeFileThroughputAndRoundTrip) {
  REQUIRE_SHARED_DATA();
  auto tok = load_tokenizer(kTok512);
  const std::string text = read_file(kTinyStories);
  const auto ids = timed_encode(*tok, text, "llama2c tok512 on tinystories_val.txt");
  EXPECT_EQ(tok->decode(ids), text);
}

TEST(Llama2cTokenizer, DecodeStripsSpaceAfterBosAndMapsBytes) {
  REQUIRE_SHARED_DATA();
  auto tok = load_tokenizer(kTok512);
  const auto ids = tok->encode_with_bos("hi \xE2\x9C\x93");  // byte fallback for U+2713
  EXPECT_EQ(tok->decode(ids), "hi \xE2\x9C\x93");
  EXPECT_EQ(tok->decode({1, 3 + 'A'}), "A");
  EXPECT_THROW(tok->decode({512}), Error);
}

TEST(Llama2cTokenizer, TruncatedFileThrowsNamingIt) {
  REQUIRE_SHARED_DATA();
  TempDir dir;
  const std::string bytes = read_file(kTok512);
  for (size_t cut : {size_t{0}, size_t{3}, size_t{10}, bytes.size() - 1}) {
    const std::string path = dir.file("cut" + std::to_string(cut) + ".bin");
    write_file_atomic(path, std::string_view(bytes).substr(0, cut));
    try {
      load_tokenizer(path);
      ADD_FAILURE() << "no error for a file cut at " << cut;
    } catch (const Error& e) {
      EXPECT_EQ(e.file(), path);
      EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(Llama2cTokenizer::parse(bytes, kTok512, 600), Error);  // more ids than the file
  EXPECT_EQ(Llama2cTokenizer::parse(bytes, kTok512, 300).vocab_size(), 300);
}

// ---------------------------------------------------------------- GPT-2 byte-level BPE

TEST(Gpt2Tokenizer, MatchesPythonReferenceOnTrickyText) {
  REQUIRE_SHARED_DATA();
  auto tok = load_tokenizer(kGpt2Dir);
  EXPECT_EQ(tok->kind(), "bpe-bytelevel");
  EXPECT_EQ(tok->vocab_size(), 50257);
  EXPECT_FALSE(tok->adds_bos());  // GPT-2 does not prepend <|endoftext|>
  EXPECT_EQ(tok->bos_id(), 50256);
  EXPECT_EQ(tok->eos_id(), 50256);
  // decode() omits BOS/EOS (= <|endoftext|> here), so texts containing it cannot round-trip.
  const json expected = load_expected("gpt2_tokens.json");
  for (const json& c : expected["cases"]) {
    const std::string text = from_hex(c["hex"]);
    const auto ids = tok->encode(text);
    EXPECT_EQ(ids, c["ids"].get<std::vector<int32_t>>()) << "text hex " << c["hex"];
    if (text.find("<|endoftext|>") == std::string::npos) EXPECT_EQ(tok->decode(ids), text);
  }
}

TEST(Gpt2Tokenizer, MatchesPythonReferenceOnWholeWikiText) {
  REQUIRE_SHARED_DATA();
  auto tok = load_tokenizer(kGpt2Dir + "/tokenizer.json");
  const json corpus = load_expected("gpt2_tokens.json")["corpus"];
  const std::string text = read_file(kWikiText);
  const auto ids = timed_encode(*tok, text, "gpt2 on wiki.test.raw");
  ASSERT_EQ(ids.size(), corpus["count"].get<size_t>());
  EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + 64),
            corpus["first_ids"].get<std::vector<int32_t>>());
  EXPECT_EQ(std::to_string(fnv1a64(ids)), corpus["fnv1a64"].get<std::string>());
  EXPECT_EQ(tok->decode(ids), text);
  timed_encode(*tok, read_file(kTinyStories), "gpt2 on tinystories_val.txt");
}

// GPT-2's tokenizer.json rewritten with a modified pre-tokenizer section.
std::unique_ptr<Tokenizer> gpt2_with_pre_tokenizer(const json& pre_tokenizer) {
  json j = json::parse(read_file(kGpt2Dir + "/tokenizer.json"));
  j["pre_tokenizer"] = pre_tokenizer;
  return parse_tokenizer_json(j.dump(), "", "gpt2-variant.json");
}

json split_then_byte_level(const std::string& pattern) {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"},
             {"invert", false}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
}

TEST(Gpt2Tokenizer, SplitPreTokenizerWithGpt2PatternEqualsByteLevelRegex) {
  REQUIRE_SHARED_DATA();
  auto plain = load_tokenizer(kGpt2Dir);
  auto split = gpt2_with_pre_tokenizer(split_then_byte_level(
      R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"));
  for (const json& c : load_expected("gpt2_tokens.json")["cases"]) {
    const std::string text = from_hex(c["hex"]);
    EXPECT_EQ(split->encode(text), plain->encode(text)) << "text hex " << c["hex"];
  }
}

TEST(Gpt2Tokenizer, Llama3StylePatternSplitsDigitsInThrees) {
  REQUIRE_SHARED_DATA();
  auto tok = gpt2_with_pre_tokenizer(split_then_byte_level(
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"));
  auto plain = load_tokenizer(kGpt2Dir);
  const auto concat = [&](std::initializer_list<const char*> pieces) {
    std::vector<int32_t> ids;
    for (const char* p : pieces) {
      const auto part = plain->encode(p);
      ids.insert(ids.end(), part.begin(), part.end());
    }
    return ids;
  };
  // \p{N}{1,3}: "123" "456" "7"; GPT-2's \p{N}+ keeps one piece (BPE gives 123 45 67).
  EXPECT_EQ(tok->encode("1234567"), concat({"123", "456", "7"}));
  EXPECT_NE(tok->encode("1234567"), plain->encode("1234567"));
  // [^\r\n\p{L}\p{N}]?\p{L}+ glues one leading symbol to a word.
  EXPECT_EQ(tok->encode("x(hello"), concat({"x", "(hello"}));
}

TEST(Gpt2Tokenizer, AddPrefixSpace) {
  REQUIRE_SHARED_DATA();
  auto tok = gpt2_with_pre_tokenizer({{"type", "ByteLevel"}, {"add_prefix_space", true}});
  auto plain = load_tokenizer(kGpt2Dir);
  EXPECT_EQ(tok->encode("Hello world"), plain->encode(" Hello world"));
}

// ---------------------------------------------------------------- SentencePiece-style BPE

TEST(SentencePieceBpe, ConvertedTok512MatchesLlama2cOnTinyStories) {
  REQUIRE_SHARED_DATA();
  TempDir dir;
  const auto original = Llama2cTokenizer::load(kTok512);
  write_tokenizer_json_from_llama2c(original, dir.str());
  auto converted = load_tokenizer(dir.str());
  EXPECT_EQ(converted->kind(), "bpe-sentencepiece");
  EXPECT_EQ(converted->vocab_size(), 512);
  EXPECT_TRUE(converted->adds_bos());
  EXPECT_EQ(converted->bos_id(), 1);
  EXPECT_EQ(converted->eos_id(), 2);

  const std::string text = read_file(kTinyStories);
  size_t checked = 0;
  for (const auto& line : lines_of(text)) {
    ASSERT_EQ(converted->encode(line), original.encode(line)) << line;
    ASSERT_EQ(converted->decode(converted->encode(line)), line);
    ++checked;
  }
  EXPECT_GT(checked, 8000u);
  const auto ids = timed_encode(*converted, text, "converted tok512 tokenizer.json");
  EXPECT_EQ(ids, original.encode(text));
  EXPECT_EQ(converted->decode(ids), text);
}

TEST(SentencePieceBpe, ConvertedTok512MatchesLlama2cOnTrickyText) {
  REQUIRE_SHARED_DATA();
  TempDir dir;
  const auto original = Llama2cTokenizer::load(kTok512);
  write_tokenizer_json_from_llama2c(original, dir.str());
  auto converted = load_tokenizer(dir.file("tokenizer.json"));
  for (const json& c : load_expected("llama2c_tokens.json")["cases"]) {
    const std::string text = from_hex(c["hex"]);
    // Documented differences: invalid UTF-8 is grouped differently by run.c, and HF treats the
    // literal texts of added tokens (<s>, </s>, <unk>) as those tokens.
    if (!utf8::is_valid(text) || text.find("<s>") != std::string::npos) continue;
    EXPECT_EQ(converted->encode(text), original.encode(text)) << "text hex " << c["hex"];
    EXPECT_EQ(converted->decode(converted->encode(text)), text);
  }
  const auto with_bos_text = converted->encode("a<s>b");
  EXPECT_NE(std::find(with_bos_text.begin(), with_bos_text.end(), 1), with_bos_text.end());
}

// A hand-made Llama-style tokenizer.json: bytes, "▁", a, b and the merges ▁+a, a+b, ▁a+b.
json tiny_sentencepiece_json(bool byte_fallback) {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) vocab[utf8::byte_piece(static_cast<uint8_t>(b))] = 3 + b;
  vocab["\u2581"] = 259;
  vocab["a"] = 260;
  vocab["b"] = 261;
  vocab["\u2581a"] = 262;
  vocab["ab"] = 263;
  vocab["\u2581ab"] = 264;
  return {{"added_tokens",
           {{{"id", 0}, {"content", "<unk>"}, {"special", true}},
            {{"id", 1}, {"content", "<s>"}, {"special", true}},
            {{"id", 2}, {"content", "</s>"}, {"special", true}}}},
          {"normalizer",
           {{"type", "Sequence"},
            {"normalizers",
             {{{"type", "Prepend"}, {"prepend", "\u2581"}},
              {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}}}}}},
          {"pre_tokenizer", nullptr},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single",
             {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
          {"model",
           {{"type", "BPE"},
            {"unk_token", "<unk>"},
            {"byte_fallback", byte_fallback},
            {"vocab", vocab},
            {"merges", {"a b", json::array({"\u2581", "a"}), "\u2581a b"}}}}};
}

TEST(SentencePieceBpe, HandMadeTokenizerWithByteFallback) {
  auto tok = parse_tokenizer_json(tiny_sentencepiece_json(true).dump(), "", "tiny.json");
  EXPECT_EQ(tok->kind(), "bpe-sentencepiece");
  EXPECT_TRUE(tok->adds_bos());  // from the TemplateProcessing post-processor
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), -1);
  // "▁ab▁ab▁é" = ▁ a b ▁ a b ▁ é: a+b (rank 0) beats ▁+a (rank 1), leaving ▁ ab with no rule
  // for them; é has no piece, so its bytes C3 A9 fall back to <0xC3> <0xA9>.
  const std::vector<int32_t> expected = {259, 263, 259, 263, 259, 3 + 0xC3, 3 + 0xA9};
  EXPECT_EQ(tok->encode("ab ab \xC3\xA9"), expected);
  EXPECT_EQ(tok->decode(expected), "ab ab \xC3\xA9");
  EXPECT_EQ(tok->encode("a"), (std::vector<int32_t>{262}));
  EXPECT_EQ(tok->encode(""), std::vector<int32_t>{});
  EXPECT_EQ(tok->encode("\xFF"), (std::vector<int32_t>{259, 3 + 0xFF}));  // invalid UTF-8 byte
  EXPECT_EQ(tok->encode_with_bos("a</s>"), (std::vector<int32_t>{1, 262, 2}));
}

TEST(SentencePieceBpe, WithoutByteFallbackUnknownCharactersBecomeUnk) {
  auto tok = parse_tokenizer_json(tiny_sentencepiece_json(false).dump(), "", "tiny.json");
  EXPECT_EQ(tok->encode("a \xC3\xA9z"), (std::vector<int32_t>{262, 259, 0, 0}));
}

TEST(SentencePieceBpe, LegacyMetaspacePreTokenizerMatchesNormalizerForm) {
  json legacy = tiny_sentencepiece_json(true);
  legacy["normalizer"] = nullptr;
  legacy["pre_tokenizer"] = {
      {"type", "Metaspace"}, {"replacement", "\u2581"}, {"add_prefix_space", true}};
  auto a = parse_tokenizer_json(legacy.dump(), "", "legacy.json");
  auto b = parse_tokenizer_json(tiny_sentencepiece_json(true).dump(), "", "tiny.json");
  // (Text starting with a space differs: Metaspace does not prepend a second "▁", as in HF.)
  for (const char* text : {"ab ab", "a", "bab  a", "b a\xC3\xA9"}) {
    EXPECT_EQ(a->encode(text), b->encode(text)) << text;
    EXPECT_EQ(a->decode(a->encode(text)), text);
  }
}

TEST(SentencePieceBpe, TokenizerConfigOverridesSpecialTokens) {
  const std::string config =
      R"({"add_bos_token": false, "bos_token": {"content": "<s>"}, "eos_token": "</s>"})";
  auto tok = parse_tokenizer_json(tiny_sentencepiece_json(true).dump(), config, "tiny.json");
  EXPECT_FALSE(tok->adds_bos());
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_THROW(parse_tokenizer_json(tiny_sentencepiece_json(true).dump(),
                                    R"({"bos_token": "<nope>"})", "tiny.json"),
               Error);
}

// ---------------------------------------------------------------- errors

// Expects parse_tokenizer_json(text) to throw Error naming `path` and containing `needle`.
void expect_json_error(const std::string& text, const std::string& needle) {
  const std::string path = "/some/dir/tokenizer.json";
  try {
    parse_tokenizer_json(text, "", path);
    ADD_FAILURE() << "no error for: " << text.substr(0, 200);
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), path);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message \"" << e.what() << "\" lacks \"" << needle << "\"";
  }
}

TEST(TokenizerErrors, MalformedTokenizerJson) {
  const auto with_model = [](json model) {
    json j = tiny_sentencepiece_json(true);
    j["model"] = std::move(model);
    return j.dump();
  };
  json good_model = tiny_sentencepiece_json(true)["model"];
  const auto model_with = [&](const std::string& key, json value) {
    json m = good_model;
    m[key] = std::move(value);
    return with_model(m);
  };
  expect_json_error("{", "malformed JSON");
  expect_json_error("", "malformed JSON");
  expect_json_error("[1, 2]", "expected an object");
  expect_json_error("{}", "missing \"model\"");
  expect_json_error(with_model({{"type", "WordPiece"}}), "unsupported model type");
  expect_json_error(model_with("vocab", json::array()), "model.vocab");
  expect_json_error(model_with("vocab", {{"a", "zero"}}), "token id");
  expect_json_error(model_with("vocab", {{"a", -1}}), "token id");
  expect_json_error(model_with("merges", "a b"), "model.merges");
  expect_json_error(model_with("merges", {"a c"}), "\"c\" is not in the vocabulary");
  expect_json_error(model_with("merges", {"b a"}), "\"ba\" is not in the vocabulary");
  expect_json_error(model_with("merges", {"ab"}), "model.merges[0]");
  expect_json_error(model_with("merges", {42}), "model.merges[0]");
  expect_json_error(model_with("unk_token", "<nope>"), "model.unk_token");
  expect_json_error(model_with("byte_fallback", "yes"), "model.byte_fallback");
  json m = good_model;
  m.erase("merges");
  expect_json_error(with_model(m), "missing \"merges\"");

  json j = tiny_sentencepiece_json(true);
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}},
                        {"behavior", "Isolated"}};
  expect_json_error(j.dump(), "invalid regex");
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_json_error(j.dump(), "unsupported pre_tokenizer");
  j["pre_tokenizer"] = nullptr;
  j["normalizer"] = {{"type", "Lowercase"}};
  expect_json_error(j.dump(), "unsupported normalizer");
  j["normalizer"] = nullptr;
  j["added_tokens"] = {{{"id", "x"}, {"content", "<s>"}}};
  expect_json_error(j.dump(), "added_tokens[0].id");
}

TEST(TokenizerErrors, LoadTokenizerNamesTheFile) {
  TempDir dir;
  const std::string bad = dir.file("tokenizer.json");
  write_file_atomic(bad, "{\"model\": ");
  try {
    load_tokenizer(dir.str());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), bad);
  }
  write_file_atomic(bad, tiny_sentencepiece_json(true).dump());
  write_file_atomic(dir.file("tokenizer_config.json"), "not json");
  try {
    load_tokenizer(bad);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), dir.file("tokenizer_config.json"));
  }
}

TEST(TokenizerErrors, SentencePieceModelAndMissingFilesAreClearErrors) {
  TempDir dir;
  write_file_atomic(dir.file("tokenizer.model"), "x");
  try {
    load_tokenizer(dir.str());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), dir.file("tokenizer.model"));
    EXPECT_NE(std::string(e.what()).find("not supported"), std::string::npos);
  }
  EXPECT_THROW(load_tokenizer(dir.file("missing.bin")), Error);
  fs::remove(dir.file("tokenizer.model"));
  EXPECT_THROW(load_tokenizer(dir.str()), Error);
}

TEST(TokenizerErrors, ArbitraryBytesNeverCrashEncoders) {
  REQUIRE_SHARED_DATA();
  auto llama = load_tokenizer(kTok512);
  auto gpt2 = load_tokenizer(kGpt2Dir);
  std::string all_bytes;
  for (int b = 0; b < 256; ++b) all_bytes += static_cast<char>(b);
  for (const std::string& text : {all_bytes, all_bytes + all_bytes, std::string(1000, '\x80')}) {
    EXPECT_EQ(llama->decode(llama->encode(text)), text);  // byte fallback covers every byte
    EXPECT_EQ(gpt2->decode(gpt2->encode(text)), text);    // byte-level covers every byte
  }
}

}  // namespace
}  // namespace rankrl
