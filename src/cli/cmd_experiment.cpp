// rankrl experiment: run a sweep of searches from experiments/*.json and aggregate it.
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/fs.h"
#include "core/log.h"
#include "experiment/experiment.h"

namespace rankrl::cli {

namespace {
struct ExperimentFlags {
  std::string file, out_root = "experiments-out";
  bool summarize_only = false;
};
}  // namespace

Command add_experiment(CLI::App& app, Common& common) {
  auto f = std::make_shared<ExperimentFlags>();
  CLI::App* sub = app.add_subcommand(
      "experiment",
      "Run a sweep described by FILE.json {name, model, tokenizer?, calib, heldout?, calib_tokens, ctx, data (a split\n"
      "directory), keeps, agents (names, or a list of name lists), seeds, episodes, extra_args (search flags)}:\n"
      "one `rankrl search` per keep × agent set × seed into OUT_ROOT/<name>/<keep>-<seed>/ (in-process;\n"
      "finished cells are skipped, checkpointed ones resumed), then OUT_ROOT/<name>/summary.csv (one row per\n"
      "cell × approach) and summary.md (mean ± sample std over seeds of test margin drop, test acc, held-out\n"
      "perplexity, evaluations, seconds).");
  sub->add_option("FILE", f->file, "Experiment description (JSON)")->required();
  sub->add_option("--out-root", f->out_root, "Directory of experiment outputs (default: experiments-out)");
  sub->add_flag("--summarize", f->summarize_only, "Only aggregate finished cells (every cell must be finished)");
  add_common(sub, common);
  return {sub, [f, &common] {
            ExperimentSpec spec = read_experiment(f->file);
            nlohmann::json r = f->summarize_only ? summarize_experiment(spec, f->out_root)
                                                 : run_experiment(spec, f->out_root);
            info("wrote " + r["csv"].get<std::string>() + " and " + r["md"].get<std::string>());
            if (common.json) print_json(r);
            else std::printf("%s", read_file(r["md"].get<std::string>()).c_str());
            return 0;
          }};
}

}  // namespace rankrl::cli
