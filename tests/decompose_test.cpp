// Tests of src/decompose: every method's defining property, robustness of the data-aware
// methods on degenerate statistics, selection, bad input, and an independent numpy reference
// (tests/reference/decompose_ref.py → tests/expected/decompose_ref.json).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "decompose/decomposer.h"
#include "decompose/selection.h"
#include "decompose/stats.h"

namespace rankrl {
namespace {

at::Tensor gaussian(std::vector<int64_t> shape, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randn(shape, gen, at::kDouble);
}

at::Tensor random_orthonormal(int64_t rows, int64_t cols, uint64_t seed) {
  return std::get<0>(at::linalg_qr(gaussian({rows, cols}, seed), "reduced"));
}

// m×n float32 matrix with singular values σ_i = (i+1)^-decay and random singular vectors.
at::Tensor decaying_matrix(int64_t m, int64_t n, double decay, uint64_t seed) {
  const int64_t p = std::min(m, n);
  const at::Tensor sigma = at::pow(at::arange(1, p + 1, at::kDouble), -decay);
  const at::Tensor U = random_orthonormal(m, p, seed), V = random_orthonormal(n, p, seed + 1);
  return at::matmul(U * sigma.unsqueeze(0), V.t()).to(at::kFloat);
}

// Calibration inputs [tokens, n] with very different channel scales (like LLM activations).
at::Tensor calibration_inputs(int64_t tokens, int64_t n, uint64_t seed) {
  const at::Tensor scale = at::exp(2.0 * gaussian({n}, seed + 7));
  return (gaussian({tokens, n}, seed) * scale.unsqueeze(0)).to(at::kFloat);
}

LinearStats stats_of(const at::Tensor& X) {
  StatsAccumulator acc(X.size(1));
  acc.add(X);
  return acc.finish();
}

Factors run(const std::string& spec, const at::Tensor& W, const LinearStats* stats, int64_t k) {
  return make_decomposer(spec)->decompose(W, stats, k);
}

at::Tensor approx(const Factors& f, int64_t r) {
  return at::matmul(f.A.narrow(1, 0, r).to(at::kDouble), f.B.narrow(0, 0, r).to(at::kDouble));
}

double frob_sq(const at::Tensor& D) { return D.to(at::kDouble).square().sum().item<double>(); }

double output_sq(const at::Tensor& W, const at::Tensor& W_hat, const at::Tensor& X) {
  return frob_sq(at::matmul(W.to(at::kDouble) - W_hat, X.to(at::kDouble).t()));
}

double sigma_tail(const at::Tensor& W, int64_t r) {
  const at::Tensor s = at::linalg_svdvals(W.to(at::kDouble));
  return s.narrow(0, r, s.numel() - r).square().sum().item<double>();
}

void expect_rel_near(double actual, double expected, double rel, double abs_floor = 1e-9) {
  EXPECT_NEAR(actual, expected, rel * std::abs(expected) + abs_floor) << "actual " << actual << " expected " << expected;
}

bool finite(const Factors& f) {
  return at::isfinite(f.A).all().item<bool>() && at::isfinite(f.B).all().item<bool>();
}

TEST(DecomposeSvd, EckartYoungAndTailError) {
  const at::Tensor W = decaying_matrix(40, 30, 0.7, 1);
  const Factors f = run("svd", W, nullptr, 20);
  ASSERT_EQ(f.A.sizes(), at::IntArrayRef({40, 20}));
  ASSERT_EQ(f.B.sizes(), at::IntArrayRef({20, 30}));
  ASSERT_EQ(f.tail_error.size(), 21u);
  EXPECT_EQ(f.metric, "frobenius_sq");
  for (int64_t r : {0, 1, 5, 12, 20}) {
    const double err = frob_sq(W.to(at::kDouble) - approx(f, r));
    expect_rel_near(err, sigma_tail(W, r), 1e-4);
    expect_rel_near(f.tail_error[r], sigma_tail(W, r), 1e-4);
  }
  // Balanced split: ‖A_i‖ = ‖B_i‖ = √σ_i.
  EXPECT_TRUE(at::allclose(at::linalg_vector_norm(f.A, 2, {0}), at::linalg_vector_norm(f.B, 2, {1}), 1e-4, 1e-6));
}

TEST(DecomposeSvd, WideMatrix) {
  const at::Tensor W = decaying_matrix(12, 50, 0.5, 2);
  const Factors f = run("svd", W, nullptr, 12);
  EXPECT_LT(frob_sq(W.to(at::kDouble) - approx(f, 12)), 1e-8);
  expect_rel_near(frob_sq(W.to(at::kDouble) - approx(f, 4)), sigma_tail(W, 4), 1e-4);
}

TEST(DecomposeSvdLlm, TailErrorIsOutputErrorAndBeatsSvdAndAsvd) {
  const at::Tensor W = decaying_matrix(24, 32, 0.3, 3);
  const at::Tensor X = calibration_inputs(200, 32, 4);
  const LinearStats stats = stats_of(X);
  const Factors llm = run("svdllm", W, &stats, 16), svd = run("svd", W, nullptr, 16),
                asvd = run("asvd", W, &stats, 16);
  EXPECT_EQ(llm.metric, "output_sq");
  for (int64_t r = 0; r <= 16; ++r) {
    const double err = output_sq(W, approx(llm, r), X);
    expect_rel_near(err, llm.tail_error[r], 1e-4);
    EXPECT_LE(err, output_sq(W, approx(svd, r), X) * (1 + 1e-6)) << "rank " << r;
    EXPECT_LE(err, output_sq(W, approx(asvd, r), X) * (1 + 1e-6)) << "rank " << r;
  }
}

void expect_robust_svdllm(const at::Tensor& W, const at::Tensor& X, int64_t k) {
  const LinearStats stats = stats_of(X);
  Factors llm, svd = run("svd", W, nullptr, k);
  ASSERT_NO_THROW(llm = run("svdllm", W, &stats, k));
  ASSERT_TRUE(finite(llm));
  for (int64_t r = 1; r <= k; ++r) {
    const double err = output_sq(W, approx(llm, r), X);
    EXPECT_LE(err, output_sq(W, approx(svd, r), X) * (1 + 1e-5) + 1e-9) << "rank " << r;
    expect_rel_near(err, llm.tail_error[r], 1e-3, 1e-6);
  }
}

TEST(DecomposeSvdLlm, SingularGramFromDuplicatedChannels) {
  at::Tensor X = calibration_inputs(100, 20, 5);
  X.select(1, 3).copy_(X.select(1, 0));
  X.select(1, 7).copy_(X.select(1, 1) * 2);
  expect_robust_svdllm(decaying_matrix(16, 20, 0.5, 6), X, 10);
}

TEST(DecomposeSvdLlm, FewerTokensThanChannels) {
  expect_robust_svdllm(decaying_matrix(16, 40, 0.5, 7), calibration_inputs(12, 40, 8), 14);
}

TEST(DecomposeSvdLlm, DeadInputChannel) {
  at::Tensor X = calibration_inputs(100, 20, 9);
  X.select(1, 5).zero_();
  expect_robust_svdllm(decaying_matrix(16, 20, 0.5, 10), X, 10);
}

TEST(DecomposeSvdLlm, AllZeroGramGivesPlainSvd) {
  const at::Tensor W = decaying_matrix(10, 12, 0.5, 11);
  const LinearStats stats = stats_of(at::zeros({5, 12}, at::kFloat));
  const Factors llm = run("svdllm", W, &stats, 4), svd = run("svd", W, nullptr, 4);
  EXPECT_TRUE(at::allclose(approx(llm, 4), approx(svd, 4), 1e-4, 1e-5));
}

TEST(DecomposeRsvd, CloseToSvdAndDeterministic) {
  const at::Tensor W = decaying_matrix(300, 200, 1.0, 12);
  const int64_t k = 30;
  const Factors svd = run("svd", W, nullptr, k);
  const Factors a = run("rsvd", W, nullptr, k), b = run("rsvd:seed=0", W, nullptr, k),
                c = run("rsvd:seed=1", W, nullptr, k);
  for (int64_t r : {5, 15, 30}) {
    const double e_svd = std::sqrt(frob_sq(W.to(at::kDouble) - approx(svd, r)));
    const double e_rsvd = std::sqrt(frob_sq(W.to(at::kDouble) - approx(a, r)));
    EXPECT_LE(e_rsvd, e_svd * 1.01) << "rank " << r;
    expect_rel_near(e_rsvd * e_rsvd, a.tail_error[r], 1e-3);
  }
  EXPECT_TRUE(at::equal(a.A, b.A) && at::equal(a.B, b.B));
  EXPECT_FALSE(at::equal(a.A, c.A));
}

// Columns (dim 1) or rows (dim 0) that the approximation reproduces exactly.
std::set<int64_t> interpolated(const at::Tensor& W, const at::Tensor& W_hat, int64_t dim) {
  const at::Tensor w = W.to(at::kDouble);
  const at::Tensor gap = at::linalg_vector_norm(w - W_hat, 2, {1 - dim});
  const at::Tensor size = at::linalg_vector_norm(w, 2, {1 - dim});
  std::set<int64_t> out;
  for (int64_t i = 0; i < gap.numel(); ++i)
    if (gap[i].item<double>() <= 1e-4 * size[i].item<double>()) out.insert(i);
  return out;
}

TEST(DecomposeCur, ExactWhenRankIsLow) {
  const at::Tensor W = at::matmul(gaussian({30, 5}, 13), gaussian({5, 25}, 14)).to(at::kFloat);
  const LinearStats stats = stats_of(calibration_inputs(50, 25, 31));
  for (const char* spec : {"cur", "cur:select=leverage", "cur:weight=act", "cur:weight=none", "cur:core=optimal",
                           "cur:core=optimal,select=leverage", "cur:core=cross", "cur:select=leverage,core=cross"}) {
    const Factors f = run(spec, W, &stats, 8);
    ASSERT_TRUE(finite(f));
    for (int64_t r = 5; r <= 8; ++r)
      EXPECT_LT(std::sqrt(frob_sq(W.to(at::kDouble) - approx(f, r)) / frob_sq(W)), 1e-4) << spec << " rank " << r;
  }
}

TEST(DecomposeCur, ActivationWeightedSelection) {
  const at::Tensor W = at::matmul(gaussian({30, 5}, 28), gaussian({5, 25}, 29)).to(at::kFloat);
  const LinearStats stats = stats_of(calibration_inputs(50, 25, 30));
  EXPECT_TRUE(make_decomposer("cur:weight=act")->needs_stats());
  const Factors f = run("cur:core=optimal,weight=act", W, &stats, 6);
  EXPECT_LT(std::sqrt(frob_sq(W.to(at::kDouble) - approx(f, 5)) / frob_sq(W)), 1e-4);
}

// Columns of W (dim 1) or rows (dim 0) lying in the column (row) space of M of rank r.
std::set<int64_t> inside_span(const at::Tensor& W, const at::Tensor& M, int64_t r, int64_t dim) {
  const auto [U, S, Vh] = at::linalg_svd(M, false);
  const at::Tensor basis = dim == 1 ? U.narrow(1, 0, r) : Vh.narrow(0, 0, r).t();
  const at::Tensor w = dim == 1 ? W.to(at::kDouble) : W.to(at::kDouble).t();
  return interpolated(w, at::matmul(basis, at::matmul(basis.t(), w)), 1);
}

TEST(DecomposeCur, OptimalCorePrefixesAreNestedColumnCurs) {
  const at::Tensor W = decaying_matrix(30, 25, 0.5, 15);
  const int64_t k = 10;
  const Factors f = run("cur:core=optimal", W, nullptr, k);
  EXPECT_EQ(inside_span(W, approx(f, k), k, 0).size(), static_cast<size_t>(k));  // R: k actual rows
  std::set<int64_t> prev;
  for (int64_t r = 1; r <= k; ++r) {
    const at::Tensor W_hat = approx(f, r);
    const auto cols = inside_span(W, W_hat, r, 1);  // C_r: r actual columns span the prefix
    EXPECT_EQ(cols.size(), static_cast<size_t>(r)) << "rank " << r;
    EXPECT_TRUE(std::includes(cols.begin(), cols.end(), prev.begin(), prev.end()));
    // Optimal core for those columns and the k rows: W_hat = P_{C_r}·(P_C·W·P_R) = P_{C_r}·W_hat_k.
    const at::Tensor Q = std::get<0>(at::linalg_qr(W.to(at::kDouble).index_select(1, at::tensor(std::vector<int64_t>(cols.begin(), cols.end()), at::kLong))));
    EXPECT_TRUE(at::allclose(W_hat, at::matmul(Q, at::matmul(Q.t(), approx(f, k))), 1e-4, 1e-5));
    expect_rel_near(f.tail_error[r], frob_sq(W.to(at::kDouble) - W_hat), 1e-3);
    prev = cols;
  }
}

// Default CUR (core=rows, weight=gram): every prefix is Ŵ_r = W·G·R_rᵀ(R_r·G·R_rᵀ)⁻¹·R_r for r
// actual rows R_r of W (nested), tail_error is its exact output error, and it never beats the
// optimal rank-r output error (svdllm).
TEST(DecomposeCur, RowsCorePrefixesAreDataOptimalRowSkeletons) {
  const at::Tensor W = decaying_matrix(30, 25, 0.5, 15);
  const at::Tensor X = calibration_inputs(60, 25, 32);
  const LinearStats stats = stats_of(X);
  const at::Tensor G = stats.gram, Wd = W.to(at::kDouble);
  const int64_t k = 10;
  const Factors f = run("cur", W, &stats, k);
  EXPECT_TRUE(make_decomposer("cur")->needs_stats());
  EXPECT_EQ(f.metric, "output_sq");
  const Factors llm = run("svdllm", W, &stats, k);
  std::set<int64_t> prev;
  for (int64_t r = 1; r <= k; ++r) {
    const at::Tensor W_hat = approx(f, r);
    const auto rows = inside_span(W, W_hat, r, 0);  // R_r: r actual rows span the prefix
    ASSERT_EQ(rows.size(), static_cast<size_t>(r)) << "rank " << r;
    EXPECT_TRUE(std::includes(rows.begin(), rows.end(), prev.begin(), prev.end()));
    const at::Tensor R = Wd.index_select(0, at::tensor(std::vector<int64_t>(rows.begin(), rows.end()), at::kLong));
    const at::Tensor RG = at::matmul(R, G);
    const at::Tensor expected = at::matmul(at::matmul(at::matmul(Wd, RG.t()), at::linalg_inv(at::matmul(RG, R.t()))), R);
    EXPECT_TRUE(at::allclose(W_hat, expected, 1e-3, 1e-4)) << "rank " << r;
    const double err = output_sq(W, W_hat, X);
    expect_rel_near(f.tail_error[r], err, 1e-3);
    EXPECT_GE(err, output_sq(W, approx(llm, r), X) * (1 - 1e-6)) << "rank " << r;
    prev = rows;
  }
}

TEST(DecomposeCur, CrossCorePrefixesInterpolateRColumnsAndRows) {
  const at::Tensor W = decaying_matrix(30, 25, 0.5, 15);
  const Factors f = run("cur:core=cross", W, nullptr, 10);
  std::set<int64_t> prev_cols, prev_rows;
  for (int64_t r = 1; r <= 10; ++r) {
    const at::Tensor W_hat = approx(f, r);
    const auto cols = interpolated(W, W_hat, 1), rows = interpolated(W, W_hat, 0);
    EXPECT_EQ(cols.size(), static_cast<size_t>(r)) << "rank " << r;
    EXPECT_EQ(rows.size(), static_cast<size_t>(r)) << "rank " << r;
    EXPECT_TRUE(std::includes(cols.begin(), cols.end(), prev_cols.begin(), prev_cols.end()));
    EXPECT_TRUE(std::includes(rows.begin(), rows.end(), prev_rows.begin(), prev_rows.end()));
    expect_rel_near(f.tail_error[r], frob_sq(W.to(at::kDouble) - W_hat), 1e-3);
    prev_cols = cols;
    prev_rows = rows;
  }
}

TEST(DecomposeNmf, NonNegativeMonotoneAndBetterThanInit) {
  const at::Tensor W = (gaussian({30, 20}, 16) + 0.5).to(at::kFloat);
  const Factors f = run("nmf:iters=300,tol=1e-6", W, nullptr, 6);
  EXPECT_GE(f.B.min().item<float>(), 0.0f);
  ASSERT_GE(f.loss_history.size(), 2u);
  for (size_t i = 1; i < f.loss_history.size(); ++i) EXPECT_LE(f.loss_history[i], f.loss_history[i - 1]);
  const double err = frob_sq(W.to(at::kDouble) - approx(f, 6));
  EXPECT_LT(err, f.loss_history.front());
  expect_rel_near(err, f.loss_history.back(), 1e-4);
  expect_rel_near(err, f.tail_error[6], 1e-4);
  // Ordered by energy ‖F_i‖·‖G_i‖; non-orthogonal components make prefix errors non-monotone
  // in general, but every prefix error is reported exactly.
  for (int64_t r : {1, 3, 5}) expect_rel_near(f.tail_error[r], frob_sq(W.to(at::kDouble) - approx(f, r)), 1e-4);
}

// Σⱼ Jⱼ²‖(W−Ŵ)₍:,ⱼ₎‖², Jⱼ² = Σᵢ fisherᵢⱼ: FWSVD's objective (the paper's rows are the input
// channels, our columns).
double input_weighted_sq(const at::Tensor& W, const at::Tensor& W_hat, const at::Tensor& fisher) {
  const at::Tensor col_weight = fisher.to(at::kDouble).sum(0);
  return ((W.to(at::kDouble) - W_hat).square().sum(0) * col_weight).sum().item<double>();
}

TEST(DecomposeFwsvd, UniformFisherIsSvdAndWeightedErrorIsOptimal) {
  const at::Tensor W = decaying_matrix(20, 16, 0.5, 17);
  LinearStats stats;
  stats.fisher = at::full({20, 16}, 0.3f);
  const Factors svd = run("svd", W, nullptr, 6);
  EXPECT_TRUE(at::allclose(approx(run("fwsvd", W, &stats, 6), 6), approx(svd, 6), 1e-4, 1e-5));

  stats.fisher = at::exp(3.0 * gaussian({1, 16}, 18)).expand({20, 16}).to(at::kFloat).contiguous() *
                 at::rand({20, 16}, at::detail::createCPUGenerator(19), at::kFloat);
  const Factors fw = run("fwsvd", W, &stats, 6);
  EXPECT_EQ(fw.metric, "fisher_input_weighted_sq");
  // Independent closed form: truncate diag-weighted W·diag(J), unweight (textbook, explicit J⁻¹).
  const at::Tensor J = stats.fisher.to(at::kDouble).sum(0).sqrt();
  const auto [U, S, Vh] = at::linalg_svd(W.to(at::kDouble) * J.unsqueeze(0), false);
  for (int64_t r = 1; r <= 6; ++r) {
    const double err = input_weighted_sq(W, approx(fw, r), stats.fisher);
    EXPECT_LE(err, input_weighted_sq(W, approx(svd, r), stats.fisher) * (1 + 1e-6));
    expect_rel_near(err, fw.tail_error[r], 1e-3);
    const at::Tensor textbook = at::matmul(U.narrow(1, 0, r) * S.narrow(0, 0, r).unsqueeze(0), Vh.narrow(0, 0, r)) / J.unsqueeze(0);
    EXPECT_TRUE(at::allclose(approx(fw, r), textbook, 1e-4, 1e-5)) << "rank " << r;
  }
}

TEST(DecomposeSelection, ImportancePicksTheComponentsTheDataExcites) {
  // W's large singular directions are input channels 0,1; the data lives on channels 4,5.
  const at::Tensor W = at::diag(at::tensor({10.0, 8.0, 3.0, 2.0, 1.0, 0.5}, at::kDouble)).to(at::kFloat);
  at::Tensor X = gaussian({200, 6}, 20);
  X *= at::tensor({0.01, 0.01, 1.0, 1.0, 30.0, 30.0}, at::kDouble).unsqueeze(0);
  const LinearStats stats = stats_of(X.to(at::kFloat));
  const Factors f = run("svd", W, nullptr, 6);
  const auto top = select_components(f, 2, Selection::top, &stats);
  const auto imp = select_components(f, 2, Selection::importance, &stats);
  EXPECT_EQ(top, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(std::set<int64_t>(imp.begin(), imp.end()), (std::set<int64_t>{4, 5}));
  const auto energy_of = [&](const std::vector<int64_t>& idx) {
    const Factors s = slice(f, idx);
    return frob_sq(at::matmul(X, at::matmul(s.A, s.B).to(at::kDouble).t()));
  };
  EXPECT_GT(energy_of(imp), 10 * energy_of(top));
  // The score is the exact output energy of a single component.
  const std::vector<double> score = component_output_energy(f, stats);
  for (int64_t i = 0; i < 6; ++i) expect_rel_near(score[i], energy_of({i}), 1e-4);
}

TEST(DecomposeSelection, SliceKeepsTailErrorOnlyForPrefixes) {
  const Factors f = run("svd", decaying_matrix(10, 8, 0.5, 21), nullptr, 5);
  const Factors prefix = slice(f, {0, 1, 2});
  EXPECT_EQ(prefix.A.size(1), 3);
  EXPECT_EQ(prefix.tail_error, std::vector<double>(f.tail_error.begin(), f.tail_error.begin() + 4));
  EXPECT_TRUE(slice(f, {2, 0}).tail_error.empty());
  EXPECT_THROW(slice(f, {5}), Error);
  EXPECT_THROW(select_components(f, 6, Selection::top, nullptr), Error);
  EXPECT_THROW(select_components(f, 2, Selection::importance, nullptr), Error);
  EXPECT_EQ(parse_selection("importance"), Selection::importance);
  EXPECT_THROW(parse_selection("best"), Error);
}

TEST(DecomposeRegistry, SpecsAreCanonicalAndRoundTrip) {
  EXPECT_EQ(known_methods(), (std::vector<std::string>{"svd", "rsvd", "asvd", "svdllm", "fwsvd", "cur", "nmf"}));
  EXPECT_EQ(make_decomposer("rsvd")->spec(), "rsvd:oversample=10,iters=2,seed=0");
  EXPECT_EQ(make_decomposer("asvd")->spec(), "asvd:alpha=0.5");
  EXPECT_EQ(make_decomposer("cur")->spec(), "cur:select=deim,core=rows,weight=gram");
  EXPECT_EQ(make_decomposer("cur:core=optimal")->spec(), "cur:select=deim,core=optimal,weight=none");
  EXPECT_THROW(make_decomposer("cur:core=cross,weight=gram"), Error);
  EXPECT_EQ(make_decomposer("nmf:tol=1e-4")->spec(), "nmf:iters=200,tol=0.0001");
  EXPECT_EQ(make_decomposer(" rsvd: iters = 3 ")->spec(), "rsvd:oversample=10,iters=3,seed=0");
  for (const auto& m : known_methods()) {
    const auto d = make_decomposer(m);
    EXPECT_EQ(d->name(), m);
    EXPECT_EQ(make_decomposer(d->spec())->spec(), d->spec());
  }
  EXPECT_TRUE(make_decomposer("svdllm")->needs_stats());
  EXPECT_TRUE(make_decomposer("fwsvd")->needs_fisher());
  EXPECT_FALSE(make_decomposer("svd")->needs_stats());
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(DecomposeBadInput, SpecsAndRanks) {
  EXPECT_NE(error_of([] { make_decomposer("pca"); }).find("svdllm"), std::string::npos);
  EXPECT_NE(error_of([] { make_decomposer("rsvd:power=2"); }).find("oversample"), std::string::npos);
  for (const char* bad : {"", "rsvd:", "rsvd:iters", "rsvd:iters=-1", "rsvd:iters=2,iters=3",
                          "asvd:alpha=abc", "asvd:alpha=nan", "cur:select=random", "nmf:tol=2", "svd:x=1"})
    EXPECT_THROW(make_decomposer(bad), Error) << bad;
  const at::Tensor W = decaying_matrix(8, 6, 0.5, 22);
  EXPECT_THROW(run("svd", W, nullptr, 7), Error);
  EXPECT_THROW(run("svd", W, nullptr, 0), Error);
  EXPECT_THROW(run("svd", W.flatten(), nullptr, 1), Error);
  EXPECT_THROW(run("svd", at::ones({4, 4}, at::kLong), nullptr, 1), Error);
}

TEST(DecomposeBadInput, NonFiniteWeightsAndStats) {
  at::Tensor W = decaying_matrix(8, 6, 0.5, 23);
  const LinearStats good = stats_of(calibration_inputs(20, 6, 24));
  at::Tensor W_nan = W.clone();
  W_nan[2][3] = NAN;
  for (const auto& m : known_methods()) EXPECT_THROW(run(m, W_nan, &good, 2), Error) << m;
  LinearStats bad = good;
  bad.gram = good.gram.clone();
  bad.gram[1][1] = INFINITY;
  EXPECT_THROW(run("svdllm", W, &bad, 2), Error);
  bad = good;
  bad.abs_mean = good.abs_mean.clone();
  bad.abs_mean[0] = NAN;
  EXPECT_THROW(run("asvd", W, &bad, 2), Error);
  bad = good;
  bad.fisher = at::ones({8, 6}, at::kFloat);
  bad.fisher[0][0] = NAN;
  EXPECT_THROW(run("fwsvd", W, &bad, 2), Error);
  bad = good;
  bad.gram = at::eye(5, at::kDouble);
  EXPECT_THROW(run("svdllm", W, &bad, 2), Error);
  StatsAccumulator acc(6);
  EXPECT_THROW(acc.add(at::full({2, 6}, NAN)), Error);
  EXPECT_THROW(acc.add(at::ones({2, 5})), Error);
}

TEST(DecomposeBadInput, MissingStats) {
  const at::Tensor W = decaying_matrix(8, 6, 0.5, 25);
  for (const char* spec : {"asvd", "svdllm", "fwsvd", "cur", "cur:weight=act"})
    EXPECT_THROW(run(spec, W, nullptr, 2), Error) << spec;
  const LinearStats no_fisher = stats_of(calibration_inputs(20, 6, 26));
  EXPECT_NE(error_of([&] { run("fwsvd", W, &no_fisher, 2); }).find("fisher"), std::string::npos);
  EXPECT_NE(error_of([&] { run("asvd", W, nullptr, 2); }).find("asvd:alpha=0.5"), std::string::npos);
}

TEST(DecomposeStats, AccumulatorStreamsGramAndAbsMean) {
  const at::Tensor X = calibration_inputs(30, 5, 27);
  StatsAccumulator acc(5);
  acc.add(X.narrow(0, 0, 10).reshape({2, 5, 5}));
  acc.add(X.narrow(0, 10, 20));
  acc.add_weight_grad(at::ones({3, 5}));
  acc.add_weight_grad(at::full({3, 5}, 2.0f));
  const LinearStats s = acc.finish();
  EXPECT_EQ(s.tokens, 30);
  const at::Tensor x = X.to(at::kDouble);
  EXPECT_TRUE(at::allclose(s.gram, at::matmul(x.t(), x), 1e-10, 1e-10));
  EXPECT_TRUE(at::allclose(s.abs_mean, X.abs().mean(0), 1e-6, 1e-7));
  EXPECT_TRUE(at::allclose(s.fisher, at::full({3, 5}, 5.0f)));
  EXPECT_NO_THROW(validate_stats(s, 3, 5, "x"));
}

// Independent numpy reference (see tests/reference/decompose_ref.py).
TEST(DecomposeReference, MatchesNumpy) {
  std::ifstream in(std::string(RANKRL_SOURCE_DIR) + "/tests/expected/decompose_ref.json");
  ASSERT_TRUE(in.good());
  const nlohmann::json ref = nlohmann::json::parse(in);
  const auto matrix = [&](const char* key) {
    const auto rows = ref[key].get<std::vector<std::vector<double>>>();
    at::Tensor t = at::empty({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())}, at::kDouble);
    for (size_t i = 0; i < rows.size(); ++i) t[i] = at::tensor(rows[i], at::kDouble);
    return t;
  };
  const at::Tensor W = matrix("W").to(at::kFloat), X = matrix("X").to(at::kFloat);
  const LinearStats stats = stats_of(X);
  EXPECT_TRUE(at::allclose(stats.gram, matrix("gram"), 1e-12, 1e-9));
  for (const auto& [rank_text, methods] : ref["errors"].items()) {
    const int64_t r = std::stoll(rank_text);
    for (const auto& [method, errors] : methods.items()) {
      const at::Tensor W_hat = approx(run(method, W, &stats, r), r);
      expect_rel_near(frob_sq(W.to(at::kDouble) - W_hat), errors["frobenius_sq"].get<double>(), 1e-4);
      expect_rel_near(output_sq(W, W_hat, X), errors["output_sq"].get<double>(), 1e-4);
    }
  }
}

}  // namespace
}  // namespace rankrl
