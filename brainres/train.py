"""Training lattice models: seeded, deterministic on CPU, resumable, logged per epoch.

A run lives in its own folder (named by the configuration hash when several
runs share a root) holding ``config.json``, ``checkpoint.pt`` (written
atomically after every epoch: weights, optimizer, data-order generator, RNG
state, the log so far) and ``log.csv``. Calling :func:`train_lattice` again on
the same folder resumes from the last completed epoch and ends with the same
weights, bit for bit, as a run that was never interrupted.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from brainres.data.io import atomic_path, atomic_write_text
from brainres.errors import BrainresError
from brainres.models.lattice import LatticeConfig, LatticeConfigError, LatticeNet, canonical_hash
from brainres.models.occlusion import occlude
from brainres.models.readouts import median_halting_step

CHECKPOINT = "checkpoint.pt"
LOG = "log.csv"
CONFIG = "config.json"


class TrainingError(BrainresError):
    """Training inputs are inconsistent or a run folder belongs to another configuration."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (and so its weights).

    Parameters
    ----------
    model : LatticeConfig
        Model bounds and pressures.
    seed : int
        Seeds initialisation, data order and training occlusion masks.
    epochs : int
        Passes over the training split.
    batch_size : int
    learning_rate : float
        Adam learning rate.
    held_out_fraction : float
        Fraction of stimuli kept out of training for the per-epoch log.
    split_seed : int
        Seeds the train/held-out split (kept apart from ``seed`` so every seed
        is evaluated on the same held-out stimuli).
    occlusion_levels : tuple of float
        Each training image gets one of these levels, drawn uniformly per epoch.
    patch_size : int or None
        Occluder patch side (None: a quarter of the image side).
    num_threads : int
        ``torch.set_num_threads`` during training.
    """

    model: LatticeConfig = dataclasses.field(default_factory=LatticeConfig)
    seed: int = 0
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 3e-3
    held_out_fraction: float = 0.2
    split_seed: int = 0
    occlusion_levels: tuple = (0.0, 0.25, 0.5)
    patch_size: int | None = None
    num_threads: int = 1

    def __post_init__(self):
        if not isinstance(self.model, LatticeConfig):
            raise LatticeConfigError(f"model must be a LatticeConfig, got {type(self.model).__name__}")
        for name in ("epochs", "batch_size", "num_threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise LatticeConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("seed", "split_seed"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise LatticeConfigError(f"{name} must be a non-negative integer, got {getattr(self, name)!r}")
        if not self.learning_rate > 0:
            raise LatticeConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 < self.held_out_fraction < 1:
            raise LatticeConfigError(f"held_out_fraction must lie in (0, 1), got {self.held_out_fraction}")
        levels = tuple(float(level) for level in self.occlusion_levels)
        if not levels or any(not 0 <= level <= 1 for level in levels):
            raise LatticeConfigError(f"occlusion_levels must be fractions in [0, 1], got {self.occlusion_levels}")
        object.__setattr__(self, "occlusion_levels", levels)

    def to_dict(self) -> dict:
        """Plain-dict form (JSON-serialisable, nested model config)."""
        values = dataclasses.asdict(self)
        values["occlusion_levels"] = list(self.occlusion_levels)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Inverse of :meth:`to_dict`."""
        values = dict(values)
        values["model"] = LatticeConfig.from_dict(values["model"])
        values["occlusion_levels"] = tuple(values.get("occlusion_levels", (0.0,)))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise LatticeConfigError(f"unknown training config keys: {', '.join(unknown)}")
        return cls(**values)

    def config_hash(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`to_dict`."""
        return canonical_hash(self.to_dict())


@dataclasses.dataclass
class TrainResult:
    """A trained model, its per-epoch log and the split it was trained on."""

    model: LatticeNet
    log: pd.DataFrame
    config: TrainConfig
    train_index: np.ndarray
    held_out_index: np.ndarray
    run_dir: Path | None = None


# ------------------------------------------------------------------ data prep
def images_to_tensor(images) -> torch.Tensor:
    """uint8 images (stimulus, y, x, channel) -> float tensor (stimulus, channel, y, x) in [0, 1]."""
    array = np.asarray(images)
    if array.ndim != 4 or array.dtype != np.uint8:
        raise TrainingError(
            f"images must be uint8 with dims (stimulus, y, x, channel), got {array.dtype} {array.shape}"
        )
    return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2))).float() / 255.0


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


def _check_inputs(images, labels, config: TrainConfig):
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not torch.is_floating_point(images):
        raise TrainingError("images must be a float tensor (stimulus, channel, y, x); see images_to_tensor")
    if images.shape[1] != config.model.in_channels:
        raise TrainingError(f"images have {images.shape[1]} channels, config.model.in_channels is {config.model.in_channels}")
    labels = torch.as_tensor(labels)
    if labels.shape != (images.shape[0],):
        raise TrainingError(f"labels has shape {tuple(labels.shape)}, expected ({images.shape[0]},)")
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TrainingError(f"labels must be integers, got {labels.dtype}")
    labels = labels.long()
    if labels.min() < 0 or labels.max() >= config.model.n_classes:
        raise TrainingError(
            f"labels must lie in 0..{config.model.n_classes - 1} (n_classes), got {int(labels.min())}..{int(labels.max())}"
        )
    return labels


# ------------------------------------------------------------------ evaluation
@torch.no_grad()
def evaluate(model: LatticeNet, images, labels, *, occlusion_level: float = 0.0, occlusion_seed: int = 0,
             stimulus_index=None, batch_size: int = 256) -> pd.DataFrame:
    """Per-stimulus behaviour of a lattice at one occlusion level, as a tidy table.

    The occluder of stimulus ``i`` depends on ``(occlusion_seed, stimulus_index[i],
    occlusion_level)`` only, so every model sees the same occluded images.

    Returns
    -------
    pandas.DataFrame
        Columns ``stimulus_index``, ``occlusion``, ``label``, ``predicted``
        (at the median halting step), ``correct``, ``expected_halting_step``,
        ``median_halting_step``, ``final_step_correct``.
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
            out = model(batch)
            probability = out["halting_probability"].numpy()
            median = median_halting_step(probability).astype(int)
            logits = out["logits"].numpy()
            predicted = logits[np.arange(len(batch)), median - 1].argmax(axis=1)
            batch_labels = labels[start : start + batch_size].numpy()
            rows.append(pd.DataFrame({
                "stimulus_index": batch_index,
                "occlusion": float(occlusion_level),
                "label": batch_labels,
                "predicted": predicted,
                "correct": predicted == batch_labels,
                "expected_halting_step": out["expected_steps"].numpy().astype(float),
                "median_halting_step": median,
                "final_step_correct": logits[:, -1].argmax(axis=1) == batch_labels,
            }))
    finally:
        model.train(was_training)
    return pd.concat(rows, ignore_index=True)


# -------------------------------------------------------------------- training
def _training_levels(config: TrainConfig, epoch: int, n: int) -> np.ndarray:
    rng = np.random.default_rng([config.seed, epoch, 0x0CC1])
    return rng.choice(np.asarray(config.occlusion_levels), size=n)


def _save_checkpoint(path: Path, *, model, optimizer, generator, epoch, log_rows, config_hash):
    state = {
        "config_hash": config_hash,
        "epoch": epoch,  # number of completed epochs
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.random.get_rng_state(),
        "log": log_rows,
    }
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def _write_log(path: Path, log: pd.DataFrame):
    with atomic_path(path, suffix=".csv") as tmp:
        log.to_csv(tmp, index=False)


def _show_progress(progress: bool) -> bool:
    return bool(progress) and sys.stderr.isatty()


def train_lattice(images, labels, config: TrainConfig, *, run_dir=None, progress: bool = False,
                  stop_after_epoch: int | None = None) -> TrainResult:
    """Train a :class:`LatticeNet`; resume if ``run_dir`` holds a checkpoint of this config.

    Parameters
    ----------
    images : torch.Tensor, shape (stimulus, channel, y, x)
        Float images in [0, 1] (see :func:`images_to_tensor`).
    labels : torch.Tensor, shape (stimulus,)
        Integer labels 0..n_classes-1.
    config : TrainConfig
    run_dir : path, optional
        Folder for checkpoint, log and config. Without it nothing is written
        and nothing can be resumed.
    progress : bool
        Show tqdm bars on stderr (only when stderr is a terminal).
    stop_after_epoch : int, optional
        Stop once this many epochs are complete (to simulate an interruption
        or to train in chunks); a later call resumes.

    Returns
    -------
    TrainResult
        Per-epoch log columns: ``epoch``, ``train_loss``, ``train_task_loss``,
        ``train_accuracy``, ``held_out_accuracy``, ``held_out_mean_steps``,
        ``active_breadth``, ``effective_depth``, ``open_layers``,
        ``active_channels_layer_<i>``, ``seconds``.
    """
    if not isinstance(config, TrainConfig):
        raise TrainingError(f"config must be a TrainConfig, got {type(config).__name__}")
    labels = _check_inputs(images, labels, config)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(config.num_threads)
    train_index, held_out_index = split_indices(
        len(images), held_out_fraction=config.held_out_fraction, seed=config.split_seed
    )
    model = LatticeNet(config.model, seed=config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    config_hash = config.config_hash()
    log_rows: list[dict] = []
    start_epoch = 0

    checkpoint_path = None
    if run_dir is not None:
        run_dir = Path(run_dir)
        checkpoint_path = run_dir / CHECKPOINT
        config_path = run_dir / CONFIG
        if config_path.exists():
            stored = json.loads(config_path.read_text())
            if stored.get("config_hash") != config_hash:
                raise TrainingError(
                    f"{run_dir} holds a run of another configuration (hash {stored.get('config_hash', '?')[:12]}, "
                    f"this one {config_hash[:12]}); use another folder"
                )
        else:
            atomic_write_text(config_path, json.dumps({"config_hash": config_hash, "config": config.to_dict()}, indent=2))
        if checkpoint_path.exists():
            state = torch.load(checkpoint_path, weights_only=True)
            if state["config_hash"] != config_hash:
                raise TrainingError(f"{checkpoint_path} was written by another configuration")
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            generator.set_state(state["generator"])
            torch.random.set_rng_state(state["torch_rng"])
            log_rows = list(state["log"])
            start_epoch = int(state["epoch"])

    end_epoch = config.epochs if stop_after_epoch is None else min(config.epochs, stop_after_epoch)
    show = _show_progress(progress)
    epochs = tqdm(range(start_epoch, end_epoch), desc=f"seed {config.seed}", disable=not show,
                  file=sys.stderr, initial=start_epoch, total=config.epochs)
    train_images, train_labels = images[train_index], labels[train_index]
    for epoch in epochs:
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_index), generator=generator).numpy()
        levels = _training_levels(config, epoch, len(train_index))
        total_loss = total_task = 0.0
        n_correct = 0
        for start in range(0, len(order), config.batch_size):
            chosen = order[start : start + config.batch_size]
            # Masks differ per epoch: the key folds the epoch into the stimulus index.
            batch = occlude(train_images[chosen], level=levels[chosen], seed=config.seed,
                            stimulus_index=epoch * len(images) + train_index[chosen], patch_size=config.patch_size)
            out = model(batch)
            losses = model.loss(out, train_labels[chosen])
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            optimizer.step()
            with torch.no_grad():
                median = median_halting_step(out["halting_probability"].numpy()).astype(int)
                predicted = out["logits"].numpy()[np.arange(len(chosen)), median - 1].argmax(axis=1)
            n_correct += int((predicted == train_labels[chosen].numpy()).sum())
            total_loss += float(losses["total"].detach()) * len(chosen)
            total_task += float(losses["task"].detach()) * len(chosen)
        held_out = evaluate(model, images[held_out_index], labels[held_out_index], stimulus_index=held_out_index)
        summary = model.resource_summary()
        row = {
            "epoch": epoch + 1,
            "train_loss": total_loss / len(order),
            "train_task_loss": total_task / len(order),
            "train_accuracy": n_correct / len(order),
            "held_out_accuracy": float(held_out["correct"].mean()),
            "held_out_mean_steps": float(held_out["expected_halting_step"].mean()),
            "active_breadth": summary["active_breadth"],
            "effective_depth": summary["effective_depth"],
            "open_layers": summary["open_layers"],
            **{f"active_channels_layer_{i}": n for i, n in enumerate(summary["active_channels"])},
            "seconds": time.perf_counter() - started,
        }
        log_rows.append(row)
        epochs.set_postfix(acc=f"{row['held_out_accuracy']:.3f}", steps=f"{row['held_out_mean_steps']:.2f}")
        if run_dir is not None:
            _save_checkpoint(checkpoint_path, model=model, optimizer=optimizer, generator=generator,
                             epoch=epoch + 1, log_rows=log_rows, config_hash=config_hash)
            _write_log(run_dir / LOG, pd.DataFrame(log_rows))
    model.eval()
    return TrainResult(model=model, log=pd.DataFrame(log_rows), config=config, train_index=train_index,
                       held_out_index=held_out_index, run_dir=run_dir)


