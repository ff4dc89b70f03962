"""Per-stimulus measures of human label counts (CIFAR-10H), and their reliability from split annotators.

Each stimulus was labelled by its own annotators (about 50 per CIFAR-10H
image), so there is no subject factor crossed with the stimuli. A measure of
the counts (the entropy of the label distribution, or the share of annotators
who chose the stimulus's category) gets its reliability from disjoint random
subsets of each stimulus's annotators (a quarter, a third and half of them,
drawn from the counts without replacement; ``comparisons/_annotator_subsets.py``),
extrapolated to all of them, and its interval from a bootstrap over stimuli.
Not a plug-in.
"""

from __future__ import annotations

import math

import numpy as np

from brainres.comparisons._annotator_subsets import (
    MIN_ANNOTATORS, SUBSET_SHARES, effective_share, extrapolated_reliability, split_label_counts,
)
from brainres.comparisons._common import ComparisonError
from brainres.stats.kernels import rank_plan, spearman_fixed, weighted_pearson
from brainres.stats.reliability import split_halves, step_up
from brainres.stats.resample import as_generator, crossed_bootstrap
from brainres.stats.result import StatResult


def label_entropy(counts) -> np.ndarray:
    """Entropy of each row's label distribution, in units of ``log(n_labels)``.

    Parameters
    ----------
    counts : array_like, shape (..., n_labels)
        Non-negative counts (a row of zeros gives NaN).

    Examples
    --------
    >>> label_entropy([[4, 0, 0, 0], [1, 1, 1, 1], [2, 2, 0, 0]]).tolist()
    [0.0, 1.0, 0.5]
    """
    counts = np.asarray(counts, dtype=float)
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = counts / total
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    entropy = -terms.sum(axis=-1) / math.log(counts.shape[-1]) + 0.0  # + 0.0: no negative zero
    return np.where(total[..., 0] > 0, entropy, np.nan)


def share_of_first_label(counts) -> np.ndarray:
    """Share of each row's counts in its first column (after :func:`category_counts`: the share correct).

    >>> share_of_first_label([[3, 1], [0, 4]]).tolist()
    [0.75, 0.0]
    """
    counts = np.asarray(counts, dtype=float)
    total = counts.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, counts[..., 0] / total, np.nan)


def category_counts(counts, label_names, categories) -> np.ndarray:
    """Counts reduced to (chose the stimulus's category, chose another), per stimulus.

    ``label_names`` name the count columns, ``categories`` each stimulus's category.
    """
    counts = np.asarray(counts)
    names = [str(n) for n in label_names]
    unknown = sorted({str(c) for c in categories} - set(names))
    if unknown:
        raise ComparisonError(f"the stimuli's categories {unknown[:5]} are not among the labels {names}")
    column = np.array([names.index(str(c)) for c in categories])
    correct = counts[np.arange(len(column)), column]
    return np.stack([correct, counts.sum(axis=1) - correct], axis=1)


# what each label measure is, and its words for estimands
SUMMARIES = {
    "label_entropy": (label_entropy, "the entropy of each stimulus's labels"),
    "accuracy": (share_of_first_label, "the share of each stimulus's annotators who chose its category"),
}


def _summary(measure: str):
    if measure not in SUMMARIES:
        raise ComparisonError(f"label counts give measures {sorted(SUMMARIES)}, not {measure!r}")
    return SUMMARIES[measure]


class _AnnotatorSubsets:
    """Disjoint subsets of each stimulus's annotators at every share, their measure ranked once; gives the
    extrapolated reliability for any stimulus weights."""

    def __init__(self, counts, summary, method, *, n_splits, seed):
        self.subsets = []
        total = counts.sum(axis=1)
        self.shares = np.array([effective_share(total, share) for share in SUBSET_SHARES])
        for share in SUBSET_SHARES:
            first, second = split_label_counts(counts, n_splits=n_splits, seed=seed, share=share)
            self.subsets.append((_Rows(summary(first), method), _Rows(summary(second), method)))

    def correlations(self, weights, splits=None):
        """Mean over the chosen splits of the subsets' correlation, per weight row and share: (n_weights, n_shares)."""
        means = []
        for first, second in self.subsets:
            if splits is not None:
                first, second = first.take(splits), second.take(splits)
            means.append(np.nanmean(_correlation(first, second, weights), axis=1))
        return np.stack(means, axis=-1)

    def reliability(self, weights, splits=None):
        return extrapolated_reliability(self.correlations(weights, splits), self.shares)


