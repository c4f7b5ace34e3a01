#include "compress/pipeline.h"

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "calib/calibrate.h"
#include "calib/stats_file.h"
#include "compress/apply.h"
#include "compress/checkpoint_dir.h"
#include "compress/heal.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "decompose/decomposer.h"
#include "eval/accounting.h"
#include "model/model.h"

namespace rankrl {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

struct PlanNeeds {
  bool stats = false, fisher = false;
};

PlanNeeds needs_of(const Plan& plan) {
  PlanNeeds n;
  for (const auto& [name, d] : plan.weights) {
    if (d.method == "dense") continue;
    auto dec = make_decomposer(d.method);
    n.fisher = n.fisher || dec->needs_fisher();
    n.stats = n.stats || dec->needs_stats() || dec->needs_fisher() || d.select == "importance";
  }
  return n;
}

Plan make_plan(const CompressOptions& o, const Transformer& net) {
  if (!o.plan_path.empty()) {
    if (!o.method.empty() || o.keep != 0.0) throw usage_error("give either --plan or --keep/--method, not both");
    Plan p = read_plan(o.plan_path);
    validate_plan(p, net, o.plan_path);
    return p;
  }
  if (o.method.empty()) throw usage_error("compress needs --plan, or --keep with --method");
  try {
    make_decomposer(o.method);
  } catch (const Error& e) {
    throw usage_error("--method: " + e.message());
  }
  return uniform_plan(net, o.keep, o.method, o.select, o.seed);
}

// Bytes as written: every tensor in `d` (the model's stored dtype before, the output's after).
json size_json(const ParameterCounts& p, DType d) {
  const int64_t b = int64_t(dtype_size(d));
  return {{"linear_parameters", p.linear}, {"linear_bytes", b * p.linear},
          {"total_parameters", p.total},   {"total_bytes", b * p.total}, {"dtype", dtype_name(d)}};
}

json sizes_report(const ParameterCounts& before, DType before_dtype, const ParameterCounts& after, DType dtype) {
  return {{"before", size_json(before, before_dtype)},
          {"after", size_json(after, dtype)},
          {"linear_fraction", double(after.linear) / double(std::max<int64_t>(before.linear, 1))},
          {"total_fraction", double(after.total) / double(std::max<int64_t>(before.total, 1))},
          {"dtype", dtype_name(dtype)}};
}

// --dtype f32|f16|bf16, or the dtype the model was stored in.
DType output_dtype(const std::string& flag, const Transformer& net) {
  if (flag.empty()) return net.stored_dtype();
  for (DType d : {DType::F32, DType::F16, DType::BF16}) {
    std::string name = dtype_name(d);
    for (char& ch : name) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    if (flag == name) return d;
  }
  throw usage_error("--dtype must be f32, f16 or bf16, not '" + flag + "'");
}

json stats_json(const CalibStats& s) {
  return {{"tokens", s.tokens}, {"ctx", s.ctx}, {"windows", s.windows}, {"fisher", s.fisher},
          {"seconds", s.seconds}, {"peak_rss_bytes", s.peak_rss_bytes}};
}

}  // namespace

CalibStats obtain_stats(const Model& model, const StatsSource& src, bool want_fisher) {
  if (!src.calib_file.empty() && !src.stats_file.empty())
    throw usage_error("give either --calib or --stats, not both");
  const std::string id = model_identity(model.config());
  if (!src.stats_file.empty()) {
    CalibStats s = load_calib_stats(src.stats_file);
    check(s.model_identity == id, src.stats_file, "statistics are for another model (identity " +
                                                      s.model_identity + ", this model is " + id + ")");
    check(!want_fisher || s.fisher, src.stats_file, "the plan needs Fisher statistics; recompute with --fisher");
    return s;
  }
  if (src.calib_tokens < 1) throw usage_error("--calib needs --calib-tokens N (N >= 1)");
  if (src.ctx < 1) throw usage_error("--calib needs --ctx C (C >= 1)");
  CalibOptions opts{src.calib_tokens, src.ctx, 8, src.fisher || want_fisher};
  CalibStats s = calibrate(*model.net, calibration_ids(*model.tokenizer, src.calib_file, src.calib_tokens), opts);
  info("calibrated on " + std::to_string(s.tokens) + " tokens (" + std::to_string(s.windows) + " windows) in " +
       std::to_string(s.seconds) + " s, peak RSS " + std::to_string(s.peak_rss_bytes >> 20) + " MiB");
  return s;
}

