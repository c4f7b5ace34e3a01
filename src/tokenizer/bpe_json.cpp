// tokenizer.json / tokenizer_config.json -> BpeTokenizer. Every malformed or unsupported input
// becomes Error(path, "<json location>: <what>").
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/utf8.h"

namespace rankrl {

using nlohmann::json;

namespace {

// The pattern of GPT-2's encoder.py, used by ByteLevel pre-tokenizers with use_regex.
const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Sequences nest only a level or two in real files; the bound keeps hostile input shallow.
constexpr int kMaxNesting = 8;

// A JSON value shortened for a one-line message.
std::string brief(const json& j) {
  return utf8::quoted(j.dump(-1, ' ', false, json::error_handler_t::replace), 60);
}

std::string item(const std::string& where, size_t i) {
  return where + "[" + std::to_string(i) + "]";
}

}  // namespace

class BpeJsonParser {
 public:
  explicit BpeJsonParser(BpeTokenizer& tok) : tok_(tok) {}

  void parse_tokenizer(std::string_view text, const std::string& path) {
    path_ = path;
    const json root = parse_json(text);
    expect_object(root, "tokenizer.json");
    parse_model(field(root, "model", "tokenizer.json"));
    if (const json* added = optional(root, "added_tokens")) parse_added_tokens(*added);
    if (const json* n = optional(root, "normalizer")) parse_normalizer(*n, "normalizer", 0);
    if (const json* p = optional(root, "pre_tokenizer")) parse_pre_tokenizer(*p, "pre_tokenizer", 0);
    if (const json* p = optional(root, "post_processor")) parse_post_processor(*p, "post_processor", 0);
    tok_.finish_setup();
  }

  // Special tokens: tokenizer_config.json overrides what the post-processor template implies.
  void parse_config(std::string_view text, const std::string& path) {
    std::optional<bool> add_bos;
    int32_t bos = template_bos_, eos = template_eos_;
    if (!text.empty()) {
      path_ = path;
      const json root = parse_json(text);
      expect_object(root, "tokenizer_config.json");
      if (const json* b = optional(root, "add_bos_token")) add_bos = bool_of(*b, "add_bos_token");
      if (const json* b = optional(root, "bos_token")) bos = special_token_id(*b, "bos_token");
      if (const json* e = optional(root, "eos_token")) eos = special_token_id(*e, "eos_token");
    }
    tok_.bos_id_ = bos;
    tok_.eos_id_ = eos;
    tok_.adds_bos_ = add_bos.value_or(template_adds_bos_) && bos >= 0;
  }

 private:
  [[noreturn]] void fail(const std::string& where, const std::string& what) const {
    throw Error(path_, where + ": " + what);
  }

  json parse_json(std::string_view text) const {
    try {
      return json::parse(text.begin(), text.end());
    } catch (const json::exception& e) {
      throw Error(path_, "malformed JSON: " + utf8::escaped(e.what(), 300));
    }
  }

  void expect_object(const json& j, const std::string& where) const {
    if (!j.is_object()) fail(where, "expected an object, got " + std::string(j.type_name()));
  }
  const json& expect_array(const json& j, const std::string& where) const {
    if (!j.is_array()) fail(where, "expected an array, got " + std::string(j.type_name()));
    return j;
  }
  const json& field(const json& obj, const char* key, const std::string& where) const {
    expect_object(obj, where);
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) fail(where, std::string("missing \"") + key + "\"");
    return *it;
  }
  // nullptr when absent or null.
  static const json* optional(const json& obj, const char* key) {
    auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }
  std::string string_of(const json& j, const std::string& where) const {
    if (!j.is_string()) fail(where, "expected a string, got " + std::string(j.type_name()));
    return j.get<std::string>();
  }
  bool bool_of(const json& j, const std::string& where) const {
    if (!j.is_boolean()) fail(where, "expected true or false, got " + std::string(j.type_name()));
    return j.get<bool>();
  }
  int32_t id_of(const json& j, const std::string& where) const {
    const bool ok = j.is_number_unsigned() ? j.get<uint64_t>() < INT32_MAX
                                           : j.is_number_integer() && j.get<int64_t>() >= 0 &&
                                                 j.get<int64_t>() < INT32_MAX;
    if (!ok) fail(where, "expected a token id (integer in [0, 2^31-1)), got " + brief(j));
    return static_cast<int32_t>(j.get<int64_t>());
  }
  std::string type_of(const json& j, const std::string& where) const {
    return string_of(field(j, "type", where), where + ".type");
  }
  int32_t vocab_id(const std::string& token, const std::string& where) const {
    auto it = tok_.vocab_.find(token);
    if (it == tok_.vocab_.end()) fail(where, "token " + utf8::quoted(token) + " is not in the vocabulary");
    return it->second;
  }
  void check_depth(int depth, const std::string& where) const {
    if (depth > kMaxNesting) fail(where, "nested too deeply");
  }

