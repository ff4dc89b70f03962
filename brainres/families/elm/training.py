"""Training an ELM network: seeded, deterministic on CPU, resumable from its run folder."""

from __future__ import annotations

import math
import time

import pandas as pd
import torch

from brainres.families.base import TaskRun
from brainres.families.elm.config import ELMConfig, parameter_count
from brainres.families.elm.network import ELMNetwork
from brainres.families.elm.tasks import ELMFamilyError, SequenceTask, resolve_task
from brainres.hashing import canonical_hash
from brainres.runs import EpochProgress, RunFolder, read_checkpoint, read_run_config


def build_model(config: ELMConfig, *, n_inputs: int, n_outputs: int, seed: int) -> ELMNetwork:
    """An untrained network for ``config``; ``seed`` sets both wiring and initial weights."""
    parameter_count(config, n_inputs=n_inputs, n_outputs=n_outputs)  # validates k_c
    return ELMNetwork(
        n_inputs=n_inputs, n_outputs=n_outputs, n_neurons=config.n_neurons, k_e=config.k_e, k_c=config.k_c,
        mlp_width_factor=config.mlp_width_factor, tau_m_bounds=(config.tau_m_min, config.tau_m_max),
        tau_s_bounds=(config.tau_s_min, config.tau_s_max), memory_update_scale=config.memory_update_scale,
        connectivity_seed=seed, init_seed=seed,
    )


def loss_of(logits: torch.Tensor, targets: torch.Tensor, task: SequenceTask) -> torch.Tensor:
    """Cross-entropy or mean squared error on the scored steps."""
    if not task.per_step:
        logits = logits[:, -1]
    if task.loss == "cross_entropy":
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    return torch.nn.functional.mse_loss(logits, targets)


def metric_of(logits: torch.Tensor, targets: torch.Tensor, task: SequenceTask) -> float:
    """Accuracy (cross_entropy) or R^2 pooled over outputs (mse) where the targets are scored."""
    if not task.per_step:
        logits = logits[:, -1]
    if task.loss == "cross_entropy":
        return float((logits.argmax(-1) == targets).double().mean())
    residual = ((logits - targets) ** 2).sum()
    total = ((targets - targets.mean(dim=0, keepdim=True)) ** 2).sum()
    return float(1 - residual / total) if total > 0 else math.nan


@torch.no_grad()
def test_scores(model: ELMNetwork, task: SequenceTask) -> tuple[float, float]:
    model.eval()
    logits = model(task.test_inputs)["logits"]
    return float(loss_of(logits, task.test_targets, task)), metric_of(logits, task.test_targets, task)


def run_hash(config: ELMConfig, seed: int, task: SequenceTask) -> str:
    return canonical_hash({"family": "elm", "config": config.to_dict(), "seed": seed, "data": task.training_data()})


def train(config: ELMConfig, seed: int, *, task: SequenceTask | None = None, run_dir=None, parent=None,
          progress: bool = False, label: str | None = None, stop_after_epoch: int | None = None) -> TaskRun:
    """Train one ELM network; deterministic on CPU for a given ``seed``, resumable from ``run_dir``.

    Parameters
    ----------
    config : ELMConfig
    seed : int
        Seeds the wiring, the initial weights and the batch order.
    task : SequenceTask, optional
        A user's task (its ``name`` must equal ``config.task``); default the built-in task.
    run_dir : path, optional
        Checkpoint after every epoch; a rerun continues from the last one.
    parent : TaskRun, optional
        Not used: every ELM run starts from scratch.
    progress : bool
        A bar on a terminal, one line per epoch in a log.
    stop_after_epoch : int, optional
        Stop once this many epochs are done (an interruption); a later call with ``run_dir`` continues.

    Returns
    -------
    TaskRun
        ``model`` (eval mode), ``log`` (epoch, train_loss, test_loss, test_metric, seconds),
        ``extras["task"]`` (the SequenceTask used).
    """
    if not isinstance(config, ELMConfig):
        raise ELMFamilyError(f"config must be an ELMConfig, got {type(config).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ELMFamilyError(f"seed must be a non-negative integer, got {seed!r}")
    task = resolve_task(config, task)
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    reporter = None
    try:
        torch.manual_seed(seed)
        model = build_model(config, n_inputs=task.n_inputs, n_outputs=task.n_outputs, seed=seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        order = torch.Generator().manual_seed(seed)
        rows, start = [], 0
        folder = None
        if run_dir is not None:
            folder = RunFolder(run_dir, run_hash(config, seed, task),
                               {"family": "elm", "config": config.to_dict(), "seed": seed,
                                "data": task.training_data()})
            state = folder.load_checkpoint()
            if state is not None:
                model.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
                order.set_state(state["generator"])
                torch.random.set_rng_state(state["torch_rng"])
                rows, start = list(state["log"]), int(state["epoch"])
        reporter = EpochProgress(label or f"elm seed {seed}", config.epochs, start, progress)
        n_train = task.train_inputs.shape[0]
        last = config.epochs if stop_after_epoch is None else min(config.epochs, stop_after_epoch)
        for epoch in range(start + 1, last + 1):
            started = time.perf_counter()
            model.train()
            permutation = torch.randperm(n_train, generator=order)
            total, count = 0.0, 0
            for first in range(0, n_train, config.batch_size):
                batch = permutation[first:first + config.batch_size]
                loss = loss_of(model(task.train_inputs[batch])["logits"], task.train_targets[batch], task)
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                total += float(loss.detach()) * batch.numel()
                count += batch.numel()
            test_loss, test_metric = test_scores(model, task)
            rows.append({"epoch": epoch, "train_loss": total / count, "test_loss": test_loss,
                         "test_metric": test_metric, "seconds": time.perf_counter() - started})
            reporter.epoch(epoch, seconds=rows[-1]["seconds"], train_loss=total / count, test_metric=test_metric)
            if folder is not None:
                folder.save({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "generator": order.get_state(), "torch_rng": torch.random.get_rng_state(),
                             "log": rows}, rows)
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
        if reporter is not None:
            reporter.close()
    model.eval()
    return TaskRun(config=config, seed=seed, model=model, log=pd.DataFrame(rows),
                   run_dir=None if folder is None else folder.path, extras={"task": task})


def load(config: ELMConfig, run_dir, *, task: SequenceTask | None = None) -> TaskRun:
    """A finished run rebuilt from its folder."""
    stored = read_run_config(run_dir)
    seed = int(stored["seed"])
    task = resolve_task(config, task)
    model = build_model(config, n_inputs=task.n_inputs, n_outputs=task.n_outputs, seed=seed)
    state = read_checkpoint(run_dir)
    model.load_state_dict(state["model"])
    return TaskRun(config=config, seed=seed, model=model.eval(), log=pd.DataFrame(list(state["log"])),
                   run_dir=run_dir, extras={"task": task})
