// The report's tables (results, differences with their intervals, the run) as cells, rendered as
// HTML or markdown; read from results.json by key, so a results.json from an older rankrl (or
// written by hand) still renders, with "-" where a field is missing.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace rankrl::report {

struct Table {
  std::vector<std::string> head;
  std::vector<std::vector<std::string>> rows;
};
std::string html_table(const Table& t, const std::string& id);
std::string md_table(const Table& t);

// A number field of a row, NaN when missing.
double getd(const nlohmann::json& j, const char* key);

// Every approach (and dense): evaluations, seconds, keep, the metrics per split, perplexity, sizes.
Table results_table(const nlohmann::json& res);
// Test differences with their paired bootstrap intervals; no rows when results.json has none.
Table differences_table(const nlohmann::json& res);
// The command, versions, seeds, settings, the plan's identity and the timing.
Table meta_table(const nlohmann::json& res, const nlohmann::json& plan);

}  // namespace rankrl::report
