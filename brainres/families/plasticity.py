"""Grow / prune plasticity family: configuration, training, export and headline experiments.

A trunk (:class:`~brainres.models.plasticity.PlasticMLP` or
:class:`~brainres.models.plasticity.PlasticConvNet`) is trained on a
classification stimulus set while a schedule inserts or removes hidden units,
and optionally continual backprop replaces low-utility units. Every unit is
tracked (birth step, activation statistics, incoming-gradient norm), and after
each insertion the newborn/incumbent gradient-norm ratio is recorded step by
step. See ``docs/plasticity.md``.

Public API: :class:`Config`, :func:`train`, :func:`measure`,
:func:`insertion_gradient_ratio` and :func:`grow_vs_prune` (the headline
experiments), :func:`summarise_over_seeds`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import xarray as xr
from tqdm.auto import tqdm

import brainres
from brainres.data.schema import validate
from brainres.errors import BrainresError
from brainres.hashing import canonical_hash
from brainres.models.plasticity import (
    ACTIVATIONS,
    INSERTIONS,
    OPTIMIZER_STATES,
    REMOVALS,
    PlasticConvNet,
    PlasticMLP,
    adam_state_by_name,
    contribution,
    incoming_gradient_norms,
    insert_units,
    lowest_units,
    magnitude_scores,
    merge_index_maps,
    reinitialize_units,
    remove_units,
    transplant_adam_state,
    unit_activation_summary,
)
from brainres.stats.resample import crossed_bootstrap

FAMILY = "plasticity"
TRUNKS = ("mlp", "conv")
SCHEDULES = ("none", "grow", "prune")
OPTIMIZERS = ("adam", "sgd")


class PlasticityConfigError(BrainresError, ValueError):
    """A plasticity configuration value is out of range or inconsistent."""


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that determines a plasticity run (with the seed, its numbers).

    Parameters
    ----------
    trunk : {"mlp", "conv"}
        Fully connected or convolutional hidden layers.
    widths : tuple of int
        Initial units (neurons or channels) per hidden layer.
    activation : {"gelu", "relu", "tanh"}
        GELU by default: f(0) = 0 keeps zero-incoming insertions
        function-preserving and f'(0) != 0 lets them learn (GradMax).
    kernel_size : int
        Convolution kernel side (conv trunk only).
    schedule : {"none", "grow", "prune"}
        Structural changes during training.
    change_layers : tuple of int
        Hidden layers the schedule changes.
    n_changes : int
        Number of change events.
    units_per_change : int
        Units inserted into (or removed from) each changed layer per event.
    first_change_step, change_interval : int
        Events happen before the gradient of training steps
        ``first_change_step + k * change_interval`` (steps count from 1).
    insertion : {"random", "zero", "split", "gradmax"}
        How new units are initialised (see :func:`brainres.models.plasticity.insert_units`).
    split_noise : float
        Symmetry-breaking noise of Net2Net splits (function-preserving).
    removal : {"magnitude", "utility"}
        Which units pruning removes: lowest ``||w_in|| * ||w_out||`` or
        lowest running contribution utility.
    optimizer_state : {"keep", "reset"}
        Adam moments across a change: incumbents keep theirs and new units
        start at zero (``"keep"``), or everything restarts (``"reset"``).
    replacement_rate : float
        Continual backprop: expected fraction of mature units replaced per
        step in every hidden layer (0 = off).
    maturity_threshold : int
        Steps a unit must live before it can be replaced.
    utility_decay : float
        Decay of the running contribution utility.
    task : str
        Stimulus-set id for :func:`brainres.load_stimuli` (needs ``label``).
    held_out_fraction : float
    split_seed : int
        Seeds the train/held-out split (same for every training seed).
    epochs, batch_size, learning_rate
    optimizer : {"adam", "sgd"}
    ratio_window : int
        Steps after each insertion for which the gradient ratio is recorded.
    eval_every : int
        Held-out accuracy is evaluated every this many steps (and at the end);
        the trajectory-averaged accuracy is the mean of these evaluations.
    track_every : int
        Per-unit statistics are recorded every this many steps.
    retrain : bool
        Also train the final architecture from scratch (same seed, steps).
    """

    trunk: str = "mlp"
    widths: tuple = (32, 32)
    activation: str = "gelu"
    kernel_size: int = 3
    schedule: str = "grow"
    change_layers: tuple = (0,)
    n_changes: int = 1
    units_per_change: int = 8
    first_change_step: int = 100
    change_interval: int = 50
    insertion: str = "random"
    split_noise: float = 0.1
    removal: str = "magnitude"
    optimizer_state: str = "keep"
    replacement_rate: float = 0.0
    maturity_threshold: int = 100
    utility_decay: float = 0.99
    task: str = "digits"
    held_out_fraction: float = 0.25
    split_seed: int = 0
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 3e-3
    optimizer: str = "adam"
    ratio_window: int = 50
    eval_every: int = 10
    track_every: int = 10
    retrain: bool = True

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "change_layers", tuple(int(v) for v in self.change_layers))
        choices = {
            "trunk": TRUNKS, "activation": tuple(ACTIVATIONS), "schedule": SCHEDULES, "insertion": INSERTIONS,
            "removal": REMOVALS, "optimizer_state": OPTIMIZER_STATES, "optimizer": OPTIMIZERS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise PlasticityConfigError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not self.widths or min(self.widths) < 1:
            raise PlasticityConfigError(f"widths must be positive integers, got {self.widths}")
        bad = [layer for layer in self.change_layers if not 0 <= layer < len(self.widths)]
        if bad or len(set(self.change_layers)) != len(self.change_layers):
            raise PlasticityConfigError(
                f"change_layers must be distinct hidden-layer indices in 0..{len(self.widths) - 1}, "
                f"got {self.change_layers}"
            )
        for name in ("kernel_size", "epochs", "batch_size", "ratio_window", "eval_every", "track_every",
                     "first_change_step", "change_interval", "maturity_threshold"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise PlasticityConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("n_changes", "units_per_change", "split_seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise PlasticityConfigError(f"{name} must be a non-negative integer, got {value!r}")
        if self.schedule != "none" and (self.n_changes < 1 or self.units_per_change < 1):
            raise PlasticityConfigError(
                f"schedule {self.schedule!r} needs n_changes >= 1 and units_per_change >= 1, "
                f"got {self.n_changes} and {self.units_per_change}"
            )
        if self.schedule == "prune":
            for layer in self.change_layers:
                left = self.widths[layer] - self.n_changes * self.units_per_change
                if left < 1:
                    raise PlasticityConfigError(
                        f"pruning {self.n_changes} x {self.units_per_change} units from hidden layer {layer} "
                        f"(width {self.widths[layer]}) leaves {left}; widths must stay positive"
                    )
        if self.insertion == "gradmax" and self.activation == "relu" and self.schedule == "grow":
            raise PlasticityConfigError("insertion 'gradmax' needs an activation with f'(0) != 0 (gelu or tanh)")
        if not 0 <= self.replacement_rate < 1:
            raise PlasticityConfigError(f"replacement_rate must lie in [0, 1), got {self.replacement_rate}")
        if not 0 <= self.utility_decay < 1:
            raise PlasticityConfigError(f"utility_decay must lie in [0, 1), got {self.utility_decay}")
        if not 0 < self.held_out_fraction < 1:
            raise PlasticityConfigError(f"held_out_fraction must lie in (0, 1), got {self.held_out_fraction}")
        if not self.learning_rate > 0 or self.split_noise < 0:
            raise PlasticityConfigError(
                f"learning_rate must be > 0 and split_noise >= 0, got {self.learning_rate} and {self.split_noise}"
            )

    def to_dict(self) -> dict:
        """Plain, JSON-serialisable dict (tuples become lists)."""
        values = dataclasses.asdict(self)
        values["widths"] = list(self.widths)
        values["change_layers"] = list(self.change_layers)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> Config:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise PlasticityConfigError(f"unknown plasticity config keys: {', '.join(unknown)}")
        return cls(**values)

    def config_hash(self) -> str:
        """SHA-256 of the canonical JSON (sorted keys, no spaces) of :meth:`to_dict`."""
        return canonical_hash(self.to_dict())

    def change_steps(self) -> tuple[int, ...]:
        """Training steps (from 1) before whose gradient a change event happens."""
        if self.schedule == "none":
            return ()
        return tuple(self.first_change_step + k * self.change_interval for k in range(self.n_changes))

    def final_widths(self) -> tuple[int, ...]:
        """Widths after the whole schedule."""
        delta = {"none": 0, "grow": 1, "prune": -1}[self.schedule] * self.n_changes * self.units_per_change
        return tuple(w + delta if i in self.change_layers else w for i, w in enumerate(self.widths))

    def pressures(self) -> dict:
        """The resource knobs, for the export's ``pressures`` attribute."""
        return {
            "trunk": self.trunk,
            "initial_widths": list(self.widths),
            "final_widths": list(self.final_widths()),
            "schedule": self.schedule,
            "change_layers": list(self.change_layers),
            "n_changes": self.n_changes,
            "units_per_change": self.units_per_change,
            "insertion": self.insertion,
            "removal": self.removal,
            "optimizer_state": self.optimizer_state,
            "replacement_rate": self.replacement_rate,
        }


# ----------------------------------------------------------------- data
@dataclasses.dataclass(frozen=True)
class _Data:
    train_images: torch.Tensor
    train_labels: torch.Tensor
    held_out_images: torch.Tensor
    held_out_labels: torch.Tensor
    held_out_ids: np.ndarray
    n_classes: int


def split_stimuli(stimuli: xr.Dataset, *, held_out_fraction: float, split_seed: int) -> _Data:
    """Deterministic train/held-out split of a validated stimuli dataset with ``label``.

    The held-out stimuli are a seeded random subset (``numpy`` generator seeded
    with ``split_seed``), kept in the stimulus set's order.
    """
    validate(stimuli, "stimuli")
    if "label" not in stimuli:
        raise PlasticityConfigError(f"stimuli {stimuli.attrs.get('dataset_id', '')!r} have no variable 'label'")
    images = np.asarray(stimuli["image"].values)
    # np.array copies: the stimuli's buffer may be read-only, which torch warns about.
    tensor = torch.from_numpy(np.array(images.transpose(0, 3, 1, 2))).float() / 255.0
    labels = torch.from_numpy(np.asarray(stimuli["label"].values).astype(np.int64))
    n = labels.numel()
    n_held_out = int(round(held_out_fraction * n))
    if not 0 < n_held_out < n:
        raise PlasticityConfigError(f"held_out_fraction {held_out_fraction} leaves no train or no held-out stimuli")
    held_out = np.sort(np.random.default_rng(split_seed).permutation(n)[:n_held_out])
    train = np.setdiff1d(np.arange(n), held_out)
    return _Data(
        tensor[train], labels[train], tensor[held_out], labels[held_out],
        np.asarray(stimuli["stimulus_id"].values).astype(str)[held_out], int(labels.max()) + 1,
    )


def _data_for(config: Config, stimuli: xr.Dataset | None) -> _Data:
    stimuli = brainres.load_stimuli(config.task) if stimuli is None else stimuli
    return split_stimuli(stimuli, held_out_fraction=config.held_out_fraction, split_seed=config.split_seed)


# ----------------------------------------------------------------- training
@contextlib.contextmanager
def _deterministic():
    """Deterministic kernels for the duration of a run; the caller's setting is restored."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def build_model(config: Config, data_shape: tuple[int, int, int], n_classes: int, *, widths=None):
    """The trunk of ``config`` for images of shape ``(channel, y, x)`` (weights from torch's global RNG)."""
    widths = config.widths if widths is None else widths
    channels, height, width = data_shape
    if config.trunk == "mlp":
        return PlasticMLP(n_inputs=channels * height * width, widths=widths, n_classes=n_classes,
                          activation=config.activation)
    return PlasticConvNet(in_channels=channels, widths=widths, n_classes=n_classes,
                          activation=config.activation, kernel_size=config.kernel_size)


def _make_optimizer(config: Config, model):
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    return torch.optim.SGD(model.parameters(), lr=config.learning_rate)


def _rebuild_optimizer(config: Config, model, optimizer, old_state: dict, index_maps: dict):
    fresh = _make_optimizer(config, model)
    if config.optimizer == "adam":
        transplant_adam_state(old_state, model, fresh, index_maps, mode=config.optimizer_state)
    return fresh


@torch.no_grad()
def _predict(model, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    return torch.cat([model(images[i : i + batch_size]).argmax(dim=1) for i in range(0, len(images), batch_size)])


class _UnitBook:
    """Stable unit ids per hidden layer, their birth/removal steps and their tracked statistics."""

    def __init__(self, widths, generator: torch.Generator):
        self.generator = generator  # the run's generator, for structural draws
        self.ids = [list(range(w)) for w in widths]  # current position -> unit id
        self.next_id = list(widths)
        self.birth = [{u: 0 for u in range(w)} for w in widths]
        self.removal = [{} for _ in widths]
        self.rows: list[dict] = []

    def add(self, layer, n, step):
        new = list(range(self.next_id[layer], self.next_id[layer] + n))
        self.next_id[layer] += n
        self.ids[layer].extend(new)
        self.birth[layer].update({u: step for u in new})
        return new

    def remove(self, layer, positions, step):
        gone = {self.ids[layer][p] for p in positions}
        self.removal[layer].update({u: step for u in gone})
        self.ids[layer] = [u for u in self.ids[layer] if u not in gone]

    def replace(self, layer, positions, step):
        for position in positions:
            old = self.ids[layer][position]
            self.removal[layer][old] = step
            new = self.next_id[layer]
            self.next_id[layer] += 1
            self.ids[layer][position] = new
            self.birth[layer][new] = step


def _change_structure(config, model, optimizer, book, utility, step, batch):
    """Apply one grow or prune event to every changed layer; returns (optimizer, insertion event or None, rows)."""
    old_state = adam_state_by_name(model, optimizer)
    index_maps: dict = {}
    event = {"step": step, "layers": {}}
    rows = []
    for layer in config.change_layers:
        if config.schedule == "grow":
            incumbents = set(book.ids[layer])
            index_maps = merge_index_maps(index_maps, insert_units(
                model, layer, config.units_per_change, method=config.insertion, generator=book.generator,
                split_noise=config.split_noise, gradmax_batch=batch,
            ))
            newborn = set(book.add(layer, config.units_per_change, step))
            utility[layer] = torch.cat([utility[layer], torch.zeros(config.units_per_change)])
            event["layers"][layer] = (newborn, incumbents)
        else:
            scores = magnitude_scores(model, layer) if config.removal == "magnitude" else utility[layer]
            chosen = lowest_units(scores, config.units_per_change)
            index_maps = merge_index_maps(index_maps, remove_units(model, layer, chosen))
            book.remove(layer, chosen.tolist(), step)
            keep = torch.ones(utility[layer].numel(), dtype=torch.bool)
            keep[chosen] = False
            utility[layer] = utility[layer][keep]
        rows.append({"step": step, "layer": layer, "change": config.schedule, "width": model.widths[layer]})
    optimizer = _rebuild_optimizer(config, model, optimizer, old_state, index_maps)
    return optimizer, (event if config.schedule == "grow" else None), rows


def _gradient_ratios(insertions, book, norms, step, window):
    """Rows of newborn/incumbent mean incoming-gradient norm for every insertion still in its window."""
    rows = []
    for index, event in enumerate(insertions):
        since = step - event["step"]
        if since >= window:
            continue
        for layer, (newborn, incumbents) in event["layers"].items():
            new_positions = [p for p, unit in enumerate(book.ids[layer]) if unit in newborn]
            old_positions = [p for p, unit in enumerate(book.ids[layer]) if unit in incumbents]
            if new_positions and old_positions:
                ratio = float(norms[layer][new_positions].mean() / norms[layer][old_positions].mean())
                rows.append({"insertion": index, "layer": layer, "steps_since_insertion": since, "step": step,
                             "gradient_ratio": ratio})
    return rows


def _track_units(book, hidden, norms, utility, step):
    """Append one row per alive unit: activation statistics, incoming-gradient norm, utility."""
    for layer, activations in enumerate(hidden):
        mean, std, _ = unit_activation_summary(activations)
        for position, unit in enumerate(book.ids[layer]):
            book.rows.append({
                "step": step, "layer": layer, "unit": unit, "birth_step": book.birth[layer][unit],
                "mean_activation": float(mean[position]), "activation_std": float(std[position]),
                "incoming_gradient_norm": float(norms[layer][position]), "utility": float(utility[layer][position]),
            })


def _replace_units(config, model, optimizer, book, utility, pending, step):
    """Continual backprop: replace the lowest-utility mature units of every hidden layer (in place)."""
    old_state = adam_state_by_name(model, optimizer)
    index_maps: dict = {}
    for layer in range(len(model.widths)):
        ages = torch.tensor([step - book.birth[layer][unit] for unit in book.ids[layer]])
        mature = torch.nonzero(ages > config.maturity_threshold).flatten()
        # Fractional replacements accumulate until a whole unit is due (Dohare et al.).
        pending[layer] += config.replacement_rate * mature.numel()
        n_replace = min(int(pending[layer]), mature.numel())
        if n_replace:
            pending[layer] -= n_replace
            chosen = lowest_units(utility[layer], n_replace, candidates=mature)
            index_maps = merge_index_maps(index_maps, reinitialize_units(model, layer, chosen,
                                                                         generator=book.generator))
            book.replace(layer, chosen.tolist(), step)
            utility[layer][chosen] = 0.0
    if index_maps and config.optimizer == "adam":
        transplant_adam_state(old_state, model, optimizer, index_maps, mode="keep")


def _fit(config: Config, seed: int, data: _Data, *, progress: bool = False) -> dict:
    """One seeded training run of ``config``; see :func:`train` for the result."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)  # data order and every structural draw
    model = build_model(config, tuple(data.train_images.shape[1:]), data.n_classes)
    optimizer = _make_optimizer(config, model)
    n_train = data.train_labels.numel()
    steps_per_epoch = -(-n_train // config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    change_steps = set(config.change_steps())
    book = _UnitBook(model.widths, generator)
    utility = [torch.zeros(width) for width in model.widths]
    pending = [0.0 for _ in model.widths]
    insertions: list[dict] = []
    ratio_rows, eval_rows, step_rows, change_rows, epoch_rows, parameter_counts = [], [], [], [], [], []

    bar = tqdm(total=total_steps, disable=not progress, file=sys.stderr, desc=f"plasticity seed {seed}")
    step = 0
    for epoch in range(1, config.epochs + 1):
        order = torch.randperm(n_train, generator=generator)
        for start in range(0, n_train, config.batch_size):
            step += 1
            batch = order[start : start + config.batch_size]
            images, labels = data.train_images[batch], data.train_labels[batch]
            if step in change_steps:
                optimizer, event, rows = _change_structure(config, model, optimizer, book, utility, step,
                                                           (images, labels))
                change_rows.extend(rows)
                if event is not None:
                    insertions.append(event)

            optimizer.zero_grad(set_to_none=True)
            logits, hidden = model(images, return_hidden=True)
            loss = F.cross_entropy(logits, labels)
            loss.backward()
            parameter_counts.append(model.n_parameters())
            step_rows.append({"step": step, "loss": float(loss.detach())})
            norms = [incoming_gradient_norms(model, layer) for layer in range(len(model.widths))]
            ratio_rows.extend(_gradient_ratios(insertions, book, norms, step, config.ratio_window))
            for layer, activations in enumerate(hidden):
                utility[layer] = (config.utility_decay * utility[layer]
                                  + (1 - config.utility_decay) * contribution(activations, model, layer))
            if step % config.track_every == 0 or step == total_steps:
                _track_units(book, hidden, norms, utility, step)
            optimizer.step()

            if config.replacement_rate > 0:
                _replace_units(config, model, optimizer, book, utility, pending, step)
            if step % config.eval_every == 0 or step == total_steps:
                model.eval()
                accuracy = float((_predict(model, data.held_out_images) == data.held_out_labels).float().mean())
                model.train()
                eval_rows.append({"step": step, "held_out_accuracy": accuracy, "n_parameters": model.n_parameters()})
            bar.update(1)
        model.eval()
        accuracy = float((_predict(model, data.held_out_images) == data.held_out_labels).float().mean())
        model.train()
        epoch_losses = [row["loss"] for row in step_rows[-steps_per_epoch:]]
        epoch_rows.append({"epoch": epoch, "step": step, "train_loss": float(np.mean(epoch_losses)),
                           "held_out_accuracy": accuracy, "n_parameters": model.n_parameters(),
                           "widths": " ".join(map(str, model.widths))})
    bar.close()

    model.eval()
    predicted = _predict(model, data.held_out_images)
    evaluations = pd.DataFrame(eval_rows)
    units = pd.DataFrame(book.rows)
    removal = {(layer, u): s for layer, d in enumerate(book.removal) for u, s in d.items()}
    births = pd.DataFrame(
        [{"layer": layer, "unit": u, "birth_step": b, "removal_step": removal.get((layer, u), np.nan)}
         for layer, d in enumerate(book.birth) for u, b in d.items()]
    )
    return {
        "model": model,
        "config": config,
        "seed": seed,
        "held_out_ids": data.held_out_ids,
        "held_out_predicted": predicted.numpy(),
        "held_out_correct": (predicted == data.held_out_labels).numpy(),
        "final_accuracy": float((predicted == data.held_out_labels).float().mean()),
        "trajectory_accuracy": float(evaluations["held_out_accuracy"].mean()),
        "mean_parameters": float(np.mean(parameter_counts)),
        "final_widths": model.widths,
        "log": pd.DataFrame(epoch_rows),
        "step_log": pd.DataFrame(step_rows),
        "evaluations": evaluations,
        "gradient_ratio": pd.DataFrame(ratio_rows, columns=["insertion", "layer", "steps_since_insertion", "step",
                                                            "gradient_ratio"]),
        "units": units,
        "unit_lifetimes": births,
        "changes": pd.DataFrame(change_rows, columns=["step", "layer", "change", "width"]),
    }


def train(config: Config, seed: int, *, progress: bool = False, stimuli: xr.Dataset | None = None) -> dict:
    """Train one seed of ``config``; deterministic on CPU.

    Parameters
    ----------
    config : Config
    seed : int
        Seeds the initial weights (``torch.manual_seed``), the data order and
        every structural draw (one ``torch.Generator``).
    progress : bool
        tqdm progress bar on stderr.
    stimuli : xarray.Dataset, optional
        A validated stimuli dataset with ``label``; default
        ``brainres.load_stimuli(config.task)``.

    Returns
    -------
    dict
        ``model`` (trained trunk), ``final_accuracy``, ``trajectory_accuracy``
        (mean held-out accuracy over the evaluations), ``mean_parameters``,
        ``final_widths``, ``held_out_ids``/``held_out_predicted``/``held_out_correct``,
        tables ``log`` (per epoch: mean training loss, held-out accuracy at the
        epoch's end, parameters, widths), ``step_log`` (loss per step),
        ``evaluations`` (per ``eval_every``
        steps), ``gradient_ratio`` (per insertion, layer, step since
        insertion), ``units`` (per tracked step and unit), ``unit_lifetimes``
        (birth and removal step of every unit that ever existed), ``changes``;
        with ``config.retrain`` also ``retrained_accuracy`` and
        ``retrained_correct`` (the final architecture trained from scratch,
        same seed and number of steps, no schedule).
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise PlasticityConfigError(f"seed must be a non-negative integer, got {seed!r}")
    data = _data_for(config, stimuli)
    with _deterministic():
        result = _fit(config, int(seed), data, progress=progress)
        if config.retrain:
            static = dataclasses.replace(config, widths=config.final_widths(), schedule="none",
                                         replacement_rate=0.0, retrain=False)
            scratch = _fit(static, int(seed), data, progress=progress)
            result["retrained_accuracy"] = scratch["final_accuracy"]
            result["retrained_correct"] = scratch["held_out_correct"]
    return result


# ----------------------------------------------------------------- export
def measure(config: Config, seeds, *, trained: list[dict] | None = None, progress: bool = False,
            stimuli: xr.Dataset | None = None) -> xr.Dataset:
    """Train (or take trained runs) and return a validated ``model_measures`` dataset.

    Parameters
    ----------
    config : Config
    seeds : sequence of int
    trained : list of dict, optional
        Results of :func:`train` for ``config`` and these seeds, in order.
    progress : bool
    stimuli : xarray.Dataset, optional
        Passed to :func:`train`.

    Returns
    -------
    xarray.Dataset
        Variables are listed in ``docs/plasticity.md``.
    """
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise PlasticityConfigError(f"seeds must be distinct integers, got {seeds}")
    if trained is None:
        trained = [train(config, s, progress=progress, stimuli=stimuli) for s in seeds]
    if len(trained) != len(seeds):
        raise PlasticityConfigError(f"got {len(trained)} trained runs for {len(seeds)} seeds")
    for run, seed in zip(trained, seeds):
        if run["seed"] != seed or run["config"] != config:
            raise PlasticityConfigError(f"trained run for seed {run['seed']} does not match seed {seed} and config")
    per_seed = [_seed_dataset(run) for run in trained]
    # Units differ between seeds only when continual backprop replaced them; missing ones are NaN.
    ds = xr.concat(per_seed, dim="seed", join="outer")
    ds = ds.assign_coords(seed=np.asarray(seeds, dtype=np.int64), step=np.array([1], dtype=np.int64))
    ds.attrs = {
        "brainres_kind": "model_measures",
        "model_family": FAMILY,
        "pressures": config.pressures(),
        "config_hash": config.config_hash(),
        "config": config.to_dict(),
        "brainres_version": brainres.__version__,
        "training_data": f"{config.task} (train split, split_seed={config.split_seed}, "
                         f"held_out_fraction={config.held_out_fraction}); data order seeded by the training seed",
    }
    return validate(ds, "model_measures")


def _seed_dataset(run: dict) -> xr.Dataset:
    config = run["config"]
    ids = run["held_out_ids"]
    data_vars = {
        "correct": (("stimulus_id", "step"), run["held_out_correct"][:, None]),
        "predicted_class": (("stimulus_id", "step"), run["held_out_predicted"].astype(np.int64)[:, None]),
        "final_accuracy": ((), run["final_accuracy"]),
        "trajectory_accuracy": ((), run["trajectory_accuracy"]),
        "mean_parameters": ((), run["mean_parameters"]),
        "final_width": (("hidden_layer",), np.asarray(run["final_widths"], dtype=np.int64)),
    }
    if "retrained_accuracy" in run:
        data_vars["retrained_correct"] = (("stimulus_id",), run["retrained_correct"])
        data_vars["retrained_accuracy"] = ((), run["retrained_accuracy"])
    evaluations = run["evaluations"]
    data_vars["held_out_accuracy"] = (("eval_step",), evaluations["held_out_accuracy"].to_numpy())
    coords = {"stimulus_id": ids, "hidden_layer": np.arange(len(run["final_widths"])),
              "eval_step": evaluations["step"].to_numpy()}
    ds = xr.Dataset(data_vars, coords=coords)

    ratio = run["gradient_ratio"]
    if len(ratio):
        grid = ratio.set_index(["insertion", "layer", "steps_since_insertion"])["gradient_ratio"].to_xarray()
        grid = grid.rename(layer="hidden_layer").reindex(
            hidden_layer=ds["hidden_layer"].values,
            steps_since_insertion=np.arange(config.ratio_window),
        )
        ds["gradient_ratio"] = grid

    units = run["units"].copy()
    units["unit_name"] = [f"layer{layer}-unit{unit:04d}" for layer, unit in zip(units["layer"], units["unit"])]
    table = units.set_index(["unit_name", "step"])
    for column, name in (("mean_activation", "unit_mean_activation"), ("activation_std", "unit_activation_std"),
                         ("incoming_gradient_norm", "unit_gradient_norm"), ("utility", "unit_utility")):
        ds[name] = table[column].to_xarray().rename(unit_name="unit", step="track_step")
    lifetimes = run["unit_lifetimes"].copy()
    lifetimes["unit_name"] = [f"layer{la}-unit{u:04d}" for la, u in zip(lifetimes["layer"], lifetimes["unit"])]
    lifetimes = lifetimes.set_index("unit_name").reindex(ds["unit"].values)
    ds["unit_birth_step"] = (("unit",), lifetimes["birth_step"].to_numpy(dtype=float))
    ds["unit_removal_step"] = (("unit",), lifetimes["removal_step"].to_numpy(dtype=float))
    ds = ds.assign_coords(unit_layer=("unit", lifetimes["layer"].to_numpy(dtype=np.int64)))
    return ds


# ------------------------------------------------------- headline experiments
def summarise_over_seeds(table: pd.DataFrame, *, by, values, n_resamples: int = 10_000, seed: int = 0,
                         ci_level: float = 0.95) -> pd.DataFrame:
    """Mean over seeds of each value column per group, with a bootstrap interval.

    Resamples seeds (rows of a group) with replacement, ``n_resamples`` times,
    from ``numpy.random.default_rng(seed)`` via
    :func:`brainres.stats.crossed_bootstrap` (one factor, percentile interval).
    """
    rows = []
    by = [by] if isinstance(by, str) else list(by)
    for key, group in table.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        for value in values:
            x = group[value].to_numpy(dtype=float)
            x = x[np.isfinite(x)]
            row = dict(zip(by, key), measure=value, n_seeds=x.size, mean=float(np.mean(x)) if x.size else np.nan)
            if x.size >= 2 and np.ptp(x) > 0:
                result = crossed_bootstrap(lambda w, x=x: w["seed"] @ x, {"seed": x.size}, n_resamples=n_resamples,
                                           seed=seed, ci_level=ci_level, interval="percentile")
                row.update(ci_low=result.ci_low, ci_high=result.ci_high)
            else:
                row.update(ci_low=row["mean"], ci_high=row["mean"])
            row.update(resampled="seed", n_resamples=n_resamples, bootstrap_seed=seed)
            rows.append(row)
    return pd.DataFrame(rows)


def ratio_config(trunk: str, **overrides) -> Config:
    """The headline insertion configuration of a trunk.

    One event inserts 8 units into hidden layer 0 before training step 150 (of
    440: 20 epochs of 22 steps); the ratio is tracked for 250 steps.
    """
    widths = (32, 32) if trunk == "mlp" else (16, 16)
    values = dict(trunk=trunk, widths=widths, schedule="grow", change_layers=(0,), n_changes=1,
                  units_per_change=8, first_change_step=150, ratio_window=250, retrain=False)
    values.update(overrides)
    return Config(**values)


def insertion_gradient_ratio(*, trunks=("mlp", "conv"), insertions=("random",), seeds=range(10),
                             early_steps: int = 5, late_steps: int = 50, n_resamples: int = 10_000,
                             bootstrap_seed: int = 0, stimuli: xr.Dataset | None = None, progress: bool = False,
                             **overrides):
    """Headline 1: newborn/incumbent incoming-gradient ratio after one insertion.

    Runs :func:`ratio_config` for every trunk x insertion method x seed.

    Returns
    -------
    per_seed : pandas.DataFrame
        One row per trunk x insertion x seed: ``ratio_at_insertion`` (step 0),
        ``ratio_early`` (mean over steps 0..early_steps-1), ``ratio_late``
        (mean over the last ``late_steps`` tracked steps).
    trajectory : pandas.DataFrame
        One row per trunk x insertion x seed x steps_since_insertion.
    summary : pandas.DataFrame
        Means over seeds with bootstrap intervals (see :func:`summarise_over_seeds`),
        plus rows ``measure="conv_minus_mlp_gap"`` for the difference of
        ``1 - ratio_at_insertion`` between trunks (seeds of the two trunks
        resampled independently).
    """
    per_seed_rows, trajectories = [], []
    for trunk in trunks:
        for insertion in insertions:
            config = ratio_config(trunk, insertion=insertion, **overrides)
            for seed in seeds:
                run = train(config, int(seed), stimuli=stimuli, progress=progress)
                ratio = run["gradient_ratio"].groupby("steps_since_insertion")["gradient_ratio"].mean()
                per_seed_rows.append({
                    "trunk": trunk, "insertion": insertion, "seed": int(seed),
                    "ratio_at_insertion": float(ratio.loc[0]),
                    "ratio_early": float(ratio.iloc[:early_steps].mean()),
                    "ratio_late": float(ratio.iloc[-late_steps:].mean()),
                    "final_accuracy": run["final_accuracy"],
                    "config_hash": config.config_hash(),
                })
                trajectories.append(pd.DataFrame({"trunk": trunk, "insertion": insertion, "seed": int(seed),
                                                  "steps_since_insertion": ratio.index.to_numpy(),
                                                  "gradient_ratio": ratio.to_numpy()}))
    per_seed = pd.DataFrame(per_seed_rows)
    trajectory = pd.concat(trajectories, ignore_index=True)
    summary = summarise_over_seeds(per_seed, by=["trunk", "insertion"],
                                   values=["ratio_at_insertion", "ratio_early", "ratio_late"],
                                   n_resamples=n_resamples, seed=bootstrap_seed)
    if {"mlp", "conv"} <= set(trunks):
        gaps = [_gap_difference(per_seed, insertion, n_resamples=n_resamples, seed=bootstrap_seed)
                for insertion in insertions]
        summary = pd.concat([summary, pd.DataFrame(gaps)], ignore_index=True)
    return per_seed, trajectory, summary


def _gap_difference(per_seed: pd.DataFrame, insertion: str, *, n_resamples: int, seed: int) -> dict:
    """(1 - ratio) conv minus (1 - ratio) mlp at insertion; the two trunks' seeds resampled independently."""
    rows = per_seed[per_seed["insertion"] == insertion]
    conv_gap = 1 - rows.loc[rows["trunk"] == "conv", "ratio_at_insertion"].to_numpy()
    mlp_gap = 1 - rows.loc[rows["trunk"] == "mlp", "ratio_at_insertion"].to_numpy()
    result = crossed_bootstrap(
        lambda w: w["conv_seed"] @ conv_gap - w["mlp_seed"] @ mlp_gap,
        {"conv_seed": conv_gap.size, "mlp_seed": mlp_gap.size},
        n_resamples=n_resamples, seed=seed, interval="percentile", correction="none",
    )
    return {"trunk": "conv-mlp", "insertion": insertion, "measure": "conv_minus_mlp_gap",
            "n_seeds": int(min(conv_gap.size, mlp_gap.size)), "mean": result.estimate, "ci_low": result.ci_low,
            "ci_high": result.ci_high, "resampled": "seed (each trunk independently)",
            "n_resamples": n_resamples, "bootstrap_seed": seed}


def schedule_configs(trunk: str, **overrides) -> dict[str, Config]:
    """Grow, prune and static configurations that end at the same widths (headline 2).

    Both hidden layers change in 4 events of ``final_width / 8`` units each:
    grow starts at half the final width, prune at 1.5 times it; static
    trains the final widths throughout.
    """
    final = (32, 32) if trunk == "mlp" else (16, 16)
    per_event = final[0] // 8
    base = dict(trunk=trunk, change_layers=(0, 1), n_changes=4, units_per_change=per_event,
                first_change_step=60, change_interval=60, retrain=True)
    base.update(overrides)
    half = tuple(w - 4 * per_event for w in final)
    more = tuple(w + 4 * per_event for w in final)
    return {
        "grow": Config(widths=half, schedule="grow", **base),
        "prune": Config(widths=more, schedule="prune", **base),
        "static": Config(widths=final, schedule="none", **{**base, "retrain": False}),
    }


def grow_vs_prune(*, trunks=("mlp", "conv"), seeds=range(10), n_resamples: int = 10_000, bootstrap_seed: int = 0,
                  stimuli: xr.Dataset | None = None, progress: bool = False, **overrides):
    """Headline 2: Grow vs Prune vs static on final and trajectory-averaged accuracy.

    Returns
    -------
    per_seed : pandas.DataFrame
        One row per trunk x schedule x seed: ``final_accuracy``,
        ``trajectory_accuracy``, ``retrained_accuracy`` (final architecture
        from scratch; for static the run itself), ``mean_parameters``.
    summary : pandas.DataFrame
        Means over seeds with bootstrap intervals (seeds resampled), then
        paired differences (rows with ``schedule`` like ``"grow - prune"``):
        per seed the difference between two schedules trained with the same
        seed (same data order), averaged and bootstrapped over seeds.
    """
    rows = []
    for trunk in trunks:
        configs = schedule_configs(trunk, **overrides)
        static_accuracy = {}
        for schedule in ("static", "grow", "prune"):
            # The static run *is* the final architecture trained from scratch (same widths, seed and
            # steps), so grow and prune skip their own retraining and take its accuracy.
            config = dataclasses.replace(configs[schedule], retrain=False)
            for seed in seeds:
                run = train(config, int(seed), stimuli=stimuli, progress=progress)
                if schedule == "static":
                    static_accuracy[int(seed)] = run["final_accuracy"]
                rows.append({
                    "trunk": trunk, "schedule": schedule, "seed": int(seed),
                    "final_accuracy": run["final_accuracy"], "trajectory_accuracy": run["trajectory_accuracy"],
                    "retrained_accuracy": static_accuracy[int(seed)],
                    "mean_parameters": run["mean_parameters"], "final_widths": str(run["final_widths"]),
                    "config_hash": configs[schedule].config_hash(),
                })
    per_seed = pd.DataFrame(rows)
    summary = summarise_over_seeds(
        per_seed, by=["trunk", "schedule"],
        values=["final_accuracy", "trajectory_accuracy", "retrained_accuracy", "mean_parameters"],
        n_resamples=n_resamples, seed=bootstrap_seed,
    )
    differences = schedule_differences(per_seed, n_resamples=n_resamples, bootstrap_seed=bootstrap_seed)
    return per_seed, pd.concat([summary, differences], ignore_index=True)


def schedule_differences(per_seed: pd.DataFrame, *, pairs=(("grow", "prune"), ("grow", "static"), ("prune", "static")),
                         values=("final_accuracy", "trajectory_accuracy"), n_resamples: int = 10_000,
                         bootstrap_seed: int = 0) -> pd.DataFrame:
    """Per-seed differences between schedules (same trunk and seed), summarised over seeds."""
    wide = per_seed.pivot_table(index=["trunk", "seed"], columns="schedule", values=list(values))
    rows = []
    for first, second in pairs:
        for (trunk, seed), row in wide.iterrows():
            rows.append({"trunk": trunk, "schedule": f"{first} - {second}", "seed": seed,
                         **{value: row[(value, first)] - row[(value, second)] for value in values}})
    return summarise_over_seeds(pd.DataFrame(rows), by=["trunk", "schedule"], values=list(values),
                                n_resamples=n_resamples, seed=bootstrap_seed)
