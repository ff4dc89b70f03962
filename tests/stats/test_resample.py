import numpy as np
import pytest
from scipy import stats as sps

from brainres.stats.kernels import weighted_spearman
from brainres.stats.resample import (
    ResamplingError,
    corrected_variance,
    crossed_bootstrap,
    draw_counts,
    permutation_test,
)


def test_counts_are_multinomial_and_independent_of_batching():
    counts = draw_counts(12345, 7, 200_000)
    assert counts.dtype == np.int32 and (counts.sum(axis=1) == 7).all()
    # Each count is Binomial(7, 1/7): mean 1, variance 6/7; counts in a row
    # are negatively correlated (-1/6), as in a multinomial draw.
    assert np.abs(counts.mean(axis=0) - 1).max() < 0.01
    assert np.abs(counts.var(axis=0) - 6 / 7).max() < 0.015
    assert np.corrcoef(counts[:, 0], counts[:, 1])[0, 1] == pytest.approx(-1 / 6, abs=0.01)
    # Every index is drawn equally often overall (chi-square against uniform).
    chi2 = sps.chisquare(counts.sum(axis=0)).pvalue
    assert chi2 > 1e-4
    # A resample's draws depend on its row only, not on the batch it is in.
    assert (draw_counts(12345, 7, 5, first_row=100) == counts[100:105]).all()
    assert not (draw_counts(12346, 7, 5, first_row=100) == counts[100:105]).all()


def test_bootstrap_numbers_do_not_depend_on_batch_size_or_threads():
    import numba

    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(2, 120))
    statistic = lambda w: weighted_spearman(x, y, w["stimulus"])  # noqa: E731
    reference = crossed_bootstrap(statistic, {"stimulus": 120}, n_resamples=500, seed=3, keep_distribution=True)
    other = crossed_bootstrap(statistic, {"stimulus": 120}, n_resamples=500, seed=3, batch_size=7,
                              keep_distribution=True)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        single = crossed_bootstrap(statistic, {"stimulus": 120}, n_resamples=500, seed=3, keep_distribution=True)
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_array_equal(reference.distribution, other.distribution)
    np.testing.assert_array_equal(reference.distribution, single.distribution)


def _mean_statistic(values):
    return lambda weights: weights["stimulus"] @ values


@pytest.mark.parametrize("interval", ["percentile", "bca"])
def test_stimulus_bootstrap_matches_scipy_within_monte_carlo_error(interval):
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    y = 0.4 * x + rng.normal(size=300)
    ours = crossed_bootstrap(
        lambda w: weighted_spearman(x, y, w["stimulus"]), {"stimulus": 300}, n_resamples=20_000, seed=1,
        interval=interval,
    )
    theirs = sps.bootstrap(
        (x, y), lambda a, b, axis: weighted_spearman(a, b, np.ones_like(a)), paired=True, vectorized=True,
        n_resamples=20_000, method=interval, rng=np.random.default_rng(2),
    )
    assert ours.estimate == pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12)
    se = theirs.standard_error
    # Two independent 20k-resample runs: each tail quantile has MC SD ~0.02 SE.
    assert abs(ours.ci_low - theirs.confidence_interval.low) < 0.12 * se
    assert abs(ours.ci_high - theirs.confidence_interval.high) < 0.12 * se
    assert ours.extra["bootstrap_se"] == pytest.approx(se, rel=0.04)


def test_two_factor_formula_equals_rsatoolbox_dual_bootstrap():
    from rsatoolbox.util.inference_util import _dual_bootstrap

    rng = np.random.default_rng(3)
    for _ in range(20):
        v_a, v_b = rng.uniform(0.5, 1.0, size=2)
        v_ab = v_a + v_b + rng.uniform(0.0, 0.2)
        variances = {frozenset("a"): v_a, frozenset("b"): v_b, frozenset("ab"): v_ab}
        expected = _dual_bootstrap(np.array([v_ab, v_a, v_b]), n_rdm=8, n_pattern=40)
        assert corrected_variance(variances, {"a": 8, "b": 40}) == pytest.approx(float(expected))
        asymptotic = _dual_bootstrap(np.array([v_ab, v_a, v_b]))
        assert corrected_variance(variances, {"a": 8, "b": 40}, small_sample=False) == pytest.approx(float(asymptotic))


