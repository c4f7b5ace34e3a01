#include "search/search.h"

#include <ATen/Parallel.h>
#include <torch/version.h>

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "calib/calibrate.h"
#include "compress/apply.h"
#include "compress/checkpoint_dir.h"
#include "compress/factor_cache.h"
#include "compress/heal.h"
#include "compress/layer_stream.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/version.h"
#include "eval/accounting.h"
#include "eval/bootstrap.h"
#include "eval/latency.h"
#include "eval/perplexity.h"
#include "eval/ranking.h"
#include "eval/ranking_batch.h"
#include "model/model.h"
#include "search/approach.h"
#include "search/factor_store.h"
#include "search/names.h"
#include "search/options.h"
#include "search/results.h"
#include "data/hashing.h"
#include "decompose/decomposer.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace rankrl {

namespace {

std::vector<TaskItem> load_split(const std::string& path, const char* split, int64_t limit) {
  if (path.empty()) throw usage_error(std::string("no task file or split directory for the ") + split + " split");
  std::string file = fs::is_directory(path) ? path + "/" + split + ".jsonl" : path;
  std::vector<TaskItem> items = read_tasks(file, "", limit);
  for (size_t i = 0; i < items.size(); ++i)
    check(items[i].kind == TaskKind::choice, file, "item " + std::to_string(i + 1) +
                                                     " is not multiple choice (search ranks choices)");
  return items;
}

// A file as the resume fingerprint sees it: by content, so a moved or symlinked copy of the same
// input resumes and a different file with the same path does not. A directory (a Hugging Face
// model) is the sorted list of its regular files' names and hashes.
json file_identity(const std::string& path) {
  if (path.empty()) return nullptr;
  std::string digest;
  if (fs::is_directory(path)) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path))
      if (e.is_regular_file()) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    std::string listing;
    for (const std::string& n : names) listing += n + " " + sha256_hex(read_file(path + "/" + n)) + "\n";
    digest = sha256_hex(listing);
  } else {
    digest = sha256_hex(read_file(path));
  }
  return {{"path", path}, {"sha256", digest}};
}

std::string split_file(const std::string& path, const char* split) {
  return fs::is_directory(path) ? path + "/" + split + ".jsonl" : path;
}

// An input file of the fingerprint by content. The tokenizer is the one the run uses (found beside
// the model when not given; none when that is not a file); a split directory counts by its file.
json input_identity(const SearchOptions& o, const SearchOptionInfo& opt) {
  const std::string flag = opt.flag, path = option_json(o, opt).get<std::string>();
  if (flag == "--tokenizer") {
    const std::string tokenizer = path.empty() ? default_tokenizer_path(o.model) : path;
    return fs::is_regular_file(tokenizer) ? file_identity(tokenizer) : json(nullptr);
  }
  if (flag == "--rkd" || flag == "--vrkd" || flag == "--test") return file_identity(split_file(path, flag.c_str() + 2));
  return file_identity(path);
}

// Everything that determines a run's results, keyed by the flag that sets it (the options marked
// so in search_option_table(), and the thread count): a checkpoint only resumes the same run, and
// a refusal names the flags that differ.
json fingerprint(const SearchOptions& o) {
  json f = json::object();
  for (const SearchOptionInfo& opt : search_option_table()) {
    if (opt.has(kFingerprint)) f[opt.flag] = option_json(o, opt);
    if (opt.has(kFingerprintFile)) f[opt.flag] = input_identity(o, opt);
  }
  f["--threads"] = at::get_num_threads();
  return f;
}

// How a fingerprint entry reads in an error: a file by path and the start of its hash.
std::string describe(const json& v) {
  if (v.is_object() && v.contains("sha256"))
    return v["path"].get<std::string>() + " (sha256 " + v["sha256"].get<std::string>().substr(0, 12) + ")";
  return v.is_null() ? "(none)" : v.dump();
}

// "" when `saved` and `now` describe the same run; else "--vrkd differs: <old> vs <new>; ...".
std::string fingerprint_differences(const json& saved, const json& now) {
  if (!saved.is_object()) return "the checkpoint was written by an older rankrl (no per-option fingerprint)";
  std::string out;
  auto same = [](const json& a, const json& b) {
    if (a.is_object() && b.is_object() && a.contains("sha256") && b.contains("sha256")) return a["sha256"] == b["sha256"];
    return a == b;
  };
  // An option the saved fingerprint lacks came after the checkpoint's rankrl: it ran with the default.
  json defaults = json::object();
  SearchOptions fresh;
  for (const SearchOptionInfo& opt : search_option_table())
    if (opt.has(kFingerprint)) defaults[opt.flag] = option_json(fresh, opt);
  for (const auto& [key, value] : now.items()) {
    const json old = saved.contains(key) ? saved[key] : defaults.contains(key) ? defaults[key] : json(nullptr);
    if (!same(old, value)) out += (out.empty() ? "" : "; ") + key + " differs: " + describe(old) + " vs " + describe(value);
  }
  return out;
}

// --prior-method → index into the methods (−1: none).
int prior_method_index(const std::string& spec, const SearchEnv& env) {
  const std::vector<std::string>& methods = env.options().methods;
  if (spec == "none") return -1;
  if (spec == "auto") return env.lowest_error_method();
  auto it = std::find(methods.begin(), methods.end(), spec);
  if (it == methods.end()) throw usage_error("prior method '" + spec + "' is not one of the enabled methods");
  return int(it - methods.begin());
}

std::string engine_state(const std::mt19937_64& rng) {
  std::ostringstream s;
  s << rng;
  return s.str();
}

SplitMetrics split_metrics(const RankMetrics& m) { return {m.margin, m.acc, m.acc_norm, m.items}; }

// The metric the final choice compares (higher is better).
double choice_metric(const RankMetrics& m, const RewardOptions& r) { return r.kind == "acc" ? m.acc : m.margin; }

std::vector<double> item_values(const RankMetrics& m, const std::string& metric) {
  std::vector<double> v;
  for (const ItemOutcome& o : m.per_item) v.push_back(metric == "acc" ? double(o.acc) : o.margin);
  return v;
}

// a − b on the same items for margin and acc, with paired bootstrap intervals.
PairedDifferences paired(const Bootstrap& boot, const RankMetrics& a, const RankMetrics& b) {
  auto difference = [&](const char* metric) {
    const Interval d = boot.paired_difference(item_values(a, metric), item_values(b, metric));
    return Difference{d.estimate, d.lo, d.hi};
  };
  return {difference("margin"), difference("acc")};
}

// A plan's scores after the compensating heal (--final-heal compensate).
struct HealedScores {
  RankMetrics rkd, vrkd, test;
  double heldout_ppl = 0.0;
  double seconds = 0.0;  // healing and scoring the approach's finalists
};

struct Finalist {
  std::string name;
  Candidate chosen;
  std::string plan_key;  // sha256 of the chosen plan's JSON
  RankMetrics rkd, vrkd, test;
  double heldout_ppl = 0.0;
  double kl = NAN;  // KL(dense ‖ chosen) on the surrogate text (when the surrogate is on)
  ParameterCounts params;
  double cost = 0.0;
  std::optional<HealedScores> healed;  // --final-heal compensate
  // With --final-heal compensate: what the unhealed VRkD alone would have chosen among the finalists.
  double unhealed_best = -1e300;
  bool plan_changed = false;  // ... another plan than the healed choice
};

std::string plan_key(const Plan& plan) { return sha256_hex(plan_to_json(plan).dump()); }

