// Malformed inputs through the real CLI, one table row each. Every row writes a broken input into
// a fresh temp dir (usually a copy of a real shared-data file with one thing corrupted), runs the
// rankrl binary under `timeout`, and checks the DESIGN.md error contract:
//   * exit code 1 (bad input) or 2 (bad usage): never a signal, never a hang;
//   * stderr is exactly one line, `rankrl: error: <file>: <what is wrong>`, naming the
//     offending file first and containing the row's phrase;
//   * nothing on stdout;
//   * for commands that write (convert --out): no output and no temp file left behind.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_util.h"

namespace rankrl::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kTimeoutSeconds = 20;  // a hang fails the row instead of blocking the suite
constexpr double kMaxSeconds = 5.0;  // generous on a loaded 2-core machine; typical is < 1 s

const char* const kStoriesBin = "stories260K/stories260K.bin";
const char* const kTok512 = "stories260K/tok512.bin";
const char* const kGpt2 = "gpt2-random-tiny";

std::string q(const std::string& s) { return "'" + s + "'"; }

// Like run_cli, but under `timeout` so that a hang is reported as exit code 124.
CliResult run_guarded(const std::string& args) {
  TempDir io;
  const std::string cmd = "timeout -k 5 " + std::to_string(kTimeoutSeconds) + " " +
                          std::string(RANKRL_CLI) + " " + args + " >" + io.file("out") + " 2>" +
                          io.file("err") + " </dev/null";
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_text(io.file("out"));
  r.err = read_text(io.file("err"));
  return r;
}

// ---- byte-level helpers ---------------------------------------------------------------------

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file split into its JSON header and its data buffer.
struct Safetensors {
  json header;
  std::string data;

