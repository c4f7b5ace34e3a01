// The `rankrl compress` pipeline as a library call: load → statistics (calibrate or read) →
// plan (uniform or from a file) → apply → [heal] → write the directory. Each stage is timed.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>

namespace rankrl {

struct CalibStats;
class CalibStatsReader;
struct Model;

struct StatsSource {
  std::string calib_file;  // calibrate on this text ...
  int64_t calib_tokens = 0;
  int64_t ctx = 0;
  bool fisher = false;
  std::string stats_file;  // ... or read these statistics (rankrl calibrate --out)
  bool given() const { return !calib_file.empty() || !stats_file.empty(); }
};

struct CompressOptions {
  std::string model, tokenizer, out;
  StatsSource stats;
  double keep = 0.0;            // with method: a uniform plan ...
  std::string method, select = "top";
  std::string plan_path;        // ... or this plan
  uint64_t seed = 0;
  bool replace = false;
  bool heal = false;            // closed-form least-squares refit of every A (needs --calib)
  bool heal_compensate = false; // closed form: A and B to the dense model's outputs instead (heal.h)
  int64_t heal_steps = 0;       // then this many gradient steps on the factors
  double heal_lr = 1e-3;
  std::string dtype;            // f32 | f16 | bf16 for the written tensors; "" = the model's own
};

// A statistics file, checked to belong to `model` (and to hold Fisher statistics if wanted).
CalibStatsReader open_stats_file(const Model& model, const std::string& path, bool want_fisher);

// Usage error unless the calibration token count and window length are at least 1.
void check_calib_source(const StatsSource& src);

// Calibrates `model` (or reads stats and checks they belong to it). `want_fisher` turns on
// Fisher statistics even when `src.fisher` is off (a method needs them); `want_output_grads` the
// output-gradient Grams (LinearStats::out_gram; from --calib only, not from a statistics file).
CalibStats obtain_stats(const Model& model, const StatsSource& src, bool want_fisher, bool want_output_grads = false);

// rankrl calibrate --out: statistics written layer by layer as they are complete (one layer's
// statistics in memory); with Fisher statistics the whole model runs first. Returns the metadata
// and shared_input, without the statistics themselves.
CalibStats calibrate_to_file(const Model& model, const StatsSource& src, const std::string& out);

// Runs the pipeline and returns report.json (also written into the output directory).
nlohmann::json compress_model(const CompressOptions& opts);

}  // namespace rankrl