// What the final choice compares: the healed VRkD score when the finalists were healed.
double final_score(const Finalist& f, const RewardOptions& r) { return choice_metric(f.healed ? f.healed->vrkd : f.vrkd, r); }

// Metrics with their per-item outcomes (the bootstrap needs them), as the checkpoint keeps them.
json metrics_to_json(const RankMetrics& m) {
  json items = json::array();
  for (const ItemOutcome& o : m.per_item) items.push_back({o.margin, o.acc, o.acc_norm});
  return {{"margin", m.margin}, {"acc", m.acc}, {"acc_norm", m.acc_norm}, {"nll", m.nll},
          {"items", m.items}, {"finite", m.finite}, {"per_item", items}};
}

RankMetrics metrics_from_json(const json& j) {
  RankMetrics m;
  m.margin = j.at("margin"), m.acc = j.at("acc"), m.acc_norm = j.at("acc_norm"), m.nll = j.at("nll");
  m.items = j.at("items"), m.finite = j.at("finite");
  for (const json& o : j.at("per_item")) m.per_item.push_back({o.at(0).get<double>(), o.at(1).get<bool>(), o.at(2).get<bool>()});
  return m;
}

}  // namespace

bool needs_loss_estimates(const SearchOptions& o) {
  return anchored_at_kfac(o.env) ||
         std::find(o.baselines.begin(), o.baselines.end(), names::kKfac) != o.baselines.end();
}

namespace {

bool needs_fisher(const Plan& plan) {
  for (const auto& [name, d] : plan.weights)
    if (d.method != kDense && make_decomposer(d.method)->needs_fisher()) return true;
  return false;
}

// The reference plan every approach is also compared with: the uniform:<method> finalist with the
// best VRkD score by the final choice's metric (never test, which only reports); ties: the first.
// `healed`: by the healed VRkD scores.
const Finalist& best_uniform(const std::vector<Finalist>& finals, const RewardOptions& r, bool healed = false) {
  const Finalist* best = nullptr;
  auto score = [&](const Finalist& f) { return healed ? final_score(f, r) : choice_metric(f.vrkd, r); };
  for (const Finalist& f : finals)
    if (names::is_uniform_approach(f.name) && (!best || score(f) > score(*best))) best = &f;
  check(best != nullptr, "", "no uniform plan: no factoring method is enabled");
  return *best;
}

class SearchRun {
 public:
  explicit SearchRun(const SearchOptions& o) : o_(o) {}
  SearchResults run();

 private:
  void load_inputs();
  void prepare_output();
  void prepare_output_reader();
  void setup();
  std::map<std::string, std::vector<int64_t>> exact_error_ranks(const EnvOptions& env) const;
  void checkpoint();
  void save_policy() const;
  void run_approaches(SearchContext& ctx);
  void run_agent(SearchContext& ctx, ApproachState& st, const std::string& kind);
  void promote(SearchContext& ctx, ApproachState& st);
  Action act(Agent& agent, const std::vector<float>& s, StepRecord& rec, bool greedy);
  Finalist finalize(const ApproachState& st);
  bool healing() const { return o_.final_heal == "compensate"; }
  std::shared_ptr<Transformer> heal_plan(const Plan& plan);
  const json& healed_entry(const std::string& approach, const Plan& plan, bool full);
  HealedScores healed_scores(const std::string& approach, const Plan& plan);
  void keep_only_net_of(const Finalist& best);
  DenseResult dense_result(const Bootstrap& boot, const Finalist& uniform);
  Savings savings(const EvalCounters& c) const;
  Timing timing(const EvalCounters& c, double seconds) const;
  SearchResults write_results(const std::vector<Finalist>& finals, const Finalist& best, double seconds);
  // --budget: the weights' costs (and the latency table), checked against --keep before any work.
  void prepare_budget();
  BudgetInfo budget_info() const;
  // Size and measured speed of a plan's model (dense without a plan) into its results row.
  void measure_row(ResultRow& row, const Plan* plan);

  const SearchOptions& o_;
  std::string ckpt_dir_;
  Model model_;
  CalibStats stats_;
  std::unique_ptr<FactorCache> cache_;
  std::unique_ptr<SearchEnv> env_;
  std::vector<WeightCost> costs_;  // per projection weight in the --budget quantity
  LatencyBudget latency_;          // --budget latency only
  std::unique_ptr<PlanEvaluator> evaluator_;
  std::unique_ptr<RunLog> log_;
  std::vector<int32_t> heldout_;
  std::mt19937_64 rng_;
  std::vector<ApproachState> states_;
  std::map<std::string, std::unique_ptr<Agent>> agents_;
  std::vector<size_t> subset_;
  json resume_state_;
  json fingerprint_;
  bool resume_ = false;                 // --resume and a checkpoint to resume from
  std::unique_ptr<FileLock> out_lock_;  // held for the whole run: one writer per OUT
  std::vector<TaskItem> rkd_, vrkd_, test_;
  std::vector<int32_t> reward_text_;
  std::vector<int32_t> calib_ids_;  // the calibration tokens, kept for --final-heal compensate
  SplitSizes skipped_;               // items dropped per split as too long for the context
  // --final-heal scores: approach → plan key → {"vrkd", ["rkd", "test", "ppl"], "seconds"}; in the
  // checkpoint, so a resumed run heals nothing it has scored.
  json healed_ = json::object();
  std::map<std::string, std::shared_ptr<Transformer>> healed_nets_;  // by plan key, this process's
  int64_t checkpoints_ = 0;
  int64_t factors_loaded_ = 0;
  std::optional<PolicyInfo> init_policy_;  // --init-policy's description
  AgentOptions agent_options_;
  double setup_seconds_ = 0.0;
};

// Everything a run reads, read and checked before anything is written: a bad flag value or input
// file is one error and leaves no OUT behind.
void SearchRun::load_inputs() {
  if (!o_.init_policy.empty()) {
    init_policy_ = read_policy_info(o_.init_policy);
    check_policy_actions(*init_policy_, o_.env.methods, o_.env.selects, o_.env.rank_action, o_.env.anchor, o_.init_policy);
  }
  model_ = load_model(o_.model, o_.tokenizer);
  const int64_t max_len = model_.config().max_seq_len;
  if (max_len > 0 && o_.stats.ctx > max_len)
    throw usage_error("--ctx " + std::to_string(o_.stats.ctx) + " exceeds the model's maximum sequence length " +
                      std::to_string(max_len));
  prepare_budget();
  using Split4 = std::tuple<std::vector<TaskItem>*, const std::string*, const char*, uint64_t*>;
  for (auto [items, path, split, skipped] : {Split4{&rkd_, &o_.rkd, "rkd", &skipped_.rkd}, Split4{&vrkd_, &o_.vrkd, "vrkd", &skipped_.vrkd},
                                             Split4{&test_, &o_.test, "test", &skipped_.test}}) {
    *items = load_split(*path, split, o_.limit);
    *skipped = uint64_t(drop_items_too_long(*items, *model_.tokenizer, max_len, split_file(*path, split)));
    check(!items->empty(), split_file(*path, split), "no item fits the model's context");
  }
  if (!o_.stats.calib_file.empty()) {
    const int64_t after = o_.heldout_file.empty() ? o_.heldout_tokens : 0;
    std::vector<int32_t> ids = calibration_ids(*model_.tokenizer, o_.stats.calib_file, o_.stats.calib_tokens + after);
    reward_text_.assign(ids.begin(), ids.begin() + o_.stats.calib_tokens);
    if (healing()) calib_ids_ = reward_text_;
    heldout_.assign(ids.begin() + o_.stats.calib_tokens, ids.end());
  } else {
    stats_ = obtain_stats(model_, o_.stats, uses_fisher(o_.env.methods));
  }
  if (!o_.heldout_file.empty()) {
    heldout_ = model_.tokenizer->encode_with_bos(read_text_file(o_.heldout_file));
    check(int64_t(heldout_.size()) > o_.stats.ctx, o_.heldout_file,
          "too short for one perplexity window (" + std::to_string(o_.stats.ctx) + " tokens)");
    if (int64_t(heldout_.size()) > o_.heldout_tokens) heldout_.resize(size_t(o_.heldout_tokens));
  }
  fingerprint_ = fingerprint(o_);
}

// True when `dir` holds nothing but what an unfinished start leaves: the lock and an empty checkpoint/.
bool holds_no_run(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name == ".lock") continue;
    if (name == "checkpoint" && e.is_directory() && fs::is_empty(e.path())) continue;
    return false;
  }
  return true;
}

