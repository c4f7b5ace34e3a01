// Language-model training through the same Transformer that eval and compression run: its weights
// are handed to it as leaf tensors with requires_grad, so autograd differentiates the very
// forward pass that scores text.
//
// Data: the corpus file is tokenized as one string, BOS first (exactly like `eval --text`), and
// cut into windows of ctx + 1 tokens starting every ctx tokens (inputs = first ctx, targets =
// last ctx). Sample s of the run (s = step · batch + row) is window perm_e[s mod W] of epoch
// e = s / W, where perm_e is a permutation drawn from (seed, e): the data position is a function of
// the step, so a resumed run reads exactly the batches the uninterrupted run would.
// Optimisation: AdamW (weight decay on matrices and embeddings, not on norm gains), learning rate
// rising linearly over `warmup` steps to `lr`, then cosine down to `min_lr` at `steps`; gradient
// norm clipped to `clip`. Validation: perplexity of the first `val_tokens` tokens of the val file by
// the eval protocol (windows of ctx) every `eval_every` steps and at the end.
// Checkpoint: out/train_state.pt (weights, AdamW state, RNG state, step, data position, the
// options that must not change), written atomically every `checkpoint_every` steps and at the end.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "io/checkpoint.h"
#include "model/config.h"

namespace rankrl {

class Transformer;

struct TrainOptions {
  ModelConfig config;  // vocab_size and max_seq_len are set from the tokenizer and ctx
  std::string tokenizer, corpus, val, out;
  int64_t steps = 1000, batch = 16, ctx = 256;
  double lr = 1e-3, min_lr = 1e-4, weight_decay = 0.1, clip = 1.0, init_std = 0.02;
  int64_t warmup = 100, eval_every = 200, checkpoint_every = 200, val_tokens = 32768;
  uint64_t seed = 1;
  bool resume = false;
  // Non-empty: start from this model's weights (same architecture as `config`; a fresh optimizer
  // and schedule), e.g. to continue a finished model on more text.
  std::string init;
  DType dtype = DType::BF16;   // of the final model.safetensors
  int64_t stop_after = 0;       // > 0: stop (with a checkpoint) after this step, for tests
};

// Runs (or resumes) training and writes out/{config.json, model.safetensors, tokenizer.json,
// tokenizer_config.json, train_log.jsonl, train_state.pt}. Returns a summary (final losses etc.).
nlohmann::json train_model(const TrainOptions& options);

// Fresh weights for `config` (Llama only): N(0, init_std) for matrices and embeddings, the output
// projections (o_proj, down_proj) scaled by 1/sqrt(2·n_layers) (GPT-2's residual scaling), norm
// gains 1. Deterministic in `seed`.
WeightMap init_weights(const ModelConfig& config, uint64_t seed, double init_std = 0.02);

// Mean next-token cross-entropy (nats) of `tokens` [B, T+1]: inputs tokens[:, :T], targets [:, 1:].
at::Tensor lm_loss(const Transformer& net, const at::Tensor& tokens);

// Learning rate at `step` (0-based) of the warm-up + cosine schedule.
double scheduled_lr(const TrainOptions& o, int64_t step);

}  // namespace rankrl