def run_name(config: TrainConfig) -> str:
    """Folder name of a run under a shared root: the first 16 hex digits of its config hash."""
    return config.config_hash()[:16]


def train_many(images, labels, configs, *, root_dir, progress: bool = False) -> pd.DataFrame:
    """Train several configurations one after another, each in its own resumable folder.

    Finished runs are not retrained (their checkpoint already holds the last
    epoch), so rerunning an interrupted command continues where it stopped.

    Returns
    -------
    pandas.DataFrame
        One row per run: ``run``, ``seed``, the pressures, and the last epoch's log.
    """
    rows = []
    for config in configs:
        result = train_lattice(images, labels, config, run_dir=Path(root_dir) / run_name(config), progress=progress)
        last = result.log.iloc[-1].to_dict() if len(result.log) else {}
        rows.append({"run": run_name(config), "seed": config.seed, **config.model.pressures, **last})
    return pd.DataFrame(rows)


def load_trained(run_dir) -> LatticeNet:
    """Rebuild the model saved in ``run_dir`` (config.json + checkpoint.pt), in eval mode."""
    run_dir = Path(run_dir)
    config_path, checkpoint_path = run_dir / CONFIG, run_dir / CHECKPOINT
    for path in (config_path, checkpoint_path):
        if not path.exists():
            raise TrainingError(f"{path} is missing; is {run_dir} a training run folder?")
    config = TrainConfig.from_dict(json.loads(config_path.read_text())["config"])
    model = LatticeNet(config.model, seed=config.seed)
    model.load_state_dict(torch.load(checkpoint_path, weights_only=True)["model"])
    return model.eval()
