"""Compiled inner loops of the resampling engine (numba).

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

Functions are compiled on first use and cached on disk (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_LOW_32 = np.uint64(0xFFFFFFFF)
_BUCKETS_PER_VALUE = 4  # few values share a bucket, so the insertion pass rarely moves any
_MOVE_BUDGET = 8  # insertion moves per value before a row falls back to quicksort


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


@njit(cache=True, parallel=True)
def bootstrap_counts(key, n, first_row, n_rows):
    """Counts ``(n_rows, n)`` (int32) of units drawn with replacement, rows ``first_row...``."""
    counts = np.zeros((n_rows, n), dtype=np.int32)
    key = np.uint64(key)
    size = np.uint64(n)
    for r in prange(n_rows):
        start = key + np.uint64(first_row) * size * _GAMMA + np.uint64(r) * size * _GAMMA
        for i in range(n):
            drawn = _below(_splitmix(start + np.uint64(i + 1) * _GAMMA), size)
            counts[r, drawn] += 1
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


@njit(cache=True, inline="always")
def _chunk(chunk, n_chunks, n_rows):
    """Rows of one chunk: each thread works on whole chunks and reuses its scratch arrays."""
    return chunk * n_rows // n_chunks, (chunk + 1) * n_rows // n_chunks


@njit(cache=True, inline="always")
def _n_chunks(n_rows):
    return min(n_rows, 64)


@njit(cache=True, parallel=True)
def argsort_rows(values):
    """Row-wise ascending order (int32) of a 2-d float array."""
    n_rows, n = values.shape
    order = np.empty((n_rows, n), dtype=np.int32)
    n_chunks = _n_chunks(n_rows)
    for chunk in prange(n_chunks):
        bucket_of = np.empty(n, dtype=np.int32)
        starts = np.empty(_BUCKETS_PER_VALUE * n + 1, dtype=np.int64)
        first, stop = _chunk(chunk, n_chunks, n_rows)
        for row in range(first, stop):
            _argsort_row(values[row], order[row], bucket_of, starts)
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


@njit(cache=True, parallel=True)
def spearman_rows(x, x_order, y, y_order, weights):
    """Weighted Spearman correlation per row.

    ``x`` and ``y`` are sorted row-wise, with their orders (``argsort``);
    these and ``weights`` have shape ``(1, n)`` or ``(batch, n)``; a single
    row is shared by every resample. Returns ``(batch,)``.
    """
    batch = max(x.shape[0], y.shape[0], weights.shape[0])
    n = weights.shape[1]
    out = np.empty(batch)
    n_chunks = _n_chunks(batch)
    for chunk in prange(n_chunks):
        rank_y = np.empty(n)
        first, stop = _chunk(chunk, n_chunks, batch)
        for row in range(first, stop):
            w = weights[row if weights.shape[0] > 1 else 0]
            ix = row if x.shape[0] > 1 else 0
            iy = row if y.shape[0] > 1 else 0
            centre = _total(w) / 2
            square_y = _midranks(y[iy], y_order[iy], w, rank_y, centre, _has_ties(y[iy]))
            product, square_x = _midrank_products(x[ix], x_order[ix], w, rank_y, centre, _has_ties(x[ix]))
            out[row] = _correlation(product, square_x, square_y)
    return out


@njit(cache=True, parallel=True)
def spearman_pairs(x, x_order, ys, y_orders, stimulus_weights, rows, cols):
    """Spearman of one vector over stimulus pairs against several, per resample.

    The weight of pair ``p`` is ``stimulus_weights[:, rows[p]] *
    stimulus_weights[:, cols[p]]`` (an RDM bootstrap over stimuli). ``x``
    (sorted, ``(n_pairs,)``) and ``ys`` (each row sorted, ``(k, n_pairs)``)
    come with their orders. Returns ``(batch, k)``.
    """
    batch = stimulus_weights.shape[0]
    k, n_pairs = ys.shape
    out = np.empty((batch, k))
    x_ties = _has_ties(x)
    y_ties = np.array([_has_ties(ys[j]) for j in range(k)])
    n_chunks = _n_chunks(batch)
    for chunk in prange(n_chunks):
        w = np.empty(n_pairs)
        rank_x = np.empty(n_pairs)
        first, stop = _chunk(chunk, n_chunks, batch)
        for row in range(first, stop):
            sw = stimulus_weights[row]
            for p in range(n_pairs):
                w[p] = sw[rows[p]] * sw[cols[p]]
            centre = _total(w) / 2
            square_x = _midranks(x, x_order, w, rank_x, centre, x_ties)
            for j in range(k):
                product, square_y = _midrank_products(ys[j], y_orders[j], w, rank_x, centre, y_ties[j])
                out[row, j] = _correlation(product, square_x, square_y)
    return out


@njit(cache=True, parallel=True)
def midranks_rows(values, order, weights):
    """Weighted mid-ranks per row (``values`` sorted); arguments as in :func:`spearman_rows`."""
    batch = max(values.shape[0], weights.shape[0])
    n = weights.shape[1]
    ranks = np.empty((batch, n))
    n_chunks = _n_chunks(batch)
    for chunk in prange(n_chunks):
        first, stop = _chunk(chunk, n_chunks, batch)
        for row in range(first, stop):
            i = row if values.shape[0] > 1 else 0
            _midranks(values[i], order[i], weights[row if weights.shape[0] > 1 else 0], ranks[row], 0.0,
                      _has_ties(values[i]))
    return ranks


# Factor subsets evaluated by crossed_spearman, in the order of its output rows.
CROSSED_SUBSETS = (("seed",), ("stimulus",), ("subject",), ("seed", "stimulus"), ("seed", "subject"),
                   ("stimulus", "subject"), ("seed", "stimulus", "subject"))


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


@njit(cache=True, parallel=True)
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
    with_seeds = seed_counts.shape[0] > 0
    with_stimuli = stimulus_counts.shape[0] > 0
    with_subjects = subject_counts.shape[0] > 0
    batch = max(seed_counts.shape[0], stimulus_counts.shape[0], subject_counts.shape[0])
    n_seeds, n = model.shape
    n_subjects = human_filled.shape[0]
    out = np.full((7, batch), np.nan)
    human_ties = _has_ties(human)
    mean_ties = _has_ties(mean)
    fixed_ranks = np.empty(n)
    fixed_centre = _total(usable) / 2
    fixed_square = _midranks(human, human_order, usable, fixed_ranks, fixed_centre, human_ties)
    n_chunks = _n_chunks(batch)
    for chunk in prange(n_chunks):
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
        first, stop = _chunk(chunk, n_chunks, batch)
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
            if with_stimuli:
                total = 0.0
                drawn_total = 0.0
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
    return out
