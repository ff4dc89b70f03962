"""Batched weighted correlation kernels: the inner loop of every bootstrap.

Each kernel takes unit weights of shape ``(batch, n)`` (or ``(n,)``) and
returns one value per row. With weights ``counts / n`` of a bootstrap
resample the value equals the statistic on the resampled data with its
duplicated units; ranks are average ranks of that expanded data, so the ties
created by drawing with replacement are handled as ``scipy.stats.rankdata``
handles them. A vector that stays fixed across resamples is sorted once
(:func:`rank_plan`) and ranked per resample without sorting
(:func:`spearman_fixed`). The rank kernels run compiled
(:mod:`brainres.stats.compiled`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def weighted_pearson(x, y, weights) -> np.ndarray:
    """Pearson correlation with unit weights, batched over the leading axis.

    Parameters
    ----------
    x, y : array_like, shape (batch, n) or (n,)
    weights : array_like, shape (batch, n) or (n,)
        Non-negative; a resample's ``counts / n`` reproduces the correlation of
        the resampled data.

    Returns
    -------
    numpy.ndarray, shape (batch,)
    """
    x, y, weights = (np.atleast_2d(np.asarray(a, dtype=float)) for a in (x, y, weights))
    # Shift by the unweighted mean first so the one-pass sums below do not cancel.
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    shape = np.broadcast_shapes(x.shape, y.shape, weights.shape)
    x, y, weights = (np.broadcast_to(a, shape) for a in (x, y, weights))
    weighted_x, weighted_y = weights * x, weights * y
    total = weights.sum(axis=1)
    sum_x, sum_y = weighted_x.sum(axis=1), weighted_y.sum(axis=1)
    covariance = np.einsum("ij,ij->i", weighted_x, y) - sum_x * sum_y / total
    variance_x = np.einsum("ij,ij->i", weighted_x, x) - sum_x**2 / total
    variance_y = np.einsum("ij,ij->i", weighted_y, y) - sum_y**2 / total
    with np.errstate(invalid="ignore", divide="ignore"):
        r = covariance / np.sqrt(variance_x * variance_y)
    return np.clip(r, -1.0, 1.0)


class Ranked(NamedTuple):
    """Values with their row-wise ascending order, ready for the rank kernels.

    ``values``, ``order`` and ``sorted`` (``values`` in that order) have shape
    ``(1, n)`` (one vector shared by a whole batch: sorted once) or
    ``(batch, n)`` (one per resample).
    """

    values: np.ndarray
    order: np.ndarray
    sorted: np.ndarray


def rank_plan(values) -> Ranked:
    """Sort values once per row (a 1-d vector becomes one shared row)."""
    values = np.ascontiguousarray(np.atleast_2d(np.asarray(values, dtype=float)))
    if values.shape[0] == 1:
        order = np.argsort(values[0], kind="stable").astype(np.int32)[None, :]
    else:
        order = compiled().argsort_rows(values)
    return Ranked(values, order, np.take_along_axis(values, order, axis=1))


def weighted_ranks(values, weights, order=None) -> np.ndarray:
    """Average ranks of ``values`` in the data where unit ``i`` appears ``weights[i]`` times.

    Returns ranks in weight units (``sum of weights below + half the weight of
    the tie group``), an affine map of scipy's average ranks of the expanded
    data, which is all a rank correlation needs.

    Parameters
    ----------
    values : array_like, shape (batch, n) or (n,)
    weights : array_like, shape (batch, n) or (n,)
    order : numpy.ndarray, optional
        ``argsort(values)`` (row-wise) when already known.

    Returns
    -------
    numpy.ndarray, shape (batch, n)
    """
    ranked = rank_plan(values) if order is None else _with_order(values, order)
    return compiled().midranks_rows(ranked.sorted, ranked.order, _rows(weights))


def spearman_fixed(plan_x: Ranked, plan_y: Ranked, weights) -> np.ndarray:
    """Weighted Spearman correlation of ranked vectors for a batch of weights.

    Each of ``plan_x``, ``plan_y`` and ``weights`` holds one row shared by the
    batch or one row per resample; nothing is sorted here.
    """
    return compiled().spearman_rows(plan_x.sorted, plan_x.order, plan_y.sorted, plan_y.order, _rows(weights))


def weighted_spearman(x, y, weights, order_x=None, order_y=None) -> np.ndarray:
    """Spearman correlation (Pearson of average ranks) with unit weights, batched."""
    plan_x = rank_plan(x) if order_x is None else _with_order(x, order_x)
    plan_y = rank_plan(y) if order_y is None else _with_order(y, order_y)
    return spearman_fixed(plan_x, plan_y, weights)


def compiled():
    """The compiled kernels, imported on first use (numba takes a moment to load)."""
    from brainres.stats import compiled as module

    return module


def _rows(weights):
    return np.ascontiguousarray(np.atleast_2d(np.asarray(weights, dtype=float)))


def _with_order(values, order):
    values = np.ascontiguousarray(np.atleast_2d(np.asarray(values, dtype=float)))
    order = np.ascontiguousarray(np.atleast_2d(np.asarray(order)).astype(np.int32))
    return Ranked(values, order, np.take_along_axis(values, order, axis=1))


def weighted_kendall(x, y, weights, variant: str = "b") -> np.ndarray:
    """Kendall's tau (``"b"`` or ``"a"``) with unit weights, batched.

    Pairs are weighted by ``w_i * w_j``; duplicates of one unit are tied in
    both variables, as in the expanded data. Tau-a divides by the number of
    pairs of the expanded data, ``N (N - 1) / 2``, so for ``variant="a"`` the
    weights must be the counts themselves (not ``counts / n``). Memory grows
    as ``batch * n**2``.
    """
    x, y, weights = np.broadcast_arrays(*(np.atleast_2d(np.asarray(a, dtype=float)) for a in (x, y, weights)))
    upper = np.triu(np.ones((x.shape[1], x.shape[1]), bool), 1)
    sign_x = np.sign(x[:, :, None] - x[:, None, :])
    sign_y = np.sign(y[:, :, None] - y[:, None, :])
    pair_weight = weights[:, :, None] * weights[:, None, :] * upper
    concordance = (pair_weight * sign_x * sign_y).sum(axis=(1, 2))
    if variant == "a":
        total = weights.sum(axis=1)
        return concordance / (total * (total - 1) / 2)
    untied_x = (pair_weight * (sign_x != 0)).sum(axis=(1, 2))
    untied_y = (pair_weight * (sign_y != 0)).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return concordance / np.sqrt(untied_x * untied_y)
