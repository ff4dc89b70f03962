"""Sparse human data (brainres.stats.sparse): the same numbers as the dense path, and as a direct computation."""

import tracemalloc

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from brainres.stats import bootstrap_correlation, disattenuated_correlation, split_half_reliability
from brainres.stats.correlate import correlation_statistic
from brainres.stats.reliability import half_means, split_halves
from brainres.stats.resample import draw_counts
from brainres.stats.sparse import SparseHuman, SparseHumanError, human_cells, prefer_sparse, stimulus_means
from brainres.stats import sparse_kernels


def _design(n_seeds=3, n_stimuli=40, n_subjects=12, keep=1.0, seed=0):
    """Model (seeds x stimuli) and human (subjects x stimuli, NaN = not seen) sharing a per-stimulus signal."""
    rng = np.random.default_rng(seed)
    signal = np.linspace(0, 1, n_stimuli)
    model = signal + rng.normal(size=(n_seeds, n_stimuli))
    human = signal + rng.normal(size=(n_subjects, n_stimuli))
    seen = rng.random((n_subjects, n_stimuli)) < keep
    seen[np.arange(n_stimuli) % n_subjects, np.arange(n_stimuli)] = True  # every stimulus has a rater
    return model, np.where(seen, human, np.nan)


def _sparse(dense):
    rows, cols = np.nonzero(~np.isnan(dense))
    return SparseHuman(rows, cols, dense[rows, cols], subjects=[f"s{j}" for j in range(dense.shape[0])],
                       stimulus_ids=[f"x{i}" for i in range(dense.shape[1])])


@pytest.fixture(params=["compiled", "numpy"])
def kernels(request, monkeypatch):
    """Both the compiled kernels and their numpy twins."""
    monkeypatch.setenv("BRAINRES_KERNELS", request.param)
    return request.param


@pytest.mark.parametrize("keep", [1.0, 0.35])
@pytest.mark.parametrize("options", [{}, {"method": "pearson"}, {"aggregate": "mean_of_seeds"},
                                     {"interval": "bca", "correction": "none"}])
def test_bootstrap_equals_the_dense_path(keep, options, kernels):
    # complete designs and incomplete, unbalanced ones (about a third of the cells seen)
    model, dense = _design(keep=keep)
    a = bootstrap_correlation(model, dense, n_resamples=400, seed=3, **options)
    b = bootstrap_correlation(model, _sparse(dense), n_resamples=400, seed=3, **options)
    assert b.resampled == ("seed", "stimulus", "subject") and b.extra["n_subjects"] == dense.shape[0]
    assert (b.estimate, b.ci_low, b.ci_high) == pytest.approx((a.estimate, a.ci_low, a.ci_high), abs=1e-12)
    assert b.extra["bootstrap_se"] == pytest.approx(a.extra["bootstrap_se"], abs=1e-12)


def test_every_factor_subset_equals_the_dense_path_resample_by_resample(kernels):
    model, dense = _design(keep=0.4, seed=1)
    dense_statistic, sizes = correlation_statistic(model, dense)
    sparse_statistic, sparse_sizes = correlation_statistic(model, _sparse(dense))
    assert sizes == sparse_sizes
    counts = {f: draw_counts(7 + k, n, 50) for k, (f, n) in enumerate(sizes.items())}
    subsets = [frozenset(s) for s in [("seed",), ("stimulus",), ("subject",), ("seed", "stimulus"), ("seed", "subject"),
                                      ("stimulus", "subject"), ("seed", "stimulus", "subject")]]
    expected = dense_statistic.evaluate_subsets(counts, subsets)
    got = sparse_statistic.evaluate_subsets(counts, subsets)
    for subset in subsets:
        np.testing.assert_allclose(got[subset], expected[subset], rtol=0, atol=1e-12, err_msg=str(sorted(subset)))


