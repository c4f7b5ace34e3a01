#include "compress/pipeline.h"

#include <chrono>
#include <nlohmann/json.hpp>

#include "calib/calibrate.h"
#include "calib/stats_file.h"
#include "compress/apply.h"
#include "compress/checkpoint_dir.h"
#include "compress/heal.h"
#include "core/error.h"
#include "core/log.h"
#include "decompose/decomposer.h"
#include "eval/accounting.h"
#include "model/model.h"

namespace rankrl {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

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
  return uniform_plan(net, o.keep, o.method, o.select, o.seed);
}

json size_json(const ParameterCounts& p) {
  return {{"linear_parameters", p.linear}, {"linear_bytes", 4 * p.linear},
          {"total_parameters", p.total},   {"total_bytes", 4 * p.total}};
}

json sizes_report(const ParameterCounts& before, const ParameterCounts& after) {
  return {{"before", size_json(before)},
          {"after", size_json(after)},
          {"linear_fraction", double(after.linear) / double(std::max<int64_t>(before.linear, 1))},
          {"total_fraction", double(after.total) / double(std::max<int64_t>(before.total, 1))},
          {"dtype", "F32"}};
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

json compress_model(const CompressOptions& o) {
  if (o.out.empty()) throw usage_error("compress needs --out DIR");
  json stages = json::object();
  auto t = Clock::now();
  Model m = load_model(o.model, o.tokenizer);
  stages["load"] = seconds_since(t);
  const ParameterCounts before = count_parameters(*m.net);

  Plan plan = make_plan(o, *m.net);
  const PlanNeeds needs = needs_of(plan);
  if ((needs.stats || o.heal || o.heal_steps > 0) && !o.stats.given())
    throw usage_error("this plan needs calibration statistics: pass --calib FILE --calib-tokens N --ctx C, or --stats");
  if ((o.heal || o.heal_steps > 0) && o.stats.calib_file.empty())
    throw usage_error("--heal/--heal-steps need --calib (the calibration tokens themselves)");

  json report = {{"model", o.model}, {"model_identity", plan.model_identity}};
  CalibStats stats;
  t = Clock::now();
  if (o.stats.given()) {
    stats = obtain_stats(m, o.stats, needs.fisher);
    report["calibration"] = stats_json(stats);
  }
  stages["calibrate"] = seconds_since(t);

  // apply_plan decomposes from the dense weights; keep a dense twin for healing's targets.
  Transformer dense(m.config(), m.net->weights());
  t = Clock::now();
  ApplyReport applied = apply_plan(*m.net, plan, o.stats.given() ? &stats : nullptr);
  stages["apply"] = seconds_since(t);
  stages["decompose"] = applied.decompose_seconds;

  if (o.heal || o.heal_steps > 0) {
    t = Clock::now();
    const auto ids = calibration_ids(*m.tokenizer, o.stats.calib_file, o.stats.calib_tokens);
    HealOptions h{o.heal, o.heal_steps, o.heal_lr, o.stats.ctx};
    report["heal"] = heal(*m.net, dense, ids, h);
    stages["heal"] = seconds_since(t);
  }

  report["plan"] = {{"keep", plan.keep}, {"weights", int64_t(plan.weights.size())}};
  report["weights"] = applied.to_json()["weights"];
  report["size"] = sizes_report(before, count_parameters(*m.net));
  t = Clock::now();
  const std::string tok = o.tokenizer.empty() ? default_tokenizer_path(o.model) : o.tokenizer;
  report["seconds"] = stages;  // written before the write stage finishes; completed below
  write_compressed_dir(o.out, *m.net, plan, report, tok, o.replace);
  stages["write"] = seconds_since(t);
  report["seconds"] = stages;
  report["out"] = o.out;
  return report;
}

}  // namespace rankrl
