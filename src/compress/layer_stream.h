// Layer-streamed compression (as GPTQ and SVD-LLM run it): for each decoder layer in order, the
// carried calibration hidden states go through that layer while its input statistics are
// collected; its weights are decomposed per the plan; optionally it is healed in closed form
// (from the compressed stream x̃ and, for the compensating form, the dense stream x); both streams
// advance (dense through the dense layer, compressed through the compressed one); the layer's
// statistics are dropped. Only one layer's statistics are ever in memory, and healing costs one
// pass per layer instead of one whole-model pass per group of linears.
//
// Same results as calibrate → apply_plan → heal on the whole model: the statistics of layer i on
// the dense stream are the ones whole-model calibration computes, and heal_layer is heal()'s
// refit for that layer. Fisher statistics and gradient healing need the whole model's backward:
// they stay on the whole-model path (pipeline.cpp).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "calib/calibrate.h"
#include "compress/apply.h"
#include "io/safetensors.h"

namespace rankrl {

class CalibStatsReader;
class Transformer;

struct LayerStreamOptions {
  const std::vector<int32_t>* ids = nullptr;  // calibration tokens; null: no calibration pass
  int64_t ctx = 0;
  int64_t batch = 8;                          // windows per forward (as calibrate groups them)
  const CalibStatsReader* stats = nullptr;    // precomputed statistics, read layer by layer
                                              // (then `ids` is for healing only)
  bool heal = false;                          // closed-form refit (needs ids)
  bool compensate = false;                    // ... the compensating form (needs ids)
  // Once a layer is done its factors are kept in this dtype, the one they will be written in
  // (F16/BF16 halve the factors' memory on a large model; F32 keeps them as computed).
  DType factor_dtype = DType::F32;
  // A directory (existing): each finished layer's factors are written to
  // <spill_dir>/layer-<i>.safetensors at once, and the model then views them there (memory map),
  // so finished layers hold no RAM however many there are. The files must outlive the model's use
  // of the factors (compress writes them inside its staging directory). Empty: kept in memory.
  std::string spill_dir;
};

struct LayerStreamResult {
  ApplyReport applied;
  CalibStats calibration;  // tokens, ctx, windows, seconds, peak RSS of the calibration passes (no stats)
  nlohmann::json heal_layers = nlohmann::json::array();
  double heal_seconds = 0.0;
};

// `net` must be dense; it is compressed in place per `plan` (validated here). Per-layer progress
// with an ETA on stderr. After each layer the pages of its source weights are dropped from the
// resident set (io/checkpoint.h release_mapped_pages) and freed heap memory is returned to the
// system, so peak RSS stays flat over the layers.
LayerStreamResult compress_layers(Transformer& net, const Plan& plan, const LayerStreamOptions& opts);

}  // namespace rankrl