def test_a_resample_equals_the_resampled_data_computed_directly():
    # The resampled trials themselves: drawn seeds, stimuli and subjects repeated as drawn.
    model, dense = _design(n_stimuli=25, n_subjects=9, keep=0.5, seed=2)
    human = _sparse(dense)
    statistic, sizes = correlation_statistic(model, human)
    for row in range(5):
        counts = {f: draw_counts(11 + k, n, 1, first_row=row) for k, (f, n) in enumerate(sizes.items())}
        subjects = np.repeat(np.arange(sizes["subject"]), counts["subject"][0])
        stimuli = np.repeat(np.arange(sizes["stimulus"]), counts["stimulus"][0])
        seeds = np.repeat(np.arange(sizes["seed"]), counts["seed"][0])
        cells = pd.DataFrame({"subject": np.repeat(np.arange(dense.shape[0]), dense.shape[1]),
                              "stimulus": np.tile(np.arange(dense.shape[1]), dense.shape[0]),
                              "value": dense.ravel()}).dropna()
        drawn = pd.concat([cells[cells["subject"] == j] for j in subjects])
        human_means = drawn.groupby("stimulus")["value"].mean()
        model_means = model[seeds].mean(axis=0)
        kept = [i for i in stimuli if i in human_means.index]  # stimuli no drawn subject saw drop out
        direct = sps.spearmanr(model_means[kept], human_means.loc[kept].to_numpy()).statistic
        weights = {f: counts[f] / sizes[f] for f in sizes}
        assert statistic(weights)[0] == pytest.approx(direct, abs=1e-12)
        everything = frozenset(sizes)
        assert statistic.evaluate_subsets(counts, [everything])[everything][0] == pytest.approx(direct, abs=1e-12)


def test_reliability_and_noise_ceiling_equal_the_dense_path():
    for keep in (1.0, 0.4):
        model, dense = _design(keep=keep, seed=4)
        human = _sparse(dense)
        for method in ("pearson", "spearman"):
            options = dict(method=method, n_splits=30, bootstrap_splits=10, n_resamples=100, seed=2)
            a = split_half_reliability(dense, **options)
            b = split_half_reliability(human, **options)
            assert (b.estimate, b.ci_low, b.ci_high) == pytest.approx((a.estimate, a.ci_low, a.ci_high), abs=1e-12)
            assert b.method == a.method and "split-half over subjects" in b.method
            # sparse data use the split-half estimator whatever is asked; compare it with the dense one
            a = disattenuated_correlation(model, dense, reliability="split_half", **options)
            b = disattenuated_correlation(model, human, reliability="split_half", **options)
            assert (b.estimate, b.ci_low, b.ci_high) == pytest.approx((a.estimate, a.ci_low, a.ci_high), abs=1e-12)
            assert b.extra["ceiling"] == pytest.approx(a.extra["ceiling"], abs=1e-12, nan_ok=True)


def test_half_means_are_the_means_of_each_half_of_the_subjects():
    _, dense = _design(n_stimuli=30, n_subjects=10, keep=0.4, seed=5)
    masks, _ = split_halves(10, n_splits=20, seed=1)
    first, second = half_means(_sparse(dense), masks)
    for k in range(masks.shape[0]):
        for half, got in ((masks[k], first[k]), (~masks[k], second[k])):
            values = dense[half]
            seen = ~np.isnan(values).all(axis=0)
            np.testing.assert_allclose(got[seen], np.nanmean(values[:, seen], axis=0), rtol=1e-12)
            assert np.isnan(got[~seen]).all()  # a stimulus no rater of this half saw


def test_human_cells_equal_per_subject_means():
    from brainres.comparisons._common import per_subject
    from brainres.testing import planted_time_and_rt

    _, trials = planted_time_and_rt(correlation=0.5, n_stimuli=30, n_subjects=8, seed=1)
    rng = np.random.default_rng(0)
    # drop most trials, repeat some (a subject seeing a stimulus twice) and blank some RTs
    keep = rng.random(trials.sizes["trial"]) < 0.3
    index = np.concatenate([np.flatnonzero(keep), np.flatnonzero(keep)[:10]])
    trials = trials.isel(trial=rng.permutation(index))
    rt = trials["rt"].values.copy()
    rt[:5] = np.nan
    trials["rt"] = ("trial", rt)
    for correct_only in (False, True):
        dense = per_subject(trials, "rt", correct_only=correct_only)
        sparse = human_cells(trials, "rt", correct_only=correct_only)
        assert sparse["subject"].values.tolist() == dense["subject"].values.tolist()
        assert sparse["stimulus_id"].values.tolist() == dense["stimulus_id"].values.tolist()
        np.testing.assert_allclose(sparse.to_dense(), dense.values, rtol=1e-12)
        np.testing.assert_allclose(stimulus_means(sparse), stimulus_means(dense.values), rtol=1e-12)
    chosen = list(dense["stimulus_id"].values[::-3])
    np.testing.assert_allclose(sparse.sel(stimulus_id=chosen).to_dense(), dense.sel(stimulus_id=chosen).values)
    assert prefer_sparse(trials) is False  # about 30 % of the cells: the dense path
    assert prefer_sparse(trials.isel(trial=np.arange(0, trials.sizes["trial"], 3))) is True


