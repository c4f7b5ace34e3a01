// Reading a search output directory for the report: JSON files, the run log, the factor store's
// singular-value tails. Each throws Error(file, ...) naming the file (and the log line).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "report/svg.h"

namespace rankrl::report {

// A file that must hold a JSON object.
nlohmann::json read_json_file(const std::string& path);

struct LogEntry {
  std::string approach;
  double reward = 0, best = 0;
  bool probe = false;
  bool surrogate = false;  // an agent's training episode on the surrogate (−KL), not an RkD reward
};
// OUT/log.jsonl, one entry per line (blank lines skipped).
std::vector<LogEntry> read_log(const std::string& path);

// σ_i / σ_0 from a tail_error vector: σ_i² = tail[i] − tail[i+1].
std::vector<Point> spectrum(const std::vector<double>& tail);

struct FactorInfo {
  std::map<std::string, int64_t> full_rank;  // weight → min(m, n)
  std::vector<std::pair<std::string, std::vector<double>>> svd_tails;
};
// Every factors-*.safetensors in OUT (none: empty).
FactorInfo read_factor_store(const std::string& out);

}  // namespace rankrl::report
