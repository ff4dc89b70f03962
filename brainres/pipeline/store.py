"""The run folder: its lock, its clean-up after an interrupted run, its bounds; comparison results in it.

A run folder is a place one can trust:

- one run at a time: :class:`RunLock` (an exclusive ``flock`` on
  ``.brainres.lock``, released by the kernel if the process dies) makes a
  second run of the same folder refuse with the other run's process id, host,
  start time and command, or wait for it;
- temporary files of atomic writes left by a killed run are removed when the
  next run takes the lock (:func:`remove_temporaries`);
- nothing is written through a task folder, or a ``models/``, ``exports/`` or
  ``results/`` folder, that resolves outside the run folder
  (:func:`check_inside`);
- a folder that cannot be written (permissions, read-only file system) is
  reported once, naming it, before any task runs.

Results are saved as JSON plus netCDF figure data (:func:`save_result`).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import math
import os
import shlex
import socket
import sys
import time
from pathlib import Path

from brainres.compare import ComparisonResult
from brainres.data.io import (
    WriteError, atomic_write_text, os_error_path, os_problem, read_netcdf, remove_temporaries, write_netcdf,
)
from brainres.errors import BrainresError
from brainres.stats.result import StatResult

LOCK_FILE = ".brainres.lock"
TASK_ROOTS = ("models", "exports", "results")


class RunFolderError(BrainresError):
    """A run folder cannot be used: another run holds it, or a folder in it leads outside it."""


class RunLockedError(RunFolderError):
    """Another process runs a pipeline into the same folder."""


def _holder(path: Path) -> str:
    """Who holds the lock, in words, from what it wrote into the lock file."""
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info.get("pid"):
        return "another brainres process"
    command = f", command: {info['command']}" if info.get("command") else ""
    return (f"brainres process {info['pid']} on {info.get('host', '?')} (started {info.get('started', '?')}"
            f"{command})")


def _command() -> str:
    """How this process was started, for the message of a run that finds the folder busy."""
    argv = list(getattr(sys, "orig_argv", sys.argv))
    if len(argv) > 1 and Path(argv[1]).name == "brainres":  # the console script
        argv = ["brainres", *argv[2:]]
    shown = [" ".join(a.split()) for a in argv]  # one line, whatever a -c script holds
    return " ".join(shlex.quote(a if len(a) <= 80 else a[:77] + "...") for a in shown)


class RunLock:
    """An exclusive lock on a run folder, held while a run (or a report) writes into it.

    Parameters
    ----------
    run_dir : path
        The run folder (created if needed).
    wait : bool
        Wait for another run of the folder to finish instead of refusing.
    say : callable, optional
        Receives a line when the lock is busy and ``wait`` is set.

    The lock is an ``flock`` on ``run_dir/.brainres.lock``: the kernel releases
    it when the process ends, however it ends (``kill -9`` included), so a lock
    file left by a killed run never blocks the next one. The file names the
    holder (process id, host, start time, command) for the message of the
    process that finds it busy, and is removed when the run ends normally.
    """

    def __init__(self, run_dir, *, wait: bool = False, say=None):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.wait, self.say = wait, say
        self.fd = None

    def acquire(self) -> "RunLock":
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise WriteError(os_error_path(err, self.run_dir), f"cannot create the run folder: {os_problem(err)}") \
                from None
        if not self.run_dir.is_dir():
            raise RunFolderError(f"{self.run_dir} is not a folder")
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as err:
                raise WriteError(os_error_path(err, self.path), f"cannot write into the run folder: "
                                                                f"{os_problem(err)}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(self.path)
                if not self.wait:
                    os.close(fd)
                    raise RunLockedError(f"{self.run_dir} is in use by {holder}; wait for it to finish, or run with "
                                         "--wait to start when it has (the same folder is never run twice at "
                                         "once)") from None
                if self.say:
                    self.say(f"{self.run_dir} is in use by {holder}; waiting for it to finish")
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder removed the file as we waited for it: lock the new one
                os.close(fd)
                continue
            self.fd = fd
            break
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": _command()}
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, json.dumps(info).encode(), 0)
        except OSError as err:
            self.release()
            raise WriteError(os_error_path(err, self.path), f"cannot write into the run folder: {os_problem(err)}") \
                from None
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink()  # while still holding it: a waiter then re-opens the new file (see acquire)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


def check_inside(run_dir, folders) -> None:
    """Refuse a task folder (or ``models/``, ``exports/``, ``results/``) that resolves outside ``run_dir``.

    Such a folder is a symbolic link (or under one) that would make brainres
    write somewhere the user did not name; one error lists every such folder.
    """
    run_dir = Path(run_dir)
    root = run_dir.resolve()
    candidates = [run_dir / name for name in TASK_ROOTS] + [Path(f) for f in folders]
    outside = []
    for folder in candidates:
        if not (folder.exists() or folder.is_symlink()):
            continue
        resolved = folder.resolve()
        if resolved != root and root not in resolved.parents:
            outside.append(f"{folder} -> {resolved}")
    if outside:
        raise RunFolderError(f"{run_dir}: {len(outside)} folder(s) in the run folder lead outside it (symbolic "
                             f"links); brainres writes only inside the run folder: {'; '.join(outside)}. Remove "
                             "the link(s), or run into another folder with --out")


def prepare_run_folder(run_dir, task_folders=()) -> list[Path]:
    """Checks and clean-up of a run folder whose lock this process holds; returns the temporary files removed."""
    check_inside(run_dir, task_folders)
    return remove_temporaries(run_dir)

RESULT_FILE = "result.json"
_FIELDS = {f.name for f in dataclasses.fields(StatResult)} - {"extra", "distribution"}


def _clean(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


def save_result(result: ComparisonResult, folder) -> Path:
    """Write figure data as netCDF, then the results as JSON (last: it marks completion)."""
    folder = Path(folder)
    figures = {}
    for name, figure in result.figures.items():
        file = f"figure_{name}.nc"
        write_netcdf(figure, folder / file)
        figures[name] = file
    rows = []
    for stat in result.results:
        row = {name: _clean(getattr(stat, name)) for name in _FIELDS}
        row["resampled"] = list(stat.resampled)
        row["extra"] = {k: _clean(v) for k, v in stat.extra.items()}
        rows.append(row)
    record = {"comparison": result.comparison, "title": result.title, "results": rows, "figures": figures,
              "methods": result.methods, "notes": result.notes, "inputs": result.inputs}
    return atomic_write_text(folder / RESULT_FILE, json.dumps(record, indent=2, default=str))


def load_result(folder) -> ComparisonResult:
    folder = Path(folder)
    record = json.loads((folder / RESULT_FILE).read_text())
    results = []
    for row in record["results"]:
        values = {k: (math.nan if v is None and k in ("estimate", "ci_low", "ci_high", "ci_level", "p_value") else v)
                  for k, v in row.items() if k in _FIELDS}
        values["resampled"] = tuple(row.get("resampled", ()))
        results.append(StatResult(**values, extra=row.get("extra", {})))
    figures = {name: read_netcdf(folder / file) for name, file in record["figures"].items()}
    return ComparisonResult(comparison=record["comparison"], title=record["title"], results=results,
                            figures=figures, methods=record["methods"], notes=record["notes"], inputs=record["inputs"])


def results_frame(results):
    """All comparisons' tables, stacked."""
    import pandas as pd

    tables = [r.table() for r in results]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


__all__ = ["RunFolderError", "RunLock", "RunLockedError", "check_inside", "load_result", "prepare_run_folder",
           "results_frame", "save_result"]
