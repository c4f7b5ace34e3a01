#include "compress/pipeline.h"

#include <chrono>
#include <filesystem>
#include <optional>
#include <nlohmann/json.hpp>

#include "calib/calibrate.h"
#include "calib/stats_file.h"
#include "compress/apply.h"
#include "compress/checkpoint_dir.h"
#include "compress/heal.h"
#include "compress/layer_stream.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "decompose/decomposer.h"
#include "eval/accounting.h"
#include "io/checkpoint.h"
#include "io/mapped.h"
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

CalibStatsReader open_stats_file(const Model& model, const std::string& path, bool want_fisher) {
  CalibStatsReader r(path);
  const std::string id = model_identity(model.config());
  const std::string& theirs = r.meta().model_identity;
  check(theirs == id, path, "statistics are for another model (identity " + theirs + ", this model is " + id + ")");
  check(!want_fisher || r.meta().fisher, path, "the plan needs Fisher statistics; recompute with --fisher");
  return r;
}

void check_calib_source(const StatsSource& src) {
  if (src.calib_tokens < 1) throw usage_error("calibration needs a token count of at least 1");
  if (src.ctx < 1) throw usage_error("calibration needs a window length of at least 1");
}

CalibStats obtain_stats(const Model& model, const StatsSource& src, bool want_fisher, bool want_output_grads) {
  if (!src.calib_file.empty() && !src.stats_file.empty())
    throw usage_error("give either --calib or --stats, not both");
  if (!src.stats_file.empty()) {
    if (want_output_grads)
      throw usage_error(src.stats_file + ": a statistics file holds no output-gradient statistics (the kfac "
                        "allocation needs them): give --calib instead");
    const CalibStatsReader r = open_stats_file(model, src.stats_file, want_fisher);
    std::vector<std::string> names;
    for (const auto& [name, owner] : r.meta().shared_input) names.push_back(name);
    return r.read(names);
  }
  check_calib_source(src);
  CalibOptions opts{src.calib_tokens, src.ctx, 8, src.fisher || want_fisher, want_output_grads};
  CalibStats s = calibrate(*model.net, calibration_ids(*model.tokenizer, src.calib_file, src.calib_tokens), opts);
  info("calibrated on " + std::to_string(s.tokens) + " tokens (" + std::to_string(s.windows) + " windows) in " +
       std::to_string(s.seconds) + " s, peak RSS " + std::to_string(s.peak_rss_bytes >> 20) + " MiB");
  return s;
}

CalibStats calibrate_to_file(const Model& model, const StatsSource& src, const std::string& out) {
  if (!src.stats_file.empty()) throw usage_error("calibration reads a calibration text, not a statistics file");
  if (src.fisher) {  // Fisher needs the whole model's backward: computed whole, then written
    CalibStats s = obtain_stats(model, src, true);
    save_calib_stats(out, s, src.calib_file);
    s.stats.clear();
    return s;
  }
  check_calib_source(src);
  const auto start = Clock::now();
  const auto ids = calibration_ids(*model.tokenizer, src.calib_file, src.calib_tokens);
  CalibStats meta;
  meta.tokens = int64_t(ids.size());
  meta.ctx = src.ctx;
  meta.windows = (meta.tokens + src.ctx - 1) / src.ctx;  // the last partial window counts
  meta.model_identity = model_identity(model.config());
  std::vector<std::vector<std::string>> layers;
  for (int64_t i = 0; i < model.config().n_layers; ++i) {
    layers.emplace_back();
    for (const Linear* l : model.net->layer_linears(i)) layers.back().push_back(l->name());
  }
  CalibStatsWriter writer(out, meta, src.calib_file, layers);
  calibrate_layers(*model.net, ids, {src.calib_tokens, src.ctx, 8, false}, [&](int64_t i, CalibStats&& layer) {
    writer.add(layer);
    // The layer is done: its weights' pages leave the resident set (io/checkpoint.h), so a 7B
    // model's map is not resident as a whole by the last layer.
    for (const Linear* l : model.net->layer_linears(i)) release_mapped_pages(l->weight());
    meta.shared_input.merge(layer.shared_input);  // for the count of linears; moves the names out
  });
  writer.commit();
  meta.seconds = seconds_since(start);
  meta.peak_rss_bytes = peak_rss_bytes();
  info("calibrated layer by layer on " + std::to_string(meta.tokens) + " tokens (" + std::to_string(meta.windows) +
       " windows) in " + std::to_string(meta.seconds) + " s, peak RSS " + std::to_string(meta.peak_rss_bytes >> 20) + " MiB");
  return meta;
}

// Consecutive stage timer: every lap ends where the next begins, so the stages sum to the total
// up to the few microseconds of building the report itself.
class StageTimer {
 public:
  // Charges the time since the last lap to `stage` (null: to no stage, e.g. after add()).
  void lap(const char* stage) {
    const auto now = Clock::now();
    if (stage) add(stage, std::chrono::duration<double>(now - last_).count());
    last_ = now;
  }
  void add(const char* stage, double seconds) { stages_[stage] = stages_.value(stage, 0.0) + seconds; }
  json finish() {
    stages_["total"] = std::chrono::duration<double>(Clock::now() - start_).count();
    return stages_;
  }

 private:
  Clock::time_point start_ = Clock::now(), last_ = start_;
  json stages_ = json::object();
};

