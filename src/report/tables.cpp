#include "report/tables.h"

#include <cmath>
#include <sstream>

#include "eval/bootstrap.h"
#include "report/report.h"

namespace rankrl::report {

using nlohmann::json;

double getd(const json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : NAN;
}

namespace {

std::string metric(const json& row, const char* split, const char* key, int prec = 4) {
  if (!row.contains(split) || !row[split].is_object()) return "-";
  double v = getd(row[split], key);
  return std::isfinite(v) ? num(v, prec) : "-";
}
std::string intstr(const json& row, const char* key) {
  return row.contains(key) && row[key].is_number() ? std::to_string(row[key].get<int64_t>()) : "-";
}

bool has_interval(const json& d) {
  return d.is_object() && d.contains("diff") && d.contains("lo") && d.contains("hi") && d["diff"].is_number() &&
         d["lo"].is_number() && d["hi"].is_number();
}
std::string signed_num(double v, int prec) {
  std::string s = num(v, prec);
  if (s[0] == '-' && s.substr(1) == num(0.0, prec)) s = s.substr(1);  // no "-0.000"
  return s[0] == '-' ? s : "+" + s;
}
// better / worse / no significant difference, by the same rule as the search (eval/bootstrap.h).
std::string verdict_of(const json& d) {
  return verdict(Interval{d["diff"].get<double>(), d["lo"].get<double>(), d["hi"].get<double>()});
}
// One comparison of an approach (`row`: vs_dense or vs_best_uniform) for one metric, or null.
json comparison(const json& row, const char* vs, const char* metric) {
  if (!row.is_object() || !row.contains(vs) || !row[vs].is_object() || !row[vs].contains(metric)) return nullptr;
  return has_interval(row[vs][metric]) ? row[vs][metric] : json(nullptr);
}

// True when some approach was also scored healed (search --final-heal compensate): the tables then
// add the healed columns beside the others.
bool any_healed(const json& res) {
  if (!res.contains("approaches") || !res["approaches"].is_array()) return false;
  for (const json& a : res["approaches"])
    if (a.is_object() && a.contains("healed") && a["healed"].is_object()) return true;
  return false;
}
const json& healed_of(const json& row) {
  static const json none = json::object();
  return row.is_object() && row.contains("healed") && row["healed"].is_object() ? row["healed"] : none;
}

}  // namespace

std::string html_table(const Table& t, const std::string& id) {
  std::ostringstream s;
  s << "<table id=\"" << id << "\"><thead><tr>";
  for (const auto& h : t.head) s << "<th>" << escape_xml(h) << "</th>";
  s << "</tr></thead><tbody>\n";
  for (const auto& r : t.rows) {
    s << "<tr>";
    for (const auto& c : r) s << "<td>" << escape_xml(c) << "</td>";
    s << "</tr>\n";
  }
  s << "</tbody></table>\n";
  return s.str();
}

namespace {

std::string md_cell(std::string c) {
  std::string r;
  for (char ch : c) {
    if (ch == '|') r += "\\|";
    else if (ch == '\n') r += ' ';
    else r += ch;
  }
  return r;
}
}  // namespace

std::string md_table(const Table& t) {
  std::ostringstream s;
  s << "|";
  for (const auto& h : t.head) s << " " << md_cell(h) << " |";
  s << "\n|";
  for (size_t i = 0; i < t.head.size(); ++i) s << (i == 0 ? " --- |" : " ---: |");
  s << "\n";
  for (const auto& r : t.rows) {
    s << "|";
    for (const auto& c : r) s << " " << md_cell(c) << " |";
    s << "\n";
  }
  return s.str();
}

Table results_table(const json& res) {
  Table t;
  t.head = {"approach", "evals", "seconds", "keep", "rkd margin", "rkd acc", "rkd acc_norm", "vrkd margin", "vrkd acc",
            "vrkd acc_norm", "test margin", "test acc", "test acc_norm", "held-out ppl", "linear params",
            "total params", "bytes", "linear FLOPs/token", "prefill tok/s", "decode tok/s"};
  // --budget latency: the latency workload's forward time, predicted from the table and measured.
  const bool latency = res.contains("budget") && res["budget"].is_object() && res["budget"].value("kind", "") == "latency";
  if (latency) t.head.insert(t.head.end(), {"predicted s", "measured s"});
  const bool healed = any_healed(res);
  if (healed)
    for (const char* h : {"healed vrkd margin", "healed vrkd acc", "healed test margin", "healed test acc", "healed held-out ppl"})
      t.head.push_back(h);
  auto row = [&](const std::string& name, const json& r, bool dense) {
    std::vector<std::string> c = {name, dense ? "-" : intstr(r, "evaluations"),
                                  dense ? "-" : num(getd(r, "seconds"), 1),
                                  dense ? "1" : num(getd(r, "keep_actual"), 4)};
    for (const char* split : {"rkd", "vrkd", "test"})
      for (const char* k : {"margin", "acc", "acc_norm"}) c.push_back(metric(r, split, k));
    double ppl = getd(r, "heldout_ppl");
    c.push_back(std::isfinite(ppl) ? num(ppl, 3) : "-");
    c.push_back(intstr(r, "linear_parameters"));
    c.push_back(intstr(r, "total_parameters"));
    c.push_back(intstr(r, "total_bytes"));
    c.push_back(intstr(r, "linear_flops_per_token"));
    for (const char* k : {"prefill_tokens_per_second", "decode_tokens_per_second"}) {
      double v = getd(r, k);
      c.push_back(std::isfinite(v) && v > 0 ? num(v, 0) : "-");
    }
    if (latency)
      for (const char* k : {"predicted_seconds", "measured_seconds"}) {
        double v = getd(r, k);
        c.push_back(std::isfinite(v) ? num(v, 4) : "-");
      }
    if (healed) {
      const json& h = healed_of(r);
      for (const auto& [split, k] : {std::pair{"vrkd", "margin"}, {"vrkd", "acc"}, {"test", "margin"}, {"test", "acc"}})
        c.push_back(metric(h, split, k));
      const double hppl = getd(h, "heldout_ppl");
      c.push_back(std::isfinite(hppl) ? num(hppl, 3) : "-");
    }
    t.rows.push_back(c);
  };
  if (res.contains("dense") && res["dense"].is_object()) row("dense", res["dense"], true);
  std::string chosen = res.value("chosen", "");
  for (const json& a : res["approaches"]) row(a.value("name", "?") + (a.value("name", "") == chosen ? " (chosen)" : ""), a, false);
  return t;
}

Table differences_table(const json& res) {
  Table t;
  const json& boot = res.contains("bootstrap") && res["bootstrap"].is_object() ? res["bootstrap"] : json::object();
  const std::string uniform = boot.value("best_uniform", std::string("best uniform"));
  t.head = {"approach", "test margin - dense", "test acc - dense", "test margin - " + uniform, "test acc - " + uniform};
  const bool healed = any_healed(res);
  const std::string healed_uniform = boot.value("best_uniform_healed", std::string("best uniform"));
  if (healed)
    for (const std::string& h : std::vector<std::string>{"healed test margin - dense", "healed test acc - dense",
                                                         "healed test margin - healed " + healed_uniform,
                                                         "healed test acc - healed " + healed_uniform})
      t.head.push_back(h);
  auto row = [&](const std::string& name, const json& r) {
    std::vector<std::string> c = {name};
    bool any = false;
    auto cells = [&](const json& from) {
      for (const char* vs : {"vs_dense", "vs_best_uniform"})
        for (const char* metric : {"margin", "acc"}) {
          json d = comparison(from, vs, metric);
          any = any || !d.is_null();
          const std::string word = d.is_null() ? "" : verdict_of(d) == "no significant difference" ? "n.s." : verdict_of(d);
          c.push_back(d.is_null() ? "-" : interval_text(d) + " " + word);
        }
    };
    cells(r);
    if (healed) cells(healed_of(r));
    if (any) t.rows.push_back(c);
  };
  if (res.contains("dense")) row("dense", res["dense"]);
  std::string chosen = res.value("chosen", "");
  for (const json& a : res["approaches"]) row(a.value("name", "?") + (a.value("name", "") == chosen ? " (chosen)" : ""), a);
  return t;
}

Table meta_table(const json& res, const json& plan) {
  Table t;
  t.head = {"field", "value"};
  auto str = [](const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
  for (const char* k : {"command", "rankrl_version", "libtorch_version", "seed", "threads", "model", "keep", "methods",
                        "selects", "agents", "episodes", "reward", "splits", "skipped_too_long", "final_heal", "heldout_tokens", "chosen", "bootstrap"})
    if (res.contains(k)) t.rows.push_back({k, str(res[k])});
  if (plan.is_object() && plan.contains("model_identity")) t.rows.push_back({"model_identity", str(plan["model_identity"])});
  if (plan.is_object() && plan.contains("seed")) t.rows.push_back({"plan seed", str(plan["seed"])});
  if (res.contains("timing") && res["timing"].is_object())
    for (const auto& [k, v] : res["timing"].items()) t.rows.push_back({"timing." + k, str(v)});
  return t;
}

std::string interval_text(const json& d, int prec) {
  if (!has_interval(d)) return "-";
  return signed_num(d["diff"].get<double>(), prec) + " [" + signed_num(d["lo"].get<double>(), prec) + ", " +
         signed_num(d["hi"].get<double>(), prec) + "]";
}

std::string choice_summary(const json& res) {
  if (!res.is_object() || !res.contains("approaches") || !res["approaches"].is_array()) return "";
  const std::string chosen = res.value("chosen", "");
  const json* row = nullptr;
  for (const json& a : res["approaches"])
    if (a.is_object() && a.value("name", "") == chosen) row = &a;
  // With --final-heal compensate the choice and the written model are the healed ones: so are the differences.
  const bool healed = row && !comparison(healed_of(*row), "vs_dense", "margin").is_null();
  if (healed) row = &healed_of(*row);
  if (!row || comparison(*row, "vs_dense", "margin").is_null()) return "";
  const json boot = res.value("bootstrap", json::object()), reward = res.value("reward", json::object());
  const bool acc = reward.value("kind", "") == "acc";
  std::ostringstream s;
  s << "chosen: " << chosen << " (best " << (healed ? "healed " : "") << "VRkD " << (acc ? "acc" : "margin") << "); on "
    << (healed ? "test after healing, " : "test, ") << int(std::lround(100 * boot.value("level", 0.95)))
    << "% paired bootstrap intervals over " << res.value("splits", json::object()).value("test", 0) << " items";
  const std::string uniform = boot.value(healed ? "best_uniform_healed" : "best_uniform", std::string("?"));
  for (const char* vs : {"vs_dense", "vs_best_uniform"}) {
    const bool dense = std::string(vs) == "vs_dense";
    s << (dense ? ": vs dense" : "; vs best uniform " + uniform + (uniform == chosen ? " (itself)" : ""));
    for (const char* metric : {"margin", "acc"}) {
      json d = comparison(*row, vs, metric);
      if (d.is_null()) continue;
      s << (metric[0] == 'm' ? " " : ", ") << metric << " " << interval_text(d) << " " << verdict_of(d);
    }
  }
  return s.str();
}

}  // namespace rankrl::report
