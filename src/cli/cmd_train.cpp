// rankrl train-tokenizer: byte-level BPE from text files -> tokenizer.json.
// rankrl train: a Llama-architecture model from scratch -> Hugging Face directory.
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/utf8.h"
#include "io/hf_config.h"
#include "train/tokenizer_trainer.h"
#include "train/trainer.h"

namespace rankrl::cli {

namespace {

struct TokTrainOptions {
  std::vector<std::string> corpus;
  std::string out;
  int64_t vocab_size = 4096, min_frequency = 2;
};

struct TrainCliOptions {
  TrainOptions train;
  std::string config, dtype = "bf16";
  int64_t d_model = 0, layers = 6, heads = 8, kv_heads = 0, ffn = 0;
  bool untied = false;
};

ModelConfig model_config(const TrainCliOptions& o) {
  if (!o.train.init.empty() && o.config.empty() && o.d_model <= 0)  // the starting model's own architecture
    return load_checkpoint(o.train.init, LoadOptions{.check_values = false}).config;
  if (!o.config.empty()) {
    if (o.d_model > 0) throw usage_error("give either --config or --d-model, not both");
    ModelConfig c = parse_hf_config(read_file(o.config), o.config);
    if (c.arch != Arch::Llama) throw Error(o.config, "train supports the Llama architecture only");
    return c;
  }
  if (o.d_model <= 0) throw usage_error("train needs --config or --d-model");
  if (o.layers < 1 || o.heads < 1 || o.d_model % o.heads != 0)
    throw usage_error("--layers and --heads must be >= 1 and --heads must divide --d-model");
  const int64_t kv = o.kv_heads > 0 ? o.kv_heads : o.heads;
  if (o.heads % kv != 0) throw usage_error("--kv-heads must divide --heads");
  if ((o.d_model / o.heads) % 2 != 0) throw usage_error("the head size (--d-model / --heads) must be even");
  // SwiGLU's usual size: 8/3 · d rounded up to a multiple of 16. Vocabulary and context come
  // from the tokenizer and --ctx (train_model).
  ModelConfig c = llama_config({o.d_model, o.ffn > 0 ? o.ffn : (8 * o.d_model / 3 + 15) / 16 * 16, o.layers,
                                o.heads, kv, 0, 0});
  c.tie_embeddings = !o.untied;
  return c;
}

}  // namespace

Command add_train_tokenizer(CLI::App& app, Common& common) {
  auto o = std::make_shared<TokTrainOptions>();
  CLI::App* sub = app.add_subcommand(
      "train-tokenizer",
      "Train a byte-level BPE tokenizer (GPT-2 style) and write a Hugging Face tokenizer.json.\n"
      "Each file is pre-tokenized with GPT-2's regex; the most frequent adjacent pair is merged\n"
      "until --vocab-size (ties: smallest left token bytes, then right). Vocabulary: <|endoftext|>\n"
      "(id 0, BOS/EOS), the 256 bytes, then the merges.");
  sub->add_option("--corpus", o->corpus, "UTF-8 text file(s)")->required();
  sub->add_option("--vocab-size", o->vocab_size, "Vocabulary size incl. special and byte tokens (257..)");
  sub->add_option("--min-frequency", o->min_frequency, "Never merge a pair seen fewer times (default 2)");
  sub->add_option("--out", o->out, "Output directory (tokenizer.json, tokenizer_config.json)")->required();
  add_common(sub, common);
  return {sub, [o, &common] {
            if (o->vocab_size < 257 || o->vocab_size > (int64_t(1) << 20))
              throw usage_error("--vocab-size must be in [257, 1048576]");
            if (o->min_frequency < 1) throw usage_error("--min-frequency must be >= 1");
            std::vector<std::string> docs;
            int64_t bytes = 0;
            for (const std::string& path : o->corpus) {
              docs.push_back(read_file(path));
              require_utf8(docs.back(), path);
              bytes += int64_t(docs.back().size());
            }
            BpeTrainOptions opts;
            opts.vocab_size = o->vocab_size;
            opts.min_frequency = o->min_frequency;
            const BpeTrainResult r = train_bpe(docs, opts);
            std::error_code ec;
            std::filesystem::create_directories(o->out, ec);
            check(!ec, o->out, "cannot create directory: " + ec.message());
            write_file_atomic((std::filesystem::path(o->out) / "tokenizer.json").string(), bpe_tokenizer_json(r));
            write_file_atomic((std::filesystem::path(o->out) / "tokenizer_config.json").string(),
                              bpe_tokenizer_config_json(r));
            info("trained " + std::to_string(r.tokens.size()) + " tokens (" + std::to_string(r.merges.size()) +
                 " merges) in " + std::to_string(r.seconds) + " s; wrote " + o->out);
            print_result({{"out", o->out}, {"vocab_size", r.tokens.size()}, {"merges", r.merges.size()},
                          {"corpus_bytes", bytes}, {"words", r.words}, {"distinct_words", r.distinct_words},
                          {"seconds", r.seconds}},
                         common);
            return 0;
          }};
}

Command add_train(CLI::App& app, Common& common) {
  auto o = std::make_shared<TrainCliOptions>();
  TrainOptions& t = o->train;
  CLI::App* sub = app.add_subcommand(
      "train",
      "Train a Llama-architecture model from scratch or from --init (AdamW, linear warm-up then cosine to\n"
      "--min-lr, gradient clipping, validation perplexity every --eval-every steps). The corpus is\n"
      "tokenized as one string (BOS first) and cut into windows of --ctx + 1 tokens, shuffled per\n"
      "epoch from --seed. Writes OUT/train_state.pt every --checkpoint-every steps (--resume\n"
      "continues exactly), OUT/train_log.jsonl, and at the end a Hugging Face directory\n"
      "(config.json, model.safetensors, tokenizer.json) that `rankrl eval --model OUT` loads.");
  sub->add_option("--config", o->config, "config.json of the architecture (LlamaForCausalLM)");
  sub->add_option("--d-model", o->d_model, "Hidden size (instead of --config)");
  sub->add_option("--layers", o->layers, "Layers (default 6)");
  sub->add_option("--heads", o->heads, "Attention heads (default 8)");
  sub->add_option("--kv-heads", o->kv_heads, "Key/value heads (default: --heads)");
  sub->add_option("--ffn", o->ffn, "MLP inner size (default 8/3 d rounded up to 16)");
  sub->add_flag("--untied", o->untied, "Separate lm_head (default: tied to the embedding)");
  sub->add_option("--tokenizer", t.tokenizer, "Tokenizer directory or tokenizer.json")->required();
  sub->add_option("--corpus", t.corpus, "Training text (UTF-8)")->required();
  sub->add_option("--val", t.val, "Validation text (UTF-8)")->required();
  sub->add_option("--out", t.out, "Output directory")->required();
  sub->add_option("--steps", t.steps, "Optimizer steps (default 1000)");
  sub->add_option("--batch", t.batch, "Windows per step (default 16)");
  sub->add_option("--ctx", t.ctx, "Tokens per window = the model's maximum length (default 256)");
  sub->add_option("--lr", t.lr, "Peak learning rate (default 1e-3)");
  sub->add_option("--min-lr", t.min_lr, "Final learning rate of the cosine (default 1e-4)");
  sub->add_option("--warmup", t.warmup, "Linear warm-up steps (default 100)");
  sub->add_option("--weight-decay", t.weight_decay, "AdamW weight decay on matrices (default 0.1)");
  sub->add_option("--clip", t.clip, "Gradient norm clip, 0 = off (default 1.0)");
  sub->add_option("--eval-every", t.eval_every, "Validation every N steps, 0 = only at the end (default 200)");
  sub->add_option("--val-tokens", t.val_tokens, "Tokens of --val scored, 0 = all (default 32768)");
  sub->add_option("--checkpoint-every", t.checkpoint_every, "Training state every N steps (default 200)");
  sub->add_option("--stop-after", t.stop_after, "Stop after this step (with a checkpoint; --resume continues)");
  sub->add_option("--seed", t.seed, "Seed of the initial weights and the data order (default 1)");
  sub->add_flag("--resume", t.resume, "Continue from OUT/train_state.pt");
  sub->add_option("--init", t.init,
                  "Start from this model's weights (fresh optimizer and schedule) instead of random ones; "
                  "its architecture unless --config or --d-model is given");
  sub->add_option("--dtype", o->dtype, "Weights of model.safetensors: bf16 | f16 | f32 (default bf16)");
  add_common(sub, common);
  return {sub, [o, &common] {
            TrainOptions opts = o->train;
            opts.config = model_config(*o);
            if (o->dtype == "bf16") opts.dtype = DType::BF16;
            else if (o->dtype == "f16") opts.dtype = DType::F16;
            else if (o->dtype == "f32") opts.dtype = DType::F32;
            else throw usage_error("--dtype must be bf16, f16 or f32");
            print_result(train_model(opts), common);
            return 0;
          }};
}

}  // namespace rankrl::cli
