#include "search/results.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"

namespace rankrl {

using nlohmann::json;

// Member-wise to_json/from_json (from_json requires every member) for the plain parts.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SplitMetrics, margin, acc, acc_norm, items)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Difference, diff, lo, hi)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PairedDifferences, margin, acc)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RewardSettings, kind, size_weight, shaping, items_per_evaluation, agent_surrogate,
                                   surrogate_tokens, promote)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SplitSizes, rkd, vrkd, test)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(HealedResult, rkd, vrkd, test, heldout_ppl, vs_dense, vs_best_uniform, seconds,
                                   plan_changed)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Timing, seconds, setup_seconds, decompose_seconds, factorizations_loaded,
                                   calibration_seconds, evaluations, items_scored, memo_hits, surrogate_evaluations,
                                   surrogate_seconds, forward_seconds, apply_seconds, evaluations_per_second,
                                   forward_share)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Savings::RewardSubset, evaluations, items_scored, items_if_all_rkd, saved_share)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Savings::Memo, evaluations_skipped)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Savings::Surrogate, rkd_evaluations_avoided, seconds_per_evaluation,
                                   rkd_seconds_per_evaluation)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Savings::ContextSharing, rkd_tokens, rkd_tokens_without_sharing, saved_share)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Savings::FactorCache, decompose_seconds_once, apply_seconds_per_evaluation,
                                   factorizations_loaded_from_disk)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Savings, reward_subset, memo, surrogate, context_sharing, factor_cache)

namespace {

void row_to_json(json& j, const ResultRow& r) {
  j["rkd"] = r.rkd;
  j["vrkd"] = r.vrkd;
  j["test"] = r.test;
  j["vs_dense"] = r.vs_dense;
  j["vs_best_uniform"] = r.vs_best_uniform;
  j["linear_parameters"] = r.linear_parameters;
  j["total_parameters"] = r.total_parameters;
  j["total_bytes"] = r.total_bytes;
  j["linear_flops_per_token"] = r.linear_flops_per_token;
  j["prefill_tokens_per_second"] = r.prefill_tokens_per_second;
  j["decode_tokens_per_second"] = r.decode_tokens_per_second;
  j["predicted_seconds"] = r.predicted_seconds ? json(*r.predicted_seconds) : json(nullptr);
  j["measured_seconds"] = r.measured_seconds ? json(*r.measured_seconds) : json(nullptr);
}

// A field results.json files from before it existed lack (then it keeps its default).
template <class T>
void optional_field(const json& j, const char* key, T& v) {
  if (j.contains(key) && !j[key].is_null()) j[key].get_to(v);
}
template <class T>
void optional_field(const json& j, const char* key, std::optional<T>& v) {
  if (j.contains(key) && !j[key].is_null()) v = j[key].get<T>();
}

void row_from_json(const json& j, ResultRow& r) {
  j.at("rkd").get_to(r.rkd);
  j.at("vrkd").get_to(r.vrkd);
  j.at("test").get_to(r.test);
  j.at("vs_dense").get_to(r.vs_dense);
  j.at("vs_best_uniform").get_to(r.vs_best_uniform);
  j.at("linear_parameters").get_to(r.linear_parameters);
  j.at("total_parameters").get_to(r.total_parameters);
  j.at("total_bytes").get_to(r.total_bytes);
  optional_field(j, "linear_flops_per_token", r.linear_flops_per_token);
  optional_field(j, "prefill_tokens_per_second", r.prefill_tokens_per_second);
  optional_field(j, "decode_tokens_per_second", r.decode_tokens_per_second);
  optional_field(j, "predicted_seconds", r.predicted_seconds);
  optional_field(j, "measured_seconds", r.measured_seconds);
}

void budget_to_json(json& j, const BudgetInfo& b) {
  j = {{"kind", b.kind}, {"dense", b.dense}, {"budget", b.budget}, {"prefill_workload", b.prefill_workload},
       {"decode_workload", b.decode_workload}, {"latency_workload", b.latency_workload},
       {"rest_seconds", b.rest_seconds ? json(*b.rest_seconds) : json(nullptr)},
       {"budget_forward_seconds", b.budget_forward_seconds ? json(*b.budget_forward_seconds) : json(nullptr)}};
}

void budget_from_json(const json& j, BudgetInfo& b) {
  j.at("kind").get_to(b.kind);
  j.at("dense").get_to(b.dense);
  j.at("budget").get_to(b.budget);
  j.at("prefill_workload").get_to(b.prefill_workload);
  j.at("decode_workload").get_to(b.decode_workload);
  j.at("latency_workload").get_to(b.latency_workload);
  optional_field(j, "rest_seconds", b.rest_seconds);
  optional_field(j, "budget_forward_seconds", b.budget_forward_seconds);
}

}  // namespace

void to_json(json& j, const BootstrapSettings& b) {
  j = {{"split", b.split}, {"level", b.level}, {"resamples", b.resamples}, {"seed", b.seed}, {"method", b.method},
       {"best_uniform", b.best_uniform}, {"best_uniform_rule", b.best_uniform_rule}};
  if (b.best_uniform_healed) j["best_uniform_healed"] = *b.best_uniform_healed;
}

