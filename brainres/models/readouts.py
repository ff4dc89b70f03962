"""Model-time readouts: how long a recurrent model "took" for each stimulus.

Works on any model that gives class logits per step, including one a user
brings (see :class:`StepwiseModel` and :class:`StepLogitsAdapter`). Steps are
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

from typing import Callable, Protocol, runtime_checkable

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


def _check_halting(halting_probability) -> np.ndarray:
    probability = _as_array(halting_probability, "halting_probability", 2)
    if (probability < -1e-7).any():
        raise ReadoutError("halting_probability has negative entries")
    sums = probability.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1) > 1e-4)
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


# ------------------------------------------------------------- adapter protocol
@runtime_checkable
class StepwiseModel(Protocol):
    """What a recurrent model must offer for the readouts.

    ``step_outputs(images)`` returns a dict with ``logits`` of shape
    (batch, step, class) and, if the model halts adaptively,
    ``halting_probability`` of shape (batch, step).
    """

    def step_outputs(self, images) -> dict: ...


class StepLogitsAdapter:
    """Wrap a user's callable so it satisfies :class:`StepwiseModel`.

    Parameters
    ----------
    step_logits : callable
        ``step_logits(images)`` returning either a (batch, step, class) array or
        a list (one per step) of (batch, class) arrays.
    halting_probability : callable, optional
        ``halting_probability(images)`` returning (batch, step).
    """

    def __init__(self, step_logits: Callable, halting_probability: Callable | None = None):
        if not callable(step_logits):
            raise ReadoutError("step_logits must be callable: images -> per-step logits")
        self._step_logits = step_logits
        self._halting = halting_probability

    def step_outputs(self, images) -> dict:
        logits = self._step_logits(images)
        if isinstance(logits, (list, tuple)):
            arrays = [_as_array(step, f"logits of step {i + 1}", 2) for i, step in enumerate(logits)]
            logits = np.stack(arrays, axis=1)
        out = {"logits": logits}
        if self._halting is not None:
            out["halting_probability"] = self._halting(images)
        return out


def readouts_for_model(model: StepwiseModel, images, *, stimulus_id=None, **options) -> pd.DataFrame:
    """Run ``model.step_outputs(images)`` and return :func:`readout_table` of the result."""
    if not isinstance(model, StepwiseModel):
        raise ReadoutError(
            f"{type(model).__name__} has no step_outputs(images); wrap it in StepLogitsAdapter"
        )
    out = model.step_outputs(images)
    return readout_table(
        logits=out["logits"], halting_probability=out.get("halting_probability"), stimulus_id=stimulus_id, **options
    )
