"""Sequential/parallel bottleneck autoencoders: configure, train, measure, and the headline experiments.

The task: reconstruct a static binary vector of length ``D`` (all ``2**D``
vectors, uniformly distributed, or a distribution with some bits held fixed)
from codes sent through a bottleneck of ``k`` units over ``n_steps`` steps
(see :mod:`brainres.models.seqpar`). Because the inputs are enumerable and the
evaluation codes are deterministic, the information the codes carry about the
input is computed exactly: ``I(X; C_1..t) = H(C_1..t)``, the entropy of the
partition of the inputs that the codes so far induce.

Public API
----------
:class:`Config`, :func:`train`, :func:`measure`, the exact information
functions :func:`partition_entropy` and :func:`information_measures`, and two
headline experiments: :func:`width_sweep` (parallel at ``k >= D``, about ``k``
bits per step below) and :func:`distribution_switch` (the code reorganises
when the input distribution changes). See ``docs/seqpar.md``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import sys
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr
from tqdm.auto import tqdm

import brainres
from brainres.data.schema import validate
from brainres.errors import BrainresError
from brainres.hashing import canonical_hash
from brainres.models.seqpar import (
    BOTTLENECKS,
    FEEDBACK_SIGNALS,
    SeqParAutoencoder,
    all_binary_vectors,
    reconstruction_loss,
)
from brainres.stats.resample import crossed_bootstrap

FAMILY = "seqpar"
TASKS = ("uniform", "fixed")


class SeqParError(BrainresError, ValueError):
    """A sequential/parallel configuration or request that cannot be carried out."""


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that determines a sequential/parallel autoencoder run.

    Parameters
    ----------
    input_dim : int
        Length ``D`` of the binary input vectors (all ``2**D`` are used).
    bottleneck_width : int
        Resource knob: units ``k`` in the bottleneck at every step.
    n_steps : int
        Resource knob: steps the input is held (one code per step).
    bottleneck : {"discrete", "continuous"}
        Binary straight-through Gumbel units, or ``tanh`` units with Gaussian noise.
    noise_std : float
        Resource knob for continuous codes: channel noise (ignored for discrete codes).
    feedback : bool
        Feed the decoder back to the encoder (False: the encoder gets zeros instead).
    feedback_signal : {"residual", "reconstruction", "state"}
        What is fed back (see :class:`~brainres.models.seqpar.SeqParAutoencoder`);
        ``"residual"`` (predictive coding: input minus the decoder's reconstruction)
        is the one that learns sequential codes within a CPU budget.
    temperature : float
        Relaxation temperature of the straight-through Gumbel samples.
    hidden_size : int
        Encoder hidden layer and decoder GRU state size.
    task : {"uniform", "fixed"}
        Input distribution: uniform over all ``2**D`` vectors, or uniform over
        the vectors whose bits at ``fixed_bits`` are 0.
    fixed_bits : tuple of int
        Input positions held at 0 by the ``"fixed"`` task.
    epochs : int
        Passes over the inputs of the task's support.
    batch_size : int
    learning_rate : float
        Adam learning rate.
    """

    input_dim: int = 6
    bottleneck_width: int = 2
    n_steps: int = 6
    bottleneck: str = "discrete"
    noise_std: float = 0.5
    feedback: bool = True
    feedback_signal: str = "residual"
    temperature: float = 1.0
    hidden_size: int = 64
    task: str = "uniform"
    fixed_bits: tuple[int, ...] = ()
    epochs: int = 600
    batch_size: int = 16
    learning_rate: float = 3e-3

    def __post_init__(self):
        problems = []
        for name in ("input_dim", "bottleneck_width", "n_steps", "hidden_size", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "epochs" else 1):
                problems.append(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.input_dim, int) and not 1 <= self.input_dim <= 12:
            problems.append(f"input_dim must be between 1 and 12 (2**input_dim inputs are enumerated), got {self.input_dim}")
        if self.bottleneck not in BOTTLENECKS:
            problems.append(f"bottleneck must be one of {BOTTLENECKS}, got {self.bottleneck!r}")
        if self.feedback_signal not in FEEDBACK_SIGNALS:
            problems.append(f"feedback_signal must be one of {FEEDBACK_SIGNALS}, got {self.feedback_signal!r}")
        if self.task not in TASKS:
            problems.append(f"task must be one of {TASKS}, got {self.task!r}")
        if not isinstance(self.fixed_bits, tuple):
            problems.append(f"fixed_bits must be a tuple of input positions, got {type(self.fixed_bits).__name__}")
        elif isinstance(self.input_dim, int):
            bad = [b for b in self.fixed_bits if not isinstance(b, int) or not 0 <= b < self.input_dim]
            if bad or len(set(self.fixed_bits)) != len(self.fixed_bits):
                problems.append(f"fixed_bits must be distinct positions in 0..{self.input_dim - 1}, got {self.fixed_bits}")
            if len(self.fixed_bits) >= self.input_dim:
                problems.append("fixed_bits must leave at least one input bit free")
        if self.task == "fixed" and not self.fixed_bits:
            problems.append("task 'fixed' needs at least one position in fixed_bits")
        if self.task == "uniform" and self.fixed_bits:
            problems.append(f"task 'uniform' takes no fixed_bits, got {self.fixed_bits}")
        if not self.noise_std >= 0 or not self.temperature > 0 or not self.learning_rate > 0:
            problems.append(
                "noise_std must be >= 0, temperature and learning_rate > 0; got "
                f"{self.noise_std}, {self.temperature}, {self.learning_rate}"
            )
        if problems:
            raise SeqParError("invalid seqpar Config: " + "; ".join(problems))

    def to_dict(self) -> dict:
        """Plain, JSON-ready dictionary of every field."""
        values = dataclasses.asdict(self)
        values["fixed_bits"] = list(self.fixed_bits)
        return values

    def config_hash(self) -> str:
        """SHA-256 of the canonical (sorted, compact) JSON of :meth:`to_dict`."""
        return canonical_hash(self.to_dict())

    def pressures(self) -> dict:
        """The resource knobs, as stored in the ``pressures`` attribute of an export."""
        pressures = {"bottleneck_width": self.bottleneck_width, "n_steps": self.n_steps, "feedback": self.feedback}
        if self.bottleneck == "continuous":
            pressures["noise_std"] = self.noise_std
        return pressures

    def task_name(self) -> str:
        """Name of the training distribution, e.g. ``binary-D8-uniform`` or ``binary-D8-fixed-0-1``."""
        if self.task == "uniform":
            return f"binary-D{self.input_dim}-uniform"
        return f"binary-D{self.input_dim}-fixed-" + "-".join(str(b) for b in self.fixed_bits)


