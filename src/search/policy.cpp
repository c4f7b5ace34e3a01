#include "search/policy.h"

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/fs.h"

namespace rankrl {

Agent::~Agent() = default;

double uniform01(std::mt19937_64& rng) { return double(rng() >> 11) * 0x1.0p-53; }

double standard_normal(std::mt19937_64& rng) {  // Box–Muller, both draws fresh each call
  double u1 = uniform01(rng), u2 = uniform01(rng);
  return std::sqrt(-2.0 * std::log1p(-u1)) * std::cos(2.0 * M_PI * u2);
}

namespace {

torch::nn::Sequential mlp(int64_t in, int64_t hidden) {
  return torch::nn::Sequential(torch::nn::Linear(in, hidden), torch::nn::Tanh(),
                               torch::nn::Linear(hidden, hidden), torch::nn::Tanh());
}

// Index drawn from softmax(logits) with one uniform draw.
int sample_categorical(const torch::Tensor& logits, std::mt19937_64& rng) {
  torch::Tensor p = torch::softmax(logits, -1).to(torch::kDouble);
  auto pa = p.accessor<double, 1>();
  double u = uniform01(rng), acc = 0.0;
  for (int64_t i = 0; i < p.size(0); ++i) {
    acc += pa[i];
    if (u < acc) return int(i);
  }
  return int(p.size(0) - 1);
}

}  // namespace

PolicyNetImpl::PolicyNetImpl(int64_t state_size, int64_t hidden, int64_t methods, int64_t selects,
                             const AgentOptions& o) {
  body = register_module("body", mlp(state_size, hidden));
  critic = register_module("critic", mlp(state_size, hidden));
  critic->push_back(torch::nn::Linear(hidden, 1));
  method_head = register_module("method_head", torch::nn::Linear(hidden, methods));
  select_head = register_module("select_head", torch::nn::Linear(hidden, selects));
  rank_head = register_module("rank_head", torch::nn::Linear(hidden, 1));
  log_std = register_parameter("log_std", torch::full({1}, std::log(o.init_std)));
  torch::NoGradGuard no_grad;
  // Small output layers: the first episodes sample near the prior, not at random extremes.
  for (auto* head : {&method_head, &select_head, &rank_head}) {
    (*head)->weight.mul_(0.01);
    (*head)->bias.zero_();
  }
  const double p = std::clamp(o.init_rank, 0.02, 0.98);
  rank_head->bias.fill_(std::log(p / (1.0 - p)));
  if (o.prior_method >= 0 && o.prior_method < methods) method_head->bias[o.prior_method] = o.prior_strength;
}

PolicyOutput PolicyNetImpl::forward(const torch::Tensor& states) {
  torch::Tensor h = body->forward(states);
  return {method_head(h), select_head(h), rank_head(h).squeeze(-1), log_std.expand({states.size(0)}),
          critic->forward(states).squeeze(-1)};
}

ActionTerms action_terms(const PolicyOutput& out, const std::vector<StepRecord>& steps) {
  const int64_t N = steps.size();
  torch::Tensor methods = torch::empty({N}, torch::kLong), selects = torch::empty({N}, torch::kLong);
  torch::Tensor raw = torch::empty({N}, torch::kFloat);
  for (int64_t i = 0; i < N; ++i) {
    methods[i] = steps[i].action.method;
    selects[i] = steps[i].action.select;
    raw[i] = float(steps[i].raw_rank);
  }
  torch::Tensor lm = torch::log_softmax(out.method_logits, -1), ls = torch::log_softmax(out.select_logits, -1);
  torch::Tensor std = out.log_std.exp();
  torch::Tensor z = (raw - out.rank_mean) / std;
  torch::Tensor gauss = -0.5 * z * z - out.log_std - 0.5 * std::log(2.0 * M_PI);
  torch::Tensor logp = lm.gather(1, methods.unsqueeze(1)).squeeze(1) + ls.gather(1, selects.unsqueeze(1)).squeeze(1) + gauss;
  torch::Tensor entropy = -(lm.exp() * lm).sum(-1) - (ls.exp() * ls).sum(-1) + out.log_std + 0.5 * std::log(2.0 * M_PI * M_E);
  return {logp, entropy};
}

void RunningStats::add(double x) {
  count += 1.0;
  double d = x - mean;
  mean += d / count;
  m2 += d * (x - mean);
}

double RunningStats::stddev() const { return count > 1.0 ? std::sqrt(m2 / (count - 1.0)) : 1.0; }

PolicyAgent::PolicyAgent(size_t state_size, size_t methods, size_t selects, const AgentOptions& o, uint64_t seed)
    : opts_(o), net_(nullptr), seed_(seed) {
  torch::manual_seed(seed);
  net_ = PolicyNet(int64_t(state_size), o.hidden, int64_t(methods), int64_t(selects), o);
  optimizer_ = std::make_unique<torch::optim::Adam>(net_->parameters(), torch::optim::AdamOptions(o.lr));
}

torch::Tensor PolicyAgent::states_of(const std::vector<StepRecord>& steps) const {
  const int64_t N = steps.size(), D = steps.empty() ? 0 : steps[0].state.size();
  torch::Tensor s = torch::empty({N, D}, torch::kFloat);
  for (int64_t i = 0; i < N; ++i) std::memcpy(s[i].data_ptr<float>(), steps[i].state.data(), D * sizeof(float));
  return s;
}

Action PolicyAgent::act(const std::vector<float>& state, std::mt19937_64& rng, StepRecord& record, bool greedy) {
  torch::NoGradGuard no_grad;
  record.state = state;
  torch::Tensor s = torch::from_blob(const_cast<float*>(state.data()), {1, int64_t(state.size())}, torch::kFloat).clone();
  PolicyOutput out = net_->forward(s);
  if (!method_mask_.empty())
    for (size_t k = 0; k < method_mask_.size(); ++k)
      if (!method_mask_[k]) out.method_logits[0][int64_t(k)] = -1e9;
  Action a;
  if (greedy) {
    a.method = int(out.method_logits[0].argmax().item<int64_t>());
    a.select = int(out.select_logits[0].argmax().item<int64_t>());
    record.raw_rank = out.rank_mean[0].item<double>();
  } else {
    a.method = sample_categorical(out.method_logits[0], rng);
    a.select = sample_categorical(out.select_logits[0], rng);
    record.raw_rank = out.rank_mean[0].item<double>() + std::exp(out.log_std[0].item<double>()) * standard_normal(rng);
  }
  a.rank_frac = 1.0 / (1.0 + std::exp(-record.raw_rank));
  record.action = a;
  record.value = out.value[0].item<double>();
  record.logp = action_terms(out, {record}).logp[0].item<double>();
  return a;
}

void PolicyAgent::finish_episode(std::vector<StepRecord> episode) {
  pending_.push_back(std::move(episode));
  if (int(pending_.size()) < opts_.episodes_per_update) return;
  normalise_rewards(pending_);
  update(pending_);
  ++updates_;
  pending_.clear();
}

void PolicyAgent::normalise_rewards(std::vector<std::vector<StepRecord>>& episodes) {
  for (const auto& e : episodes) reward_stats_.add(e.back().reward);
  const double scale = std::max(reward_stats_.stddev(), 1e-6);
  for (auto& e : episodes) {
    e.back().reward -= reward_stats_.mean;
    for (StepRecord& s : e) s.reward /= scale;
  }
}

void PolicyAgent::optimise(const torch::Tensor& loss) {
  optimizer_->zero_grad();
  loss.backward();
  torch::nn::utils::clip_grad_norm_(net_->parameters(), opts_.max_grad_norm);
  optimizer_->step();
}

namespace {

nlohmann::json steps_to_json(const std::vector<StepRecord>& steps) {
  nlohmann::json j = nlohmann::json::array();
  for (const StepRecord& s : steps)
    j.push_back({{"state", s.state}, {"method", s.action.method}, {"rank_frac", s.action.rank_frac},
                 {"select", s.action.select}, {"raw_rank", s.raw_rank}, {"logp", s.logp},
                 {"value", s.value}, {"reward", s.reward}});
  return j;
}

std::vector<StepRecord> steps_from_json(const nlohmann::json& j) {
  std::vector<StepRecord> steps;
  for (const auto& s : j) {
    StepRecord r;
    r.state = s.at("state").get<std::vector<float>>();
    r.action = {s.at("method").get<int>(), s.at("rank_frac").get<double>(), s.at("select").get<int>()};
    r.raw_rank = s.at("raw_rank");
    r.logp = s.at("logp");
    r.value = s.at("value");
    r.reward = s.at("reward");
    steps.push_back(std::move(r));
  }
  return steps;
}

}  // namespace

void PolicyAgent::save(const std::string& path) const {
  nlohmann::json state = {{"reward_stats", {reward_stats_.count, reward_stats_.mean, reward_stats_.m2}},
                          {"baseline", baseline_}, {"baseline_set", baseline_set_}, {"updates", updates_}, {"seed", seed_}, {"last", last_},
                          {"pending", nlohmann::json::array()}};
  for (const auto& e : pending_) state["pending"].push_back(steps_to_json(e));
  torch::serialize::OutputArchive archive, net, opt;
  net_->save(net);
  optimizer_->save(opt);
  archive.write("net", net);
  archive.write("optimizer", opt);
  archive.write("state", c10::IValue(state.dump()));
  std::string bytes;
  archive.save_to([&](const void* data, size_t n) {
    bytes.append(static_cast<const char*>(data), n);
    return n;
  });
  write_file_atomic(path, bytes);
}

void PolicyAgent::load(const std::string& path) {
  torch::serialize::InputArchive archive, net, opt;
  try {
    archive.load_from(path);
  } catch (const std::exception& e) {
    throw Error(path, "not a readable agent checkpoint");
  }
  archive.read("net", net);
  archive.read("optimizer", opt);
  net_->load(net);
  optimizer_->load(opt);
  c10::IValue v;
  archive.read("state", v);
  nlohmann::json state = nlohmann::json::parse(v.toStringRef());
  reward_stats_ = {state["reward_stats"][0], state["reward_stats"][1], state["reward_stats"][2]};
  baseline_ = state["baseline"];
  baseline_set_ = state["baseline_set"];
  updates_ = state["updates"];
  seed_ = state["seed"];
  last_ = state["last"];
  pending_.clear();
  for (const auto& e : state["pending"]) pending_.push_back(steps_from_json(e));
}

namespace {

const char* kPolicyFormat = "rankrl-policy";
const int kPolicyFormatVersion = 1;

std::string archive_bytes(torch::serialize::OutputArchive& archive) {
  std::string bytes;
  archive.save_to([&](const void* data, size_t n) {
    bytes.append(static_cast<const char*>(data), n);
    return n;
  });
  return bytes;
}

template <class T>
T field(const nlohmann::json& j, const char* key, const std::string& path) {
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(path, std::string("policy file without a valid '") + key + "'");
  }
}

}  // namespace

