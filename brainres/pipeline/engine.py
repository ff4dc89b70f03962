"""Executing the tasks of a run: in this process, or through Dask.

The task graph is the same either way (train one seed -> export that seed on
one stimulus set -> one comparison over all seeds). Each task writes its own
outputs atomically into a folder named by its hash and marks completion with
``done.json`` (which records the SHA-256 of each output file), so a worker that
crashes or is killed loses only its own task: Dask reschedules it, and a later
rerun does only what is missing, plus any task whose outputs no longer match
their checksums (:func:`triage` says which and why).

Executors
---------
``in-process``  tasks one after another in this Python process.
``local``       a ``dask.distributed.LocalCluster`` on this machine: ``workers``
                processes, each running one task at a time.
``scheduler``   a running Dask scheduler at ``tcp://HOST:PORT``.
``slurm``       a ``dask_jobqueue.SLURMCluster`` configured in the pipeline file.

Every task sets ``torch.set_num_threads(threads_per_task)`` (and numba's thread
count, used by the statistics kernels) before it runs, so
workers do not oversubscribe the cores and results do not depend on where a
task ran.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from brainres.data.io import atomic_write_text
from brainres.errors import BrainresError
from brainres.pipeline.provenance import now
from brainres.pipeline.tasks import RUNNERS, Task


class EngineError(BrainresError):
    """The executor could not be started or a task failed."""


def execute_task(task: Task, tasks: dict, threads: int, progress: bool = False, *upstream) -> dict:
    """Run one task and mark it done; ``upstream`` only orders it after its dependencies."""
    import numba
    import torch

    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # the statistics kernels
    started = time.perf_counter()
    try:
        summary = RUNNERS[task.kind](task, tasks, progress)
    except BrainresError as err:
        if task.kind != "compare" or not getattr(err, "not_estimable", False):
            raise
        summary = record_not_estimable(task, err)
    seconds = time.perf_counter() - started
    # the checksum of every output: a later run reuses the task only if its files still match
    atomic_write_text(task.done_path, json.dumps(
        {"hash": task.hash, "key": task.key, "spec": task.spec, "seconds": seconds, "finished": now(),
         "summary": summary, "files": task.outputs()}, indent=2, default=str))
    record = {"task": task.key, "hash": task.hash, "status": "ran", "seconds": round(seconds, 2)}
    if "not_estimable" in summary:
        record["not_estimable"] = summary["not_estimable"]
    return record


def record_not_estimable(task: Task, err: BrainresError) -> dict:
    """A comparison whose estimate does not exist for these inputs: its result says so, the run goes on.

    A model time that never varies, for example, is a finding about the model,
    not a broken pipeline: the other comparisons still hold, so the report
    shows this one as "not estimable: <reason>" (in the summary and in its
    section, and as a row of results.csv) instead of the whole run failing.
    The task is finished like any other: the same inputs give the same reason.
    """
    import math

    from brainres.compare import ComparisonResult, get_comparison
    from brainres.pipeline.store import save_result
    from brainres.stats.result import StatResult

    spec, reason = task.spec, str(err)
    defaults = {name: p.default for name, p in get_comparison(spec["kind"]).parameters().items()}
    options = {**defaults, **spec.get("options", {})}
    inputs = {"model": spec.get("model"), "models": spec.get("models"), "stimuli": spec.get("stimuli"),
              "data": None if spec.get("data") is None else spec["data"]["ref"],
              "readout": options.get("readout") if isinstance(options.get("readout"), str) else None,
              "measure": options.get("measure") if isinstance(options.get("measure"), str) else None,
              "not_estimable": reason}
    result = StatResult(statistic="not_estimable", estimate=math.nan, method="not estimated",
                        extra={"label": "not estimable", "headline": True, "not_estimable": reason,
                               "warning": f"not estimable: {reason}"})
    save_result(ComparisonResult(comparison=spec["kind"], title="Not estimable for these inputs", results=[result],
                                 inputs={k: v for k, v in inputs.items() if v is not None}), task.folder)
    return {"estimates": 0, "not_estimable": reason}


def _say(message: str, quiet: bool):
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def triage(tasks: list[Task], *, quiet: bool = False) -> dict[str, tuple[str, str]]:
    """Check every task once: finished (outputs verified), missing, or changed since it finished.

    The outputs of a changed task (a file edited, truncated or removed after
    its ``done.json`` was written) are discarded, and the reason is said: it
    runs again from nothing.
    """
    states = {}
    for task in tasks:
        state, detail = task.check()
        if state == "changed":
            _say(f"{task.key}: finished earlier, but {detail}; running it again", quiet)
            task.discard()
        states[task.key] = (state, detail)
    return states


def _reused(task: Task, detail: str) -> dict:
    record = {"task": task.key, "hash": task.hash, "status": "reused"}
    if detail:
        record["note"] = detail
    return record


def run_in_process(tasks: list[Task], *, threads: int = 1, progress: bool = True, quiet: bool = False,
                   states: dict | None = None) -> list[dict]:
    """Run the tasks that are not done, in dependency order, in this process."""
    states = triage(tasks, quiet=quiet) if states is None else states
    by_key = {t.key: t for t in tasks}
    records = []
    for number, task in enumerate(tasks, start=1):
        label = f"[{number}/{len(tasks)}] {task.key}"
        state, detail = states[task.key]
        if state == "done":
            _say(f"{label}: finished earlier, reused" + (f" ({detail})" if detail else ""), quiet)
            records.append(_reused(task, detail))
            continue
        _say(f"{label}: running", quiet)
        record = execute_task(task, by_key, threads, progress)
        if state == "changed":
            record["note"] = f"ran again: {detail}"
        _say(f"{label}: done in {record['seconds']:.1f} s"
             + (f"; not estimable: {record['not_estimable']}" if "not_estimable" in record else ""), quiet)
        records.append(record)
    return records


def run_on_dask(tasks: list[Task], client, *, threads: int = 1, quiet: bool = False,
                states: dict | None = None, progress: bool = True, dashboard: bool = False) -> list[dict]:
    """Submit the tasks that are not done to a Dask client, with their dependencies; wait for all."""
    from distributed import as_completed

    states = triage(tasks, quiet=quiet) if states is None else states
    by_key = {t.key: t for t in tasks}
    futures, records = {}, {}
    for task in tasks:
        state, detail = states[task.key]
        if state == "done":
            records[task.key] = _reused(task, detail)
            continue
        upstream = [futures[d] for d in task.deps if d in futures]
        # workers print one plain line per epoch (no bars: several workers share the terminal or the log)
        futures[task.key] = client.submit(execute_task, task, by_key, threads, "lines" if progress else False,
                                          *upstream,
                                          key=f"brainres-{task.kind}-{task.hash[:16]}", pure=False)
    if futures and dashboard and "dashboard" in client.scheduler_info().get("services", {}):
        _say(f"dask dashboard: {client.dashboard_link}", quiet)
    _say(f"{len(records)} of {len(tasks)} tasks finished earlier; {len(futures)} submitted", quiet)
    done = len(records)
    for future in as_completed(list(futures.values())):
        record = future.result()  # re-raises a task's error here
        if states[record["task"]][0] == "changed":
            record["note"] = f"ran again: {states[record['task']][1]}"
        records[record["task"]] = record
        done += 1
        _say(f"[{done}/{len(tasks)}] {record['task']}: done in {record['seconds']:.1f} s"
             + (f"; not estimable: {record['not_estimable']}" if "not_estimable" in record else ""), quiet)
    return [records[t.key] for t in tasks]


def make_client(executor: str, *, workers: int = 2, scheduler: str | None = None, slurm: dict | None = None,
                threads: int = 1, dashboard: bool = False):
    """A Dask client for ``executor`` (and the cluster to close, if we started one)."""
    from distributed import Client, LocalCluster

    if executor == "scheduler":
        if not scheduler:
            raise EngineError("the 'scheduler' executor needs an address, e.g. tcp://127.0.0.1:8786")
        try:
            return Client(scheduler, timeout="20s"), None
        except OSError as err:
            raise EngineError(f"cannot reach the Dask scheduler at {scheduler}: {err}") from None
    if executor == "local":
        # The dashboard starts only when asked for; the scheduler's own HTTP routes (health, metrics)
        # bind a free local port rather than 8787.
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, silence_logs=logging.ERROR,
                               scheduler_kwargs={"dashboard": bool(dashboard and _has_bokeh()),
                                                 "dashboard_address": "127.0.0.1:0"})
        return Client(cluster), cluster
    if executor == "slurm":
        cluster = slurm_cluster(slurm or {}, threads)
        return Client(cluster), cluster
    raise EngineError(f"unknown executor {executor!r}; use in-process, local, scheduler or slurm")


def slurm_cluster(options: dict, threads_per_task: int = 1):
    """A ``dask_jobqueue.SLURMCluster`` from the pipeline's ``[run.slurm]`` table, scaled to ``jobs``.

    Each job runs ``cores // threads_per_task`` worker processes that take one
    task at a time (``--nthreads 1``); every task uses ``threads_per_task``
    torch threads, so a job's cores are used without oversubscription.
    """
    from dask_jobqueue import SLURMCluster

    options = dict(options)
    jobs = int(options.pop("jobs", 1))
    cores = int(options.get("cores", 1))
    options.setdefault("processes", max(1, cores // threads_per_task))
    options["worker_extra_args"] = [*options.get("worker_extra_args", []), "--nthreads", "1"]
    cluster = SLURMCluster(**options)
    cluster.scale(jobs=jobs)
    return cluster


def _has_bokeh() -> bool:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True


def run_tasks(tasks: list[Task], *, executor: str = "in-process", workers: int = 2, threads: int = 1,
              scheduler: str | None = None, slurm: dict | None = None, progress: bool = True,
              quiet: bool = False, dashboard: bool = False) -> list[dict]:
    """Run the tasks with the chosen executor; returns one record per task."""
    states = triage(tasks, quiet=quiet)
    if executor == "in-process" or all(state == "done" for state, _ in states.values()):  # no cluster needed
        return run_in_process(tasks, threads=threads, progress=progress, quiet=quiet, states=states)
    client, cluster = make_client(executor, workers=workers, scheduler=scheduler, slurm=slurm, threads=threads,
                                  dashboard=dashboard)
    try:
        return run_on_dask(tasks, client, threads=threads, quiet=quiet, states=states, progress=progress,
                           dashboard=dashboard)
    finally:
        close_cluster(client, cluster)


def close_cluster(client, cluster) -> None:
    """Close a client and the cluster we started, without the nannies' "still alive ... killing" noise.

    The client goes first, which releases every result it held, so no worker has
    data to hand over; then the cluster. A worker that is slow to exit (a loaded
    machine) is stopped by its nanny, which is expected at this point and not
    worth a warning. (Retiring the workers instead makes them copy their results
    to each other first, and on a loaded machine that ends in stream errors.)
    """
    import logging

    client.close()
    if cluster is not None:
        nanny = logging.getLogger("distributed.nanny")
        level = nanny.level
        nanny.setLevel(logging.ERROR)
        try:
            cluster.close()
        finally:
            nanny.setLevel(level)
