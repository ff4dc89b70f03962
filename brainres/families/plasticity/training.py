"""Training a plasticity run: seeded, deterministic on CPU, resumable from its run folder after every epoch.

One ``torch.manual_seed(seed)`` sets the initial weights; one
``torch.Generator`` seeded with ``seed`` draws the data order and every
structural random draw. The checkpoint after each epoch holds everything the
loop needs to go on exactly as if it had not stopped: the widths and weights,
Adam's state, the generator and torch RNG states, the unit book, utilities,
pending replacements, insertion events, the batch stream and every row logged
so far (all plain values and tensors, so ``torch.load(weights_only=True)``
reads it).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from brainres.families.base import TaskRun
from brainres.families.plasticity.config import PlasticityConfig
from brainres.families.plasticity.data import (
    BatchStream,
    PlasticityFamilyError,
    SplitData,
    TaskSequence,
    data_for,
)
from brainres.families.plasticity.network import (
    PlasticConvNet,
    PlasticMLP,
    contribution,
    incoming_gradient_norms,
)
from brainres.families.plasticity.units import (
    UnitBook,
    change_structure,
    gradient_ratios,
    make_optimizer,
    replace_units,
    track_units,
)
from brainres.hashing import canonical_hash
from brainres.runs import EpochProgress, RunFolder, read_checkpoint, read_run_config

RETRAIN_FOLDER = "retrain"
_ROWS = ("ratio", "eval", "step", "change", "epoch", "task_eval", "task_end")


def build_model(config: PlasticityConfig, data_shape: tuple[int, int, int], n_classes: int, *, widths=None):
    """The trunk of ``config`` for images of shape ``(channel, y, x)`` (weights from torch's global RNG)."""
    widths = config.widths if widths is None else widths
    channels, height, width = data_shape
    if config.trunk == "mlp":
        return PlasticMLP(n_inputs=channels * height * width, widths=widths, n_classes=n_classes,
                          activation=config.activation)
    return PlasticConvNet(in_channels=channels, widths=widths, n_classes=n_classes,
                          activation=config.activation, kernel_size=config.kernel_size)


@torch.no_grad()
def predict(model, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted classes of ``images``, in chunks."""
    return torch.cat([model(images[i : i + batch_size]).argmax(dim=1) for i in range(0, len(images), batch_size)])


def _accuracy(model, images, labels) -> float:
    model.eval()
    accuracy = float((predict(model, images) == labels).float().mean())
    model.train()
    return accuracy


class _Loop:
    """The state of one run between steps, and the step itself."""

    def __init__(self, config: PlasticityConfig, seed: int, data: SplitData, tasks: TaskSequence):
        self.config, self.data, self.tasks = config, data, tasks
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed)  # data order and every structural draw
        self.model = build_model(config, tuple(data.train_images.shape[1:]), data.n_classes)
        self.optimizer = make_optimizer(config, self.model)
        self.n_train = data.train_labels.numel()
        self.steps_per_epoch = -(-self.n_train // config.batch_size)
        self.total_steps = config.epochs * self.steps_per_epoch
        self.change_steps = set(config.change_steps())
        self.book = UnitBook(self.model.widths, self.generator)
        self.utility = [torch.zeros(width) for width in self.model.widths]
        self.pending = [0.0 for _ in self.model.widths]
        self.insertions: list[dict] = []
        self.stream = BatchStream(config.batch_size, self.generator)
        self.rows = {name: [] for name in _ROWS}
        self.parameter_counts: list[int] = []
        self.step = self.epoch = 0
        if config.task_sequence != "none" and (config.n_tasks - 1) * config.task_switch_every >= self.total_steps:
            raise PlasticityFamilyError(
                f"{config.n_tasks} tasks switching every {config.task_switch_every} steps need more than "
                f"{(config.n_tasks - 1) * config.task_switch_every} steps; {config.epochs} epochs of "
                f"{self.steps_per_epoch} steps give {self.total_steps}")

    # ------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        events = [{"step": e["step"], "layers": {layer: {"newborn": sorted(new), "incumbents": sorted(old)}
                                                 for layer, (new, old) in e["layers"].items()}}
                  for e in self.insertions]
        return {"epoch": self.epoch, "step": self.step, "widths": list(self.model.widths),
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(), "torch_rng": torch.random.get_rng_state(),
                "book": self.book.state(), "utility": list(self.utility), "pending": list(self.pending),
                "insertions": events, "stream": self.stream.state(), "rows": self.rows,
                "parameter_counts": self.parameter_counts}

    def restore(self, state: dict) -> None:
        self.model = build_model(self.config, tuple(self.data.train_images.shape[1:]), self.data.n_classes,
                                 widths=tuple(state["widths"]))
        self.model.load_state_dict(state["model"])
        self.optimizer = make_optimizer(self.config, self.model)
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.random.set_rng_state(state["torch_rng"])
        self.book.restore(state["book"])
        self.utility = [u.clone() for u in state["utility"]]
        self.pending = [float(p) for p in state["pending"]]
        self.insertions = [{"step": int(e["step"]),
                            "layers": {int(layer): (set(sets["newborn"]), set(sets["incumbents"]))
                                       for layer, sets in e["layers"].items()}}
                           for e in state["insertions"]]
        self.stream.restore(state["stream"])
        self.rows = {name: list(state["rows"][name]) for name in _ROWS}
        self.parameter_counts = list(state["parameter_counts"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])

    # ------------------------------------------------------------ training
    def run_epoch(self) -> None:
        config, model = self.config, self.model
        self.epoch += 1
        for _ in range(self.steps_per_epoch):
            self.step += 1
            step = self.step
            task = config.task_at(step)
            batch = self.stream.next(self.tasks.pool(task), self.n_train, self.tasks.pool_key(task))
            images = self.tasks.present(self.data.train_images[batch], task)
            labels = self.data.train_labels[batch]
            if step in self.change_steps:
                self.optimizer, event, rows = change_structure(config, self.model, self.optimizer, self.book,
                                                               self.utility, step, (images, labels))
                self.rows["change"].extend(rows)
                if event is not None:
                    self.insertions.append(event)
            model = self.model
            self.optimizer.zero_grad(set_to_none=True)
            logits, hidden = model(images, return_hidden=True)
            loss = F.cross_entropy(logits, labels)
            loss.backward()
            self.parameter_counts.append(model.n_parameters())
            self.rows["step"].append({"step": step, "loss": float(loss.detach())})
            norms = [incoming_gradient_norms(model, layer) for layer in range(len(model.widths))]
            self.rows["ratio"].extend(gradient_ratios(self.insertions, self.book, norms, step, config.ratio_window))
            for layer, activations in enumerate(hidden):
                self.utility[layer] = (config.utility_decay * self.utility[layer]
                                       + (1 - config.utility_decay) * contribution(activations, model, layer))
            if step % config.track_every == 0 or step == self.total_steps:
                track_units(self.book, hidden, norms, self.utility, step)
            self.optimizer.step()
            if config.replacement_rate > 0:
                replace_units(config, model, self.optimizer, self.book, self.utility, self.pending, step)
            if step % config.eval_every == 0 or step == self.total_steps:
                self.rows["eval"].append({"step": step, "held_out_accuracy": self.evaluate(step),
                                          "n_parameters": model.n_parameters()})
            if config.task_sequence != "none" and (step % config.task_switch_every == 0 or step == self.total_steps) \
                    and (task < config.n_tasks - 1 or step == self.total_steps):
                self.rows["task_end"].append({"task": task, "step": step,
                                              "accuracy": _accuracy(model, *self.tasks.held_out(task))})
        epoch_losses = [row["loss"] for row in self.rows["step"][-self.steps_per_epoch:]]
        self.rows["epoch"].append({"epoch": self.epoch, "step": self.step, "train_loss": float(np.mean(epoch_losses)),
                                   "held_out_accuracy": self.evaluate(None), "n_parameters": self.model.n_parameters(),
                                   "widths": " ".join(map(str, self.model.widths))})

    def evaluate(self, step: int | None) -> float:
        """Held-out accuracy; with a task sequence the mean over the tasks seen so far (each task's own rows kept)."""
        if self.config.task_sequence == "none":
            return _accuracy(self.model, self.data.held_out_images, self.data.held_out_labels)
        current = self.config.task_at(self.step)
        accuracies = [_accuracy(self.model, *self.tasks.held_out(task)) for task in range(self.config.n_tasks)]
        if step is not None:
            self.rows["task_eval"].extend({"step": step, "task": task, "accuracy": accuracy, "current": current}
                                          for task, accuracy in enumerate(accuracies))
        return float(np.mean(accuracies[:current + 1]))


def run_hash(config: PlasticityConfig, seed: int) -> str:
    return canonical_hash({"family": "plasticity", "config": config.to_dict(), "seed": seed})


def _result(loop: _Loop) -> dict:
    """What the run did, as the extras of its :class:`TaskRun` (from the loop's state after the last epoch)."""
    config, model, data, rows = loop.config, loop.model, loop.data, loop.rows
    model.eval()
    last_task = config.task_at(loop.step)
    images, _ = loop.tasks.held_out(last_task) if config.task_sequence == "permuted" else (data.held_out_images, None)
    predicted = predict(model, images)
    evaluations = pd.DataFrame(rows["eval"])
    correct = predicted == data.held_out_labels
    # With a task sequence the final accuracy is the last evaluation's: the mean over the tasks seen.
    final = (float(correct.float().mean()) if config.task_sequence == "none"
             else float(evaluations["held_out_accuracy"].iloc[-1]))
    removal = {(layer, u): s for layer, d in enumerate(loop.book.removal) for u, s in d.items()}
    births = pd.DataFrame(
        [{"layer": layer, "unit": u, "birth_step": b, "removal_step": removal.get((layer, u), np.nan)}
         for layer, d in enumerate(loop.book.birth) for u, b in d.items()]
    )
    return {
        "held_out_ids": data.held_out_ids,
        "held_out_predicted": predicted.numpy(),
        "held_out_correct": correct.numpy(),
        "final_accuracy": final,
        "trajectory_accuracy": float(evaluations["held_out_accuracy"].mean()),
        "mean_parameters": float(np.mean(loop.parameter_counts)),
        "final_widths": model.widths,
        "step_log": pd.DataFrame(rows["step"]),
        "evaluations": evaluations,
        "gradient_ratio": pd.DataFrame(rows["ratio"], columns=["insertion", "layer", "steps_since_insertion", "step",
                                                               "gradient_ratio"]),
        "units": pd.DataFrame(loop.book.rows),
        "unit_lifetimes": births,
        "changes": pd.DataFrame(rows["change"], columns=["step", "layer", "change", "width"]),
        "task_evaluations": pd.DataFrame(rows["task_eval"], columns=["step", "task", "accuracy", "current"]),
        "task_end": pd.DataFrame(rows["task_end"], columns=["task", "step", "accuracy"]),
    }


def _fit(config, seed, data, *, run_dir, progress, label, stop_after_epoch) -> tuple[_Loop, bool]:
    """Run (or continue) one seeded run; returns the loop and whether every epoch is done."""
    loop = _Loop(config, seed, data, TaskSequence(config, data))
    folder = None
    if run_dir is not None:
        folder = RunFolder(run_dir, run_hash(config, seed), {"family": "plasticity", "config": config.to_dict(),
                                                             "seed": seed})
        state = folder.load_checkpoint()
        if state is not None:
            loop.restore(state)
    reporter = EpochProgress(label or f"plasticity seed {seed}", config.epochs, loop.epoch, progress)
    last = config.epochs if stop_after_epoch is None else min(config.epochs, stop_after_epoch)
    try:
        while loop.epoch < last:
            started = time.perf_counter()
            loop.run_epoch()
            row = loop.rows["epoch"][-1]
            reporter.epoch(loop.epoch, seconds=time.perf_counter() - started, train_loss=row["train_loss"],
                           held_out_accuracy=row["held_out_accuracy"])
            if folder is not None:
                folder.save(loop.state(), loop.rows["epoch"])
    finally:
        reporter.close()
    return loop, loop.epoch == config.epochs


def _retrain_config(config: PlasticityConfig) -> PlasticityConfig:
    """The final architecture trained from scratch: same seed and steps, no schedule, no replacement."""
    return dataclasses.replace(config, widths=config.final_widths(), schedule="none", replacement_rate=0.0,
                               retrain=False)


def _retrained(result: dict) -> dict:
    return {"retrained_accuracy": result["final_accuracy"], "retrained_correct": result["held_out_correct"]}


def _check_seed(seed) -> int:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise PlasticityFamilyError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def train(config: PlasticityConfig, seed: int, *, run_dir=None, parent=None, progress: bool = False,
          label: str | None = None, stop_after_epoch: int | None = None, stimuli=None) -> TaskRun:
    """Train one seed of ``config``; deterministic on CPU, resumable from ``run_dir``.

    Parameters
    ----------
    config : PlasticityConfig
    seed : int
        Seeds the initial weights (``torch.manual_seed``), the data order and
        every structural draw (one ``torch.Generator``).
    run_dir : path, optional
        Checkpoint after every epoch; a rerun continues from the last one (the
        retraining of ``retrain`` has its own folder inside).
    parent : TaskRun, optional
        Not used: every plasticity run starts from scratch.
    progress : bool
        A bar on a terminal, one line per epoch in a log.
    label : str, optional
        Name in progress output.
    stop_after_epoch : int, optional
        Stop once this many epochs are done (an interruption); a later call with ``run_dir`` continues.
    stimuli : xarray.Dataset, optional
        A validated stimuli dataset with ``label``; default ``brainres.load_stimuli(config.task)``.

    Returns
    -------
    TaskRun
        ``model`` (eval mode), ``log`` (per epoch: mean training loss, held-out
        accuracy at the epoch's end, parameters, widths) and ``extras``:
        ``final_accuracy``, ``trajectory_accuracy`` (mean held-out accuracy over
        the evaluations; with a task sequence, accuracy is the mean over the
        tasks seen), ``mean_parameters``, ``final_widths``,
        ``held_out_ids``/``held_out_predicted``/``held_out_correct``, tables
        ``step_log``, ``evaluations``, ``gradient_ratio``, ``units``,
        ``unit_lifetimes``, ``changes``, ``task_evaluations`` and ``task_end``
        (task sequences); with ``config.retrain`` also ``retrained_accuracy``
        and ``retrained_correct``. An interrupted run has only ``log``.
    """
    if not isinstance(config, PlasticityConfig):
        raise PlasticityFamilyError(f"config must be a PlasticityConfig, got {type(config).__name__}")
    seed = _check_seed(seed)
    run_dir = None if run_dir is None else Path(run_dir)
    data = data_for(config, stimuli)
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        loop, finished = _fit(config, seed, data, run_dir=run_dir, progress=progress, label=label,
                              stop_after_epoch=stop_after_epoch)
        extras = _result(loop) if finished else {}
        if finished and config.retrain:
            scratch, _ = _fit(_retrain_config(config), seed, data, progress=progress,
                              run_dir=None if run_dir is None else run_dir / RETRAIN_FOLDER,
                              label=f"{label or f'plasticity seed {seed}'} (retrained)", stop_after_epoch=None)
            extras.update(_retrained(_result(scratch)))
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
    loop.model.eval()
    return TaskRun(config=config, seed=seed, model=loop.model, log=pd.DataFrame(loop.rows["epoch"]),
                   run_dir=run_dir, extras=extras)


def _restored(config, seed, data, run_dir) -> _Loop:
    loop = _Loop(config, seed, data, TaskSequence(config, data))
    loop.restore(read_checkpoint(run_dir))
    if loop.epoch != config.epochs:
        raise PlasticityFamilyError(f"{run_dir} holds an unfinished run ({loop.epoch} of {config.epochs} epochs); "
                                  "train it again with the same run_dir to finish it")
    return loop


def load(config: PlasticityConfig, run_dir, *, stimuli=None) -> TaskRun:
    """A finished run rebuilt from its folder (model, log and every table of :func:`train`)."""
    run_dir = Path(run_dir)
    seed = int(read_run_config(run_dir)["seed"])
    data = data_for(config, stimuli)
    with torch.random.fork_rng():  # building the model draws from torch's global RNG: leave the caller's alone
        loop = _restored(config, seed, data, run_dir)
        extras = _result(loop)
        if config.retrain:
            extras.update(_retrained(_result(_restored(_retrain_config(config), seed, data, run_dir / RETRAIN_FOLDER))))
    return TaskRun(config=config, seed=seed, model=loop.model.eval(), log=pd.DataFrame(loop.rows["epoch"]),
                   run_dir=run_dir, extras=extras)
