"""Training a sequential/parallel autoencoder: seeded, deterministic on CPU, resumable, continuable from a parent."""

from __future__ import annotations

import copy
import hashlib
import time

import numpy as np
import pandas as pd
import torch

from brainres.families.base import TaskRun
from brainres.families.seqpar.config import FIRST_SENT, SeqParConfig
from brainres.families.seqpar.information import input_probabilities
from brainres.families.seqpar.measures import first_sent_of
from brainres.families.seqpar.network import SeqParAutoencoder, SeqParError, all_binary_vectors, reconstruction_loss
from brainres.hashing import canonical_hash
from brainres.runs import EpochProgress, RunFolder, read_checkpoint, read_run_config

FAMILY = "seqpar"
# An epoch of the default task takes tens of milliseconds and a checkpoint a few, so a checkpoint
# (and a progress line) after every epoch would cost ~10 % of training: every 25 epochs instead,
# and always at the last epoch and where a run is stopped on purpose.
CHECKPOINT_EVERY = 25
# A continued run draws its batches and noise from its own stream, so it does not replay its parent's.
SEED_STREAM_OFFSET = 1_000_000
# The settings a continued run may change; the rest fix the architecture of the parent's weights.
_NOT_ARCHITECTURE = ("temperature", "noise_std", "feedback", "task", "fixed_bits", "evaluate_fixed_bits", "epochs",
                     "batch_size", "learning_rate")


def _seeded(seed) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SeqParError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def build_model(config: SeqParConfig) -> SeqParAutoencoder:
    """An untrained model of the configuration (initialised from torch's current RNG)."""
    return SeqParAutoencoder(
        input_dim=config.input_dim, bottleneck_width=config.bottleneck_width, n_steps=config.n_steps,
        hidden_size=config.hidden_size, bottleneck=config.bottleneck, feedback=config.feedback,
        feedback_signal=config.feedback_signal, noise_std=config.noise_std, temperature=config.temperature,
    )


def _weights_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _continued(parent: TaskRun, config: SeqParConfig) -> SeqParAutoencoder:
    """A copy of the parent's model, with this run's non-weight settings (temperature, noise, feedback)."""
    mismatched = [k for k, v in config.to_dict().items()
                  if k not in _NOT_ARCHITECTURE and parent.config.to_dict().get(k) != v]
    if mismatched:
        raise SeqParError(f"a run continues from its parent's weights, so it must keep the parent's {mismatched}")
    model = copy.deepcopy(parent.model)
    model.temperature, model.noise_std, model.feedback = config.temperature, config.noise_std, config.feedback
    return model


def _lineage(config: SeqParConfig, seed: int, parent: TaskRun | None) -> dict:
    """What a run inherits: its generation, its seed stream, the switch bits and its resolved training bits."""
    if parent is not None and parent.seed != seed:
        raise SeqParError(f"a run of seed {seed} continues from its parent's run of the same seed, got {parent.seed}")
    generation = 0 if parent is None else int(parent.extras.get("generation", 0)) + 1
    switch_bits = None if parent is None else first_sent_of(parent)
    if config.fixed_bits == FIRST_SENT and switch_bits is None:
        raise SeqParError("fixed_bits = 'first_sent' holds the bits the parent's code sent first; "
                          "this run has no parent (continue_from a variant in a pipeline, parent= in Python)")
    fixed_bits = switch_bits if config.fixed_bits == FIRST_SENT else tuple(config.fixed_bits)
    return {"generation": generation, "stream": seed + SEED_STREAM_OFFSET * generation,
            "switch_bits": None if switch_bits is None else list(switch_bits), "fixed_bits": list(fixed_bits)}


