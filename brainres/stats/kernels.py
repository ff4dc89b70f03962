"""Batched weighted correlation kernels: the inner loop of every bootstrap.

Each kernel takes unit weights of shape ``(batch, n)`` (or ``(n,)``) and
returns one value per row. With weights ``counts / n`` of a bootstrap
resample the value equals the statistic on the resampled data with its
duplicated units; ranks are average ranks of that expanded data, so the ties
created by drawing with replacement are handled as ``scipy.stats.rankdata``
handles them. A vector that stays fixed across resamples is sorted once
(:func:`rank_plan`) and ranked per resample without sorting
(:func:`spearman_fixed`).
"""

from __future__ import annotations

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
        ``argsort(values)`` when already known; pass it for 1-d ``values``
        that stay fixed across a batch so they are sorted once.

    Returns
    -------
    numpy.ndarray, shape (batch, n)
    """
    values = np.asarray(values, dtype=float)
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    if values.ndim == 2 and values.shape[0] == 1:
        values = values[0]
    if values.ndim == 1:
        # One set of values for the whole batch: sort once, permute columns.
        order = np.argsort(values) if order is None else np.asarray(order).reshape(-1)
        sorted_values = values[order][None, :]
        sorted_weights = weights[:, order]
        sorted_ranks = _sorted_ranks(sorted_values, sorted_weights)
        ranks = np.empty_like(sorted_ranks)
        ranks[:, order] = sorted_ranks
        return ranks
    # One set of values per resample: a row-wise sort (the costly part).
    batch, n = values.shape
    order = np.argsort(values, axis=1) if order is None else order
    flat = (order + (np.arange(batch) * n)[:, None]).ravel()
    sorted_values = np.take(values.ravel(), flat).reshape(batch, n)
    sorted_weights = np.take(np.broadcast_to(weights, (batch, n)).ravel(), flat).reshape(batch, n)
    sorted_ranks = _sorted_ranks(sorted_values, sorted_weights)
    ranks = np.empty(batch * n)
    ranks[flat] = sorted_ranks.ravel()
    return ranks.reshape(batch, n)


def _sorted_ranks(sorted_values, sorted_weights):
    """Average weighted ranks of values already in ascending order (ties share a rank)."""
    cumulative = np.cumsum(sorted_weights, axis=1)
    tied = sorted_values[:, 1:] == sorted_values[:, :-1]
    if not tied.any():
        return cumulative - sorted_weights / 2
    # Every member of a tie group gets the midpoint of the group's weight span.
    n = sorted_weights.shape[1]
    positions = np.arange(n)
    ones = np.ones((tied.shape[0], 1), bool)
    is_last = np.concatenate([~tied, ones], axis=1)
    is_first = np.concatenate([ones, ~tied], axis=1)
    group_last = np.minimum.accumulate(np.where(is_last, positions, n)[:, ::-1], axis=1)[:, ::-1]
    group_first = np.maximum.accumulate(np.where(is_first, positions, 0), axis=1)
    below = cumulative - sorted_weights
    if tied.shape[0] == 1:
        # One set of values for the whole batch: the tie groups are shared columns.
        return (below[:, group_first[0]] + cumulative[:, group_last[0]]) / 2
    end = np.take_along_axis(cumulative, group_last, axis=1)
    start = np.take_along_axis(below, group_first, axis=1)
    return (start + end) / 2


def rank_plan(values) -> dict:
    """Precomputed sort order and tie groups of a vector that stays fixed across resamples.

    Used by :func:`spearman_fixed` so that a batch of weights is ranked with a
    column gather and a cumulative sum, without sorting.
    """
    values = np.asarray(values, dtype=float).reshape(-1)
    order = np.argsort(values)
    sorted_values = values[order]
    tied = sorted_values[1:] == sorted_values[:-1]
    plan = {"order": order, "position": np.empty_like(order), "first": None, "last": None}
    plan["position"][order] = np.arange(order.size)
    if tied.any():
        n = order.size
        positions = np.arange(n)
        is_last = np.append(~tied, True)
        is_first = np.insert(~tied, 0, True)
        plan["last"] = np.minimum.accumulate(np.where(is_last, positions, n)[::-1])[::-1]
        plan["first"] = np.maximum.accumulate(np.where(is_first, positions, 0))
    return plan


def _ranks_in_plan_order(plan, weights):
    """Weighted mid-ranks in the plan's sorted order, with the weights in that order."""
    sorted_weights = weights[:, plan["order"]]
    cumulative = np.cumsum(sorted_weights, axis=1)
    if plan["first"] is None:
        cumulative -= sorted_weights / 2
        return cumulative, sorted_weights
    below = cumulative - sorted_weights
    return (below[:, plan["first"]] + cumulative[:, plan["last"]]) / 2, sorted_weights


