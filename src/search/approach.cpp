#include "search/approach.h"

#include <algorithm>
#include <fstream>

#include "core/dist.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"

namespace rankrl {

double ApproachState::best_reward() const { return top.empty() ? -1e300 : top.front().reward; }

nlohmann::json actions_to_json(const std::vector<Action>& actions) {
  nlohmann::json j = nlohmann::json::array();
  for (const Action& a : actions) j.push_back({a.method, a.rank_frac, a.select});
  return j;
}

std::vector<Action> actions_from_json(const nlohmann::json& j) {
  std::vector<Action> out;
  for (const auto& a : j) out.push_back({a.at(0).get<int>(), a.at(1).get<double>(), a.at(2).get<int>()});
  return out;
}

namespace {

nlohmann::json metrics_json(const RankMetrics& m) {
  return {{"margin", m.margin}, {"acc", m.acc}, {"acc_norm", m.acc_norm}, {"nll", m.nll}, {"items", m.items},
          {"finite", m.finite}};
}

RankMetrics metrics_from(const nlohmann::json& j) {
  RankMetrics m;
  m.margin = j.at("margin");
  m.acc = j.at("acc");
  m.acc_norm = j.at("acc_norm");
  m.nll = j.at("nll");
  m.items = j.at("items");
  m.finite = j.at("finite");
  return m;
}

// Inserts a plan into `pool` (best reward first, at most `size`, each plan once by its JSON key).
void add_to_pool(std::vector<PoolEntry>& pool, double reward, const std::string& key, std::vector<Action> actions,
                 int64_t size) {
  for (const PoolEntry& p : pool)
    if (p.key == key) return;
  size_t pos = 0;
  while (pos < pool.size() && pool[pos].reward >= reward) ++pos;
  if (int64_t(pos) >= size) return;
  pool.insert(pool.begin() + pos, PoolEntry{reward, key, std::move(actions)});
  if (int64_t(pool.size()) > size) pool.erase(pool.end() - 1);
}

// The typed approach-specific state as the checkpoint's "extra" object (the format of the loose
// JSON bag it replaced, so checkpoints from before resume).
nlohmann::json extra_to_json(const ApproachState& s) {
  nlohmann::json extra = nlohmann::json::object();
  if (s.surrogate_evaluations > 0) extra["surrogate_evaluations"] = s.surrogate_evaluations;
  if (!s.pool.empty()) {
    extra["pool"] = nlohmann::json::array();
    for (const PoolEntry& p : s.pool)
      extra["pool"].push_back({{"reward", p.reward}, {"key", p.key}, {"actions", actions_to_json(p.actions)}});
  }
  if (s.promoted) extra["promoted"] = *s.promoted;
  if (!s.sensitivity_table.empty()) extra["table"] = s.sensitivity_table;
  if (!s.parent.empty()) extra["parent"] = actions_to_json(s.parent), extra["parent_reward"] = s.parent_reward;
  if (!s.rng_state.empty()) extra["rng"] = s.rng_state;
  return extra;
}

void extra_from_json(const nlohmann::json& extra, ApproachState& s) {
  s.surrogate_evaluations = extra.value("surrogate_evaluations", int64_t(0));
  if (extra.contains("pool"))
    for (const auto& p : extra.at("pool"))
      s.pool.push_back({p.at("reward").get<double>(), p.at("key").get<std::string>(), actions_from_json(p.at("actions"))});
  if (extra.contains("promoted")) s.promoted = extra.at("promoted").get<int64_t>();
  if (extra.contains("table")) s.sensitivity_table = extra.at("table").get<std::vector<std::vector<double>>>();
  if (extra.contains("parent")) {
    s.parent = actions_from_json(extra.at("parent"));
    s.parent_reward = extra.at("parent_reward").get<double>();
  }
  s.rng_state = extra.value("rng", std::string());
}

}  // namespace

nlohmann::json to_json(const ApproachState& s) {
  nlohmann::json top = nlohmann::json::array();
  for (const Candidate& c : s.top)
    top.push_back({{"plan", plan_to_json(c.plan)}, {"actions", actions_to_json(c.actions)}, {"reward", c.reward},
                   {"rkd", metrics_json(c.rkd)}, {"unit", c.unit}});
  return {{"name", s.name}, {"done", s.done}, {"units", s.units}, {"evaluations", s.evaluations},
          {"seconds", s.seconds}, {"top", top}, {"extra", extra_to_json(s)}};
}

ApproachState approach_from_json(const nlohmann::json& j) {
  ApproachState s;
  s.name = j.at("name");
  s.done = j.at("done");
  s.units = j.at("units");
  s.evaluations = j.at("evaluations");
  s.seconds = j.at("seconds");
  extra_from_json(j.at("extra"), s);
  for (const auto& c : j.at("top"))
    s.top.push_back({plan_from_json(c.at("plan"), "checkpoint"), actions_from_json(c.at("actions")), c.at("reward"),
                     metrics_from(c.at("rkd")), c.at("unit")});
  return s;
}

RunLog::RunLog(std::string path, int64_t keep_lines) : path_(std::move(path)) {
  if (!dist::is_root()) { lines_ = keep_lines; return; }  // rank 0 alone writes (core/dist.h)
  std::string kept;
  std::ifstream in(path_);
  for (std::string line; lines_ < keep_lines && std::getline(in, line); ++lines_) kept += line + "\n";
  check(lines_ == keep_lines, path_, "has fewer lines than the checkpoint recorded");
  write_file_atomic(path_, kept);
}

void RunLog::append(const nlohmann::json& line) {
  if (!dist::is_root()) { ++lines_; return; }
  std::ofstream out(path_, std::ios::app);
  out << line.dump() << "\n";
  out.flush();
  check(bool(out), path_, "cannot append to the log");
  ++lines_;
}

double SearchContext::score(ApproachState& st, const std::vector<Action>& actions, nlohmann::json log_extra) {
  Plan plan = env.decode(actions);
  return score_plan(st, plan, env.applied(), std::move(log_extra));
}

double SearchContext::score_surrogate(ApproachState& st, const std::vector<Action>& actions,
                                      nlohmann::json log_extra) {
  auto start = std::chrono::steady_clock::now();
  Plan plan = env.decode(actions);
  const double cost = env.plan_cost(plan);
  double kl = 0.0;
  const double reward = evaluator.surrogate(plan, cost, env.budget(), env.dense_params(), &kl);
  st.surrogate_evaluations++;
  std::vector<PoolEntry>& pool = st.pool;
  add_to_pool(pool, reward, plan_to_json(plan).dump(), env.applied(), pool_size);
  nlohmann::json line = {{"approach", st.name}, {"unit", st.units}, {"surrogate", reward}, {"kl", kl},
                         {"best_surrogate", pool.empty() ? reward : pool[0].reward},
                         {"linear_parameters", cost}, {"keep_actual", cost / env.dense_params()},
                         {"actions", actions_to_json(env.applied())}, {"seconds", seconds_since(start)}};
  for (auto& [k, v] : log_extra.items()) line[k] = v;
  log.append(line);
  return reward;
}

double SearchContext::score_plan(ApproachState& st, const Plan& plan, const std::vector<Action>& actions,
                                 nlohmann::json log_extra) {
  auto start = std::chrono::steady_clock::now();
  const double cost = env.plan_cost(plan);
  RankMetrics m;
  const double reward = evaluator.reward(plan, subset, cost, env.budget(), env.dense_params(), &m);
  Candidate c{plan, actions, reward, m, st.units};
  auto pos = std::find_if(st.top.begin(), st.top.end(), [&](const Candidate& o) { return reward > o.reward; });
  st.top.insert(pos, std::move(c));
  if (int64_t(st.top.size()) > keep_top) st.top.resize(keep_top);
  st.evaluations++;
  nlohmann::json line = {{"approach", st.name}, {"unit", st.units}, {"reward", reward},
                         {"best", st.best_reward()}, {"rkd", metrics_json(m)},
                         {"linear_parameters", cost}, {"keep_actual", cost / env.dense_params()},
                         {"actions", actions_to_json(actions)}, {"seconds", seconds_since(start)}};
  for (auto& [k, v] : log_extra.items()) line[k] = v;
  log.append(line);
  return reward;
}

}  // namespace rankrl
