import contextlib
import itertools

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
import xarray as xr
from scipy import stats as sps

from brainres.errors import StimulusMismatchError
from brainres.stats.correlate import (
    CorrelationInputError,
    bootstrap_correlation,
    correlate,
    correlate_over_seeds,
    correlation_statistic,
    dataarray_inputs,
    partial_correlation,
    permutation_correlation,
)
from brainres.stats.kernels import weighted_kendall, weighted_pearson, weighted_ranks, weighted_spearman
from brainres.stats.resample import draw_counts


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    x = rng.normal(size=80)
    y = 0.5 * x + rng.normal(size=80)
    x[::7] = x[1]  # real ties in the data
    return x, y


def test_weighted_kernels_equal_scipy_on_the_expanded_resample(pair):
    x, y = pair
    rng = np.random.default_rng(1)
    indices = rng.integers(0, x.size, size=(5, x.size))
    weights = np.stack([np.bincount(i, minlength=x.size) for i in indices]) / x.size
    spearman = weighted_spearman(x, y, weights)
    pearson = weighted_pearson(x, y, weights)
    kendall = weighted_kendall(x, y, weights)
    tau_a = weighted_kendall(x, y, weights * x.size, variant="a")
    for k, i in enumerate(indices):
        assert spearman[k] == pytest.approx(sps.spearmanr(x[i], y[i]).statistic, abs=1e-12)
        assert pearson[k] == pytest.approx(sps.pearsonr(x[i], y[i]).statistic, abs=1e-12)
        assert kendall[k] == pytest.approx(sps.kendalltau(x[i], y[i]).statistic, abs=1e-12)
        sign = np.sign(x[i][:, None] - x[i][None, :]) * np.sign(y[i][:, None] - y[i][None, :])
        assert tau_a[k] == pytest.approx(sign.sum() / (i.size * (i.size - 1)), abs=1e-12)
    # Per-row values (the seed-resampled side) give the same ranks as a shared vector.
    shared = weighted_ranks(x, weights)
    per_row = weighted_ranks(np.tile(x, (5, 1)), weights)
    np.testing.assert_allclose(shared, per_row, atol=1e-12)
    expanded = sps.rankdata(x[indices[0]])
    np.testing.assert_allclose(shared[0][indices[0]] * x.size + 0.5, expanded)


@pytest.mark.parametrize("method", ["pearson", "spearman", "kendall"])
def test_correlate_equals_pingouin(pair, method):
    x, y = pair
    ours = correlate(x, y, method=method)
    theirs = pg.corr(x, y, method=method)
    assert ours.estimate == pytest.approx(theirs["r"].iloc[0], abs=1e-12)
    assert ours.p_value == pytest.approx(theirs["p_val"].iloc[0], rel=1e-9)
    # pingouin rounds its interval to 2 decimals.
    np.testing.assert_allclose([ours.ci_low, ours.ci_high], theirs["CI95"].iloc[0], atol=0.005 + 1e-9)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_partial_correlation_equals_pingouin(pair, method):
    x, y = pair
    rng = np.random.default_rng(2)
    accuracy = 0.3 * x + rng.normal(size=x.size)
    other = rng.normal(size=x.size)
    ours = partial_correlation(x, y, np.column_stack([accuracy, other]), method=method)
    data = pd.DataFrame({"x": x, "y": y, "accuracy": accuracy, "other": other})
    theirs = pg.partial_corr(data, x="x", y="y", covar=["accuracy", "other"], method=method)
    assert ours.estimate == pytest.approx(theirs["r"].iloc[0], abs=1e-10)
    assert ours.p_value == pytest.approx(theirs["p_val"].iloc[0], rel=1e-7)
    # pingouin rounds its interval to 2 decimals.
    np.testing.assert_allclose([ours.ci_low, ours.ci_high], theirs["CI95"].iloc[0], atol=0.005 + 1e-9)


def test_missing_pairs_are_removed_and_counted(pair):
    x, y = pair
    y = y.copy()
    y[[0, 5]] = np.nan
    result = correlate(x, y, method="pearson")
    assert result.n == x.size - 2 and result.extra["n_removed"] == 2


