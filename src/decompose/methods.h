// Factories of the individual methods (internal to src/decompose; use make_decomposer).
// Each reads and range-checks its own parameters from the parsed spec.
#pragma once
#include <memory>

#include "decompose/common.h"
#include "decompose/decomposer.h"

namespace rankrl::detail {

std::unique_ptr<Decomposer> make_svd(const Params& params);
std::unique_ptr<Decomposer> make_rsvd(const Params& params);
std::unique_ptr<Decomposer> make_asvd(const Params& params);
std::unique_ptr<Decomposer> make_svdllm(const Params& params);
std::unique_ptr<Decomposer> make_fwsvd(const Params& params);
std::unique_ptr<Decomposer> make_cur(const Params& params);
std::unique_ptr<Decomposer> make_nmf(const Params& params);

}  // namespace rankrl::detail