  void parse_model(const json& model) {
    expect_object(model, "model");
    if (const json* type = optional(model, "type"); type && string_of(*type, "model.type") != "BPE")
      fail("model.type", "unsupported model type " + utf8::quoted(type->get<std::string>()) + " (only BPE)");
    parse_vocab(field(model, "vocab", "model"));
    parse_merges(field(model, "merges", "model"));
    if (const json* unk = optional(model, "unk_token"))
      tok_.unk_id_ = vocab_id(string_of(*unk, "model.unk_token"), "model.unk_token");
    const auto flag = [&](const char* key) {
      const json* j = optional(model, key);
      return j && bool_of(*j, std::string("model.") + key);
    };
    tok_.byte_fallback_ = flag("byte_fallback");
    tok_.fuse_unk_ = flag("fuse_unk");
    tok_.ignore_merges_ = flag("ignore_merges");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      const json* j = optional(model, key);
      if (j && !string_of(*j, std::string("model.") + key).empty())
        fail(std::string("model.") + key, "is not supported (only empty)");
    }
    const json* dropout = optional(model, "dropout");
    if (dropout && !(dropout->is_number() && dropout->get<double>() == 0.0))
      fail("model.dropout", "BPE dropout is not supported (tokenization must be deterministic)");
  }

  void parse_vocab(const json& vocab) {
    expect_object(vocab, "model.vocab");
    if (vocab.empty()) fail("model.vocab", "is empty");
    for (const auto& [token, id_json] : vocab.items()) {
      const int32_t id = id_of(id_json, "model.vocab[" + utf8::quoted(token) + "]");
      tok_.vocab_.emplace(token, id);
      tok_.id_to_token_.emplace(id, token);
    }
  }

  void parse_merges(const json& merges) {
    expect_array(merges, "model.merges");
    for (size_t i = 0; i < merges.size(); ++i) {
      const std::string where = item("model.merges", i);
      const auto [left, right] = merge_pair(merges[i], where);
      const int32_t left_id = vocab_id(left, where), right_id = vocab_id(right, where);
      tok_.merges_.add(left_id, right_id, {vocab_id(left + right, where), static_cast<double>(i)});
    }
  }

  // A merge is "left right" (older files) or ["left", "right"] (newer files).
  std::pair<std::string, std::string> merge_pair(const json& m, const std::string& where) const {
    if (m.is_array() && m.size() == 2)
      return {string_of(m[0], where + "[0]"), string_of(m[1], where + "[1]")};
    const std::string s = m.is_string() ? m.get<std::string>() : "";
    const size_t space = s.find(' ');
    if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
      fail(where, "expected \"left right\" or [\"left\", \"right\"], got " + brief(m));
    return {s.substr(0, space), s.substr(space + 1)};
  }

  void parse_added_tokens(const json& added) {
    expect_array(added, "added_tokens");
    for (size_t i = 0; i < added.size(); ++i) {
      const std::string where = item("added_tokens", i);
      const int32_t id = id_of(field(added[i], "id", where), where + ".id");
      const std::string content = string_of(field(added[i], "content", where), where + ".content");
      tok_.added_.add(content, id);
      tok_.id_to_token_[id] = content;
    }
  }

  std::shared_ptr<const Regex> parse_pattern(const json& p, const std::string& where) const {
    expect_object(p, where);
    if (const json* s = optional(p, "String"))
      return std::make_shared<Regex>(string_of(*s, where + ".String"), true, path_);
    if (const json* r = optional(p, "Regex"))
      return std::make_shared<Regex>(string_of(*r, where + ".Regex"), false, path_);
    fail(where, "expected {\"String\": ...} or {\"Regex\": ...}");
  }

  void parse_normalizer(const json& n, const std::string& where, int depth) {
    check_depth(depth, where);
    const std::string type = type_of(n, where);
    if (type == "Sequence") {
      const json& list = expect_array(field(n, "normalizers", where), where + ".normalizers");
      for (size_t i = 0; i < list.size(); ++i)
        parse_normalizer(list[i], item(where + ".normalizers", i), depth + 1);
    } else if (type == "Prepend") {
      const std::string text = string_of(field(n, "prepend", where), where + ".prepend");
      tok_.normalizers_.push_back({Normalizer::Kind::kPrepend, text, nullptr});
    } else if (type == "Replace") {
      auto pattern = parse_pattern(field(n, "pattern", where), where + ".pattern");
      const std::string content = string_of(field(n, "content", where), where + ".content");
      tok_.normalizers_.push_back({Normalizer::Kind::kReplace, content, pattern});
    } else if (type != "NFC") {  // NFC: identity on NFC text, see bpe_tokenizer.h
      fail(where, "unsupported normalizer type " + utf8::quoted(type));
    }
  }

  void parse_pre_tokenizer(const json& p, const std::string& where, int depth) {
    check_depth(depth, where);
    const std::string type = type_of(p, where);
    if (type == "Sequence") {
      const json& list = expect_array(field(p, "pretokenizers", where), where + ".pretokenizers");
      for (size_t i = 0; i < list.size(); ++i)
        parse_pre_tokenizer(list[i], item(where + ".pretokenizers", i), depth + 1);
    } else if (type == "Split") {
      tok_.pre_tokenizers_.push_back(parse_split(p, where));
    } else if (type == "ByteLevel") {
      tok_.pre_tokenizers_.push_back(parse_byte_level(p, where));
    } else if (type == "Metaspace") {
      tok_.pre_tokenizers_.push_back(parse_metaspace(p, where));
    } else {
      fail(where, "unsupported pre_tokenizer type " + utf8::quoted(type));
    }
  }

  bool optional_bool(const json& obj, const char* key, bool fallback, const std::string& where) {
    const json* j = optional(obj, key);
    return j ? bool_of(*j, where + "." + key) : fallback;
  }

  PreTokenizer parse_split(const json& p, const std::string& where) {
    PreTokenizer s;
    s.kind = PreTokenizer::Kind::kSplit;
    s.pattern = parse_pattern(field(p, "pattern", where), where + ".pattern");
    s.invert = optional_bool(p, "invert", false, where);
    const std::string behavior = string_of(field(p, "behavior", where), where + ".behavior");
    static const std::pair<const char*, SplitBehavior> kBehaviors[] = {
        {"Isolated", SplitBehavior::kIsolated},
        {"Removed", SplitBehavior::kRemoved},
        {"MergedWithPrevious", SplitBehavior::kMergedWithPrevious},
        {"MergedWithNext", SplitBehavior::kMergedWithNext},
        {"Contiguous", SplitBehavior::kContiguous}};
    for (const auto& [name, value] : kBehaviors)
      if (behavior == name) {
        s.behavior = value;
        return s;
      }
    fail(where + ".behavior", "unknown split behavior " + utf8::quoted(behavior));
  }

  PreTokenizer parse_byte_level(const json& p, const std::string& where) {
    PreTokenizer b;
    b.kind = PreTokenizer::Kind::kByteLevel;
    b.add_prefix_space = optional_bool(p, "add_prefix_space", true, where);  // HF default
    if (optional_bool(p, "use_regex", true, where))
      b.pattern = std::make_shared<Regex>(kGpt2Pattern, false, path_);
    return b;
  }

  PreTokenizer parse_metaspace(const json& p, const std::string& where) {
    PreTokenizer m;
    m.kind = PreTokenizer::Kind::kMetaspace;
    const json* replacement = optional(p, "replacement");
    m.replacement = replacement ? string_of(*replacement, where + ".replacement") : "\u2581";
    if (m.replacement.empty()) fail(where + ".replacement", "is empty");
    // Newer files say prepend_scheme; older ones add_prefix_space (meaning "always").
    if (const json* scheme = optional(p, "prepend_scheme")) {
      const std::string s = string_of(*scheme, where + ".prepend_scheme");
      if (s == "always") m.prepend = PreTokenizer::Prepend::kAlways;
      else if (s == "first") m.prepend = PreTokenizer::Prepend::kFirst;
      else if (s == "never") m.prepend = PreTokenizer::Prepend::kNever;
      else fail(where + ".prepend_scheme", "unknown value " + utf8::quoted(s));
    } else {
      m.prepend = optional_bool(p, "add_prefix_space", true, where) ? PreTokenizer::Prepend::kAlways
                                                                   : PreTokenizer::Prepend::kNever;
    }
    if (optional_bool(p, "split", true, where))
      m.pattern = std::make_shared<Regex>(m.replacement, true, path_);
    return m;
  }

  // TemplateProcessing's single-sequence template tells whether BOS/EOS surround the text.
  void parse_post_processor(const json& p, const std::string& where, int depth) {
    check_depth(depth, where);
    const std::string type = type_of(p, where);
    if (type == "Sequence") {
      const json& list = expect_array(field(p, "processors", where), where + ".processors");
      for (size_t i = 0; i < list.size(); ++i)
        parse_post_processor(list[i], item(where + ".processors", i), depth + 1);
      return;
    }
    if (type != "TemplateProcessing") return;  // ByteLevel etc. add no tokens
    const json& single = expect_array(field(p, "single", where), where + ".single");
    if (single.empty()) return;
    const json* specials = optional(p, "special_tokens");
    if (int32_t id = template_special(single.front(), specials, where + ".single[0]"); id >= 0) {
      template_bos_ = id;
      template_adds_bos_ = true;
    }
    const std::string last = item(where + ".single", single.size() - 1);
    if (int32_t id = template_special(single.back(), specials, last); id >= 0 && single.size() > 1)
      template_eos_ = id;
  }

  // Id of a {"SpecialToken": {"id": name}} template item, or -1 for a sequence item.
  int32_t template_special(const json& piece, const json* specials, const std::string& where) {
    expect_object(piece, where);
    const json* special = optional(piece, "SpecialToken");
    if (!special) return -1;
    const std::string name = string_of(field(*special, "id", where + ".SpecialToken"), where);
    if (specials && specials->is_object()) {
      if (const json* entry = optional(*specials, name.c_str())) {
        const json& ids = expect_array(field(*entry, "ids", where), where + ".ids");
        if (!ids.empty()) return id_of(ids.front(), where + ".ids[0]");
      }
    }
    const int32_t id = tok_.token_id(name);
    if (id < 0) fail(where, "special token " + utf8::quoted(name) + " is not in the vocabulary");
    return id;
  }

  // bos_token / eos_token: a string or {"content": string}.
  int32_t special_token_id(const json& j, const std::string& where) const {
    const std::string content =
        j.is_object() ? string_of(field(j, "content", where), where + ".content")
                      : string_of(j, where);
    const int32_t id = tok_.token_id(content);
    if (id < 0) fail(where, utf8::quoted(content) + " is not in the vocabulary");
    return id;
  }

  BpeTokenizer& tok_;
  std::string path_;
  int32_t template_bos_ = -1, template_eos_ = -1;
  bool template_adds_bos_ = false;
};

std::unique_ptr<BpeTokenizer> BpeTokenizer::parse(std::string_view json_text,
                                                  const std::string& path,
                                                  std::string_view config_json,
                                                  const std::string& config_path) {
  std::unique_ptr<BpeTokenizer> tok(new BpeTokenizer());
  BpeJsonParser parser(*tok);
  try {
    parser.parse_tokenizer(json_text, path);
    parser.parse_config(config_json, config_path.empty() ? path : config_path);
  } catch (const json::exception& e) {  // a type we did not check; still the file's fault
    throw Error(path, std::string("invalid tokenizer JSON: ") + e.what());
  }
  return tok;
}

std::unique_ptr<Tokenizer> parse_tokenizer_json(std::string_view json_text,
                                                std::string_view config_json,
                                                const std::string& path) {
  return BpeTokenizer::parse(json_text, path, config_json, path);
}

}  // namespace rankrl