// Consecutive stage timer: every lap ends where the next begins, so the stages sum to the total
// up to the few microseconds of building the report itself.
class StageTimer {
 public:
  void lap(const char* stage) {
    const auto now = Clock::now();
    stages_[stage] = stages_.value(stage, 0.0) + std::chrono::duration<double>(now - last_).count();
    last_ = now;
  }
  json finish() {
    stages_["total"] = std::chrono::duration<double>(Clock::now() - start_).count();
    return stages_;
  }

 private:
  Clock::time_point start_ = Clock::now(), last_ = start_;
  json stages_ = json::object();
};

json compress_model(const CompressOptions& o) {
  if (o.out.empty()) throw usage_error("compress needs --out DIR");
  check(!(fs::exists(o.out) && !(fs::is_directory(o.out) && fs::is_empty(o.out))) || o.replace, o.out,
        "already exists and is not empty (pass --force to replace it)");  // before hours of work
  StageTimer timer;
  Model m = load_model(o.model, o.tokenizer);
  const std::string tok = o.tokenizer.empty() ? default_tokenizer_path(o.model) : o.tokenizer;
  check_tokenizer_writable(tok, m.config().vocab_size);  // blame the tokenizer before any work
  const ParameterCounts before = count_parameters(*m.net);
  const DType dtype = output_dtype(o.dtype, *m.net);

  Plan plan = make_plan(o, *m.net);
  const PlanNeeds needs = needs_of(plan);
  const bool closed_form = o.heal || o.heal_compensate;
  if ((needs.stats || closed_form || o.heal_steps > 0) && !o.stats.given())
    throw usage_error("this plan needs calibration statistics: pass --calib FILE --calib-tokens N --ctx C, or --stats");
  if ((closed_form || o.heal_steps > 0) && o.stats.calib_file.empty())
    throw usage_error("--heal/--heal-compensate/--heal-steps need --calib (the calibration tokens themselves)");
  timer.lap("load");

  json report = {{"model", o.model}, {"model_identity", plan.model_identity}};
  CalibStats stats;
  if (o.stats.given()) {
    stats = obtain_stats(m, o.stats, needs.fisher);
    report["calibration"] = stats_json(stats);
  }
  timer.lap("calibrate");

  // apply_plan decomposes from the dense weights; keep a dense twin for healing's targets.
  Transformer dense(m.config(), m.net->weights());
  const auto apply_start = Clock::now();
  ApplyReport applied = apply_plan(*m.net, plan, o.stats.given() ? &stats : nullptr);
  // Split apply into the factorizations themselves and the rest (validation, slicing, swapping).
  const double apply_total = seconds_since(apply_start);
  timer.lap("apply");
  json seconds_detail = {{"decompose", applied.decompose_seconds},
                         {"apply_other", std::max(0.0, apply_total - applied.decompose_seconds)}};

  if (closed_form || o.heal_steps > 0) {
    const auto ids = calibration_ids(*m.tokenizer, o.stats.calib_file, o.stats.calib_tokens);
    HealOptions h{closed_form, o.heal_steps, o.heal_lr, o.stats.ctx};
    h.compensate = o.heal_compensate;
    report["heal"] = heal(*m.net, dense, ids, h);
    timer.lap("heal");
  }

  report["plan"] = {{"keep", plan.keep}, {"weights", int64_t(plan.weights.size())}};
  report["weights"] = applied.to_json()["weights"];
  report["size"] = sizes_report(before, m.net->stored_dtype(), count_parameters(*m.net), dtype);
  report["out"] = o.out;
  StagingDir stage(o.out, o.replace);
  write_compressed_files(stage, *m.net, plan, tok, dtype);
  timer.lap("write");
  // seconds_by_stage: consecutive stages (load, calibrate, apply, [heal], write) and their total;
  // seconds_detail: apply split into the factorizations and everything else.
  // seconds is a number in every command's output (the total); the stages have their own key.
  report["seconds_by_stage"] = timer.finish();
  report["seconds"] = report["seconds_by_stage"]["total"];
  report["seconds_detail"] = seconds_detail;
  write_file_atomic(stage.file("report.json"), report.dump(2) + "\n");
  stage.commit();
  return report;
}

}  // namespace rankrl