void SearchRun::prepare_output() {
  check(!fs::exists(o_.out) || fs::is_directory(o_.out), o_.out, "exists and is not a directory");
  if (!dist::is_root()) return prepare_output_reader();  // rank 0 alone writes (core/dist.h)
  fs::create_directories(o_.out);
  out_lock_ = FileLock::try_acquire(o_.out + "/.lock");
  if (!out_lock_)
    throw Error(o_.out, "another rankrl run is writing to this directory (it holds .lock); wait for it or choose another --out");
  ckpt_dir_ = o_.out + "/checkpoint";
  const std::string state = ckpt_dir_ + "/state.json";
  if (o_.resume && fs::exists(state)) {
    resume_state_ = json::parse(read_file(state), nullptr, false);
    check(!resume_state_.is_discarded(), state, "corrupt checkpoint (not JSON)");
    const std::string diff = fingerprint_differences(resume_state_.value("fingerprint", json()), fingerprint_);
    if (!diff.empty()) throw Error(state, "checkpoint belongs to another run: " + diff + " (resume with the same ones, or --force to start over)");
    resume_ = true;
    return;
  }
  if (o_.resume) info("nothing to resume in " + o_.out + " (no checkpoint/state.json): starting the run");
  if (!o_.resume && !holds_no_run(o_.out)) {
    if (!o_.replace) throw Error(o_.out, "output directory exists and is not empty (use --resume to continue, --force to start over)", 1);
    for (const auto& e : fs::directory_iterator(o_.out))
      if (e.path().filename() != ".lock") fs::remove_all(e.path());
  }
  fs::create_directories(ckpt_dir_);
}

// A rank other than 0 writes nothing: it only reads what a --resume continues from.
void SearchRun::prepare_output_reader() {
  ckpt_dir_ = o_.out + "/checkpoint";
  const std::string state = ckpt_dir_ + "/state.json";
  if (!o_.resume || !fs::exists(state)) return;
  resume_state_ = json::parse(read_file(state), nullptr, false);
  check(!resume_state_.is_discarded(), state, "corrupt checkpoint (not JSON)");
  resume_ = true;
}

// The ranks whose relative output error a baseline reads (svdllm2, and the anchored rank action's
// anchor: every weight at the rank --keep means), kept multiplied out from the Gram so the
// baseline sees what it always saw.
std::map<std::string, std::vector<int64_t>> SearchRun::exact_error_ranks(const EnvOptions& env) const {
  std::map<std::string, std::vector<int64_t>> ranks;
  const bool svdllm2 = std::find(o_.baselines.begin(), o_.baselines.end(), names::kSvdllm2) != o_.baselines.end();
  if (!svdllm2 && o_.env.rank_action != "anchored") return ranks;
  const std::vector<WeightCost> costs = costs_.empty() ? weight_costs(*model_.net, env.budget, nullptr) : costs_;
  const std::vector<const Linear*> linears = static_cast<const Transformer&>(*model_.net).linears();
  for (size_t i = 0; i < linears.size(); ++i) {
    const int64_t m = linears[i]->out_features(), n = linears[i]->in_features(), max_rank = (m * n - 1) / (m + n);
    if (max_rank >= 1) ranks[linears[i]->name()] = {rank_for_fraction(costs[i], m, n, max_rank, env.keep)};
  }
  return ranks;
}

// The factorizations and errors the search reads, loaded from the factor store or made layer by
// layer (search/factor_store.h). With --calib and no Fisher method the dense model is calibrated
// one decoder layer at a time and each layer's Grams are dropped once its factors and errors are
// taken, so no whole-model statistics are ever held; Fisher (fwsvd) needs the whole model's
// backward and --stats reads a whole file, so those keep the whole-model statistics in stats_
// (as compress does).
void SearchRun::setup() {
  auto start = std::chrono::steady_clock::now();
  const bool fisher = uses_fisher(o_.env.methods), kfac = needs_loss_estimates(o_);
  // The K-FAC loss estimates need output gradients: a whole-model backward, so no streaming.
  const bool stream = streams_factor_store(!o_.stats.calib_file.empty(), o_.env.methods, o_.whole_model_setup || kfac);
  if (stream) check_calib_source(o_.stats);
  if (!o_.stats.calib_file.empty() && !stream) stats_ = obtain_stats(model_, o_.stats, fisher, kfac);
  EnvOptions env = o_.env;
  env.loss_estimates = kfac;
  env.seed = o_.seed;
  env.step_errors = o_.shaping != 0.0;
  FactorStoreSource source;
  if (stream) source.calib_ids = &reward_text_, source.ctx = o_.stats.ctx;
  else source.whole = &stats_;
  // OUT's own store is covered by OUT's lock; a --factor-cache directory may be shared.
  const std::string store_dir = o_.factor_cache.empty() ? o_.out : o_.factor_cache;
  ObtainedFactors factors = obtain_factor_store(*model_.net, source, env, exact_error_ranks(env), {store_dir, store_dir != o_.out});
  cache_ = std::move(factors.cache);
  factors_loaded_ = factors.loaded;
  if (stream && factors_loaded_ == 0) {
    stats_.tokens = factors.calibration.tokens;
    stats_.windows = factors.calibration.windows;
    stats_.ctx = factors.calibration.ctx;
    stats_.seconds = factors.calibration.seconds;
  }
  const WeightErrorMap& errors = factors.errors;
  env_ = std::make_unique<SearchEnv>(*model_.net, *cache_, errors, env, costs_);
  save_latency_table(latency_);
  evaluator_ = std::make_unique<PlanEvaluator>(*model_.net, *cache_, stats_, *model_.tokenizer, std::move(rkd_),
                                               std::move(vrkd_), std::move(test_), o_.reward, std::move(reward_text_),
                                               o_.stats.ctx > 0 ? o_.stats.ctx : 256);
  if (o_.surrogate == "kl") evaluator_->enable_surrogate(o_.surrogate_tokens);
  // The reward subset: a seeded shuffle of RkD, its first reward_items.
  std::vector<size_t> order(evaluator_->size(Split::rkd));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 shuffle(o_.seed ^ 0x5EEDULL);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[size_t(uniform01(shuffle) * double(i))]);
  if (o_.reward_items > 0 && size_t(o_.reward_items) < order.size()) {
    order.resize(o_.reward_items);
    std::sort(order.begin(), order.end());
    subset_ = order;
  }
  setup_seconds_ = seconds_since(start);
}