class _Rows:
    """Rows of per-stimulus values (n_rows, n_stimuli), sorted once for rank correlations."""

    def __init__(self, values, method):
        self.values = np.atleast_2d(np.asarray(values, dtype=float))
        self.plans = [rank_plan(row) for row in self.values] if method == "spearman" else None

    def take(self, index):
        taken = _Rows.__new__(_Rows)
        taken.values = self.values[index]
        taken.plans = None if self.plans is None else [self.plans[i] for i in index]
        return taken


def _correlation(x: _Rows, y: _Rows, weights):
    """Weighted correlation across stimuli of row i of ``x`` with row i of ``y``, per weight row: (n_weights, n_rows)."""
    weights = np.atleast_2d(weights)
    if x.plans is None:
        return np.stack([weighted_pearson(a[None], b[None], weights) for a, b in zip(x.values, y.values)], axis=1)
    return np.stack([spearman_fixed(a, b, weights) for a, b in zip(x.plans, y.plans)], axis=1)


def _interval(interval, n_stimuli):
    if interval is None:
        return "bca" if n_stimuli <= 2000 else "percentile"
    if interval not in ("bca", "percentile"):
        raise ComparisonError(f"interval must be 'bca' or 'percentile', got {interval!r}")
    return interval


def _check_method(method):
    if method not in ("pearson", "spearman"):
        raise ComparisonError(f"method must be 'spearman' or 'pearson', got {method!r}")


def _bootstrap_splits(bootstrap_splits, n_splits):
    """The splits each bootstrap resample recomputes at every subset size: ``bootstrap_splits`` shared among the
    sizes (the first ones: the splits are drawn at random)."""
    return np.arange(min(max(1, math.ceil(bootstrap_splits / len(SUBSET_SHARES))), n_splits))


def _reliability_words(n_splits):
    return (f"{n_splits} random splits of each stimulus's annotators into two disjoint subsets at each of "
            f"{', '.join(f'{s:.2g}' for s in SUBSET_SHARES)} of them (drawn from the label counts without "
            "replacement), the subsets' correlation extrapolated to all annotators (Spearman-Brown with a fitted "
            "power)")


