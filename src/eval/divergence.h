// How far a model's next-token distributions are from a reference model's on fixed text: the
// mean over scored tokens of KL(p_reference ‖ p_model), in nats per token. The text is split
// into non-overlapping windows of `ctx` tokens as in perplexity(); every position of a window is
// scored. The reference's log-probabilities are computed once (kept in memory when they fit in
// `cache_bytes`, recomputed per call otherwise), so each call costs one forward pass of `net`.
//
// Why: it is a dense, low-variance measure of how much a compression changed the model (every
// token and every vocabulary entry contributes, not one gold choice per item), so the search can
// use it as a cheap surrogate reward (search --reward kl, or to screen plans before RkD).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace rankrl {

class Transformer;

class DivergenceScorer {
 public:
  // `reference` must outlive the scorer. `ids`: the tokenized text (at least ctx + 1 tokens).
  // `windows_per_unit` windows run in one forward pass; under mpirun the units are spread over the
  // ranks (core/dist.h). One window per unit costs one process nothing measurable on small models
  // (stories260K) and lets every rank count split the work.
  DivergenceScorer(const Transformer& reference, const std::vector<int32_t>& ids, int64_t ctx,
                   int64_t cache_bytes = int64_t(1) << 30, int64_t windows_per_unit = 1);
  ~DivergenceScorer();

  double kl(const Transformer& net) const;  // mean KL(reference ‖ net), nats per token
  int64_t tokens() const;                   // scored positions

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rankrl
