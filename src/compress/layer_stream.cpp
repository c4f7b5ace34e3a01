#include "compress/layer_stream.h"

#include <chrono>

#include "calib/stats_file.h"
#include "compress/factor_cache.h"
#include "compress/heal.h"
#include "core/error.h"
#include "core/log.h"
#include "io/checkpoint.h"
#include "model/transformer.h"

namespace rankrl {

namespace {

using Clock = std::chrono::steady_clock;

// The precomputed statistics of one layer's linears.
CalibStats layer_stats(const CalibStatsReader& file, Transformer& net, int64_t layer) {
  std::vector<std::string> names;
  for (const Linear* l : net.layer_linears(layer)) names.push_back(l->name());
  return file.read(names);
}

// Seconds since `t`, and resets `t` to now.
double lap(Clock::time_point& t) {
  const auto now = Clock::now();
  const double s = std::chrono::duration<double>(now - t).count();
  t = now;
  return s;
}

// Rounds every factored linear's A and B to `type` (Linear::forward upcasts them per call).
void store_factors_as(const std::vector<Linear*>& linears, at::ScalarType type) {
  for (Linear* l : linears)
    if (l->is_low_rank()) l->set_low_rank(l->A().to(type), l->B().to(type));
}

}  // namespace

LayerStreamResult compress_layers(Transformer& net, const Plan& plan, const LayerStreamOptions& o) {
  validate_plan(plan, net, "plan");
  const bool closed_form = o.heal || o.compensate;
  check(!closed_form || o.ids, "", "closed-form healing needs the calibration tokens");
  // The dense twin shares the weight tensors: it is the source of W for the decompositions and
  // runs the dense stream after `net`'s layer has been replaced by factors.
  Transformer dense(net.config(), net.weights());
  LayerStreamResult r;
  r.calibration.model_identity = model_identity(net.config());
  const bool calibrating = o.ids && !o.stats;          // statistics come from the dense stream
  const bool streaming = o.ids && (calibrating || closed_form);
  HiddenStates xd, xc;  // the dense and the compressed stream entering the current layer
  auto t = Clock::now();
  if (streaming) {
    check_calib_ctx(net, o.ctx);
    xd = embed_windows(dense, *o.ids, o.ctx, std::max<int64_t>(o.batch, 1));
    if (closed_form) xc = xd;  // identical until the first factored layer
    r.calibration.tokens = int64_t(o.ids->size());
    r.calibration.ctx = o.ctx;
    r.calibration.windows = xd.windows();
  }
  double calib_seconds = lap(t), decompose_seconds = 0.0, apply_seconds = 0.0;
  const int64_t layers = net.config().n_layers;
  Progress progress("compress", layers, "layers");
  for (int64_t i = 0; i < layers; ++i) {
    // 1. This layer's input statistics (and the dense stream's next hidden states).
    CalibStats stats = o.stats ? layer_stats(*o.stats, net, i) : CalibStats();
    HiddenStates xd_next;
    if (streaming) xd_next = run_layer(dense, i, xd, calibrating ? &stats : nullptr);
    calib_seconds += lap(t);
    // 2. Decompose per the plan.
    FactorCache cache(dense, o.stats || calibrating ? &stats : nullptr);
    for (AppliedWeight& a : apply_to(net.layer_linears(i), plan, cache, o.stats || calibrating ? &stats : nullptr))
      r.applied.weights.push_back(std::move(a));
    decompose_seconds += cache.seconds();
    apply_seconds += lap(t);
    // 3. Heal from the streams entering this layer, then advance the compressed stream through it.
    if (closed_form) {
      heal_layer(net, dense, i, xc, o.compensate ? &xd : nullptr, stats.shared_input, r.heal_layers,
                 calibrating ? &stats : nullptr);
      xc = run_layer(net, i, xc);
      r.heal_seconds += lap(t);
    }
    xd = std::move(xd_next);
    // 4. The layer is final: its factors go to the dtype they will be written in.
    if (o.factor_dtype != DType::F32) store_factors_as(net.layer_linears(i), scalar_type_of(o.factor_dtype));
    progress.set_note("layer " + std::to_string(i + 1) + "/" + std::to_string(layers));
    progress.advance(1);
  }  // `stats` (this layer's) is freed at the end of each iteration
  progress.finish();
  r.applied.decompose_seconds = decompose_seconds;
  r.applied.seconds = apply_seconds;
  r.calibration.seconds = calib_seconds;
  r.calibration.peak_rss_bytes = peak_rss_bytes();
  return r;
}

}  // namespace rankrl