void from_json(const json& j, BootstrapSettings& b) {
  j.at("split").get_to(b.split);
  j.at("level").get_to(b.level);
  j.at("resamples").get_to(b.resamples);
  j.at("seed").get_to(b.seed);
  j.at("method").get_to(b.method);
  j.at("best_uniform").get_to(b.best_uniform);
  j.at("best_uniform_rule").get_to(b.best_uniform_rule);
  if (j.contains("best_uniform_healed")) b.best_uniform_healed = j["best_uniform_healed"].get<std::string>();
}

void to_json(json& j, const DenseResult& d) {
  row_to_json(j, d);
  if (d.heldout_ppl) j["heldout_ppl"] = *d.heldout_ppl;
}

void from_json(const json& j, DenseResult& d) {
  row_from_json(j, d);
  if (j.contains("heldout_ppl")) d.heldout_ppl = j["heldout_ppl"].get<double>();
}

void to_json(json& j, const ApproachResult& a) {
  row_to_json(j, a);
  j["name"] = a.name;
  j["evaluations"] = a.evaluations;
  j["surrogate_evaluations"] = a.surrogate_evaluations;
  j["seconds"] = a.seconds;
  j["heldout_ppl"] = a.heldout_ppl;
  j["surrogate_kl"] = a.surrogate_kl ? json(*a.surrogate_kl) : json(nullptr);
  j["keep_actual"] = a.keep_actual;
  j["found_at_unit"] = a.found_at_unit;
  j["train_reward"] = a.train_reward;
  if (a.healed) j["healed"] = *a.healed;
}

void from_json(const json& j, ApproachResult& a) {
  row_from_json(j, a);
  j.at("name").get_to(a.name);
  j.at("evaluations").get_to(a.evaluations);
  j.at("surrogate_evaluations").get_to(a.surrogate_evaluations);
  j.at("seconds").get_to(a.seconds);
  j.at("heldout_ppl").get_to(a.heldout_ppl);
  if (!j.at("surrogate_kl").is_null()) a.surrogate_kl = j["surrogate_kl"].get<double>();
  j.at("keep_actual").get_to(a.keep_actual);
  j.at("found_at_unit").get_to(a.found_at_unit);
  j.at("train_reward").get_to(a.train_reward);
  if (j.contains("healed")) a.healed = j["healed"].get<HealedResult>();
}

const ApproachResult* SearchResults::approach(const std::string& name) const {
  for (const ApproachResult& a : approaches)
    if (a.name == name) return &a;
  return nullptr;
}

json results_to_json(const SearchResults& r) {
  json budget;
  budget_to_json(budget, r.budget);
  json j = {{"command", r.command}, {"rankrl_version", r.rankrl_version}, {"libtorch_version", r.libtorch_version},
          {"seed", r.seed}, {"threads", r.threads}, {"model", r.model}, {"keep", r.keep}, {"budget", budget},
          {"methods", r.methods}, {"selects", r.selects}, {"agents", r.agents}, {"episodes", r.episodes},
          {"reward", r.reward}, {"splits", r.splits},
          {"skipped_too_long", r.skipped_too_long}, {"final_heal", r.final_heal}, {"heldout_tokens", r.heldout_tokens},
          {"dense", r.dense}, {"approaches", r.approaches}, {"chosen", r.chosen},
          {"bootstrap", r.bootstrap}, {"timing", r.timing}, {"savings", r.savings}};
  if (r.chosen_without_heal) j["chosen_without_heal"] = *r.chosen_without_heal;
  return j;
}

SearchResults results_from_json(const json& j, const std::string& path) {
  check(j.is_object(), path, "not a JSON object");
  SearchResults r;
  try {
    j.at("command").get_to(r.command);
    j.at("rankrl_version").get_to(r.rankrl_version);
    j.at("libtorch_version").get_to(r.libtorch_version);
    j.at("seed").get_to(r.seed);
    j.at("threads").get_to(r.threads);
    j.at("model").get_to(r.model);
    j.at("keep").get_to(r.keep);
    if (j.contains("budget")) budget_from_json(j["budget"], r.budget);  // absent before --budget
    j.at("methods").get_to(r.methods);
    j.at("selects").get_to(r.selects);
    j.at("agents").get_to(r.agents);
    j.at("episodes").get_to(r.episodes);
    j.at("reward").get_to(r.reward);
    j.at("splits").get_to(r.splits);
    // Absent in the results of an older rankrl: read as none skipped, no final heal.
    if (j.contains("skipped_too_long")) j["skipped_too_long"].get_to(r.skipped_too_long);
    if (j.contains("final_heal")) j["final_heal"].get_to(r.final_heal);
    j.at("heldout_tokens").get_to(r.heldout_tokens);
    j.at("dense").get_to(r.dense);
    j.at("approaches").get_to(r.approaches);
    j.at("chosen").get_to(r.chosen);
    if (j.contains("chosen_without_heal")) r.chosen_without_heal = j["chosen_without_heal"].get<std::string>();
    j.at("bootstrap").get_to(r.bootstrap);
    j.at("timing").get_to(r.timing);
    j.at("savings").get_to(r.savings);
  } catch (const json::exception& e) {
    throw Error(path, std::string("not the results of this rankrl search: ") + e.what());
  }
  return r;
}

SearchResults read_results(const std::string& path) {
  const json j = json::parse(read_file(path), nullptr, false);
  check(!j.is_discarded(), path, "not valid JSON");
  return results_from_json(j, path);
}

}  // namespace rankrl