def test_corrected_two_factor_variance_of_a_mean_equals_the_anova_estimate():
    # For the grand mean of an additive crossed layout the unbiased sampling
    # variance is (MS_A + MS_B - MS_E) / (n_a n_b); the corrected bootstrap
    # variance must estimate it, whereas the plain crossed bootstrap overshoots.
    rng = np.random.default_rng(4)
    n_a, n_b = 12, 60
    y = rng.normal(size=(n_a, 1)) * 0.5 + rng.normal(size=(1, n_b)) * 1.0 + rng.normal(size=(n_a, n_b)) * 2.0
    row, col, grand = y.mean(axis=1, keepdims=True), y.mean(axis=0, keepdims=True), y.mean()
    ms_a = n_b * np.sum((row - grand) ** 2) / (n_a - 1)
    ms_b = n_a * np.sum((col - grand) ** 2) / (n_b - 1)
    ms_e = np.sum((y - row - col + grand) ** 2) / ((n_a - 1) * (n_b - 1))
    anova = (ms_a + ms_b - ms_e) / (n_a * n_b)

    def grand_mean(weights):
        return np.einsum("ba,ac,bc->b", weights["seed"], y, weights["stimulus"])

    result = crossed_bootstrap(grand_mean, {"seed": n_a, "stimulus": n_b}, n_resamples=40_000, seed=5,
                               interval="percentile")
    assert result.extra["bootstrap_se"] ** 2 == pytest.approx(anova, rel=0.05)
    assert result.extra["crossed_se"] ** 2 > 1.05 * anova
    assert result.resampled == ("seed", "stimulus")


def test_same_seed_same_numbers_and_generators_are_accepted():
    values = np.random.default_rng(6).normal(size=50)
    first = crossed_bootstrap(_mean_statistic(values), {"stimulus": 50}, n_resamples=500, seed=7,
                              keep_distribution=True)
    again = crossed_bootstrap(_mean_statistic(values), {"stimulus": 50}, n_resamples=500, seed=7,
                              keep_distribution=True, batch_size=37)
    other = crossed_bootstrap(_mean_statistic(values), {"stimulus": 50}, n_resamples=500, seed=8,
                              keep_distribution=True)
    same = crossed_bootstrap(_mean_statistic(values), {"stimulus": 50}, n_resamples=500, seed=7,
                             keep_distribution=True)
    np.testing.assert_array_equal(first.distribution, same.distribution)
    # Batching changes only floating-point summation order, not the draws.
    np.testing.assert_allclose(first.distribution, again.distribution, rtol=1e-12, atol=1e-15)
    assert not np.array_equal(first.distribution, other.distribution)
    from_generator = crossed_bootstrap(_mean_statistic(values), {"stimulus": 50}, n_resamples=500,
                                       seed=np.random.default_rng(7), keep_distribution=True)
    np.testing.assert_array_equal(first.distribution, from_generator.distribution)
    assert first.seed == 7 and from_generator.seed is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(seed=None), "seed is None"),
        (dict(seed=1, interval="basic"), "interval"),
        (dict(seed=1, resample=["subject"]), "resample must name"),
        (dict(seed=1, ci_level=95), "ci_level"),
    ],
)
def test_bad_requests_are_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(ResamplingError, match=message):
        crossed_bootstrap(_mean_statistic(np.arange(5.0)), {"stimulus": 5}, n_resamples=10, **kwargs)


def test_a_factor_with_one_unit_cannot_be_bootstrapped():
    with pytest.raises(ResamplingError, match="'seed' has 1 unit"):
        crossed_bootstrap(lambda w: w["seed"][:, 0], {"seed": 1}, n_resamples=10, seed=0)


