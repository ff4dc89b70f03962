import math

import numpy as np
import pytest

from brainres.stats.reliability import (
    ReliabilityInputError,
    correlation_ceiling,
    disattenuated_correlation,
    half_means,
    spearman_brown,
    split_half_distribution,
    split_half_reliability,
    split_halves,
)


def _subjects(rng, n_subjects, n_stimuli, noise_sd):
    """Per-stimulus signal (variance 1) plus subject noise: reliability is known."""
    signal = rng.normal(size=n_stimuli)
    return signal[None, :] + noise_sd * rng.normal(size=(n_subjects, n_stimuli))


def test_spearman_brown_steps_up_and_is_the_identity_at_one():
    assert spearman_brown(0.5) == pytest.approx(2 / 3)
    assert spearman_brown(1.0) == pytest.approx(1.0)
    assert spearman_brown(0.5, factor=1.0) == pytest.approx(0.5)


def test_few_units_use_every_distinct_split_once():
    masks, exhaustive = split_halves(6, n_splits=1000, seed=0)
    assert exhaustive and masks.shape == (math.comb(6, 3) // 2, 6)
    keys = {tuple(m) for m in masks} | {tuple(~m) for m in masks}
    assert len(keys) == math.comb(6, 3)
    masks, exhaustive = split_halves(20, n_splits=50, seed=0)
    assert not exhaustive and masks.shape == (50, 20) and (masks.sum(axis=1) == 10).all()


def test_half_means_ignore_missing_values():
    data = np.array([[1.0, np.nan], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    first, second = half_means(data, np.array([[True, True, False, False]]))
    np.testing.assert_allclose(first, [[2.0, 4.0]])
    np.testing.assert_allclose(second, [[6.0, 7.0]])


def test_reliability_recovers_the_known_value():
    # Mean of n subjects with noise variance s^2: reliability 1 / (1 + s^2 / n).
    rng = np.random.default_rng(0)
    n_subjects, noise_sd = 12, 2.0
    truth = 1 / (1 + noise_sd**2 / n_subjects)
    estimates = [
        split_half_reliability(_subjects(rng, n_subjects, 400, noise_sd), n_resamples=0, n_splits=200, seed=k).estimate
        for k in range(5)
    ]
    assert np.mean(estimates) == pytest.approx(truth, abs=0.03)


def test_reliability_interval_covers_the_estimate_and_is_reproducible():
    rng = np.random.default_rng(1)
    data = _subjects(rng, 10, 160, 2.0)
    data[0, :5] = np.nan
    first = split_half_reliability(data, n_resamples=500, seed=3, method="spearman")
    again = split_half_reliability(data, n_resamples=500, seed=3, method="spearman")
    assert first == again
    assert first.ci_low < first.estimate < first.ci_high
    assert first.extra["exhaustive_splits"] and first.extra["n_splits"] == 126
    assert first.resampled == ("stimulus",)
    spread = split_half_distribution(data, method="spearman", seed=3)
    assert np.nanmean(spread) == pytest.approx(first.estimate)


def test_disattenuated_correlation_recovers_the_true_correlation():
    rng = np.random.default_rng(2)
    n_stimuli, rho = 600, 0.6
    human_signal = rng.normal(size=n_stimuli)
    model_signal = rho * human_signal + math.sqrt(1 - rho**2) * rng.normal(size=n_stimuli)
    human = human_signal + 2.0 * rng.normal(size=(10, n_stimuli))
    model = model_signal + 1.0 * rng.normal(size=(4, n_stimuli))
    result = disattenuated_correlation(model, human, n_resamples=300, n_splits=200, seed=4)
    assert result.extra["raw_r"] < result.estimate
    assert result.estimate == pytest.approx(rho, abs=0.08)
    assert result.ci_low < rho < result.ci_high
    assert result.extra["attenuation"] == pytest.approx(
        correlation_ceiling(result.extra["reliability_human"], result.extra["reliability_model"])
    )


def test_too_few_units_are_refused():
    with pytest.raises(ReliabilityInputError, match="at least 2 units"):
        split_half_reliability(np.ones((1, 10)), seed=0)


@pytest.mark.needs_data
@pytest.mark.parametrize("dataset_id", ["geirhos2021-silhouette", "geirhos2021-edge"])
def test_split_half_reliability_of_mean_rt_on_real_data(load_real, subject_stimulus_rt, dataset_id):
    rt = subject_stimulus_rt(load_real(dataset_id))
    assert rt.shape == (10, 160)
    result = split_half_reliability(rt, n_resamples=2000, seed=0)
    print(f"\n{dataset_id}: split-half reliability of per-stimulus mean RT "
          f"{result.estimate:.3f} [{result.ci_low:.3f}, {result.ci_high:.3f}] (BCa 95%, 2000 stimulus resamples)")
    assert 0 < result.ci_low < result.estimate < result.ci_high < 1


def test_unequal_halves_are_stepped_up_by_their_sizes():
    from brainres.stats.reliability import step_up

    # Equal halves: Spearman-Brown.
    assert step_up(0.5, 5, 5, 10) == pytest.approx(spearman_brown(0.5))
    # Parallel units with single-unit reliability x: means of a and b units correlate sqrt(rel_a rel_b).
    x = 0.3
    rel = lambda k: k * x / (1 + (k - 1) * x)  # noqa: E731
    assert step_up(math.sqrt(rel(1) * rel(2)), 1, 2, 3) == pytest.approx(rel(3))
    assert step_up(-math.sqrt(rel(1) * rel(2)), 1, 2, 3) == pytest.approx(-rel(3))


def test_odd_unit_counts_recover_the_known_reliability():
    # 3 seeds split 1 vs 2: Spearman-Brown (as if equal halves) would understate the reliability.
    rng = np.random.default_rng(21)
    noise_sd = 1.0
    estimates = [split_half_reliability(_subjects(rng, 3, 400, noise_sd), n_resamples=0, seed=k).estimate
                 for k in range(40)]
    truth = 1 / (1 + noise_sd**2 / 3)
    assert np.mean(estimates) == pytest.approx(truth, abs=0.015)


def test_bootstrap_uses_random_splits_and_the_method_says_how_many():
    rng = np.random.default_rng(22)
    data = _subjects(rng, 10, 80, 1.5)
    result = split_half_reliability(data, n_resamples=200, bootstrap_splits=20, seed=3)
    assert "126 (all) splits" in result.method and result.extra["n_splits"] == 126
    from brainres.stats.reliability import _choose_splits

    chosen = _choose_splits(126, 20, np.random.default_rng(0))
    assert chosen.size == 20 and np.unique(chosen).size == 20 and chosen.max() > 19


def test_noise_corrected_correlation_stays_within_bounds():
    # Nearly pure noise with few units: the estimate and the interval stay in [-1, 1] (the estimand is bounded).
    rng = np.random.default_rng(23)
    model = 0.1 * rng.normal(size=40) + rng.normal(size=(3, 40))
    human = 0.1 * rng.normal(size=40) + rng.normal(size=(10, 40))
    for reliability in ("variance_components", "split_half"):
        result = disattenuated_correlation(model, human, n_resamples=300, seed=1, reliability=reliability)
        if result.extra.get("not_estimable"):  # a side with no stimulus variance beyond its noise: not defined
            assert np.isnan([result.estimate, result.ci_low, result.ci_high]).all()
            continue
        assert -1 <= result.ci_low <= result.estimate <= result.ci_high <= 1 or np.isnan(result.ci_low)
        assert -1 <= result.estimate <= 1
