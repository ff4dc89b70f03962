"""Training run folders: what a run is, its checkpoint after every epoch, its log; the same for every family.

A run folder holds ``config.json`` (the run's record and its hash),
``checkpoint.pt`` (written atomically after every epoch: whatever the family
needs to continue, as tensors and plain values) and ``log.csv``. Opening a
folder that holds another configuration is refused; opening it again with the
same one returns the last checkpoint, so an interrupted run continues where it
stopped and ends with the weights an uninterrupted run would have.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import torch

from brainres.data.io import atomic_path, atomic_write_text
from brainres.errors import BrainresError

CHECKPOINT = "checkpoint.pt"
LOG = "log.csv"
CONFIG = "config.json"


class RunFolderError(BrainresError):
    """A run folder belongs to another configuration, or is not a run folder."""


class RunFolder:
    """A run folder for one configuration (identified by ``config_hash``).

    Parameters
    ----------
    path : path
        The folder (created if needed).
    config_hash : str
        Identity of the run; a folder of another hash is refused.
    record : dict
        Written to ``config.json`` beside the hash when the folder is new.
    """

    def __init__(self, path, config_hash: str, record: dict):
        self.path = Path(path)
        self.config_hash = config_hash
        config_path = self.path / CONFIG
        if config_path.exists():
            stored = json.loads(config_path.read_text())
            if stored.get("config_hash") != config_hash:
                raise RunFolderError(
                    f"{self.path} holds a run of another configuration (hash {stored.get('config_hash', '?')[:12]}, "
                    f"this one {config_hash[:12]}); use another folder")
        else:
            atomic_write_text(config_path, json.dumps({"config_hash": config_hash, **record}, indent=2, default=str))

    def load_checkpoint(self, device="cpu") -> dict | None:
        """The last checkpoint (``weights_only``: plain values and tensors), or None."""
        path = self.path / CHECKPOINT
        if not path.exists():
            return None
        state = torch.load(path, weights_only=True, map_location=device)
        if state.get("config_hash") != self.config_hash:
            raise RunFolderError(f"{path} was written by another configuration")
        return state

    def save_snapshot(self, epoch: int, weights: dict) -> None:
        """Keep the weights at the end of ``epoch`` (atomically), beside the checkpoint."""
        with atomic_path(self.path / snapshot_name(epoch), suffix=".pt") as tmp:
            torch.save({"config_hash": self.config_hash, "epoch": int(epoch), "model": weights}, tmp)

    def save(self, state: dict, log_rows: list[dict]) -> None:
        """Write the checkpoint (atomically), then the log."""
        with atomic_path(self.path / CHECKPOINT, suffix=".pt") as tmp:
            torch.save({"config_hash": self.config_hash, **state}, tmp)
        with atomic_path(self.path / LOG, suffix=".csv") as tmp:
            pd.DataFrame(log_rows).to_csv(tmp, index=False)


def snapshot_name(epoch: int) -> str:
    """File name of the weights a run keeps from the end of one epoch (for exports across training)."""
    return f"weights-epoch-{int(epoch):04d}.pt"


def read_run_config(run_dir) -> dict:
    """The ``config.json`` of a finished or interrupted run folder, or a clear error if it is not one."""
    run_dir = Path(run_dir)
    for path in (run_dir / CONFIG, run_dir / CHECKPOINT):
        if not path.exists():
            raise RunFolderError(f"{path} is missing; is {run_dir} a training run folder?")
    return json.loads((run_dir / CONFIG).read_text())


def read_checkpoint(run_dir, device="cpu", *, epoch: int | None = None) -> dict:
    """The checkpoint of a run folder (``weights_only``), or the weights it kept at the end of ``epoch``."""
    if epoch is None:
        return torch.load(Path(run_dir) / CHECKPOINT, weights_only=True, map_location=device)
    path = Path(run_dir) / snapshot_name(epoch)
    if not path.exists():
        kept = sorted(int(p.stem.rsplit("-", 1)[1]) for p in Path(run_dir).glob("weights-epoch-*.pt"))
        raise RunFolderError(f"{run_dir} kept no weights at epoch {epoch} (it kept epochs {kept or 'none'}); "
                             "train with keep_epochs including it")
    return torch.load(path, weights_only=True, map_location=device)


class EpochProgress:
    """Progress of one training run: a bar on a terminal, one plain line per epoch in a log.

    ``epoch(number, seconds=..., **metrics)`` reports a finished epoch;
    ``metrics`` (name -> number) are shown in the bar and in the line.
    """

    def __init__(self, label: str, total: int, start: int = 0, enabled: bool | str = True):
        from tqdm.auto import tqdm

        # enabled="lines": plain lines even on a terminal (Dask workers share one)
        self.label, self.total, self.enabled = label, total, bool(enabled)
        self.bar = tqdm(total=total, initial=start, desc=label, file=sys.stderr, leave=False,
                        disable=not (enabled is True and sys.stderr.isatty()))

    def epoch(self, number: int, *, seconds: float | None = None, **metrics) -> None:
        self.bar.update(1)
        self.bar.set_postfix({name: f"{value:.3f}" for name, value in metrics.items()})
        if self.enabled and self.bar.disable:
            shown = ", ".join(f"{name.replace('_', ' ')} {value:.3f}" for name, value in metrics.items())
            took = f" ({seconds:.1f} s)" if seconds is not None else ""
            print(f"{self.label}: epoch {number} of {self.total}, {shown}{took}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()
