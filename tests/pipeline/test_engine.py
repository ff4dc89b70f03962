"""Running a pipeline's tasks on Dask: a local cluster, and separate processes with a worker killed mid-run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import xarray as xr

from brainres.data.io import read_netcdf
from brainres.pipeline.config import parse_pipeline
from brainres.pipeline.run import run_pipeline
from brainres.testing import toy_pipeline

pytest.importorskip("distributed")

# Long enough training (about a second a seed) for the killer below to catch a worker in it.
PIPELINE = toy_pipeline(epochs=8, comparisons=("time-vs-rt", "occlusion-recurrence"))


@pytest.fixture(scope="module", autouse=True)
def toy_plugin(toy_datasets):
    """Every test here reads the toy dataset (tests/conftest.py)."""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("in-process")
    run_pipeline(parse_pipeline(PIPELINE), run_dir, executor="in-process", progress=False, quiet=True)
    return run_dir


def outputs(run_dir):
    """Every number a run produced: the results table and each export file."""
    results = (run_dir / "results.csv").read_text()
    exports = {p.parent.name: read_netcdf(p) for p in sorted(run_dir.glob("exports/*/measures.nc"))}
    return results, exports


def assert_same_outputs(run_dir, reference):
    results, exports = outputs(run_dir)
    expected_results, expected_exports = outputs(reference)
    assert results == expected_results
    assert exports.keys() == expected_exports.keys() and len(exports) == 2
    for name in exports:
        xr.testing.assert_identical(exports[name], expected_exports[name])


def test_local_cluster_gives_the_in_process_results_and_ends_cleanly(reference, tmp_path, capfd):
    run_pipeline(parse_pipeline(PIPELINE), tmp_path, executor="local", workers=2, progress=True, quiet=False)
    assert_same_outputs(tmp_path, reference)
    statuses = [t["status"] for t in json.loads((tmp_path / "provenance.json").read_text())["tasks"]]
    assert statuses == ["ran"] * 6
    printed = capfd.readouterr()
    output = printed.out + printed.err
    # plain progress lines from the workers (epoch N of M), no bars, no dashboard unless asked, no nanny noise
    assert "epoch 8/8" in output.replace(" of ", "/") and "\r" not in output
    assert "dashboard" not in output and "still alive" not in output and "killing" not in output.lower()


def _start(*command, log):
    return subprocess.Popen([sys.executable, "-m", *command], stdout=log, stderr=subprocess.STDOUT,
                            env=os.environ.copy(), start_new_session=True)


def test_separate_scheduler_and_workers_survive_a_killed_worker(reference, tmp_path):
    from distributed import Client

    scheduler_file = tmp_path / "scheduler.json"
    log = open(tmp_path / "cluster.log", "w")
    processes = [_start("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                        "--no-dashboard", "--scheduler-file", str(scheduler_file), log=log)]
    try:
        for _ in range(100):
            if scheduler_file.exists():
                break
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        workers = {}
        for name in ("w0", "w1"):
            workers[name] = _start("distributed.cli.dask_worker", address, "--name", name, "--nthreads", "1",
                                   "--nworkers", "1", "--no-dashboard", log=log)
        processes += list(workers.values())
        with Client(address, timeout="30s") as watcher:
            watcher.wait_for_workers(2, timeout=60)
            killed = []

            def kill_a_busy_worker():
                # as soon as a training task is running somewhere, kill that worker
                deadline = time.time() + 120
                while time.time() < deadline and not killed:
                    info = watcher.scheduler_info()["workers"]
                    for address_, keys in watcher.processing().items():
                        if any("brainres-train" in str(k) for k in keys):
                            name = info[address_]["name"]
                            os.killpg(workers[name].pid, signal.SIGKILL)
                            killed.append(name)
                            return
                    time.sleep(0.01)

            import threading

            killer = threading.Thread(target=kill_a_busy_worker)
            killer.start()
            run_pipeline(parse_pipeline(PIPELINE), tmp_path / "run", scheduler=address, progress=False, quiet=True)
            killer.join()
        assert killed, "no worker was killed: the test did not exercise the failure"
        assert_same_outputs(tmp_path / "run", reference)
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        log.close()


def test_slurm_configuration_becomes_a_job_script():
    pytest.importorskip("dask_jobqueue")
    from brainres.pipeline.engine import slurm_cluster

    pipeline = parse_pipeline({**PIPELINE, "run": {"executor": "slurm", "threads_per_task": 2, "slurm": {
        "queue": "cpu", "cores": 4, "memory": "8GB", "walltime": "01:00:00", "jobs": 0,
        "scheduler_options": {"host": "127.0.0.1"}}}})  # loopback only here; a real cluster needs its interface
    cluster = slurm_cluster(pipeline.slurm, pipeline.threads_per_task)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -p cpu" in script and "#SBATCH -t 01:00:00" in script and "#SBATCH --cpus-per-task=4" in script
    assert "--nworkers 2" in script and script.rstrip().endswith("--nthreads 1")  # 2 processes x 2 torch threads
