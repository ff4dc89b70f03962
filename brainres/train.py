"""Training any image model that meets the contract: seeded, deterministic on CPU, resumable, logged.

The lattice and a user's own ``nn.Module`` train the same way
(:func:`train_model`): cross-entropy over steps (halting-weighted where the
model halts, see :func:`brainres.models.contract.task_loss`) plus the model's
own ``cost``, Adam (constant or cosine-annealed), optional augmentation
(occlusion, edge maps, mirroring, shifts), a fixed held-out split for the
per-epoch log.

A run lives in its own folder (:class:`brainres.runs.RunFolder`) holding
``config.json`` (what the model is and how it was trained), ``checkpoint.pt``
(written atomically after every epoch: weights, optimizer, data-order
generator, RNG state, the log so far) and ``log.csv``. Calling :func:`train_model` again on the same folder resumes from
the last completed epoch and ends with the same weights, bit for bit, as a run
that was never interrupted.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from brainres.errors import BrainresError
from brainres.hashing import canonical_hash
from brainres.models.contract import (
    halting_steps, parameter_count, resource_summary, run_model, seeded, task_loss,
)
from brainres.models.inputs import edge_map, flip_and_shift, images_to_tensor  # noqa: F401  (images_to_tensor: part of the training API)
from brainres.models.occlusion import occlude
from brainres.runs import (  # noqa: F401  (CHECKPOINT, CONFIG, LOG: part of the training API)
    CHECKPOINT, CONFIG, LOG, EpochProgress, RunFolder, RunFolderError, read_checkpoint, read_run_config,
)
from brainres.settings import Choice, Integer, Optional, Real, Rule, Sequence, Settings, setting



class TrainingError(BrainresError):
    """Training inputs are inconsistent or a run folder belongs to another configuration."""


@dataclasses.dataclass(frozen=True)
class Device(Rule):
    """``"cpu"``, ``"cuda"``, ``"cuda:<index>"`` or ``"mps"``."""

    def check(self, value):
        if not isinstance(value, str) or not (value in ("cpu", "cuda", "mps") or
                                              (value.startswith("cuda:") and value[5:].isdigit())):
            raise ValueError(f"expected {self.describe()}, got {value!r}")
        return value

    def describe(self) -> str:
        return "'cpu', 'cuda', 'cuda:<index>' or 'mps'"


_FRACTION = Real(low=0, high=1)


@dataclasses.dataclass(frozen=True)
class TrainConfig(Settings):
    """How a model is trained (the pipeline's ``[model.training]`` table, plus the seed and device).

    Every field's default is declared once, here; the command line and the
    pipeline take theirs from it.
    """

    seed: int = setting(0, Integer(low=0), "initialisation, data order and training occlusion masks")
    epochs: int = setting(20, Integer(low=1), "passes over the training split")
    batch_size: int = setting(64, Integer(low=1), "images per optimisation step")
    learning_rate: float = setting(3e-3, Real(low=0, low_open=True), "Adam learning rate")
    held_out_fraction: float = setting(0.2, Real(low=0, high=1, low_open=True, high_open=True),
                                       "fraction of the images kept out of training for the per-epoch log")
    split_seed: int = setting(0, Integer(low=0), "seeds the held-out split (the same for every seed)")
    occlusion_levels: tuple = setting((0.0,), Sequence(_FRACTION, unique=True),
                                      "each training image gets one of these occluded fractions, drawn per epoch "
                                      "(0.0 alone: no augmentation)")
    edge_maps: float = setting(0.0, _FRACTION,
                               "each training image is shown as its edge map (brainres.models.inputs.edge_map: "
                               "black lines on white) with this probability, drawn per epoch (0: never)")
    patch_size: int | None = setting(None, Optional(Integer(low=1)), "occluder patch side (none: a quarter of the image)")
    horizontal_flip: float = setting(0.0, _FRACTION,
                                     "each training image is mirrored left-right with this probability, drawn per "
                                     "epoch (0: never)")
    max_shift: int = setting(0, Integer(low=0),
                             "each training image is translated by up to this many pixels in y and x, drawn per "
                             "epoch, the border filled by reflection (0: never)")
    learning_rate_schedule: str = setting("constant", Choice("constant", "cosine"),
                                          "'constant', or 'cosine': annealed from learning_rate to 0 over the epochs")
    step_loss_weight: float = setting(0.5, Real(low=0),
                                      "models with halting: weight of the mean cross-entropy over all steps added "
                                      "to the halting-weighted one")
    num_threads: int = setting(1, Integer(low=1), "torch threads during training")
    device: str = setting("cpu", Device(), "where training runs")


@dataclasses.dataclass
class TrainResult:
    """A trained model, its per-epoch log and the split it was trained on."""

    model: torch.nn.Module
    log: pd.DataFrame
    config: TrainConfig
    train_index: np.ndarray
    held_out_index: np.ndarray
    run_dir: Path | None = None
    has_halting: bool = False


# ------------------------------------------------------------------ data prep
def stimuli_to_tensors(stimuli, *, classes=None):
    """Images and labels of a ``stimuli`` dataset as tensors, optionally restricted to some classes.

    Parameters
    ----------
    stimuli : xarray.Dataset
        A classification stimuli dataset (vars ``image`` and ``label``).
    classes : sequence of int, optional
        Keep only these labels, renumbered 0..len(classes)-1 in the given order.

    Returns
    -------
    images : torch.Tensor (stimulus, channel, y, x)
    labels : torch.Tensor (stimulus,) int64
    stimulus_id : numpy.ndarray of str
    """
    for name in ("image", "label"):
        if name not in stimuli:
            raise TrainingError(f"stimuli dataset has no variable {name!r}; training needs a labelled image set")
    labels = np.asarray(stimuli["label"].values).astype(np.int64)
    ids = np.asarray(stimuli["stimulus_id"].values).astype(str)
    keep = np.ones(labels.size, dtype=bool)
    if classes is not None:
        classes = [int(c) for c in classes]
        missing = [c for c in classes if c not in set(labels.tolist())]
        if missing:
            raise TrainingError(f"classes {missing} do not occur in the dataset's 'label' variable")
        keep = np.isin(labels, classes)
        remap = {c: i for i, c in enumerate(classes)}
        labels = np.array([remap.get(int(label), -1) for label in labels], dtype=np.int64)
    images = images_to_tensor(np.asarray(stimuli["image"].values)[keep])
    return images, torch.from_numpy(labels[keep]), ids[keep]


def split_indices(n_stimuli: int, *, held_out_fraction: float, seed: int):
    """Seeded train/held-out split; returns two sorted index arrays."""
    order = np.random.default_rng([seed, 0x5E11]).permutation(n_stimuli)
    n_held_out = max(1, int(round(held_out_fraction * n_stimuli)))
    if n_held_out >= n_stimuli:
        raise TrainingError(f"{n_stimuli} stimuli leave nothing to train on with held_out_fraction={held_out_fraction}")
    return np.sort(order[n_held_out:]), np.sort(order[:n_held_out])


def _check_inputs(images, labels, n_classes: int, in_channels: int | None):
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not torch.is_floating_point(images):
        raise TrainingError("images must be a float tensor (stimulus, channel, y, x); see images_to_tensor")
    if in_channels is not None and images.shape[1] != in_channels:
        raise TrainingError(f"images have {images.shape[1]} channels, the model takes {in_channels}")
    labels = torch.as_tensor(labels)
    if labels.shape != (images.shape[0],):
        raise TrainingError(f"labels has shape {tuple(labels.shape)}, expected ({images.shape[0]},)")
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TrainingError(f"labels must be integers, got {labels.dtype}")
    labels = labels.long()
    if labels.min() < 0 or labels.max() >= n_classes:
        raise TrainingError(
            f"labels must lie in 0..{n_classes - 1} (n_classes), got {int(labels.min())}..{int(labels.max())}"
        )
    return labels


def use_device(device: str) -> torch.device:
    """A torch device, checked, with what determinism on it needs."""
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainingError(f"device {device!r} was asked for, but this torch has no CUDA device "
                                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'})")
        # cuBLAS needs a fixed workspace to be deterministic (torch.use_deterministic_algorithms).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    elif device == "mps" and not torch.backends.mps.is_available():
        raise TrainingError("device 'mps' was asked for, but it is not available here")
    return torch.device(device)


# ------------------------------------------------------------------ evaluation
@torch.no_grad()
def evaluate(model: torch.nn.Module, images, labels, *, occlusion_level: float = 0.0, occlusion_seed: int = 0,
             stimulus_index=None, batch_size: int = 256, entropy_threshold: float = 0.5,
             device: str = "cpu") -> pd.DataFrame:
    """Per-stimulus behaviour of a contract model at one occlusion level, as a tidy table.

    The occluder of stimulus ``i`` depends on ``(occlusion_seed, stimulus_index[i],
    occlusion_level)`` only, so every model sees the same occluded images.

    Returns
    -------
    pandas.DataFrame
        Columns ``stimulus_index``, ``occlusion``, ``label``, ``predicted`` (at
        the halting step), ``correct``, ``halting_step`` (median halting step,
        or the entropy-threshold step for a model without halting),
        ``final_step_correct`` and, for models with halting,
        ``expected_halting_step``.
    """
    labels = torch.as_tensor(labels).long()
    index = np.arange(len(images)) if stimulus_index is None else np.asarray(stimulus_index)
    was_training = model.training
    model.eval()
    rows = []
    try:
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            batch_index = index[start : start + batch_size]
            if occlusion_level > 0:
                batch = occlude(batch, level=occlusion_level, seed=occlusion_seed, stimulus_index=batch_index)
            out = run_model(model, batch.to(device))
            logits = out.logits.float().cpu().numpy()
            halting = None if out.halting_probability is None else out.halting_probability.double().cpu().numpy()
            step = halting_steps(logits, halting, entropy_threshold=entropy_threshold)
            predicted = logits[np.arange(len(batch)), step - 1].argmax(axis=1)
            batch_labels = labels[start : start + batch_size].numpy()
            table = {
                "stimulus_index": batch_index, "occlusion": float(occlusion_level), "label": batch_labels,
                "predicted": predicted, "correct": predicted == batch_labels, "halting_step": step,
                "final_step_correct": logits[:, -1].argmax(axis=1) == batch_labels,
            }
            if halting is not None:
                table["expected_halting_step"] = halting @ np.arange(1, halting.shape[1] + 1)
            rows.append(pd.DataFrame(table))
    finally:
        model.train(was_training)
    return pd.concat(rows, ignore_index=True)


# -------------------------------------------------------------------- training
def _training_levels(config: TrainConfig, epoch: int, n: int) -> np.ndarray:
    rng = np.random.default_rng([config.seed, epoch, 0x0CC1])
    return rng.choice(np.asarray(config.occlusion_levels), size=n)


def _edge_map_draws(config: TrainConfig, epoch: int, n: int) -> np.ndarray:
    """Which training images an epoch shows as edge maps (seeded by seed and epoch)."""
    if config.edge_maps == 0:
        return np.zeros(n, dtype=bool)
    return np.random.default_rng([config.seed, epoch, 0xED6E]).random(n) < config.edge_maps


def _flip_and_shift_draws(config: TrainConfig, epoch: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Which training images an epoch mirrors, and each one's (dy, dx) shift (seeded by seed and epoch)."""
    rng = np.random.default_rng([config.seed, epoch, 0xF11B])
    flip = rng.random(n) < config.horizontal_flip
    shift = rng.integers(-config.max_shift, config.max_shift + 1, size=(n, 2))
    return flip, shift


def _learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of one optimisation step (a function of the step alone, so a resumed run matches)."""
    if config.learning_rate_schedule == "constant":
        return config.learning_rate
    return config.learning_rate * 0.5 * (1.0 + float(np.cos(np.pi * step / total_steps)))


def _summary_columns(summary: dict) -> dict:
    """A resource summary as log columns: lists become ``<name>_layer_<i>``."""
    columns = {}
    for name, value in summary.items():
        if isinstance(value, list):
            columns.update({f"{name}_layer_{i}": v for i, v in enumerate(value)})
        else:
            columns[name] = value
    return columns


def model_identity(model: torch.nn.Module) -> dict:
    """What identifies a model built without a family record: its class and parameter shapes."""
    return {"class": f"{type(model).__module__}.{type(model).__qualname__}",
            "parameters": {name: list(p.shape) for name, p in model.state_dict().items()}}


def run_config_hash(record: dict, config: TrainConfig) -> str:
    """The hash a run folder is known by: the model's record and the training configuration."""
    return canonical_hash({"model": record, "training": config.to_dict()})


def train_model(build: Callable[[], torch.nn.Module], images, labels, config: TrainConfig, *, n_classes: int,
                record: dict | None = None, location: dict | None = None, run_dir=None, progress: bool = False,
                label: str | None = None, stop_after_epoch: int | None = None,
                keep_epochs=()) -> TrainResult:
    """Train a contract model; resume if ``run_dir`` holds a checkpoint of this configuration.

    Parameters
    ----------
    build : callable
        ``build()`` returns a fresh, untrained ``nn.Module`` meeting the image-
        model contract; it is called under ``torch.manual_seed(config.seed)``.
    images : torch.Tensor, shape (stimulus, channel, y, x)
        Float images in [0, 1] (see :func:`brainres.models.inputs.prepare_images`).
    labels : torch.Tensor, shape (stimulus,)
        Integer labels 0..n_classes-1.
    config : TrainConfig
    n_classes : int
        Classes the model's logits must cover.
    record : dict, optional
        What the model is (family, settings, classes...), written to
        ``config.json`` and part of the run's hash; default: the module's
        class and parameter shapes.
    location : dict, optional
        Where its code lives (not hashed), for rebuilding it later.
    run_dir : path, optional
        Folder for checkpoint, log and config. Without it nothing is written
        and nothing can be resumed.
    progress : bool
        Show progress: a bar on a terminal, one line per epoch in a log.
    label : str, optional
        Names the run in progress output (default: ``seed <seed>``).
    keep_epochs : sequence of int
        Epochs at whose end the weights are also kept in ``run_dir``
        (``weights-epoch-NNNN.pt``), to export the model across training; they
        do not change the training.
    stop_after_epoch : int, optional
        Stop once this many epochs are complete (to simulate an interruption
        or to train in chunks); a later call resumes.

    Returns
    -------
    TrainResult
        Per-epoch log columns: ``epoch``, ``train_loss``, ``train_task_loss``,
        ``train_cost``, ``train_accuracy``, ``held_out_accuracy``,
        ``held_out_final_step_accuracy``, ``held_out_mean_steps``, the model's
        resource summary (lists as ``<name>_layer_<i>``), ``seconds``.

    Examples
    --------
    >>> from brainres.families.lattice import LatticeConfig, LatticeNet
    >>> lattice = LatticeConfig(n_classes=10, max_channels=4, max_layers=1, max_steps=3)
    >>> result = train_model(lambda: LatticeNet(lattice), images, labels,
    ...                      TrainConfig(epochs=2), n_classes=10)  # doctest: +SKIP
    """
    if not isinstance(config, TrainConfig):
        raise TrainingError(f"config must be a TrainConfig, got {type(config).__name__}")
    device = use_device(config.device)
    # On a GPU some operations (e.g. adaptive average pooling's backward) have no deterministic kernel;
    # torch then warns, naming the operation, instead of refusing to train.
    torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
    torch.set_num_threads(config.num_threads)
    with seeded(config.seed):
        model = build()
    if not isinstance(model, torch.nn.Module):
        raise TrainingError(f"build() must return a torch.nn.Module, got {type(model).__name__}")
    model.to(device)
    labels = _check_inputs(images, labels, n_classes, (record or {}).get("in_channels"))
    train_index, held_out_index = split_indices(
        len(images), held_out_fraction=config.held_out_fraction, seed=config.split_seed
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    record = dict(record) if record is not None else model_identity(model)
    config_hash = run_config_hash(record, config)
    log_rows: list[dict] = []
    start_epoch = 0

    folder = None
    if run_dir is not None:
        try:
            folder = RunFolder(run_dir, config_hash, {"model": record, "training": config.to_dict(),
                                                      "location": location or {},
                                                      "n_parameters": parameter_count(model)})
            state = folder.load_checkpoint(device)
        except RunFolderError as err:
            raise TrainingError(str(err)) from None
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            generator.set_state(state["generator"].cpu())
            torch.random.set_rng_state(state["torch_rng"].cpu())
            log_rows = list(state["log"])
            start_epoch = int(state["epoch"])

    end_epoch = config.epochs if stop_after_epoch is None else min(config.epochs, stop_after_epoch)
    reporter = EpochProgress(label or f"seed {config.seed}", config.epochs, start_epoch, progress)
    train_images, train_labels = images[train_index], labels[train_index]
    batches_per_epoch = -(-len(train_index) // config.batch_size)
    train_edges = edge_map(train_images) if config.edge_maps > 0 else None
    try:
        for epoch in range(start_epoch, end_epoch):
            started = time.perf_counter()
            model.train()
            order = torch.randperm(len(train_index), generator=generator).numpy()
            levels = _training_levels(config, epoch, len(train_index))
            as_edges = torch.from_numpy(_edge_map_draws(config, epoch, len(train_index)))
            flips, shifts = _flip_and_shift_draws(config, epoch, len(train_index))
            total_loss = total_task = total_cost = 0.0
            n_correct = 0
            for start in range(0, len(order), config.batch_size):
                chosen = order[start : start + config.batch_size]
                # Masks differ per epoch: the key folds the epoch into the stimulus index.
                batch = train_images[chosen]
                if train_edges is not None:
                    batch = torch.where(as_edges[chosen].view(-1, 1, 1, 1), train_edges[chosen], batch)
                if config.horizontal_flip > 0 or config.max_shift > 0:
                    batch = flip_and_shift(batch, flip=flips[chosen], shift=shifts[chosen])
                batch = occlude(batch, level=levels[chosen], seed=config.seed,
                                stimulus_index=epoch * len(images) + train_index[chosen], patch_size=config.patch_size)
                batch_labels = train_labels[chosen].to(device)
                out = run_model(model, batch.to(device), n_classes=n_classes)
                task = task_loss(out, batch_labels, step_loss_weight=config.step_loss_weight)
                loss = task if out.cost is None else task + out.cost
                for group in optimizer.param_groups:
                    group["lr"] = _learning_rate(config, epoch * batches_per_epoch + start // config.batch_size,
                                                 config.epochs * batches_per_epoch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    logits = out.logits.detach().float().cpu().numpy()
                    halting = None if out.halting_probability is None else \
                        out.halting_probability.detach().double().cpu().numpy()
                    step = halting_steps(logits, halting)
                    predicted = logits[np.arange(len(chosen)), step - 1].argmax(axis=1)
                n_correct += int((predicted == train_labels[chosen].numpy()).sum())
                total_loss += float(loss.detach()) * len(chosen)
                total_task += float(task.detach()) * len(chosen)
                total_cost += 0.0 if out.cost is None else float(out.cost.detach()) * len(chosen)
            held_out = evaluate(model, images[held_out_index], labels[held_out_index], stimulus_index=held_out_index,
                                device=device)
            time_column = "expected_halting_step" if "expected_halting_step" in held_out else "halting_step"
            row = {
                "epoch": epoch + 1,
                "train_loss": total_loss / len(order),
                "train_task_loss": total_task / len(order),
                "train_cost": total_cost / len(order),
                "train_accuracy": n_correct / len(order),
                "held_out_accuracy": float(held_out["correct"].mean()),
                "held_out_final_step_accuracy": float(held_out["final_step_correct"].mean()),
                "held_out_mean_steps": float(held_out[time_column].mean()),
                **_summary_columns(resource_summary(model)),
                "seconds": time.perf_counter() - started,
            }
            log_rows.append(row)
            reporter.epoch(row["epoch"], seconds=row["seconds"], held_out_accuracy=row["held_out_accuracy"],
                           mean_halting_step=row["held_out_mean_steps"])
            if folder is not None:
                if epoch + 1 in keep_epochs:
                    folder.save_snapshot(epoch + 1, model.state_dict())
                folder.save({"epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "generator": generator.get_state(), "torch_rng": torch.random.get_rng_state(),
                             "log": log_rows}, log_rows)
    finally:
        reporter.close()
    model.eval()
    with torch.no_grad():
        has_halting = run_model(model, images[held_out_index[:1]].to(device)).halting_probability is not None
    return TrainResult(model=model, log=pd.DataFrame(log_rows), config=config, train_index=train_index,
                       held_out_index=held_out_index, run_dir=folder.path if folder else None, has_halting=has_halting)


def import_weights(run_dir, model: torch.nn.Module, *, record: dict, location: dict, seed: int, device: str,
                   weights, weights_sha256: str) -> Path:
    """Make a run folder of weights trained elsewhere, so they export like a model trained here.

    The weights are read with ``weights_only=True`` and must fit ``model``
    exactly (:func:`brainres.data.weights.load_weights`).
    """
    from brainres.data.weights import load_weights

    load_weights(weights, model)
    config = TrainConfig(seed=seed, device=device)
    folder = RunFolder(run_dir, canonical_hash({"model": record, "weights": weights_sha256, "seed": seed}),
                       {"model": record, "training": config.to_dict(), "location": location,
                        "weights": {"file": str(weights), "sha256": weights_sha256},
                        "n_parameters": parameter_count(model)})
    folder.save({"epoch": 0, "model": model.state_dict(), "log": []}, [])
    return folder.path


# ------------------------------------------------------------- trained runs
@dataclasses.dataclass
class TrainedRun:
    """A trained model rebuilt from its run folder, with what it is and how it was trained."""

    model: torch.nn.Module
    record: dict
    training: TrainConfig
    run_dir: Path
    n_parameters: int

    @property
    def seed(self) -> int:
        return self.training.seed


def load_trained(run_dir, *, build: Callable[[], torch.nn.Module] | None = None, device: str = "cpu",
                 epoch: int | None = None) -> TrainedRun:
    """Rebuild the model saved in ``run_dir`` (config.json + checkpoint.pt), in eval mode.

    The model is rebuilt by its family (recorded in ``config.json``), or by
    ``build()`` for a model trained without one. ``epoch`` loads the weights
    the run kept at the end of that epoch (``keep_epochs``) instead of the last.
    """
    run_dir = Path(run_dir)
    try:
        stored = read_run_config(run_dir)
    except RunFolderError as err:
        raise TrainingError(str(err)) from None
    training = TrainConfig.from_dict(stored["training"], where=str(run_dir / CONFIG))
    record = stored["model"]
    if build is None:
        if "family" not in record:
            raise TrainingError(f"{run_dir} was trained without a family record; pass build= to rebuild its model")
        from brainres.families import get_family

        family = get_family(record["family"])

        def build():
            return family.build(record, seed=training.seed, location=stored.get("location", {}))
    with seeded(training.seed):
        model = build()
    try:
        model.load_state_dict(read_checkpoint(run_dir, epoch=epoch)["model"])
    except RunFolderError as err:
        raise TrainingError(str(err)) from None
    model.to(use_device(device))
    return TrainedRun(model=model.eval(), record=record, training=training, run_dir=run_dir,
                      n_parameters=parameter_count(model))