def label_split_half_reliability(counts, *, method: str = "spearman", n_splits: int = 1000, n_resamples: int = 2000,
                                 bootstrap_splits: int = 100, seed=None, ci_level: float = 0.95,
                                 interval: str | None = None, measure: str = "label_entropy") -> StatResult:
    """Reliability of per-stimulus label entropy (or share correct), from disjoint subsets of each stimulus's labels.

    Every split draws two disjoint random subsets of each stimulus's
    annotators (:func:`split_label_counts`) at a quarter, a third and half of
    them, takes the measure of each subset's labels and correlates the two
    subsets across stimuli. The mean correlation at each size is extrapolated
    to all annotators by :func:`extrapolated_reliability` (Spearman-Brown with
    a power fitted to the three sizes; Spearman-Brown alone overstates the
    Spearman reliability of label entropy, by 0.02 from halves to all
    annotators in CIFAR-10H-like simulated labels and by 0.11 from quarters to
    halves in the real CIFAR-10H labels, because many stimuli tie at zero
    entropy, halves and quarters of the annotators more often). The interval is a bootstrap
    over stimuli (see ``interval``) that recomputes the correlations of
    ``bootstrap_splits`` splits, shared among the three sizes, on every
    resample and extrapolates again.

    Estimand: the reliability of the measure of all of a stimulus's labels
    (its correlation with the same measure from as many other annotators),
    over the population of stimuli. Calibrated in docs/statistics.md.

    Parameters
    ----------
    counts : array_like, shape (n_stimuli, n_labels)
        Non-negative integer label counts (for ``measure = "accuracy"``: from
        :func:`category_counts`). Each stimulus needs at least ``MIN_ANNOTATORS`` (4).
    method : {"spearman", "pearson"}
    n_splits : int, default 1000
        Random splits at each subset size for the point estimate.
    n_resamples, bootstrap_splits, seed, ci_level
        As in :func:`brainres.stats.reliability.split_half_reliability`.
    measure : {"label_entropy", "accuracy"}
        The per-stimulus summary of each subset's counts (:data:`SUMMARIES`).
    interval : {"bca", "percentile"}, optional
        Default: BCa up to 2,000 stimuli, percentile above (BCa's jackknife
        recomputes the statistic once per stimulus, and its acceleration
        shrinks like one over the square root of the number of stimuli).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.dirichlet(np.full(10, 0.3), size=200)
    >>> counts = np.stack([rng.multinomial(50, row) for row in p])
    >>> result = label_split_half_reliability(counts, n_splits=50, n_resamples=200, seed=1)
    >>> 0.5 < result.estimate < 1 and result.ci_low < result.estimate < result.ci_high
    True
    """
    _check_method(method)
    counts = _check_counts(counts)
    summary, words = _summary(measure)
    rng, recorded_seed = as_generator(seed)
    subsets = _AnnotatorSubsets(counts, summary, method, n_splits=n_splits, seed=rng)
    n = counts.shape[0]
    everyone = np.full((1, n), 1.0 / n)
    per_share = subsets.correlations(everyone)[0]
    halves_first, halves_second = subsets.subsets[-1]
    per_split_halves = _correlation(halves_first, halves_second, everyone)[0]
    chosen = _bootstrap_splits(bootstrap_splits, n_splits)

    annotators = int(np.median(counts.sum(axis=1)))
    extra = {"unit": "annotator", "n_units": annotators, "n_splits": int(n_splits),
             # the subsets' sizes as drawn (shares of the annotators) and their mean correlations
             "subset_shares": [float(share) for share in subsets.shares],
             "subset_correlations": [float(r) for r in per_share],
             # the spread of the halves' correlation over splits (not a sampling error)
             "split_sd": float(np.nanstd(per_split_halves, ddof=1)) if n_splits > 1 else math.nan,
             "estimand": f"the {method} reliability of {words} (a median of {annotators} annotators; its "
                         "correlation with the same measure from as many other annotators), over the population of "
                         "stimuli"}
    result = crossed_bootstrap(lambda weights: subsets.reliability(weights["stimulus"], chosen), {"stimulus": n},
                               n_resamples=n_resamples, seed=rng, ci_level=ci_level,
                               interval=_interval(interval, n), statistic_name=f"annotator_reliability_{method}", n=n,
                               bounds=(-1.0, 1.0), extra=extra)
    return result.replace(estimate=float(extrapolated_reliability(per_share, subsets.shares)), seed=recorded_seed,
                          method=_reliability_words(n_splits) + "; " + result.method)


def _check_counts(counts):
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[0] < 3:
        raise ComparisonError(f"label counts must be (n_stimuli >= 3, n_labels), got shape {counts.shape}")
    too_few = np.flatnonzero(counts.sum(axis=1) < MIN_ANNOTATORS)
    if too_few.size:
        raise ComparisonError(f"label reliability needs at least {MIN_ANNOTATORS} annotators per stimulus (two "
                              "disjoint quarters); "
                              f"stimuli at positions {too_few[:5].tolist()} have fewer")
    return counts


