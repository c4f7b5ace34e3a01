#include "train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/types.h>  // clip_grad.h uses torch::Tensor without including it
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/serialize/archive.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/utf8.h"
#include "data/hashing.h"
#include "eval/perplexity.h"
#include "model/transformer.h"
#include "tokenizer/files.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;

namespace rankrl {

namespace {

using nlohmann::json;

constexpr const char* kStateFile = "train_state.pt";
constexpr const char* kLogFile = "train_log.jsonl";

// What must not change between a run and its resumption. --steps may change (the cosine then
// continues towards the new end from the current step; the log records the change).
json run_identity(const TrainOptions& o, const std::vector<std::string>& names, const json& init) {
  json id = {{"config", json::parse(hf_config_json(o.config))},
             {"batch", o.batch}, {"ctx", o.ctx}, {"lr", o.lr}, {"min_lr", o.min_lr},
             {"warmup", o.warmup}, {"weight_decay", o.weight_decay}, {"clip", o.clip},
             {"seed", o.seed}, {"init_std", o.init_std}, {"weights", names}};
  if (!init.is_null()) id["init"] = init;  // absent for random starts: older states still resume
  return id;
}

// --init: overwrites the fresh weights `w` with the model's (float32 copies; every tensor the
// architecture needs must be there with the same shape). Returns the starting point's identity
// for the resume check: the weight files by content.
json load_initial_weights(const std::string& path, WeightMap& w) {
  const Checkpoint ck = load_checkpoint(path);
  check(ck.config.arch == Arch::Llama, path, "--init: train supports the Llama architecture only");
  at::NoGradGuard no_grad;
  for (auto& [name, t] : w) {
    auto it = ck.weights.find(name);
    check(it != ck.weights.end(), path, "--init: the model has no " + name + " (another architecture than --config?)");
    check(it->second.sizes() == t.sizes(), path,
          c10::str("--init: ", name, " has shape ", it->second.sizes(), ", the run needs ", t.sizes()));
    t.copy_(it->second.to(at::kFloat));
  }
  json files = json::array();
  for (const std::string& f : ck.files) files.push_back(sha256_hex(read_file(f)));
  return {{"path", path}, {"sha256", files}};
}

std::vector<int32_t> tokenize_file(const Tokenizer& tok, const std::string& path) {
  const std::string text = read_file(path);
  require_utf8(text, path);
  return tok.encode_with_bos(text);
}

// Window order of one epoch: Fisher-Yates with a generator seeded by (seed, epoch).
std::vector<int64_t> epoch_order(int64_t windows, uint64_t seed, int64_t epoch) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + uint64_t(epoch) + 1);
  std::vector<int64_t> order(windows);
  for (int64_t i = 0; i < windows; ++i) order[i] = i;
  for (int64_t i = windows - 1; i > 0; --i) std::swap(order[i], order[int64_t(rng() % uint64_t(i + 1))]);
  return order;
}

class Batches {
 public:
  Batches(const std::vector<int32_t>& ids, int64_t ctx, uint64_t seed, const std::string& path)
      : ctx_(ctx), seed_(seed) {
    windows_ = (int64_t(ids.size()) - 1) / ctx;
    check(windows_ >= 1, path, "corpus too short: " + std::to_string(ids.size()) +
                                   " tokens, training needs at least ctx + 1 = " + std::to_string(ctx + 1));
    all_ = at::tensor(at::ArrayRef<int32_t>(ids)).to(at::kLong);
  }
  int64_t windows() const { return windows_; }
  // Rows for samples first .. first + n - 1: [n, ctx + 1].
  at::Tensor get(int64_t first, int64_t n) {
    std::vector<at::Tensor> rows;
    for (int64_t s = first; s < first + n; ++s) {
      const int64_t epoch = s / windows_;
      if (epoch != epoch_) {
        order_ = epoch_order(windows_, seed_, epoch);
        epoch_ = epoch;
      }
      rows.push_back(all_.narrow(0, order_[s % windows_] * ctx_, ctx_ + 1));
    }
    return at::stack(rows);
  }

 private:
  at::Tensor all_;
  int64_t ctx_, windows_ = 0, epoch_ = -1;
  uint64_t seed_;
  std::vector<int64_t> order_;
};

bool is_norm(const std::string& name) { return name.find("norm.weight") != std::string::npos; }