  static Safetensors read(const std::string& path) {
    const std::string bytes = read_text(path);
    if (bytes.size() < 8) throw std::runtime_error("not a safetensors file: " + path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
    return {json::parse(bytes.substr(8, n)), bytes.substr(8 + n)};
  }
  void write(const std::string& path) const {
    const std::string h = header.dump();
    write_text(path, le64(h.size()) + h + data);
  }
  void set_f32(const std::string& tensor, size_t index, float value) {
    const uint64_t begin = header.at(tensor).at("data_offsets")[0].get<uint64_t>();
    std::memcpy(&data[begin + 4 * index], &value, 4);
  }
};

json read_json(const std::string& path) { return json::parse(read_text(path)); }
void write_json(const std::string& path, const json& j) { write_text(path, j.dump(2)); }

void copy_file(const std::string& from, const std::string& to) {
  fs::create_directories(fs::path(to).parent_path());
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

// The shared GPT-2 (random weights, real tokenizer) copied to <tmp>/<name>.
std::string copy_gpt2(const TempDir& tmp, const std::string& name = "gpt2") {
  const std::string dir = tmp.file(name);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"})
    copy_file(data_file(std::string(kGpt2) + "/" + f), dir + "/" + f);
  return dir;
}

// stories260K converted once per process with `rankrl convert` (a Hugging Face Llama directory
// with tokenizer.json), then copied to <tmp>/<name> for each row that corrupts it.
const std::string& converted_stories() {
  static TempDir dir;
  static const std::string path = [] {
    const std::string out = dir.file("stories-hf");
    const CliResult r = run_guarded("convert --model " + q(data_file(kStoriesBin)) + " --tokenizer " +
                                    q(data_file(kTok512)) + " --out " + q(out) + " -q");
    if (r.exit_code != 0) throw std::runtime_error("rankrl convert of stories260K failed: " + r.err);
    return out;
  }();
  return path;
}

std::string copy_stories_hf(const TempDir& tmp, const std::string& name = "hf") {
  const std::string dir = tmp.file(name);
  fs::copy(converted_stories(), dir, fs::copy_options::recursive);
  return dir;
}

const char* const kShard1 = "model-00001-of-00002.safetensors";
const char* const kShard2 = "model-00002-of-00002.safetensors";

// Splits <d>/model.safetensors into two shards (`second` alone in shard 2, the rest in shard 1)
// with a correct model.safetensors.index.json; returns the index for rows to corrupt.
json split_in_two_shards(const std::string& d, const std::string& second) {
  const auto st = Safetensors::read(d + "/model.safetensors");
  Safetensors shard[2];
  json map = json::object();
  for (const auto& [name, e] : st.header.items()) {
    if (name == "__metadata__") continue;
    const uint64_t lo = e["data_offsets"][0].get<uint64_t>(), hi = e["data_offsets"][1].get<uint64_t>();
    Safetensors& dst = shard[name == second ? 1 : 0];
    json entry = e;
    entry["data_offsets"] = {dst.data.size(), dst.data.size() + (hi - lo)};
    dst.data += st.data.substr(lo, hi - lo);
    dst.header[name] = entry;
    map[name] = name == second ? kShard2 : kShard1;
  }
  shard[0].write(d + "/" + kShard1);
  shard[1].write(d + "/" + kShard2);
  fs::remove(d + "/model.safetensors");
  const json index = {{"metadata", json::object()}, {"weight_map", map}};
  write_json(d + "/model.safetensors.index.json", index);
  return index;
}

// stories260K.bin copied to <tmp>/<name> with `mutate` applied to its bytes.
std::string stories_bin(const TempDir& tmp, const std::function<void(std::string&)>& mutate,
                        const std::string& name = "model.bin") {
  std::string bytes = read_text(data_file(kStoriesBin));
  mutate(bytes);
  write_text(tmp.file(name), bytes);
  return tmp.file(name);
}

void set_i32(std::string& bytes, size_t offset, int32_t v) { std::memcpy(&bytes[offset], &v, 4); }

// tok512.bin with the bytes of piece `id` passed through `mutate` (same length).
std::string tok512_with_piece(const TempDir& tmp, int id, const std::function<void(char*, int32_t)>& mutate) {
  std::string bytes = read_text(data_file(kTok512));
  size_t pos = 4;  // uint32 max_token_len, then per id: float32 score, int32 len, bytes
  for (int i = 0; i < id; ++i) {
    int32_t len;
    std::memcpy(&len, &bytes[pos + 4], 4);
    pos += 8 + len;
  }
  int32_t len;
  std::memcpy(&len, &bytes[pos + 4], 4);
  mutate(&bytes[pos + 8], len);
  write_text(tmp.file("tok.bin"), bytes);
  return tmp.file("tok.bin");
}

// A short, valid UTF-8 text file.
std::string good_text(const TempDir& tmp) {
  write_text(tmp.file("good.txt"), "Once upon a time, there was a little girl named Lily.\n");
  return tmp.file("good.txt");
}

// `eval --tasks` on stories260K with the given task file contents.
std::string eval_tasks(const TempDir& tmp, const std::string& contents, const std::string& name = "tasks.jsonl") {
  write_text(tmp.file(name), contents);
  return "eval --model " + q(data_file(kStoriesBin)) + " --tasks " + q(tmp.file(name));
}

std::string inspect(const std::string& model) { return "inspect --model " + q(model); }
std::string inspect_bin(const std::string& bin) {
  return "inspect --model " + q(bin) + " --tokenizer " + q(data_file(kTok512));
}

const char* const kCalib = "tinystories/tinystories_val.txt";
const char* const kArc = "tasks/arc_easy.jsonl";

// `rankrl search` into <tmp>/out with small settings: "--flag value" pairs in `changes` replace
// the default's value (an empty value drops the flag), others are appended.
std::string search(const TempDir& t, const std::string& changes) {
  std::vector<std::pair<std::string, std::string>> flags = {
      {"--model", q(data_file(kStoriesBin))}, {"--calib", q(data_file(kCalib))}, {"--calib-tokens", "1024"},
      {"--ctx", "128"}, {"--heldout-tokens", "1024"}, {"--keep", "0.6"}, {"--rkd", q(data_file(kArc))},
      {"--vrkd", q(data_file(kArc))}, {"--test", q(data_file(kArc))}, {"--limit", "8"}, {"--episodes", "2"},
      {"--threads", "1"}, {"--out", q(t.file("out"))}};
  std::istringstream in(changes);
  std::string extra;
  for (std::string flag, value; in >> flag;) {
    if (in.peek() == ' ' && (in >> std::ws, in.peek() != '-')) in >> value;
    else value.clear();
    auto it = std::find_if(flags.begin(), flags.end(), [&](const auto& f) { return f.first == flag; });
    if (it != flags.end()) it->second = value;
    else extra += " " + flag + (value.empty() ? "" : " " + value);
  }
  std::string cmd = "search";
  for (const auto& [flag, value] : flags)
    if (!value.empty()) cmd += " " + flag + " " + value;
  return cmd + extra;
}

// A plan for stories260K, written once per process by `compress` (no timeout: it is setup, and
// slow on a loaded machine).
const json& stories_plan() {
  static TempDir dir;
  static const json plan = [] {
    const CliResult r = run_cli("compress --model " + q(data_file(kStoriesBin)) + " --keep 0.5 --method svd -q --out " +
                                q(dir.file("small")));
    if (r.exit_code != 0) throw std::runtime_error("rankrl compress failed: " + r.err);
    return read_json(dir.file("small/plan.json"));
  }();
  return plan;
}

// `compress --plan` with that plan, `edit` applied to one factored weight.
std::string edited_plan(const TempDir& t, const std::function<void(json&)>& edit) {
  json plan = stories_plan();
  edit(plan["weights"]["model.layers.0.self_attn.q_proj.weight"]);
  write_json(t.file("plan.json"), plan);
  return "compress --model " + q(data_file(kStoriesBin)) + " --plan " + q(t.file("plan.json")) + " --out " + q(t.file("out"));
}

const char* const kGoodTask = R"({"query": "The cat sat on the", "choices": ["mat", "moon"], "gold": 0})";

// ---- the table ------------------------------------------------------------------------------

struct BadCase {
  std::string name;
  // Writes the bad input under the temp dir and returns the CLI arguments.
  std::function<std::string(const TempDir&)> setup;
  int exit_code;
  std::string file;    // path relative to the temp dir that the error must name first; "" = none
  std::string phrase;  // what the message must say
  std::string output;  // path relative to the temp dir that must NOT exist afterwards; "" = none
};

std::vector<BadCase> cases() {
  std::vector<BadCase> c;
  const auto add = [&](BadCase b) { c.push_back(std::move(b)); };

  // --- safetensors container (gpt2-random-tiny/model.safetensors) ---
  add({"SafetensorsEmpty", [](const TempDir& t) {
         const std::string d = copy_gpt2(t);
         write_text(d + "/model.safetensors", "");
         return inspect(d);
       }, 1, "gpt2/model.safetensors", "too short for a safetensors header"});
  add({"Safetensors7Bytes", [](const TempDir& t) {
         const std::string d = copy_gpt2(t);
         write_text(d + "/model.safetensors", read_text(d + "/model.safetensors").substr(0, 7));
         return inspect(d);
       }, 1, "gpt2/model.safetensors", "too short for a safetensors header (7 bytes"});
  add({"SafetensorsHeaderPastEof", [](const TempDir& t) {
         const std::string d = copy_gpt2(t);
         std::string bytes = read_text(d + "/model.safetensors");
         write_text(d + "/model.safetensors", le64(bytes.size()) + bytes.substr(8));
         return inspect(d);
       }, 1, "gpt2/model.safetensors", "runs past the end of the file"});
  add({"SafetensorsAbsurdHeaderLength", [](const TempDir& t) {
         const std::string d = copy_gpt2(t);
         std::string bytes = read_text(d + "/model.safetensors");
         write_text(d + "/model.safetensors", le64(uint64_t(1) << 62) + bytes.substr(8));
         return inspect(d);
       }, 1, "gpt2/model.safetensors", "is absurd"});
  add({"SafetensorsHeaderNotJson", [](const TempDir& t) {
         const std::string d = copy_gpt2(t);
         const std::string h = "{\"transformer.wte.weight\": {\"dtype\": F32";
         write_text(d + "/model.safetensors", le64(h.size()) + h + std::string(64, '\0'));
         return inspect(d);
       }, 1, "gpt2/model.safetensors", "header is not valid JSON"});
  add({"SafetensorsHeaderNotObject", [](const TempDir& t) {
         const std::string d = copy_gpt2(t);
         const std::string h = "[1, 2, 3]";
         write_text(d + "/model.safetensors", le64(h.size()) + h + std::string(64, '\0'));
         return inspect(d);
       }, 1, "gpt2/model.safetensors", "header is not a JSON object"});
  add({"SafetensorsDuplicateTensor", [](const TempDir& t) {
         const std::string d = copy_gpt2(t);
         const std::string h = R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},)"
                               R"( "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})";
         write_text(d + "/model.safetensors", le64(h.size()) + h + std::string(8, '\0'));
         return inspect(d);
       }, 1, "gpt2/model.safetensors", "names tensor 'a' twice"});
  add({"SafetensorsUnknownDtype", [](const TempDir& t) {
         const std::string d = copy_gpt2(t);
         auto st = Safetensors::read(d + "/model.safetensors");
         st.header["transformer.ln_f.weight"]["dtype"] = "Q4_K";
         st.write(d + "/model.safetensors");
         return inspect(d);
       }, 1, "gpt2/model.safetensors", "unknown dtype 'Q4_K'"});
  add({"SafetensorsShapeSizeMismatch", [](const TempDir& t) {
         const std::string d = copy_gpt2(t);
         auto st = Safetensors::read(d + "/model.safetensors");
         st.header["transformer.wpe.weight"]["shape"] = {1024, 3};
         st.write(d + "/model.safetensors");
         return inspect(d);
       }, 1, "gpt2/model.safetensors", "needs 12288 bytes but data_offsets span 8192"});
  add({"SafetensorsOffsetsOutOfRange", [](const TempDir& t) {
         const std::string d = copy_gpt2(t);
         auto st = Safetensors::read(d + "/model.safetensors");
         const uint64_t size = st.data.size();
         st.header["transformer.ln_f.weight"]["data_offsets"] = {size, size + 8};
         st.write(d + "/model.safetensors");
         return inspect(d);
       }, 1, "gpt2/model.safetensors", "is past the data buffer"});
  add({"SafetensorsOverlappingOffsets", [](const TempDir& t) {
         const std::string d = copy_gpt2(t);
         auto st = Safetensors::read(d + "/model.safetensors");
         st.header["transformer.h.0.ln_1.bias"]["data_offsets"] =
             st.header["transformer.h.0.ln_1.weight"]["data_offsets"];
         st.write(d + "/model.safetensors");
         return inspect(d);
       }, 1, "gpt2/model.safetensors", "overlap in the data buffer"});
  add({"SafetensorsIntegerWeights", [](const TempDir& t) {
         const std::string d = copy_gpt2(t);
         auto st = Safetensors::read(d + "/model.safetensors");
         st.header["transformer.ln_f.weight"]["dtype"] = "I32";
         st.write(d + "/model.safetensors");
         return inspect(d);
       }, 1, "gpt2/model.safetensors", "weights must be F32, F16 or BF16"});

  // --- checkpoint contents against the config ---
  add({"MissingTensor", [](const TempDir& t) {
         const std::string d = copy_gpt2(t);
         auto st = Safetensors::read(d + "/model.safetensors");
         st.header.erase("transformer.h.0.ln_2.bias");
         st.write(d + "/model.safetensors");
         return inspect(d);
       }, 1, "gpt2/model.safetensors", "missing tensor 'transformer.h.0.ln_2.bias'"});
  add({"WrongTensorShape", [](const TempDir& t) {
         const std::string d = copy_gpt2(t);
         auto st = Safetensors::read(d + "/model.safetensors");
         st.header["transformer.h.0.attn.c_attn.weight"]["shape"] = {6, 2};  // same bytes, transposed
         st.write(d + "/model.safetensors");
         return inspect(d);
       }, 1, "gpt2/model.safetensors", "'transformer.h.0.attn.c_attn.weight' has shape [2, 6]"});
  add({"NaNWeight", [](const TempDir& t) {
         const std::string d = copy_gpt2(t);
         auto st = Safetensors::read(d + "/model.safetensors");
         st.set_f32("transformer.ln_f.weight", 1, std::numeric_limits<float>::quiet_NaN());
         st.write(d + "/model.safetensors");
         return inspect(d) + " --check-values";  // inspect reads no tensor data without it
       }, 1, "gpt2/model.safetensors", "'transformer.ln_f.weight' contains 1 NaN/Inf value(s)"});
  add({"InfWeight", [](const TempDir& t) {
         const std::string d = copy_stories_hf(t);
         auto st = Safetensors::read(d + "/model.safetensors");
         st.set_f32("model.layers.2.mlp.down_proj.weight", 17, -std::numeric_limits<float>::infinity());
         st.write(d + "/model.safetensors");
         return "eval --model " + q(d) + " --text " + q(good_text(t));
       }, 1, "hf/model.safetensors", "'model.layers.2.mlp.down_proj.weight' contains 1 NaN/Inf"});
  add({"ShardedIndexMissingShard", [](const TempDir& t) {
         const std::string d = copy_stories_hf(t);
         auto st = Safetensors::read(d + "/model.safetensors");
         fs::rename(d + "/model.safetensors", d + "/model-00001-of-00002.safetensors");
         json map = json::object();
         for (const auto& [name, e] : st.header.items())
           if (name != "__metadata__") map[name] = "model-00001-of-00002.safetensors";
         map["model.norm.weight"] = "model-00002-of-00002.safetensors";
         write_json(d + "/model.safetensors.index.json", {{"metadata", json::object()}, {"weight_map", map}});
         return inspect(d);
       }, 1, "hf/model.safetensors.index.json", "shard 'model-00002-of-00002.safetensors' does not exist"});
  add({"ShardedIndexEscapesDirectory", [](const TempDir& t) {
         const std::string d = copy_stories_hf(t);
         fs::rename(d + "/model.safetensors", t.file("outside.safetensors"));
         write_json(d + "/model.safetensors.index.json",
                    {{"weight_map", {{"model.norm.weight", "../outside.safetensors"}}}});
         return inspect(d);
       }, 1, "hf/model.safetensors.index.json", "outside the checkpoint directory"});
  add({"ShardedIndexNotJson", [](const TempDir& t) {
         const std::string d = copy_stories_hf(t);
         fs::remove(d + "/model.safetensors");
         write_text(d + "/model.safetensors.index.json", "{\"weight_map\": {\"model.norm.weight\": ");
         return inspect(d);
       }, 1, "hf/model.safetensors.index.json", "not valid JSON"});

  add({"ShardedTensorInTheOtherShard", [](const TempDir& t) {
         const std::string d = copy_stories_hf(t);
         json index = split_in_two_shards(d, "model.norm.weight");
         index["weight_map"]["model.layers.0.input_layernorm.weight"] = kShard2;  // it is in shard 1
         write_json(d + "/model.safetensors.index.json", index);
         return inspect(d);
       }, 1, std::string("hf/") + kShard2,
       "the index lists tensor 'model.layers.0.input_layernorm.weight' in this shard, but it is absent (it is in "});
  add({"ShardedIndexListsAbsentTensor", [](const TempDir& t) {
         const std::string d = copy_stories_hf(t);
         json index = split_in_two_shards(d, "model.norm.weight");
         index["weight_map"]["model.extra.weight"] = kShard2;
         write_json(d + "/model.safetensors.index.json", index);
         return inspect(d);
       }, 1, std::string("hf/") + kShard2, "the index lists tensor 'model.extra.weight' in this shard, but it is absent"});
  add({"ShardedIndexLacksRequiredTensor", [](const TempDir& t) {
         const std::string d = copy_stories_hf(t);
         json index = split_in_two_shards(d, "model.norm.weight");
         index["weight_map"].erase("model.layers.1.mlp.up_proj.weight");
         write_json(d + "/model.safetensors.index.json", index);
         return inspect(d);
       }, 1, "hf/model.safetensors.index.json", "missing tensor 'model.layers.1.mlp.up_proj.weight'"});
  add({"ShardedTensorRunsPastItsShard", [](const TempDir& t) {
         const std::string d = copy_stories_hf(t);
         split_in_two_shards(d, "model.norm.weight");
         auto st = Safetensors::read(d + "/" + kShard2);
         st.data.resize(st.data.size() / 2);  // the shard was cut short
         st.write(d + "/" + kShard2);
         return "eval --model " + q(d) + " --text " + q(good_text(t));
       }, 1, std::string("hf/") + kShard2, "is past the data buffer"});

  // --- llama2.c checkpoints ---
  add({"Llama2cTruncated", [](const TempDir& t) {
         return inspect_bin(stories_bin(t, [](std::string& b) { b.resize(b.size() / 2); }));
       }, 1, "model.bin", "truncated llama2.c checkpoint"});
  add({"Llama2cShorterThanHeader", [](const TempDir& t) {
         return inspect_bin(stories_bin(t, [](std::string& b) { b.resize(20); }));
       }, 1, "model.bin", "too short for a llama2.c header"});
  add({"Llama2cZeroDims", [](const TempDir& t) {
         return inspect_bin(stories_bin(t, [](std::string& b) { set_i32(b, 0, 0); }));
       }, 1, "model.bin", "every dimension must be positive"});
  add({"Llama2cHugeDims", [](const TempDir& t) {  // sizes that overflow 64-bit products
         return inspect_bin(stories_bin(t, [](std::string& b) {
           for (int i : {0, 1, 2, 6}) set_i32(b, 4 * i, 0x7ffffff0);
         }));
       }, 1, "model.bin", "truncated llama2.c checkpoint"});
  add({"Llama2cTrailingBytes", [](const TempDir& t) {
         return inspect_bin(stories_bin(t, [](std::string& b) { b += std::string(12, '\0'); }));
       }, 1, "model.bin", "12 unexpected trailing bytes"});
  add({"Llama2cNaNWeight", [](const TempDir& t) {
         return "generate --model " + q(stories_bin(t, [](std::string& b) {
                  const float nan = std::numeric_limits<float>::quiet_NaN();
                  std::memcpy(&b[28 + 4 * 1000], &nan, 4);  // inside the token embedding
                })) + " --tokenizer " + q(data_file(kTok512)) + " -n 4";
       }, 1, "model.bin", "'model.embed_tokens.weight' contains 1 NaN/Inf"});

  // --- convert (writes --out): nothing may be left behind ---
  add({"ConvertTruncatedBin", [](const TempDir& t) {
         const std::string bin = stories_bin(t, [](std::string& b) { b.resize(b.size() - 1); });
         return "convert --model " + q(bin) + " --tokenizer " + q(data_file(kTok512)) + " --out " + q(t.file("out"));
       }, 1, "model.bin", "truncated llama2.c checkpoint", "out"});
  add({"ConvertZeroDims", [](const TempDir& t) {
         const std::string bin = stories_bin(t, [](std::string& b) { set_i32(b, 4 * 3, 0); });
         return "convert --model " + q(bin) + " --tokenizer " + q(data_file(kTok512)) + " --out " + q(t.file("out"));
       }, 1, "model.bin", "every dimension must be positive", "out"});
  add({"ConvertTruncatedTokenizerBin", [](const TempDir& t) {
         write_text(t.file("tok.bin"), read_text(data_file(kTok512)).substr(0, 3001));
         return "convert --model " + q(data_file(kStoriesBin)) + " --tokenizer " + q(t.file("tok.bin")) +
                " --out " + q(t.file("out"));
       }, 1, "tok.bin", "truncated tokenizer.bin", "out"});
  add({"ConvertTokenizerPieceNotUtf8", [](const TempDir& t) {
         const std::string tok = tok512_with_piece(t, 300, [](char* piece, int32_t) { piece[0] = '\xff'; });
         return "convert --model " + q(data_file(kStoriesBin)) + " --tokenizer " + q(tok) + " --out " + q(t.file("out"));
       }, 1, "tok.bin", "token 300 is not valid UTF-8", "out"});
  add({"ConvertTokenizerPiecesCollide", [](const TempDir& t) {
         // Piece 308 (" th") becomes a second " ha" (piece 300): fine for llama2.c, not for HF.
         const std::string tok = tok512_with_piece(t, 308, [](char* piece, int32_t) { piece[2] = 'a'; piece[1] = 'h'; });
         return "convert --model " + q(data_file(kStoriesBin)) + " --tokenizer " + q(tok) + " --out " + q(t.file("out"));
       }, 1, "tok.bin", "tokens 300 and 308 both become", "out"});
  add({"ConvertFromHfDirectory", [](const TempDir& t) {
         return "convert --model " + q(copy_stories_hf(t)) + " --tokenizer " + q(data_file(kTok512)) +
                " --out " + q(t.file("out"));
       }, 1, "hf", "not a llama2.c checkpoint", "out"});

  // --- config.json ---
  const auto mutate_config = [](const std::function<void(json&)>& f) {
    return [f](const TempDir& t) {
      const std::string d = copy_stories_hf(t);
      json j = read_json(d + "/config.json");
      f(j);
      write_json(d + "/config.json", j);
      return inspect(d);
    };
  };
  add({"ConfigMalformed", [](const TempDir& t) {
         const std::string d = copy_stories_hf(t);
         write_text(d + "/config.json", "{\"model_type\": \"llama\", \"hidden_size\": 64,,}");
         return inspect(d);
       }, 1, "hf/config.json", "config.json is not valid JSON"});
  add({"ConfigNotObject", [](const TempDir& t) {
         const std::string d = copy_stories_hf(t);
         write_text(d + "/config.json", "[\"llama\"]");
         return inspect(d);
       }, 1, "hf/config.json", "config.json is not a JSON object"});
  add({"ConfigMissingField", mutate_config([](json& j) { j.erase("hidden_size"); }), 1, "hf/config.json",
       "field 'hidden_size' is missing"});
  add({"ConfigWrongType", mutate_config([](json& j) { j["num_hidden_layers"] = "5"; }), 1, "hf/config.json",
       "field 'num_hidden_layers' must be an integer"});
  add({"ConfigNegativeSize", mutate_config([](json& j) { j["vocab_size"] = -512; }), 1, "hf/config.json",
       "field 'vocab_size' must be a positive integer"});
  add({"ConfigUnsupportedArchitecture", mutate_config([](json& j) {
         j["model_type"] = "bert";
         j["architectures"] = {"BertForMaskedLM"};
       }), 1, "hf/config.json", "'bert' is not supported"});
  add({"ConfigAbsurdLayerCount", mutate_config([](json& j) { j["num_hidden_layers"] = 100000000; }), 1,
       "hf/config.json", "100000000 layers, but the weights hold only"});
  add({"ConfigShapeDisagreesWithWeights", mutate_config([](json& j) { j["intermediate_size"] = 256; }), 1,
       "hf/model.safetensors", "the config implies [256, 64]"});

  // --- tokenizers ---
  add({"TokenizerJsonMalformed", [](const TempDir& t) {
         const std::string d = copy_stories_hf(t);
         const std::string text = read_text(d + "/tokenizer.json");
         write_text(d + "/tokenizer.json", text.substr(0, text.size() / 2));
         return inspect(d);
       }, 1, "hf/tokenizer.json", "malformed JSON"});
  add({"TokenizerJsonMissingModel", [](const TempDir& t) {
         const std::string d = copy_stories_hf(t);
         json j = read_json(d + "/tokenizer.json");
         j.erase("model");
         write_json(d + "/tokenizer.json", j);
         return inspect(d);
       }, 1, "hf/tokenizer.json", "missing \"model\""});
  add({"TokenizerJsonUnsupportedModel", [](const TempDir& t) {
         const std::string d = copy_stories_hf(t);
         json j = read_json(d + "/tokenizer.json");
         j["model"]["type"] = "WordPiece";
         write_json(d + "/tokenizer.json", j);
         write_text(t.file("a.txt"), "hello");
         return "tokenize --model " + q(d) + " --text " + q(t.file("a.txt"));
       }, 1, "hf/tokenizer.json", "unsupported model type"});
  add({"TokenizerJsonMergeNotInVocab", [](const TempDir& t) {
         const std::string d = copy_gpt2(t);
         json j = read_json(d + "/tokenizer.json");
         j["model"]["merges"][3] = "xyzzy plugh";
         write_json(d + "/tokenizer.json", j);
         write_text(t.file("a.txt"), "hello");
         return "tokenize --tokenizer " + q(d + "/tokenizer.json") + " --text " + q(t.file("a.txt"));
       }, 1, "gpt2/tokenizer.json", "is not in the vocabulary"});
  add({"TokenizerBinTruncated", [](const TempDir& t) {
         write_text(t.file("tok.bin"), read_text(data_file(kTok512)).substr(0, 3001));
         return "inspect --model " + q(data_file(kStoriesBin)) + " --tokenizer " + q(t.file("tok.bin"));
       }, 1, "tok.bin", "truncated tokenizer.bin"});
  add({"TokenizerBinNegativeLength", [](const TempDir& t) {
         std::string bytes = read_text(data_file(kTok512));
         set_i32(bytes, 4 + 4, -7);  // token 0: float score, then int32 length
         write_text(t.file("tok.bin"), bytes);
         return "inspect --model " + q(data_file(kStoriesBin)) + " --tokenizer " + q(t.file("tok.bin"));
       }, 1, "tok.bin", "negative length"});

  // --- task files ---
  add({"TasksMalformedLine", [](const TempDir& t) {
         return eval_tasks(t, std::string(kGoodTask) + "\n" + kGoodTask + "\n\n{\"query\": \"x\", \"choices\": [\n");
       }, 1, "tasks.jsonl", "line 4: malformed JSON"});
  add({"TasksGoldOutOfRange", [](const TempDir& t) {
         return eval_tasks(t, std::string(kGoodTask) + "\n" +
                                  R"({"query": "A dog", "choices": ["barks", "meows"], "gold": 2})" + "\n");
       }, 1, "tasks.jsonl", "line 2: gold index 2 out of range"});
  add({"TasksOneChoice", [](const TempDir& t) {
         return eval_tasks(t, R"({"query": "A dog", "choices": ["barks"], "gold": 0})" "\n");
       }, 1, "tasks.jsonl", "line 1: fewer than two choices"});
  add({"TasksGoldNotInteger", [](const TempDir& t) {
         return eval_tasks(t, R"({"query": "A dog", "choices": ["barks", "meows"], "gold": "0"})" "\n");
       }, 1, "tasks.jsonl", "line 1: missing or non-integer field 'gold'"});
  add({"TasksEmptyFile", [](const TempDir& t) { return eval_tasks(t, "\n  \n"); }, 1, "tasks.jsonl",
       "no task items"});
  add({"PiqaLabelsWrongLength", [](const TempDir& t) {
         std::string items;
         const std::string all = read_text(data_file("tasks/piqa_valid_original.jsonl"));
         for (size_t pos = 0, n = 0; n < 5; ++n) {
           const size_t end = all.find('\n', pos) + 1;
           items += all.substr(pos, end - pos);
           pos = end;
         }
         write_text(t.file("piqa-labels.lst"), "0\n1\n1\n0\n");
         return eval_tasks(t, items, "piqa.jsonl");
       }, 1, "piqa-labels.lst", "4 labels for 5 items"});
  add({"PiqaLabelsMissing", [](const TempDir& t) {
         return eval_tasks(t, R"({"goal": "Open a jar", "sol1": "Twist the lid", "sol2": "Eat the lid"})" "\n",
                           "piqa.jsonl");
       }, 1, "piqa.jsonl", "needs a labels file"});

  // --- text files ---
  add({"TextNotUtf8", [](const TempDir& t) {
         write_text(t.file("bad.txt"), "Once upon a time \xff\xfe there was a fox.\n");
         return "eval --model " + q(data_file(kStoriesBin)) + " --text " + q(t.file("bad.txt"));
       }, 1, "bad.txt", "not valid UTF-8 (byte 17)"});
  add({"TextEmpty", [](const TempDir& t) {
         write_text(t.file("empty.txt"), "");
         return "eval --model " + q(data_file(kStoriesBin)) + " --text " + q(t.file("empty.txt"));
       }, 1, "empty.txt", "too short"});
  add({"TextMissing", [](const TempDir& t) {
         return "eval --model " + q(data_file(kStoriesBin)) + " --text " + q(t.file("nope.txt"));
       }, 1, "nope.txt", "cannot open"});

  // --- model paths ---
  add({"ModelPathMissing", [](const TempDir& t) { return inspect(t.file("no-such-model.bin")); }, 1,
       "no-such-model.bin", "no such file or directory"});
  add({"ModelDirWithoutConfig", [](const TempDir& t) {
         fs::create_directories(t.file("emptydir"));
         write_text(t.file("emptydir/README"), "not a model\n");
         return inspect(t.file("emptydir"));
       }, 1, "emptydir", "no config.json"});
  add({"ModelDirWithoutWeights", [](const TempDir& t) {
         const std::string d = copy_stories_hf(t);
         fs::remove(d + "/model.safetensors");
         return inspect(d);
       }, 1, "hf", "no model.safetensors or model.safetensors.index.json"});
  add({"ModelTokenizerTooLarge", [](const TempDir& t) {
         const std::string d = copy_stories_hf(t);
         return "inspect --model " + q(d) + " --tokenizer " + q(copy_gpt2(t) + "/tokenizer.json");
       }, 1, "gpt2/tokenizer.json", "tokenizer has 50257 tokens but the model's vocabulary is 512"});

  // --- usage (exit 2) ---
  add({"CtxLargerThanModel", [](const TempDir& t) {
         return "eval --model " + q(data_file(kStoriesBin)) + " --text " + q(good_text(t)) + " --ctx 513";
       }, 2, "", "--ctx 513 exceeds the model's maximum sequence length 512"});
  add({"CtxTooSmall", [](const TempDir& t) {
         return "eval --model " + q(data_file(kStoriesBin)) + " --text " + q(good_text(t)) + " --ctx 1";
       }, 2, "", "--ctx must be at least 2"});
  add({"MissingRequiredFlag", [](const TempDir& t) { return "eval --text " + q(good_text(t)); }, 2, "",
       "--model is required"});
  add({"FlagNotANumber", [](const TempDir& t) {
         return "eval --model " + q(data_file(kStoriesBin)) + " --text " + q(good_text(t)) + " --ctx many";
       }, 2, "", "--ctx"});
  add({"UnknownFlag", [](const TempDir&) { return "inspect --model x --frobnicate"; }, 2, "",
       "--frobnicate"});
  add({"NoSubcommand", [](const TempDir&) { return ""; }, 2, "", "subcommand"});
  add({"EvalWithoutTextOrTasks", [](const TempDir&) {
         return "eval --model " + q(data_file(kStoriesBin));
       }, 2, "", "eval needs --text, --tasks and/or --speed"});
  // --- search: every flag and input checked before anything is written (no OUT left behind) ---
  add({"SearchWithoutCalibTokens", [](const TempDir& t) { return search(t, "--calib-tokens"); }, 2, "",
       "--calib requires --calib-tokens", "out"});
  add({"SearchWithoutCtx", [](const TempDir& t) { return search(t, "--ctx"); }, 2, "", "--calib requires --ctx", "out"});
  add({"SearchCtxOne", [](const TempDir& t) { return search(t, "--ctx 1"); }, 2, "", "--ctx must be at least 2", "out"});
  add({"SearchCtxAboveModel", [](const TempDir& t) { return search(t, "--ctx 1024"); }, 2, "",
       "--ctx 1024 exceeds the model's maximum sequence length 512", "out"});
  add({"SearchKeepTiny", [](const TempDir& t) { return search(t, "--keep 0.001"); }, 2, "",
       "below what factoring every weight at the smallest rank costs", "out"});
  add({"SearchKeepOne", [](const TempDir& t) { return search(t, "--keep 1"); }, 2, "", "--keep must be in (0, 1)", "out"});
  add({"SearchKeepAboveOne", [](const TempDir& t) { return search(t, "--keep 1.5"); }, 2, "", "--keep must be in (0, 1)", "out"});
  add({"SearchUnknownMethod", [](const TempDir& t) { return search(t, "--methods svd,foo"); }, 2, "",
       "unknown decomposition method 'foo'", "out"});
  add({"SearchUnknownReward", [](const TempDir& t) { return search(t, "--reward foo"); }, 2, "", "unknown --reward 'foo'", "out"});
  add({"SearchUnknownAgent", [](const TempDir& t) { return search(t, "--agent dqn"); }, 2, "", "unknown agent 'dqn'", "out"});
  add({"SearchPromoteZero", [](const TempDir& t) { return search(t, "--promote 0"); }, 2, "", "--promote", "out"});
  add({"SearchResumeAndForce", [](const TempDir& t) { return search(t, "--resume --force"); }, 2, "", "not both", "out"});
  add({"SearchHeldoutMissing", [](const TempDir& t) { return search(t, "--heldout " + q(t.file("nope.txt"))); }, 1,
       "nope.txt", "cannot open", "out"});
  add({"SearchTestMissing", [](const TempDir& t) { return search(t, "--test " + q(t.file("nope.jsonl"))); }, 1,
       "nope.jsonl", "cannot open", "out"});
  add({"SearchCalibNotUtf8", [](const TempDir& t) {
         write_text(t.file("bin.txt"), std::string("\x7f" "ELF\x02\x01\x01") + std::string(4000, '\0') + "\xff\xfe");
         return search(t, "--calib " + q(t.file("bin.txt")));
       }, 1, "bin.txt", "not valid UTF-8", "out"});
  add({"CalibrateCalibNotUtf8", [](const TempDir& t) {
         write_text(t.file("bin.txt"), "Once upon a time \xff\xfe there was a fox.\n");
         return "calibrate --model " + q(data_file(kStoriesBin)) + " --calib " + q(t.file("bin.txt")) +
                " --calib-tokens 8 --ctx 8 --out " + q(t.file("out"));
       }, 1, "bin.txt", "not valid UTF-8 (byte 17)", "out"});

  // --- compress: edge values ---
  add({"CompressKeepOne", [](const TempDir& t) {
         return "compress --model " + q(data_file(kStoriesBin)) + " --keep 1 --method svd --out " + q(t.file("out"));
       }, 2, "", "--keep must be in (0, 1)", "out"});
  add({"CompressUnknownMethod", [](const TempDir& t) {
         return "compress --model " + q(data_file(kStoriesBin)) + " --keep 0.5 --method foo --out " + q(t.file("out"));
       }, 2, "", "unknown decomposition method 'foo'", "out"});
  add({"PlanRankNotInteger", [](const TempDir& t) { return edited_plan(t, [](json& w) { w["rank"] = 5.5; }); }, 1,
       "plan.json", "weight 'model.layers.0.self_attn.q_proj.weight': rank 5.5 is not an integer", "out"});
  add({"PlanRankMissing", [](const TempDir& t) { return edited_plan(t, [](json& w) { w.erase("rank"); }); }, 1,
       "plan.json", "weight 'model.layers.0.self_attn.q_proj.weight': rank missing", "out"});
  return c;
}