nlohmann::json policy_info_json(const PolicyInfo& i) {
  return {{"format", kPolicyFormat}, {"format_version", kPolicyFormatVersion}, {"agent", i.agent},
          {"hidden", i.hidden}, {"feature_version", i.feature_version}, {"features", i.features},
          {"normalisation", "none beyond the features' own closed-form scaling (env.h: fractions, log-ratios, "
                            "relative depth, role one-hot, relative output errors); no running statistics"},
          {"methods", i.methods}, {"selects", i.selects}, {"roles", i.roles}, {"rank_action", i.rank_action},
          {"anchor", i.anchor}, {"keep_range", {i.keep_min, i.keep_max}}, {"trained_on", i.trained_on}, {"episodes", i.episodes}};
}

PolicyInfo read_policy_info(const std::string& path) {
  check(std::filesystem::is_regular_file(path), path, "no such policy file");
  torch::serialize::InputArchive archive;
  c10::IValue v;
  try {
    archive.load_from(path);
  } catch (const std::exception&) {
    throw Error(path, "not a readable policy file (truncated or corrupt)");
  }
  if (!archive.try_read("policy", v) || !v.isString()) throw Error(path, "not a rankrl policy file (no policy description)");
  const nlohmann::json j = nlohmann::json::parse(v.toStringRef(), nullptr, false);
  check(!j.is_discarded() && j.is_object() && j.value("format", "") == kPolicyFormat, path, "not a rankrl policy file");
  check(j.value("format_version", 0) == kPolicyFormatVersion, path,
        "policy format version " + j.value("format_version", nlohmann::json(0)).dump() + " (this rankrl reads " +
            std::to_string(kPolicyFormatVersion) + ")");
  PolicyInfo i;
  i.agent = field<std::string>(j, "agent", path);
  i.hidden = field<int>(j, "hidden", path);
  i.feature_version = field<int>(j, "feature_version", path);
  i.features = field<std::vector<std::string>>(j, "features", path);
  i.methods = field<std::vector<std::string>>(j, "methods", path);
  i.selects = field<std::vector<std::string>>(j, "selects", path);
  i.roles = field<std::vector<std::string>>(j, "roles", path);
  i.rank_action = field<std::string>(j, "rank_action", path);
  i.anchor = j.contains("anchor") ? field<std::string>(j, "anchor", path) : "svdllm2";  // policies before kfac
  const auto range = field<std::vector<double>>(j, "keep_range", path);
  check(range.size() == 2 && range[0] <= range[1], path, "policy file with a bad keep_range");
  i.keep_min = range[0], i.keep_max = range[1];
  i.trained_on = field<std::vector<nlohmann::json>>(j, "trained_on", path);
  i.episodes = field<int64_t>(j, "episodes", path);
  check(i.hidden >= 1 && !i.methods.empty() && !i.selects.empty(), path, "policy file with an empty network or method set");
  torch::serialize::InputArchive net;
  if (!archive.try_read("net", net)) throw Error(path, "policy file without network weights");
  return i;
}

void PolicyAgent::save_policy(const std::string& path, const nlohmann::json& info) const {
  torch::serialize::OutputArchive archive, net;
  net_->save(net);
  archive.write("net", net);
  archive.write("policy", c10::IValue(info.dump()));
  write_file_atomic(path, archive_bytes(archive));
}

void PolicyAgent::load_policy(const std::string& path) {
  torch::serialize::InputArchive archive, net;
  archive.load_from(path);
  archive.read("net", net);
  try {
    net_->load(net);
  } catch (const c10::Error&) {
    throw Error(path, "the policy's network does not fit this state and action space");
  }
  // A fresh optimizer on the loaded weights (Adam's moments belong to the earlier run).
  optimizer_ = std::make_unique<torch::optim::Adam>(net_->parameters(), torch::optim::AdamOptions(opts_.lr));
}

}  // namespace rankrl
