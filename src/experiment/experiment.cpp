#include "experiment/experiment.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "report/report.h"
#include "search/options.h"
#include "search/results.h"
#include "search/search.h"

namespace rankrl {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// An extra_args key (a search flag without "--"; '_' for '-' allowed) → the option it sets, or
// nullptr when it is no search option an experiment may set (search_option_table's kExperiment).
const SearchOptionInfo* extra_arg_option(const std::string& key) {
  const SearchOptionInfo* opt = find_search_option("--" + key);
  return opt && opt->has(kExperiment) ? opt : nullptr;
}

std::string flag_key(std::string k) {
  while (!k.empty() && k[0] == '-') k.erase(0, 1);
  for (char& c : k)
    if (c == '_') c = '-';
  return k;
}

std::string value_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string s;
    for (const json& e : v) s += (s.empty() ? "" : ",") + value_text(e);
    return s;
  }
  return v.dump();
}

std::string keep_text(double keep) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", keep);
  return buf;
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const std::string& e : v) s += (s.empty() ? "" : sep) + e;
  return s;
}

}  // namespace

ExperimentSpec read_experiment(const std::string& path) {
  json j = json::parse(read_file(path), nullptr, false);
  check(!j.is_discarded() && j.is_object(), path, "not a JSON object");
  ExperimentSpec s;
  s.path = path;
  fs::path base = fs::path(path).parent_path();
  auto str = [&](const char* k, bool required) -> std::string {
    if (!j.contains(k)) {
      check(!required, path, std::string("missing '") + k + "'");
      return "";
    }
    check(j[k].is_string() && !j[k].get<std::string>().empty(), path, std::string("'") + k + "' must be a non-empty string");
    return j[k];
  };
  auto file = [&](const char* k, bool required) {
    std::string v = str(k, required);
    return v.empty() || fs::path(v).is_absolute() ? v : (base / v).lexically_normal().string();
  };
  auto integer = [&](const char* k, int64_t dflt) {
    if (!j.contains(k)) return dflt;
    check(j[k].is_number_integer() && j[k].get<int64_t>() > 0, path, std::string("'") + k + "' must be a positive integer");
    return j[k].get<int64_t>();
  };
  s.name = str("name", true);
  for (char c : s.name)
    check(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.', path,
          "'name' may hold only letters, digits, '-', '_' and '.'");
  s.model = file("model", true);
  s.tokenizer = file("tokenizer", false);
  s.calib = file("calib", true);
  s.data = file("data", true);
  s.heldout = file("heldout", false);
  s.calib_tokens = integer("calib_tokens", s.calib_tokens);
  s.ctx = integer("ctx", s.ctx);
  s.episodes = integer("episodes", s.episodes);
  check(j.contains("keeps") && j["keeps"].is_array() && !j["keeps"].empty(), path, "'keeps' must be a non-empty list");
  for (const json& k : j["keeps"]) {
    check(k.is_number() && k.get<double>() > 0 && k.get<double>() < 1, path, "every keep must be a number in (0, 1)");
    s.keeps.push_back(k);
  }
  check(j.contains("seeds") && j["seeds"].is_array() && !j["seeds"].empty(), path, "'seeds' must be a non-empty list");
  for (const json& k : j["seeds"]) {
    check(k.is_number_unsigned(), path, "every seed must be a non-negative integer");
    s.seeds.push_back(k);
  }
  check(j.contains("agents") && j["agents"].is_array() && !j["agents"].empty(), path, "'agents' must be a non-empty list");
  bool nested = j["agents"][0].is_array();
  if (!nested) s.agent_sets.emplace_back();
  for (const json& a : j["agents"]) {
    if (nested) {
      check(a.is_array() && !a.empty(), path, "'agents' must be a list of names or a list of non-empty lists");
      s.agent_sets.emplace_back();
      for (const json& n : a) {
        check(n.is_string(), path, "agent names must be strings");
        s.agent_sets.back().push_back(n);
      }
    } else {
      check(a.is_string(), path, "'agents' must be a list of names or a list of non-empty lists");
      s.agent_sets.back().push_back(a);
    }
  }
  if (j.contains("extra_args")) {
    check(j["extra_args"].is_object(), path, "'extra_args' must be an object");
    for (const auto& [k, v] : j["extra_args"].items()) {
      std::string key = flag_key(k);
      check(extra_arg_option(key) != nullptr, path, "unknown extra_args key '" + k + "'");
      s.extra_args.emplace_back(key, value_text(v));
    }
  }
  return s;
}