class BadInput : public ::testing::TestWithParam<BadCase> {};

// Every file under `dir` whose name marks an unfinished atomic write.
std::vector<std::string> temp_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) out.push_back(e.path().string());
  return out;
}

TEST_P(BadInput, FailsWithOneLineError) {
  RANKRL_REQUIRE_DATA(kStoriesBin);
  RANKRL_REQUIRE_DATA(kGpt2);
  const BadCase& bc = GetParam();
  TempDir tmp;
  const std::string args = bc.setup(tmp);

  const auto start = std::chrono::steady_clock::now();
  const CliResult r = run_guarded(args);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  SCOPED_TRACE("rankrl " + args + "\nstderr: " + r.err);

  EXPECT_NE(r.exit_code, 124) << "timed out after " << kTimeoutSeconds << " s";
  EXPECT_EQ(r.exit_code, bc.exit_code);
  EXPECT_LT(seconds, kMaxSeconds);

  const std::string prefix = "rankrl: error: ";
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.rfind(prefix, 0), 0u) << "stderr must start with '" << prefix << "'";
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "stderr must be exactly one line";
  EXPECT_EQ(r.err.back(), '\n');
  if (!bc.file.empty()) {
    const std::string named = prefix + tmp.file(bc.file) + ": ";
    EXPECT_EQ(r.err.rfind(named, 0), 0u) << "the error must name " << tmp.file(bc.file) << " first";
  }
  EXPECT_NE(r.err.find(bc.phrase), std::string::npos) << "missing phrase: " << bc.phrase;
  EXPECT_EQ(r.out, "") << "nothing may be printed on stdout";

  if (!bc.output.empty()) EXPECT_FALSE(fs::exists(tmp.file(bc.output))) << "left behind: " << bc.output;
  EXPECT_EQ(temp_files(tmp.path()), std::vector<std::string>{}) << "unfinished temp files left behind";
}

INSTANTIATE_TEST_SUITE_P(Cli, BadInput, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<BadCase>& info) { return info.param.name; });

// The table must keep covering the contract's list of cases.
TEST(BadInputTable, HasEnoughDistinctCases) {
  const auto all = cases();
  std::set<std::string> names;
  for (const auto& c : all) names.insert(c.name);
  EXPECT_EQ(names.size(), all.size()) << "case names must be unique";
  EXPECT_GE(all.size(), 25u);
}

}  // namespace
}  // namespace rankrl::test
