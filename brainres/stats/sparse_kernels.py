"""Compiled kernel of the sparse human side: per-stimulus means over resampled subjects.

A resample draws subjects with replacement (``counts``, one row per resample);
the resampled human measure of a stimulus is the count-weighted mean of the
cell means of the subjects who saw it. Trials are held in CSR form by subject,
so one resample costs one pass over the observed cells of the drawn subjects
(about 63 % of all cells), never a subject x stimulus array. The fused
Spearman pass (:func:`crossed_spearman`) reads the cells by stimulus instead
and gathers four resamples in one pass, so that four independent sums hide
the latency of each addition (about twice as fast as one resample per pass).

The kernels sum subject by subject in subject order, as the dense kernel
(:func:`brainres.stats.compiled.crossed_spearman`) does, so a complete design
gives bit-identical means on both paths. Until the compiled code is in numba's
cache a numpy twin doing the same sums in the same order runs instead, while a
background process compiles the kernel (as :mod:`brainres.stats.compiled`
does for the dense kernels; ``python -m brainres.stats.sparse_kernels`` fills
the cache ahead of time).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading

import numba
import numpy as np
from numba import njit, prange

from brainres.stats import compiled


@njit(cache=True)
def _drawn_chunk(means, usable, indptr, indices, cell_means, counts, first, stop):
    n = means.shape[1]
    denominator = np.empty(n)
    for row in range(first, stop):
        numerator = means[row]
        numerator[:] = 0.0
        denominator[:] = 0.0
        for j in range(counts.shape[1]):
            c = counts[row, j]
            if c != 0:
                for t in range(indptr[j], indptr[j + 1]):
                    i = indices[t]
                    numerator[i] += c * cell_means[t]
                    denominator[i] += c
        for i in range(n):
            if denominator[i] > 0:
                numerator[i] = numerator[i] / denominator[i]
                usable[row, i] = 1.0
            else:
                # Stimuli none of the drawn subjects saw: value 0, no weight.
                numerator[i] = 0.0
                usable[row, i] = 0.0


@njit(cache=True, parallel=True)
def _drawn_means_kernel(indptr, indices, cell_means, counts, n_stimuli):
    batch = counts.shape[0]
    means = np.empty((batch, n_stimuli))
    usable = np.empty((batch, n_stimuli))
    n_chunks = compiled._n_chunks(batch)
    for chunk in prange(n_chunks):
        first, stop = compiled._chunk(chunk, n_chunks, batch)
        _drawn_chunk(means, usable, indptr, indices, cell_means, counts, first, stop)
    return means, usable


_GROUP = 4  # resamples gathered in one pass over the cells: four independent sums hide the add latency


@njit(cache=True, inline="always")
def _drawn_one(group_human, group_usable, subject_counts, row, rater_ptr, raters, rater_values):
    """Drawn subjects' means of one resample into ``group_human[0]``."""
    for i in range(rater_ptr.size - 1):
        numerator = 0.0
        denominator = 0.0
        for t in range(rater_ptr[i], rater_ptr[i + 1]):
            c = subject_counts[row, raters[t]]
            numerator += c * rater_values[t]
            denominator += c
        group_usable[0, i] = 1.0 if denominator > 0 else 0.0
        group_human[0, i] = numerator / denominator if denominator > 0 else 0.0