std::vector<ExperimentCell> experiment_cells(const ExperimentSpec& spec, const std::string& out_root) {
  std::vector<ExperimentCell> cells;
  for (double keep : spec.keeps)
    for (const auto& agents : spec.agent_sets)
      for (uint64_t seed : spec.seeds) {
        std::string name = keep_text(keep) + "-" + (spec.agent_sets.size() > 1 ? join(agents, "+") + "-" : "") + std::to_string(seed);
        cells.push_back({keep, agents, seed, out_root + "/" + spec.name + "/" + name});
      }
  return cells;
}

namespace {
// The search of one cell (its resume and replace flags are set when it runs).
SearchOptions cell_options(const ExperimentSpec& spec, const ExperimentCell& c) {
  SearchOptions o;
  o.model = spec.model;
  o.tokenizer = spec.tokenizer;
  o.stats.calib_file = spec.calib;
  o.stats.calib_tokens = spec.calib_tokens;
  o.heldout_file = spec.heldout;
  o.stats.ctx = spec.ctx;
  o.rkd = o.vrkd = o.test = spec.data;
  o.agents = c.agents;
  o.episodes = spec.episodes;
  o.seed = c.seed;
  o.env.keep = c.keep;
  o.out = c.dir;
  for (const auto& [k, v] : spec.extra_args) {
    try {
      set_option_text(o, *extra_arg_option(k), v);
    } catch (const std::logic_error&) {
      throw Error(spec.path, "extra_args '" + k + "': bad value '" + v + "'");
    }
  }
  return o;
}
}  // namespace

// The caller has set the thread count (recorded in each results.json).
json run_experiment(const ExperimentSpec& spec, const std::string& out_root) {
  std::vector<ExperimentCell> cells = experiment_cells(spec, out_root);
  // Every cell's flags are checked (as `rankrl search` checks its own) before anything is written.
  for (const ExperimentCell& c : cells) {
    try {
      validate_search_options(cell_options(spec, c));
    } catch (const Error& e) {
      throw Error(spec.path, "cell " + c.dir + ": " + e.message(), e.exit_code());
    }
  }
  fs::create_directories(out_root + "/" + spec.name);
  int64_t ran = 0, skipped = 0, resumed = 0;
  for (size_t i = 0; i < cells.size(); ++i) {
    const ExperimentCell& c = cells[i];
    if (file_exists(c.dir + "/results.json")) {
      ++skipped;
      continue;
    }
    SearchOptions o = cell_options(spec, c);
    // Resumable: a checkpointed cell continues; one that died before its first checkpoint restarts.
    o.resume = file_exists(c.dir + "/checkpoint/state.json");
    o.replace = !o.resume && fs::exists(c.dir);
    o.command_line = "rankrl experiment " + spec.path + " # cell keep=" + keep_text(c.keep) + " agents=" +
                     join(c.agents, ",") + " seed=" + std::to_string(c.seed);
    info("experiment " + spec.name + ": cell " + std::to_string(i + 1) + "/" + std::to_string(cells.size()) + " " +
         c.dir + (o.resume ? " (resuming)" : ""));
    run_search(o);
    report::write_report(o.out);
    ++ran;
    resumed += o.resume;
  }
  json r = summarize_experiment(spec, out_root);
  r["ran"] = ran;
  r["skipped"] = skipped;
  r["resumed"] = resumed;
  return r;
}