void SearchRun::checkpoint() {
  if (!dist::is_root()) return;
  json state = {{"version", 1}, {"fingerprint", fingerprint_}, {"rng", engine_state(rng_)},
                {"log_lines", log_->lines()}, {"approaches", json::array()}, {"agents", json::object()}};
  for (const ApproachState& s : states_) state["approaches"].push_back(to_json(s));
  if (!healed_.empty()) state["final_heal"] = healed_;
  for (const auto& [name, agent] : agents_) {
    const ApproachState& st = *std::find_if(states_.begin(), states_.end(), [&](const auto& s) { return s.name == name; });
    std::string file = "agent-" + name + "-" + std::to_string(st.units) + ".pt";
    agent->save(ckpt_dir_ + "/" + file);
    state["agents"][name] = file;
  }
  json previous = json::object();
  if (fs::exists(ckpt_dir_ + "/state.json")) {
    previous = json::parse(read_file(ckpt_dir_ + "/state.json"), nullptr, false);
    if (previous.is_discarded()) previous = json::object();
  }
  write_file_atomic(ckpt_dir_ + "/state.json", state.dump(1));
  // Agent files the new state no longer names can go (the old state is replaced atomically).
  if (previous.contains("agents"))
    for (const auto& [name, file] : previous["agents"].items())
      if (state["agents"].value(name, "") != file.get<std::string>()) fs::remove(ckpt_dir_ + "/" + file.get<std::string>());
  if (o_.abort_after_checkpoints > 0 && ++checkpoints_ == o_.abort_after_checkpoints) std::_Exit(3);
}

// --save-policy: the first agent's network with what it was trained on (its --init-policy's
// history, keep range and roles included).
void SearchRun::save_policy() const {
  if (!dist::is_root()) return;
  PolicyInfo p;
  if (init_policy_) p = *init_policy_;
  const bool first = !init_policy_;
  p.agent = o_.agents.front();
  p.hidden = agent_options_.hidden;
  p.feature_version = kFeatureVersion;
  p.features = env_->feature_names();
  p.methods = o_.env.methods;
  p.selects = o_.env.selects;
  p.rank_action = o_.env.rank_action;
  p.anchor = o_.env.anchor;
  for (const WeightInfo& w : env_->weights())
    if (std::find(p.roles.begin(), p.roles.end(), w.type) == p.roles.end()) p.roles.push_back(w.type);
  p.keep_min = first ? o_.env.keep : std::min(p.keep_min, o_.env.keep);
  p.keep_max = first ? o_.env.keep : std::max(p.keep_max, o_.env.keep);
  p.trained_on.push_back({{"model", o_.model}, {"model_identity", model_identity(model_.config())},
                          {"keep", o_.env.keep}, {"episodes", o_.episodes}, {"seed", o_.seed},
                          {"surrogate", o_.surrogate}});
  p.episodes += o_.episodes;
  agents_.at(o_.agents.front())->save_policy(o_.save_policy, policy_info_json(p));
  info("wrote the policy " + o_.save_policy);
}

// The agent's action for state `s` as the env takes it (SearchEnv::read_action: the rank fraction
// made budget-relative or anchored when asked; the record keeps the sampled action's method and
// log-probability terms, its rank_frac is the absolute one the env takes).
Action SearchRun::act(Agent& agent, const std::vector<float>& s, StepRecord& rec, bool greedy) {
  Action a = agent.act(s, rng_, rec, greedy);
  env_->read_action(a);
  rec.action.rank_frac = a.rank_frac;
  return a;
}

// The progress note of an agent: its best reward so far, on what it trains on ("best –" until
// there is one).
std::string best_note(const ApproachState& st, bool surrogate) {
  char buf[64];
  if (surrogate) {
    if (st.pool.empty()) return "best surrogate –";
    std::snprintf(buf, sizeof buf, "best surrogate %.4f", st.pool[0].reward);
  } else {
    if (st.top.empty()) return "best –";
    std::snprintf(buf, sizeof buf, "best reward %.4f", st.best_reward());
  }
  return buf;
}

void SearchRun::run_agent(SearchContext& ctx, ApproachState& st, const std::string& kind) {
  Agent& agent = *agents_.at(kind);
  if (st.done) return;
  SearchEnv& env = ctx.env;
  const bool surrogate = evaluator_->has_surrogate();
  Progress progress(st.name, o_.episodes, "episodes");
  progress.advance(st.units);
  while (st.units < o_.episodes) {
    auto start = std::chrono::steady_clock::now();
    std::vector<StepRecord> episode;
    std::vector<Action> requested;  // as the env took them (read_action), to score the same plan
    std::vector<float> s = env.reset();
    while (!env.done()) {
      StepRecord rec;
      requested.push_back(act(agent, s, rec, false));
      s = env.step(requested.back());
      rec.reward = -o_.shaping * env.last_error();
      episode.push_back(std::move(rec));
    }
    json extra = {{"update", agent.last_update()}};
    episode.back().reward += surrogate ? ctx.score_surrogate(st, requested, extra) : ctx.score(st, requested, extra);
    agent.finish_episode(std::move(episode));
    st.units++;
    st.seconds += seconds_since(start);
    progress.set_note(best_note(st, surrogate));
    progress.advance();
    checkpoint();
  }
  progress.finish();
  // The greedy policy (most likely method and selection, mean rank) is one more candidate.
  auto start = std::chrono::steady_clock::now();
  std::vector<Action> greedy;
  std::vector<float> s = env.reset();
  while (!env.done()) {
    StepRecord rec;
    greedy.push_back(act(agent, s, rec, true));
    s = env.step(greedy.back());
  }
  if (surrogate) {
    if (!st.promoted) {
      ctx.score_surrogate(st, greedy, {{"greedy", true}});
      st.promoted = 0;
      st.seconds += seconds_since(start);
      checkpoint();
    }
    promote(ctx, st);
    return;
  }
  ctx.score(st, greedy, {{"greedy", true}});
  st.seconds += seconds_since(start);
  st.done = true;
  checkpoint();
}

// The approach's best plans by surrogate, best first, each scored on the RkD reward (one RkD
// evaluation each, checkpointed after each), so its candidates compete on RkD like every other
// approach's; then the approach is done.
void SearchRun::promote(SearchContext& ctx, ApproachState& st) {
  const std::vector<PoolEntry>& pool = st.pool;
  const int64_t n = std::min<int64_t>(o_.promote, int64_t(pool.size()));
  Progress progress(st.name + " promote", n, "plans");
  progress.advance(*st.promoted);
  for (int64_t i = *st.promoted; i < n; ++i) {
    auto start = std::chrono::steady_clock::now();
    ctx.score(st, pool[size_t(i)].actions, {{"promoted", i}, {"surrogate", pool[size_t(i)].reward}});
    st.promoted = i + 1;
    st.seconds += seconds_since(start);
    progress.advance();
    checkpoint();
  }
  progress.finish();
  st.done = true;
  checkpoint();
}

