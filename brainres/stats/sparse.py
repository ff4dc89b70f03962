"""Human data of sparse designs: subjects who each saw a subset of the stimuli.

Crowd-sourced data sets (CIFAR-10H: 2,571 annotators, 10,000 images, about
200 images per annotator) leave most of a subject x stimulus matrix empty.
:class:`SparseHuman` holds only the observed cells (a subject's mean over its
trials of a stimulus, as :func:`comparisons._common.per_subject` computes them
densely), in CSR form by subject, so memory grows with the number of trials.

The statistics of the dense path accept a :class:`SparseHuman` wherever they
take a ``(n_subjects, n_stimuli)`` human array with NaN for missing cells, and
give the same numbers (tests): :func:`~brainres.stats.bootstrap_correlation`
(the seed x stimulus x subject bootstrap: a resample's human measure of a
stimulus is the count-weighted mean over the drawn subjects who saw it, see
:mod:`brainres.stats.sparse_kernels`), :func:`~brainres.stats.split_half_reliability`
and :func:`~brainres.stats.disattenuated_correlation` (halves are random
halves of the *subjects*; a stimulus then has the raters of each half who
saw it, and stimuli without a rater in one half get no weight in that split).
The mixed model (:func:`~brainres.stats.rt_mixed_model`) takes the trials
themselves and is sparse already.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import scipy.sparse
import xarray as xr

from brainres.errors import BrainresError
from brainres.stats.kernels import rank_plan, spearman_fixed, weighted_kendall, weighted_pearson

# Designs whose dense subject x stimulus matrix would be less full than this go the sparse way.
SPARSE_FILL = 0.25
_SPLIT_BLOCK = 64  # splits per block of half means: bounds the temporaries


class SparseHumanError(BrainresError, ValueError):
    """Sparse human data that cannot be built or used."""


class SparseHuman:
    """Per-subject, per-stimulus mean of a trial measure, observed cells only.

    Stands in for the ``(subject, stimulus_id)`` array of the dense path:
    ``shape`` is ``(n_subjects, n_stimuli)``; ``sel(stimulus_id=...)``,
    ``values`` and ``human["stimulus_id"]`` behave as on that DataArray.

    Parameters
    ----------
    subject_index, stimulus_index : array_like of int
        Row and column of each observed cell (one entry per cell).
    cell_means : array_like of float
        The cell's mean over its trials (finite).
    subjects, stimulus_ids : array_like of str
        Labels of the rows and columns.
    n_trials : array_like of int, optional
        Trials behind each cell (default 1).

    Examples
    --------
    >>> human = SparseHuman([0, 0, 1], [0, 1, 1], [0.5, 0.7, 0.9], subjects=["a", "b"], stimulus_ids=["x", "y"])
    >>> human.shape
    (2, 2)
    >>> human.stimulus_means().round(2).tolist()
    [0.5, 0.8]
    """

    def __init__(self, subject_index, stimulus_index, cell_means, *, subjects, stimulus_ids, n_trials=None):
        subject_index = np.asarray(subject_index, dtype=np.int64)
        stimulus_index = np.asarray(stimulus_index, dtype=np.int64)
        cell_means = np.asarray(cell_means, dtype=float)
        self.subjects = np.asarray(subjects).astype(str)
        self.stimulus_ids = np.asarray(stimulus_ids).astype(str)
        if not (subject_index.shape == stimulus_index.shape == cell_means.shape) or subject_index.ndim != 1:
            raise SparseHumanError("subject_index, stimulus_index and cell_means must be 1-d and of one length")
        if not np.all(np.isfinite(cell_means)):
            raise SparseHumanError(f"{int((~np.isfinite(cell_means)).sum())} cell mean(s) are not finite; "
                                   "leave missing cells out instead")
        shape = (self.subjects.size, self.stimulus_ids.size)
        if subject_index.size and (subject_index.min() < 0 or subject_index.max() >= shape[0]
                                   or stimulus_index.min() < 0 or stimulus_index.max() >= shape[1]):
            raise SparseHumanError(f"cell indices outside the {shape[0]} subjects x {shape[1]} stimuli")
        if np.unique(subject_index * shape[1] + stimulus_index).size != cell_means.size:
            raise SparseHumanError("a subject has more than one cell for a stimulus; average its trials first")
        # CSR by subject, built by a stable sort so zero-valued cells stay stored.
        order = np.lexsort((stimulus_index, subject_index))
        self.indices = stimulus_index[order].astype(np.int32)
        self.cell_means = cell_means[order]
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(subject_index, minlength=shape[0]))]).astype(np.int64)
        self._rows = subject_index[order]
        self.n_trials = (np.ones(cell_means.size, np.int64) if n_trials is None
                         else np.asarray(n_trials, dtype=np.int64)[order])
        self.shape = shape

    # --- stand-in for the dense DataArray ------------------------------------------------
    ndim = 2

    @property
    def values(self) -> "SparseHuman":
        """Itself: what the dense path's ``human.values`` hands to the statistics."""
        return self

    def __getitem__(self, name):
        if isinstance(name, tuple) and len(name) == 2 and name[0] == slice(None):
            # human[:, index]: stimuli by position, as on the dense array
            return self.sel(stimulus_id=self.stimulus_ids[np.asarray(name[1])])
        labels = {"subject": self.subjects, "stimulus_id": self.stimulus_ids}
        if name not in labels:
            raise KeyError(f"sparse human data has coordinates 'subject' and 'stimulus_id', not {name!r}")
        return xr.DataArray(labels[name], dims=name)

    def sel(self, stimulus_id) -> "SparseHuman":
        """The stimuli ``stimulus_id`` (all present), in that order."""
        wanted = np.asarray(stimulus_id).astype(str)
        position = pd.Index(self.stimulus_ids).get_indexer(wanted)
        if (position < 0).any():
            raise SparseHumanError(f"stimulus {str(wanted[position < 0][0])!r} is not in the human data")
        new_column = np.full(self.stimulus_ids.size, -1)
        new_column[position] = np.arange(wanted.size)
        columns = new_column[self.indices]
        keep = columns >= 0
        return SparseHuman(self._rows[keep], columns[keep], self.cell_means[keep], subjects=self.subjects,
                           stimulus_ids=wanted, n_trials=self.n_trials[keep])

    # --- what the statistics need ---------------------------------------------------------
    @property
    def n_cells(self) -> int:
        return int(self.cell_means.size)

    def subjects_per_stimulus(self) -> np.ndarray:
        """Subjects with a value for each stimulus."""
        return np.bincount(self.indices, minlength=self.shape[1])

    def stimulus_means(self) -> np.ndarray:
        """Mean over subjects of the cell means per stimulus (NaN where no subject saw it)."""
        totals = np.bincount(self.indices, weights=self.cell_means, minlength=self.shape[1])
        with np.errstate(invalid="ignore", divide="ignore"):
            return totals / self.subjects_per_stimulus()

    def weighted_means(self, subject_weights) -> tuple[np.ndarray, np.ndarray]:
        """Per-stimulus means with subject weights ``(batch, n_subjects)``: ``(means, observed weight)``.

        ``means`` is NaN where the weighted subjects saw nothing.
        """
        weights = np.atleast_2d(np.asarray(subject_weights, dtype=float))
        values, seen = self._matrices()
        numerator = np.asarray((values.T @ weights.T).T)
        denominator = np.asarray((seen.T @ weights.T).T)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denominator > 0, numerator / denominator, np.nan), denominator

    def drawn_means(self, counts) -> tuple[np.ndarray, np.ndarray]:
        """Per-stimulus means over drawn subjects (int counts ``(batch, n_subjects)``): ``(means, usable)``."""
        from brainres.stats.sparse_kernels import drawn_means  # numba loads on first use

        return drawn_means(self.indptr, self.indices, self.cell_means, counts, self.shape[1])

    def raters(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The cells in CSR form by stimulus: ``(pointer, subject index, cell mean)``, subjects in order."""
        if not hasattr(self, "_by_stimulus"):
            order = np.lexsort((self._rows, self.indices))
            pointer = np.concatenate([[0], np.cumsum(self.subjects_per_stimulus())]).astype(np.int64)
            self._by_stimulus = (pointer, self._rows[order].astype(np.int32), self.cell_means[order])
        return self._by_stimulus

    def half_means(self, masks) -> tuple[np.ndarray, np.ndarray]:
        """Per-stimulus means of both halves of subject splits, as :func:`brainres.stats.reliability.half_means`."""
        masks = np.asarray(masks, dtype=bool)
        first = np.empty((masks.shape[0], self.shape[1]))
        second = np.empty_like(first)
        for start in range(0, masks.shape[0], _SPLIT_BLOCK):
            block = masks[start:start + _SPLIT_BLOCK]
            first[start:start + block.shape[0]] = self.weighted_means(block)[0]
            second[start:start + block.shape[0]] = self.weighted_means(~block)[0]
        return first, second

    def to_dense(self) -> np.ndarray:
        """The ``(n_subjects, n_stimuli)`` array with NaN for missing cells (small designs only)."""
        dense = np.full(self.shape, np.nan)
        dense[self._rows, self.indices] = self.cell_means
        return dense

    def _matrices(self):
        if not hasattr(self, "_csr"):
            values = scipy.sparse.csr_matrix((self.cell_means, self.indices, self.indptr), shape=self.shape)
            seen = scipy.sparse.csr_matrix((np.ones(self.n_cells), self.indices, self.indptr), shape=self.shape)
            self._csr = (values, seen)
        return self._csr


def is_sparse_human(data) -> bool:
    """Whether ``data`` is sparse human data (the statistics dispatch on this)."""
    return isinstance(data, SparseHuman)


def human_cells(trials, value: str = "rt", *, correct_only: bool = False) -> SparseHuman:
    """Per-subject, per-stimulus mean of a trial variable, observed cells only.

    The sparse twin of ``per_subject`` in the comparisons: the same cell means
    (trials with a missing value left out; with ``correct_only`` only correct
    trials), subjects in order of first appearance, stimuli in order of first
    appearance, and no subject x stimulus array.

    Parameters
    ----------
    trials : xarray.Dataset or pandas.DataFrame
        One row per trial with ``subject``, ``stimulus_id`` and ``value``
        (and ``correct`` for ``correct_only``).

    Examples
    --------
    >>> import pandas as pd
    >>> trials = pd.DataFrame({"subject": ["s1", "s1", "s2", "s1"], "stimulus_id": ["a", "b", "b", "a"],
    ...                        "rt": [0.5, 0.7, 0.9, 0.7]})
    >>> human = human_cells(trials)
    >>> human.to_dense().tolist()
    [[0.6, 0.7], [nan, 0.9]]
    """
    columns = ["subject", "stimulus_id", value] + (["correct"] if correct_only else [])
    missing = [c for c in columns if c not in (trials.variables if isinstance(trials, xr.Dataset) else trials.columns)]
    if missing:
        raise SparseHumanError(f"the trials have no {', '.join(map(repr, missing))}")
    subject = np.asarray(trials["subject"].values if isinstance(trials, xr.Dataset) else trials["subject"]).astype(str)
    stimulus = np.asarray(trials["stimulus_id"].values if isinstance(trials, xr.Dataset)
                          else trials["stimulus_id"]).astype(str)
    values = np.asarray(trials[value].values if isinstance(trials, xr.Dataset) else trials[value], dtype=float)
    subject_codes, subjects = pd.factorize(subject)
    stimulus_codes, stimulus_ids = pd.factorize(stimulus)
    keep = np.isfinite(values)
    if correct_only:
        keep &= np.asarray(trials["correct"].values if isinstance(trials, xr.Dataset) else trials["correct"], dtype=bool)
    cell = subject_codes[keep].astype(np.int64) * len(stimulus_ids) + stimulus_codes[keep]
    cells, inverse = np.unique(cell, return_inverse=True)
    totals = np.bincount(inverse, weights=values[keep])
    n_trials = np.bincount(inverse)
    return SparseHuman(cells // len(stimulus_ids), cells % len(stimulus_ids), totals / n_trials,
                       subjects=np.asarray(subjects), stimulus_ids=np.asarray(stimulus_ids), n_trials=n_trials)


def prefer_sparse(trials) -> bool:
    """Whether a trials table is sparse enough (fill below ``SPARSE_FILL``) for :func:`human_cells`."""
    subject = pd.Series(np.asarray(trials["subject"].values if isinstance(trials, xr.Dataset) else trials["subject"]))
    stimulus = pd.Series(np.asarray(trials["stimulus_id"].values if isinstance(trials, xr.Dataset)
                                    else trials["stimulus_id"]))
    n_cells = len(pd.MultiIndex.from_arrays([subject, stimulus]).unique()) if len(subject) else 0
    full = subject.nunique() * stimulus.nunique()
    return full > 0 and n_cells < SPARSE_FILL * full


def stimulus_means(human) -> np.ndarray:
    """Per-stimulus mean over subjects of a dense ``(subject, stimulus)`` array (NaN-aware) or :class:`SparseHuman`."""
    if is_sparse_human(human):
        return human.stimulus_means()
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # stimuli no subject saw stay NaN
        return np.nanmean(np.asarray(human, dtype=float), axis=0)


def sparse_correlation_statistic(model, human: SparseHuman, *, method: str = "spearman",
                                 aggregate: str = "seed_mean"):
    """The weighted statistic of :func:`brainres.stats.bootstrap_correlation` for sparse human data.

    Same factors, semantics and numbers as
    :func:`brainres.stats.correlate.correlation_statistic` on the dense array.
    """
    from brainres.stats.compiled import CROSSED_SUBSETS
    from brainres.stats.correlate import AGGREGATES, CorrelationInputError, _as_counts, _check_method

    _check_method(method)
    if aggregate not in AGGREGATES:
        raise CorrelationInputError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    model = np.atleast_2d(np.asarray(model, dtype=float))
    if model.ndim != 2 or model.shape[1] != human.shape[1]:
        raise CorrelationInputError(f"model has {model.shape[-1]} stimuli but human has {human.shape[1]}")
    if np.isnan(model).any():
        bad = np.flatnonzero(np.isnan(model).any(axis=0))
        raise CorrelationInputError(f"model has NaN for {bad.size} stimuli (first at stimulus index {bad[0]})")
    if model.shape[1] < 3:
        raise CorrelationInputError(f"{model.shape[1]} stimuli are too few for a correlation")
    model = np.ascontiguousarray(model)
    n_seeds, n_stimuli = model.shape
    n_subjects = human.shape[0]
    human_fixed = human.stimulus_means()
    usable = np.isfinite(human_fixed).astype(float)[None, :]
    fixed_plan = rank_plan(np.nan_to_num(human_fixed))
    mean_plan = rank_plan(model.mean(axis=0))

    def correlate_rows(x, y, weights):
        if method == "pearson":
            return weighted_pearson(x, y, weights)
        if method == "kendall":
            return weighted_kendall(x, y, weights)
        return spearman_fixed(rank_plan(x) if x.shape[0] > 1 else rank_plan(x[0]),
                              rank_plan(y) if y.shape[0] > 1 else rank_plan(y[0]), weights)

    def statistic(weights):
        seed_w, stimulus_w, subject_w = weights["seed"], weights["stimulus"], weights["subject"]
        batch = max(w.shape[0] for w in (seed_w, stimulus_w, subject_w))
        if n_subjects == 1 or np.ptp(subject_w, axis=None) == 0:
            values, seen = np.nan_to_num(human_fixed)[None, :], usable
        else:
            values, seen = human.weighted_means(_as_counts(subject_w))
            seen = (seen > 0).astype(float)
            values = np.nan_to_num(values)
        stimulus_w = np.broadcast_to(stimulus_w, (batch, n_stimuli)) * seen
        if aggregate == "seed_mean":
            means = model.mean(axis=0)[None, :] if n_seeds == 1 or np.ptp(seed_w) == 0 else _seed_sums(seed_w)
            return correlate_rows(means, values, stimulus_w)
        per_seed = np.stack([correlate_rows(model[s][None, :], values, stimulus_w) for s in range(n_seeds)], axis=1)
        return (seed_w * per_seed).sum(axis=1)

    def _seed_sums(seed_counts):
        # Summed seed by seed, as the dense kernels do: equal sums stay exactly equal.
        counts = _as_counts(seed_counts)
        sums = np.zeros((counts.shape[0], n_stimuli))
        for s in range(n_seeds):
            sums += counts[:, s, None] * model[s]
        return sums

    if method == "spearman" and aggregate == "seed_mean":
        parts = [frozenset(subset) for subset in CROSSED_SUBSETS]

        def evaluate_subsets(counts, subsets):
            """Every factor subset of one batch: one compiled pass, or each side sorted once per resample."""
            from brainres.stats import sparse_kernels

            batch = next(iter(counts.values())).shape[0]
            empty = np.empty((0, 1), dtype=np.int32)
            wanted = np.array([part in subsets for part in parts])
            rows = sparse_kernels.crossed_spearman(
                model, counts.get("seed", empty), counts.get("stimulus", empty), counts.get("subject", empty),
                *human.raters(), fixed_plan.sorted[0], fixed_plan.order[0], mean_plan.sorted[0], mean_plan.order[0],
                usable[0], wanted)
            if rows is not None:
                by_subset = dict(zip(parts, rows))
                return {subset: by_subset[subset][:batch] for subset in subsets}
            seeds = rank_plan(_seed_sums(counts["seed"])) if "seed" in counts else None
            if "subject" in counts:
                drawn, drawn_usable = human.drawn_means(counts["subject"])
                drawn = rank_plan(drawn)
            stimulus_w = counts["stimulus"].astype(float) if "stimulus" in counts else None
            out = {}
            for subset in subsets:
                model_side = seeds if "seed" in subset else mean_plan
                human_side, weights = (drawn, drawn_usable) if "subject" in subset else (fixed_plan, usable)
                if "stimulus" in subset:
                    weights = stimulus_w * weights
                out[subset] = spearman_fixed(model_side, human_side, weights)
            return out if all(s in parts for s in subsets) else None

        statistic.evaluate_subsets = evaluate_subsets

    return statistic, {"seed": n_seeds, "stimulus": n_stimuli, "subject": n_subjects}


def sparsity(human: SparseHuman) -> dict:
    """Design summary for reports: cells observed, fill, subjects per stimulus, stimuli per subject."""
    per_stimulus = human.subjects_per_stimulus()
    per_subject = np.diff(human.indptr)
    return {
        "n_subjects": int(human.shape[0]), "n_stimuli": int(human.shape[1]), "n_cells": human.n_cells,
        "n_trials": int(human.n_trials.sum()), "fill": human.n_cells / max(1, math.prod(human.shape)),
        "subjects_per_stimulus_min": int(per_stimulus.min()) if per_stimulus.size else 0,
        "subjects_per_stimulus_median": float(np.median(per_stimulus)) if per_stimulus.size else 0.0,
        "stimuli_per_subject_median": float(np.median(per_subject)) if per_subject.size else 0.0,
    }
