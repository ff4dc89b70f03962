"""Wall time of a 6-task sweep in-process versus on a local Dask cluster (2 workers), same run.

Run with ``pytest -m benchmark -s tests/benchmarks/test_bench_engine.py``; figures go to docs/benchmarks.md.
"""

import os
import time

import pytest

from brainres.pipeline.config import parse_pipeline
from brainres.pipeline.run import run_pipeline

SWEEP = {  # 3 seeds x (train + export) = 6 tasks on the 1,797 digits
    "run": {"name": "sweep"},
    "model": [{"name": "small", "family": "lattice", "data": "digits", "seeds": [0, 1, 2],
               "lattice": {"max_channels": 8, "max_layers": 2, "max_steps": 4},
               "training": {"epochs": 12, "batch_size": 32}}],
    "export": [{"model": "small", "stimuli": "digits", "occlusion": [0.0, 0.25, 0.5]}],
}


@pytest.mark.benchmark
def test_sweep_in_process_vs_local_cluster(tmp_path):
    pipeline = parse_pipeline(SWEEP, allow_empty=True)  # training and export only: no comparison
    timings = {}
    for executor in ("in-process", "local"):
        started = time.perf_counter()
        run_pipeline(pipeline, tmp_path / executor, executor=executor, workers=2, progress=False, quiet=True)
        timings[executor] = time.perf_counter() - started
    ratio = timings["in-process"] / timings["local"]
    print(f"\n6-task sweep on {os.cpu_count()} cores: in-process {timings['in-process']:.1f} s, "
          f"local cluster (2 workers x 1 thread) {timings['local']:.1f} s, speed-up {ratio:.2f}x")
    assert (tmp_path / "local" / "report.html").exists()
