// rankrl plan: a compression plan from a saved policy (search --save-policy), with no evaluation
// on the target model; `rankrl compress --plan` applies it.
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "plan/plan.h"
#include "search/policy_plan.h"
#include "search/search.h"

namespace rankrl::cli {

void add_calib_options(CLI::App* sub, StatsSource& src);  // cmd_calibrate.cpp

namespace {
struct PlanFlags {
  PolicyPlanOptions o;
  std::string methods, out = "plan.json";
};
}  // namespace

Command add_plan(CLI::App& app, Common& common) {
  auto f = std::make_shared<PlanFlags>();
  CLI::App* sub = app.add_subcommand(
      "plan",
      "Decode a compression plan with a saved policy (search --save-policy) on any model, with zero\n"
      "plan evaluations on it (no ranking item, no KL or perplexity forward). It computes the model's\n"
      "calibration statistics, the factorizations of the policy's methods and from them the state\n"
      "features (closed-form output errors), with --calib one decoder layer at a time as search does\n"
      "(--factor-cache: a search's store of the same inputs serves), then takes the greedy action at\n"
      "every weight through the budget clip; --samples N also draws N plans and keeps the one with the\n"
      "lowest mean closed-form output error. Refused: a keep outside the policy's training range\n"
      "(± 0.05), a method or a weight role the policy does not know, another feature version. Apply it\n"
      "with rankrl compress --plan.");
  sub->add_option("--policy", f->o.policy, "Policy file from rankrl search --save-policy")->required();
  sub->add_option("--model", f->o.model, "llama2.c .bin or Hugging Face model directory")->required();
  sub->add_option("--tokenizer", f->o.tokenizer, "Tokenizer (default: found beside the model)");
  add_calib_options(sub, f->o.stats);
  sub->add_option("--stats", f->o.stats.stats_file, "Statistics from rankrl calibrate (instead of --calib)");
  sub->add_option("--keep", f->o.keep, "Fraction of the linear-weight parameters to keep, in (0, 1)")->required();
  sub->add_option("--methods", f->methods, "Methods the plan may use, comma-separated: a subset of the policy's (default: all)");
  sub->add_option("--samples", f->o.samples, "Sampled plans besides the greedy one (best by closed-form output error)");
  sub->add_option("--seed", f->o.seed, "Seed of the samples (recorded in the plan)");
  sub->add_option("--factor-cache", f->o.factor_cache, "Directory of a factor store to reuse (as search's)");
  sub->add_option("--out", f->out, "Plan file to write (atomic)");
  sub->add_flag("--whole-model-setup", f->o.whole_model_setup,
                "Testing aid: whole-model calibration statistics instead of streaming by layer (the same plan)")
      ->group("");
  add_common(sub, common);
  return {sub, [f, &common] {
            PolicyPlanOptions o = f->o;
            o.methods = split_list(f->methods);
            if (f->out.empty()) throw usage_error("--out must not be empty");
            const std::filesystem::path parent = std::filesystem::absolute(f->out).parent_path();
            if (!std::filesystem::is_directory(parent)) throw usage_error("--out: no directory " + parent.string());
            const PolicyPlan result = plan_from_policy(o);
            write_plan(f->out, result.plan);
            info("wrote " + f->out);
            nlohmann::json summary = result.summary;
            summary["out"] = f->out;
            print_result(summary, common);
            return 0;
          }};
}

}  // namespace rankrl::cli
