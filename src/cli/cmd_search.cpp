// rankrl search: the RL search for a compression plan, with the baselines in the same run.
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <type_traits>
#include <variant>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "report/report.h"
#include "search/options.h"
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
    "kfac (opt-in) buys ranks greedily by the K-FAC estimate of each truncation's loss increase (output\n"
    "error weighted by the loss gradient at the output; one backward pass per calibration window).\n"
    "Every approach's best plans are re-scored on all of RkD; the finalists are compared on VRkD; the test\n"
    "split is only reported, each approach's test margin and acc minus dense's and minus the best uniform\n"
    "plan's (the uniform one best on VRkD) with paired bootstrap 95% intervals over the test items (2000\n"
    "resamples from --seed, the same for every approach); a difference is better/worse only when its\n"
    "interval excludes 0. OUT: plan.json, model/, plans/, log.jsonl, results.json, checkpoint/.\n"
    "Interrupted runs continue with --resume (same flags and threads give the same plan).";

// The options as CLI11 binds them: lists (--methods a,b) as their comma-separated text, turned
// into SearchOptions' vectors after parsing (the defaults are SearchOptions' own).
struct SearchFlags {
  SearchOptions o;
  std::map<std::string, std::string> lists;  // flag → text of a list option
};

// One CLI11 option per row of search_option_table(), in its order.
void add_table_options(CLI::App* sub, SearchFlags& f) {
  for (const SearchOptionInfo& opt : search_option_table()) {
    if (opt.has(kCalibFlag)) {  // --calib, --calib-tokens, --ctx: the flags every command shares
      if (!sub->get_option_no_throw("--calib")) add_calib_options(sub, f.o.stats);
      continue;
    }
    CLI::Option* cli = std::visit(
        [&](auto* field) -> CLI::Option* {
          using T = std::remove_pointer_t<decltype(field)>;
          if constexpr (std::is_same_v<T, bool>) {
            return sub->add_flag(opt.flag, *field, opt.help);
          } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
            std::string& text = f.lists[opt.flag];
            for (const std::string& item : *field) text += (text.empty() ? "" : ",") + item;
            return sub->add_option(opt.flag, text, opt.help);
          } else {
            return sub->add_option(opt.flag, *field, opt.help);
          }
        },
        opt.field(f.o));
    if (opt.has(kRequired)) cli->required();
    if (opt.has(kHidden)) cli->group("");
  }
}

}  // namespace

Command add_search(CLI::App& app, Common& common) {
  auto f = std::make_shared<SearchFlags>();
  CLI::App* sub = app.add_subcommand("search", kDescription);
  add_table_options(sub, *f);
  add_common(sub, common);
  return {sub, [f, &common] {
            SearchOptions o = f->o;
            for (const auto& [flag, text] : f->lists) set_option_text(o, *find_search_option(flag), text);
            o.command_line = command_line();
            const SearchResults results = run_search(o);
            report::write_report(o.out);  // report.html and report.md beside results.json
            info("wrote " + o.out + "/results.json, plan.json and model/ (chosen: " + results.chosen + ")");
            const nlohmann::json results_json = results_to_json(results);
            const std::string summary = report::choice_summary(results_json);
            if (common.json) {
              if (!summary.empty()) info(summary);
              print_json(results_json);
            } else {
              std::printf("%-22s %6s %9s %9s %9s %7s %9s %9s %8s\n", "approach", "evals", "rkd", "vrkd",
                          "test", "acc", "ppl", "keep", "seconds");
              auto row = [](const std::string& name, const ResultRow& r, double ppl, const std::string& evals,
                            const std::string& keep, double secs) {
                std::printf("%-22s %6s %9.4f %9.4f %9.4f %7.3f %9.3f %9s %8.1f\n", name.c_str(), evals.c_str(),
                            r.rkd.margin, r.vrkd.margin, r.test.margin, r.test.acc, ppl, keep.c_str(), secs);
              };
              row("dense", results.dense, results.dense.heldout_ppl.value_or(0.0), "-", "1", 0.0);
              for (const ApproachResult& a : results.approaches)
                row(a.name, a, a.heldout_ppl, std::to_string(a.evaluations), std::to_string(a.keep_actual).substr(0, 6),
                    a.seconds);
              // --final-heal compensate: the same plans after the compensating heal (what the choice compared).
              if (results.final_heal != "none") {
                std::printf("after --heal-compensate:\n%-22s %9s %9s %9s %7s %9s %8s\n", "approach", "rkd", "vrkd", "test",
                            "acc", "ppl", "seconds");
                for (const ApproachResult& a : results.approaches)
                  if (a.healed)
                    std::printf("%-22s %9.4f %9.4f %9.4f %7.3f %9.3f %8.1f\n", a.name.c_str(), a.healed->rkd.margin,
                                a.healed->vrkd.margin, a.healed->test.margin, a.healed->test.acc, a.healed->heldout_ppl,
                                a.healed->seconds);
              }
              if (summary.empty()) std::printf("chosen: %s\n", results.chosen.c_str());
              else std::printf("%s\n", summary.c_str());
            }
            return 0;
          }};
}

}  // namespace rankrl::cli
