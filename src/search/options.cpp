#include "search/options.h"

#include <nlohmann/json.hpp>
#include <type_traits>

namespace rankrl {

// A pointer to the field `member` of SearchOptions (nested ones included), as a table entry.
#define FIELD(member) [](SearchOptions& o) -> OptionField { return &o.member; }

const std::vector<SearchOptionInfo>& search_option_table() {
  constexpr unsigned E = kExperiment, F = kFingerprint, FF = kFingerprintFile, R = kRequired;
  static const std::vector<SearchOptionInfo> table = {
      {"--model", "llama2.c .bin or Hugging Face model directory", FIELD(model), R | FF},
      // In the fingerprint as the file the run uses (found beside the model when not given).
      {"--tokenizer", "Tokenizer (default: found beside the model)", FIELD(tokenizer), FF},
      {"--calib", "", FIELD(stats.calib_file), kCalibFlag | FF},
      {"--calib-tokens", "", FIELD(stats.calib_tokens), kCalibFlag | F},
      {"--ctx", "", FIELD(stats.ctx), kCalibFlag | F},
      {"--stats", "Statistics from rankrl calibrate (instead of --calib)", FIELD(stats.stats_file), FF},
      {"--keep", "Fraction of the --budget quantity to keep, in (0, 1)", FIELD(env.keep), R | F},
      {"--budget",
       "What --keep is a fraction of: params (linear-weight parameters) | flops (linear FLOPs per token) | "
       "latency (this machine's measured Linear time of --latency-workload)",
       FIELD(env.budget), E | F},
      {"--latency-workload", "Workload of --budget latency: prefill:BxT or decode:B", FIELD(latency_workload), E | F},
      {"--latency-table", "Testing aid: a latency table file used instead of measuring", FIELD(latency_table), kHidden | E | FF},
      {"--rkd", "Ranking items for the reward (task file or split directory)", FIELD(rkd), R | FF},
      {"--vrkd", "Validation items that choose the final plan", FIELD(vrkd), R | FF},
      {"--test", "Test items, only reported", FIELD(test), R | FF},
      {"--limit", "Use only the first N items of each split", FIELD(limit), E | F},
      {"--agent", "Agents, comma-separated: ppo, reinforce", FIELD(agents), F},
      {"--episodes", "Episodes per agent", FIELD(episodes), F},
      {"--seed", "Seed of every random choice", FIELD(seed), F},
      {"--out", "Output directory", FIELD(out), R},
      {"--resume", "Continue an interrupted run in --out", FIELD(resume), kFlag},
      {"--force", "Start over in a non-empty --out", FIELD(replace), kFlag},
      {"--methods", "Enabled methods (decomposer specs and 'dense'), comma-separated", FIELD(env.methods), E | F},
      {"--selects", "Enabled selection rules: top, importance", FIELD(env.selects), E | F},
      {"--baselines", "Baselines to run: uniform,svdllm2,sensitivity,random,evolution[,kfac][,evolution-kl]", FIELD(baselines), E | F},
      {"--reward", "Reward metric: margin | acc | nll", FIELD(reward.kind), E | F},
      {"--size-weight", "Weight of the size term", FIELD(reward.size_weight), E | F},
      {"--shaping", "Per-step shaping weight (0 = terminal reward only)", FIELD(shaping), E | F},
      {"--rank-action",
       "Agent rank fraction: absolute (the env's own) | relative (to the average keep the remaining weights must meet) | "
       "anchored (a shift of the --anchor allocation)",
       FIELD(env.rank_action), E | F},
      {"--anchor",
       "Allocation the anchored rank action shifts: svdllm2 (SVD-LLM v2 loss rule) | kfac (K-FAC loss estimates; "
       "needs --calib: a whole-model backward in calibration)",
       FIELD(env.anchor), E | F},
      {"--surrogate", "What agents train on: kl (surrogate, default) | none (RkD reward)", FIELD(surrogate), E | F},
      {"--surrogate-tokens", "Calibration tokens the KL surrogate scores", FIELD(surrogate_tokens), E | F},
      {"--promote", "Agent plans (best by surrogate) scored on RkD", FIELD(promote), E | F},
      {"--baseline-evaluations", "Least RkD evaluations of random and evolution (default: as many as the agents)",
       FIELD(baseline_evaluations), E | F},
      {"--reward-items", "RkD items per training evaluation (0 = all)", FIELD(reward_items), E | F},
      // In the fingerprint: it sets how many candidates every approach keeps, so it changes the run.
      {"--finalists", "Best plans per approach compared on VRkD", FIELD(finalists), E | F},
      {"--final-heal",
       "Healing in the final choice: none | compensate (each finalist scored after the --heal-compensate refit; "
       "the choice and the written model are the healed ones)",
       FIELD(final_heal), E | F},
      {"--sensitivity-grid", "Rank fractions per weight in the sensitivity table", FIELD(sensitivity_grid), E | F},
      {"--heldout", "Perplexity text (default: the --calib file after the calibration tokens)", FIELD(heldout_file), FF},
      {"--heldout-tokens", "Perplexity tokens (at most)", FIELD(heldout_tokens), E | F},
      {"--factor-cache", "Directory of the on-disk factor cache (default: --out)", FIELD(factor_cache), E},
      {"--min-rank-frac", "Smallest rank fraction the budget clip assumes", FIELD(env.min_rank_frac), E | F},
      {"--lr", "Agent learning rate (Adam)", FIELD(agent.lr), E | F},
      {"--hidden", "Agent hidden units", FIELD(agent.hidden), E | F},
      {"--episodes-per-update", "Episodes per policy update", FIELD(agent.episodes_per_update), E | F},
      {"--ppo-epochs", "PPO epochs per update", FIELD(agent.epochs), E | F},
      {"--ppo-clip", "PPO clip range", FIELD(agent.clip), E | F},
      {"--gae-lambda", "GAE lambda", FIELD(agent.lambda), E | F},
      {"--entropy", "Entropy bonus", FIELD(agent.entropy), E | F},
      {"--init-std", "Initial std of the rank-fraction logit", FIELD(agent.init_std), E | F},
      {"--prior-method", "Method the initial policy prefers: auto (lowest closed-form output error), none, or a --methods name",
       FIELD(prior_method), E | F},
      {"--prior-strength", "Extra initial logit of --prior-method (1.5: among 4 methods the others are still drawn for ~4 weights in 10)",
       FIELD(agent.prior_strength), E | F},
      {"--save-policy", "Write the (first) agent's trained policy to this file (for --init-policy and rankrl plan)",
       FIELD(save_policy), E},
      // By content: fine-tuning from another policy is another run.
      {"--init-policy", "Start every agent from this policy file (fine-tuning; its --hidden is used)", FIELD(init_policy), E | FF},
      {"--abort-after", "Testing aid: exit(3) after N checkpoints", FIELD(abort_after_checkpoints), kHidden | E},
      {"--whole-model-setup", "Testing aid: whole-model statistics before setup instead of layer by layer",
       FIELD(whole_model_setup), kHidden | kFlag},
  };
  return table;
}

#undef FIELD

const SearchOptionInfo* find_search_option(const std::string& flag) {
  for (const SearchOptionInfo& opt : search_option_table())
    if (flag == opt.flag) return &opt;
  return nullptr;
}

void set_option_text(SearchOptions& o, const SearchOptionInfo& opt, const std::string& text) {
  std::visit(
      [&](auto* field) {
        using T = std::remove_pointer_t<decltype(field)>;
        if constexpr (std::is_same_v<T, std::string>) *field = text;
        else if constexpr (std::is_same_v<T, int64_t>) *field = std::stoll(text);
        else if constexpr (std::is_same_v<T, int>) *field = std::stoi(text);
        else if constexpr (std::is_same_v<T, uint64_t>) *field = std::stoull(text);
        else if constexpr (std::is_same_v<T, double>) *field = std::stod(text);
        else if constexpr (std::is_same_v<T, bool>) *field = text == "true" || text == "1";
        else *field = split_list(text);
      },
      opt.field(o));
}

nlohmann::json option_json(const SearchOptions& o, const SearchOptionInfo& opt) {
  // The table's accessors take a mutable SearchOptions; reading through them changes nothing.
  return std::visit([](auto* field) { return nlohmann::json(*field); }, opt.field(const_cast<SearchOptions&>(o)));
}

}  // namespace rankrl
