"""Sparse human data at the scale of CIFAR-10H (``pytest -m benchmark -s tests/benchmarks/test_bench_sparse.py``).

1. The seed x stimulus x subject Spearman bootstrap (dual-corrected, 7
   bootstraps per resample) on 10 seeds x 10,000 stimuli with 500,000 trials
   of 2,571 subjects (50 per stimulus), 10,000 resamples, through the sparse
   path; the peer in the same run is the dense path (the 2,571 x 10,000
   matrix with NaN) on the same data, timed on fewer resamples and
   extrapolated per resample. Both must give the same interval on the
   resamples they share. The sparse path runs again on one thread: its time
   is then about the CPU time the bootstrap needs, which a busy machine
   changes less than the wall time of two threads.
2. A full-size synthetic ``cifar10h-raw.zip`` (514,200 trials in the upstream
   schema) read by ``read_cifar10h_raw`` and compared with ``time-vs-rt`` at
   its defaults (10,000 resamples, 1,000 splits, the mixed model).

Each runs in a fresh process so that its peak resident memory is its own.
Nothing asserts a time; figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.benchmark

_DESIGN = r"""
import json, resource, sys, time
import numba
import numpy as np
from brainres.stats import bootstrap_correlation
from brainres.stats.sparse import SparseHuman

rng = np.random.default_rng(0)
n_subjects, n_stimuli, per_stimulus, n_seeds = 2571, 10_000, 50, 10
subject = np.concatenate([rng.choice(n_subjects, per_stimulus, replace=False) for _ in range(n_stimuli)])
stimulus = np.repeat(np.arange(n_stimuli), per_stimulus)
signal = rng.standard_normal(n_stimuli)
values = 0.3 * signal[stimulus] + 0.25 * rng.standard_normal(n_subjects)[subject] + rng.standard_normal(subject.size)
model = signal + 0.8 * rng.standard_normal((n_seeds, n_stimuli))
human = SparseHuman(subject, stimulus, values, subjects=np.arange(n_subjects), stimulus_ids=np.arange(n_stimuli))
if sys.argv[1] == "dense":
    human = human.to_dense()
n_resamples = int(sys.argv[2])
bootstrap_correlation(model[:, :50], human[:, :50] if sys.argv[1] == "dense" else
                      human.sel(stimulus_id=np.arange(50).astype(str)), n_resamples=20, seed=1)  # kernels loaded
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started, cpu_started = time.perf_counter(), time.process_time()
result = bootstrap_correlation(model, human, n_resamples=n_resamples, seed=0)
seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "threads": numba.get_num_threads(),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "before_rss_mib": before / 1024, "n_trials": int(subject.size), "estimate": result.estimate,
                  "ci": [result.ci_low, result.ci_high], "method": result.method}))
"""


def _child(script, *args, timeout=3600, threads=None):
    env = dict(os.environ, **({"NUMBA_NUM_THREADS": str(threads)} if threads else {}))
    run = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                         timeout=timeout, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def _load_avg():
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def test_three_factor_spearman_bootstrap_at_cifar10h_scale():
    load_before = _load_avg()
    sparse = _child(_DESIGN, "sparse", 10_000)
    # One thread: its time is the CPU time the bootstrap needs, whatever else shares the machine.
    one_thread = _child(_DESIGN, "sparse", 10_000, threads=1)
    dense_resamples = 200
    dense = _child(_DESIGN, "dense", dense_resamples)
    same = _child(_DESIGN, "sparse", dense_resamples)
    per_resample = {"sparse": sparse["seconds"] / 10_000, "dense": dense["seconds"] / dense_resamples}
    print(f"\n[benchmark] seed x stimulus x subject Spearman bootstrap, dual-corrected: 10 seeds x 10,000 stimuli, "
          f"2,571 subjects, {sparse['n_trials']:,} trials (50 per stimulus), load average {load_before} "
          f"(1/5/15 min) before, {_load_avg()} after\n"
          f"  sparse path, 10,000 resamples: {sparse['seconds']:.2f} s ({sparse['threads']} threads, "
          f"{sparse['cpu_seconds']:.2f} s CPU), peak resident memory "
          f"{sparse['peak_rss_mib']:.0f} MiB ({sparse['before_rss_mib']:.0f} MiB before the bootstrap) "
          f"(goals: under 10 s, under 2 GiB)\n"
          f"  the same on 1 thread: {one_thread['seconds']:.2f} s ({one_thread['cpu_seconds']:.2f} s CPU)\n"
          f"  dense path (2,571 x 10,000 matrix), {dense_resamples} resamples: {dense['seconds']:.2f} s, "
          f"peak {dense['peak_rss_mib']:.0f} MiB; extrapolated to 10,000: {per_resample['dense'] * 10_000:.0f} s\n"
          f"  time per resample, dense / sparse: {per_resample['dense'] / per_resample['sparse']:.0f}x\n"
          f"  same {dense_resamples} resamples, sparse vs dense interval: {same['ci']} vs {dense['ci']}")
    assert same["ci"] == pytest.approx(dense["ci"], abs=1e-10)
    assert one_thread["ci"] == sparse["ci"]  # the same numbers for any number of threads
    assert sparse["ci"][0] < sparse["estimate"] < sparse["ci"][1]


_TIME_VS_RT = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from test_sparse_time_vs_rt import model_export, write_cifar10h_raw
from brainres.compare import compare
from brainres.datasets.cifar10 import read_cifar10h_raw

started = time.perf_counter()
difficulty = write_cifar10h_raw(sys.argv[2])
written = time.perf_counter() - started
started = time.perf_counter()
trials = read_cifar10h_raw(sys.argv[2])
read = time.perf_counter() - started
model = model_export(difficulty)
started = time.perf_counter()
result = compare("time-vs-rt", model, trials, seed=0)
seconds = time.perf_counter() - started
rows = {r.extra["label"]: [r.estimate, r.ci_low, r.ci_high] for r in result.results}
print(json.dumps({"write": written, "read": read, "compare": seconds, "n_trials": int(trials.sizes["trial"]),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rows": rows,
                  "sparse": "Sparse design" in result.methods}))
"""


def test_time_vs_rt_on_a_full_size_cifar10h_raw_file(tmp_path):
    load_before = _load_avg()
    out = _child(_TIME_VS_RT, Path(__file__).parents[1] / "stats", tmp_path / "cifar10h-raw.zip")
    print(f"\n[benchmark] time-vs-rt on a synthetic cifar10h-raw.zip (upstream schema): {out['n_trials']:,} trials "
          f"after removing attention checks, 2,571 annotators, 10,000 images, 10 model seeds; defaults "
          f"(10,000 resamples, 1,000 splits, mixed model); load average {load_before} before, {_load_avg()} after\n"
          f"  read_cifar10h_raw: {out['read']:.1f} s; time-vs-rt: {out['compare']:.1f} s; peak resident memory "
          f"{out['peak_rss_mib']:.0f} MiB (writing the file: {out['write']:.1f} s)")
    for label, (estimate, low, high) in out["rows"].items():
        print(f"  {label}: {estimate:.3f} [{low:.3f}, {high:.3f}]")
    assert out["sparse"] and out["n_trials"] == 514_200
