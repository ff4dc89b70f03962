"""Running a pipeline: its tasks (cached by hash) on an executor, then the report."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from brainres.data.io import atomic_write_text
from brainres.pipeline.config import Pipeline, load_pipeline
from brainres.pipeline.engine import run_tasks
from brainres.pipeline.provenance import provenance
from brainres.pipeline.tasks import build_tasks


def run_pipeline(pipeline, run_dir=None, *, executor: str | None = None, workers: int | None = None,
                 scheduler: str | None = None, progress: bool = True, quiet: bool = False) -> Path:
    """Run every task of ``pipeline`` that is not finished yet, then write the report.

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
    progress : bool
        Progress bars for in-process training and export.
    quiet : bool
        No status lines on stderr.

    Returns
    -------
    pathlib.Path
        The report's path (``run_dir/report.html``).
    """
    if not isinstance(pipeline, Pipeline):
        pipeline = load_pipeline(pipeline)
    run_dir = Path(run_dir or Path("runs") / pipeline.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    tasks = build_tasks(pipeline, run_dir)
    if scheduler:
        executor = "scheduler"
    started = time.perf_counter()
    records = run_tasks(tasks, executor=executor or pipeline.executor, workers=workers or pipeline.workers,
                        threads=pipeline.threads_per_task, scheduler=scheduler, slurm=pipeline.slurm,
                        progress=progress, quiet=quiet)
    from brainres.pipeline.report import write_run_report

    atomic_write_text(run_dir / "provenance.json", json.dumps(provenance(pipeline, records), indent=2, default=str))
    report = write_run_report(run_dir, pipeline=pipeline, tasks=tasks)
    if not quiet:
        print(f"all {len(tasks)} tasks in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return report