def label_disattenuated_correlation(model, counts, *, method: str = "spearman", n_splits: int = 1000,
                                    n_resamples: int = 2000, bootstrap_splits: int = 100, seed=None,
                                    ci_level: float = 0.95, interval: str | None = None,
                                    measure: str = "label_entropy") -> StatResult:
    """Noise-corrected correlation of model time with label entropy (or share correct): ``r / sqrt(rel_human * rel_model)``.

    ``r`` is the correlation of the seed-mean model measure with the measure
    of all labels; ``rel_human`` the annotators' reliability
    (:func:`label_split_half_reliability`), ``rel_model`` the split-half
    reliability over seeds (stepped up to all seeds by the parallel-units
    model; a single seed counts as noise-free). The interval is a bootstrap
    over stimuli (see ``interval``) recomputing ``r`` and both reliabilities
    on the same resampled stimuli and splits. Clipped to ``[-1, 1]``.

    Estimand: the correlation, over the population of stimuli, of the model's
    expected measure over infinitely many seeds with the stimulus's true
    score: its expected measure over sets of as many annotators as it has.
    For the share correct that is the true share; the entropy of a finite
    sample of labels is biased low, by more where labels are spread, so for
    the entropy it is not the entropy of the true label distribution (in
    CIFAR-10H-like data their Pearson correlations with a model differ by
    0.008, docs/statistics.md). Pearson converges to this estimand. Spearman
    falls short of it by 0.007-0.017 at a true 0.48 even with exact
    reliabilities: the stimuli tied at zero entropy are not ranked as their
    true scores plus independent noise, which the correction assumes. That
    is a third of a standard error or less at 400 stimuli, 0.7-1.6 at 10,000.

    Parameters
    ----------
    model : array_like, shape (n_seeds, n_stimuli)
    counts : array_like, shape (n_stimuli, n_labels)
    method, n_splits, n_resamples, bootstrap_splits, seed, ci_level, interval, measure
        As in :func:`label_split_half_reliability`.
    """
    _check_method(method)
    model = np.atleast_2d(np.asarray(model, dtype=float))
    counts = _check_counts(counts)
    if model.shape[1] != counts.shape[0]:
        raise ComparisonError(f"model has {model.shape[1]} stimuli but the label counts have {counts.shape[0]}")
    summary, words = _summary(measure)
    rng, recorded_seed = as_generator(seed)
    n = counts.shape[0]
    subsets = _AnnotatorSubsets(counts, summary, method, n_splits=n_splits, seed=rng)
    human = _Rows(summary(counts), method)
    model_mean = _Rows(model.mean(axis=0), method)
    if model.shape[0] > 1:
        masks, _ = split_halves(model.shape[0], n_splits=n_splits, seed=rng)
        model_first = _Rows(np.stack([model[m].mean(axis=0) for m in masks]), method)
        model_second = _Rows(np.stack([model[~m].mean(axis=0) for m in masks]), method)
        sizes = masks.sum(axis=1)
    boot = _bootstrap_splits(bootstrap_splits, n_splits)
    boot_model = np.arange(min(bootstrap_splits, masks.shape[0])) if model.shape[0] > 1 else None

    def parts(weights, human_splits, model_splits):
        raw = _correlation(model_mean, human, weights)[:, 0]
        rel_h = subsets.reliability(weights, human_splits)
        if model.shape[0] > 1:
            r = _correlation(model_first.take(model_splits), model_second.take(model_splits), weights)
            rel_m = np.nanmean(step_up(r, sizes[model_splits], model.shape[0] - sizes[model_splits], model.shape[0]),
                               axis=1)
        else:
            rel_m = np.ones_like(rel_h)
        return raw, rel_h, rel_m

    def corrected(raw, rel_h, rel_m):
        with np.errstate(invalid="ignore", divide="ignore"):
            # no reliability left: the corrected correlation is at its bound
            return np.clip(np.where(rel_h * rel_m > 0, raw / np.sqrt(np.abs(rel_h * rel_m)), np.sign(raw)), -1, 1)

    every_model = np.arange(masks.shape[0]) if model.shape[0] > 1 else None
    raw, rel_h, rel_m = (float(v[0]) for v in parts(np.full((1, n), 1.0 / n), None, every_model))
    extra = {"estimand": "the correlation, over the population of stimuli, of the model's expected measure over "
                         f"infinitely many seeds with the true score of {words} (its expected value over sets of as "
                         "many annotators)",
             "raw_r": raw, "reliability_human": rel_h, "reliability_model": rel_m,
             "attenuation": math.sqrt(rel_h * rel_m) if rel_h * rel_m > 0 else math.nan,
             "n_seeds": int(model.shape[0]), "unit": "annotator"}
    result = crossed_bootstrap(lambda w: corrected(*parts(w["stimulus"], boot, boot_model)), {"stimulus": n},
                               n_resamples=n_resamples, seed=rng, ci_level=ci_level, interval=_interval(interval, n),
                               statistic_name=f"disattenuated_{method}", n=n, bounds=(-1.0, 1.0), extra=extra)
    return result.replace(
        estimate=float(corrected(np.array(raw), np.array(rel_h), np.array(rel_m))), seed=recorded_seed,
        method="r / sqrt(reliabilities: the annotators' from " + _reliability_words(n_splits)
               + "; the seeds' from split halves); " + result.method)