void check_options(const TrainOptions& o) {
  if (o.steps < 1) throw usage_error("--steps must be at least 1");
  if (o.batch < 1) throw usage_error("--batch must be at least 1");
  if (o.ctx < 2) throw usage_error("--ctx must be at least 2");
  if (!(o.lr > 0) || !(o.min_lr >= 0) || o.min_lr > o.lr) throw usage_error("need 0 <= --min-lr <= --lr, --lr > 0");
  if (o.warmup < 0 || o.eval_every < 0 || o.checkpoint_every < 0) throw usage_error("--warmup, --eval-every and --checkpoint-every must be >= 0");
  if (!(o.clip >= 0) || !(o.weight_decay >= 0)) throw usage_error("--clip and --weight-decay must be >= 0");
  if (o.config.arch != Arch::Llama) throw usage_error("train supports the Llama architecture only");
}

// Keeps the log lines of steps <= `step` (a resumed run rewrites what came after).
void truncate_log(const std::string& path, int64_t step) {
  if (!file_exists(path)) return;
  std::istringstream in(read_file(path));
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("step", int64_t(0)) <= step) kept += line + "\n";
  }
  write_file_atomic(path, kept);
}

struct State {
  int64_t step = 0;
  int64_t steps = 0;   // the run's --steps when the state was written
  double seconds = 0;  // training time of earlier runs
};

void save_state(const std::string& path, const std::vector<at::Tensor>& params, torch::optim::AdamW& opt,
                const at::Generator& gen, const State& st, int64_t batch, const json& identity) {
  torch::serialize::OutputArchive ar;
  for (size_t i = 0; i < params.size(); ++i) ar.write("w" + std::to_string(i), params[i].detach());
  torch::serialize::OutputArchive opt_ar;
  opt.save(opt_ar);
  ar.write("optimizer", opt_ar);
  ar.write("rng", gen.get_state());
  ar.write("step", at::tensor(st.step));
  ar.write("data_position", at::tensor(st.step * batch));  // samples consumed
  ar.write("seconds", at::tensor(st.seconds, at::kDouble));
  ar.write("identity", c10::IValue(identity.dump()));
  ar.write("steps", at::tensor(st.steps));
  std::ostringstream bytes;
  ar.save_to(bytes);
  write_file_atomic(path, bytes.str());
}

State load_state(const std::string& path, const std::vector<at::Tensor>& params, torch::optim::AdamW& opt,
                 at::Generator& gen, int64_t batch, const json& identity) {
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path);
  } catch (const c10::Error& e) {
    throw Error(path, "unreadable training state: " + std::string(e.what_without_backtrace()).substr(0, 200));
  }
  c10::IValue id;
  ar.read("identity", id);
  json saved = json::parse(id.toStringRef());
  int64_t saved_steps = saved.value("steps", int64_t(-1));  // states before --steps could change
  saved.erase("steps");
  if (saved != identity)
    throw Error(path, "--resume with different model, data order or schedule options than the saved run");
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) {
    at::Tensor t;
    ar.read("w" + std::to_string(i), t);
    params[i].copy_(t);
  }
  torch::serialize::InputArchive opt_ar;
  ar.read("optimizer", opt_ar);
  opt.load(opt_ar);
  at::Tensor rng, step, position, seconds;
  ar.read("rng", rng);
  gen.set_state(rng);
  ar.read("step", step);
  ar.read("data_position", position);
  ar.read("seconds", seconds);
  at::Tensor steps;
  if (ar.try_read("steps", steps)) saved_steps = steps.item<int64_t>();
  State st{step.item<int64_t>(), saved_steps, seconds.item<double>()};
  check(position.item<int64_t>() == st.step * batch, path, "inconsistent data position");
  return st;
}

}  // namespace

WeightMap init_weights(const ModelConfig& c, uint64_t seed, double init_std) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  WeightMap w;
  const double out_std = init_std / std::sqrt(2.0 * double(std::max<int64_t>(c.n_layers, 1)));
  for (const WeightSpec& s : weight_specs(c)) {  // canonical order: deterministic draws
    at::Tensor t = at::empty(s.shape, at::kFloat);
    if (s.shape.size() == 1 && s.name.find("bias") != std::string::npos) t.zero_();
    else if (s.shape.size() == 1) t.fill_(1.0);
    else {
      const bool residual_out = s.name.find("o_proj") != std::string::npos ||
                                s.name.find("down_proj") != std::string::npos;
      t.normal_(0.0, residual_out ? out_std : init_std, gen);
    }
    w[s.name] = t;
  }
  return w;
}

