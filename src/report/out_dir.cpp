#include "report/out_dir.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/fs.h"
#include "io/safetensors.h"

namespace rankrl::report {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json_file(const std::string& path) {
  json j = json::parse(read_file(path), nullptr, false);
  check(!j.is_discarded(), path, "not valid JSON");
  check(j.is_object(), path, "not a JSON object");
  return j;
}

std::vector<LogEntry> read_log(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<LogEntry> log;
  int64_t n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    if (line.empty()) continue;
    std::string where = "line " + std::to_string(n) + ": ";
    json j = json::parse(line, nullptr, false);
    check(!j.is_discarded() && j.is_object(), path, where + "not a JSON object");
    check(j.contains("approach") && j["approach"].is_string(), path, where + "missing 'approach'");
    LogEntry e;
    e.surrogate = j.contains("surrogate") && !j.contains("reward");
    const char* key = e.surrogate ? "surrogate" : "reward";
    check(j.contains(key) && j[key].is_number(), path, where + "missing numeric '" + key + "'");
    e.approach = j["approach"];
    e.reward = j[key];
    e.best = j.contains("best") && j["best"].is_number() ? j["best"].get<double>() : e.reward;
    e.probe = j.contains("probe_weight");
    log.push_back(e);
  }
  return log;
}

std::vector<Point> spectrum(const std::vector<double>& tail) {
  std::vector<double> sig;
  for (size_t i = 0; i + 1 < tail.size(); ++i) sig.push_back(std::sqrt(std::max(0.0, tail[i] - tail[i + 1])));
  std::vector<Point> pts;
  if (sig.empty() || !(sig[0] > 0)) return pts;
  for (size_t i = 0; i < sig.size(); ++i)
    if (sig[i] / sig[0] > 1e-12) pts.push_back({double(i + 1), sig[i] / sig[0]});
  return pts;
}

FactorInfo read_factor_store(const std::string& out) {
  FactorInfo info;
  if (!is_directory(out)) return info;
  std::vector<std::string> files;
  auto is_store_file = [](const std::string& n, const char* prefix) {
    return n.rfind(prefix, 0) == 0 && n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0;
  };
  for (const auto& e : fs::directory_iterator(out)) {
    std::string n = e.path().filename().string();
    if (is_store_file(n, "factors-") && n.size() > 20) files.push_back(e.path().string());
    // A search's store: factors-<key>/layer-NNN.safetensors (search/factor_store.h).
    if (n.rfind("factors-", 0) == 0 && n.find('.') == std::string::npos && e.is_directory())
      for (const auto& l : fs::directory_iterator(e.path()))
        if (is_store_file(l.path().filename().string(), "layer-")) files.push_back(l.path().string());
  }
  std::sort(files.begin(), files.end());
  for (const std::string& path : files) {
    SafetensorsFile f = SafetensorsFile::open(path);
    auto it = f.header().metadata.find("entries");
    check(it != f.header().metadata.end(), path, "not a rankrl factor store (no 'entries' metadata)");
    json entries = json::parse(it->second, nullptr, false);
    check(entries.is_array(), path, "corrupt 'entries' metadata");
    for (size_t i = 0; i < entries.size(); ++i) {
      const json& e = entries[i];
      check(e.is_object() && e.contains("weight") && e["weight"].is_string() && e.contains("spec") && e["spec"].is_string(),
            path, "entry " + std::to_string(i) + " lacks weight/spec");
      const TensorInfo* t = f.find(std::to_string(i) + ".tail");
      if (!t) continue;
      check(t->dtype == DType::F64, path, "tensor " + quote_name(t->name) + " is not F64");
      std::vector<double> tail(size_t(t->numel()));
      std::memcpy(tail.data(), f.data(*t), tail.size() * sizeof(double));
      std::string w = e["weight"];
      if (!tail.empty()) info.full_rank[w] = int64_t(tail.size()) - 1;
      if (e["spec"] == "svd") info.svd_tails.emplace_back(w, std::move(tail));
    }
  }
  return info;
}

}  // namespace rankrl::report
