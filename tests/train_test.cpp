// train-tokenizer against the naive Python reference (tests/reference/bpe_train_ref.py ->
// tests/expected/bpe_train_ref.json), and `rankrl train` on a tiny model: loss falls, resume is
// bit-identical, the output directory loads and evaluates, autograd matches finite differences.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/transformer.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "train/tokenizer_trainer.h"
#include "train/trainer.h"

namespace rankrl {
namespace {

using nlohmann::json;

json reference() {
  return json::parse(test::read_text(std::string(RANKRL_SOURCE_DIR) + "/tests/expected/bpe_train_ref.json"));
}

std::vector<std::string> reference_files() {
  const json ref = reference();  // named: iterating a member of a temporary would dangle
  std::vector<std::string> files;
  for (const json& f : ref["files"]) files.push_back(f.get<std::string>());
  return files;
}

const std::vector<std::string> kRoundTrip = {
    "", "plain words", "café naïve Zürich résumé", "日本語のテキスト、東京。", "emoji 🙂🙃 and ZWJ 👩‍💻",
    "  leading and trailing spaces  ", "tabs\tand\nnew\r\nlines\n\n", "numbers 3.14159 1e-9 ١٢٣",
    "it's they'll we've I'd", "mixed Ωmega ∑ ∫ ≠ ≤"};  // no <|endoftext|>: decode omits BOS/EOS

TEST(BpeTrain, MergesAndEncodingsMatchReference) {
  const json ref = reference();
  const std::vector<std::string> files = reference_files();
  for (const json& run : ref["runs"]) {
    BpeTrainOptions o;
    o.vocab_size = run["vocab_size"];
    o.min_frequency = run["min_frequency"];
    const BpeTrainResult r = train_bpe(files, o);
    const json tj = json::parse(bpe_tokenizer_json(r));
    ASSERT_EQ(tj["model"]["merges"], run["merges"]) << "vocab " << o.vocab_size;
    EXPECT_EQ(int64_t(r.tokens.size()), run["n_tokens"].get<int64_t>());
    auto tok = parse_tokenizer_json(bpe_tokenizer_json(r), bpe_tokenizer_config_json(r), "trained");
    EXPECT_EQ(tok->vocab_size(), run["n_tokens"].get<int32_t>());
    EXPECT_EQ(tok->bos_id(), 0);
    EXPECT_EQ(tok->eos_id(), 0);
    for (const json& e : run["encodings"])
      EXPECT_EQ(tok->encode_with_bos(e["text"].get<std::string>()), e["ids"].get<std::vector<int32_t>>())
          << e["text"];
    for (const std::string& s : kRoundTrip) EXPECT_EQ(tok->decode(tok->encode(s)), s);
  }
}

TEST(BpeTrain, CliWritesTokenizerThatLoads) {
  test::TempDir dir;
  const std::vector<std::string> files = reference_files();
  test::write_text(dir.file("a.txt"), files[0]);
  test::write_text(dir.file("b.txt"), files[1]);
  auto res = test::run_cli("train-tokenizer --corpus " + dir.file("a.txt") + " " + dir.file("b.txt") +
                           " --vocab-size 400 --min-frequency 1 --out " + dir.file("tok") + " --json");
  ASSERT_EQ(res.exit_code, 0) << res.err;
  const json out = json::parse(res.out);
  EXPECT_EQ(out["vocab_size"], 400);
  auto tok = load_tokenizer(dir.file("tok"));
  EXPECT_EQ(tok->vocab_size(), 400);
  EXPECT_TRUE(tok->adds_bos());
  const json ref = reference();
  EXPECT_EQ(tok->encode_with_bos(ref["runs"][1]["encodings"][0]["text"].get<std::string>()),
            ref["runs"][1]["encodings"][0]["ids"].get<std::vector<int32_t>>());
  for (const std::string& s : kRoundTrip) EXPECT_EQ(tok->decode(tok->encode(s)), s);
}

TEST(BpeTrain, CliBadInput) {
  test::TempDir dir;
  auto res = test::run_cli("train-tokenizer --corpus " + dir.file("missing.txt") + " --out " + dir.file("tok"));
  EXPECT_EQ(res.exit_code, 1);
  EXPECT_NE(res.err.find("rankrl: error: " + dir.file("missing.txt")), std::string::npos) << res.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("tok")));
  test::write_text(dir.file("a.txt"), "some text");
  res = test::run_cli("train-tokenizer --corpus " + dir.file("a.txt") + " --vocab-size 100 --out " + dir.file("tok"));
  EXPECT_EQ(res.exit_code, 2);
  EXPECT_FALSE(std::filesystem::exists(dir.file("tok")));
}