@njit(cache=True)
def _drawn_group(group_human, group_usable, group_counts, subject_counts, first, stop, rater_ptr, raters,
                 rater_values):
    """Drawn subjects' means of resamples ``first ... stop - 1`` (at most ``_GROUP``) into ``group_human``.

    Each stimulus's sums run over its raters in subject order, term by term as
    the dense kernel adds them (bit-identical means); four resamples share the
    pass, so the four sums are independent and the loads of each cell are shared.
    Missing rows of a short group count zero draws and are ignored.
    """
    if stop - first == 1:
        _drawn_one(group_human, group_usable, subject_counts, first, rater_ptr, raters, rater_values)
        return
    for j in range(subject_counts.shape[1]):
        for k in range(_GROUP):
            group_counts[j, k] = subject_counts[first + k, j] if first + k < stop else 0
    for i in range(rater_ptr.size - 1):
        n0 = 0.0
        n1 = 0.0
        n2 = 0.0
        n3 = 0.0
        d0 = 0.0
        d1 = 0.0
        d2 = 0.0
        d3 = 0.0
        for t in range(rater_ptr[i], rater_ptr[i + 1]):
            value = rater_values[t]
            counts = group_counts[raters[t]]
            c0 = counts[0]
            c1 = counts[1]
            c2 = counts[2]
            c3 = counts[3]
            n0 += c0 * value
            n1 += c1 * value
            n2 += c2 * value
            n3 += c3 * value
            d0 += c0
            d1 += c1
            d2 += c2
            d3 += c3
        group_usable[0, i] = 1.0 if d0 > 0 else 0.0
        group_human[0, i] = n0 / d0 if d0 > 0 else 0.0
        group_usable[1, i] = 1.0 if d1 > 0 else 0.0
        group_human[1, i] = n1 / d1 if d1 > 0 else 0.0
        group_usable[2, i] = 1.0 if d2 > 0 else 0.0
        group_human[2, i] = n2 / d2 if d2 > 0 else 0.0
        group_usable[3, i] = 1.0 if d3 > 0 else 0.0
        group_human[3, i] = n3 / d3 if d3 > 0 else 0.0


@njit(cache=True)
def _crossed_chunk(out, first, stop, model, seed_counts, stimulus_counts, subject_counts, rater_ptr, raters,
                   rater_values, human, human_order, human_ties, mean, mean_order, mean_ties, usable, wanted,
                   fixed_ranks, fixed_centre, fixed_square):
    """Rows ``first ... stop - 1`` of :func:`crossed_spearman`: the dense kernel's loop
    (:func:`brainres.stats.compiled._crossed_chunk`) with the drawn subjects' means gathered per stimulus."""
    with_seeds = seed_counts.shape[0] > 0
    with_stimuli = stimulus_counts.shape[0] > 0
    with_subjects = subject_counts.shape[0] > 0
    n_seeds, n = model.shape
    bucket_of = np.empty(n, dtype=np.int32)
    starts = np.empty(compiled._BUCKETS_PER_VALUE * n + 1, dtype=np.int64)
    seed_sum = np.empty(n)
    seed_sorted = np.empty(n)
    seed_order = np.empty(n, dtype=np.int32)
    group_human = np.empty((_GROUP, n))
    group_usable = np.empty((_GROUP, n))
    group_counts = np.empty((subject_counts.shape[1], _GROUP))
    drawn_human = group_human[0]
    drawn_usable = group_usable[0]
    drawn_sorted = np.empty(n)
    drawn_order = np.empty(n, dtype=np.int32)
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
            seed_ties = compiled._sort_row(seed_sum, seed_order, seed_sorted, bucket_of, starts)
        drawn_ties = False
        if with_subjects:
            if (row - first) % _GROUP == 0:
                _drawn_group(group_human, group_usable, group_counts, subject_counts, row, min(row + _GROUP, stop),
                             rater_ptr, raters, rater_values)
            drawn_human = group_human[(row - first) % _GROUP]
            drawn_usable = group_usable[(row - first) % _GROUP]
            drawn_ties = compiled._sort_row(drawn_human, drawn_order, drawn_sorted, bucket_of, starts)
        total = 0.0
        drawn_total = 0.0
        if with_stimuli:
            for i in range(n):
                weights[i] = stimulus_counts[row, i] * usable[i]
                total += weights[i]
                if with_subjects:
                    drawn_weights[i] = stimulus_counts[row, i] * drawn_usable[i]
                    drawn_total += drawn_weights[i]
        if with_seeds and wanted[0]:
            product, square = compiled._midrank_products(seed_sorted, seed_order, usable, fixed_ranks, fixed_centre,
                                                         seed_ties)
            out[0, row] = compiled._correlation(product, square, fixed_square)
        if with_stimuli:
            compiled._against_human(out, row, 1, 3, human, human_order, human_ties, weights, total / 2, ranks,
                                    mean, mean_order, mean_ties, seed_sorted, seed_order, seed_ties, with_seeds,
                                    wanted)
        if with_subjects:
            compiled._against_human(out, row, 2, 4, drawn_sorted, drawn_order, drawn_ties, drawn_usable,
                                    compiled._total(drawn_usable) / 2, drawn_ranks, mean, mean_order, mean_ties,
                                    seed_sorted, seed_order, seed_ties, with_seeds, wanted)
        if with_subjects and with_stimuli:
            compiled._against_human(out, row, 5, 6, drawn_sorted, drawn_order, drawn_ties, drawn_weights,
                                    drawn_total / 2, drawn_ranks, mean, mean_order, mean_ties,
                                    seed_sorted, seed_order, seed_ties, with_seeds, wanted)



