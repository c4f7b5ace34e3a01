// rankrl search: the RL search for a compression plan, with the baselines in the same run.
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "report/report.h"
#include "search/search.h"

namespace rankrl::cli {

void add_calib_options(CLI::App* sub, StatsSource& src);  // cmd_calibrate.cpp

namespace {

const char* kDescription =
    "Search a compression plan with an RL agent and compare it with baselines at the same budget.\n"
    "An episode decides every projection in order (layer by layer; q, k, v, o, gate, up, down): a method\n"
    "(--methods, 'dense' included), a rank fraction and a component selection (--selects). Each action is\n"
    "clipped so the finished plan keeps --keep of the linear-weight parameters within 1% (AMC-style).\n"
    "Reward of a plan, on the RkD items (--reward-items of them per training evaluation):\n"
    "  reward = [metric(compressed) - metric(dense)] + size_weight * (budget - cost) / dense_cost\n"
    "  metric: margin (default) = mean over items of the gold choice's log-softmax among the choices'\n"
    "          summed log-likelihoods; acc = accuracy; nll = minus the mean NLL of the calibration tokens.\n"
    "  A plan with non-finite scores gets -10. --shaping S adds -S * (relative output error of each\n"
    "  decision on the calibration data) at every step.\n"
    "Agents train on a surrogate by default (--surrogate kl): reward = -KL(dense || compressed), the mean\n"
    "  over --surrogate-tokens calibration tokens of the next-token KL divergence (nats/token), plus the same\n"
    "  size term; it scores no RkD item. The agent's --promote best plans by surrogate are then scored with\n"
    "  the RkD reward above, and only those count as its RkD evaluations. --surrogate none: RkD every episode.\n"
    "Baselines: uniform (every method), svdllm2 (SVD-LLM v2 loss-based allocation), sensitivity (ASVD-style\n"
    "table + threshold search), random and evolution (as many RkD evaluations as the agents, at least\n"
    "--baseline-evaluations); evolution-kl (opt-in ablation) runs evolution on the agents' surrogate with as\n"
    "many surrogate evaluations as an agent's episodes and promotes its best plans like an agent.\n"
    "Every approach's best plans are re-scored on all of RkD; the finalists are compared on VRkD; the test\n"
    "split is only reported, each approach's test margin and acc minus dense's and minus the best uniform\n"
    "plan's (the uniform one best on VRkD) with paired bootstrap 95% intervals over the test items (2000\n"
    "resamples from --seed, the same for every approach); a difference is better/worse only when its\n"
    "interval excludes 0. OUT: plan.json, model/, plans/, log.jsonl, results.json, checkpoint/.\n"
    "Interrupted runs continue with --resume (same flags and threads give the same plan).";

struct SearchFlags {
  SearchOptions o;
  std::string agents = "ppo", methods = "dense,svd,asvd,svdllm", selects = "top,importance",
              baselines = "uniform,svdllm2,sensitivity,random,evolution";
};

}  // namespace

Command add_search(CLI::App& app, Common& common) {
  auto f = std::make_shared<SearchFlags>();
  SearchOptions& o = f->o;
  CLI::App* sub = app.add_subcommand("search", kDescription);
  sub->add_option("--model", o.model, "llama2.c .bin or Hugging Face model directory")->required();
  sub->add_option("--tokenizer", o.tokenizer, "Tokenizer (default: found beside the model)");
  add_calib_options(sub, o.stats);
  sub->add_option("--stats", o.stats.stats_file, "Statistics from rankrl calibrate (instead of --calib)");
  sub->add_option("--keep", o.env.keep, "Fraction of the linear-weight parameters to keep, in (0, 1)")->required();
  sub->add_option("--rkd", o.rkd, "Ranking items for the reward (task file or split directory)")->required();
  sub->add_option("--vrkd", o.vrkd, "Validation items that choose the final plan")->required();
  sub->add_option("--test", o.test, "Test items, only reported")->required();
  sub->add_option("--limit", o.limit, "Use only the first N items of each split");
  sub->add_option("--agent", f->agents, "Agents, comma-separated: ppo, reinforce");
  sub->add_option("--episodes", o.episodes, "Episodes per agent");
  sub->add_option("--seed", o.seed, "Seed of every random choice");
  sub->add_option("--out", o.out, "Output directory")->required();
  sub->add_flag("--resume", o.resume, "Continue an interrupted run in --out");
  sub->add_flag("--force", o.replace, "Start over in a non-empty --out");
  sub->add_option("--methods", f->methods, "Enabled methods (decomposer specs and 'dense'), comma-separated");
  sub->add_option("--selects", f->selects, "Enabled selection rules: top, importance");
  sub->add_option("--baselines", f->baselines, "Baselines to run: uniform,svdllm2,sensitivity,random,evolution[,evolution-kl]");
  sub->add_option("--reward", o.reward.kind, "Reward metric: margin | acc | nll");
  sub->add_option("--size-weight", o.reward.size_weight, "Weight of the size term");
  sub->add_option("--shaping", o.shaping, "Per-step shaping weight (0 = terminal reward only)");
  sub->add_option("--rank-action", o.rank_action,
                  "Agent rank fraction: absolute (the env's own) | relative (to the average keep the remaining weights must meet)");
  sub->add_option("--surrogate", o.surrogate, "What agents train on: kl (surrogate, default) | none (RkD reward)");
  sub->add_option("--surrogate-tokens", o.surrogate_tokens, "Calibration tokens the KL surrogate scores");
  sub->add_option("--promote", o.promote, "Agent plans (best by surrogate) scored on RkD");
  sub->add_option("--baseline-evaluations", o.baseline_evaluations,
                  "Least RkD evaluations of random and evolution (default: as many as the agents)");
  sub->add_option("--reward-items", o.reward_items, "RkD items per training evaluation (0 = all)");
  sub->add_option("--finalists", o.finalists, "Best plans per approach compared on VRkD");
  sub->add_option("--sensitivity-grid", o.sensitivity_grid, "Rank fractions per weight in the sensitivity table");
  sub->add_option("--heldout", o.heldout_file, "Perplexity text (default: the --calib file after the calibration tokens)");
  sub->add_option("--heldout-tokens", o.heldout_tokens, "Perplexity tokens (at most)");
  sub->add_option("--factor-cache", o.factor_cache, "Directory of the on-disk factor cache (default: --out)");
  sub->add_option("--min-rank-frac", o.env.min_rank_frac, "Smallest rank fraction the budget clip assumes");
  sub->add_option("--lr", o.agent.lr, "Agent learning rate (Adam)");
  sub->add_option("--hidden", o.agent.hidden, "Agent hidden units");
  sub->add_option("--episodes-per-update", o.agent.episodes_per_update, "Episodes per policy update");
  sub->add_option("--ppo-epochs", o.agent.epochs, "PPO epochs per update");
  sub->add_option("--ppo-clip", o.agent.clip, "PPO clip range");
  sub->add_option("--gae-lambda", o.agent.lambda, "GAE lambda");
  sub->add_option("--entropy", o.agent.entropy, "Entropy bonus");
  sub->add_option("--init-std", o.agent.init_std, "Initial std of the rank-fraction logit");
  sub->add_option("--prior-method", o.prior_method,
                  "Method the initial policy prefers: auto (lowest closed-form output error), none, or a --methods name");
  sub->add_option("--abort-after", o.abort_after_checkpoints, "Testing aid: exit(3) after N checkpoints")
      ->group("");
  add_common(sub, common);
  return {sub, [f, &common] {
            SearchOptions o = f->o;
            o.agents = split_list(f->agents);
            o.env.methods = split_list(f->methods);
            o.env.selects = split_list(f->selects);
            o.baselines = split_list(f->baselines);
            o.command_line = command_line();
            nlohmann::json results = run_search(o);
            info("wrote " + o.out + "/results.json, plan.json and model/ (chosen: " +
                 results["chosen"].get<std::string>() + ")");
            const std::string summary = report::choice_summary(results);
            if (common.json) {
              if (!summary.empty()) info(summary);
              print_json(results);
            } else {
              std::printf("%-22s %6s %9s %9s %9s %7s %9s %9s %8s\n", "approach", "evals", "rkd", "vrkd",
                          "test", "acc", "ppl", "keep", "seconds");
              auto row = [](const std::string& name, const nlohmann::json& r, const std::string& evals,
                            const std::string& keep, double secs) {
                std::printf("%-22s %6s %9.4f %9.4f %9.4f %7.3f %9.3f %9s %8.1f\n", name.c_str(), evals.c_str(),
                            r["rkd"]["margin"].get<double>(), r["vrkd"]["margin"].get<double>(),
                            r["test"]["margin"].get<double>(), r["test"]["acc"].get<double>(),
                            r.value("heldout_ppl", 0.0), keep.c_str(), secs);
              };
              row("dense", results["dense"], "-", "1", 0.0);
              for (const auto& a : results["approaches"])
                row(a["name"], a, std::to_string(a["evaluations"].get<int64_t>()),
                    std::to_string(a["keep_actual"].get<double>()).substr(0, 6), a["seconds"].get<double>());
              if (summary.empty()) std::printf("chosen: %s\n", results["chosen"].get<std::string>().c_str());
              else std::printf("%s\n", summary.c_str());
            }
            return 0;
          }};
}

}  // namespace rankrl::cli
