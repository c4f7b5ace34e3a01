// Percentile bootstrap intervals against closed forms: identical systems give exactly 0, a
// constant shift gives exactly the shift, large samples give the normal interval ±1.96·sd/√n, the
// resamples are uniform and the same for every call, and pairing narrows correlated comparisons.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "eval/bootstrap.h"

namespace rankrl {
namespace {

// n values from N(mean, sd²) by Box–Muller on a fixed engine (the test's own data, not the
// bootstrap's generator).
std::vector<double> normal_sample(size_t n, double mean, double sd, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto u = [&] { return (double(rng() >> 11) + 0.5) / 9007199254740992.0; };
  std::vector<double> x;
  while (x.size() < n) {
    double r = std::sqrt(-2 * std::log(u())), t = 2 * M_PI * u();
    x.push_back(mean + sd * r * std::cos(t));
    if (x.size() < n) x.push_back(mean + sd * r * std::sin(t));
  }
  return x;
}

double sample_sd(const std::vector<double>& x) {
  double m = 0, q = 0;
  for (double v : x) m += v;
  m /= double(x.size());
  for (double v : x) q += (v - m) * (v - m);
  return std::sqrt(q / double(x.size()));  // plug-in (1/n), what the bootstrap resamples
}

TEST(Bootstrap, QuantileInterpolatesBetweenOrderStatisticsLikeNumpy) {
  // numpy.percentile([4, 1, 3, 2], [2.5, 50, 97.5]) = [1.075, 2.5, 3.925]
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2}, 0.025), 1.075);
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2}, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2}, 0.975), 3.925);
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2}, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2}, 1.0), 4.0);
  EXPECT_DOUBLE_EQ(quantile({7}, 0.3), 7.0);
  EXPECT_TRUE(std::isnan(quantile({}, 0.5)));
}

TEST(Bootstrap, IdenticalSystemsGiveExactlyZero) {
  std::vector<double> a = normal_sample(200, -12.0, 9.0, 1);
  Interval d = Bootstrap(5).paired_difference(a, a);
  EXPECT_EQ(d.estimate, 0.0);
  EXPECT_EQ(d.lo, 0.0);
  EXPECT_EQ(d.hi, 0.0);
  EXPECT_STREQ(verdict(d), "no significant difference");
}

TEST(Bootstrap, ConstantShiftGivesTheShiftExactly) {
  // Quarters and an 8.25 shift are exact in binary, so every difference and mean is exactly 8.25.
  std::vector<double> b, a;
  for (int i = 0; i < 150; ++i) b.push_back(0.25 * (i % 37) - 4.0), a.push_back(b.back() + 8.25);
  Interval d = Bootstrap(3).paired_difference(a, b);
  EXPECT_EQ(d.estimate, 8.25);
  EXPECT_EQ(d.lo, 8.25);
  EXPECT_EQ(d.hi, 8.25);
  EXPECT_STREQ(verdict(d), "better");
  Interval r = Bootstrap(3).paired_difference(b, a);
  EXPECT_EQ(r.lo, -8.25);
  EXPECT_STREQ(verdict(r), "worse");
}

TEST(Bootstrap, LargeSampleGivesTheNormalIntervalOfTheMean) {
  // n = 4000 from N(1, 2²): the sample mean is ≈ normal, so the 95% interval is mean ± 1.96·sd/√n.
  // 20,000 resamples keep the end points' Monte Carlo error near 1% of the half-width; a wrong
  // percentile (90%: 1.645) or a wrong scale (1/√(n−1) vs √n, 1.96·sd) would be far outside 3%.
  std::vector<double> x = normal_sample(4000, 1.0, 2.0, 11);
  Interval i = Bootstrap(2, 20000).mean(x);
  const double half = 1.96 * sample_sd(x) / std::sqrt(4000.0);
  double m = 0;
  for (double v : x) m += v;
  m /= 4000;
  EXPECT_DOUBLE_EQ(i.estimate, m);
  EXPECT_NEAR((i.hi - i.lo) / 2, half, 0.03 * half);
  EXPECT_NEAR((i.hi + i.lo) / 2, m, 0.05 * half);
}

TEST(Bootstrap, AccuracyIntervalIsTheBinomialOne) {
  // 300 of 1000 right: 0.3 ± 1.96·√(0.3·0.7/1000) = ±0.0284 (Wald, accurate at this n).
  std::vector<double> x(1000, 0.0);
  for (size_t i = 0; i < x.size(); i += 10)
    for (size_t k = 0; k < 3; ++k) x[i + k] = 1.0;
  Interval i = Bootstrap(9).mean(x);
  const double half = 1.96 * std::sqrt(0.3 * 0.7 / 1000);
  EXPECT_DOUBLE_EQ(i.estimate, 0.3);
  EXPECT_NEAR((i.hi - i.lo) / 2, half, 0.08 * half);  // B = 2000: end points within ~4% each
  EXPECT_NEAR(i.lo, 0.3 - half, 0.003);
  EXPECT_NEAR(i.hi, 0.3 + half, 0.003);
}

