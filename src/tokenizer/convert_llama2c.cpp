// llama2.c tokenizer.bin -> Hugging Face tokenizer.json (SentencePiece-style Llama BPE).
#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "tokenizer/llama2c_tokenizer.h"
#include "tokenizer/utf8.h"

namespace rankrl {

namespace {

using ordered_json = nlohmann::ordered_json;
const char* const kMetaspace = "\u2581";

bool is_special(int32_t id) { return id < Llama2cTokenizer::kFirstByte; }

// Hugging Face spelling of piece `id`: fixed names for the specials, "▁" for spaces.
std::string hf_token(const Llama2cTokenizer& tok, int32_t id) {
  static const char* const kSpecials[] = {"<unk>", "<s>", "</s>"};
  if (is_special(id)) return kSpecials[id];
  std::string out;
  for (char c : tok.pieces()[id]) {
    if (c == ' ') out += kMetaspace;
    else out += c;
  }
  return out;
}

std::vector<std::string> hf_tokens(const Llama2cTokenizer& tok, const std::string& source) {
  std::vector<std::string> names;
  std::unordered_map<std::string, int32_t> seen;
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    names.push_back(hf_token(tok, id));
    check(utf8::is_valid(names.back()), source,
          "token " + std::to_string(id) + " is not valid UTF-8; cannot write tokenizer.json");
    auto [it, fresh] = seen.emplace(names.back(), id);
    check(fresh, source,
          "tokens " + std::to_string(it->second) + " and " + std::to_string(id) + " both become " +
              utf8::quoted(names.back()) + " in tokenizer.json");
  }
  return names;
}

// Merges ranked so that HF's lowest-rank-first order is llama2.c's highest-score-first order.
// Score ties (none in sentencepiece-trained vocabularies) fall back to the merged id.
std::vector<Llama2cTokenizer::Merge> ranked_merges(const Llama2cTokenizer& tok) {
  std::vector<Llama2cTokenizer::Merge> merges;
  for (const auto& m : tok.merges())
    if (!is_special(m.left) && !is_special(m.right) && !is_special(m.merged)) merges.push_back(m);
  const auto& scores = tok.scores();
  std::stable_sort(merges.begin(), merges.end(), [&](const auto& a, const auto& b) {
    if (scores[a.merged] != scores[b.merged]) return scores[a.merged] > scores[b.merged];
    return a.merged < b.merged;
  });
  return merges;
}

ordered_json added_tokens_json() {
  ordered_json list = ordered_json::array();
  for (int32_t id : {0, 1, 2}) {
    static const char* const kNames[] = {"<unk>", "<s>", "</s>"};
    list.push_back({{"id", id}, {"content", kNames[id]}, {"single_word", false},
                    {"lstrip", false}, {"rstrip", false}, {"normalized", false},
                    {"special", true}});
  }
  return list;
}

ordered_json pipeline_json() {
  ordered_json j;
  j["normalizer"] = {{"type", "Sequence"},
                     {"normalizers",
                      {{{"type", "Prepend"}, {"prepend", kMetaspace}},
                       {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kMetaspace}}}}};
  j["pre_tokenizer"] = nullptr;
  const ordered_json bos = {{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}};
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {bos, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"pair", {bos, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, bos,
                {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}};
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders",
                   {{{"type", "Replace"}, {"pattern", {{"String", kMetaspace}}}, {"content", " "}},
                    {{"type", "ByteFallback"}},
                    {{"type", "Fuse"}},
                    {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  return j;
}

ordered_json model_json(const Llama2cTokenizer& tok, const std::vector<std::string>& names) {
  ordered_json vocab = ordered_json::object();
  for (int32_t id = 0; id < tok.vocab_size(); ++id) vocab[names[id]] = id;
  ordered_json merges = ordered_json::array();
  for (const auto& m : ranked_merges(tok)) merges.push_back(names[m.left] + " " + names[m.right]);
  return {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", "<unk>"},
          {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
          // llama2.c emits one <unk> per unknown character: no fusing.
          {"fuse_unk", false}, {"byte_fallback", tok.has_byte_fallback()},
          {"ignore_merges", false}, {"vocab", vocab}, {"merges", merges}};
}

}  // namespace

void check_llama2c_convertible(const Llama2cTokenizer& tok, const std::string& source) {
  (void)hf_tokens(tok, source);
}

void write_tokenizer_json_from_llama2c(const Llama2cTokenizer& tok, const std::string& out_dir) {
  check(is_directory(out_dir), out_dir, "not a directory");
  const std::filesystem::path dir(out_dir);
  const std::vector<std::string> names = hf_tokens(tok, out_dir);

  ordered_json j = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr},
                    {"added_tokens", added_tokens_json()}};
  j.update(pipeline_json());
  j["model"] = model_json(tok, names);
  write_file_atomic((dir / "tokenizer.json").string(), j.dump(2) + "\n");

  const ordered_json config = {{"add_bos_token", true},
                               {"add_eos_token", false},
                               {"bos_token", "<s>"},
                               {"eos_token", "</s>"},
                               {"unk_token", "<unk>"},
                               {"clean_up_tokenization_spaces", false},
                               {"tokenizer_class", "PreTrainedTokenizerFast"}};
  write_file_atomic((dir / "tokenizer_config.json").string(), config.dump(2) + "\n");
}

}  // namespace rankrl
