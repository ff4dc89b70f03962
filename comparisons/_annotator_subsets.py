"""Disjoint random subsets of each stimulus's annotators, drawn from label counts, and the reliability of all
annotators extrapolated from the subsets' correlations at several sizes.

The statistics of label counts (``comparisons/_label_counts.py``) correlate a measure of two disjoint subsets
across stimuli at a quarter, a third and half of each stimulus's annotators (:data:`SUBSET_SHARES`) and
extrapolate to all of them (:func:`extrapolated_reliability`). Not a plug-in.
"""

from __future__ import annotations

import numpy as np

from brainres.comparisons._common import ComparisonError
from brainres.stats.reliability import spearman_brown
from brainres.stats.resample import as_generator

# The sizes of the two disjoint subsets of a stimulus's annotators, as shares of them: the reliability of all
# annotators is extrapolated from the subsets' correlations at these sizes (extrapolated_reliability).
SUBSET_SHARES = (0.25, 1 / 3, 0.5)
# two disjoint quarters need at least 4 annotators per stimulus
MIN_ANNOTATORS = 4


def _draw_annotators(rng, counts, wanted):
    """Label counts of ``wanted`` annotators drawn without replacement from ``counts`` (multivariate
    hypergeometric, drawn label by label, each a hypergeometric draw from what is left)."""
    wanted, left = wanted.copy(), counts.sum(axis=-1)
    drawn = np.zeros(counts.shape, dtype=np.int64)
    for label in range(counts.shape[-1] - 1):
        good = counts[..., label]
        drawn[..., label] = rng.hypergeometric(good, left - good, wanted) if wanted.any() else 0
        wanted -= drawn[..., label]
        left -= good
    drawn[..., -1] = wanted  # what is still wanted comes from the last label
    return drawn


def split_label_counts(counts, *, n_splits: int, seed=None, share: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random subsets of each stimulus's annotators, drawn from its label counts.

    With ``share = 0.5`` a stimulus labelled by ``n`` annotators is split into
    halves of ``floor(n / 2)`` and ``n - floor(n / 2)`` of them; with a smaller
    ``share`` each subset has ``floor(share n)`` annotators (at least one), the
    second drawn from those the first left. Draws are without replacement: a
    subset's counts are a multivariate hypergeometric draw from the counts.

    Returns
    -------
    first, second : numpy.ndarray, shape (n_splits, n_stimuli, n_labels)

    Examples
    --------
    >>> first, second = split_label_counts([[30, 20, 0], [1, 1, 49]], n_splits=4, seed=0)
    >>> bool((first + second == [[30, 20, 0], [1, 1, 49]]).all()), first.sum(axis=2).tolist()[0]
    (True, [25, 25])
    >>> first, second = split_label_counts([[30, 20, 0], [1, 1, 49]], n_splits=4, seed=0, share=0.25)
    >>> first.sum(axis=2).tolist()[0], bool((first + second <= [[30, 20, 0], [1, 1, 49]]).all())
    ([12, 12], True)
    """
    if not 0 < share <= 0.5:
        raise ComparisonError(f"a subset of annotators is a share in (0, 0.5], got {share}")
    counts = np.asarray(counts, dtype=np.int64)
    rng, _ = as_generator(seed)
    every = np.broadcast_to(counts, (n_splits, *counts.shape))
    size, _ = subset_sizes(counts.sum(axis=1), share)
    first = _draw_annotators(rng, every, np.broadcast_to(size, (n_splits, counts.shape[0])))
    if share == 0.5:
        return first, every - first
    return first, _draw_annotators(rng, every - first, np.broadcast_to(size, (n_splits, counts.shape[0])))


def extrapolated_reliability(correlations, shares=SUBSET_SHARES):
    """The reliability of all annotators, extrapolated from the correlations of disjoint subsets of them.

    Spearman-Brown says that the odds ``r / (1 - r)`` of the correlation of
    two subsets grow in proportion to their size. Here they grow as a power
    ``b`` of it: ``log odds`` is fitted by least squares as a line in
    ``log share`` over the subset sizes and read off at share 1 (``b = 1`` is
    Spearman-Brown from any one size). The power absorbs what the
    proportional law misses when a measure is not a mean of annotators: the
    entropy of label counts, and ranks that tie where many stimuli are
    unanimous (in CIFAR-10H-like data Spearman-Brown from the halves
    overstates the Spearman reliability of ~51 annotators by 0.02, the
    fitted power misses it by 0.003 or less, Spearman and Pearson, entropy
    and share correct; docs/statistics.md). It is an empirical law, not a
    model of the labels: with diffuse labels (a Dirichlet(1) over 10 labels)
    it overshoots the entropy's Spearman reliability by 0.02-0.03, where
    Spearman-Brown undershoots it by as much
    (``tests/comparisons/test_human_measures.py``). Where a correlation is
    not in (0, 1) the power cannot be fitted, and the result is
    Spearman-Brown from the largest subsets.

    Parameters
    ----------
    correlations : array_like, shape (..., n_shares)
        The subsets' correlation at each share, in the order of ``shares``
        (the largest last).
    shares : sequence of float
        Each subset's size as a share of the annotators.

    Examples
    --------
    >>> x = 0.1  # Spearman-Brown data: one annotator's reliability x, k annotators' k x / (1 + (k - 1) x)
    >>> k = 50 * np.array([0.25, 1 / 3, 0.5])
    >>> round(float(extrapolated_reliability(k * x / (1 + (k - 1) * x))), 6), round(50 * x / (1 + 49 * x), 6)
    (0.847458, 0.847458)
    """
    r = np.asarray(correlations, dtype=float)
    log_share = np.log(np.asarray(shares, dtype=float))
    centred = log_share - log_share.mean()
    fittable = np.all((r > 0) & (r < 1), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_odds = np.log(r / (1 - r))
        power = np.sum((log_odds - log_odds.mean(axis=-1, keepdims=True)) * centred, axis=-1) / np.sum(centred**2)
        at_all = log_odds.mean(axis=-1) - power * log_share.mean()
        fitted = 1 / (1 + np.exp(-at_all))
    return np.where(fittable, fitted, spearman_brown(r[..., -1], 1 / np.asarray(shares)[-1]))


def subset_sizes(total, share):
    """The sizes of the two disjoint subsets :func:`split_label_counts` draws from ``total`` annotators."""
    total = np.asarray(total, dtype=np.int64)
    if share == 0.5:
        return total // 2, total - total // 2
    size = np.maximum(1, np.floor(share * total).astype(np.int64))
    return size, size


def effective_share(total, share):
    """The subsets' size as a share of the annotators, as drawn (``floor`` makes a third of 20 annotators 6 of
    them, 0.3): the geometric mean of the two subsets' shares (two subsets of ``a`` and ``b`` annotators correlate
    as the geometric mean of their reliabilities), averaged over stimuli."""
    first, second = subset_sizes(total, share)
    return float(np.mean(np.sqrt(first * second) / np.asarray(total)))