namespace {

struct Stat {
  double mean = 0, std = 0;
};
// Mean and sample standard deviation (n − 1 in the denominator; 0 for a single value).
Stat mean_std(const std::vector<double>& v) {
  Stat s;
  if (v.empty()) return {NAN, NAN};
  for (double x : v) s.mean += x;
  s.mean /= double(v.size());
  if (v.size() > 1) {
    double ss = 0;
    for (double x : v) ss += (x - s.mean) * (x - s.mean);
    s.std = std::sqrt(ss / double(v.size() - 1));
  }
  return s;
}

std::string fmt(double v, int prec) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

const std::vector<std::pair<const char*, int>> kMetrics = {
    {"test_margin_drop", 4}, {"test_acc", 4}, {"heldout_ppl", 3}, {"evaluations", 1}, {"seconds", 1}};

}  // namespace

json summarize_experiment(const ExperimentSpec& spec, const std::string& out_root) {
  std::vector<ExperimentCell> cells = experiment_cells(spec, out_root);
  std::ostringstream csv;
  csv << "experiment,keep,agents,seed,approach,test_margin,test_margin_drop,test_acc,test_acc_norm,heldout_ppl,"
         "keep_actual,evaluations,seconds\n";
  // (keep, agents, approach) → metric → values over seeds, in first-seen order.
  std::vector<std::tuple<double, std::string, std::string>> order;
  std::map<std::tuple<double, std::string, std::string>, std::map<std::string, std::vector<double>>> groups;
  for (const ExperimentCell& c : cells) {
    const SearchResults res = read_results(c.dir + "/results.json");
    const double dense = res.dense.test.margin;
    std::string agents = join(c.agents, "+");
    for (const ApproachResult& a : res.approaches) {
      const std::string& name = a.name;
      const double margin = a.test.margin, acc = a.test.acc, acc_norm = a.test.acc_norm, ppl = a.heldout_ppl;
      const double keep_actual = a.keep_actual, evals = double(a.evaluations), secs = a.seconds;
      csv << spec.name << "," << keep_text(c.keep) << "," << agents << "," << c.seed << "," << name << ","
          << fmt(margin, 6) << "," << fmt(dense - margin, 6) << "," << fmt(acc, 6) << "," << fmt(acc_norm, 6) << ","
          << fmt(ppl, 6) << "," << fmt(keep_actual, 6) << "," << int64_t(evals) << "," << fmt(secs, 3) << "\n";
      auto key = std::make_tuple(c.keep, agents, name);
      if (!groups.count(key)) order.push_back(key);
      auto& g = groups[key];
      g["test_margin_drop"].push_back(dense - margin);
      g["test_acc"].push_back(acc);
      g["heldout_ppl"].push_back(ppl);
      g["evaluations"].push_back(evals);
      g["seconds"].push_back(secs);
    }
  }
  std::ostringstream md;
  md << "# Experiment " << spec.name << "\n\nMean ± sample standard deviation over seeds";
  md << " (" << spec.seeds.size() << " seed(s)); test margin drop = dense test margin − approach test margin.\n\n";
  md << "| keep | agents | approach | n | test margin drop | test acc | held-out ppl | evaluations | seconds |\n";
  md << "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  json out_groups = json::array();
  for (const auto& key : order) {
    const auto& g = groups[key];
    const auto& [keep, agents, name] = key;
    json row = {{"keep", keep}, {"agents", agents}, {"approach", name}, {"n", g.at("seconds").size()}};
    md << "| " << keep_text(keep) << " | " << agents << " | " << name << " | " << g.at("seconds").size() << " |";
    for (const auto& [m, prec] : kMetrics) {
      Stat st = mean_std(g.at(m));
      row[m] = {{"mean", st.mean}, {"std", st.std}};
      md << " " << fmt(st.mean, prec) << " ± " << fmt(st.std, prec) << " |";
    }
    md << "\n";
    out_groups.push_back(row);
  }
  std::string dir = out_root + "/" + spec.name;
  fs::create_directories(dir);
  write_file_atomic(dir + "/summary.csv", csv.str());
  write_file_atomic(dir + "/summary.md", md.str());
  return {{"name", spec.name}, {"cells", cells.size()}, {"csv", dir + "/summary.csv"}, {"md", dir + "/summary.md"},
          {"groups", out_groups}};
}

}  // namespace rankrl
