"""What an ELM network did on its test sequences, as a ``model_measures`` dataset; per-neuron SNR and redundancy."""

from __future__ import annotations

import math

import numpy as np
import torch
import xarray as xr

import brainres
from brainres.data.schema import validate
from brainres.families.elm.network import ELMNetwork
from brainres.families.elm.tasks import ELMFamilyError, SequenceTask
from brainres.families.base import runs_to_measure
from brainres.families.elm.training import loss_of, metric_of

FAMILY = "elm"


def output_snr(outputs: np.ndarray, targets: np.ndarray, *, categorical: bool) -> np.ndarray:
    """Signal-to-noise ratio of each neuron's output about the target.

    Parameters
    ----------
    outputs : ndarray ``(items, neurons)``
        Each neuron's output at the scored step, one row per test item.
    targets : ndarray ``(items,)`` or ``(items, k)``
    categorical : bool
        True: signal = variance of the class-conditional means (weighted by
        class size), noise = pooled within-class variance. False: signal and
        noise are the explained and residual variance of a least-squares fit
        of the output on the targets (with intercept).

    Returns
    -------
    ndarray ``(neurons,)``
        signal / noise; NaN for a neuron whose output is constant.
    """
    outputs = np.asarray(outputs, dtype=float)
    if categorical:
        classes, inverse = np.unique(np.asarray(targets), return_inverse=True)
        means = np.stack([outputs[inverse == c].mean(axis=0) for c in range(classes.size)])
        fitted = means[inverse]
    else:
        design = np.column_stack([np.ones(len(outputs)), np.asarray(targets, dtype=float).reshape(len(outputs), -1)])
        coefficients, *_ = np.linalg.lstsq(design, outputs, rcond=None)
        fitted = design @ coefficients
    # Averaging over items weights each class mean by its class size.
    signal = ((fitted - outputs.mean(axis=0)) ** 2).mean(axis=0)
    noise = ((outputs - fitted) ** 2).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = signal / noise
    snr[(signal + noise) <= 1e-24] = np.nan
    return snr