def test_permutation_p_value_counts_the_null_distribution():
    rng = np.random.default_rng(9)
    x = rng.normal(size=30)
    y = 0.3 * x + rng.normal(size=30)

    def statistic(permutations):
        return np.array([np.corrcoef(x, y[p])[0, 1] for p in permutations])

    result = permutation_test(statistic, 30, n_permutations=999, seed=10, keep_distribution=True)
    extreme = np.sum(np.abs(result.distribution) >= abs(result.estimate) - 1e-12)
    assert result.p_value == pytest.approx((1 + extreme) / 1000)
    assert result.estimate == pytest.approx(np.corrcoef(x, y)[0, 1])
    again = permutation_test(statistic, 30, n_permutations=999, seed=10)
    assert again.p_value == result.p_value
    # The null is centred on zero and a scipy permutation test gives a similar p-value.
    scipy_p = sps.permutation_test((y,), lambda a: np.corrcoef(x, a)[0, 1], permutation_type="pairings",
                                   n_resamples=999, rng=np.random.default_rng(1)).pvalue
    assert abs(np.mean(result.distribution)) < 0.03
    assert abs(result.p_value - scipy_p) < 0.05


def test_bca_z0_counts_ties_as_scipy_does():
    # An integer-valued statistic ties the estimate in many resamples: scipy counts a tie as half below.
    from scipy.special import ndtri

    from brainres.stats.resample import bca_interval

    rng = np.random.default_rng(9)
    distribution = rng.integers(0, 5, size=2001).astype(float)
    estimate = 2.0
    jackknife = [rng.normal(size=30)]
    ours = bca_interval(distribution, estimate, jackknife)
    scipy_share = (np.sum(distribution < estimate) + np.sum(distribution <= estimate)) / (2 * distribution.size)
    strict_share = np.mean(distribution < estimate)
    assert scipy_share != strict_share
    # The interval follows from z0 = ndtri(scipy's share): recompute its ends by hand.
    from brainres.stats.resample import jackknife_acceleration

    z0, a = ndtri(scipy_share), jackknife_acceleration(jackknife)
    levels = [sps.norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))) for z in (sps.norm.ppf(0.025), sps.norm.ppf(0.975))]
    assert ours == pytest.approx(tuple(np.percentile(distribution, [100 * levels[0], 100 * levels[1]])))


def test_bias_shifted_percentile_reports_its_centre_and_accepts_the_old_name():
    rng = np.random.default_rng(10)
    x = rng.normal(size=50)
    statistic = lambda w: np.sqrt(np.maximum(w["stimulus"] @ x**2 - (w["stimulus"] @ x) ** 2, 0))  # noqa: E731
    new = crossed_bootstrap(statistic, {"stimulus": 50}, n_resamples=800, seed=2, interval="bias_shifted_percentile")
    old = crossed_bootstrap(statistic, {"stimulus": 50}, n_resamples=800, seed=2, interval="bias_corrected")
    assert new == old and new.interval == "bias_shifted_percentile"
    plug_in = float(np.std(x))
    assert new.extra["plug_in_estimate"] == pytest.approx(plug_in)
    assert new.estimate == pytest.approx(plug_in - new.extra["bootstrap_bias"])
    # centred on the reported estimate: the interval is the shifted percentile interval
    plain = crossed_bootstrap(statistic, {"stimulus": 50}, n_resamples=800, seed=2, interval="percentile")
    shift = -2 * new.extra["bootstrap_bias"]
    assert (new.ci_low, new.ci_high) == pytest.approx((plain.ci_low + shift, plain.ci_high + shift))


def test_bca_on_many_units_leaves_out_groups_with_the_delete_one_acceleration(monkeypatch):
    import brainres.stats.resample as resample_module

    values = np.random.default_rng(3).exponential(size=3000)  # skewed: the acceleration matters

    def mean(weights):
        return weights["stimulus"] @ values

    grouped = crossed_bootstrap(mean, {"stimulus": 3000}, n_resamples=2000, seed=1, interval="bca")
    monkeypatch.setattr(resample_module, "JACKKNIFE_GROUPS", 10**9)
    delete_one = crossed_bootstrap(mean, {"stimulus": 3000}, n_resamples=2000, seed=1, interval="bca")
    assert "1,000 groups of stimulus" in grouped.method and "groups" not in delete_one.method
    assert grouped.ci_low == pytest.approx(delete_one.ci_low, abs=2e-4)
    assert grouped.ci_high == pytest.approx(delete_one.ci_high, abs=2e-4)
