// rankrl calibrate: per-linear input statistics of a model on a text, written as safetensors.
#include <memory>
#include <nlohmann/json.hpp>

#include "calib/calibrate.h"
#include "calib/stats_file.h"
#include "cli/commands.h"
#include "compress/pipeline.h"
#include "core/error.h"
#include "core/log.h"
#include "model/model.h"

namespace rankrl::cli {

namespace {
struct CalibrateOptions {
  std::string model, tokenizer, out;
  StatsSource src;
};
}  // namespace

// The calibration flags shared by calibrate and compress.
void add_calib_options(CLI::App* sub, StatsSource& src) {
  CLI::Option* calib = sub->add_option("--calib", src.calib_file,
                  "Calibration text: tokenized as one string (BOS first when the tokenizer adds one); "
                  "its first --calib-tokens tokens are cut into windows of --ctx (a last partial window "
                  "is kept)");
  CLI::Option* tokens = sub->add_option("--calib-tokens", src.calib_tokens, "Calibration tokens N (error if the file has fewer)");
  CLI::Option* ctx = sub->add_option("--ctx", src.ctx, "Calibration window length C (at least 2)");
  calib->needs(tokens)->needs(ctx);
  sub->add_flag("--fisher", src.fisher, "Also sum squared LM-loss gradients per weight (diagonal Fisher)");
}

Command add_calibrate(CLI::App& app, Common& common) {
  auto o = std::make_shared<CalibrateOptions>();
  CLI::App* sub = app.add_subcommand(
      "calibrate",
      "Input statistics of every linear layer on a calibration text (Gram XᵀX in float64, mean |x|,\n"
      "optionally the diagonal Fisher), written as a safetensors file for compress --stats. Runs one\n"
      "decoder layer at a time and writes each layer's statistics as soon as they are complete\n"
      "(--fisher needs the whole model's backward and does not stream).");
  sub->add_option("--model", o->model, "llama2.c .bin or Hugging Face model directory")->required();
  sub->add_option("--tokenizer", o->tokenizer, "Tokenizer (default: found beside the model)");
  add_calib_options(sub, o->src);
  sub->get_option("--calib")->required();
  sub->add_option("--out", o->out, "Output statistics file (.safetensors)")->required();
  add_common(sub, common);
  return {sub, [o, &common] {
            Model m = load_model(o->model, o->tokenizer);
            CalibStats s = calibrate_to_file(m, o->src, o->out);
            info("wrote " + o->out);
            print_result({{"model", o->model}, {"out", o->out}, {"model_identity", s.model_identity},
                          {"tokens", s.tokens}, {"ctx", s.ctx}, {"windows", s.windows},
                          {"fisher", s.fisher}, {"linears", int64_t(s.shared_input.size())},
                          {"seconds", s.seconds}, {"peak_rss_bytes", s.peak_rss_bytes}},
                         common);
            return 0;
          }};
}

}  // namespace rankrl::cli