# --- the task ---


def stimulus_ids(input_dim: int) -> list[str]:
    """Ids ``binary-D<D>-<index>`` of all inputs; the index is the vector read as a binary number."""
    width = len(str(2**input_dim - 1))
    return [f"binary-D{input_dim}-{i:0{max(width, 4)}d}" for i in range(2**input_dim)]


def input_probabilities(config: Config) -> np.ndarray:
    """Probability of each of the ``2**D`` inputs under the configuration's task."""
    inputs = all_binary_vectors(config.input_dim).numpy()
    allowed = np.ones(len(inputs), dtype=bool)
    for bit in config.fixed_bits:
        allowed &= inputs[:, bit] == 0
    return allowed / allowed.sum()


# --- exact information of deterministic codes ---


def _labels(*columns: np.ndarray) -> np.ndarray:
    """One integer label per row for the joint value of the given integer columns."""
    stacked = np.concatenate([np.asarray(c).reshape(len(c), -1) for c in columns], axis=1)
    if stacked.shape[1] == 0:
        return np.zeros(len(stacked), dtype=np.int64)
    return np.unique(stacked, axis=0, return_inverse=True)[1].reshape(-1)


def partition_entropy(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Entropy in bits of the partition ``labels`` induces on inputs of the given probabilities.

    For a deterministic code ``C = f(X)`` this is ``I(X; C)``.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(n_inputs,)`` integer cell of each input, or ``(n_inputs, m)`` integer
        rows (equal rows share a cell).
    probabilities : numpy.ndarray
        ``(n_inputs,)`` non-negative, summing to one.
    """
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=float)
    if len(labels) != len(probabilities):
        raise SeqParError(f"labels has {len(labels)} rows but probabilities has {len(probabilities)}")
    if (probabilities < 0).any() or not math.isclose(probabilities.sum(), 1.0, abs_tol=1e-9):
        raise SeqParError("probabilities must be non-negative and sum to 1")
    cells = _labels(labels)
    mass = np.bincount(cells, weights=probabilities)
    mass = mass[mass > 0]
    return float(-(mass * np.log2(mass)).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0


def information_measures(codes: np.ndarray, inputs: np.ndarray, probabilities: np.ndarray) -> dict:
    """Exact information carried by deterministic discrete codes, by enumerating every input.

    Parameters
    ----------
    codes : numpy.ndarray
        ``(n_inputs, n_steps, width)`` codes (any values; equal values are the same symbol).
    inputs : numpy.ndarray
        ``(n_inputs, input_dim)`` 0/1 inputs.
    probabilities : numpy.ndarray
        ``(n_inputs,)`` input distribution.

    Returns
    -------
    dict of numpy.ndarray
        ``pointwise_bits`` ``(n_inputs, n_steps)``: ``-log2 P(C_1..t = c_1..t(x))``,
        the pointwise information of each input (NaN where ``p(x) = 0``);
        ``transmitted_bits`` ``(n_steps,)``: ``I(X; C_1..t)``, its mean under ``p``;
        ``bit_information`` ``(n_steps, input_dim)``: ``I(X_j; C_1..t)``;
        ``unit_bit_information`` ``(n_steps, width, input_dim)``:
        ``I(X_j; C_t,u | C_1..t-1)``, what unit ``u`` adds about input bit ``j``
        at step ``t`` given the earlier codes.
    """
    codes = np.asarray(codes)
    inputs = np.asarray(inputs).astype(np.int64)
    probabilities = np.asarray(probabilities, dtype=float)
    n_inputs, n_steps, width = codes.shape
    symbols = _labels(codes.reshape(n_inputs * n_steps, width)).reshape(n_inputs, n_steps)
    pointwise = np.full((n_inputs, n_steps), np.nan)
    transmitted = np.zeros(n_steps)
    bit_information = np.zeros((n_steps, inputs.shape[1]))
    unit_information = np.zeros((n_steps, width, inputs.shape[1]))
    bit_entropy = [partition_entropy(inputs[:, j], probabilities) for j in range(inputs.shape[1])]
    # Units are compared by value, so give each unit its own integer symbols.
    unit_symbols = np.stack([_labels(codes[:, :, u].reshape(-1, 1)).reshape(n_inputs, n_steps) for u in range(width)], -1)
    past = np.zeros(n_inputs, dtype=np.int64)  # the cell of C_1..t-1
    supported = probabilities > 0
    for t in range(n_steps):
        now = _labels(past, symbols[:, t])
        mass = np.bincount(now, weights=probabilities)
        pointwise[supported, t] = -np.log2(mass[now[supported]])
        transmitted[t] = partition_entropy(now, probabilities)
        for j in range(inputs.shape[1]):
            bit_information[t, j] = bit_entropy[j] + transmitted[t] - partition_entropy(
                _labels(now, inputs[:, j]), probabilities
            )
            past_with_bit = partition_entropy(_labels(past, inputs[:, j]), probabilities)
            past_only = partition_entropy(past, probabilities)
            for u in range(width):
                with_unit = _labels(past, unit_symbols[:, t, u])
                unit_information[t, u, j] = (
                    past_with_bit
                    + partition_entropy(with_unit, probabilities)
                    - past_only
                    - partition_entropy(_labels(with_unit, inputs[:, j]), probabilities)
                )
        past = now
    # Differences of entropies carry rounding noise of ~1e-15; information is never negative.
    return {
        "pointwise_bits": pointwise,
        "transmitted_bits": transmitted,
        "bit_information": np.clip(bit_information, 0, None) + 0.0,
        "unit_bit_information": np.clip(unit_information, 0, None) + 0.0,
    }


def sequential_parallel_index(transmitted_bits: np.ndarray) -> float:
    """Fraction of the finally transmitted information that arrives at step 1.

    ``I(X; C_1) / I(X; C_1..T)``: 1 is fully parallel, ``1/T``-ish small
    values are sequential. NaN when nothing is transmitted.
    """
    transmitted_bits = np.asarray(transmitted_bits, dtype=float)
    final = transmitted_bits[-1]
    return float(transmitted_bits[0] / final) if final > 1e-9 else math.nan


def steps_to_transmit(transmitted_bits: np.ndarray, *, target_bits: float, tolerance: float = 0.05) -> float:
    """First step (1-based) at which ``target_bits - tolerance`` bits have arrived; NaN if never."""
    reached = np.flatnonzero(np.asarray(transmitted_bits) >= target_bits - tolerance)
    return float(reached[0] + 1) if reached.size else math.nan


# --- training ---


def _seeded(seed) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise SeqParError(f"seed must be an integer, got {seed!r}")
    return int(seed)


def build_model(config: Config) -> SeqParAutoencoder:
    """An untrained model of the configuration (initialised from torch's current RNG)."""
    return SeqParAutoencoder(
        input_dim=config.input_dim,
        bottleneck_width=config.bottleneck_width,
        n_steps=config.n_steps,
        hidden_size=config.hidden_size,
        bottleneck=config.bottleneck,
        feedback=config.feedback,
        feedback_signal=config.feedback_signal,
        noise_std=config.noise_std,
        temperature=config.temperature,
    )


def train(config: Config, seed: int, *, progress: bool = False, model: SeqParAutoencoder | None = None) -> dict:
    """Train one model by backpropagation through time; seeded and deterministic on CPU.

    Parameters
    ----------
    config : Config
    seed : int
        Seeds the initial weights, the batch order and the bottleneck noise.
    progress : bool
        Show a tqdm bar on stderr.
    model : SeqParAutoencoder, optional
        Continue training a copy of this model (e.g. after a switch of input
        distribution) instead of a fresh one; it must match ``config``.

    Returns
    -------
    dict
        ``model`` (in eval mode), ``log`` (DataFrame: ``epoch``, ``loss_bits``
        (mean reconstruction cross-entropy in bits over steps), ``final_error``
        (fraction of input bits wrong at the last step, deterministic codes)),
        ``config``, ``seed``.
    """
    seed = _seeded(seed)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if model is None:
                model = build_model(config)
            else:
                model = copy.deepcopy(model)
                if (model.input_dim, model.bottleneck_width, model.n_steps, model.bottleneck) != (
                    config.input_dim, config.bottleneck_width, config.n_steps, config.bottleneck
                ):
                    raise SeqParError("model passed to train() does not match config (input_dim, width, steps, bottleneck)")
            generator = torch.Generator().manual_seed(seed)
            probabilities = input_probabilities(config)
            inputs = all_binary_vectors(config.input_dim)
            support = inputs[torch.from_numpy(probabilities > 0)]
            optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
            rows = []
            epochs = tqdm(range(config.epochs), desc=f"seqpar k={config.bottleneck_width} seed={seed}",
                          disable=not progress, file=sys.stderr)
            for epoch in epochs:
                model.train()
                order = torch.randperm(len(support), generator=generator)
                total, count = 0.0, 0
                for start in range(0, len(support), config.batch_size):
                    batch = support[order[start : start + config.batch_size]]
                    out = model(batch, stochastic=True, generator=generator)
                    loss = reconstruction_loss(out["reconstruction_logits"], batch)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    total += float(loss.detach()) * len(batch)
                    count += len(batch)
                model.eval()
                with torch.no_grad():
                    last = model(support, stochastic=False)["reconstruction_logits"][:, -1]
                final_error = float(((last > 0).float() != support).float().mean())
                rows.append({"epoch": epoch + 1, "loss_bits": total / count, "final_error": final_error})
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
    model.eval()
    return {"model": model, "log": pd.DataFrame(rows), "config": config, "seed": seed}


# --- measurement ---


def evaluate(model: SeqParAutoencoder, config: Config, *, evaluation_seed: int = 0, n_noise_samples: int = 32) -> dict:
    """Codes, reconstructions and information of one model on all ``2**D`` inputs.

    Discrete codes are deterministic here (sign of the logit) and their
    information is exact. Continuous codes carry channel noise by design, so
    the decoded information is averaged over ``n_noise_samples`` noise draws
    seeded by ``evaluation_seed``; the exported latent is the noiseless code.
    """
    inputs = all_binary_vectors(config.input_dim)
    probabilities = input_probabilities(config)
    log2_probability = np.where(probabilities > 0, np.log2(np.where(probabilities > 0, probabilities, 1)), np.nan)
    model.eval()
    with torch.no_grad():
        clean = model(inputs, stochastic=False)
        if config.bottleneck == "discrete":
            runs = [clean]
        else:
            generator = torch.Generator().manual_seed(int(evaluation_seed))
            runs = [model(inputs, stochastic=True, generator=generator) for _ in range(n_noise_samples)]
        targets = inputs.unsqueeze(1)
        cross_entropy = torch.stack([
            torch.nn.functional.binary_cross_entropy_with_logits(
                run["reconstruction_logits"], targets.expand_as(run["reconstruction_logits"]), reduction="none"
            ).sum(-1) / math.log(2)
            for run in runs
        ]).mean(0).numpy()
        wrong = torch.stack([
            ((run["reconstruction_logits"] > 0).float() != targets).float().mean(-1) for run in runs
        ]).mean(0).numpy()
    codes = clean["codes"].numpy()
    # Barber-Agakov bound: I(X; C_1..t) >= H(X) - E[-log2 q(x | c_1..t)], pointwise -log2 p(x) - CE.
    decoded = -log2_probability[:, None] - cross_entropy
    result = {
        "inputs": inputs.numpy(),
        "probabilities": probabilities,
        "codes": codes,
        "reconstruction_error": wrong,
        "reconstruction_cross_entropy": cross_entropy,
        "decoded_bits": decoded,
        "decoded_transmitted_bits": np.nansum(decoded * probabilities[:, None], axis=0),
    }
    if config.bottleneck == "discrete":
        result.update(information_measures(codes, result["inputs"], probabilities))
    return result


def measure(
    config: Config,
    seeds: Sequence[int],
    *,
    trained: Sequence[dict] | None = None,
    evaluate_config: Config | None = None,
    progress: bool = False,
    evaluation_seed: int = 0,
) -> xr.Dataset:
    """Train (or take trained) models and export their measures as a validated ``model_measures`` dataset.

    Parameters
    ----------
    config : Config
        The configuration the models were trained with.
    seeds : sequence of int
        Training seeds; one model per seed.
    trained : sequence of dict, optional
        Results of :func:`train`, one per seed in the same order; skips training.
    evaluate_config : Config, optional
        Evaluate under another input distribution (e.g. the one after a
        switch); defaults to ``config``. Only ``task``/``fixed_bits`` may differ.
    progress : bool
    evaluation_seed : int
        Seeds the channel noise when measuring continuous codes.

    Returns
    -------
    xarray.Dataset
        Dimensions ``seed``, ``stimulus_id``, ``step``, ``unit``, ``input_bit``;
        variables documented in ``docs/seqpar.md``.
    """
    seeds = [_seeded(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise SeqParError(f"seeds must be a non-empty list of distinct integers, got {seeds}")
    if trained is None:
        trained = [train(config, s, progress=progress) for s in seeds]
    elif len(trained) != len(seeds):
        raise SeqParError(f"trained has {len(trained)} models but seeds has {len(seeds)}")
    evaluate_config = evaluate_config or config
    same = {k: v for k, v in config.to_dict().items() if k not in ("task", "fixed_bits", "epochs", "learning_rate")}
    other = {k: v for k, v in evaluate_config.to_dict().items() if k not in ("task", "fixed_bits", "epochs", "learning_rate")}
    if same != other:
        raise SeqParError("evaluate_config may differ from config only in task, fixed_bits, epochs and learning_rate")
    results = [evaluate(run["model"], evaluate_config, evaluation_seed=evaluation_seed) for run in trained]
    discrete = config.bottleneck == "discrete"
    stacked = {name: np.stack([r[name] for r in results]) for name in results[0]
               if name not in ("inputs", "probabilities")}
    information = stacked["transmitted_bits"] if discrete else np.clip(stacked["decoded_transmitted_bits"], 0, None)
    ids = stimulus_ids(config.input_dim)
    steps = np.arange(1, config.n_steps + 1)
    sample_dims = ("seed", "stimulus_id", "step")
    data = {
        "latent_code": (("seed", "stimulus_id", "step", "unit"), stacked["codes"].astype(np.float32)),
        "reconstruction_error": (sample_dims, stacked["reconstruction_error"]),
        "reconstruction_cross_entropy": (sample_dims, stacked["reconstruction_cross_entropy"]),
        "decoded_bits": (sample_dims, stacked["decoded_bits"]),
        "transmitted_bits": (("seed", "step"), information),
        "sequential_parallel_index": (("seed",), np.array([sequential_parallel_index(i) for i in information])),
        "final_loss_bits": (("seed",), np.array([float(run["log"]["loss_bits"].iloc[-1]) if len(run["log"]) else math.nan
                                                for run in trained])),
        "input": (("stimulus_id", "input_bit"), results[0]["inputs"].astype(np.int8)),
        "input_probability": (("stimulus_id",), results[0]["probabilities"]),
    }
    if discrete:
        data["information_bits"] = (sample_dims, stacked["pointwise_bits"])
        data["bit_information"] = (("seed", "step", "input_bit"), stacked["bit_information"])
        data["unit_bit_information"] = (("seed", "step", "unit", "input_bit"), stacked["unit_bit_information"])
    ds = xr.Dataset(
        data,
        coords={
            "seed": np.array(seeds, dtype=np.int64),
            "stimulus_id": np.array(ids, dtype=str),
            "step": steps.astype(np.int64),
            "unit": np.arange(config.bottleneck_width, dtype=np.int64),
            "input_bit": np.arange(config.input_dim, dtype=np.int64),
        },
        attrs={
            "brainres_kind": "model_measures",
            "model_family": FAMILY,
            "pressures": config.pressures(),
            "config_hash": config.config_hash(),
            "config": json.dumps(config.to_dict(), sort_keys=True),
            "brainres_version": brainres.__version__,
            "training_data": {"task": config.task_name(), "generator_seed": "the training seed (batch order and bottleneck noise)"},
            "evaluation_data": evaluate_config.task_name(),
            "information_method": "exact enumeration of all inputs" if discrete
            else f"decoder lower bound (Barber-Agakov), channel noise averaged over 32 draws, seed {evaluation_seed}",
        },
    )
    ds["transmitted_bits"].attrs["units"] = "bit"
    return validate(ds, "model_measures")


# --- summaries with intervals over seeds ---


def summarise(table: pd.DataFrame, by: Sequence[str], columns: Sequence[str], *, seed: int = 0,
              n_resamples: int = 10_000, ci_level: float = 0.95) -> pd.DataFrame:
    """Mean over seeds of each column per group, with a percentile bootstrap interval over seeds.

    The training seeds (rows of ``table`` within a group) are resampled with
    replacement ``n_resamples`` times using :func:`brainres.stats.crossed_bootstrap`
    with the given ``seed``; NaN rows are dropped first. Groups with fewer than
    two finite values get no interval.
    """
    rows = []
    for key, group in table.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        for column in columns:
            values = group[column].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            row = dict(zip(by, key), measure=column, mean=float(values.mean()) if values.size else math.nan,
                       ci_low=math.nan, ci_high=math.nan, n_seeds=int(values.size))
            if values.size >= 2 and np.ptp(values) > 0:
                result = crossed_bootstrap(
                    lambda weights, v=values: weights["seed"] @ v,
                    {"seed": values.size}, n_resamples=n_resamples, seed=seed,
                    ci_level=ci_level, interval="percentile", statistic_name=column,
                )
                row.update(ci_low=result.ci_low, ci_high=result.ci_high)
            elif values.size >= 2:
                row.update(ci_low=row["mean"], ci_high=row["mean"])  # every seed gave the same value
            rows.append(row)
    summary = pd.DataFrame(rows)
    summary.attrs["interval"] = (
        f"{ci_level:.0%} percentile bootstrap over training seeds, {n_resamples} resamples, numpy seed {seed}"
    )
    return summary


# --- headline experiment 1: width sweep ---


def _curve_row(information: np.ndarray, *, target_bits: float, width: int) -> dict:
    steps = len(information)
    row = {
        "bits_final": float(information[-1]),
        "sequential_parallel_index": sequential_parallel_index(information),
        "steps_to_transmit": steps_to_transmit(information, target_bits=target_bits),
    }
    reached = row["steps_to_transmit"]
    row["bits_per_step"] = float(information[int(reached) - 1] / reached) if np.isfinite(reached) else math.nan
    # Efficiency against the channel's limit: at most k bits a step, at most H(X) in all.
    limit = np.minimum(width * np.arange(1, steps + 1), target_bits)
    row["area_efficiency"] = float(information.sum() / limit.sum())
    for t in range(steps):
        row[f"bits_step_{t + 1}"] = float(information[t])
    return row


def width_sweep(
    base: Config,
    widths: Sequence[int],
    seeds: Sequence[int],
    *,
    progress: bool = False,
    bootstrap_seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train one model per width x seed and tabulate when the information arrives.

    Returns
    -------
    table : pandas.DataFrame
        One row per ``bottleneck_width`` x ``seed``: ``bits_step_1`` ..
        ``bits_step_T`` (``I(X; C_1..t)``), ``bits_final``,
        ``sequential_parallel_index``, ``steps_to_transmit`` (first step within
        0.05 bits of ``H(X)``), ``bits_per_step`` (bits at that step / step),
        ``area_efficiency`` (area under the information curve over the area
        under the channel limit ``min(k t, H(X))``), ``parallel_limit`` (``min(k, D) / D``:
        the index of a code sending ``k`` new bits per step), ``final_loss_bits``.
    summary : pandas.DataFrame
        Mean and bootstrap interval over seeds per width (see :func:`summarise`).
    """
    rows = []
    for width in widths:
        config = dataclasses.replace(base, bottleneck_width=int(width))
        ds = measure(config, seeds, progress=progress)
        target = partition_entropy(np.arange(2**config.input_dim), input_probabilities(config))  # H(X)
        for seed in ds["seed"].values:
            information = ds["transmitted_bits"].sel(seed=seed).values
            row = {"bottleneck_width": int(width), "seed": int(seed), "bottleneck": config.bottleneck,
                   "feedback": config.feedback, "input_dim": config.input_dim}
            row.update(_curve_row(information, target_bits=target, width=int(width)))
            row["parallel_limit"] = min(int(width), target) / target
            row["final_loss_bits"] = float(ds["final_loss_bits"].sel(seed=seed))
            rows.append(row)
    table = pd.DataFrame(rows)
    summary = summarise(
        table, ["bottleneck_width"],
        ["bits_step_1", "bits_final", "sequential_parallel_index", "parallel_limit", "steps_to_transmit",
         "bits_per_step", "area_efficiency"],
        seed=bootstrap_seed,
    )
    return table, summary


# --- headline experiment 2: switch of input distribution ---


def arrival_steps(bit_information: np.ndarray, bit_entropy: np.ndarray, *, fraction: float = 0.9) -> np.ndarray:
    """Per input bit, the first step at which ``fraction`` of its entropy has arrived (NaN if never or if constant)."""
    arrivals = np.full(bit_information.shape[1], np.nan)
    for j in range(bit_information.shape[1]):
        if bit_entropy[j] <= 1e-12:
            continue
        reached = np.flatnonzero(bit_information[:, j] >= fraction * bit_entropy[j])
        if reached.size:
            arrivals[j] = reached[0] + 1
    return arrivals


def _switch_row(ds_seed: xr.Dataset, config_after: Config) -> dict:
    probabilities = input_probabilities(config_after)
    inputs = all_binary_vectors(config_after.input_dim).numpy()
    bit_entropy = np.array([partition_entropy(inputs[:, j], probabilities) for j in range(inputs.shape[1])])
    target = float(bit_entropy.sum())  # the free bits are independent and uniform
    information = ds_seed["transmitted_bits"].values
    arrivals = arrival_steps(ds_seed["bit_information"].values, bit_entropy)
    # Share of each step's new information that is spent on each free bit: the code's "schedule".
    gains = np.diff(ds_seed["bit_information"].values, axis=0, prepend=0)
    return {
        "bits_step_1": float(information[0]),
        "bits_final": float(information[-1]),
        "target_bits": target,
        "steps_to_transmit": steps_to_transmit(information, target_bits=target),
        "mean_arrival_step": float(np.nanmean(arrivals)) if np.isfinite(arrivals).any() else math.nan,
        "arrivals": arrivals,
        "schedule": gains,
    }


def first_sent_bits(bit_information: np.ndarray, n_bits: int) -> tuple[int, ...]:
    """The ``n_bits`` input positions with the most information at step 1 (ties: lower position first)."""
    order = np.lexsort((np.arange(bit_information.shape[1]), -np.round(bit_information[0], 9)))
    return tuple(sorted(int(j) for j in order[:n_bits]))


def distribution_switch(
    base: Config,
    seeds: Sequence[int],
    *,
    fixed_bits: Sequence[int] | str = "first_sent",
    switch_epochs: int,
    progress: bool = False,
    bootstrap_seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Train on uniform inputs, then hold some input bits at 0 and keep training.

    Parameters
    ----------
    base : Config
        Phase-1 configuration (task ``"uniform"``, discrete bottleneck).
    seeds : sequence of int
    fixed_bits : sequence of int or "first_sent"
        Input positions held at 0 after the switch. ``"first_sent"`` (default)
        fixes, per seed, the ``bottleneck_width`` bits the phase-1 code sends
        at step 1, so the switch makes the code's first step useless and a
        code that adapts must move other bits forward.
    switch_epochs : int
        Epochs of training after the switch (and of the control).

    Three measurements per seed, all evaluated under the *new* distribution:
    the model just before the switch (``phase="before"``), after
    ``switch_epochs`` more epochs on the new distribution (``"after"``), and
    a control trained for the same extra epochs on the *old* (uniform)
    distribution (``"control"``), which separates reorganisation caused by
    the switch from drift caused by more training.

    Returns
    -------
    table : pandas.DataFrame
        One row per seed x phase: ``fixed_bits``, ``bits_step_1``,
        ``bits_final``, ``steps_to_transmit`` (first step within 0.05 bits of
        ``H(X_new)``), ``mean_arrival_step`` (mean over free bits of the first
        step at which 90 % of the bit's entropy has arrived),
        ``arrival_changed`` (fraction of free bits whose arrival step differs
        from ``before``), ``schedule_change`` (half the L1 distance between
        the step x bit maps of newly arrived information of this phase and of
        ``before``, over the total; 0 = same schedule, 1 = disjoint).
    summary : pandas.DataFrame
        Mean and bootstrap interval over seeds per phase (:func:`summarise`).
    datasets : dict
        ``{phase: {seed: ds}}`` validated ``model_measures`` datasets, evaluated
        under the new distribution (one per seed, since ``"first_sent"``
        gives every seed its own new distribution).
    """
    seeds = [_seeded(s) for s in seeds]
    if base.task != "uniform" or base.bottleneck != "discrete":
        raise SeqParError(
            f"the switch starts from the uniform task with a discrete bottleneck, got task {base.task!r}, "
            f"bottleneck {base.bottleneck!r}"
        )
    if isinstance(fixed_bits, str) and fixed_bits != "first_sent":
        raise SeqParError(f"fixed_bits must be a sequence of positions or 'first_sent', got {fixed_bits!r}")
    control_config = dataclasses.replace(base, epochs=int(switch_epochs))
    rows = []
    datasets = {"before": {}, "after": {}, "control": {}}
    for seed in seeds:
        first = train(base, seed, progress=progress)
        if isinstance(fixed_bits, str):
            uniform_measures = measure(base, [seed], trained=[first])
            chosen = first_sent_bits(uniform_measures["bit_information"].sel(seed=seed).values, base.bottleneck_width)
        else:
            chosen = tuple(sorted(int(b) for b in fixed_bits))
        after_config = dataclasses.replace(base, task="fixed", fixed_bits=chosen, epochs=int(switch_epochs))
        # Phase 2 draws from its own seed stream (seed + 1_000_000) so phase-1 batches are not replayed.
        after = train(after_config, seed + 1_000_000, model=first["model"], progress=progress)
        control = train(control_config, seed + 1_000_000, model=first["model"], progress=progress)
        measured = {
            "before": measure(base, [seed], trained=[first], evaluate_config=after_config),
            "after": measure(after_config, [seed], trained=[after]),
            "control": measure(control_config, [seed], trained=[control], evaluate_config=after_config),
        }
        reference = _switch_row(measured["before"].sel(seed=seed), after_config)
        for phase, ds in measured.items():
            datasets[phase][seed] = ds
            row = _switch_row(ds.sel(seed=seed), after_config)
            free = np.isfinite(reference["arrivals"]) | np.isfinite(row["arrivals"])
            changed = np.nan_to_num(reference["arrivals"], nan=-1) != np.nan_to_num(row["arrivals"], nan=-1)
            total = reference["schedule"].sum() + row["schedule"].sum()
            difference = np.abs(reference["schedule"] - row["schedule"]).sum()
            rows.append({
                "seed": seed, "phase": phase, "bottleneck_width": base.bottleneck_width,
                "fixed_bits": ",".join(str(b) for b in chosen),
                "bits_step_1": row["bits_step_1"], "bits_final": row["bits_final"],
                "target_bits": row["target_bits"],
                "steps_to_transmit": row["steps_to_transmit"],
                "mean_arrival_step": row["mean_arrival_step"],
                "arrival_changed": float(changed[free].mean()) if free.any() else math.nan,
                "schedule_change": float(difference / total) if total > 0 else math.nan,
            })
    table = pd.DataFrame(rows)
    summary = summarise(table, ["phase"], ["bits_step_1", "bits_final", "steps_to_transmit", "mean_arrival_step",
                                           "arrival_changed", "schedule_change"], seed=bootstrap_seed)
    return table, summary, datasets