// Every approach in a fixed order, each resumable (a done approach returns at once): (1) the
// uniform plans, which name the best method; (2) svdllm2 and sensitivity, built on that method;
// (3) the agents, whose RkD evaluations set the budget of (4) random and evolution (from the best
// uniform plan), and (5) the opt-in evolution-kl ablation on the surrogate.
void SearchRun::run_approaches(SearchContext& ctx) {
  const auto& methods = o_.env.methods;
  auto has = [&](const std::string& b) { return std::find(o_.baselines.begin(), o_.baselines.end(), b) != o_.baselines.end(); };
  auto state = [&](const std::string& name) -> ApproachState& {
    return *std::find_if(states_.begin(), states_.end(), [&](const auto& s) { return s.name == name; });
  };
  // 1. Uniform plans always run: they seed the evolutionary search and name the best method. The
  // method is named on all of RkD (the re-score every finalist gets anyway, memoised): on a
  // 32-item reward subset plainly worse methods can come out ahead (stories260K, keep 0.8: asvd
  // above svdllm, whose test drop is 30% smaller), which would handicap the baselines built on it.
  int best_method = -1;
  double best_uniform = -1e300;
  const ApproachState* best_uniform_state = nullptr;
  for (size_t m = 0; m < methods.size(); ++m) {
    if (methods[m] == kDense) continue;
    ApproachState& st = state(names::uniform_approach(methods[m]));
    run_uniform(ctx, st, int(m));
    const Plan& plan = st.top.front().plan;
    double r = evaluator_->reward(plan, {}, env_->plan_cost(plan), env_->budget(), env_->dense_params());
    if (r > best_uniform) best_uniform = r, best_method = int(m), best_uniform_state = &st;
  }
  check(best_method >= 0, "", "no factoring method is enabled");
  info("best uniform method: " + methods[best_method] + " (reward on all of RkD " + std::to_string(best_uniform) + ")");
  // 2. Heuristic allocations with the best method.
  if (has(names::kSvdllm2)) run_svdllm2(ctx, state(names::kSvdllm2), best_method);
  if (has(names::kKfac)) run_kfac(ctx, state(names::kKfac), best_method);
  if (has(names::kSensitivity)) run_sensitivity(ctx, state(names::kSensitivity), best_method, o_.sensitivity_grid);
  // 3. The agents (on the surrogate, then their best plans promoted to RkD; or RkD every episode).
  int64_t agent_evaluations = 0;
  for (const std::string& kind : o_.agents) {
    run_agent(ctx, state(kind), kind);
    agent_evaluations = std::max(agent_evaluations, state(kind).evaluations);
  }
  // 4. Random and evolutionary search get as many RkD evaluations as the agents (at least
  // --baseline-evaluations), so the comparison is at equal cost.
  ctx.budget_units = std::max(agent_evaluations > 0 ? agent_evaluations : o_.episodes + 1, o_.baseline_evaluations);
  if (has(names::kRandom)) run_random(ctx, state(names::kRandom));
  if (has(names::kEvolution)) run_evolution(ctx, state(names::kEvolution), best_uniform_state->top.front().actions);
  // 5. evolution-kl: evolution on the agents' surrogate, then promoted like an agent.
  if (has(names::kEvolutionKl)) {
    ApproachState& st = state(names::kEvolutionKl);
    ctx.surrogate_units = o_.episodes + 1;  // as many surrogate evaluations as an agent
    if (!st.promoted) {
      run_evolution(ctx, st, best_uniform_state->top.front().actions, true);
      st.done = false, st.promoted = 0;
      checkpoint();
    }
    if (!st.done) promote(ctx, st);
  }
}

Finalist SearchRun::finalize(const ApproachState& st) {
  PlanEvaluator& ev = *evaluator_;
  std::vector<Candidate> pool = st.top;
  if (!subset_.empty()) {  // promoted: the few best on the subset, re-scored on all of RkD
    for (Candidate& c : pool)
      c.reward = ev.reward(c.plan, {}, env_->plan_cost(c.plan), env_->budget(), env_->dense_params(), &c.rkd);
    std::stable_sort(pool.begin(), pool.end(), [](const auto& a, const auto& b) { return a.reward > b.reward; });
  }
  if (int64_t(pool.size()) > o_.finalists) pool.resize(o_.finalists);
  check(!pool.empty(), "", "approach '" + st.name + "' produced no plan");
  Finalist f;
  f.name = st.name;
  double best = -1e300;
  std::string unhealed_key;
  for (const Candidate& c : pool) {
    RankMetrics v = ev.evaluate(c.plan, Split::vrkd);
    if (choice_metric(v, o_.reward) > f.unhealed_best) f.unhealed_best = choice_metric(v, o_.reward), unhealed_key = plan_key(c.plan);
    const double score = healing() ? choice_metric(metrics_from_json(healed_entry(st.name, c.plan, false)["vrkd"]), o_.reward)
                                   : choice_metric(v, o_.reward);
    if (score > best) best = score, f.chosen = c, f.vrkd = v;
  }
  f.plan_key = plan_key(f.chosen.plan);
  f.plan_changed = unhealed_key != f.plan_key;
  f.rkd = ev.evaluate(f.chosen.plan, Split::rkd);
  f.test = ev.evaluate(f.chosen.plan, Split::test);
  Transformer& net = ev.apply(f.chosen.plan);
  if (int64_t(heldout_.size()) > o_.stats.ctx) f.heldout_ppl = perplexity(net, heldout_, o_.stats.ctx, 8, false).ppl;
  f.params = count_parameters(net);
  f.cost = env_->plan_cost(f.chosen.plan);
  if (ev.has_surrogate()) ev.surrogate(f.chosen.plan, f.cost, env_->budget(), env_->dense_params(), &f.kl);
  if (healing()) f.healed = healed_scores(st.name, f.chosen.plan);
  return f;
}

// The dense model compressed per `plan` and healed exactly as `rankrl compress --plan P
// --heal-compensate` does it (the same library calls): layer-streamed calibration, factorization
// and compensating refit, factors kept in the dtype they are written in; a plan that needs Fisher
// statistics takes compress's whole-model path (the search's statistics, then heal()).
std::shared_ptr<Transformer> SearchRun::heal_plan(const Plan& plan) {
  auto net = std::make_shared<Transformer>(model_.config(), model_.net->weights());
  if (needs_fisher(plan)) {
    Transformer dense(model_.config(), model_.net->weights());
    apply_plan(*net, plan, *cache_, &stats_);
    HealOptions h;
    h.ctx = o_.stats.ctx;
    h.compensate = true;
    heal(*net, dense, calib_ids_, h);
    return net;
  }
  LayerStreamOptions lo;
  lo.ids = &calib_ids_;
  lo.ctx = o_.stats.ctx;
  lo.compensate = true;
  lo.factor_dtype = model_.net->stored_dtype();
  compress_layers(*net, plan, lo);
  return net;
}

// The healed scores of `plan`, a finalist of `approach`: VRkD (every finalist), and with `full`
// also RkD, test and held-out perplexity (the chosen one). What the checkpoint lacks is computed
// (each plan healed at most once per process) and checkpointed.
const json& SearchRun::healed_entry(const std::string& approach, const Plan& plan, bool full) {
  const std::string key = plan_key(plan);
  json& e = healed_[approach][key];
  auto complete = [full](const json& x) { return x.contains("vrkd") && (!full || x.contains("test")); };
  if (complete(e)) return e;
  for (const auto& [other, entries] : healed_.items())  // the same plan, another approach's finalist
    if (other != approach && entries.contains(key) && complete(entries[key])) {
      for (const char* k : {"vrkd", "rkd", "test", "ppl"})
        if (entries[key].contains(k)) e[k] = entries[key][k];
      e["seconds"] = e.value("seconds", 0.0);
      return e;
    }
  auto start = std::chrono::steady_clock::now();
  std::shared_ptr<Transformer>& net = healed_nets_[key];
  if (!net) net = heal_plan(plan);
  PlanEvaluator& ev = *evaluator_;
  if (!e.contains("vrkd")) e["vrkd"] = metrics_to_json(ev.evaluate_model(*net, Split::vrkd));
  if (full) {
    e["rkd"] = metrics_to_json(ev.evaluate_model(*net, Split::rkd));
    e["test"] = metrics_to_json(ev.evaluate_model(*net, Split::test));
    e["ppl"] = int64_t(heldout_.size()) > o_.stats.ctx ? perplexity(*net, heldout_, o_.stats.ctx, 8, false).ppl : 0.0;
  }
  e["seconds"] = e.value("seconds", 0.0) + seconds_since(start);
  checkpoint();
  return e;
}

