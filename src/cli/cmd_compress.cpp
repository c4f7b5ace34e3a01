// rankrl compress: apply a plan (uniform --keep/--method or --plan) and write a compressed model
// directory; rankrl export-dense: multiply the factors of such a directory back.
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "compress/checkpoint_dir.h"
#include "compress/pipeline.h"
#include "core/error.h"
#include "core/log.h"

namespace rankrl::cli {

void add_calib_options(CLI::App* sub, StatsSource& src);  // cmd_calibrate.cpp

namespace {
struct ExportOptions {
  std::string model, tokenizer, out;
  bool force = false;
};
}  // namespace

Command add_compress(CLI::App& app, Common& common) {
  auto o = std::make_shared<CompressOptions>();
  CLI::App* sub = app.add_subcommand(
      "compress",
      "Replace linear weights by low-rank factors and write an HF-style directory (model.safetensors\n"
      "with <name>.lowrank_A/B, config.json with a 'rankrl' section, tokenizer, plan.json,\n"
      "report.json). Uniform plan: every projection at rank floor(keep*m*n/(m+n)). Written atomically:\n"
      "on error nothing is left at --out. Runs one decoder layer at a time (calibrate, decompose,\n"
      "heal in closed form); Fisher statistics (fwsvd, --fisher) and --heal-steps need the whole\n"
      "model's backward and do not stream.");
  sub->add_option("--model", o->model, "llama2.c .bin or Hugging Face model directory")->required();
  sub->add_option("--tokenizer", o->tokenizer, "Tokenizer (default: found beside the model)");
  add_calib_options(sub, o->stats);
  sub->add_option("--stats", o->stats.stats_file, "Statistics from rankrl calibrate (instead of --calib)");
  sub->add_option("--keep", o->keep, "Fraction of the linear-weight parameters to keep, in (0, 1]");
  sub->add_option("--method", o->method, "Decomposer spec: svd, rsvd, asvd[:alpha=..], svdllm, fwsvd, cur, nmf");
  sub->add_option("--select", o->select, "Component selection for a uniform plan: top | importance");
  sub->add_option("--plan", o->plan_path, "Plan JSON (instead of --keep/--method)");
  sub->add_option("--seed", o->seed, "Seed recorded in the plan (randomised methods take theirs from the spec)");
  sub->add_option("--out", o->out, "Output directory")->required();
  sub->add_flag("--force", o->replace, "Replace an existing non-empty --out");
  sub->add_option("--dtype", o->dtype, "Dtype of the written weights and factors: f32 | f16 | bf16 (default: the model's own)");
  sub->add_flag("--heal", o->heal, "Refit every A by least squares on the compressed model's own inputs");
  sub->add_flag("--heal-compensate", o->heal_compensate,
                "Refit A and B together to the dense model's outputs (reduced-rank regression on the compressed inputs; also corrects upstream errors)");
  sub->add_option("--heal-steps", o->heal_steps, "Then N Adam steps on the factors (LM loss on --calib)");
  sub->add_option("--heal-lr", o->heal_lr, "Learning rate of --heal-steps");
  add_common(sub, common);
  return {sub, [o, &common] {
            if (o->heal_steps < 0) throw usage_error("--heal-steps must be >= 0");
            if ((o->heal || o->heal_compensate || o->heal_steps > 0) && o->stats.calib_file.empty())
              throw usage_error("--heal/--heal-compensate/--heal-steps need --calib (the calibration tokens themselves)");
            nlohmann::json report = compress_model(*o);
            info("wrote " + o->out);
            // --json: the whole report; text: the sizes and timings.
            print_result(common.json ? report
                                     : nlohmann::json{{"out", o->out}, {"size", report["size"]},
                                                      {"seconds", report["seconds"]}},
                         common);
            return 0;
          }};
}

Command add_export_dense(CLI::App& app, Common& common) {
  auto o = std::make_shared<ExportOptions>();
  CLI::App* sub = app.add_subcommand(
      "export-dense", "Multiply the low-rank factors of a compressed directory back into a standard checkpoint");
  sub->add_option("--model", o->model, "Compressed model directory")->required();
  sub->add_option("--tokenizer", o->tokenizer, "Tokenizer (default: found beside the model)");
  sub->add_option("--out", o->out, "Output directory")->required();
  sub->add_flag("--force", o->force, "Replace an existing non-empty --out");
  add_common(sub, common);
  return {sub, [o, &common] {
            int64_t n = export_dense(o->model, o->tokenizer, o->out, o->force);
            info("wrote " + o->out + " (" + std::to_string(n) + " weights multiplied back)");
            print_result({{"model", o->model}, {"out", o->out}, {"densified", n}}, common);
            return 0;
          }};
}

}  // namespace rankrl::cli