at::Tensor lm_loss(const Transformer& net, const at::Tensor& tokens) {
  const int64_t T = tokens.size(1) - 1;
  at::Tensor logits = net.forward(tokens.narrow(1, 0, T));
  return at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}),
                                tokens.narrow(1, 1, T).reshape({-1}));
}

double scheduled_lr(const TrainOptions& o, int64_t step) {
  if (step < o.warmup) return o.lr * double(step + 1) / double(o.warmup);
  const double span = double(std::max<int64_t>(o.steps - o.warmup, 1));
  const double progress = std::min(1.0, double(step - o.warmup) / span);
  return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1.0 + std::cos(M_PI * progress));
}

// The steps: (1) check the options and shape the config from the tokenizer; (2) tokenize the
// corpus and the validation text; (3) initialise the weights and the AdamW groups (norms without
// weight decay); (4) on --resume, restore weights, optimizer, generator and data position; (5) the
// training loop (learning-rate schedule, step, clip, log every 10 steps and at evaluations, atomic
// state checkpoints); (6) when every step is done, write the model directory and its perplexity.
json train_model(const TrainOptions& opts) {
  // 1. Options; the model's vocabulary, context and special tokens come from the tokenizer.
  TrainOptions o = opts;
  check_options(o);
  std::unique_ptr<Tokenizer> tok = load_tokenizer(o.tokenizer);
  o.config.vocab_size = tok->vocab_size();
  o.config.max_seq_len = o.ctx;
  o.config.bos_id = tok->bos_id();
  o.config.eos_id = tok->eos_id();
  check_tokenizer_writable(o.tokenizer, o.config.vocab_size);  // before hours of training

  std::error_code ec;
  fs::create_directories(o.out, ec);
  check(!ec, o.out, "cannot create directory: " + ec.message());
  const std::string state_path = (fs::path(o.out) / kStateFile).string(),
                    log_path = (fs::path(o.out) / kLogFile).string();
  if (o.resume) check(file_exists(state_path), state_path, "--resume: no training state to continue");

  // 2. Both texts as token ids; the batches walk the corpus in a seeded order of windows.
  info("tokenizing " + o.corpus + " and " + o.val);
  const std::vector<int32_t> train_ids = tokenize_file(*tok, o.corpus);
  std::vector<int32_t> val_ids = tokenize_file(*tok, o.val);
  check(val_ids.size() >= size_t(std::min<int64_t>(o.ctx, 2)), o.val, "validation text too short");
  if (o.val_tokens > 0 && int64_t(val_ids.size()) > o.val_tokens) val_ids.resize(o.val_tokens);
  Batches batches(train_ids, o.ctx, o.seed, o.corpus);

  // 3. Weights and optimizer. Leaf tensors with requires_grad: the Transformer computes with them,
  // AdamW updates them in place.
  WeightMap w = init_weights(o.config, o.seed, o.init_std);
  const json init = o.init.empty() ? json() : load_initial_weights(o.init, w);
  std::vector<std::string> names;
  std::vector<at::Tensor> params, decay, no_decay;
  for (auto& [name, t] : w) {
    t.requires_grad_(true);
    names.push_back(name);
    params.push_back(t);
    (is_norm(name) ? no_decay : decay).push_back(t);
  }
  Transformer net(o.config, w);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(o.lr).betas({0.9, 0.95}).weight_decay(o.weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                    torch::optim::AdamWOptions(o.lr).betas({0.9, 0.95}).weight_decay(0.0)));
  torch::optim::AdamW opt(std::move(groups));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  const json identity = run_identity(o, names, init);

  // 4. A resumed run continues bit-identically from the saved state (same run identity required);
  // its log is cut back to the saved step. A fresh run starts an empty log.
  State st;
  st.steps = o.steps;
  if (o.resume) {
    st = load_state(state_path, params, opt, gen, o.batch, identity);
    info("resuming at step " + std::to_string(st.step));
    truncate_log(log_path, st.step);
    check(st.step <= o.steps, state_path, "--steps " + std::to_string(o.steps) + " is before the saved step " +
                                               std::to_string(st.step));
    if (st.steps != o.steps) {
      info("--steps changed from " + std::to_string(st.steps) + " to " + std::to_string(o.steps));
      std::ofstream(log_path, std::ios::app)
          << json{{"step", st.step}, {"note", "steps changed"}, {"from", st.steps}, {"to", o.steps}}.dump() << "\n";
      st.steps = o.steps;
    }
  } else {
    write_file_atomic(log_path, "");
  }
  int64_t n_params = 0;
  for (const at::Tensor& p : params) n_params += p.numel();
  info("model: " + std::to_string(n_params) + " parameters; corpus " + std::to_string(train_ids.size()) +
       " tokens (" + std::to_string(batches.windows()) + " windows of " + std::to_string(o.ctx) + ")");

  // 5. The loop, up to --steps (or --stop-after, a testing aid).
  std::ofstream log(log_path, std::ios::app);
  auto evaluate = [&] {
    return perplexity(net, val_ids, std::min<int64_t>(o.ctx, int64_t(val_ids.size())), 8, false);
  };
  const int64_t last = o.stop_after > 0 ? std::min(o.stop_after, o.steps) : o.steps;
  Progress bar("train", last - st.step, "step");
  const auto start = std::chrono::steady_clock::now();
  const double seconds0 = st.seconds;
  double loss_sum = 0, last_loss = NAN, last_val = NAN;
  int64_t loss_n = 0, tokens_done = 0;
  for (int64_t step = st.step; step < last; ++step) {
    const double lr = scheduled_lr(o, step);
    for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
    at::Tensor x = batches.get(step * o.batch, o.batch);
    at::Tensor loss = lm_loss(net, x);
    opt.zero_grad();
    loss.backward();
    const double grad_norm = o.clip > 0 ? torch::nn::utils::clip_grad_norm_(params, o.clip) : 0.0;
    opt.step();
    last_loss = loss.item<double>();
    loss_sum += last_loss;
    ++loss_n;
    tokens_done += o.batch * o.ctx;
    st.step = step + 1;
    st.seconds = seconds0 + seconds_since(start);
    const double tps = double(tokens_done) / std::max(seconds_since(start), 1e-9);
    const bool eval_now = (o.eval_every > 0 && st.step % o.eval_every == 0) || st.step == o.steps;
    json line;
    if (eval_now) last_val = evaluate().ppl;
    if (st.step % 10 == 0 || eval_now || st.step == last) {
      line = {{"step", st.step}, {"lr", lr}, {"loss", loss_sum / loss_n}, {"grad_norm", grad_norm},
              {"tokens", st.step * o.batch * o.ctx}, {"tokens_per_second", tps}, {"time", st.seconds}};
      if (eval_now) line["val_ppl"] = last_val, line["val_loss"] = std::log(last_val);
      log << line.dump() << "\n" << std::flush;
      loss_sum = 0;
      loss_n = 0;
    }
    char note[128];
    std::snprintf(note, sizeof note, "step %lld loss %.3f val_ppl %.1f %.0f tok/s", (long long)st.step,
                  last_loss, last_val, tps);
    bar.set_note(note);
    bar.advance();
    if ((o.checkpoint_every > 0 && st.step % o.checkpoint_every == 0) || st.step == last)
      save_state(state_path, params, opt, gen, st, o.batch, identity);
  }
  bar.finish();

  // 6. The summary; a finished run also writes the Hugging Face directory and its validation perplexity.
  json out = {{"out", o.out}, {"total_parameters", n_params}, {"step", st.step}, {"steps", o.steps},
              {"train_tokens", train_ids.size()}, {"val_tokens", val_ids.size()},
              {"train_loss", last_loss}, {"seconds", st.seconds}};
  if (st.step == o.steps) {
    at::NoGradGuard no_grad;
    WeightMap final_w;
    for (const auto& [name, t] : w) final_w[name] = t.detach();
    save_hf_checkpoint(o.out, o.config, final_w, o.dtype);
    write_tokenizer_files(o.tokenizer, o.config.vocab_size, o.out);
    const PerplexityResult v = evaluate();
    out["val_ppl"] = v.ppl;
    out["val_loss"] = v.nll;
    info("done: val ppl " + std::to_string(v.ppl) + "; model in " + o.out);
  }
  return out;
}

}  // namespace rankrl
