"""Model-time readouts: how long a recurrent model "took" for each stimulus.

Works on any model that gives class logits per step, including one a user
brings (the image-model contract, :mod:`brainres.models.contract`). Steps are
numbered 1..n_steps, as in the ``model_measures`` data model.

Readouts (``method=`` of :func:`model_time`):

``expected_halting_step``
    sum_n n * p_n under the model's halting distribution.
``median_halting_step``
    first step whose cumulative halting probability reaches 0.5.
``entropy_threshold_step``
    first step whose softmax entropy falls below a threshold (Spoerer et al.
    2020, PLoS Comput Biol).
``uncertainty_auc``
    area under the per-step uncertainty curve (Goetschalckx et al. 2023,
    NeurIPS).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.integrate import trapezoid
from scipy.special import log_softmax

from brainres.errors import BrainresError


class ReadoutError(BrainresError, ValueError):
    """Per-step model output has the wrong shape or impossible values."""


def _as_array(values, name: str, ndim: int) -> np.ndarray:
    if hasattr(values, "detach"):  # torch tensor, without importing torch here
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=float)
    if array.ndim != ndim:
        dims = "(stimulus, step, class)" if ndim == 3 else "(stimulus, step)"
        raise ReadoutError(f"{name} must have dims {dims}, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ReadoutError(f"{name} contains NaN or infinite values")
    return array


# Rows of a halting distribution may miss 1 by float32 rounding over many steps; more is a bug.
HALTING_TOLERANCE = 1e-3


def _check_halting(halting_probability) -> np.ndarray:
    probability = _as_array(halting_probability, "halting_probability", 2)
    if (probability < -1e-7).any():
        raise ReadoutError("halting_probability has negative entries")
    sums = probability.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1) > HALTING_TOLERANCE)
    if bad.size:
        raise ReadoutError(
            f"halting_probability rows must sum to 1; row {bad[0]} sums to {sums[bad[0]]:.6f} "
            f"({bad.size} rows off)"
        )
    return probability


# --------------------------------------------------------------- pure readouts
def expected_halting_step(halting_probability) -> np.ndarray:
    """Expected step ``sum_n n p_n``; shape (stimulus,)."""
    probability = _check_halting(halting_probability)
    steps = np.arange(1, probability.shape[1] + 1)
    return probability @ steps


def median_halting_step(halting_probability, *, halting_mass: float = 0.5) -> np.ndarray:
    """First step whose cumulative halting probability reaches ``halting_mass``; shape (stimulus,)."""
    probability = _check_halting(halting_probability)
    cumulative = np.cumsum(probability, axis=1)
    # The tolerance keeps a mass of exactly 0.5 reached by rounding from being missed.
    reached = cumulative >= halting_mass - 1e-9
    reached[:, -1] = True
    return (np.argmax(reached, axis=1) + 1).astype(float)


def step_entropy(logits, *, normalise: bool = True) -> np.ndarray:
    """Softmax entropy per stimulus and step; divided by log(n_classes) when ``normalise``."""
    values = _as_array(logits, "logits", 3)
    log_probability = log_softmax(values, axis=2)
    entropy = -(np.exp(log_probability) * log_probability).sum(axis=2)
    return entropy / np.log(values.shape[2]) if normalise else entropy


def entropy_threshold_step(logits, *, threshold: float = 0.5, normalise: bool = True, if_never: str = "last"):
    """First step whose softmax entropy is below ``threshold`` (Spoerer et al. 2020).

    Parameters
    ----------
    logits : array-like, shape (stimulus, step, class)
    threshold : float
        Entropy threshold (in units of log(n_classes) when ``normalise``).
    normalise : bool
        Compare normalised entropy (0 = certain, 1 = uniform).
    if_never : {"last", "nan"}
        What a stimulus whose entropy never falls below the threshold gets:
        the last step or NaN.

    Returns
    -------
    numpy.ndarray, shape (stimulus,)
    """
    if if_never not in ("last", "nan"):
        raise ReadoutError(f"if_never must be 'last' or 'nan', got {if_never!r}")
    entropy = step_entropy(logits, normalise=normalise)
    below = entropy < threshold
    step = (np.argmax(below, axis=1) + 1).astype(float)
    never = ~below.any(axis=1)
    step[never] = entropy.shape[1] if if_never == "last" else np.nan
    return step


def step_uncertainty(logits, *, uncertainty: str = "entropy") -> np.ndarray:
    """Per-step uncertainty in [0, 1]; shape (stimulus, step).

    ``"entropy"``: normalised softmax entropy. ``"evidential"``: K / (K + sum of
    ReLU(logits)), the Dirichlet uncertainty of evidential deep learning
    (Sensoy et al. 2018) that Goetschalckx et al. 2023 read from their models;
    meaningful only for models trained with an evidential loss.
    """
    if uncertainty == "entropy":
        return step_entropy(logits, normalise=True)
    if uncertainty == "evidential":
        values = _as_array(logits, "logits", 3)
        n_classes = values.shape[2]
        return n_classes / (n_classes + np.maximum(values, 0).sum(axis=2))
    raise ReadoutError(f"uncertainty must be 'entropy' or 'evidential', got {uncertainty!r}")


def uncertainty_auc(logits, *, uncertainty: str = "entropy") -> np.ndarray:
    """Area under the uncertainty-over-steps curve (trapezoid rule, unit step width); shape (stimulus,)."""
    curve = step_uncertainty(logits, uncertainty=uncertainty)
    if curve.shape[1] == 1:
        return curve[:, 0].copy()
    return trapezoid(curve, dx=1.0, axis=1)


# ------------------------------------------------------------------ dispatcher
_NEEDS_HALTING = {"expected_halting_step", "median_halting_step"}
METHODS = ("expected_halting_step", "median_halting_step", "entropy_threshold_step", "uncertainty_auc")


def model_time(*, method: str, logits=None, halting_probability=None, **options) -> np.ndarray:
    """Compute one model-time readout per stimulus.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    logits : array-like, shape (stimulus, step, class)
        Needed by ``entropy_threshold_step`` and ``uncertainty_auc``.
    halting_probability : array-like, shape (stimulus, step)
        Needed by ``expected_halting_step`` and ``median_halting_step``.
    **options
        Passed to the readout (for example ``threshold=`` or ``uncertainty=``).

    Returns
    -------
    numpy.ndarray, shape (stimulus,)
    """
    if method not in METHODS:
        raise ReadoutError(f"unknown readout method {method!r}; choose one of {', '.join(METHODS)}")
    if method in _NEEDS_HALTING:
        if halting_probability is None:
            raise ReadoutError(f"method {method!r} needs halting_probability (the model gave none)")
        return {"expected_halting_step": expected_halting_step, "median_halting_step": median_halting_step}[
            method
        ](halting_probability, **options)
    if logits is None:
        raise ReadoutError(f"method {method!r} needs per-step logits")
    return {"entropy_threshold_step": entropy_threshold_step, "uncertainty_auc": uncertainty_auc}[method](
        logits, **options
    )


def readout_table(
    *, logits, halting_probability=None, stimulus_id=None, entropy_threshold: float = 0.5,
    uncertainty: str = "entropy",
) -> pd.DataFrame:
    """All available readouts as a tidy table, one row per stimulus.

    Halting-based columns appear only when ``halting_probability`` is given.

    Returns
    -------
    pandas.DataFrame
        Columns ``stimulus_id``, [``expected_halting_step``,
        ``median_halting_step``], ``entropy_threshold_step``, ``uncertainty_auc``.
    """
    values = _as_array(logits, "logits", 3)
    n_stimuli = values.shape[0]
    ids = np.arange(n_stimuli) if stimulus_id is None else np.asarray(stimulus_id)
    if ids.shape != (n_stimuli,):
        raise ReadoutError(f"stimulus_id has shape {ids.shape}, expected ({n_stimuli},) to match logits")
    table = {"stimulus_id": ids}
    if halting_probability is not None:
        probability = _check_halting(halting_probability)
        if probability.shape != values.shape[:2]:
            raise ReadoutError(
                f"halting_probability has shape {probability.shape}, logits imply {values.shape[:2]}"
            )
        table["expected_halting_step"] = expected_halting_step(probability)
        table["median_halting_step"] = median_halting_step(probability)
    table["entropy_threshold_step"] = entropy_threshold_step(values, threshold=entropy_threshold)
    table["uncertainty_auc"] = uncertainty_auc(values, uncertainty=uncertainty)
    return pd.DataFrame(table)


# ------------------------------------------------------------------- models
def readouts_for_model(model, images, *, stimulus_id=None, **options) -> pd.DataFrame:
    """Run a contract model (``brainres.models.contract``) on ``images``; return :func:`readout_table` of it.

    ``model`` is any ``nn.Module`` (or callable) whose output meets the
    image-model contract: per-step logits, optionally halting probabilities.
    """
    import torch

    from brainres.models.contract import run_model

    with torch.no_grad():
        out = run_model(model, images)
    return readout_table(logits=out.logits, halting_probability=out.halting_probability, stimulus_id=stimulus_id,
                         **options)