def pairwise_redundancy(outputs: np.ndarray) -> np.ndarray:
    """Squared Pearson correlation between every pair of neurons' outputs across items.

    Returns ``(neurons, neurons)`` with a diagonal of 1; rows and columns of
    constant neurons are NaN.
    """
    outputs = np.asarray(outputs, dtype=float)
    centred = outputs - outputs.mean(axis=0)
    scale = np.sqrt((centred**2).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        standardised = centred / scale
        correlation = standardised.T @ standardised
    correlation[:, scale <= 1e-12] = np.nan
    correlation[scale <= 1e-12, :] = np.nan
    return np.clip(correlation, -1, 1) ** 2


def _mean_off_diagonal(matrix: np.ndarray) -> float:
    mask = ~np.eye(matrix.shape[0], dtype=bool)
    values = matrix[mask]
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else math.nan


def measure(config, runs, *, keep_latents: bool = False) -> xr.Dataset:
    """The test-set behaviour of trained runs (one per seed) of one configuration, as ``model_measures``.

    Parameters
    ----------
    config : ELMConfig
    runs : sequence of TaskRun
        Results of :func:`brainres.families.elm.train` (or ``load``) for ``config``, one per seed.
    keep_latents : bool
        Also store every neuron's output at every step (``latent``, layer ``elm``).

    Returns
    -------
    xarray.Dataset
        Dims ``seed``, ``stimulus_id`` (test sequences), ``step``, ``unit``,
        ``unit_2``, ``epoch``; variables documented in ``docs/elm.md``.
    """
    runs = runs_to_measure(config, runs, ELMFamilyError)
    seeds = [run.seed for run in runs]
    task = runs[0].extras["task"]
    per_seed = [_evaluate(run.model, task, keep_latents=keep_latents) for run in runs]
    return _to_dataset(config, task, seeds, runs, per_seed, keep_latents)


def _evaluate(model: ELMNetwork, task: SequenceTask, *, keep_latents: bool) -> dict:
    with torch.no_grad():
        result = model(task.test_inputs)
    logits, neuron_output = result["logits"], result["neuron_output"]
    scored_outputs = neuron_output[:, -1].numpy()
    final_targets = task.test_targets[:, -1] if task.per_step else task.test_targets
    categorical = task.loss == "cross_entropy"
    redundancy = pairwise_redundancy(scored_outputs)
    evaluated = {
        "test_loss": float(loss_of(logits, task.test_targets, task)),
        "test_metric": metric_of(logits, task.test_targets, task),
        "output_snr": output_snr(scored_outputs, final_targets.numpy(), categorical=categorical),
        "redundancy": redundancy,
        "mean_redundancy": _mean_off_diagonal(redundancy),
    }
    if categorical:
        probabilities = torch.softmax(logits, dim=-1)
        evaluated["predicted_class"] = logits.argmax(-1).numpy()
        evaluated["entropy"] = (-(probabilities * torch.log(probabilities.clamp_min(1e-30))).sum(-1)).numpy()
    else:
        evaluated["prediction"] = logits[:, -1].numpy()
    if keep_latents:
        evaluated["latent"] = neuron_output.numpy()
    return evaluated


def _to_dataset(config, task, seeds, trained, per_seed, keep_latents) -> xr.Dataset:
    n_steps = task.test_inputs.shape[1]
    n_neurons = config.n_neurons
    stack = lambda key: np.stack([e[key] for e in per_seed])  # noqa: E731
    pressures = config.pressures(n_inputs=task.n_inputs, n_outputs=task.n_outputs)
    data = {
        "test_metric": (("seed",), stack("test_metric")),
        "test_loss": (("seed",), stack("test_loss")),
        "mean_output_snr": (("seed",), np.array([np.nanmean(e["output_snr"]) if np.isfinite(e["output_snr"]).any()
                                                  else np.nan for e in per_seed])),
        "mean_redundancy": (("seed",), stack("mean_redundancy")),
        "output_snr": (("seed", "unit"), stack("output_snr")),
        "redundancy": (("seed", "unit", "unit_2"), stack("redundancy")),
        "train_loss": (("seed", "epoch"), np.stack([run.log["train_loss"].to_numpy() for run in trained])),
        "epoch_test_metric": (("seed", "epoch"), np.stack([run.log["test_metric"].to_numpy() for run in trained])),
    }
    coords = {
        "seed": np.array(seeds, dtype=np.int64),
        "stimulus_id": np.array(task.test_ids, dtype=object),
        "step": np.arange(1, n_steps + 1, dtype=np.int64),
        "unit": np.arange(n_neurons, dtype=np.int64),
        "unit_2": np.arange(n_neurons, dtype=np.int64),
        "epoch": np.arange(1, config.epochs + 1, dtype=np.int64),
    }
    if task.loss == "cross_entropy":
        predicted = stack("predicted_class")
        targets = task.test_targets.numpy()
        step_targets = targets if task.per_step else np.broadcast_to(targets[:, None], (targets.size, n_steps))
        data["predicted_class"] = (("seed", "stimulus_id", "step"), predicted.astype(np.int64))
        data["correct"] = (("seed", "stimulus_id", "step"), predicted == step_targets[None])
        data["entropy"] = (("seed", "stimulus_id", "step"), stack("entropy"))
        coords["target"] = (("stimulus_id",) if not task.per_step else ("stimulus_id", "step"), targets)
    else:
        data["prediction"] = (("seed", "stimulus_id", "output"), stack("prediction"))
        final_targets = task.test_targets[:, -1] if task.per_step else task.test_targets
        coords["target"] = (("stimulus_id", "output"), final_targets.numpy())
    if keep_latents:
        data["latent"] = (("seed", "stimulus_id", "step", "feature"), stack("latent"))
        coords.update(feature_layer=("feature", np.full(n_neurons, "elm")),
                      feature_unit=("feature", np.arange(n_neurons, dtype=np.int64)))
    ds = xr.Dataset(data, coords=coords)
    ds["test_metric"].attrs["description"] = "accuracy" if task.loss == "cross_entropy" else "R^2 (pooled over outputs)"
    ds.attrs.update({
        "brainres_kind": "model_measures",
        "model_family": FAMILY,
        "pressures": pressures,
        "config_hash": config.config_hash(),
        "config": config.to_dict(),
        "brainres_version": brainres.__version__,
        "training_data": task.training_data(),
        "test_metric_name": "accuracy" if task.loss == "cross_entropy" else "r_squared",
        "scored_steps": "every step" if task.per_step else f"last step ({n_steps})",
        **{key: value for key, value in pressures.items()},
    })
    return validate(ds, "model_measures")