TEST(Bootstrap, ResampledIndicesAreUniform) {
  // Two items {0, 1}: a resample mean is 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4. Over B =
  // 20,000 resamples each frequency is within 4.5 standard errors (≤ 0.016) of its probability.
  std::vector<double> means = Bootstrap(4, 20000).resample_means({0.0, 1.0});
  ASSERT_EQ(means.size(), 20000u);
  double f0 = 0, fh = 0, f1 = 0;
  for (double m : means) (m == 0.0 ? f0 : m == 0.5 ? fh : f1) += 1.0 / 20000;
  EXPECT_NEAR(f0, 0.25, 0.014);
  EXPECT_NEAR(fh, 0.50, 0.016);
  EXPECT_NEAR(f1, 0.25, 0.014);
  // One-hot on item 7 of 10: the mean of the resample means is 1/10 (each draw hits it w.p. 1/10).
  std::vector<double> hot(10, 0.0);
  hot[7] = 1.0;
  double avg = 0;
  for (double m : Bootstrap(4, 20000).resample_means(hot)) avg += m / 20000;
  EXPECT_NEAR(avg, 0.1, 4.5 * std::sqrt(0.1 * 0.9 / 10 / 20000));
}

TEST(Bootstrap, EveryCallUsesTheSameResamplesForTheSameSeed) {
  std::vector<double> x = normal_sample(50, 0.0, 1.0, 21), y = normal_sample(50, 3.0, 2.0, 22), xy(50);
  for (size_t i = 0; i < 50; ++i) xy[i] = x[i] + y[i];
  const Bootstrap boot(17);
  // Same index sets ⇒ resample means are linear: mean*(x + y) = mean*(x) + mean*(y), resample by resample.
  std::vector<double> mx = boot.resample_means(x), my = boot.resample_means(y), mxy = boot.resample_means(xy);
  for (size_t b = 0; b < mxy.size(); ++b) ASSERT_NEAR(mxy[b], mx[b] + my[b], 1e-12) << b;
  // Same seed, same interval (a fresh object too); another seed, other end points.
  Interval a = boot.paired_difference(x, y), b = Bootstrap(17).paired_difference(x, y), c = Bootstrap(18).paired_difference(x, y);
  EXPECT_EQ(a.lo, b.lo);
  EXPECT_EQ(a.hi, b.hi);
  EXPECT_EQ(a.estimate, c.estimate);
  EXPECT_NE(a.lo, c.lo);
}

TEST(Bootstrap, PairingNarrowsTheIntervalOfCorrelatedSystems) {
  // Item difficulty (sd 5) moves both systems; they differ by 0.3 plus item noise of sd 0.5.
  std::vector<double> difficulty = normal_sample(300, -10.0, 5.0, 31), noise = normal_sample(300, 0.3, 0.5, 32);
  std::vector<double> a = difficulty, b(300);
  for (size_t i = 0; i < 300; ++i) b[i] = difficulty[i] - noise[i];
  Interval paired = Bootstrap(1).paired_difference(a, b);
  // Unpaired: each system resampled on its own (independent seeds), then the difference of means.
  std::vector<double> ma = Bootstrap(100).resample_means(a), mb = Bootstrap(200).resample_means(b), diff(ma.size());
  for (size_t k = 0; k < ma.size(); ++k) diff[k] = ma[k] - mb[k];
  const double unpaired_width = quantile(diff, 0.975) - quantile(diff, 0.025);
  // Widths ≈ 2·1.96·sd/√n: paired sd 0.5, unpaired √2·5 ≈ 7.1, a ratio of ≈ 0.07.
  EXPECT_LT(paired.hi - paired.lo, 0.1 * unpaired_width);
  EXPECT_NEAR(paired.hi - paired.lo, 2 * 1.96 * 0.5 / std::sqrt(300.0), 0.2 * 2 * 1.96 * 0.5 / std::sqrt(300.0));
  EXPECT_STREQ(verdict(paired), "better");  // 0.3 ± 0.06
  EXPECT_LT(quantile(diff, 0.025), 0.0);     // unpaired, the same 0.3 would not be significant
}

TEST(Bootstrap, DegenerateSamples) {
  Interval empty = Bootstrap().mean({});
  EXPECT_TRUE(std::isnan(empty.estimate) && std::isnan(empty.lo) && std::isnan(empty.hi));
  Interval one = Bootstrap().mean({-2.5});
  EXPECT_EQ(one.estimate, -2.5);
  EXPECT_EQ(one.lo, -2.5);
  EXPECT_EQ(one.hi, -2.5);
  EXPECT_STREQ(verdict({0.1, 0.0, 0.2}), "no significant difference");  // touching 0 is not significant
  EXPECT_THROW(Bootstrap(0, 0), std::exception);
  EXPECT_THROW(Bootstrap().paired_difference({1.0}, {1.0, 2.0}), std::exception);
}

}  // namespace
}  // namespace rankrl
