"""Seed summaries against scipy, and their coverage at the seed counts labs run."""

import numpy as np
import pytest
from scipy import stats

from brainres.stats import seed_difference, seed_summary
from brainres.stats.seeds import SeedSummaryError


def test_t_interval_and_p_equal_scipy():
    values = np.array([0.81, 0.84, 0.79, 0.86, 0.83])
    result = seed_summary(values, statistic="accuracy", null=0.8)
    expected = stats.ttest_1samp(values, 0.8)
    interval = expected.confidence_interval(0.95)
    assert result.estimate == pytest.approx(values.mean())
    assert (result.ci_low, result.ci_high) == pytest.approx((interval.low, interval.high))
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.n == 5 and result.extra["n_unit"] == "seeds" and "training seeds" in result.extra["estimand"]
    assert np.isnan(seed_summary(values).p_value)  # no test unless a null is given


def test_paired_and_welch_differences_equal_scipy():
    a, b = np.array([0.9, 0.8, 0.85, 0.88]), np.array([0.7, 0.75, 0.7, 0.8])
    paired = seed_difference(a, b, statistic="accuracy")
    expected = stats.ttest_rel(a, b)
    assert paired.estimate == pytest.approx((a - b).mean()) and paired.p_value == pytest.approx(expected.pvalue)
    assert (paired.ci_low, paired.ci_high) == pytest.approx(tuple(expected.confidence_interval(0.95)))
    welch = seed_difference(a, b[:3], statistic="accuracy")
    expected = stats.ttest_ind(a, b[:3], equal_var=False)
    assert welch.interval == "welch_t" and welch.p_value == pytest.approx(expected.pvalue)


def test_non_finite_seeds_are_left_out_and_none_is_an_error():
    assert seed_summary([1.0, np.nan, 3.0]).n == 2
    with pytest.raises(SeedSummaryError, match="no finite value"):
        seed_summary([np.nan, np.inf], statistic="accuracy")
    single = seed_summary([0.5])
    assert single.n == 1 and np.isnan(single.ci_low)


@pytest.mark.parametrize("n_seeds", [3, 5, 10])
def test_t_interval_covers_the_seed_mean_at_small_designs(n_seeds):
    """2,000 simulated studies per design: coverage within Monte Carlo error of 95%."""
    rng = np.random.default_rng(n_seeds)
    truth = 0.8
    covered = [
        result.ci_low <= truth <= result.ci_high
        for result in (seed_summary(truth + 0.03 * rng.standard_normal(n_seeds)) for _ in range(2000))
    ]
    low, high = stats.binomtest(int(np.sum(covered)), len(covered)).proportion_ci(0.99)
    assert low <= 0.95 <= high


def test_percentile_bootstrap_is_available_and_narrower_at_three_seeds():
    values = [0.70, 0.74, 0.80]
    t = seed_summary(values)
    boot = seed_summary(values, interval="percentile", n_resamples=2000, seed=1)
    assert boot.resampled == ("seed",) and boot.n_resamples == 2000
    assert boot.ci_high - boot.ci_low < t.ci_high - t.ci_low  # why t is the default
