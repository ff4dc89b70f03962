"""Running a pipeline: tasks in dependency order, cached by hash, then the report."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from brainres.data.io import atomic_write_text
from brainres.pipeline.config import Pipeline, load_pipeline
from brainres.pipeline.provenance import now, provenance
from brainres.pipeline.tasks import RUNNERS, build_tasks


def _say(message: str, quiet: bool):
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def run_pipeline(pipeline, run_dir=None, *, progress: bool = True, quiet: bool = False) -> Path:
    """Run every task of ``pipeline`` that is not finished yet, then write the report.

    Parameters
    ----------
    pipeline : Pipeline or path
        A :class:`Pipeline` or a pipeline TOML file.
    run_dir : path, optional
        Output folder (default ``./runs/<pipeline name>``). Rerunning with the
        same folder reuses every finished task.
    progress : bool
        Progress bars for training and export.
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
    by_key = {t.key: t for t in tasks}
    record = []
    started_run = time.perf_counter()
    for number, task in enumerate(tasks, start=1):
        label = f"[{number}/{len(tasks)}] {task.key}"
        if task.is_done():
            _say(f"{label}: finished earlier, reused", quiet)
            record.append({"task": task.key, "hash": task.hash, "status": "reused"})
            continue
        _say(f"{label}: running", quiet)
        started = time.perf_counter()
        summary = RUNNERS[task.kind](task, by_key, progress)
        seconds = time.perf_counter() - started
        atomic_write_text(task.done_path, json.dumps(
            {"hash": task.hash, "key": task.key, "spec": task.spec, "seconds": seconds, "finished": now(),
             "summary": summary}, indent=2, default=str))
        _say(f"{label}: done in {seconds:.1f} s", quiet)
        record.append({"task": task.key, "hash": task.hash, "status": "ran", "seconds": round(seconds, 2)})
    from brainres.pipeline.report import write_run_report

    atomic_write_text(run_dir / "provenance.json", json.dumps(provenance(pipeline, record), indent=2, default=str))
    report = write_run_report(run_dir, pipeline=pipeline, tasks=tasks)
    _say(f"all {len(tasks)} tasks in {time.perf_counter() - started_run:.1f} s", quiet)
    return report
