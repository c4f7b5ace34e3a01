#include "decompose/decomposer.h"

#include <ATen/ATen.h>

#include <functional>
#include <utility>

#include "core/error.h"
#include "decompose/methods.h"

namespace rankrl {

int64_t Factors::rank() const { return A.defined() ? A.size(1) : 0; }

Decomposer::~Decomposer() = default;
bool Decomposer::needs_stats() const { return false; }
bool Decomposer::needs_fisher() const { return false; }

namespace {

using Factory = std::function<std::unique_ptr<Decomposer>(const detail::Params&)>;

const std::vector<std::pair<std::string, Factory>>& registry() {
  static const std::vector<std::pair<std::string, Factory>> methods = {
      {"svd", detail::make_svd},       {"rsvd", detail::make_rsvd}, {"asvd", detail::make_asvd},
      {"svdllm", detail::make_svdllm}, {"fwsvd", detail::make_fwsvd}, {"cur", detail::make_cur},
      {"nmf", detail::make_nmf},
  };
  return methods;
}

}  // namespace

std::vector<std::string> known_methods() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : registry()) names.push_back(name);
  return names;
}

std::unique_ptr<Decomposer> make_decomposer(const std::string& spec) {
  const detail::Params params(spec);
  for (const auto& [name, factory] : registry())
    if (name == params.method()) return factory(params);
  throw Error(spec, "unknown decomposition method '" + params.method() +
                        "'; known methods: " + detail::join(known_methods()));
}

}  // namespace rankrl
