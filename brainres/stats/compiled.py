"""Compiled inner loops of the resampling engine (numba), with a numpy twin for first use.

The loops that dominate a bootstrap of a rank correlation are compiled here,
each parallel over resamples (rows), and each row is computed on its own, so
the numbers do not depend on the number of threads or on the batch size:

- :func:`bootstrap_counts`: how often each unit is drawn in each resample.
  Row ``r`` of a bootstrap uses draws ``r * n ... r * n + n - 1`` of a
  SplitMix64 stream keyed by one 64-bit integer from the caller's
  ``numpy.random.Generator``; indices come from the high half of a 64 x 64-bit
  product (Lemire), whose bias is below ``n / 2**64``. Drawing the indices
  with numpy and counting them with ``bincount`` cost more than the whole
  statistic.
- :func:`argsort_rows`: a bucket sort (four buckets per value over the
  row's range, then an insertion pass; quicksort when values crowd), about
  four times faster than ``numpy.argsort`` on rows of a few thousand.
- :func:`crossed_spearman`: every factor subset of a seed x stimulus x
  subject bootstrap of a Spearman correlation in one pass per resample (the
  dual correction needs all of them); sorts and ranks are shared between
  subsets.
- :func:`spearman_rows` and :func:`spearman_pairs`: weighted mid-ranks (ties,
  including the duplicates a resample creates, share the mean rank of their
  group, as ``scipy.stats.rankdata`` does on the expanded data) and their
  weighted Pearson correlation in one pass per row.

First use
---------
numba compiles a function the first time it is called and caches the machine
code on disk (``cache=True``; the cache is keyed by this file's path and
modification time, so a fresh installation starts without one). Compiling
every kernel takes tens of seconds, so the public functions here dispatch:

* a kernel whose compiled code is in memory or in numba's on-disk cache runs
  compiled;
* otherwise the call runs a numpy implementation of the same computation
  (same draws, same ranks, equal results up to rounding: the tests check
  1e-10) and, once per process, a background process (``python -m
  brainres.stats.compiled``) compiles every kernel into the cache. Later
  calls switch to the compiled code as soon as it is cached.

``BRAINRES_KERNELS`` chooses: ``auto`` (the default, above), ``compiled``
(compile in this process on first use, the behaviour before the numpy twin)
or ``numpy`` (never compile). ``python -m brainres.stats.compiled`` (or
:func:`warm_up`) fills the cache ahead of time, e.g. in an image build or a
CI step after installation.

The parallel loops run over chunks of rows and call one plain compiled
function per chunk: nothing inside a ``prange`` body but that call, which
keeps numba's parallel passes small (compiling is faster, and the parfor
reduction analysis that fails with a ``RecursionError`` on big loop bodies
under numba 0.68.0 with Python 3.12 has nothing to analyse).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import warnings

import numpy as np
from numba import njit, prange

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_LOW_32 = np.uint64(0xFFFFFFFF)
_BUCKETS_PER_VALUE = 4  # few values share a bucket, so the insertion pass rarely moves any
_MOVE_BUDGET = 8  # insertion moves per value before a row falls back to quicksort

# Factor subsets evaluated by crossed_spearman, in the order of its output rows.
CROSSED_SUBSETS = (("seed",), ("stimulus",), ("subject",), ("seed", "stimulus"), ("seed", "subject"),
                   ("stimulus", "subject"), ("seed", "stimulus", "subject"))

MODES = ("auto", "compiled", "numpy")


# --- compiled kernels -------------------------------------------------------------


@njit(cache=True, inline="always")
def _splitmix(state):
    z = state
    z = (z ^ (z >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def _below(random, n):
    """floor(random * n / 2**64) for n < 2**32, without 128-bit integers."""
    high = random >> np.uint64(32)
    low = random & _LOW_32
    return (high * n + ((low * n) >> np.uint64(32))) >> np.uint64(32)


@njit(cache=True, inline="always")
def _chunk(chunk, n_chunks, n_rows):
    """Rows of one chunk: each thread works on whole chunks and reuses its scratch arrays."""
    return chunk * n_rows // n_chunks, (chunk + 1) * n_rows // n_chunks


@njit(cache=True, inline="always")
def _n_chunks(n_rows):
    return min(n_rows, 64)


@njit(cache=True)
def _count_rows(counts, key, size, first_row, first, stop):
    n = counts.shape[1]
    for r in range(first, stop):
        start = key + np.uint64(first_row) * size * _GAMMA + np.uint64(r) * size * _GAMMA
        for i in range(n):
            drawn = _below(_splitmix(start + np.uint64(i + 1) * _GAMMA), size)
            counts[r, drawn] += 1


@njit(cache=True, parallel=True)
def _bootstrap_counts_kernel(key, n, first_row, n_rows):
    counts = np.zeros((n_rows, n), dtype=np.int32)
    key = np.uint64(key)
    size = np.uint64(n)
    n_chunks = _n_chunks(n_rows)
    for chunk in prange(n_chunks):
        first, stop = _chunk(chunk, n_chunks, n_rows)
        _count_rows(counts, key, size, first_row, first, stop)
    return counts


@njit(cache=True)
def _argsort_row(values, order, bucket_of, starts):
    """Ascending order of ``values`` into ``order``.

    Bucket sort: ``_BUCKETS_PER_VALUE`` buckets per value spread evenly over
    the row's range, then one insertion pass that only has to swap values
    sharing a bucket. ``starts`` needs ``_BUCKETS_PER_VALUE * n + 1`` slots.
    Rows with NaN or infinite values, or whose values crowd a few buckets
    (more than ``_MOVE_BUDGET`` moves per value), fall back to quicksort.
    """
    n = values.size
    low = values[0]
    high = values[0]
    for i in range(n):
        v = values[i]
        if v != v:
            order[:] = np.argsort(values).astype(order.dtype)  # NaN last, as numpy
            return
        low = min(low, v)
        high = max(high, v)
    span = high - low
    if not (span > 0 and span < np.inf):
        order[:] = np.argsort(values).astype(order.dtype)
        return
    n_buckets = _BUCKETS_PER_VALUE * n
    scale = n_buckets / span  # (v - low) * scale is monotone in v: buckets are ordered
    starts[: n_buckets + 1] = 0
    for i in range(n):
        b = min(int((values[i] - low) * scale), n_buckets - 1)
        bucket_of[i] = b
        starts[b + 1] += 1
    for b in range(n_buckets):
        starts[b + 1] += starts[b]
    for i in range(n):
        b = bucket_of[i]
        order[starts[b]] = i
        starts[b] += 1
    budget = _MOVE_BUDGET * n
    for t in range(1, n):
        item = order[t]
        v = values[item]
        s = t - 1
        while s >= 0 and values[order[s]] > v:
            order[s + 1] = order[s]
            s -= 1
        order[s + 1] = item
        budget -= t - 1 - s
        if budget < 0:  # crowded buckets of distinct values: insertion would be quadratic
            order[:] = np.argsort(values).astype(order.dtype)
            return


@njit(cache=True)
def _argsort_chunk(values, order, first, stop):
    n = values.shape[1]
    bucket_of = np.empty(n, dtype=np.int32)
    starts = np.empty(_BUCKETS_PER_VALUE * n + 1, dtype=np.int64)
    for row in range(first, stop):
        _argsort_row(values[row], order[row], bucket_of, starts)


@njit(cache=True, parallel=True)
def _argsort_rows_kernel(values):
    n_rows, n = values.shape
    order = np.empty((n_rows, n), dtype=np.int32)
    n_chunks = _n_chunks(n_rows)
    for chunk in prange(n_chunks):
        first, stop = _chunk(chunk, n_chunks, n_rows)
        _argsort_chunk(values, order, first, stop)
    return order


@njit(cache=True, inline="always")
def _has_ties(sorted_values):
    for t in range(1, sorted_values.size):
        if sorted_values[t] == sorted_values[t - 1]:
            return True
    return False


@njit(cache=True, inline="always")
def _tie_group(sorted_values, order, weights, first):
    """End (exclusive) and total weight of the run of values equal to ``sorted_values[first]``."""
    stop = first + 1
    group = weights[order[first]]
    while stop < sorted_values.size and sorted_values[stop] == sorted_values[first]:
        group += weights[order[stop]]
        stop += 1
    return stop, group


@njit(cache=True, inline="always")
def _midranks(sorted_values, order, weights, ranks, centre, ties):
    """Weighted mid-ranks minus ``centre`` into ``ranks``; returns their weighted sum of squares.

    ``sorted_values`` are the values in ascending order, ``order`` their
    units (``sorted_values[t] == values[order[t]]``), so ties are found by
    comparing neighbours; ``ties=False`` (no two values equal) takes a
    branch-free loop. A unit's mid-rank is the weight strictly below it plus
    half the weight of its tie group; with ``centre = total weight / 2`` the
    ranks are centred (weighted mid-ranks have weighted mean ``total / 2``).
    """
    n = order.size
    below = 0.0
    square_sum = 0.0
    if not ties:
        for t in range(n):
            unit = order[t]
            weight = weights[unit]
            rank = below + weight / 2 - centre
            ranks[unit] = rank
            square_sum += weight * rank * rank
            below += weight
        return square_sum
    i = 0
    while i < n:
        stop, group = _tie_group(sorted_values, order, weights, i)
        rank = below + group / 2 - centre
        for t in range(i, stop):
            ranks[order[t]] = rank
        square_sum += group * rank * rank
        below += group
        i = stop
    return square_sum


@njit(cache=True, inline="always")
def _midrank_products(sorted_values, order, weights, other, centre, ties):
    """Like :func:`_midranks` without storing: ``(sum w * rank * other, sum w * rank**2)``."""
    n = order.size
    below = 0.0
    product_sum = 0.0
    square_sum = 0.0
    if not ties:
        for t in range(n):
            unit = order[t]
            weight = weights[unit]
            rank = below + weight / 2 - centre
            product_sum += weight * rank * other[unit]
            square_sum += weight * rank * rank
            below += weight
        return product_sum, square_sum
    i = 0
    while i < n:
        stop, group = _tie_group(sorted_values, order, weights, i)
        rank = below + group / 2 - centre
        other_sum = 0.0
        for t in range(i, stop):
            unit = order[t]
            other_sum += weights[unit] * other[unit]
        product_sum += rank * other_sum
        square_sum += group * rank * rank
        below += group
        i = stop
    return product_sum, square_sum


@njit(cache=True, inline="always")
def _correlation(product_sum, square_sum_x, square_sum_y):
    if not (square_sum_x > 0 and square_sum_y > 0):
        return np.nan
    return max(-1.0, min(1.0, product_sum / np.sqrt(square_sum_x * square_sum_y)))


@njit(cache=True, inline="always")
def _total(weights):
    total = 0.0
    for i in range(weights.size):
        total += weights[i]
    return total


@njit(cache=True)
def _spearman_chunk(out, x, x_order, y, y_order, weights, first, stop):
    rank_y = np.empty(weights.shape[1])
    for row in range(first, stop):
        w = weights[row if weights.shape[0] > 1 else 0]
        ix = row if x.shape[0] > 1 else 0
        iy = row if y.shape[0] > 1 else 0
        centre = _total(w) / 2
        square_y = _midranks(y[iy], y_order[iy], w, rank_y, centre, _has_ties(y[iy]))
        product, square_x = _midrank_products(x[ix], x_order[ix], w, rank_y, centre, _has_ties(x[ix]))
        out[row] = _correlation(product, square_x, square_y)


@njit(cache=True, parallel=True)
def _spearman_rows_kernel(x, x_order, y, y_order, weights):
    batch = max(x.shape[0], y.shape[0], weights.shape[0])
    out = np.empty(batch)
    n_chunks = _n_chunks(batch)
    for chunk in prange(n_chunks):
        first, stop = _chunk(chunk, n_chunks, batch)
        _spearman_chunk(out, x, x_order, y, y_order, weights, first, stop)
    return out


@njit(cache=True)
def _pairs_chunk(out, x, x_order, x_ties, ys, y_orders, y_ties, stimulus_weights, rows, cols, first, stop):
    k, n_pairs = ys.shape
    w = np.empty(n_pairs)
    rank_x = np.empty(n_pairs)
    for row in range(first, stop):
        sw = stimulus_weights[row]
        for p in range(n_pairs):
            w[p] = sw[rows[p]] * sw[cols[p]]
        centre = _total(w) / 2
        square_x = _midranks(x, x_order, w, rank_x, centre, x_ties)
        for j in range(k):
            product, square_y = _midrank_products(ys[j], y_orders[j], w, rank_x, centre, y_ties[j])
            out[row, j] = _correlation(product, square_x, square_y)


@njit(cache=True, parallel=True)
def _spearman_pairs_kernel(x, x_order, ys, y_orders, stimulus_weights, rows, cols):
    batch = stimulus_weights.shape[0]
    k = ys.shape[0]
    out = np.empty((batch, k))
    x_ties = _has_ties(x)
    y_ties = np.zeros(k, dtype=np.bool_)
    for j in range(k):
        y_ties[j] = _has_ties(ys[j])
    n_chunks = _n_chunks(batch)
    for chunk in prange(n_chunks):
        first, stop = _chunk(chunk, n_chunks, batch)
        _pairs_chunk(out, x, x_order, x_ties, ys, y_orders, y_ties, stimulus_weights, rows, cols, first, stop)
    return out


@njit(cache=True)
def _midranks_chunk(ranks, values, order, weights, first, stop):
    for row in range(first, stop):
        i = row if values.shape[0] > 1 else 0
        _midranks(values[i], order[i], weights[row if weights.shape[0] > 1 else 0], ranks[row], 0.0,
                  _has_ties(values[i]))


@njit(cache=True, parallel=True)
def _midranks_rows_kernel(values, order, weights):
    batch = max(values.shape[0], weights.shape[0])
    ranks = np.empty((batch, weights.shape[1]))
    n_chunks = _n_chunks(batch)
    for chunk in prange(n_chunks):
        first, stop = _chunk(chunk, n_chunks, batch)
        _midranks_chunk(ranks, values, order, weights, first, stop)
    return ranks


@njit(cache=True, inline="always")
def _sort_row(values, order, sorted_values, bucket_of, starts):
    """Order and sorted copy of one row; returns whether it has ties."""
    _argsort_row(values, order, bucket_of, starts)
    for t in range(values.size):
        sorted_values[t] = values[order[t]]
    return _has_ties(sorted_values)


@njit(cache=True, inline="always")
def _against_human(out, row, mean_subset, seed_subset, human, human_order, human_ties, weights, centre, ranks,
                   mean, mean_order, mean_ties, seed_sorted, seed_order, seed_ties, with_seeds, wanted):
    """Rank one human side under ``weights`` and correlate it with the seed mean and the seed sum.

    Writes ``out[mean_subset, row]`` and ``out[seed_subset, row]`` when wanted.
    """
    seed_wanted = with_seeds and wanted[seed_subset]
    if not (wanted[mean_subset] or seed_wanted):
        return
    human_square = _midranks(human, human_order, weights, ranks, centre, human_ties)
    if wanted[mean_subset]:
        product, square = _midrank_products(mean, mean_order, weights, ranks, centre, mean_ties)
        out[mean_subset, row] = _correlation(product, square, human_square)
    if seed_wanted:
        product, square = _midrank_products(seed_sorted, seed_order, weights, ranks, centre, seed_ties)
        out[seed_subset, row] = _correlation(product, square, human_square)


@njit(cache=True)
def _crossed_chunk(out, first, stop, model, seed_counts, stimulus_counts, subject_counts, human_filled,
                   human_observed, human, human_order, human_ties, mean, mean_order, mean_ties, usable, wanted,
                   fixed_ranks, fixed_centre, fixed_square):
    """Rows ``first ... stop - 1`` of :func:`crossed_spearman` (one thread's share)."""
    with_seeds = seed_counts.shape[0] > 0
    with_stimuli = stimulus_counts.shape[0] > 0
    with_subjects = subject_counts.shape[0] > 0
    n_seeds, n = model.shape
    n_subjects = human_filled.shape[0]
    bucket_of = np.empty(n, dtype=np.int32)
    starts = np.empty(_BUCKETS_PER_VALUE * n + 1, dtype=np.int64)
    seed_sum = np.empty(n)
    seed_sorted = np.empty(n)
    seed_order = np.empty(n, dtype=np.int32)
    numerator = np.empty(n)
    denominator = np.empty(n)
    drawn_human = np.empty(n)
    drawn_sorted = np.empty(n)
    drawn_order = np.empty(n, dtype=np.int32)
    drawn_usable = np.empty(n)
    weights = np.empty(n)
    drawn_weights = np.empty(n)
    ranks = np.empty(n)
    drawn_ranks = np.empty(n)
    for row in range(first, stop):
        seed_ties = False
        if with_seeds:
            seed_sum[:] = 0.0
            for s in range(n_seeds):
                c = seed_counts[row, s]
                if c != 0:
                    for i in range(n):
                        seed_sum[i] += c * model[s, i]
            seed_ties = _sort_row(seed_sum, seed_order, seed_sorted, bucket_of, starts)
        drawn_ties = False
        if with_subjects:
            numerator[:] = 0.0
            denominator[:] = 0.0
            for j in range(n_subjects):
                c = subject_counts[row, j]
                if c != 0:
                    for i in range(n):
                        numerator[i] += c * human_filled[j, i]
                        denominator[i] += c * human_observed[j, i]
            for i in range(n):
                # Stimuli none of the drawn subjects saw get no weight.
                drawn_usable[i] = 1.0 if denominator[i] > 0 else 0.0
                drawn_human[i] = numerator[i] / denominator[i] if denominator[i] > 0 else 0.0
            drawn_ties = _sort_row(drawn_human, drawn_order, drawn_sorted, bucket_of, starts)
        total = 0.0
        drawn_total = 0.0
        if with_stimuli:
            for i in range(n):
                weights[i] = stimulus_counts[row, i] * usable[i]
                total += weights[i]
                if with_subjects:
                    drawn_weights[i] = stimulus_counts[row, i] * drawn_usable[i]
                    drawn_total += drawn_weights[i]
        # Seeds only, stimuli once, every subject.
        if with_seeds and wanted[0]:
            product, square = _midrank_products(seed_sorted, seed_order, usable, fixed_ranks, fixed_centre,
                                                seed_ties)
            out[0, row] = _correlation(product, square, fixed_square)
        # Each human side (fixed or drawn subjects, under its stimulus
        # weights) is ranked once and serves the mean and the seed sum.
        if with_stimuli:
            _against_human(out, row, 1, 3, human, human_order, human_ties, weights, total / 2, ranks,
                           mean, mean_order, mean_ties, seed_sorted, seed_order, seed_ties, with_seeds, wanted)
        if with_subjects:
            _against_human(out, row, 2, 4, drawn_sorted, drawn_order, drawn_ties, drawn_usable,
                           _total(drawn_usable) / 2, drawn_ranks, mean, mean_order, mean_ties,
                           seed_sorted, seed_order, seed_ties, with_seeds, wanted)
        if with_subjects and with_stimuli:
            _against_human(out, row, 5, 6, drawn_sorted, drawn_order, drawn_ties, drawn_weights,
                           drawn_total / 2, drawn_ranks, mean, mean_order, mean_ties,
                           seed_sorted, seed_order, seed_ties, with_seeds, wanted)


@njit(cache=True, parallel=True)
def _crossed_spearman_kernel(model, seed_counts, stimulus_counts, subject_counts, human_filled, human_observed,
                             human, human_order, mean, mean_order, usable, wanted):
    batch = max(seed_counts.shape[0], stimulus_counts.shape[0], subject_counts.shape[0])
    n = model.shape[1]
    out = np.full((7, batch), np.nan)
    human_ties = _has_ties(human)
    mean_ties = _has_ties(mean)
    fixed_ranks = np.empty(n)
    fixed_centre = _total(usable) / 2
    fixed_square = _midranks(human, human_order, usable, fixed_ranks, fixed_centre, human_ties)
    n_chunks = _n_chunks(batch)
    for chunk in prange(n_chunks):
        first, stop = _chunk(chunk, n_chunks, batch)
        _crossed_chunk(out, first, stop, model, seed_counts, stimulus_counts, subject_counts, human_filled,
                       human_observed, human, human_order, human_ties, mean, mean_order, mean_ties, usable, wanted,
                       fixed_ranks, fixed_centre, fixed_square)
    return out


# --- the numpy twin (first use, before the compiled code is cached) -----------------

_NUMPY_BLOCK = 1 << 18  # values per block of rows: temporaries stay in cache and memory stays small


def _row_blocks(n_rows, n):
    step = max(1, _NUMPY_BLOCK // max(1, n))
    return [(first, min(n_rows, first + step)) for first in range(0, n_rows, step)]


def _rows_of(array, first, stop, batch):
    """Rows ``first:stop`` of a ``(1, n)`` (shared) or ``(batch, n)`` array, as ``(stop - first, n)``."""
    if array.shape[0] == 1 and batch != 1:
        return np.broadcast_to(array, (stop - first, array.shape[1]))
    return array[first:stop]


def _numpy_bootstrap_counts(key, n, first_row, n_rows):
    counts = np.zeros((n_rows, n), dtype=np.int32)
    if n_rows == 0 or n == 0:
        return counts
    key, size = np.uint64(key), np.uint64(n)
    offsets = (np.arange(1, n + 1, dtype=np.uint64) * _GAMMA)[None, :]
    with np.errstate(over="ignore"):
        base = key + np.uint64(first_row) * size * _GAMMA
        for first, stop in _row_blocks(n_rows, n):
            rows = np.arange(first, stop, dtype=np.uint64)
            z = (base + rows * size * _GAMMA)[:, None] + offsets
            z = (z ^ (z >> np.uint64(30))) * _MIX_1
            z = (z ^ (z >> np.uint64(27))) * _MIX_2
            z = z ^ (z >> np.uint64(31))
            drawn = ((z >> np.uint64(32)) * size + (((z & _LOW_32) * size) >> np.uint64(32))) >> np.uint64(32)
            flat = drawn.astype(np.int64) + (np.arange(stop - first, dtype=np.int64) * n)[:, None]
            counts[first:stop] = np.bincount(flat.ravel(), minlength=(stop - first) * n).reshape(stop - first, n)
    return counts


def _numpy_argsort_rows(values):
    return np.argsort(values, axis=1, kind="stable").astype(np.int32)


def _numpy_sorted_ranks(sorted_values, sorted_weights, centre):
    """Weighted mid-ranks minus ``centre`` in sorted position, for a block of rows."""
    cumulative = np.cumsum(sorted_weights, axis=1)
    below = cumulative - sorted_weights
    tied = sorted_values[:, 1:] == sorted_values[:, :-1]
    if not tied.any():
        return below + sorted_weights / 2 - centre
    rows, n = sorted_values.shape
    position = np.arange(n)
    first = np.ones((rows, n), dtype=bool)
    first[:, 1:] = ~tied
    last = np.ones((rows, n), dtype=bool)
    last[:, :-1] = ~tied
    start = np.maximum.accumulate(np.where(first, position, 0), axis=1)
    end = np.minimum.accumulate(np.where(last, position, n - 1)[:, ::-1], axis=1)[:, ::-1]
    # weight below the group + half the group's weight = (below at its start + cumulative at its end) / 2
    return (np.take_along_axis(below, start, axis=1) + np.take_along_axis(cumulative, end, axis=1)) / 2 - centre


def _numpy_ranks(sorted_values, order, weights, centre):
    """Centred weighted mid-ranks per unit and their weighted sums of squares, for a block of rows."""
    sorted_weights = np.take_along_axis(weights, order, axis=1)
    in_order = _numpy_sorted_ranks(sorted_values, sorted_weights, centre)
    ranks = np.empty(in_order.shape)
    np.put_along_axis(ranks, np.ascontiguousarray(order), in_order, axis=1)
    return ranks, np.einsum("ij,ij->i", sorted_weights, in_order * in_order)


def _numpy_correlation(product, square_x, square_y):
    with np.errstate(invalid="ignore", divide="ignore"):
        r = product / np.sqrt(square_x * square_y)
    return np.where((square_x > 0) & (square_y > 0), np.clip(r, -1.0, 1.0), np.nan)


def _numpy_spearman(x_sorted, x_order, y_sorted, y_order, weights):
    """Weighted Spearman per row of a block (every argument already ``(rows, n)``)."""
    centre = weights.sum(axis=1, keepdims=True) / 2
    rank_x, square_x = _numpy_ranks(x_sorted, x_order, weights, centre)
    rank_y, square_y = _numpy_ranks(y_sorted, y_order, weights, centre)
    return _numpy_correlation(np.einsum("ij,ij->i", weights * rank_x, rank_y), square_x, square_y)


def _numpy_spearman_rows(x, x_order, y, y_order, weights):
    batch = max(x.shape[0], y.shape[0], weights.shape[0])
    out = np.empty(batch)
    for first, stop in _row_blocks(batch, weights.shape[1]):
        parts = [_rows_of(a, first, stop, batch) for a in (x, x_order, y, y_order, weights)]
        out[first:stop] = _numpy_spearman(*parts)
    return out


def _numpy_spearman_pairs(x, x_order, ys, y_orders, stimulus_weights, rows, cols):
    batch = stimulus_weights.shape[0]
    out = np.empty((batch, ys.shape[0]))
    for first, stop in _row_blocks(batch, rows.size):
        sw = stimulus_weights[first:stop]
        w = sw[:, rows] * sw[:, cols]
        size = (stop - first, rows.size)
        centre = w.sum(axis=1, keepdims=True) / 2
        rank_x, square_x = _numpy_ranks(np.broadcast_to(x, size), np.broadcast_to(x_order, size), w, centre)
        weighted = w * rank_x
        for j in range(ys.shape[0]):
            rank_y, square_y = _numpy_ranks(np.broadcast_to(ys[j], size), np.broadcast_to(y_orders[j], size), w,
                                            centre)
            out[first:stop, j] = _numpy_correlation(np.einsum("ij,ij->i", weighted, rank_y), square_x, square_y)
    return out


def _numpy_midranks_rows(values, order, weights):
    batch = max(values.shape[0], weights.shape[0])
    ranks = np.empty((batch, weights.shape[1]))
    for first, stop in _row_blocks(batch, weights.shape[1]):
        ranks[first:stop] = _numpy_ranks(_rows_of(values, first, stop, batch), _rows_of(order, first, stop, batch),
                                         _rows_of(weights, first, stop, batch), 0.0)[0]
    return ranks


def _numpy_sorted(values):
    order = np.argsort(values, axis=1, kind="stable")
    return np.take_along_axis(values, order, axis=1), order


def _numpy_crossed_spearman(model, seed_counts, stimulus_counts, subject_counts, human_filled, human_observed,
                            human, human_order, mean, mean_order, usable, wanted):
    with_seeds = seed_counts.shape[0] > 0
    with_stimuli = stimulus_counts.shape[0] > 0
    with_subjects = subject_counts.shape[0] > 0
    batch = max(seed_counts.shape[0], stimulus_counts.shape[0], subject_counts.shape[0])
    n = model.shape[1]
    out = np.full((7, batch), np.nan)
    fixed_centre = usable.sum() / 2
    fixed_ranks, fixed_square = _numpy_ranks(human[None], human_order[None], usable[None], fixed_centre)
    for first, stop in _row_blocks(batch, n):
        size = (stop - first, n)
        if with_seeds:
            # Summed seed by seed in the order of the compiled loop: equal sums stay exactly equal.
            seed_sum = np.zeros(size)
            for s in range(model.shape[0]):
                seed_sum += seed_counts[first:stop, s, None] * model[s]
            seed_sorted, seed_order = _numpy_sorted(seed_sum)
        if with_subjects:
            numerator, denominator = np.zeros(size), np.zeros(size)
            for j in range(human_filled.shape[0]):
                numerator += subject_counts[first:stop, j, None] * human_filled[j]
                denominator += subject_counts[first:stop, j, None] * human_observed[j]
            drawn_usable = (denominator > 0).astype(float)
            with np.errstate(invalid="ignore", divide="ignore"):
                drawn_sorted, drawn_order = _numpy_sorted(np.where(denominator > 0, numerator / denominator, 0.0))
        sides = []  # (mean subset, seed subset, human sorted, human order, weights)
        if with_stimuli:
            weights = stimulus_counts[first:stop] * usable
            sides.append((1, 3, np.broadcast_to(human, size), np.broadcast_to(human_order, size), weights))
        if with_subjects:
            sides.append((2, 4, drawn_sorted, drawn_order, drawn_usable))
            if with_stimuli:
                sides.append((5, 6, drawn_sorted, drawn_order, stimulus_counts[first:stop] * drawn_usable))
        if with_seeds and wanted[0]:
            weights = np.broadcast_to(usable, size)
            ranks, square = _numpy_ranks(seed_sorted, seed_order, weights, fixed_centre)
            product = np.einsum("ij,ij->i", weights * ranks, np.broadcast_to(fixed_ranks, size))
            out[0, first:stop] = _numpy_correlation(product, square, fixed_square)
        for mean_subset, seed_subset, side_sorted, side_order, weights in sides:
            seed_wanted = with_seeds and wanted[seed_subset]
            if not (wanted[mean_subset] or seed_wanted):
                continue
            centre = weights.sum(axis=1, keepdims=True) / 2
            human_ranks, human_square = _numpy_ranks(side_sorted, side_order, weights, centre)
            weighted = weights * human_ranks
            others = [(mean_subset, np.broadcast_to(mean, size), np.broadcast_to(mean_order, size))]
            if seed_wanted:
                others.append((seed_subset, seed_sorted, seed_order))
            for subset, other_sorted, other_order in others:
                if wanted[subset]:
                    ranks, square = _numpy_ranks(other_sorted, other_order, weights, centre)
                    out[subset, first:stop] = _numpy_correlation(np.einsum("ij,ij->i", weighted, ranks), square,
                                                                 human_square)
    return out


# --- dispatch ---------------------------------------------------------------------


def _as(array, dtype, ndim):
    """C-contiguous, writable ``dtype`` array: one compiled signature per kernel argument."""
    array = np.require(array, dtype=dtype, requirements=["C", "W"])
    if array.ndim != ndim:
        raise ValueError(f"expected a {ndim}-d array, got shape {array.shape}")
    return array


def _mode():
    mode = os.environ.get("BRAINRES_KERNELS", "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"BRAINRES_KERNELS must be one of {MODES}, got {mode!r}")
    return mode


_loaded = set()  # (kernel name, signature) known to be compiled or cached
_warm_up = {"process": None, "log": None, "warned": False}
_lock = threading.Lock()


def _is_cached(kernel, args):
    """Whether ``kernel(*args)`` runs without compiling: in memory already, or in numba's disk cache."""
    try:
        signature = tuple(kernel.typeof_pyval(a) for a in args)
    except Exception:  # noqa: BLE001 - jit disabled or numba changed: compile on use, as before
        return True
    if (kernel.__name__, signature) in _loaded or signature in kernel.overloads:
        return True
    try:
        cache = kernel._cache
        key = cache._index_key(signature, kernel.targetctx.codegen())
        cached = key in cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - numba's cache internals changed: compile on use, as before
        return True
    if cached:
        _loaded.add((kernel.__name__, signature))
    return cached


def _start_warm_up():
    """Compile every kernel into numba's cache in a background process (once per process)."""
    with _lock:
        if _warm_up["process"] is not None:
            process = _warm_up["process"]
            if process.poll() not in (None, 0) and not _warm_up["warned"]:
                _warm_up["warned"] = True
                warnings.warn(
                    "compiling brainres' statistics kernels in the background failed "
                    f"(exit status {process.returncode}; log: {_warm_up['log']}); the numpy implementation is used. "
                    "Run `python -m brainres.stats.compiled` to see the error, or set BRAINRES_KERNELS=numpy.",
                    RuntimeWarning, stacklevel=4,
                )
            return
        log = tempfile.NamedTemporaryFile(prefix="brainres-kernels-", suffix=".log", delete=False)
        _warm_up["log"] = log.name
        environment = dict(os.environ, BRAINRES_KERNELS="compiled")
        try:
            _warm_up["process"] = subprocess.Popen(
                [sys.executable, "-c", "import sys; from brainres.stats import compiled; sys.exit(compiled._main(['--quiet']))"],
                env=environment,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        except OSError as err:  # no way to start it: stay with numpy in this process
            _warm_up["process"] = _Failed(err)
        finally:
            log.close()


class _Failed:
    def __init__(self, err):
        self.returncode = 1
        self.error = err

    def poll(self):
        return self.returncode


def _run(name, kernel, fallback, args):
    mode = _mode()
    if mode == "compiled" or (mode == "auto" and _is_cached(kernel, args)):
        return kernel(*args)
    if mode == "auto":
        _start_warm_up()
    return fallback(*args)


def bootstrap_counts(key, n, first_row, n_rows):
    """Counts ``(n_rows, n)`` (int32) of units drawn with replacement, rows ``first_row...``."""
    args = (np.uint64(key), int(n), int(first_row), int(n_rows))
    return _run("bootstrap_counts", _bootstrap_counts_kernel, _numpy_bootstrap_counts, args)


def argsort_rows(values):
    """Row-wise ascending order (int32) of a 2-d float array."""
    args = (_as(values, np.float64, 2),)
    return _run("argsort_rows", _argsort_rows_kernel, _numpy_argsort_rows, args)


def spearman_rows(x, x_order, y, y_order, weights):
    """Weighted Spearman correlation per row.

    ``x`` and ``y`` are sorted row-wise, with their orders (``argsort``);
    these and ``weights`` have shape ``(1, n)`` or ``(batch, n)``; a single
    row is shared by every resample. Returns ``(batch,)``.
    """
    args = (_as(x, np.float64, 2), _as(x_order, np.int32, 2), _as(y, np.float64, 2), _as(y_order, np.int32, 2),
            _as(weights, np.float64, 2))
    return _run("spearman_rows", _spearman_rows_kernel, _numpy_spearman_rows, args)


def spearman_pairs(x, x_order, ys, y_orders, stimulus_weights, rows, cols):
    """Spearman of one vector over stimulus pairs against several, per resample.

    The weight of pair ``p`` is ``stimulus_weights[:, rows[p]] *
    stimulus_weights[:, cols[p]]`` (an RDM bootstrap over stimuli). ``x``
    (sorted, ``(n_pairs,)``) and ``ys`` (each row sorted, ``(k, n_pairs)``)
    come with their orders. Returns ``(batch, k)``.
    """
    args = (_as(x, np.float64, 1), _as(x_order, np.int32, 1), _as(ys, np.float64, 2), _as(y_orders, np.int32, 2),
            _as(stimulus_weights, np.float64, 2), _as(rows, np.int32, 1), _as(cols, np.int32, 1))
    return _run("spearman_pairs", _spearman_pairs_kernel, _numpy_spearman_pairs, args)


def midranks_rows(values, order, weights):
    """Weighted mid-ranks per row (``values`` sorted); arguments as in :func:`spearman_rows`."""
    args = (_as(values, np.float64, 2), _as(order, np.int32, 2), _as(weights, np.float64, 2))
    return _run("midranks_rows", _midranks_rows_kernel, _numpy_midranks_rows, args)


def crossed_spearman(model, seed_counts, stimulus_counts, subject_counts, human_filled, human_observed,
                     human, human_order, mean, mean_order, usable, wanted):
    """Every factor subset of a seed x stimulus x subject bootstrap of a Spearman correlation, in one pass.

    Resample ``r`` sums the rows of ``model`` (seeds x stimuli) drawn in
    ``seed_counts[r]``, averages the rows of ``human_filled`` (subjects x
    stimuli, missing values 0 and ``human_observed`` 0) drawn in
    ``subject_counts[r]``, and weights stimuli by ``stimulus_counts[r]``.
    Sums of integer counts keep tied measures exactly tied. A factor that is
    not resampled has 0 rows of counts and stays at: every seed (``mean``,
    sorted in ``mean_order``), every subject (``human``, the mean over
    subjects, sorted, with ``usable`` 0 where no subject has a value), every
    stimulus once. Returns ``(7, batch)``, one row per subset in
    ``CROSSED_SUBSETS``; rows not ``wanted`` (seven booleans) stay NaN.
    """
    args = (_as(model, np.float64, 2), _as(seed_counts, np.int32, 2), _as(stimulus_counts, np.int32, 2),
            _as(subject_counts, np.int32, 2), _as(human_filled, np.float64, 2), _as(human_observed, np.float64, 2),
            _as(human, np.float64, 1), _as(human_order, np.int32, 1), _as(mean, np.float64, 1),
            _as(mean_order, np.int32, 1), _as(usable, np.float64, 1), _as(wanted, np.bool_, 1))
    return _run("crossed_spearman", _crossed_spearman_kernel, _numpy_crossed_spearman, args)


# --- ahead-of-time compilation ------------------------------------------------------


def _examples():
    """One call per kernel with the argument types the engine passes (the signatures to cache)."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 8))
    order = np.argsort(values, axis=1).astype(np.int32)
    sorted_values = np.take_along_axis(values, order, axis=1)
    weights = np.ones((3, 8))
    counts = np.ones((3, 8), dtype=np.int32)
    few = np.ones((3, 3), dtype=np.int32)
    rows, cols = (a.astype(np.int32) for a in np.triu_indices(4, 1))
    return [
        ("bootstrap_counts", _bootstrap_counts_kernel, (np.uint64(1), 8, 0, 3)),
        ("crossed_spearman", _crossed_spearman_kernel,
         (values, few, counts, few, values, weights, sorted_values[0], order[0],
          sorted_values[1], order[1], weights[0], np.ones(7, dtype=np.bool_))),
        ("spearman_pairs", _spearman_pairs_kernel,
         (sorted_values[0, :6].copy(), np.argsort(sorted_values[0, :6]).astype(np.int32), sorted_values[:, :6].copy(),
          order[:, :6] % 6, weights[:, :4].copy(), rows, cols)),
        ("argsort_rows", _argsort_rows_kernel, (values,)),
        ("spearman_rows", _spearman_rows_kernel, (sorted_values, order, sorted_values, order, weights)),
        ("midranks_rows", _midranks_rows_kernel, (sorted_values, order, weights)),
    ]


def kernels_cached() -> dict[str, bool]:
    """Whether each kernel's compiled code is in memory or numba's disk cache (no compiling)."""
    return {name: _is_cached(kernel, args) for name, kernel, args in _examples()}


def warm_up(verbose: bool = False) -> dict[str, float]:
    """Compile every kernel now (or load it from numba's cache) and return the seconds each took.

    Run once after installation (``python -m brainres.stats.compiled``) so
    that no later process compiles; processes that find the cache use the
    compiled kernels from their first call.
    """
    import time

    seconds = {}
    for name, kernel, args in _examples():
        started = time.perf_counter()
        kernel(*args)
        seconds[name] = time.perf_counter() - started
        _loaded.add((kernel.__name__, tuple(kernel.typeof_pyval(a) for a in args)))
        if verbose:
            print(f"{name}: {seconds[name]:.2f} s", flush=True)
    from brainres.stats import sparse_kernels  # the sparse designs' kernels share this cache

    started = time.perf_counter()
    sparse_kernels.warm_up()
    seconds["sparse kernels"] = time.perf_counter() - started
    if verbose:
        print(f"sparse kernels: {seconds['sparse kernels']:.2f} s", flush=True)
    return seconds


def _main(argv):
    quiet = "--quiet" in argv
    lock_path = None
    try:
        import fcntl

        lock_path = os.path.join(_bootstrap_counts_kernel._cache.cache_path, "brainres-warm-up.lock")
        os.makedirs(os.path.dirname(lock_path), exist_ok=True)
        handle = open(lock_path, "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            if quiet:  # another process is compiling into the same cache
                return 0
            fcntl.flock(handle, fcntl.LOCK_EX)
    except Exception:  # noqa: BLE001 - no locking (other OS, read-only cache): compile anyway
        pass
    seconds = warm_up(verbose=not quiet)
    if not quiet:
        print(f"brainres statistics kernels compiled and cached in {sum(seconds.values()):.1f} s")
    return 0


if __name__ == "__main__":
    # Compile through the imported module, so the cache entries are those the library loads.
    from brainres.stats import compiled as _module

    sys.exit(_module._main(sys.argv[1:]))
