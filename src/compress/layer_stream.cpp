#include "compress/layer_stream.h"

#include <malloc.h>

#include <chrono>
#include <filesystem>

#include "calib/stats_file.h"
#include "compress/factor_cache.h"
#include "compress/heal.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/log.h"
#include "io/checkpoint.h"
#include "io/mapped.h"
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

// Writes the factors of `linears` to `path` and points the linears at their memory-mapped copies
// there (same values and dtype), so the in-memory factors are freed.
void spill_factors(const std::vector<Linear*>& linears, const std::string& path) {
  std::vector<at::Tensor> keep_alive;  // `tensors` views their bytes
  std::vector<TensorBytes> tensors;
  for (const Linear* l : linears) {
    if (!l->is_low_rank()) continue;
    for (const auto& [suffix, t] : {std::pair{kLowRankA, l->A()}, std::pair{kLowRankB, l->B()}}) {
      keep_alive.push_back(t.contiguous());
      const at::Tensor& c = keep_alive.back();
      tensors.push_back({l->name() + suffix, dtype_of(c.scalar_type()), c.sizes().vec(),
                         std::string_view(static_cast<const char*>(c.data_ptr()), c.nbytes())});
    }
  }
  if (tensors.empty()) return;
  write_safetensors(path, tensors);
  keep_alive.clear();
  const SafetensorsFile file = SafetensorsFile::open(path);
  for (Linear* l : linears)
    if (l->is_low_rank()) l->set_low_rank(mapped_view(file, l->name() + kLowRankA), mapped_view(file, l->name() + kLowRankB));
}

// What a finished layer no longer needs in RAM: its source weights' pages (read again from the
// page cache if ever used) and the heap memory freed by its decompositions (glibc keeps large
// freed blocks otherwise, and the next layer's peak lands on top of them).
void release_layer(Transformer& dense, int64_t layer) {
  for (const Linear* l : dense.layer_linears(layer)) release_mapped_pages(l->weight());
  malloc_trim(0);
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
    if (!o.spill_dir.empty() && dist::is_root())  // only rank 0 writes files (core/dist.h)
      spill_factors(net.layer_linears(i), (std::filesystem::path(o.spill_dir) / ("layer-" + std::to_string(i) + ".safetensors")).string());
    release_layer(dense, i);
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
