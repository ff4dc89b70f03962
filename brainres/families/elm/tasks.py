"""Sequence tasks of the ELM family: the built-in adding tasks, or any task a user gives as tensors."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import torch

from brainres.errors import BrainresError

LOSSES = ("cross_entropy", "mse")


class ELMFamilyError(BrainresError, ValueError):
    """A task or request of the ELM family that cannot be run."""



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
    from brainres.data.registry import load_stimuli

    stimuli = load_stimuli("digits")
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


def make_task(config) -> SequenceTask:
    """The built-in task named by ``config.task``, built from the config's data fields."""
    builders = {"digits-adding": digits_adding_task, "onehot-adding": onehot_adding_task}
    if config.task not in builders:
        raise ELMFamilyError(f"task {config.task!r} is not built in ({', '.join(builders)}); "
                             "pass your SequenceTask as task=")
    return builders[config.task](n_train=config.n_train, n_test=config.n_test, delay=config.delay,
                                 data_seed=config.data_seed)


def resolve_task(config, task: SequenceTask | None) -> SequenceTask:
    """``task`` checked against ``config.task``, or the built-in task the config names."""
    if task is None:
        return make_task(config)
    if not isinstance(task, SequenceTask):
        raise ELMFamilyError(f"task must be a SequenceTask, got {type(task).__name__}")
    if task.name != config.task:
        raise ELMFamilyError(f"task.name={task.name!r} differs from the config's task={config.task!r}; "
                             "set task=task.name in the config so its hash names the data")
    return task