HealedScores SearchRun::healed_scores(const std::string& approach, const Plan& plan) {
  const json& e = healed_entry(approach, plan, true);
  HealedScores h;
  h.rkd = metrics_from_json(e["rkd"]), h.vrkd = metrics_from_json(e["vrkd"]), h.test = metrics_from_json(e["test"]);
  h.heldout_ppl = e["ppl"];
  for (const auto& [key, entry] : healed_[approach].items()) h.seconds += entry.value("seconds", 0.0);
  return h;
}

// Healed models are kept only while they may still be written: the best finalist's so far.
void SearchRun::keep_only_net_of(const Finalist& best) {
  for (auto it = healed_nets_.begin(); it != healed_nets_.end();)
    it = it->first == best.plan_key ? std::next(it) : healed_nets_.erase(it);
}

// What each speed trick saved in this run, from counts (not estimates of time).
Savings SearchRun::savings(const EvalCounters& c) const {
  const RankingScorer& rkd = evaluator_->scorer(Split::rkd);
  const double full_items = double(c.subset_evaluations) * double(rkd.size());
  const double shared = double(rkd.tokens()), unshared = double(rkd.tokens_without_sharing());
  int64_t surrogate_episodes = 0;
  for (const ApproachState& st : states_) surrogate_episodes += st.surrogate_evaluations;
  Savings s;
  s.reward_subset = {c.subset_evaluations, c.subset_items, full_items,
                     full_items > 0 ? 1.0 - double(c.subset_items) / full_items : 0.0};
  s.memo = {c.memo_hits};
  // Agent episodes scored on the KL surrogate instead of RkD (each one RkD evaluation avoided).
  s.surrogate = {surrogate_episodes,
                 c.surrogate_evaluations > 0 ? c.surrogate_seconds / double(c.surrogate_evaluations) : 0.0,
                 c.evaluations > 0 ? c.forward_seconds / double(c.evaluations) : 0.0};
  s.context_sharing = {shared, unshared, unshared > 0 ? 1.0 - shared / unshared : 0.0};
  s.factor_cache = {cache_->seconds(), c.evaluations > 0 ? c.apply_seconds / double(c.evaluations) : 0.0, factors_loaded_};
  return s;
}

Timing SearchRun::timing(const EvalCounters& c, double seconds) const {
  Timing t;
  t.seconds = seconds;
  t.setup_seconds = setup_seconds_;
  t.decompose_seconds = cache_->seconds();
  t.factorizations_loaded = factors_loaded_;
  t.calibration_seconds = stats_.seconds;
  t.evaluations = c.evaluations;
  t.items_scored = c.items_scored;
  t.memo_hits = c.memo_hits;
  t.surrogate_evaluations = c.surrogate_evaluations;
  t.surrogate_seconds = c.surrogate_seconds;
  t.forward_seconds = c.forward_seconds;
  t.apply_seconds = c.apply_seconds;
  t.evaluations_per_second = c.forward_seconds > 0 ? c.evaluations / c.forward_seconds : 0.0;
  t.forward_share = seconds > 0 ? (c.forward_seconds + c.surrogate_seconds) / seconds : 0.0;
  return t;
}

DenseResult SearchRun::dense_result(const Bootstrap& boot, const Finalist& uniform) {
  PlanEvaluator& ev = *evaluator_;
  const RankMetrics test = ev.dense_metrics(Split::test);
  DenseResult d;
  d.rkd = split_metrics(ev.dense_metrics(Split::rkd));
  d.vrkd = split_metrics(ev.dense_metrics(Split::vrkd));
  d.test = split_metrics(test);
  // Through the same code as every approach: dense vs dense is 0 [0, 0].
  d.vs_dense = paired(boot, test, test);
  d.vs_best_uniform = paired(boot, test, uniform.test);
  if (int64_t(heldout_.size()) > o_.stats.ctx) d.heldout_ppl = perplexity(*model_.net, heldout_, o_.stats.ctx, 8, false).ppl;
  const ParameterCounts p = count_parameters(*model_.net);
  d.linear_parameters = p.linear;
  d.total_parameters = p.total;
  d.total_bytes = int64_t(dtype_size(model_.net->stored_dtype())) * p.total;  // as written (model/ keeps the stored dtype)
  measure_row(d, nullptr);
  return d;
}

void SearchRun::prepare_budget() {
  const std::string& kind = o_.env.budget;
  if (kind == budgets::kLatency) {
    latency_ = make_latency_budget(*model_.net, parse_workload(o_.latency_workload),
                                   o_.factor_cache.empty() ? o_.out : o_.factor_cache, o_.latency_table);
    costs_ = latency_.costs;
  } else {
    costs_ = weight_costs(*model_.net, kind, nullptr);
  }
  const double smallest = smallest_keep(*model_.net, costs_, o_.env.min_rank_frac);
  if (o_.env.keep >= smallest) return;
  // A refused run writes nothing to OUT, but a separate --factor-cache keeps what was measured.
  if (!o_.factor_cache.empty()) save_latency_table(latency_);
  if (kind == budgets::kLatency && smallest >= 1.0)
    throw usage_error("--budget latency: factoring cannot make " + o_.latency_workload +
                      " faster on this machine: every weight at its smallest rank takes " + std::to_string(smallest * 1.01) +
                      " of the dense Linear time (two thin products are slower than one), so no --keep < 1 can be met");
  throw usage_error("--keep " + std::to_string(o_.env.keep) + " is below what factoring every weight at the smallest rank costs (" +
                    std::to_string(smallest) + " for this model" + (kind == budgets::kParams ? "" : ", --budget " + kind) + ")");
}

BudgetInfo SearchRun::budget_info() const {
  BudgetInfo b;
  b.kind = o_.env.budget;
  b.dense = env_->dense_params();
  b.budget = env_->budget();
  b.prefill_workload = default_prefill(*model_.net).text();
  b.decode_workload = default_decode().text();
  if (b.kind == budgets::kLatency) {
    b.latency_workload = parse_workload(o_.latency_workload).text();
    b.rest_seconds = latency_.rest_seconds;
    b.budget_forward_seconds = latency_.rest_seconds + env_->budget();
  }
  return b;
}

void SearchRun::measure_row(ResultRow& row, const Plan* plan) {
  const Transformer& net = plan ? evaluator_->apply(*plan) : *model_.net;
  row.linear_flops_per_token = linear_flops_per_token(net);
  const Speed s = measure_speed(net, default_prefill(net), default_decode(), 3);
  row.prefill_tokens_per_second = s.prefill_tokens_per_second;
  row.decode_tokens_per_second = s.decode_tokens_per_second;
  if (o_.env.budget != budgets::kLatency) return;
  row.predicted_seconds = latency_.rest_seconds + (plan ? plan_cost(*model_.net, costs_, *plan) : latency_.dense_linear_seconds);
  row.measured_seconds = time_forward(net, parse_workload(o_.latency_workload));
}

