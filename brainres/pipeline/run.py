"""Running a pipeline: check it whole, lock its run folder, run its tasks (cached by hash), then the report.

Nothing runs before the whole pipeline is checked; nothing is written before
the run folder's lock is held (a second run of the same folder refuses, or
waits with ``wait=True``); temporary files an interrupted run left are
removed, and a folder in the run folder that leads outside it is refused,
before the first task.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from brainres.data.io import atomic_write_text
from brainres.pipeline.check import check_pipeline
from brainres.pipeline.config import Pipeline, load_pipeline
from brainres.pipeline.engine import run_tasks
from brainres.pipeline.provenance import provenance
from brainres.pipeline.store import RunLock, prepare_run_folder
from brainres.pipeline.tasks import build_tasks


def _load(pipeline) -> Pipeline:
    return pipeline if isinstance(pipeline, Pipeline) else load_pipeline(pipeline)


def check(pipeline, *, device: str | None = None):
    """Check a pipeline (file or :class:`Pipeline`) without running anything; returns the checked pipeline.

    Every data reference is resolved, every model built and run once on two
    blank images, every comparison's options checked; one
    :class:`~brainres.pipeline.config.PipelineError` lists all problems.
    """
    return check_pipeline(_load(pipeline), device=device)


def run_pipeline(pipeline, run_dir=None, *, executor: str | None = None, workers: int | None = None,
                 scheduler: str | None = None, device: str | None = None, progress: bool = True,
                 quiet: bool = False, wait: bool = False, dashboard: bool = False) -> Path:
    """Check ``pipeline`` whole, run every task that is not finished yet, then write the report.

    Parameters
    ----------
    pipeline : Pipeline or path
        A :class:`Pipeline` or a pipeline TOML file.
    run_dir : path, optional
        Output folder (default ``./runs/<pipeline name>``). Rerunning with the
        same folder reuses every finished task.
    executor : {"in-process", "local", "scheduler", "slurm"}, optional
        Where tasks run (default: the pipeline's ``[run] executor``, else
        ``"local"``, a Dask LocalCluster); a ``scheduler`` address implies
        ``"scheduler"``. See :mod:`brainres.pipeline.engine`.
    workers : int, optional
        Worker processes of the local cluster (default: the pipeline's, else 2).
    scheduler : str, optional
        Address of a running Dask scheduler, e.g. ``tcp://127.0.0.1:8786``.
    device : str, optional
        Train and export every model on this device (``"cuda"``); default: each
        model's ``device`` (CPU unless the pipeline says otherwise).
    progress : bool
        Progress of training (epoch by epoch: a bar on a terminal, plain lines in a log or from Dask
        workers) and export.
    quiet : bool
        No status lines on stderr.
    dashboard : bool
        Start the Dask dashboard of a local cluster (off unless asked for).
    wait : bool
        If another run holds ``run_dir``, wait for it to finish (then reuse
        what it finished) instead of refusing with its process id.

    Returns
    -------
    pathlib.Path
        The report's path (``run_dir/report.html``).
    """
    pipeline = _load(pipeline)
    started = time.perf_counter()
    checked = check_pipeline(pipeline, device=device)
    if not quiet:
        print(f"pipeline {pipeline.name}: checked in {time.perf_counter() - started:.1f} s", file=sys.stderr,
              flush=True)
    run_dir = Path(run_dir or Path("runs") / pipeline.name)

    def say(message):
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    with RunLock(run_dir, wait=wait, say=say):
        tasks = build_tasks(checked, run_dir)
        removed = prepare_run_folder(run_dir, [t.folder for t in tasks])
        if removed:
            say(f"removed {len(removed)} temporary file(s) left by an interrupted run: "
                + ", ".join(str(p.relative_to(run_dir)) for p in removed[:5]) + (" ..." if len(removed) > 5 else ""))
        if scheduler:
            executor = "scheduler"
        records = run_tasks(tasks, executor=executor or pipeline.executor, workers=workers or pipeline.workers,
                            threads=pipeline.threads_per_task, scheduler=scheduler, slurm=pipeline.slurm,
                            progress=progress and not quiet, quiet=quiet, dashboard=dashboard)
        from brainres.pipeline.report import write_run_report

        atomic_write_text(run_dir / "provenance.json",
                          json.dumps(provenance(checked, tasks, records), indent=2, default=str))
        report = write_run_report(run_dir)
    say(f"all {len(tasks)} tasks in {time.perf_counter() - started:.1f} s")
    return report