def spearman_fixed(plan_x, plan_y, weights) -> np.ndarray:
    """Weighted Spearman correlation of two fixed vectors for a batch of weights.

    Equals :func:`weighted_spearman` but needs no sort: both vectors' orders
    and tie groups come from :func:`rank_plan`. Works in ``x``'s sorted order
    and uses that weighted mid-ranks have weighted mean ``total / 2``.
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    rank_x, weights_x = _ranks_in_plan_order(plan_x, weights)
    rank_y_sorted, _ = _ranks_in_plan_order(plan_y, weights)
    # y's ranks brought into x's sorted order.
    rank_y = rank_y_sorted[:, plan_y["position"][plan_x["order"]]]
    total = weights_x.sum(axis=1)
    centre = total**3 / 4
    weighted_x = weights_x * rank_x
    covariance = np.einsum("ij,ij->i", weighted_x, rank_y) - centre
    variance_x = np.einsum("ij,ij->i", weighted_x, rank_x) - centre
    variance_y = np.einsum("ij,ij->i", weights_x * rank_y, rank_y) - centre
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip(covariance / np.sqrt(variance_x * variance_y), -1.0, 1.0)


def is_uniform(weights) -> bool:
    """True for a batch of identical, equal weights (a factor that is not resampled)."""
    return weights.strides[0] == 0 and np.ptp(weights[0]) == 0


def spearman_rows_uniform(x, order_x, plan_y):
    """Spearman of each row of ``x`` (argsorted in ``order_x``) with a fixed ``y``, equal weights.

    With equal weights the ranks of a tie-free row are just its sort
    positions, so only ``y``'s ranks need gathering. Returns None when a row
    has ties (the caller then takes the general path).
    """
    batch, n = x.shape
    flat = (order_x + (np.arange(batch) * n)[:, None]).ravel()
    sorted_x = np.take(x.ravel(), flat).reshape(batch, n)
    if (sorted_x[:, 1:] == sorted_x[:, :-1]).any():
        return None
    uniform = np.full((1, n), 1.0 / n)
    rank_y_sorted, _ = _ranks_in_plan_order(plan_y, uniform)
    rank_y = rank_y_sorted[0, plan_y["position"]]
    rank_x = (np.arange(n) + 0.5) / n
    covariance = rank_y[order_x] @ rank_x / n - 0.25
    variance_x = rank_x @ rank_x / n - 0.25
    variance_y = rank_y @ rank_y / n - 0.25
    return np.clip(covariance / np.sqrt(variance_x * variance_y), -1.0, 1.0)


def weighted_spearman(x, y, weights, order_x=None, order_y=None) -> np.ndarray:
    """Spearman correlation (Pearson of average ranks) with unit weights, batched."""
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    rank_x = weighted_ranks(x, weights, order_x)
    rank_y = weighted_ranks(y, weights, order_y)
    return weighted_pearson(rank_x, rank_y, weights)


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


def weighted_correlation(x, y, weights, method: str = "spearman") -> np.ndarray:
    """Dispatch to the weighted kernel of ``method`` ("pearson", "spearman", "kendall")."""
    if method not in ("pearson", "spearman", "kendall"):
        raise ValueError(f"method must be 'pearson', 'spearman' or 'kendall', got {method!r}")
    if method == "pearson":
        return weighted_pearson(x, y, weights)
    if method == "spearman":
        return weighted_spearman(x, y, weights)
    return weighted_kendall(x, y, weights)