// The whole-model path (Fisher statistics: a Fisher-based method or --fisher): calibrate the
// whole model, apply the plan, heal in closed form with whole-model forwards.
ApplyReport compress_whole_model(Model& m, const Plan& plan, const CompressOptions& o, const PlanNeeds& needs,
                                 StageTimer& timer, json& report) {
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
  applied.seconds = seconds_since(apply_start);
  timer.lap("apply");
  if (o.heal || o.heal_compensate) {
    const auto ids = calibration_ids(*m.tokenizer, o.stats.calib_file, o.stats.calib_tokens);
    HealOptions h{true, 0, o.heal_lr, o.stats.ctx};
    h.compensate = o.heal_compensate;
    report["heal"] = heal(*m.net, dense, ids, h);
    timer.lap("heal");
  }
  return applied;
}

// The layer-streamed path (layer_stream.h): statistics, decomposition and closed-form healing one
// decoder layer at a time. Precomputed statistics (--stats) are read layer by layer too.
ApplyReport compress_streamed(Model& m, const Plan& plan, const CompressOptions& o, const std::string& spill_dir,
                              StageTimer& timer, json& report) {
  if (!o.stats.calib_file.empty() && !o.stats.stats_file.empty())
    throw usage_error("give either --calib or --stats, not both");
  std::optional<CalibStatsReader> file_stats;
  if (!o.stats.stats_file.empty()) file_stats.emplace(open_stats_file(m, o.stats.stats_file, false));
  std::vector<int32_t> ids;
  if (!o.stats.calib_file.empty()) {
    check_calib_source(o.stats);
    ids = calibration_ids(*m.tokenizer, o.stats.calib_file, o.stats.calib_tokens);
  }
  LayerStreamOptions lo;
  lo.ids = ids.empty() ? nullptr : &ids;
  lo.ctx = o.stats.ctx;
  lo.stats = file_stats ? &*file_stats : nullptr;
  lo.heal = o.heal;
  lo.compensate = o.heal_compensate;
  // Gradient steps (after the stream) need float32 factors; otherwise keep them as they will be written.
  if (o.heal_steps == 0) lo.factor_dtype = output_dtype(o.dtype, *m.net);
  // Finished layers' factors go to disk at once (the gradient steps after the stream change the
  // factors, so those keep them in memory).
  if (o.heal_steps == 0) lo.spill_dir = spill_dir;
  timer.lap("calibrate");
  LayerStreamResult r = compress_layers(*m.net, plan, lo);
  if (lo.stats) {
    report["calibration"] = stats_json(file_stats->meta());
  } else if (lo.ids) {
    report["calibration"] = stats_json(r.calibration);
    info("calibrated layer by layer on " + std::to_string(r.calibration.tokens) + " tokens (" +
         std::to_string(r.calibration.windows) + " windows): " + std::to_string(r.calibration.seconds) +
         " s in the calibration passes, peak RSS " + std::to_string(r.calibration.peak_rss_bytes >> 20) + " MiB");
  }
  if (o.heal || o.heal_compensate) report["heal"] = {{"layers", r.heal_layers}};
  // The stages interleave layer by layer; each gets the sum of its parts.
  timer.add("calibrate", r.calibration.seconds);
  timer.add("apply", r.applied.seconds);
  if (o.heal || o.heal_compensate) timer.add("heal", r.heal_seconds);
  timer.lap(nullptr);
  return r.applied;
}

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
  // The CLI names the flags (cmd_compress.cpp); these are the same checks for library callers.
  if ((needs.stats || closed_form || o.heal_steps > 0) && !o.stats.given())
    throw usage_error("this plan needs calibration statistics: a calibration text or a statistics file");
  if ((closed_form || o.heal_steps > 0) && o.stats.calib_file.empty())
    throw usage_error("healing needs the calibration text itself (statistics alone are not enough)");
  // Checked, loaded and planned: now claim OUT (held until the directory is in place), before the
  // long stages, so a second writer is refused at once.
  const DestinationLock lock(o.out);
  timer.lap("load");

  // The output directory is staged from the start: the layer-streamed path writes each finished
  // layer's factors into it (under .layer-factors/, removed before the commit).
  StagingDir stage(o.out, o.replace);
  const std::string spill_dir = stage.file(".layer-factors");
  if (dist::is_root()) fs::create_directories(spill_dir);

  json report = {{"model", o.model}, {"model_identity", plan.model_identity}};
  // Fisher statistics and gradient steps need the whole model's backward; everything else runs
  // one decoder layer at a time.
  const ApplyReport applied = needs.fisher || o.stats.fisher ? compress_whole_model(m, plan, o, needs, timer, report)
                                           : compress_streamed(m, plan, o, spill_dir, timer, report);
  if (o.heal_steps > 0) {
    const auto ids = calibration_ids(*m.tokenizer, o.stats.calib_file, o.stats.calib_tokens);
    Transformer unused(m.config(), m.net->weights());  // gradient steps read no dense twin
    HealOptions h{false, o.heal_steps, o.heal_lr, o.stats.ctx};
    report["heal"]["step_losses"] = heal(*m.net, unused, ids, h)["step_losses"];
    timer.lap("heal");
  }
  json seconds_detail = {{"decompose", applied.decompose_seconds},
                         {"apply_other", std::max(0.0, applied.seconds - applied.decompose_seconds)}};

  report["plan"] = {{"keep", plan.keep}, {"weights", int64_t(plan.weights.size())}};
  report["weights"] = applied.to_json()["weights"];
  report["size"] = sizes_report(before, m.net->stored_dtype(), count_parameters(*m.net), dtype);
  report["out"] = o.out;
  write_compressed_files(stage, *m.net, plan, tok, dtype);
  std::error_code ec;
  fs::remove_all(spill_dir, ec);  // the factors are in model.safetensors now (the views keep the maps)
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