def train(config: SeqParConfig, seed: int, *, run_dir=None, parent: TaskRun | None = None, progress: bool = False,
          label: str | None = None, stop_after_epoch: int | None = None) -> TaskRun:
    """Train one model by backpropagation through time; deterministic on CPU for a given ``seed``.

    Parameters
    ----------
    config : SeqParConfig
    seed : int
        Seeds the initial weights, the batch order and the bottleneck noise (one generator).
    run_dir : path, optional
        A checkpoint every ``CHECKPOINT_EVERY`` (25) epochs, at the last epoch
        and at ``stop_after_epoch``; a rerun continues from the last one and
        ends with the weights of an uninterrupted run.
    parent : TaskRun, optional
        Continue training a copy of the parent's model (same seed; e.g. after a
        switch of input distribution) with a fresh optimiser; batches and noise
        then come from the stream ``seed + 1_000_000 x generation`` so the
        parent's are not replayed. ``fixed_bits = "first_sent"`` is resolved
        from it (the bits its lineage's phase-1 code sent first at step 1).
    progress : bool
        A bar on a terminal, a line every 25 epochs in a log.
    label : str, optional
        Name in the progress output.
    stop_after_epoch : int, optional
        Stop once this many epochs are done (an interruption); a later call with ``run_dir`` continues.

    Returns
    -------
    TaskRun
        ``model`` (eval mode); ``log`` (``epoch``, ``loss_bits``: mean training
        loss, ``final_error``: fraction of bits wrong at the last step with
        deterministic codes, ``seconds``); ``extras``: ``fixed_bits`` (resolved
        training distribution), ``switch_bits`` (the lineage's first-sent bits,
        None for a run without a parent), ``generation``, ``generator_seed``.
    """
    if not isinstance(config, SeqParConfig):
        raise SeqParError(f"config must be a SeqParConfig, got {type(config).__name__}")
    seed = _seeded(seed)
    lineage = _lineage(config, seed, parent)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    reporter = None
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(lineage["stream"])
            model = build_model(config) if parent is None else _continued(parent, config)
            generator = torch.Generator().manual_seed(lineage["stream"])
            probabilities = input_probabilities(config.input_dim, lineage["fixed_bits"])
            support = all_binary_vectors(config.input_dim)[torch.from_numpy(probabilities > 0)]
            optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
            rows, start, folder = [], 0, None
            if run_dir is not None:
                record = {"family": FAMILY, "config": config.to_dict(), "seed": seed, **lineage,
                          "parent_weights": None if parent is None else _weights_digest(parent.model)}
                folder = RunFolder(run_dir, canonical_hash(record), record)
                state = folder.load_checkpoint()
                if state is not None:
                    model.load_state_dict(state["model"])
                    optimizer.load_state_dict(state["optimizer"])
                    generator.set_state(state["generator"])
                    rows, start = list(state["log"]), int(state["epoch"])
            reporter = EpochProgress(label or f"seqpar k={config.bottleneck_width} seed {seed}", config.epochs, start,
                                     progress)
            last = config.epochs if stop_after_epoch is None else min(config.epochs, stop_after_epoch)
            reported = start
            for epoch in range(start + 1, last + 1):
                started = time.perf_counter()
                loss_bits = _epoch(model, optimizer, support, generator, config.batch_size)
                model.eval()
                with torch.no_grad():
                    final = model(support, stochastic=False)["reconstruction_logits"][:, -1]
                final_error = float(((final > 0).float() != support).float().mean())
                rows.append({"epoch": epoch, "loss_bits": loss_bits, "final_error": final_error,
                             "seconds": time.perf_counter() - started})
                if epoch % CHECKPOINT_EVERY == 0 or epoch == last:
                    # the bar counts epochs; it is told about the ones since the last report at once
                    reporter.bar.update(epoch - reported - 1)
                    reporter.epoch(epoch, seconds=sum(r["seconds"] for r in rows[reported - epoch:]),
                                   loss_bits=loss_bits, final_error=final_error)
                    reported = epoch
                    if folder is not None:
                        folder.save({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                     "generator": generator.get_state(), "log": rows, **lineage}, rows)
            if folder is not None and start == last == 0:  # nothing to train: still leave a loadable run
                folder.save({"epoch": 0, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "generator": generator.get_state(), "log": rows, **lineage}, rows)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        if reporter is not None:
            reporter.close()
    model.eval()
    return TaskRun(config=config, seed=seed, model=model, log=pd.DataFrame(rows),
                   run_dir=None if folder is None else folder.path, extras=_extras(lineage))


def _epoch(model, optimizer, support, generator, batch_size: int) -> float:
    """One pass over the support in a random order; the mean training loss in bits."""
    model.train()
    order = torch.randperm(len(support), generator=generator)
    total, count = 0.0, 0
    for start in range(0, len(support), batch_size):
        batch = support[order[start : start + batch_size]]
        out = model(batch, stochastic=True, generator=generator)
        loss = reconstruction_loss(out["reconstruction_logits"], batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(batch)
        count += len(batch)
    return total / count


def _extras(lineage: dict) -> dict:
    switch = lineage.get("switch_bits")
    return {"fixed_bits": tuple(int(b) for b in lineage["fixed_bits"]),
            "switch_bits": None if switch is None else tuple(int(b) for b in switch),
            "generation": int(lineage["generation"]), "generator_seed": int(lineage["stream"])}


def load(config: SeqParConfig, run_dir) -> TaskRun:
    """A finished run rebuilt from its folder (its weights, log and resolved bits)."""
    stored = read_run_config(run_dir)
    state = read_checkpoint(run_dir)
    if int(state["epoch"]) != config.epochs:
        raise SeqParError(f"{run_dir} holds a run stopped after epoch {int(state['epoch'])} of {config.epochs}; "
                          "train it again with this run_dir to finish it")
    with torch.random.fork_rng(devices=[]):  # building draws initial weights; they are replaced at once
        model = build_model(config)
    model.load_state_dict(state["model"])
    return TaskRun(config=config, seed=int(stored["seed"]), model=model.eval(), log=pd.DataFrame(list(state["log"])),
                   run_dir=run_dir, extras=_extras(state))