def test_compiled_kernel_and_numpy_twin_give_identical_means():
    _, dense = _design(n_stimuli=200, n_subjects=40, keep=0.2, seed=6)
    human = _sparse(dense)
    counts = draw_counts(5, 40, 30)
    args = (human.indptr, human.indices, human.cell_means, counts, 200)
    compiled = sparse_kernels._drawn_means_kernel(*args)
    twin = sparse_kernels._numpy_drawn_means(*args)
    np.testing.assert_array_equal(compiled[0], twin[0])
    np.testing.assert_array_equal(compiled[1], twin[1])


def test_fused_kernel_gives_the_same_bits_however_resamples_are_grouped():
    # Four resamples share a pass over the cells; a short group is padded with zero draws, one left over runs
    # alone. Every split of 11 resamples (one at a time, one to five chunks) must give the same bits.
    model, dense = _design(n_seeds=4, n_stimuli=60, n_subjects=15, keep=0.3, seed=8)
    human = _sparse(dense)
    sizes = {"seed": 4, "stimulus": 60, "subject": 15}
    counts = {f: draw_counts(20 + k, n, 11) for k, (f, n) in enumerate(sizes.items())}
    fixed = np.nan_to_num(human.stimulus_means())
    order = np.argsort(fixed, kind="stable").astype(np.int32)
    mean = model.mean(axis=0)
    mean_order = np.argsort(mean, kind="stable").astype(np.int32)

    def run(rows, n_threads):
        return sparse_kernels._crossed_spearman_kernel(
            model, counts["seed"][rows], counts["stimulus"][rows], counts["subject"][rows], *human.raters(),
            fixed[order], order, mean[mean_order], mean_order, np.ones(60), np.ones(7, dtype=np.bool_), n_threads)

    whole = run(slice(None), 1)
    assert np.isfinite(whole).all()
    one_by_one = np.concatenate([run(slice(r, r + 1), 1) for r in range(11)], axis=1)
    np.testing.assert_array_equal(whole, one_by_one)
    for n_threads in (2, 3, 5):
        np.testing.assert_array_equal(run(slice(None), n_threads), whole)


def test_memory_grows_with_cells_not_subjects_times_stimuli():
    # 20,000 subjects x 50,000 stimuli: 8 GB as a dense float array; 60,000 observed cells.
    rng = np.random.default_rng(0)
    n_subjects, n_stimuli, n_cells = 20_000, 50_000, 60_000
    cells = rng.choice(n_subjects * n_stimuli, size=n_cells, replace=False)
    stimulus = cells % n_stimuli
    signal = rng.normal(size=n_stimuli)
    model = signal + rng.normal(size=(2, n_stimuli))
    human = SparseHuman(cells // n_stimuli, stimulus, signal[stimulus] + rng.normal(size=n_cells),
                        subjects=np.arange(n_subjects), stimulus_ids=np.arange(n_stimuli))
    bootstrap_correlation(model[:, :100], human.sel(stimulus_id=np.arange(100).astype(str)), n_resamples=10, seed=0)
    tracemalloc.start()
    result = bootstrap_correlation(model, human, n_resamples=4, seed=0, batch_size=2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert np.isfinite(result.estimate) and np.isfinite(result.ci_low)
    assert peak < 60e6, f"peak {peak / 1e6:.0f} MB"


def test_bad_sparse_input_is_refused_clearly():
    with pytest.raises(SparseHumanError, match="more than one cell"):
        SparseHuman([0, 0], [1, 1], [0.5, 0.6], subjects=["a"], stimulus_ids=["x", "y"])
    with pytest.raises(SparseHumanError, match="not finite"):
        SparseHuman([0], [1], [np.nan], subjects=["a"], stimulus_ids=["x", "y"])
    with pytest.raises(SparseHumanError, match="outside"):
        SparseHuman([1], [0], [0.5], subjects=["a"], stimulus_ids=["x", "y"])
    human = SparseHuman([0], [1], [0.5], subjects=["a"], stimulus_ids=["x", "y"])
    with pytest.raises(SparseHumanError, match="stimulus 'z' is not in the human data"):
        human.sel(stimulus_id=["x", "z"])
    with pytest.raises(SparseHumanError, match="no 'rt'"):
        human_cells(pd.DataFrame({"subject": ["a"], "stimulus_id": ["x"]}))


def test_docstring_examples_run():
    import doctest

    import brainres.stats.sparse as module

    failures, tried = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert tried >= 4 and failures == 0