TEST(BpeTrain, LargeCorpusIsFast) {
  // ~2 MB of pseudo-random words (an LCG over a few syllables): incremental pair counts keep
  // this to a second or two where a full recount per merge would take minutes.
  static const char* kSyllables[] = {"ka", "to", "ri", "ne", "su", "mo", "la", "pe", "di", "gu",
                                     "an", "el", "is", "or", "ut", "ch", "th", "qu", "x", "é"};
  std::string text;
  uint64_t state = 12345;
  auto next = [&] { return (state = state * 6364136223846793005ull + 1442695040888963407ull) >> 33; };
  while (text.size() < (2u << 20)) {
    text += next() % 10 == 0 ? ".\n" : " ";
    for (uint64_t n = 1 + next() % 4; n > 0; --n) text += kSyllables[next() % 20];
  }
  BpeTrainOptions o;
  o.vocab_size = 2048;
  const BpeTrainResult r = train_bpe({text}, o);
  EXPECT_GT(r.merges.size(), 500u);
  EXPECT_LT(r.seconds, 15.0);
}

// A tiny corpus/tokenizer/model set-up shared by the training tests.
struct TinyRun {
  test::TempDir dir;
  TinyRun() {
    const std::vector<std::string> files = reference_files();
    test::write_text(dir.file("train.txt"), files[0] + files[1] + files[0]);
    test::write_text(dir.file("val.txt"), files[1].substr(0, 3000));
    auto r = test::run_cli("train-tokenizer --corpus " + dir.file("train.txt") +
                           " --vocab-size 400 --out " + dir.file("tok") + " --quiet");
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  std::string args(const std::string& out, int steps, const std::string& lr = "3e-3") const {
    return "train --d-model 32 --layers 2 --heads 4 --ffn 64 --ctx 32 --batch 4 --lr " + lr + " --min-lr 3e-4 "
           "--warmup 5 --eval-every 10 --checkpoint-every 5 --val-tokens 0 --dtype f32 --threads 1 --seed 7"
           " --tokenizer " + dir.file("tok") + " --corpus " + dir.file("train.txt") + " --val " +
           dir.file("val.txt") + " --out " + out + " --steps " + std::to_string(steps) + " --json --quiet";
  }
};

std::vector<json> log_lines(const std::string& path) {
  std::vector<json> out;
  std::istringstream in(test::read_text(path));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

TEST(Train, LossFallsAndOutputLoadsAndEvals) {
  TinyRun t;
  auto r = test::run_cli(t.args(t.dir.file("m"), 40));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json out = json::parse(r.out);
  const std::vector<json> log = log_lines(t.dir.file("m/train_log.jsonl"));
  ASSERT_EQ(log.size(), 4u);
  EXPECT_GT(log.front()["loss"].get<double>(), std::log(400.0) - 0.5);  // ~uniform at the start
  EXPECT_LT(log.back()["loss"].get<double>(), log.front()["loss"].get<double>() - 0.75);
  EXPECT_LT(log.back()["val_ppl"].get<double>(), log.front()["val_ppl"].get<double>());
  // The directory is a Hugging Face Llama model that eval reads; same val perplexity (f32 weights).
  auto e = test::run_cli("eval --model " + t.dir.file("m") + " --text " + t.dir.file("val.txt") +
                         " --ctx 32 --json --threads 1");
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const json ev = json::parse(e.out);
  EXPECT_NEAR(ev["ppl"].get<double>(), out["val_ppl"].get<double>(), 1e-4 * out["val_ppl"].get<double>());
  const json config = json::parse(test::read_text(t.dir.file("m/config.json")));
  EXPECT_EQ(config["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(config["tie_word_embeddings"], true);
  EXPECT_EQ(config["vocab_size"], 400);
}

// A llama2.c tokenizer.bin given to train is converted to tokenizer.json in the output (it was
// copied verbatim, and the model then failed to load with "malformed JSON"); the model evaluates
// to the perplexity train reported.
TEST(Train, Llama2cTokenizerBinIsConvertedForTheOutput) {
  RANKRL_REQUIRE_DATA("stories260K/tok512.bin");
  TinyRun t;
  std::string cmd = t.args(t.dir.file("m"), 2);
  cmd.replace(cmd.find("--tokenizer " + t.dir.file("tok")), std::string("--tokenizer " + t.dir.file("tok")).size(),
              "--tokenizer " + test::data_file("stories260K/tok512.bin"));
  auto r = test::run_cli(cmd);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NO_THROW(json::parse(test::read_text(t.dir.file("m/tokenizer.json"))));
  auto e = test::run_cli("eval --model " + t.dir.file("m") + " --text " + t.dir.file("val.txt") + " --ctx 32 --json --threads 1");
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const double val_ppl = json::parse(r.out)["val_ppl"].get<double>();
  EXPECT_NEAR(json::parse(e.out)["ppl"].get<double>(), val_ppl, 1e-4 * val_ppl);
}

TEST(Train, ResumeIsBitIdentical) {
  TinyRun t;
  auto a = test::run_cli(t.args(t.dir.file("a"), 20));
  ASSERT_EQ(a.exit_code, 0) << a.err;
  auto b1 = test::run_cli(t.args(t.dir.file("b"), 20) + " --stop-after 10");
  ASSERT_EQ(b1.exit_code, 0) << b1.err;
  EXPECT_FALSE(std::filesystem::exists(t.dir.file("b/model.safetensors")));
  auto b2 = test::run_cli(t.args(t.dir.file("b"), 20) + " --resume");
  ASSERT_EQ(b2.exit_code, 0) << b2.err;
  EXPECT_EQ(test::read_text(t.dir.file("a/model.safetensors")), test::read_text(t.dir.file("b/model.safetensors")));
  auto la = log_lines(t.dir.file("a/train_log.jsonl")), lb = log_lines(t.dir.file("b/train_log.jsonl"));
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) EXPECT_EQ(la[i]["loss"], lb[i]["loss"]) << i;
  // A resume with a different model or schedule is refused.
  auto bad = test::run_cli(t.args(t.dir.file("b"), 20, "1e-3") + " --resume");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("train_state.pt"), std::string::npos) << bad.err;
  // --steps may grow on resume: training continues and the log records the change.
  auto more = test::run_cli(t.args(t.dir.file("b"), 25) + " --resume");
  ASSERT_EQ(more.exit_code, 0) << more.err;
  EXPECT_EQ(json::parse(more.out)["step"], 25);
  lb = log_lines(t.dir.file("b/train_log.jsonl"));
  EXPECT_EQ(lb[la.size()]["note"], "steps changed");
  EXPECT_EQ(lb.back()["step"], 25);
}

// --init starts from a finished model's weights: one step at a vanishing learning rate leaves the
// model as it was, so its validation perplexity is the starting model's (by `eval`), far from a
// random start's; a model of another shape is refused naming the file.
TEST(Train, InitStartsFromTheGivenModel) {
  TinyRun t;
  auto a = test::run_cli(t.args(t.dir.file("a"), 20));
  ASSERT_EQ(a.exit_code, 0) << a.err;
  auto e = test::run_cli("eval --model " + t.dir.file("a") + " --text " + t.dir.file("val.txt") +
                         " --ctx 32 --json --threads 1");
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const double start_ppl = json::parse(e.out)["ppl"].get<double>();
  auto frozen = [&](const std::string& out) {
    std::string cmd = t.args(out, 1, "1e-12");
    cmd.replace(cmd.find("--min-lr 3e-4"), 13, "--min-lr 0");
    return cmd;
  };
  auto b = test::run_cli(frozen(t.dir.file("b")) + " --init " + t.dir.file("a"));
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_NEAR(json::parse(b.out)["val_ppl"].get<double>(), start_ppl, 1e-4 * start_ppl);
  auto fresh = test::run_cli(frozen(t.dir.file("c")));
  ASSERT_EQ(fresh.exit_code, 0) << fresh.err;
  EXPECT_GT(json::parse(fresh.out)["val_ppl"].get<double>(), 2 * start_ppl);
  std::string wider = frozen(t.dir.file("d")) + " --init " + t.dir.file("a");
  wider.replace(wider.find("--d-model 32"), 12, "--d-model 48");
  auto bad = test::run_cli(wider);
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find(t.dir.file("a") + ": --init: "), std::string::npos) << bad.err;
}

TEST(Train, GradientMatchesFiniteDifferences) {
  ModelConfig c;
  c.dim = 16;
  c.hidden_dim = 24;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.vocab_size = 11;
  c.max_seq_len = 8;
  c.tie_embeddings = true;
  WeightMap w = init_weights(c, 3, 0.3);
  for (auto& [name, t] : w) t = t.to(at::kDouble).requires_grad_(true);
  // Norm gains away from 1 so their gradients are exercised too.
  at::Tensor& g = w["model.layers.1.post_attention_layernorm.weight"];
  g = (g.detach() + 0.1 * at::arange(c.dim, at::kDouble)).requires_grad_(true);
  w["model.layers.1.post_attention_layernorm.weight"] = g;
  Transformer net(c, w);
  at::Tensor tokens = at::tensor(std::vector<int64_t>{1, 5, 2, 9, 0, 3, 7, 4, 10, 6, 2, 2, 8, 1}).view({2, 7});
  at::Tensor loss = lm_loss(net, tokens);
  loss.backward();
  int checked = 0;
  for (const char* name : {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                           "model.layers.0.self_attn.k_proj.weight", "model.layers.1.mlp.down_proj.weight",
                           "model.layers.1.post_attention_layernorm.weight", "model.norm.weight"}) {
    at::Tensor p = w[name];
    at::Tensor grad = p.grad().flatten();
    for (int64_t i : {int64_t(0), p.numel() / 3, p.numel() - 1}) {
      const double eps = 1e-6;
      at::NoGradGuard no_grad;
      auto flat = p.view({-1});
      const double orig = flat[i].item<double>();
      flat[i].fill_(orig + eps);
      const double up = lm_loss(net, tokens).item<double>();
      flat[i].fill_(orig - eps);
      const double down = lm_loss(net, tokens).item<double>();
      flat[i].fill_(orig);
      const double fd = (up - down) / (2 * eps);
      EXPECT_NEAR(grad[i].item<double>(), fd, 1e-7 + 1e-5 * std::abs(fd)) << name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_EQ(checked, 18);
}

}  // namespace
}  // namespace rankrl