SearchResults SearchRun::write_results(const std::vector<Finalist>& finals, const Finalist& best, double seconds) {
  if (dist::is_root()) fs::create_directories(o_.out + "/plans");
  // One bootstrap for every comparison: the same resampled test items for every approach.
  const Bootstrap boot(o_.seed);
  const Finalist& uniform = best_uniform(finals, o_.reward);
  const Finalist& healed_uniform = best_uniform(finals, o_.reward, true);
  const RankMetrics dense_test = evaluator_->dense_metrics(Split::test);
  SearchResults r;
  for (const Finalist& f : finals) {
    const ApproachState& st = *std::find_if(states_.begin(), states_.end(), [&](const auto& s) { return s.name == f.name; });
    std::string file = f.name;
    std::replace(file.begin(), file.end(), ':', '-');
    write_plan(o_.out + "/plans/" + file + ".json", f.chosen.plan);
    ApproachResult a;
    a.name = f.name;
    a.evaluations = st.evaluations;
    a.surrogate_evaluations = st.surrogate_evaluations;
    a.seconds = st.seconds;
    a.rkd = split_metrics(f.rkd), a.vrkd = split_metrics(f.vrkd), a.test = split_metrics(f.test);
    a.heldout_ppl = f.heldout_ppl;
    a.linear_parameters = f.params.linear;
    if (!std::isnan(f.kl)) a.surrogate_kl = f.kl;
    a.keep_actual = f.cost / env_->dense_params();
    a.total_parameters = f.params.total;
    a.total_bytes = int64_t(dtype_size(model_.net->stored_dtype())) * f.params.total;
    a.found_at_unit = f.chosen.unit;
    a.train_reward = f.chosen.reward;
    a.vs_dense = paired(boot, f.test, dense_test);
    a.vs_best_uniform = paired(boot, f.test, uniform.test);
    measure_row(a, &f.chosen.plan);
    if (f.healed) {
      const HealedScores& h = *f.healed;
      a.healed = HealedResult{split_metrics(h.rkd), split_metrics(h.vrkd), split_metrics(h.test), h.heldout_ppl,
                              paired(boot, h.test, dense_test), paired(boot, h.test, healed_uniform.healed->test), h.seconds,
                              f.plan_changed};
    }
    r.approaches.push_back(std::move(a));
  }
  const EvalCounters& c = evaluator_->counters();
  r.command = o_.command_line;
  r.rankrl_version = kVersion;
  r.libtorch_version = TORCH_VERSION;
  r.seed = o_.seed;
  r.threads = at::get_num_threads();
  r.model = o_.model;
  r.keep = o_.env.keep;
  r.budget = budget_info();
  r.methods = o_.env.methods, r.selects = o_.env.selects, r.agents = o_.agents;
  r.episodes = o_.episodes;
  r.reward = {o_.reward.kind, o_.reward.size_weight, o_.shaping,
              subset_.empty() ? evaluator_->size(Split::rkd) : subset_.size(), o_.surrogate,
              evaluator_->surrogate_tokens(), o_.promote};
  r.splits = {evaluator_->size(Split::rkd), evaluator_->size(Split::vrkd), evaluator_->size(Split::test)};
  r.skipped_too_long = skipped_;
  r.final_heal = o_.final_heal;
  r.heldout_tokens = heldout_.size();
  r.dense = dense_result(boot, uniform);
  r.chosen = best.name;
  r.bootstrap = {"test", boot.level(), boot.resamples(), boot.seed(),
                 "paired percentile bootstrap over items: the same resampled item sets for every comparison", uniform.name,
                 "the uniform:<method> approach with the best VRkD " + std::string(o_.reward.kind == "acc" ? "acc" : "margin") +
                     " (not test)", std::nullopt};
  if (healing()) {
    r.bootstrap.best_uniform_healed = healed_uniform.name;
    const Finalist* unhealed = &finals.front();  // the approach the unhealed VRkD scores would have chosen
    for (const Finalist& f : finals)
      if (f.unhealed_best > unhealed->unhealed_best) unhealed = &f;
    r.chosen_without_heal = unhealed->name;
  }
  r.timing = timing(c, seconds);
  r.savings = savings(c);
  write_plan(o_.out + "/plan.json", best.chosen.plan);
  json report = {{"search", {{"approach", best.name}, {"results", "results.json"}}}};
  const std::string tokenizer = o_.tokenizer.empty() ? default_tokenizer_path(o_.model) : o_.tokenizer;
  if (healing()) {
    report["search"]["final_heal"] = o_.final_heal;
    std::shared_ptr<Transformer> net = healed_nets_[best.plan_key];
    if (!net) net = heal_plan(best.chosen.plan);  // resumed after it was scored: heal it again (deterministic)
    write_compressed_dir(o_.out + "/model", *net, best.chosen.plan, report, tokenizer, true);
  } else {
    write_compressed_dir(o_.out + "/model", evaluator_->apply(best.chosen.plan), best.chosen.plan, report, tokenizer, true);
  }
  write_file_atomic(o_.out + "/results.json", results_to_json(r).dump(2) + "\n");
  return r;
}

SearchResults SearchRun::run() {
  auto start = std::chrono::steady_clock::now();
  load_inputs();
  prepare_output();
  setup();
  rng_.seed(o_.seed);
  // Approaches in the order they run.
  std::vector<std::string> order;
  for (const std::string& m : o_.env.methods)
    if (m != kDense) order.push_back(names::uniform_approach(m));
  for (const char* b : {names::kSvdllm2, names::kKfac, names::kSensitivity})
    if (std::find(o_.baselines.begin(), o_.baselines.end(), b) != o_.baselines.end()) order.push_back(b);
  for (const std::string& a : o_.agents) order.push_back(a);
  for (const char* b : {names::kRandom, names::kEvolution, names::kEvolutionKl})
    if (std::find(o_.baselines.begin(), o_.baselines.end(), b) != o_.baselines.end()) order.push_back(b);
  for (const std::string& n : order) states_.push_back(ApproachState{n});
  AgentOptions ao = o_.agent;
  ao.init_rank = o_.env.keep;
  ao.prior_method = prior_method_index(o_.prior_method, *env_);
  if (init_policy_) {
    ao.hidden = init_policy_->hidden;  // the network's shape is the policy's
    check(init_policy_->features == env_->feature_names(), o_.init_policy,
          "the policy's state features differ from this search's (feature version " +
              std::to_string(init_policy_->feature_version) + ", this rankrl " + std::to_string(kFeatureVersion) + ")");
    if (o_.env.keep < init_policy_->keep_min - kPolicyKeepTolerance || o_.env.keep > init_policy_->keep_max + kPolicyKeepTolerance)
      info("fine-tuning at --keep " + std::to_string(o_.env.keep) + ", outside the keeps the policy was trained at");
  } else if (ao.prior_method >= 0 && !o_.agents.empty()) {
    info("agent prior: " + o_.env.methods[size_t(ao.prior_method)]);
  }
  agent_options_ = ao;
  for (const std::string& a : o_.agents) {
    agents_[a] = make_agent(a, env_->state_size(), o_.env.methods.size(), o_.env.selects.size(), ao, o_.seed);
    if (init_policy_ && !resume_) agents_[a]->load_policy(o_.init_policy);  // a resume loads its checkpoint instead
  }
  int64_t log_lines = 0;
  if (resume_) {
    std::istringstream(resume_state_.at("rng").get<std::string>()) >> rng_;
    for (const auto& j : resume_state_.at("approaches")) {
      ApproachState s = approach_from_json(j);
      for (ApproachState& mine : states_)
        if (mine.name == s.name) mine = std::move(s);
    }
    for (const auto& [name, file] : resume_state_.at("agents").items()) agents_.at(name)->load(ckpt_dir_ + "/" + file.get<std::string>());
    log_lines = resume_state_.at("log_lines");
    healed_ = resume_state_.value("final_heal", json::object());
    info("resuming from " + ckpt_dir_ + " (" + std::to_string(log_lines) + " evaluations logged)");
  }
  log_ = std::make_unique<RunLog>(o_.out + "/log.jsonl", log_lines);
  dist::barrier();  // every rank has read what it resumes from before rank 0 writes again
  SearchContext ctx{.env = *env_,
                    .evaluator = *evaluator_,
                    .seed = o_.seed,
                    .subset = subset_,
                    .keep_top = std::max<int64_t>(o_.finalists, 1),
                    .budget_units = 0,
                    .log = *log_,
                    .checkpoint = [this] { checkpoint(); },
                    .pool_size = std::max<int64_t>(o_.promote, 1)};
  run_approaches(ctx);
  if (!o_.save_policy.empty()) save_policy();
  std::vector<Finalist> finals;
  Progress progress("final evaluation", int64_t(states_.size()), "approaches");
  const Finalist* best = nullptr;
  finals.reserve(states_.size());
  for (const ApproachState& st : states_) {
    finals.push_back(finalize(st));
    if (!best || final_score(finals.back(), o_.reward) > final_score(*best, o_.reward)) best = &finals.back();
    keep_only_net_of(*best);
    progress.advance();
  }
  progress.finish();
  return write_results(finals, *best, seconds_since(start));
}

}  // namespace

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