def test_seed_aggregation_both_ways():
    rng = np.random.default_rng(3)
    human = rng.normal(size=60)
    model = human + rng.normal(size=(4, 60)) * 2
    of_mean, mean_of = correlate_over_seeds(model, human, method="spearman")
    assert of_mean.estimate == pytest.approx(sps.spearmanr(model.mean(axis=0), human).statistic)
    per_seed = [sps.spearmanr(row, human).statistic for row in model]
    assert mean_of.estimate == pytest.approx(np.mean(per_seed))
    # Averaging seeds first removes seed noise, so it correlates more strongly here.
    assert of_mean.estimate > mean_of.estimate


@pytest.mark.parametrize("aggregate", ["seed_mean", "mean_of_seeds"])
def test_bootstrap_statistic_equals_the_index_resampled_data(aggregate):
    rng = np.random.default_rng(4)
    model = rng.normal(size=(5, 40)) + np.linspace(0, 2, 40)
    human = np.linspace(0, 2, 40) + rng.normal(size=(6, 40))
    human[2, 3] = np.nan
    statistic, sizes = correlation_statistic(model, human, method="spearman", aggregate=aggregate)
    seeds, stimuli, subjects = (rng.integers(0, n, n) for n in (5, 40, 6))
    weights = {name: (np.bincount(idx, minlength=n) / n)[None, :]
               for name, idx, n in (("seed", seeds, 5), ("stimulus", stimuli, 40), ("subject", subjects, 6))}
    human_mean = np.nanmean(human[subjects][:, stimuli], axis=0)
    if aggregate == "seed_mean":
        expected = sps.spearmanr(model[seeds][:, stimuli].mean(axis=0), human_mean).statistic
    else:
        expected = np.mean([sps.spearmanr(model[s][stimuli], human_mean).statistic for s in seeds])
    assert statistic(weights)[0] == pytest.approx(expected, abs=1e-12)


def test_bootstrap_correlation_is_reproducible_and_records_the_design():
    rng = np.random.default_rng(5)
    model = rng.normal(size=(6, 120)) * 0.5 + np.linspace(0, 2, 120)
    human = np.linspace(0, 2, 120) + rng.normal(size=(5, 120)) * 0.5
    kwargs = dict(n_resamples=600, seed=11, keep_distribution=True)
    first = bootstrap_correlation(model, human, **kwargs)
    again = bootstrap_correlation(model, human, **kwargs)
    np.testing.assert_array_equal(first.distribution, again.distribution)
    assert first.resampled == ("seed", "stimulus", "subject")
    # Averaging 6 noisy seeds and 5 noisy subjects attenuates the estimate; the
    # default interval is centred on the bias-corrected value and covers the
    # noise-free population value (1: both sides share the same signal).
    corrected = first.extra["plug_in_estimate"] - first.extra["bootstrap_bias"]
    assert first.estimate == pytest.approx(corrected)
    assert first.extra["bootstrap_bias"] < 0
    assert first.ci_low < min(corrected, 1.0) <= first.ci_high and first.ci_low < 1.0 <= first.ci_high
    assert first.extra["variance_scale"] <= 1.0
    only_stimuli = bootstrap_correlation(model, human, resample=["stimulus"], n_resamples=600, seed=11)
    assert only_stimuli.resampled == ("stimulus",)
    # Resampling seeds and subjects too adds their variance.
    assert only_stimuli.extra["bootstrap_se"] < first.extra["bootstrap_se"]


def test_permutation_correlation_detects_and_rejects_structure():
    rng = np.random.default_rng(6)
    human = rng.normal(size=100)
    related = permutation_correlation(human + rng.normal(size=100), human, n_permutations=999, seed=1)
    unrelated = permutation_correlation(rng.normal(size=100), human, n_permutations=999, seed=1)
    assert related.p_value == pytest.approx(1 / 1000)
    assert unrelated.p_value > 0.01
    assert unrelated.resampled == ("permutation",) and unrelated.n_resamples == 999


