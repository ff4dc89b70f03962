"""ELM networks on a parameter budget: configure, train, measure, sweep.

A recurrent layer of Expressive Leaky Memory neurons (:mod:`brainres.models.elm`)
is sized by three knobs: the number of neurons ``N`` (``n_neurons``), the
per-neuron complexity ``k_e`` (memory units; the MLP is ``2 k_e`` wide) and the
per-neuron connectivity ``k_c`` (synapses from inputs and other neurons). The
trainable-parameter count ``P`` is exact (:func:`parameter_count`) and
:func:`allocations` / :func:`budget_line` list ways to spend a fixed ``P``.

Tasks (:class:`SequenceTask`): ``digits-adding`` (two 8x8 digits shown one row
per step with a blank delay between them; the target is their sum, 19
classes), ``onehot-adding`` (the same with one-hot digits shown for one step),
or any task a user supplies as tensors.

Headline experiments: :func:`axis_sweep` (performance along one knob) and
:func:`budget_sweep` (allocations of one budget against the two extremes).
Intervals are bootstraps over seeds (:func:`brainres.stats.crossed_bootstrap`).
See ``docs/elm.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr
from scipy import stats as scipy_stats
from tqdm.auto import tqdm

import brainres
from brainres.data.schema import validate
from brainres.errors import BrainresError
from brainres.hashing import canonical_hash
from brainres.models.elm import ELMNetwork
from brainres.models.elm import parameter_count as _model_parameter_count
from brainres.stats import crossed_bootstrap

FAMILY = "elm"
TASKS = ("digits-adding", "onehot-adding")
LOSSES = ("cross_entropy", "mse")


class ELMFamilyError(BrainresError, ValueError):
    """A configuration, task or sweep request of the ELM family that cannot be run."""


# --------------------------------------------------------------------------- config


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that determines an ELM training run except the seed.

    Parameters
    ----------
    n_neurons, k_e, k_c : int
        The resource knobs: neurons ``N``, memory units per neuron, synapses per neuron.
    mlp_width_factor : int
        Hidden width of each neuron's MLP in units of ``k_e``.
    task : str
        ``"digits-adding"``, ``"onehot-adding"`` or the ``name`` of a user's
        :class:`SequenceTask` passed to :func:`train`.
    delay : int
        Blank steps between the two digits (built-in tasks).
    n_train, n_test : int
        Sequences generated for training and testing (built-in tasks).
    data_seed : int
        Seeds the generated sequences (and the digits' train/test split); kept
        apart from the training seed so every seed sees the same data.
    epochs, batch_size, learning_rate, grad_clip
        Adam training; gradients are clipped to norm ``grad_clip``.
    tau_m_min, tau_m_max, tau_s_min, tau_s_max : float
        Bounds (in steps) of the learned memory and synaptic timescales.
    memory_update_scale : float
        Scale of the memory update (the paper's ``lambda``).
    """

    n_neurons: int = 16
    k_e: int = 4
    k_c: int = 8
    mlp_width_factor: int = 2
    task: str = "digits-adding"
    delay: int = 2
    n_train: int = 4096
    n_test: int = 512
    data_seed: int = 0
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 5e-3
    grad_clip: float = 1.0
    tau_m_min: float = 1.0
    tau_m_max: float = 50.0
    tau_s_min: float = 1.0
    tau_s_max: float = 20.0
    memory_update_scale: float = 1.0

    def __post_init__(self):
        positive = ("n_neurons", "k_e", "k_c", "mlp_width_factor", "n_train", "n_test", "epochs", "batch_size")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ELMFamilyError(f"Config.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.delay, (int, np.integer)) or self.delay < 0:
            raise ELMFamilyError(f"Config.delay must be a non-negative integer, got {self.delay!r}")
        for name in ("learning_rate", "grad_clip", "memory_update_scale"):
            if not getattr(self, name) > 0:
                raise ELMFamilyError(f"Config.{name} must be positive, got {getattr(self, name)!r}")
        if not 0 < self.tau_m_min < self.tau_m_max:
            raise ELMFamilyError(f"Config needs 0 < tau_m_min < tau_m_max, got {self.tau_m_min}, {self.tau_m_max}")
        if not 0 < self.tau_s_min < self.tau_s_max:
            raise ELMFamilyError(f"Config needs 0 < tau_s_min < tau_s_max, got {self.tau_s_min}, {self.tau_s_max}")
        if not isinstance(self.task, str) or not self.task:
            raise ELMFamilyError(f"Config.task must be a non-empty task name, got {self.task!r}")

    def to_dict(self) -> dict:
        """Plain JSON-ready dict of every field."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def config_hash(self) -> str:
        """SHA-256 of the canonical (sorted, compact) JSON of :meth:`to_dict`."""
        return canonical_hash(self.to_dict())

    def pressures(self, *, n_inputs: int, n_outputs: int) -> dict:
        """The resource knobs and the exact parameter count they imply."""
        return {
            "n_neurons": int(self.n_neurons),
            "k_e": int(self.k_e),
            "k_c": int(self.k_c),
            "parameter_count": parameter_count(self, n_inputs=n_inputs, n_outputs=n_outputs),
        }


def _plain(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def parameter_count(config: Config, *, n_inputs: int, n_outputs: int) -> int:
    """Exact trainable-parameter count ``P`` of ``config`` on a task of this size.

    ``n_inputs`` only matters through validation (``k_c`` must not exceed
    ``n_inputs + n_neurons`` sources); synapses cost the same wherever they come from.
    """
    if config.k_c > n_inputs + config.n_neurons:
        raise ELMFamilyError(
            f"k_c={config.k_c} exceeds the {n_inputs + config.n_neurons} sources "
            f"(n_inputs={n_inputs} + n_neurons={config.n_neurons})")
    return _model_parameter_count(n_neurons=config.n_neurons, k_e=config.k_e, k_c=config.k_c,
                                  n_outputs=n_outputs, mlp_width_factor=config.mlp_width_factor)


# --------------------------------------------------------------------------- tasks


@dataclasses.dataclass(frozen=True, eq=False)
class SequenceTask:
    """A supervised sequence task given as tensors.

    Parameters
    ----------
    name : str
        Recorded as the model's ``training_data``; must equal ``Config.task``.
    train_inputs, test_inputs : torch.Tensor
        ``(batch, time, features)`` float.
    train_targets, test_targets : torch.Tensor
        ``cross_entropy``: int64 class indices ``(batch,)`` (scored at the
        last step) or ``(batch, time)`` (scored at every step).
        ``mse``: float ``(batch, outputs)`` (last step) or ``(batch, time, outputs)``.
    loss : {"cross_entropy", "mse"}
    n_outputs : int, optional
        Number of classes (default: the largest training label + 1) or of
        regression outputs (default: the targets' last dimension).
    test_ids : sequence of str, optional
        Stimulus ids of the test sequences (default ``<name>-test-00000`` ...).
    data_seed : int, optional
        Generator seed of the data, recorded in ``training_data``.
    """

    name: str
    train_inputs: torch.Tensor
    train_targets: torch.Tensor
    test_inputs: torch.Tensor
    test_targets: torch.Tensor
    loss: str = "cross_entropy"
    n_outputs: int | None = None
    test_ids: tuple | None = None
    data_seed: int | None = None

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ELMFamilyError(f"SequenceTask.loss must be one of {LOSSES}, got {self.loss!r}")
        for split in ("train", "test"):
            inputs = getattr(self, f"{split}_inputs")
            targets = getattr(self, f"{split}_targets")
            if not isinstance(inputs, torch.Tensor) or inputs.ndim != 3 or not inputs.is_floating_point():
                raise ELMFamilyError(f"{split}_inputs must be a float tensor (batch, time, features), "
                                     f"got {_describe(inputs)}")
            if not isinstance(targets, torch.Tensor) or targets.shape[0] != inputs.shape[0]:
                raise ELMFamilyError(f"{split}_targets must be a tensor with {inputs.shape[0]} rows "
                                     f"like {split}_inputs, got {_describe(targets)}")
            if self.loss == "cross_entropy":
                if targets.dtype != torch.int64 or targets.ndim not in (1, 2):
                    raise ELMFamilyError(f"{split}_targets for cross_entropy must be int64 (batch,) or "
                                         f"(batch, time), got {_describe(targets)}")
                if (targets < 0).any():
                    raise ELMFamilyError(f"{split}_targets holds negative class indices")
            elif not targets.is_floating_point() or targets.ndim not in (2, 3):
                raise ELMFamilyError(f"{split}_targets for mse must be float (batch, outputs) or "
                                     f"(batch, time, outputs), got {_describe(targets)}")
            if targets.ndim == (2 if self.loss == "cross_entropy" else 3) and targets.shape[1] != inputs.shape[1]:
                raise ELMFamilyError(f"{split}_targets has {targets.shape[1]} steps, "
                                     f"{split}_inputs has {inputs.shape[1]}")
        if self.train_inputs.shape[2] != self.test_inputs.shape[2]:
            raise ELMFamilyError(f"train_inputs has {self.train_inputs.shape[2]} features, "
                                 f"test_inputs has {self.test_inputs.shape[2]}")
        if self.n_outputs is None:
            if self.loss == "cross_entropy":
                n_outputs = int(max(self.train_targets.max(), self.test_targets.max())) + 1
            else:
                n_outputs = int(self.train_targets.shape[-1])
            object.__setattr__(self, "n_outputs", n_outputs)
        elif (self.loss == "cross_entropy"
              and int(max(self.train_targets.max(), self.test_targets.max())) >= self.n_outputs):
            raise ELMFamilyError(f"targets hold class indices >= n_outputs={self.n_outputs}")
        n_test = self.test_inputs.shape[0]
        ids = self.test_ids or tuple(f"{self.name}-test-{i:05d}" for i in range(n_test))
        if len(ids) != n_test or len(set(ids)) != n_test:
            raise ELMFamilyError(f"test_ids must be {n_test} unique strings, got {len(ids)} ({len(set(ids))} unique)")
        object.__setattr__(self, "test_ids", tuple(str(i) for i in ids))

    @property
    def n_inputs(self) -> int:
        return int(self.train_inputs.shape[2])

    @property
    def per_step(self) -> bool:
        """True when targets are given at every step, False when only at the last."""
        return self.train_targets.ndim == (2 if self.loss == "cross_entropy" else 3)

    def fingerprint(self) -> str:
        """SHA-256 over the task's tensors (identifies user data in ``training_data``)."""
        digest = hashlib.sha256(self.name.encode())
        for tensor in (self.train_inputs, self.train_targets, self.test_inputs, self.test_targets):
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def training_data(self) -> str:
        """Task name plus generator seed (built-in tasks) or data fingerprint (user tasks)."""
        if self.data_seed is not None:
            return f"{self.name} (data_seed={self.data_seed})"
        return f"{self.name} (sha256={self.fingerprint()[:16]})"


def task_from_tensors(name: str, inputs: torch.Tensor, targets: torch.Tensor, *, loss: str = "cross_entropy",
                      test_fraction: float = 0.2, split_seed: int = 0, n_outputs: int | None = None) -> SequenceTask:
    """A :class:`SequenceTask` from one set of ``(inputs [batch, time, features], targets)``.

    A seeded random ``test_fraction`` of the sequences becomes the test set;
    the rest trains. The split seed is recorded as the task's ``data_seed``.
    """
    if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor) or len(inputs) != len(targets):
        raise ELMFamilyError(f"inputs and targets must be tensors with the same number of rows, got "
                             f"{_describe(inputs)} and {_describe(targets)}")
    if not 0 < test_fraction < 1:
        raise ELMFamilyError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    order = torch.from_numpy(np.random.default_rng(split_seed).permutation(len(inputs)))
    n_test = max(1, int(round(test_fraction * len(inputs))))
    if n_test >= len(inputs):
        raise ELMFamilyError(f"{len(inputs)} sequences are too few to split off a test set")
    test, train_rows = order[:n_test], order[n_test:]
    return SequenceTask(name=name, train_inputs=inputs[train_rows], train_targets=targets[train_rows],
                        test_inputs=inputs[test], test_targets=targets[test], loss=loss, n_outputs=n_outputs,
                        data_seed=split_seed)


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def _adding_pairs(n_pairs: int, rng: np.random.Generator, pool: np.ndarray, labels: np.ndarray):
    """Draw ``n_pairs`` (first, second) indices from ``pool``; return indices and summed labels."""
    first = rng.choice(pool, size=n_pairs)
    second = rng.choice(pool, size=n_pairs)
    return first, second, labels[first] + labels[second]


def _sequences(first_rows: np.ndarray, second_rows: np.ndarray, delay: int) -> torch.Tensor:
    """Stack (pairs, rows, features) halves with ``delay`` blank steps between them."""
    blank = np.zeros((first_rows.shape[0], delay, first_rows.shape[2]), dtype=np.float32)
    return torch.from_numpy(np.concatenate([first_rows, blank, second_rows], axis=1).astype(np.float32))


def digits_adding_task(*, n_train: int = 4096, n_test: int = 512, delay: int = 2, data_seed: int = 0,
                       test_fraction: float = 0.3) -> SequenceTask:
    """Two handwritten 8x8 digits shown one row per step, ``delay`` blank steps apart; target their sum.

    Digits come from ``brainres.load_stimuli("digits")`` (scikit-learn's
    digits), pixels scaled to [0, 1]. A seeded split keeps the test pairs'
    images out of training. Sequences have ``16 + delay`` steps of 8 features;
    the sum (0..18, 19 classes) is scored at the last step.
    """
    stimuli = brainres.load_stimuli("digits")
    images = np.asarray(stimuli["image"].values[..., 0], dtype=np.float32) / 255.0
    labels = np.asarray(stimuli["label"].values, dtype=np.int64)
    rng = np.random.default_rng(data_seed)
    order = rng.permutation(labels.size)
    n_held_out = int(round(test_fraction * labels.size))
    test_pool, train_pool = order[:n_held_out], order[n_held_out:]
    tensors = {}
    for split, pool, n_pairs in (("train", train_pool, n_train), ("test", test_pool, n_test)):
        first, second, total = _adding_pairs(n_pairs, rng, pool, labels)
        tensors[split] = (_sequences(images[first], images[second], delay), torch.from_numpy(total))
    return SequenceTask(name="digits-adding", train_inputs=tensors["train"][0], train_targets=tensors["train"][1],
                        test_inputs=tensors["test"][0], test_targets=tensors["test"][1], n_outputs=19,
                        data_seed=data_seed)


def onehot_adding_task(*, n_train: int = 4096, n_test: int = 512, delay: int = 2, data_seed: int = 0) -> SequenceTask:
    """Two digits shown as one-hot vectors for one step each, ``delay`` blank steps apart; target their sum.

    Sequences have ``3 + delay`` steps of 10 features (the last step is blank,
    so the answer is read after both digits); 19 classes scored at the last step.
    """
    rng = np.random.default_rng(data_seed)
    eye = np.eye(10, dtype=np.float32)[:, None, :]
    tensors = {}
    for split, n_pairs in (("train", n_train), ("test", n_test)):
        first, second, total = _adding_pairs(n_pairs, rng, np.arange(10), np.arange(10))
        trailing = np.zeros((n_pairs, 1, 10), dtype=np.float32)
        second_rows = np.concatenate([eye[second], trailing], axis=1)
        tensors[split] = (_sequences(eye[first], second_rows, delay), torch.from_numpy(total.astype(np.int64)))
    return SequenceTask(name="onehot-adding", train_inputs=tensors["train"][0], train_targets=tensors["train"][1],
                        test_inputs=tensors["test"][0], test_targets=tensors["test"][1], n_outputs=19,
                        data_seed=data_seed)


def make_task(config: Config) -> SequenceTask:
    """The built-in task named by ``config.task``, built from the config's data fields."""
    builders = {"digits-adding": digits_adding_task, "onehot-adding": onehot_adding_task}
    if config.task not in builders:
        raise ELMFamilyError(f"Config.task={config.task!r} is not built in ({', '.join(TASKS)}); "
                             "pass your SequenceTask as task=")
    return builders[config.task](n_train=config.n_train, n_test=config.n_test, delay=config.delay,
                                 data_seed=config.data_seed)


def _resolve_task(config: Config, task: SequenceTask | None) -> SequenceTask:
    if task is None:
        return make_task(config)
    if not isinstance(task, SequenceTask):
        raise ELMFamilyError(f"task must be a SequenceTask, got {type(task).__name__}")
    if task.name != config.task:
        raise ELMFamilyError(f"task.name={task.name!r} differs from Config.task={config.task!r}; "
                             "set Config(task=task.name) so the config hash names the data")
    return task


# --------------------------------------------------------------------------- training


def build_model(config: Config, *, n_inputs: int, n_outputs: int, seed: int) -> ELMNetwork:
    """An untrained network for ``config``; ``seed`` sets both wiring and initial weights."""
    parameter_count(config, n_inputs=n_inputs, n_outputs=n_outputs)  # validates k_c
    return ELMNetwork(
        n_inputs=n_inputs, n_outputs=n_outputs, n_neurons=config.n_neurons, k_e=config.k_e, k_c=config.k_c,
        mlp_width_factor=config.mlp_width_factor, tau_m_bounds=(config.tau_m_min, config.tau_m_max),
        tau_s_bounds=(config.tau_s_min, config.tau_s_max), memory_update_scale=config.memory_update_scale,
        connectivity_seed=seed, init_seed=seed,
    )


def _loss(logits: torch.Tensor, targets: torch.Tensor, task: SequenceTask) -> torch.Tensor:
    if not task.per_step:
        logits = logits[:, -1]
    if task.loss == "cross_entropy":
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    return torch.nn.functional.mse_loss(logits, targets)


def _metric(logits: torch.Tensor, targets: torch.Tensor, task: SequenceTask) -> float:
    """Accuracy (cross_entropy) or R^2 pooled over outputs (mse) where the targets are scored."""
    if not task.per_step:
        logits = logits[:, -1]
    if task.loss == "cross_entropy":
        return float((logits.argmax(-1) == targets).double().mean())
    residual = ((logits - targets) ** 2).sum()
    total = ((targets - targets.mean(dim=0, keepdim=True)) ** 2).sum()
    return float(1 - residual / total) if total > 0 else math.nan


def train(config: Config, seed: int, *, task: SequenceTask | None = None, progress: bool = False) -> dict:
    """Train one ELM network; deterministic on CPU for a given ``seed``.

    Parameters
    ----------
    config : Config
    seed : int
        Seeds the wiring, the initial weights and the batch order.
    task : SequenceTask, optional
        A user's task (its ``name`` must equal ``config.task``); default the built-in task.
    progress : bool
        tqdm bar over epochs on stderr.

    Returns
    -------
    dict
        ``model`` (trained, eval mode), ``log`` (DataFrame: epoch, train_loss,
        test_loss, test_metric), ``config``, ``seed``, ``task`` (the
        SequenceTask used), ``train_seconds``.
    """
    if not isinstance(config, Config):
        raise ELMFamilyError(f"config must be an elm.Config, got {type(config).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ELMFamilyError(f"seed must be an integer, got {seed!r}")
    seed = int(seed)
    task = _resolve_task(config, task)
    started = time.perf_counter()
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(seed)
        model = build_model(config, n_inputs=task.n_inputs, n_outputs=task.n_outputs, seed=seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        order = torch.Generator().manual_seed(seed)
        n_train = task.train_inputs.shape[0]
        rows = []
        epochs = tqdm(range(1, config.epochs + 1), desc=f"elm seed {seed}", disable=not progress, file=sys.stderr)
        for epoch in epochs:
            model.train()
            permutation = torch.randperm(n_train, generator=order)
            total, count = 0.0, 0
            for start in range(0, n_train, config.batch_size):
                batch = permutation[start:start + config.batch_size]
                loss = _loss(model(task.train_inputs[batch])["logits"], task.train_targets[batch], task)
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                total += float(loss.detach()) * batch.numel()
                count += batch.numel()
            test_loss, test_metric = _test_scores(model, task)
            rows.append({"epoch": epoch, "train_loss": total / count, "test_loss": test_loss,
                         "test_metric": test_metric})
            epochs.set_postfix(loss=f"{total / count:.3f}", test=f"{test_metric:.3f}")
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
    model.eval()
    return {"model": model, "log": pd.DataFrame(rows), "config": config, "seed": seed, "task": task,
            "train_seconds": time.perf_counter() - started}


def _test_scores(model: ELMNetwork, task: SequenceTask) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(task.test_inputs)["logits"]
    return float(_loss(logits, task.test_targets, task)), _metric(logits, task.test_targets, task)


# --------------------------------------------------------------------------- per-neuron measures


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


# --------------------------------------------------------------------------- export


def measure(config: Config, seeds: Sequence[int], *, task: SequenceTask | None = None,
            trained: Sequence[dict] | None = None, keep_latents: bool = False, progress: bool = False) -> xr.Dataset:
    """Train (or take trained) networks and return a validated ``model_measures`` dataset.

    Parameters
    ----------
    config : Config
    seeds : sequence of int
        Training seeds, one model each.
    task : SequenceTask, optional
        A user's task; default the built-in ``config.task``.
    trained : sequence of dict, optional
        Results of :func:`train` for ``config`` and ``seeds`` (same order) to reuse.
    keep_latents : bool
        Also store every neuron's output at every step (``latent_elm``).
    progress : bool

    Returns
    -------
    xarray.Dataset
        Dims ``seed``, ``stimulus_id`` (test sequences), ``step``, ``unit``,
        ``unit_2``, ``epoch``; variables documented in ``docs/elm.md``.
    """
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ELMFamilyError(f"seeds must be a non-empty list of distinct integers, got {seeds}")
    task = _resolve_task(config, task if trained is None else (task or trained[0]["task"]))
    if trained is None:
        trained = [train(config, seed, task=task, progress=progress) for seed in seeds]
    if len(trained) != len(seeds):
        raise ELMFamilyError(f"trained has {len(trained)} runs for {len(seeds)} seeds")
    for run, seed in zip(trained, seeds):
        if run["seed"] != seed or run["config"] != config:
            raise ELMFamilyError(f"trained run for seed {run['seed']} does not match seed {seed} and this config")
    per_seed = [_evaluate(run["model"], task, keep_latents=keep_latents) for run in trained]
    return _to_dataset(config, task, seeds, trained, per_seed, keep_latents)


def _evaluate(model: ELMNetwork, task: SequenceTask, *, keep_latents: bool) -> dict:
    with torch.no_grad():
        result = model(task.test_inputs)
    logits, neuron_output = result["logits"], result["neuron_output"]
    scored_outputs = neuron_output[:, -1].numpy()
    final_targets = task.test_targets[:, -1] if task.per_step else task.test_targets
    categorical = task.loss == "cross_entropy"
    redundancy = pairwise_redundancy(scored_outputs)
    evaluated = {
        "test_loss": float(_loss(logits, task.test_targets, task)),
        "test_metric": _metric(logits, task.test_targets, task),
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
        "train_loss": (("seed", "epoch"), np.stack([run["log"]["train_loss"].to_numpy() for run in trained])),
        "epoch_test_metric": (("seed", "epoch"), np.stack([run["log"]["test_metric"].to_numpy() for run in trained])),
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
        data["latent_elm"] = (("seed", "stimulus_id", "step", "unit"), stack("latent"))
    ds = xr.Dataset(data, coords=coords)
    ds["test_metric"].attrs["description"] = "accuracy" if task.loss == "cross_entropy" else "R^2 (pooled over outputs)"
    ds.attrs.update({
        "brainres_kind": "model_measures",
        "model_family": FAMILY,
        "pressures": pressures,
        "config_hash": config.config_hash(),
        "config": json.dumps(config.to_dict(), sort_keys=True),
        "brainres_version": brainres.__version__,
        "training_data": task.training_data(),
        "test_metric_name": "accuracy" if task.loss == "cross_entropy" else "r_squared",
        "scored_steps": "every step" if task.per_step else f"last step ({n_steps})",
        **{key: value for key, value in pressures.items()},
    })
    return validate(ds, "model_measures")


# --------------------------------------------------------------------------- budgets


def allocations(budget: int, *, n_inputs: int, n_outputs: int, tolerance: float = 0.1, mlp_width_factor: int = 2,
                n_values: Sequence[int] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128),
                k_e_values: Sequence[int] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32),
                k_c_values: Sequence[int] = (1, 2, 4, 8, 16, 32)) -> pd.DataFrame:
    """Every ``(N, k_e, k_c)`` on the given grids whose exact ``P`` lies within ``tolerance`` of ``budget``.

    Returns a DataFrame (n_neurons, k_e, k_c, parameter_count, relative_error)
    sorted by n_neurons, k_e, k_c. Combinations where ``k_c`` exceeds the
    ``n_inputs + N`` available sources are left out.
    """
    if budget < 1 or not 0 <= tolerance < 1:
        raise ELMFamilyError(f"need budget >= 1 and 0 <= tolerance < 1, got budget={budget}, tolerance={tolerance}")
    rows = []
    for n_neurons in n_values:
        for k_e in k_e_values:
            for k_c in k_c_values:
                if k_c > n_inputs + n_neurons:
                    continue
                count = _model_parameter_count(n_neurons=n_neurons, k_e=k_e, k_c=k_c, n_outputs=n_outputs,
                                               mlp_width_factor=mlp_width_factor)
                error = (count - budget) / budget
                if abs(error) <= tolerance:
                    rows.append({"n_neurons": n_neurons, "k_e": k_e, "k_c": k_c, "parameter_count": count,
                                 "relative_error": error})
    columns = ["n_neurons", "k_e", "k_c", "parameter_count", "relative_error"]
    return pd.DataFrame(rows, columns=columns).sort_values(["n_neurons", "k_e", "k_c"], ignore_index=True)


def budget_line(budget: int, *, n_inputs: int, n_outputs: int, n_values: Sequence[int], k_c: int | None = None,
                k_e: int | None = None, mlp_width_factor: int = 2, max_fill: int = 256,
                tolerance: float = 0.1) -> pd.DataFrame:
    """One allocation per ``N``, filling the budget with the knob that is not fixed.

    Give exactly one of ``k_c`` and ``k_e``; for each ``N`` in ``n_values``
    the other knob (1 .. ``max_fill``, and for ``k_c`` at most the
    ``n_inputs + N`` sources) takes the value whose ``P`` is closest to
    ``budget``. This trades neurons against one kind of per-neuron resource
    along a single line. ``N`` values whose best fill still misses the budget
    by more than ``tolerance`` (relative) are dropped.
    """
    if (k_c is None) == (k_e is None):
        raise ELMFamilyError(f"budget_line needs exactly one of k_c and k_e fixed, got k_c={k_c}, k_e={k_e}")
    fill = "k_e" if k_e is None else "k_c"
    rows = []
    for n_neurons in n_values:
        largest = max_fill if fill == "k_e" else min(max_fill, n_inputs + n_neurons)
        if fill == "k_e" and k_c > n_inputs + n_neurons:
            continue
        candidates = []
        for value in range(1, largest + 1):
            knobs = {"k_e": k_e, "k_c": k_c, fill: value}
            count = _model_parameter_count(n_neurons=n_neurons, n_outputs=n_outputs,
                                           mlp_width_factor=mlp_width_factor, **knobs)
            candidates.append((abs(count - budget), value, count, knobs))
        _, _, count, knobs = min(candidates, key=lambda c: c[:2])
        if abs(count - budget) <= tolerance * budget:
            rows.append({"n_neurons": n_neurons, **knobs, "parameter_count": count,
                         "relative_error": (count - budget) / budget})
    return pd.DataFrame(rows, columns=["n_neurons", "k_e", "k_c", "parameter_count", "relative_error"])


# --------------------------------------------------------------------------- experiments


def run_configs(configs: Sequence[Config], seeds: Sequence[int], *, task: SequenceTask | None = None,
                progress: bool = False, labels: Sequence[dict] | None = None,
                cache: dict | None = None) -> pd.DataFrame:
    """Train and measure every config x seed; one tidy row each.

    Columns: the ``labels`` of the config (if given), ``config_hash``,
    ``n_neurons``, ``k_e``, ``k_c``, ``parameter_count``, ``seed``,
    ``test_metric``, ``test_loss``, ``mean_output_snr``, ``mean_redundancy``,
    ``train_seconds``. ``cache`` (a dict the caller keeps) reuses rows of
    (config, seed, data) combinations already run, e.g. the base
    configuration shared by several sweeps.
    """
    cache = {} if cache is None else cache
    rows = []
    for index, config in enumerate(configs):
        config_task = _resolve_task(config, task)
        key = lambda seed: (config.config_hash(), int(seed), config_task.training_data())  # noqa: E731
        missing = [int(seed) for seed in seeds if key(seed) not in cache]
        if missing:
            trained = [train(config, seed, task=config_task, progress=progress) for seed in missing]
            ds = measure(config, missing, task=config_task, trained=trained)
            for run, seed in zip(trained, missing):
                cache[key(seed)] = {
                    "config_hash": config.config_hash(),
                    "n_neurons": config.n_neurons, "k_e": config.k_e, "k_c": config.k_c,
                    "parameter_count": ds.attrs["parameter_count"], "seed": seed,
                    "test_metric": float(ds["test_metric"].sel(seed=seed)),
                    "test_loss": float(ds["test_loss"].sel(seed=seed)),
                    "mean_output_snr": float(ds["mean_output_snr"].sel(seed=seed)),
                    "mean_redundancy": float(ds["mean_redundancy"].sel(seed=seed)),
                    "train_seconds": run["train_seconds"],
                }
        rows.extend({**(labels[index] if labels else {}), **cache[key(seed)]} for seed in seeds)
    return pd.DataFrame(rows)


def seed_interval(values, *, n_resamples: int = 10_000, bootstrap_seed: int = 0, ci_level: float = 0.95) -> dict:
    """Mean over seeds with a percentile bootstrap interval (seeds resampled) and a t interval.

    Returns ``mean``, ``ci_low``, ``ci_high`` (bootstrap), ``t_ci_low``,
    ``t_ci_high`` (Student t on the seed values; wider and better calibrated
    for a handful of seeds), ``n_seeds``.
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = values.size
    out = {"mean": float(values.mean()) if n else math.nan, "n_seeds": int(n)}
    if n < 2:
        return {**out, "ci_low": math.nan, "ci_high": math.nan, "t_ci_low": math.nan, "t_ci_high": math.nan}
    result = crossed_bootstrap(lambda weights: weights["seed"] @ values, {"seed": n}, n_resamples=n_resamples,
                               seed=bootstrap_seed, ci_level=ci_level, interval="percentile",
                               statistic_name="mean over seeds")
    half = scipy_stats.t.ppf(0.5 + ci_level / 2, n - 1) * values.std(ddof=1) / math.sqrt(n)
    return {**out, "ci_low": result.ci_low, "ci_high": result.ci_high,
            "t_ci_low": out["mean"] - half, "t_ci_high": out["mean"] + half}


def _paired_difference(runs: pd.DataFrame, config_hash: str, reference_hash: str, **interval) -> dict:
    """Per-seed difference of test metric (config minus reference), summarised over shared seeds."""
    left = runs[runs["config_hash"] == config_hash].set_index("seed")["test_metric"]
    right = runs[runs["config_hash"] == reference_hash].set_index("seed")["test_metric"]
    shared = left.index.intersection(right.index)
    return seed_interval((left[shared] - right[shared]).to_numpy(), **interval)


def axis_sweep(base: Config, *, axis: str, values: Sequence[int], seeds: Sequence[int],
               task: SequenceTask | None = None, n_resamples: int = 10_000, bootstrap_seed: int = 0,
               progress: bool = False, cache: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Vary one knob (``n_neurons``, ``k_e`` or ``k_c``) with the others fixed at ``base``.

    Returns
    -------
    runs : DataFrame
        One row per value x seed (see :func:`run_configs`), with ``axis`` and ``value``.
    summary : DataFrame
        One row per value: mean test metric over seeds with bootstrap and t
        intervals, and the paired difference to the smallest value
        (``diff_vs_smallest`` with its intervals; seeds resampled).
    """
    if axis not in ("n_neurons", "k_e", "k_c"):
        raise ELMFamilyError(f"axis must be 'n_neurons', 'k_e' or 'k_c', got {axis!r}")
    values = sorted(int(v) for v in values)
    configs = [dataclasses.replace(base, **{axis: v}) for v in values]
    runs = run_configs(configs, seeds, task=task, progress=progress, cache=cache,
                       labels=[{"axis": axis, "value": v} for v in values])
    interval = {"n_resamples": n_resamples, "bootstrap_seed": bootstrap_seed}
    smallest = configs[0].config_hash()
    rows = []
    for value, config in zip(values, configs):
        group = runs[runs["config_hash"] == config.config_hash()]
        difference = _paired_difference(runs, config.config_hash(), smallest, **interval)
        rows.append({
            "axis": axis, "value": value, "n_neurons": config.n_neurons, "k_e": config.k_e, "k_c": config.k_c,
            "parameter_count": int(group["parameter_count"].iloc[0]),
            **seed_interval(group["test_metric"], **interval),
            "diff_vs_smallest": difference["mean"], "diff_ci_low": difference["ci_low"],
            "diff_ci_high": difference["ci_high"], "diff_t_ci_low": difference["t_ci_low"],
            "diff_t_ci_high": difference["t_ci_high"],
        })
    return runs, _with_method(pd.DataFrame(rows), n_resamples, bootstrap_seed)


def budget_sweep(budget: int, *, base: Config, n_values: Sequence[int], seeds: Sequence[int],
                 task: SequenceTask | None = None, n_resamples: int = 10_000, bootstrap_seed: int = 0,
                 progress: bool = False, cache: dict | None = None, fill: str = "k_e",
                 tolerance: float = 0.1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spend one parameter budget in different ways and compare against the extremes.

    Allocations come from :func:`budget_line`: for each ``N`` in ``n_values``
    the knob named by ``fill`` (``"k_e"`` or ``"k_c"``) takes the value whose
    ``P`` is closest to ``budget``, the other knob stays at its ``base``
    value. The extremes are the allocations with the fewest and the most
    neurons; the *middle* allocation (the median position among the
    allocations that fit, fixed before training) is the pre-specified
    intermediate.

    Returns
    -------
    runs : DataFrame
        One row per allocation x seed.
    summary : DataFrame
        One row per allocation: mean test metric with intervals over seeds,
        and paired differences to the fewest-neuron (``diff_vs_fewest``) and
        most-neuron (``diff_vs_most``) allocations, with bootstrap and t
        intervals; ``role`` is ``fewest``, ``most``, ``middle`` or ``between``.
    """
    if not isinstance(base, Config):
        raise ELMFamilyError(f"base must be an elm.Config, got {type(base).__name__}")
    if fill not in ("k_e", "k_c"):
        raise ELMFamilyError(f"fill must be 'k_e' or 'k_c', got {fill!r}")
    task = _resolve_task(base, task)
    fixed = {"k_c": base.k_c} if fill == "k_e" else {"k_e": base.k_e}
    line = budget_line(budget, n_inputs=task.n_inputs, n_outputs=task.n_outputs, n_values=n_values,
                       mlp_width_factor=base.mlp_width_factor, tolerance=tolerance, **fixed)
    line = line.drop_duplicates(["n_neurons", "k_e", "k_c"]).reset_index(drop=True)
    if len(line) < 3:
        raise ELMFamilyError(f"budget {budget} gives only {len(line)} distinct allocations for n_values "
                             f"{list(n_values)}; need at least 3 (two extremes and one between)")
    configs = [dataclasses.replace(base, n_neurons=int(r.n_neurons), k_e=int(r.k_e), k_c=int(r.k_c))
               for r in line.itertuples()]
    roles = ["between"] * len(configs)
    roles[0], roles[-1], roles[len(configs) // 2] = "fewest", "most", "middle"
    runs = run_configs(configs, seeds, task=task, progress=progress, cache=cache,
                       labels=[{"budget": budget, "role": role} for role in roles])
    interval = {"n_resamples": n_resamples, "bootstrap_seed": bootstrap_seed}
    fewest, most = configs[0].config_hash(), configs[-1].config_hash()
    rows = []
    for role, config in zip(roles, configs):
        group = runs[runs["config_hash"] == config.config_hash()]
        row = {"budget": budget, "fill": fill, "role": role,
               "n_neurons": config.n_neurons, "k_e": config.k_e, "k_c": config.k_c,
               "parameter_count": int(group["parameter_count"].iloc[0]),
               **seed_interval(group["test_metric"], **interval)}
        for name, reference in (("fewest", fewest), ("most", most)):
            difference = _paired_difference(runs, config.config_hash(), reference, **interval)
            row.update({f"diff_vs_{name}": difference["mean"], f"diff_vs_{name}_ci_low": difference["ci_low"],
                        f"diff_vs_{name}_ci_high": difference["ci_high"],
                        f"diff_vs_{name}_t_ci_low": difference["t_ci_low"],
                        f"diff_vs_{name}_t_ci_high": difference["t_ci_high"]})
        rows.append(row)
    return runs, _with_method(pd.DataFrame(rows), n_resamples, bootstrap_seed)


def _with_method(summary: pd.DataFrame, n_resamples: int, bootstrap_seed: int) -> pd.DataFrame:
    summary["interval_method"] = (f"percentile bootstrap over seeds ({n_resamples} resamples, "
                                  f"bootstrap seed {bootstrap_seed}); t_ci_*: Student t over seeds")
    return summary