namespace {

bool contains(const std::vector<std::string>& list, const std::string& x) {
  return std::find(list.begin(), list.end(), x) != list.end();
}

std::string joined(const std::vector<std::string>& list) {
  std::string out;
  for (const auto& k : list) out += (out.empty() ? "" : ", ") + k;
  return out;
}

void validate_methods(const std::vector<std::string>& methods, const std::vector<std::string>& selects) {
  if (methods.empty()) throw usage_error("--methods needs at least one method");
  bool factoring = false;
  for (const std::string& m : methods) {
    if (m == kDense) continue;
    factoring = true;
    try {
      make_decomposer(m);
    } catch (const Error& e) {
      throw usage_error("--methods: " + e.message());
    }
  }
  if (!factoring) throw usage_error("--methods needs at least one factoring method besides 'dense'");
  if (selects.empty()) throw usage_error("--selects needs at least one selection rule");
  for (const std::string& s : selects)
    if (s != "top" && s != "importance") throw usage_error("unknown --selects '" + s + "' (top, importance)");
}

}  // namespace

void validate_search_options(const SearchOptions& o) {
  if (o.model.empty()) throw usage_error("search needs --model");
  if (o.out.empty()) throw usage_error("search needs --out DIR");
  if (o.resume && o.replace) throw usage_error("give either --resume or --force, not both");
  if (!(o.env.keep > 0.0 && o.env.keep < 1.0))
    throw usage_error("--keep must be in (0, 1) (1 would keep every weight dense: nothing to search)");
  if (o.episodes < 1) throw usage_error("--episodes must be at least 1");
  if (o.agents.empty()) throw usage_error("--agent needs at least one agent");
  for (const std::string& a : o.agents)
    if (!contains(known_agents(), a)) throw usage_error("unknown agent '" + a + "' (known: " + joined(known_agents()) + ")");
  validate_methods(o.env.methods, o.env.selects);
  if (o.reward.kind != "margin" && o.reward.kind != "acc" && o.reward.kind != "nll")
    throw usage_error("unknown --reward '" + o.reward.kind + "' (margin, acc, nll)");
  if (!contains(rank_actions(), o.env.rank_action))
    throw usage_error("unknown --rank-action '" + o.env.rank_action + "' (" + joined(rank_actions()) + ")");
  if (!contains(anchors(), o.env.anchor))
    throw usage_error("unknown --anchor '" + o.env.anchor + "' (" + joined(anchors()) + ")");
  if (needs_loss_estimates(o) && o.stats.calib_file.empty())
    throw usage_error("the kfac allocation (--anchor kfac with --rank-action anchored, or the kfac baseline) needs --calib: "
                      "its output-gradient statistics are not in a --stats file");
  if (o.surrogate != "kl" && o.surrogate != "none") throw usage_error("unknown --surrogate '" + o.surrogate + "' (kl, none)");
  if (o.surrogate == "kl" && (o.promote < 1 || o.surrogate_tokens < 2))
    throw usage_error("--surrogate kl needs --promote >= 1 and --surrogate-tokens >= 2");
  const std::vector<std::string>& baselines = names::all_baselines();
  for (const std::string& b : o.baselines)
    if (!contains(baselines, b)) throw usage_error("unknown baseline '" + b + "' (" + joined(baselines) + ")");
  if (contains(o.baselines, names::kEvolutionKl) && o.surrogate != "kl") throw usage_error("the evolution-kl baseline needs --surrogate kl");
  if (o.prior_method != "auto" && o.prior_method != "none" && !contains(o.env.methods, o.prior_method))
    throw usage_error("--prior-method '" + o.prior_method + "' is not one of --methods");
  if (o.limit < 0 || o.reward_items < 0 || o.baseline_evaluations < 0)
    throw usage_error("--limit, --reward-items and --baseline-evaluations must not be negative");
  if (o.finalists < 1 || o.sensitivity_grid < 1) throw usage_error("--finalists and --sensitivity-grid must be at least 1");
  if (!(o.env.min_rank_frac > 0.0 && o.env.min_rank_frac <= 1.0)) throw usage_error("--min-rank-frac must be in (0, 1]");
  if (o.agent.lr <= 0.0 || o.agent.hidden < 1 || o.agent.episodes_per_update < 1 || o.agent.epochs < 1)
    throw usage_error("--lr, --hidden, --episodes-per-update and --ppo-epochs must be positive");
  if (o.rkd.empty() || o.vrkd.empty() || o.test.empty()) throw usage_error("search needs --rkd, --vrkd and --test");
  const StatsSource& st = o.stats;
  if (!st.given()) throw usage_error("search needs --calib FILE (or --stats FILE)");
  if (!st.calib_file.empty() && !st.stats_file.empty()) throw usage_error("give either --calib or --stats, not both");
  if (!st.calib_file.empty() && st.calib_tokens < 1) throw usage_error("--calib needs --calib-tokens N (N >= 1)");
  if (!st.calib_file.empty() && st.ctx < 2) throw usage_error("--ctx must be at least 2");
  if (st.ctx < 0) throw usage_error("--ctx must be at least 2");
  if (o.heldout_tokens < 0) throw usage_error("--heldout-tokens must not be negative");
  const std::string& b = o.env.budget;
  if (b != budgets::kParams && b != budgets::kFlops && b != budgets::kLatency)
    throw usage_error("unknown --budget '" + b + "' (params, flops, latency)");
  (void)parse_workload(o.latency_workload);
  if (!o.save_policy.empty()) {
    const fs::path parent = fs::absolute(o.save_policy).parent_path();
    if (!fs::is_directory(parent)) throw usage_error("--save-policy: no directory " + parent.string());
    if (fs::is_directory(o.save_policy)) throw usage_error("--save-policy " + o.save_policy + " is a directory");
  }
  if (o.final_heal != "none" && o.final_heal != "compensate")
    throw usage_error("unknown --final-heal '" + o.final_heal + "' (none, compensate)");
  if (o.final_heal == "compensate" && st.calib_file.empty())
    throw usage_error("--final-heal compensate needs --calib FILE (healing refits on the calibration text)");
}

SearchResults run_search(const SearchOptions& opts) {
  validate_search_options(opts);
  SearchRun run(opts);
  return run.run();
}

}  // namespace rankrl