def test_dataarrays_align_on_stimulus_labels_and_mismatches_are_named():
    ids = [f"img{k}" for k in range(10)]
    model = xr.DataArray(np.arange(20.0).reshape(2, 10), dims=("seed", "stimulus_id"),
                         coords={"stimulus_id": ids})
    human = xr.DataArray(np.arange(10.0)[::-1], dims=("stimulus_id",), coords={"stimulus_id": ids[::-1]})
    model_values, human_values, stimulus_ids = dataarray_inputs(model, human)
    np.testing.assert_array_equal(human_values[0], np.arange(10.0))
    assert list(stimulus_ids) == ids
    with pytest.raises(StimulusMismatchError, match="img9"):
        dataarray_inputs(model, human.isel(stimulus_id=slice(1, None)))


def test_bad_inputs_are_refused():
    with pytest.raises(CorrelationInputError, match="method"):
        correlate([1, 2, 3], [1, 2, 3], method="distance")
    with pytest.raises(CorrelationInputError, match="stimuli"):
        bootstrap_correlation(np.ones((2, 5)), np.ones(6), seed=0)


def test_seed_only_resamples_match_scipy_with_ties_in_the_human_measure():
    # Exercises the equal-stimulus-weight path used by the seed-only bootstrap.
    rng = np.random.default_rng(7)
    model = rng.normal(size=(5, 50))
    human = rng.normal(size=50)
    human[::4] = human[0]
    statistic, _ = correlation_statistic(model, human)
    seeds = rng.integers(0, 5, size=(3, 5))
    weights = {
        "seed": np.stack([np.bincount(s, minlength=5) for s in seeds]) / 5,
        "stimulus": np.broadcast_to(np.full((1, 50), 1 / 50), (3, 50)),
        "subject": np.ones((3, 1)),
    }
    expected = [sps.spearmanr(model[s].mean(axis=0), human).statistic for s in seeds]
    np.testing.assert_allclose(statistic(weights), expected, atol=1e-12)


@pytest.mark.parametrize("missing", [False, True])
def test_fused_pass_equals_one_call_per_subset(missing):
    # The compiled pass that evaluates all seven bootstraps of the dual
    # correction (seed x stimulus x subject) at once must give what the
    # general weighted path gives, ties and missing human values included.
    rng = np.random.default_rng(11)
    model = np.round(2 * rng.normal(size=(6, 80)))  # integer measures (like steps): many exact ties
    human = np.round(4 * rng.normal(size=(4, 80))) / 4  # quarters: sums are exact, so ties stay ties
    human[:, ::7] = 0.5
    if missing:
        human[:, 5] = np.nan
        human[0, 9] = np.nan
        human[1:3, 11] = np.nan
    statistic, sizes = correlation_statistic(model, human)
    counts = {"seed": draw_counts(1, 6, 40), "stimulus": draw_counts(2, 80, 40), "subject": draw_counts(3, 4, 40)}
    subsets = [frozenset(c) for k in (1, 2, 3) for c in itertools.combinations(counts, k)]
    fused = statistic.evaluate_subsets(counts, subsets)
    for subset in subsets:
        weights = {f: counts[f] / sizes[f] if f in subset else np.full((40, sizes[f]), 1 / sizes[f]) for f in sizes}
        np.testing.assert_allclose(fused[subset], statistic(weights), atol=1e-12, err_msg=str(sorted(subset)))
    # One fully crossed resample checked against scipy on the expanded data.
    seeds = np.repeat(np.arange(6), counts["seed"][0])
    stimuli = np.repeat(np.arange(80), counts["stimulus"][0])
    subjects = np.repeat(np.arange(4), counts["subject"][0])
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning) if missing else contextlib.nullcontext():
        human_mean = np.nanmean(human[subjects], axis=0)
    keep = ~np.isnan(human_mean[stimuli])
    expected = sps.spearmanr(model[seeds].mean(axis=0)[stimuli][keep], human_mean[stimuli][keep]).statistic
    assert fused[frozenset(counts)][0] == pytest.approx(expected, abs=1e-12)
