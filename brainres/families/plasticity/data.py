"""The data a plasticity run sees: a deterministic train/held-out split, the task sequence, the batch stream.

Without a task sequence there is one task, the stimulus set itself. A
``permuted`` sequence shows task ``t`` with its pixels permuted by a fixed
permutation (task 0 unpermuted; the permutations are drawn from
``sequence_seed`` and are the same for every training seed). A
``class-incremental`` sequence splits the classes into ``n_tasks`` groups in
class order; task ``t`` trains on the stimuli of its group only, with one
readout shared by all classes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import xarray as xr

import brainres
from brainres.data.schema import validate
from brainres.errors import BrainresError


class PlasticityFamilyError(BrainresError, ValueError):
    """Stimuli, seeds, runs or sweep options that a plasticity run cannot use."""


@dataclasses.dataclass(frozen=True)
class SplitData:
    """Training and held-out images (``(n, channel, y, x)`` in [0, 1]), labels and held-out ids."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    held_out_images: torch.Tensor
    held_out_labels: torch.Tensor
    held_out_ids: np.ndarray
    n_classes: int


def split_stimuli(stimuli: xr.Dataset, *, held_out_fraction: float, split_seed: int) -> SplitData:
    """Deterministic train/held-out split of a validated stimuli dataset with ``label``.

    The held-out stimuli are a seeded random subset (``numpy`` generator seeded
    with ``split_seed``), kept in the stimulus set's order.
    """
    validate(stimuli, "stimuli")
    if "label" not in stimuli:
        raise PlasticityFamilyError(f"stimuli {stimuli.attrs.get('dataset_id', '')!r} have no variable 'label'")
    images = np.asarray(stimuli["image"].values)
    # np.array copies: the stimuli's buffer may be read-only, which torch warns about.
    tensor = torch.from_numpy(np.array(images.transpose(0, 3, 1, 2))).float() / 255.0
    labels = torch.from_numpy(np.asarray(stimuli["label"].values).astype(np.int64))
    n = labels.numel()
    n_held_out = int(round(held_out_fraction * n))
    if not 0 < n_held_out < n:
        raise PlasticityFamilyError(f"held_out_fraction {held_out_fraction} leaves no train or no held-out stimuli")
    held_out = np.sort(np.random.default_rng(split_seed).permutation(n)[:n_held_out])
    train = np.setdiff1d(np.arange(n), held_out)
    return SplitData(
        tensor[train], labels[train], tensor[held_out], labels[held_out],
        np.asarray(stimuli["stimulus_id"].values).astype(str)[held_out], int(labels.max()) + 1,
    )


def data_for(config, stimuli: xr.Dataset | None = None) -> SplitData:
    """The split of ``config.task`` (or of the given stimuli)."""
    stimuli = brainres.load_stimuli(config.task) if stimuli is None else stimuli
    return split_stimuli(stimuli, held_out_fraction=config.held_out_fraction, split_seed=config.split_seed)


class TaskSequence:
    """The tasks of a run: which training stimuli each task draws from and how its images look.

    Parameters
    ----------
    config : PlasticityConfig
    data : SplitData
    """

    def __init__(self, config, data: SplitData):
        self.kind = config.task_sequence
        self.n_tasks = config.n_tasks
        self.data = data
        self.permutations: list[torch.Tensor | None] = [None]
        self.class_groups: list[np.ndarray] = [np.arange(data.n_classes)]
        if self.kind == "permuted":
            n_pixels = int(np.prod(data.train_images.shape[2:]))
            rng = np.random.default_rng(config.sequence_seed)
            self.permutations += [torch.from_numpy(rng.permutation(n_pixels)) for _ in range(self.n_tasks - 1)]
        elif self.kind == "class-incremental":
            if self.n_tasks > data.n_classes:
                raise PlasticityFamilyError(f"{self.n_tasks} class-incremental tasks need at least as many classes; "
                                          f"{config.task} has {data.n_classes}")
            self.class_groups = np.array_split(np.arange(data.n_classes), self.n_tasks)

    def _task(self, task: int) -> tuple[torch.Tensor | None, np.ndarray]:
        if self.kind == "permuted":
            return self.permutations[task], self.class_groups[0]
        if self.kind == "class-incremental":
            return None, self.class_groups[task]
        return None, self.class_groups[0]

    def pool_key(self, task: int) -> int:
        """Tasks with the same key draw from the same training stimuli (the batch stream carries on)."""
        return task if self.kind == "class-incremental" else 0

    def pool(self, task: int) -> torch.Tensor | None:
        """Indices of the training stimuli of ``task`` (None: all of them)."""
        if self.kind != "class-incremental":
            return None
        classes = torch.from_numpy(self._task(task)[1])
        return torch.nonzero(torch.isin(self.data.train_labels, classes)).flatten()

    def present(self, images: torch.Tensor, task: int) -> torch.Tensor:
        """Images as task ``task`` shows them (pixels permuted, or unchanged)."""
        permutation = self._task(task)[0]
        if permutation is None:
            return images
        return images.flatten(2)[:, :, permutation].reshape(images.shape)

    def held_out(self, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Held-out images (as the task shows them) and labels of ``task``."""
        images, labels = self.data.held_out_images, self.data.held_out_labels
        if self.kind == "class-incremental":
            keep = torch.isin(labels, torch.from_numpy(self._task(task)[1]))
            images, labels = images[keep], labels[keep]
        return self.present(images, task), labels

    def describe_task(self, task: int) -> str:
        """One word for a task, for tables: its classes or its permutation."""
        if self.kind == "class-incremental":
            return "classes " + ",".join(str(c) for c in self._task(task)[1])
        if self.kind == "permuted":
            return "unpermuted" if task == 0 else f"permutation {task}"
        return "all"


class BatchStream:
    """Minibatches: successive chunks of a seeded permutation of the current task's stimuli.

    A fresh permutation is drawn (from the run's generator) when the current
    one is used up or the task draws from other stimuli. Without a task
    sequence this is exactly one permutation per epoch, the last batch of an
    epoch the remainder.
    """

    def __init__(self, batch_size: int, generator: torch.Generator):
        self.batch_size = batch_size
        self.generator = generator
        self.order: torch.Tensor | None = None
        self.position = 0
        self.key = -1

    def next(self, pool: torch.Tensor | None, n_all: int, key: int) -> torch.Tensor:
        """Indices of the next batch, drawn from ``pool`` (None: all ``n_all`` training stimuli)."""
        if self.order is None or self.position >= self.order.numel() or key != self.key:
            size = n_all if pool is None else pool.numel()
            permutation = torch.randperm(size, generator=self.generator)
            self.order = permutation if pool is None else pool[permutation]
            self.position, self.key = 0, key
        batch = self.order[self.position:self.position + self.batch_size]
        self.position += batch.numel()
        return batch

    def state(self) -> dict:
        return {"order": self.order, "position": self.position, "key": self.key}

    def restore(self, state: dict) -> None:
        self.order, self.position, self.key = state["order"], int(state["position"]), int(state["key"])