@njit(cache=True, parallel=True)
def _crossed_spearman_kernel(model, seed_counts, stimulus_counts, subject_counts, rater_ptr, raters, rater_values,
                             human, human_order, mean, mean_order, usable, wanted, n_threads):
    batch = max(seed_counts.shape[0], stimulus_counts.shape[0], subject_counts.shape[0])
    n = model.shape[1]
    out = np.full((7, batch), np.nan)
    human_ties = compiled._has_ties(human)
    mean_ties = compiled._has_ties(mean)
    fixed_ranks = np.empty(n)
    fixed_centre = compiled._total(usable) / 2
    fixed_square = compiled._midranks(human, human_order, usable, fixed_ranks, fixed_centre, human_ties)
    # One chunk of rows per thread, so that each gathers whole groups of resamples.
    n_chunks = max(1, min(batch // _GROUP, n_threads))
    for chunk in prange(n_chunks):
        first, stop = compiled._chunk(chunk, n_chunks, batch)
        _crossed_chunk(out, first, stop, model, seed_counts, stimulus_counts, subject_counts, rater_ptr, raters,
                       rater_values, human, human_order, human_ties, mean, mean_order, mean_ties, usable, wanted,
                       fixed_ranks, fixed_centre, fixed_square)
    return out


def crossed_spearman(model, seed_counts, stimulus_counts, subject_counts, rater_ptr, raters, rater_values,
                     human, human_order, mean, mean_order, usable, wanted):
    """Every factor subset of a seed x stimulus x subject Spearman bootstrap in one compiled pass, or None.

    As :func:`brainres.stats.compiled.crossed_spearman`, with the human data
    as the raters of each stimulus (CSR by stimulus: ``rater_ptr``, subject
    index ``raters`` in increasing order within a stimulus, cell means
    ``rater_values``). Returns None (the caller then composes the subsets
    from the other kernels and their numpy twins) while the compiled code is
    not in numba's cache; a background process compiles it meanwhile.
    """
    args = (compiled._as(model, np.float64, 2), compiled._as(seed_counts, np.int32, 2),
            compiled._as(stimulus_counts, np.int32, 2), compiled._as(subject_counts, np.int32, 2),
            compiled._as(rater_ptr, np.int64, 1), compiled._as(raters, np.int32, 1),
            compiled._as(rater_values, np.float64, 1), compiled._as(human, np.float64, 1),
            compiled._as(human_order, np.int32, 1), compiled._as(mean, np.float64, 1),
            compiled._as(mean_order, np.int32, 1), compiled._as(usable, np.float64, 1),
            compiled._as(wanted, np.bool_, 1), int(numba.get_num_threads()))
    mode = compiled._mode()
    if mode == "numpy":
        return None
    # One signature only (every argument is converted above): once it is in memory, no cache look-up.
    if mode == "auto" and not _crossed_spearman_kernel.overloads and not compiled._is_cached(
            _crossed_spearman_kernel, args):
        _start_warm_up()
        return None
    return _crossed_spearman_kernel(*args)


def _numpy_drawn_means(indptr, indices, cell_means, counts, n_stimuli):
    """The kernel's sums in the kernel's order (subject by subject), vectorised over resamples."""
    batch = counts.shape[0]
    numerator = np.zeros((batch, n_stimuli))
    denominator = np.zeros((batch, n_stimuli))
    for j in range(counts.shape[1]):
        cells = slice(indptr[j], indptr[j + 1])
        if cells.start == cells.stop:
            continue
        c = counts[:, j, None].astype(float)
        columns = indices[cells]
        # Each subject has one cell per stimulus, so the fancy-indexed update does not collide.
        numerator[:, columns] += c * cell_means[None, cells]
        denominator[:, columns] += c
    usable = (denominator > 0).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(denominator > 0, numerator / denominator, 0.0)
    return means, usable


def drawn_means(indptr, indices, cell_means, counts, n_stimuli):
    """Per-stimulus means over the subjects drawn in each row of ``counts``.

    Parameters
    ----------
    indptr, indices, cell_means : numpy.ndarray
        The subject x stimulus cell means in CSR form by subject (int64, int32,
        float64), one stored value per observed cell.
    counts : numpy.ndarray, shape (batch, n_subjects), int32
        How often each subject is drawn in each resample.
    n_stimuli : int

    Returns
    -------
    (means, usable) : two arrays (batch, n_stimuli)
        ``usable`` is 1 where at least one drawn subject saw the stimulus (its
        mean is then in ``means``) and 0 elsewhere (``means`` 0).
    """
    args = (compiled._as(indptr, np.int64, 1), compiled._as(indices, np.int32, 1),
            compiled._as(cell_means, np.float64, 1), compiled._as(counts, np.int32, 2), int(n_stimuli))
    mode = compiled._mode()
    if mode == "auto" and not compiled._is_cached(_drawn_means_kernel, args):
        _start_warm_up()
    return compiled._run("sparse_drawn_means", _drawn_means_kernel, _numpy_drawn_means, args)


_warm_up = {"process": None}
_lock = threading.Lock()


def _example():
    indptr = np.array([0, 2, 3], dtype=np.int64)
    indices = np.array([0, 1, 1], dtype=np.int32)
    return (indptr, indices, np.array([1.0, 2.0, 3.0]), np.ones((2, 2), dtype=np.int32), 2)


def _start_warm_up():
    """Compile the kernel into numba's cache in a background process (once per process)."""
    with _lock:
        if _warm_up["process"] is not None:
            return
        log = tempfile.NamedTemporaryFile(prefix="brainres-sparse-kernel-", suffix=".log", delete=False)
        try:
            _warm_up["process"] = subprocess.Popen(
                [sys.executable, "-m", "brainres.stats.sparse_kernels"],
                env=dict(os.environ, BRAINRES_KERNELS="compiled"),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        except OSError:  # no way to start it: the numpy twin serves this process
            _warm_up["process"] = False
        finally:
            log.close()


def warm_up() -> None:
    """Compile the kernels now (or load them from numba's cache)."""
    _drawn_means_kernel(*_example())
    values = np.array([0.5, 1.5, 2.5])
    order = np.arange(3, dtype=np.int32)
    counts = np.ones((2, 3), dtype=np.int32)
    _crossed_spearman_kernel(np.ones((2, 3)), counts[:, :2].copy(), counts, counts[:, :2].copy(),
                             np.array([0, 1, 2, 3], dtype=np.int64), np.array([0, 1, 0], dtype=np.int32),
                             values, values, order, values, order, np.ones(3), np.ones(7, dtype=np.bool_), 1)


if __name__ == "__main__":
    from brainres.stats import sparse_kernels as _module  # cache entries as the library loads them

    _module.warm_up()
