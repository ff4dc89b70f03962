"""Cross-validated ridge encoding of neural responses from model features.

Each neuroid's response (averaged over repetitions) is predicted from model
features with ridge regression; the penalty is chosen inside each training fold
(scikit-learn's ``RidgeCV``, efficient leave-one-out), predictions are made for
held-out stimuli only, and the explained variance is computed from those
out-of-fold predictions. With repetitions, the explained variance is divided
by the split-half (Spearman-Brown) reliability of the repetition mean: the
share of variance a perfect model could explain.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from brainres.errors import BrainresError
from brainres.stats.reliability import spearman_brown
from brainres.stats.resample import as_generator
from brainres.stats.result import StatResult


class EncodingInputError(BrainresError, ValueError):
    """Features or responses an encoding model cannot use."""


def ridge_encoding(
    features,
    responses,
    *,
    alphas=tuple(np.logspace(-2, 6, 9)),
    n_folds: int = 5,
    seed=None,
    neuroids=None,
) -> tuple[StatResult, pd.DataFrame]:
    """Fit and evaluate a cross-validated ridge encoding model.

    Parameters
    ----------
    features : array_like, shape (n_stimuli, n_features)
        Model features (e.g. latents at one step).
    responses : array_like, shape (n_stimuli, n_neuroids) or (n_repetitions, n_stimuli, n_neuroids)
    alphas : sequence of float
        Ridge penalties tried inside each training fold.
    n_folds : int, default 5
        Stimulus folds; stimuli are shuffled with ``seed`` before splitting.
    seed : int or numpy.random.Generator
        For the fold assignment and the repetition split.
    neuroids : sequence of str, optional
        Names for the table.

    Returns
    -------
    (summary, table)
        ``summary``: median over neuroids of the noise-normalised explained
        variance (of the raw explained variance without repetitions);
        ``table``: per neuroid ``explained_variance``, ``r``, ``reliability``,
        ``normalized_explained_variance``, ``alpha`` (median chosen penalty).
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = np.asarray(features, dtype=float)
    responses = np.asarray(responses, dtype=float)
    if responses.ndim == 2:
        responses = responses[None]
    if features.ndim != 2 or responses.ndim != 3 or responses.shape[1] != features.shape[0]:
        raise EncodingInputError(
            f"features must be (n_stimuli, n_features) and responses (n_stimuli, n_neuroids) or "
            f"(n_repetitions, n_stimuli, n_neuroids) over the same stimuli; got {features.shape} and {responses.shape}"
        )
    if np.isnan(features).any() or np.isnan(responses).any():
        raise EncodingInputError("features and responses must not contain NaN")
    n_stimuli = features.shape[0]
    if not 2 <= n_folds <= n_stimuli:
        raise EncodingInputError(f"n_folds must lie in [2, n_stimuli={n_stimuli}], got {n_folds}")
    rng, recorded_seed = as_generator(seed)
    target = responses.mean(axis=0)
    predicted = np.empty_like(target)
    chosen = []
    folds = KFold(n_splits=n_folds, shuffle=True, random_state=int(rng.integers(2**31 - 1)))
    for train, test in folds.split(features):
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.asarray(alphas), alpha_per_target=True))
        model.fit(features[train], target[train])
        predicted[test] = model.predict(features[test])
        chosen.append(np.broadcast_to(model[-1].alpha_, (target.shape[1],)))
    residual = ((target - predicted) ** 2).sum(axis=0)
    total = ((target - target.mean(axis=0)) ** 2).sum(axis=0)
    explained = 1 - residual / total
    centred_t, centred_p = target - target.mean(axis=0), predicted - predicted.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (centred_t * centred_p).sum(axis=0) / np.sqrt((centred_t**2).sum(axis=0) * (centred_p**2).sum(axis=0))
    reliability = _repetition_reliability(responses, rng)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalized = explained / reliability
    names = list(neuroids) if neuroids is not None else [f"neuroid_{k}" for k in range(target.shape[1])]
    table = pd.DataFrame(
        {
            "neuroid": names,
            "explained_variance": explained,
            "r": r,
            "reliability": reliability,
            "normalized_explained_variance": normalized,
            "alpha": np.median(np.stack(chosen), axis=0),
        }
    )
    has_ceiling = responses.shape[0] > 1
    summary_values = normalized if has_ceiling else explained
    summary = StatResult(
        statistic="normalized_explained_variance" if has_ceiling else "explained_variance",
        estimate=float(np.nanmedian(summary_values)),
        method=f"ridge encoding, {n_folds}-fold cross-validation over stimuli; median over neuroids"
        + ("; divided by split-half reliability of repetitions" if has_ceiling else ""),
        n=n_stimuli,
        seed=recorded_seed,
        extra={"n_neuroids": int(target.shape[1]), "n_features": int(features.shape[1]),
               "median_explained_variance": float(np.nanmedian(explained))},
    )
    return summary, table


def _repetition_reliability(responses, rng):
    """Spearman-Brown split-half reliability of the repetition mean, per neuroid (NaN with 1 repetition)."""
    n_repetitions = responses.shape[0]
    if n_repetitions < 2:
        return np.full(responses.shape[2], np.nan)
    order = rng.permutation(n_repetitions)
    first = responses[order[: n_repetitions // 2]].mean(axis=0)
    second = responses[order[n_repetitions // 2 :]].mean(axis=0)
    a, b = first - first.mean(axis=0), second - second.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=0) / np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
    return spearman_brown(r)
