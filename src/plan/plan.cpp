#include "plan/plan.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/fs.h"
#include "decompose/decomposer.h"
#include "decompose/selection.h"
#include "model/transformer.h"

namespace rankrl {

namespace {

using nlohmann::json;
constexpr const char* kFormat = "rankrl-plan";
constexpr int kVersion = 1;

WeightDecision decision_from_json(const json& d, const std::string& name, const std::string& path) {
  check(d.is_object(), path, "decision for '" + name + "' is not an object");
  WeightDecision w;
  try {
    w.method = d.value("method", std::string(kDense));
    w.select = d.value("select", std::string("top"));
  } catch (const json::exception&) {
    throw Error(path, "decision for '" + name + "' has a field of the wrong type");
  }
  if (w.method == kDense) return w;
  // A factored weight needs a whole rank: 5.5 must not silently become 5, nor a missing one 0.
  check(d.contains("rank"), path, "weight '" + name + "': rank missing");
  check(d["rank"].is_number_integer(), path, "weight '" + name + "': rank " + d["rank"].dump() + " is not an integer");
  w.rank = d["rank"].get<int64_t>();
  return w;
}

void validate_decision(const WeightDecision& d, const Linear& l, const std::string& path) {
  if (d.method == kDense) return;
  try {
    make_decomposer(d.method);
    parse_selection(d.select);
  } catch (const Error& e) {
    throw Error(path, "weight '" + l.name() + "': " + e.what());
  }
  const int64_t max_rank = std::min(l.out_features(), l.in_features());
  check(d.rank >= 1 && d.rank <= max_rank, path,
        "weight '" + l.name() + "': rank " + std::to_string(d.rank) + " outside [1, " +
            std::to_string(max_rank) + "] (min of its shape " + std::to_string(l.out_features()) + "x" +
            std::to_string(l.in_features()) + ")");
}

}  // namespace

json plan_to_json(const Plan& plan) {
  json weights = json::object();
  for (const auto& [name, d] : plan.weights) {
    json w = {{"method", d.method}};
    if (d.method != kDense) w.update({{"rank", d.rank}, {"select", d.select}});
    weights[name] = w;
  }
  return {{"format", kFormat}, {"version", kVersion}, {"model_identity", plan.model_identity},
          {"keep", plan.keep}, {"seed", plan.seed},   {"weights", weights}};
}

Plan plan_from_json(const json& j, const std::string& path) {
  check(j.is_object(), path, "a plan must be a JSON object");
  check(j.value("format", std::string()) == kFormat, path, "not a rankrl plan (\"format\" must be \"rankrl-plan\")");
  check(j.value("version", 0) == kVersion, path, "unsupported plan version");
  check(j.contains("weights") && j["weights"].is_object(), path, "plan has no object 'weights'");
  Plan p;
  try {
    p.model_identity = j.value("model_identity", std::string());
    p.keep = j.value("keep", 1.0);
    p.seed = j.value("seed", uint64_t(0));
  } catch (const json::exception&) {
    throw Error(path, "plan field model_identity/keep/seed has the wrong type");
  }
  for (const auto& [name, d] : j["weights"].items()) p.weights[name] = decision_from_json(d, name, path);
  return p;
}

Plan read_plan(const std::string& path) {
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw Error(path, std::string("not valid JSON: ") + e.what());
  }
  return plan_from_json(j, path);
}

void write_plan(const std::string& path, const Plan& plan) {
  write_file_atomic(path, plan_to_json(plan).dump(2) + "\n");
}

void validate_plan(const Plan& plan, const Transformer& net, const std::string& path) {
  const std::string id = model_identity(net.config());
  check(plan.model_identity == id, path,
        "plan is for another model (identity " + plan.model_identity + ", this model is " + id + ")");
  std::set<std::string> names;
  for (const Linear* l : net.linears()) {
    names.insert(l->name());
    auto it = plan.weights.find(l->name());
    check(it != plan.weights.end(), path, "plan has no decision for weight '" + l->name() + "'");
    validate_decision(it->second, *l, path);
  }
  for (const auto& [name, d] : plan.weights)
    check(names.count(name) > 0, path, "plan names tensor '" + name + "', which is not a projection weight of this model");
}

Plan uniform_plan(const Transformer& net, double keep, const std::string& method,
                  const std::string& select, uint64_t seed) {
  if (!(keep > 0.0 && keep < 1.0))
    throw usage_error("--keep must be in (0, 1) (1 would keep every weight dense: nothing to compress)");
  if (method != kDense) make_decomposer(method);  // unknown method → Error now, not per weight
  parse_selection(select);
  Plan p;
  p.keep = keep;
  p.seed = seed;
  p.model_identity = model_identity(net.config());
  for (const Linear* l : net.linears()) {
    const double m = double(l->out_features()), n = double(l->in_features());
    // +1e-9: a keep like 0.5 must not lose a whole rank to 15.999999 when the ratio is integral.
    const int64_t rank = std::max<int64_t>(1, int64_t(std::floor(keep * m * n / (m + n) + 1e-9)));
    p.weights[l->name()] = {method, rank, select};
  }
  return p;
}

}  // namespace rankrl
