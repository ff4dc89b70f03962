"""Representational similarity analysis: RDMs, their comparison, ceilings, bootstraps.

RDMs are square ``(n_stimuli, n_stimuli)`` arrays (or stacks
``(n_rdm, n_stimuli, n_stimuli)``); comparisons use the upper triangle
(diagonal excluded), skipping entries that are NaN in either RDM, as
rsatoolbox does.

Stimulus bootstrap: a resampled stimulus set repeats stimuli; the RDM entry of
two distinct stimuli ``i, j`` then appears ``c_i * c_j`` times and entries
between copies of one stimulus are left out (they are trivially zero), exactly
as rsatoolbox's ``subsample_pattern`` does. Here that is a weight
``w_i * w_j`` per entry, so no resampled RDM is ever built.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import pdist, squareform

from brainres.errors import BrainresError
from brainres.stats.kernels import compiled, rank_plan, spearman_fixed, weighted_kendall, weighted_pearson, weighted_ranks
from brainres.stats.resample import crossed_bootstrap
from brainres.stats.result import StatResult

RDM_METHODS = ("correlation", "euclidean", "squared_euclidean", "crossvalidated")
COMPARE_METHODS = ("spearman", "kendall_tau_a", "pearson", "cosine")
_ALIASES = {"tau-a": "kendall_tau_a", "tau_a": "kendall_tau_a", "corr": "pearson", "rho": "spearman"}


class RSAInputError(BrainresError, ValueError):
    """RDMs or responses that cannot be used as given."""


# --- building RDMs ----------------------------------------------------------------


def rdm_from_responses(responses, *, method: str = "correlation") -> np.ndarray:
    """Representational dissimilarity matrix of stimulus responses or model latents.

    Parameters
    ----------
    responses : array_like
        ``(n_stimuli, n_features)``; for ``"crossvalidated"``
        ``(n_repetitions, n_stimuli, n_features)`` with at least 2 repetitions.
    method : {"correlation", "euclidean", "squared_euclidean", "crossvalidated"}
        ``correlation``: 1 - Pearson r between response patterns.
        ``euclidean``: Euclidean distance.
        ``squared_euclidean``: squared distance divided by the number of
        features (rsatoolbox's "euclidean").
        ``crossvalidated``: unbiased squared distance per feature, the mean
        over pairs of distinct repetitions ``a != b`` of
        ``(x_i^a - x_j^a) . (x_i^b - x_j^b) / n_features`` (can be negative).

    Returns
    -------
    numpy.ndarray, shape (n_stimuli, n_stimuli)
    """
    if method not in RDM_METHODS:
        raise RSAInputError(f"method must be one of {RDM_METHODS}, got {method!r}")
    responses = np.asarray(responses, dtype=float)
    if method == "crossvalidated":
        if responses.ndim != 3 or responses.shape[0] < 2:
            raise RSAInputError(
                f"crossvalidated RDMs need responses (n_repetitions>=2, n_stimuli, n_features), got {responses.shape}"
            )
        return _crossvalidated_distance(responses)
    if responses.ndim != 2:
        raise RSAInputError(f"responses must be (n_stimuli, n_features), got shape {responses.shape}")
    if np.isnan(responses).any():
        raise RSAInputError("responses contain NaN")
    if method == "correlation":
        flat = np.flatnonzero(responses.std(axis=1) == 0)
        if flat.size:
            raise RSAInputError(f"stimulus index {flat[0]} has a constant response pattern; correlation distance is undefined")
        return squareform(pdist(responses, "correlation"))
    if method == "euclidean":
        return squareform(pdist(responses, "euclidean"))
    return squareform(pdist(responses, "sqeuclidean")) / responses.shape[1]


def _crossvalidated_distance(responses):
    n_repetitions, _, n_features = responses.shape
    total = responses.sum(axis=0)
    gram_total = total @ total.T
    gram_each = np.einsum("rif,rjf->ij", responses, responses)

    def squared_differences(gram):
        diagonal = np.diag(gram)
        return diagonal[:, None] + diagonal[None, :] - 2 * gram

    # sum over a != b of d^a . d^b = |sum_a d^a|^2 - sum_a |d^a|^2
    cross = squared_differences(gram_total) - squared_differences(gram_each)
    rdm = cross / (n_repetitions * (n_repetitions - 1) * n_features)
    np.fill_diagonal(rdm, 0.0)
    return rdm


def rdm_vectors(rdms) -> np.ndarray:
    """Upper triangles (diagonal excluded) of one RDM or a stack: ``(n_rdm, n_pairs)``."""
    rdms = np.asarray(rdms, dtype=float)
    if rdms.ndim == 2 and rdms.shape[0] == rdms.shape[1]:
        rdms = rdms[None]
    if rdms.ndim != 3 or rdms.shape[1] != rdms.shape[2]:
        raise RSAInputError(f"RDMs must be (n, n) or (n_rdm, n, n), got shape {rdms.shape}")
    rows, cols = np.triu_indices(rdms.shape[1], 1)
    return rdms[:, rows, cols]


# --- comparing RDMs -----------------------------------------------------------------


def compare_rdms(rdms_a, rdms_b, *, method: str = "spearman") -> np.ndarray:
    """Compare every RDM of ``rdms_a`` with every RDM of ``rdms_b``.

    Parameters
    ----------
    rdms_a, rdms_b : array_like, (n, n) or (n_rdm, n, n)
    method : {"spearman", "kendall_tau_a", "pearson", "cosine"}
        Spearman's rho, Kendall's tau-a (ties count as neither concordant nor
        discordant, denominator all pairs; rsatoolbox's "tau-a"), Pearson r,
        cosine similarity (uncentred).

    Returns
    -------
    numpy.ndarray, shape (n_rdm_a, n_rdm_b)
    """
    method = _compare_method(method)
    vectors_a, vectors_b = rdm_vectors(rdms_a), rdm_vectors(rdms_b)
    if vectors_a.shape[1] != vectors_b.shape[1]:
        raise RSAInputError(f"RDMs cover different numbers of stimuli ({vectors_a.shape[1]} vs {vectors_b.shape[1]} pairs)")
    out = np.empty((vectors_a.shape[0], vectors_b.shape[0]))
    for i, a in enumerate(vectors_a):
        for j, b in enumerate(vectors_b):
            usable = ~(np.isnan(a) | np.isnan(b))
            out[i, j] = _compare_vectors(a[usable], b[usable], method)
    return out


def _compare_vectors(a, b, method):
    ones = np.ones(a.size)
    if method == "pearson":
        return float(weighted_pearson(a, b, ones)[0])
    if method == "cosine":
        return float(a @ b / np.sqrt((a @ a) * (b @ b)))
    if method == "spearman":
        return float(weighted_pearson(weighted_ranks(a, ones), weighted_ranks(b, ones), ones)[0])
    return _tau_a(a, b)


def _tau_a(a, b):
    """Kendall's tau-a in O(n^2 / chunk) memory-bounded chunks."""
    n = a.size
    concordance = 0.0
    chunk = max(1, 4_000_000 // n)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        sign_a = np.sign(a[start:stop, None] - a[None, :])
        sign_b = np.sign(b[start:stop, None] - b[None, :])
        concordance += float(np.sum(sign_a * sign_b))
    # Every unordered pair was counted twice (i, j) and (j, i).
    return concordance / (n * (n - 1))


def _weighted_compare(vector_a, vectors_b, pair_weights, method, n_stimuli):
    """Weighted comparison of one vector with each of ``vectors_b``: ``(batch, n_b)``."""
    if method == "kendall_tau_a":
        # tau-a needs entry counts: pair weights times n_stimuli**2 are c_i * c_j.
        counts = np.rint(pair_weights * n_stimuli**2)
        return np.stack([weighted_kendall(vector_a, b, counts, variant="a") for b in vectors_b], axis=1)
    if method == "spearman":
        plan_a = rank_plan(vector_a)
        plans_b = [rank_plan(b) for b in vectors_b]
        return np.stack([spearman_fixed(plan_a, plan_b, pair_weights) for plan_b in plans_b], axis=1)
    if method == "pearson":
        return np.stack([weighted_pearson(vector_a, b, pair_weights) for b in vectors_b], axis=1)
    weighted_a = pair_weights * vector_a
    norm_a = np.einsum("ij,j->i", weighted_a, vector_a)
    columns = [(weighted_a @ b) / np.sqrt(norm_a * (pair_weights @ (b * b))) for b in vectors_b]
    return np.stack(columns, axis=1)


# --- ceilings and bootstraps ---------------------------------------------------------


def pool_rdms(vectors, *, method: str = "spearman") -> np.ndarray:
    """Average RDM vectors in the space the comparison ``method`` works in.

    Spearman and tau-a average ranks, Pearson averages z-scores, cosine
    averages root-mean-square-normalised vectors (rsatoolbox's ``pool_rdm``).
    """
    method = _compare_method(method)
    vectors = np.atleast_2d(np.asarray(vectors, dtype=float))
    if method in ("spearman", "kendall_tau_a"):
        transformed = np.full_like(vectors, np.nan)
        for k, v in enumerate(vectors):
            usable = ~np.isnan(v)
            transformed[k, usable] = weighted_ranks(v[usable], np.ones(usable.sum()))[0] * usable.sum() + 0.5
    elif method == "pearson":
        centred = vectors - np.nanmean(vectors, axis=1, keepdims=True)
        transformed = centred / np.nanstd(centred, axis=1, keepdims=True)
    else:
        transformed = vectors / np.sqrt(np.nanmean(vectors**2, axis=1, keepdims=True))
    return np.nanmean(transformed, axis=0)


def rdm_noise_ceiling(rdms, *, method: str = "spearman") -> list[StatResult]:
    """Leave-one-subject-out lower and upper noise ceilings of RDM comparisons.

    Upper: mean over subjects of compare(subject RDM, pooled RDM of all
    subjects). Lower: mean of compare(subject RDM, pooled RDM of the others).
    Equals rsatoolbox's ``boot_noise_ceiling``.

    Parameters
    ----------
    rdms : array_like, shape (n_subjects, n, n)
    method : comparison method (see :func:`compare_rdms`)

    Returns
    -------
    list of StatResult
        ``[lower, upper]``.
    """
    method = _compare_method(method)
    vectors = rdm_vectors(rdms)
    if vectors.shape[0] < 2:
        raise RSAInputError("a leave-one-out noise ceiling needs at least 2 subject RDMs")
    pooled_all = pool_rdms(vectors, method=method)
    lower, upper = [], []
    for k in range(vectors.shape[0]):
        pooled_others = pool_rdms(np.delete(vectors, k, axis=0), method=method)
        lower.append(_compare_one(vectors[k], pooled_others, method))
        upper.append(_compare_one(vectors[k], pooled_all, method))
    common = dict(method=f"leave-one-subject-out noise ceiling ({method})", n=int(vectors.shape[0]))
    return [
        StatResult(statistic=f"noise_ceiling_lower_{method}", estimate=float(np.mean(lower)), **common),
        StatResult(statistic=f"noise_ceiling_upper_{method}", estimate=float(np.mean(upper)), **common),
    ]


def _compare_one(a, b, method):
    usable = ~(np.isnan(a) | np.isnan(b))
    return _compare_vectors(a[usable], b[usable], method)


def rdm_comparison_statistic(model_rdm, data_rdms, *, method: str = "spearman"):
    """Weighted statistic for :func:`~brainres.stats.resample.crossed_bootstrap`.

    Mean over data RDMs (weights of factor ``rdm``) of the comparison of the
    model RDM with each, on stimulus-pair weights built from the weights of
    factor ``stimulus``. Returns ``(statistic, sizes)``.
    """
    method = _compare_method(method)
    model_vector = rdm_vectors(model_rdm)
    if model_vector.shape[0] != 1:
        raise RSAInputError("model_rdm must be a single (n, n) RDM")
    model_vector = model_vector[0]
    data_vectors = rdm_vectors(data_rdms)
    if data_vectors.shape[1] != model_vector.size:
        raise RSAInputError("model and data RDMs cover different numbers of stimuli")
    if np.isnan(model_vector).any() or np.isnan(data_vectors).any():
        raise RSAInputError("bootstrapped RDM comparisons need RDMs without NaN entries")
    n_stimuli = np.asarray(model_rdm).shape[-1]
    rows, cols = np.triu_indices(n_stimuli, 1)
    # The RDM entries never change across resamples, only their weights: sort once.
    data_plans = [rank_plan(v) for v in data_vectors] if method == "spearman" else None
    model_plan = rank_plan(model_vector) if method == "spearman" else None

    rows32, cols32 = rows.astype(np.int32), cols.astype(np.int32)
    if method == "spearman":
        data_orders = np.concatenate([plan.order for plan in data_plans])
        data_sorted = np.concatenate([plan.sorted for plan in data_plans])

    def statistic(weights):
        stimulus_w, rdm_w = weights["stimulus"], weights["rdm"]
        if stimulus_w.strides[0] == 0:
            stimulus_w = stimulus_w[:1]  # stimuli not resampled: compare once
        if method == "spearman":
            comparisons = compiled().spearman_pairs(
                model_plan.sorted[0], model_plan.order[0], data_sorted, data_orders,
                np.ascontiguousarray(stimulus_w), rows32, cols32,
            )
        else:
            pair_weights = stimulus_w[:, rows] * stimulus_w[:, cols]
            comparisons = _weighted_compare(model_vector, data_vectors, pair_weights, method, n_stimuli)
        return (rdm_w * comparisons).sum(axis=1)

    return statistic, {"stimulus": n_stimuli, "rdm": data_vectors.shape[0]}


def bootstrap_rdm_comparison(
    model_rdm,
    data_rdms,
    *,
    method: str = "spearman",
    resample=("stimulus", "rdm"),
    n_resamples: int = 1000,
    seed=None,
    ci_level: float = 0.95,
    interval: str = "percentile",
    correction: str = "dual",
    batch_size: int | None = None,
    keep_distribution: bool = False,
) -> StatResult:
    """Bootstrap interval of the mean comparison of a model RDM with data RDMs.

    Parameters
    ----------
    model_rdm : array_like, shape (n, n)
    data_rdms : array_like, shape (n_rdm, n, n)
        E.g. one RDM per subject (and session).
    method : {"spearman", "pearson", "cosine", "kendall_tau_a"}
        tau-a costs ``batch * n_pairs**2`` and is only practical for small RDMs.
    resample : sequence of {"stimulus", "rdm"}
        ``("stimulus",)`` is rsatoolbox's ``eval_bootstrap_pattern``,
        ``("rdm",)`` its ``eval_bootstrap_rdm``, both its dual bootstrap.
    n_resamples, seed, ci_level, interval, correction, batch_size, keep_distribution
        See :func:`brainres.stats.resample.crossed_bootstrap`.
    """
    statistic, sizes = rdm_comparison_statistic(model_rdm, data_rdms, method=method)
    n_pairs = sizes["stimulus"] * (sizes["stimulus"] - 1) // 2
    per_batch = batch_size or max(1, 2_000_000 // (n_pairs * (sizes["rdm"] + 1)))
    return crossed_bootstrap(
        statistic,
        sizes,
        resample=list(resample),
        n_resamples=n_resamples,
        seed=seed,
        ci_level=ci_level,
        interval=interval,
        correction=correction,
        batch_size=per_batch,
        keep_distribution=keep_distribution,
        statistic_name=f"rdm_{method}",
        n=sizes["stimulus"],
        bounds=(-1.0, 1.0),
        extra={"n_rdms": sizes["rdm"]},
    )


def compare_over_steps(model_rdms, data_rdms, *, method: str = "spearman", steps=None) -> list[StatResult]:
    """Time-resolved comparison: each model step's RDM against the data RDMs.

    Parameters
    ----------
    model_rdms : array_like, shape (n_steps, n, n)
        One RDM per model step (e.g. from the latents at each step).
    data_rdms : array_like, (n, n) or (n_rdm, n, n)
    steps : sequence, optional
        Step labels (default 1..n_steps).

    Returns
    -------
    list of StatResult
        One per step: mean comparison over data RDMs; ``extra`` has ``step``
        and the SD over data RDMs.
    """
    comparisons = compare_rdms(model_rdms, data_rdms, method=method)
    steps = list(range(1, comparisons.shape[0] + 1)) if steps is None else list(steps)
    if len(steps) != comparisons.shape[0]:
        raise RSAInputError(f"{len(steps)} step labels for {comparisons.shape[0]} model RDMs")
    method = _compare_method(method)
    return [
        StatResult(
            statistic=f"rdm_{method}",
            estimate=float(row.mean()),
            method=f"mean {method} comparison with {row.size} data RDM(s)",
            n=int(np.asarray(data_rdms).shape[-1]),
            extra={"step": step, "sd_over_rdms": float(row.std(ddof=1)) if row.size > 1 else float("nan")},
        )
        for step, row in zip(steps, comparisons)
    ]


def _compare_method(method):
    method = _ALIASES.get(method, method)
    if method not in COMPARE_METHODS:
        raise RSAInputError(f"method must be one of {COMPARE_METHODS}, got {method!r}")
    return method
