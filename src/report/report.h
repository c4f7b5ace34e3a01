// `rankrl report OUT`: one self-contained report.html (inline SVG drawn here, no scripts, no
// network) and report.md from a search output directory: reward and best-so-far curves per
// episode, the quality-vs-size chart with its Pareto front, a layer × weight-type heat map of the
// chosen plan, singular-value spectra from the factor store, the results table, the test
// differences vs dense and vs the best uniform plan with their paired bootstrap intervals (and the
// chosen approach's in words under the title), and the command, versions and seeds. The pieces:
// svg.h (charts), heat_map.cpp (the plan's heat map), out_dir.h (reading OUT), tables.h (tables
// and the differences' words) and report.cpp (the page, one function per section).
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "report/svg.h"

namespace rankrl::report {

// Layer index and weight type from a checkpoint name: "model.layers.3.self_attn.q_proj.weight"
// → {3, "self_attn.q_proj"}, GPT-2 "h.3.attn.c_attn.weight" → {3, "attn.c_attn"}. layer = -1 when
// the name has no layer number (type = the name without ".weight").
struct WeightSlot {
  int layer = -1;
  std::string type;
};
WeightSlot parse_weight_name(const std::string& name);

struct HeatCell {
  std::string weight;    // full name
  std::string method;    // "dense" or a decomposer spec
  double rank_frac = 1;  // rank / min(m, n) (1 for dense); negative when unknown
  int64_t rank = 0;
};
// The letter drawn for a method ("svd" S, "asvd" A, "svdllm" L, "fwsvd" F, "cur" C, "nmf" N,
// "rsvd" R, "dense" D; the spec's options after ':' do not count).
std::string method_letter(const std::string& method);
std::string method_color(const std::string& method);
// Fill of a cell: the method's colour blended with white by 0.2 + 0.8·rank_frac; dense is grey.
std::string cell_fill(const std::string& method, double rank_frac);
// Rows = layers, columns = weight types; one <rect class="cell" data-weight=...> per weight with
// the method's letter; a legend of the methods present.
std::string heat_map(const std::string& id, const std::string& title, const std::vector<HeatCell>& cells);

// "-1.234 [-2.010, -0.400]": a difference {diff, lo, hi} from results.json with its interval,
// signed, `prec` decimals; "-" when the object is missing.
std::string interval_text(const nlohmann::json& d, int prec = 3);
// What the final choice may claim, from results.json: the chosen approach and, on the test split,
// its margin and accuracy vs dense and vs the best uniform plan with their paired bootstrap 95%
// intervals, each called better/worse only when its interval excludes 0 ("no significant
// difference" otherwise). "" when results.json has no intervals (written before they existed).
std::string choice_summary(const nlohmann::json& results);

struct Rendered {
  std::string html, md;
  std::vector<std::string> charts;  // ids of the charts drawn
};
// Renders report.html and report.md for OUT. Throws Error(file, ...) on a missing or corrupt
// results.json, log.jsonl (naming the line), plan.json or factor store.
Rendered render_report(const std::string& out);

// render_report, then writes OUT/report.html and OUT/report.md atomically (nothing is written
// when reading fails). Returns {"html", "md", "charts"}; under mpirun only rank 0 does this (others get {}).
nlohmann::json write_report(const std::string& out);

}  // namespace rankrl::report
