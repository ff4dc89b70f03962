"""First use of the compiled kernels: the numpy twin, the background compile and the time of a first call.

The numpy implementation in :mod:`brainres.stats.compiled` serves calls while
numba's on-disk cache lacks a kernel (a fresh installation); these tests check
that it gives the compiled kernels' numbers, that a fresh process neither
compiles in the foreground nor waits, and (slow) that the background process
fills the cache so later calls run compiled. The benchmark times a first call
in a fresh process with an empty cache, the old way (compile in the
foreground) and the new way, in the same run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from brainres.stats import compiled
from brainres.stats.resample import draw_counts


@pytest.fixture
def compiled_mode(monkeypatch):
    monkeypatch.setenv("BRAINRES_KERNELS", "compiled")


def _both(monkeypatch, function, *args):
    """``function(*args)`` with the compiled kernels and with the numpy twin."""
    monkeypatch.setenv("BRAINRES_KERNELS", "compiled")
    fast = function(*args)
    monkeypatch.setenv("BRAINRES_KERNELS", "numpy")
    twin = function(*args)
    return fast, twin


def _plan(values):
    values = np.atleast_2d(np.asarray(values, dtype=float))
    order = np.argsort(values, axis=1, kind="stable").astype(np.int32)
    return np.take_along_axis(values, order, axis=1), order


def test_numpy_draws_equal_the_compiled_stream(monkeypatch):
    for key, n, first, rows in ((1, 7, 0, 5), (2**63 + 12345, 2000, 37, 300), (99, 1, 3, 4)):
        fast, twin = _both(monkeypatch, compiled.bootstrap_counts, np.uint64(key), n, first, rows)
        np.testing.assert_array_equal(fast, twin)
        assert twin.dtype == np.int32 and (twin.sum(axis=1) == n).all()


def test_numpy_ranks_and_correlations_equal_the_compiled_kernels(monkeypatch):
    rng = np.random.default_rng(3)
    n, batch = 90, 40
    x = np.round(2 * rng.normal(size=(batch, n)))  # many ties
    y = rng.normal(size=(1, n))
    weights = rng.integers(0, 3, size=(batch, n)).astype(float)
    x_sorted, x_order = _plan(x)
    y_sorted, y_order = _plan(y)
    fast, twin = _both(monkeypatch, compiled.spearman_rows, x_sorted, x_order, y_sorted, y_order, weights)
    np.testing.assert_allclose(twin, fast, rtol=0, atol=1e-10)
    fast, twin = _both(monkeypatch, compiled.midranks_rows, x_sorted, x_order, weights)
    np.testing.assert_allclose(twin, fast, rtol=0, atol=1e-10)
    values = rng.normal(size=(6, 50))
    values[2, 5] = np.nan
    values[3] = np.round(values[3])
    fast, twin = _both(monkeypatch, compiled.argsort_rows, values)
    np.testing.assert_array_equal(np.take_along_axis(values, fast, 1), np.take_along_axis(values, twin, 1))


def test_numpy_rdm_pairs_equal_the_compiled_kernel(monkeypatch):
    rng = np.random.default_rng(4)
    n_stimuli, k = 12, 3
    rows, cols = (a.astype(np.int32) for a in np.triu_indices(n_stimuli, 1))
    model = np.round(rng.normal(size=rows.size), 1)
    data = rng.normal(size=(k, rows.size))
    model_sorted, model_order = _plan(model)
    data_sorted, data_order = _plan(data)
    stimulus_weights = draw_counts(5, n_stimuli, 30) / n_stimuli
    fast, twin = _both(monkeypatch, compiled.spearman_pairs, model_sorted[0], model_order[0], data_sorted,
                       data_order, stimulus_weights, rows, cols)
    np.testing.assert_allclose(twin, fast, rtol=0, atol=1e-10)


@pytest.mark.parametrize("missing", [False, True])
def test_numpy_crossed_pass_equals_the_compiled_one(monkeypatch, missing):
    from brainres.stats.correlate import correlation_statistic

    rng = np.random.default_rng(11)
    model = np.round(2 * rng.normal(size=(6, 80)))
    human = np.round(4 * rng.normal(size=(4, 80))) / 4
    if missing:
        human[:, 5] = np.nan
        human[0, 9] = np.nan
    counts = {"seed": draw_counts(1, 6, 40), "stimulus": draw_counts(2, 80, 40), "subject": draw_counts(3, 4, 40)}
    subsets = [frozenset(s) for s in (("seed",), ("stimulus",), ("subject",), ("seed", "stimulus"),
                                       ("seed", "subject"), ("stimulus", "subject"), ("seed", "stimulus", "subject"))]
    results = []
    for mode in ("compiled", "numpy"):
        monkeypatch.setenv("BRAINRES_KERNELS", mode)
        statistic, _ = correlation_statistic(model, human)
        results.append(statistic.evaluate_subsets(counts, subsets))
    for subset in subsets:
        np.testing.assert_allclose(results[1][subset], results[0][subset], rtol=0, atol=1e-10, err_msg=str(subset))
    # Only some factors resampled (the others pass zero rows of counts).
    for mode in ("compiled", "numpy"):
        monkeypatch.setenv("BRAINRES_KERNELS", mode)
        statistic, _ = correlation_statistic(model, human)
        results.append(statistic.evaluate_subsets({"stimulus": counts["stimulus"]}, [frozenset({"stimulus"})]))
    np.testing.assert_allclose(results[3][frozenset({"stimulus"})], results[2][frozenset({"stimulus"})], atol=1e-10)


def test_bootstraps_are_the_same_with_either_implementation(monkeypatch):
    from brainres.stats.correlate import bootstrap_correlation
    from brainres.stats.rsa import bootstrap_rdm_comparison

    rng = np.random.default_rng(0)
    signal = rng.normal(size=60)
    model = signal + rng.normal(size=(5, 60))
    human = signal + 2 * rng.normal(size=(6, 60))
    fast, twin = _both(monkeypatch, lambda: bootstrap_correlation(model, human, n_resamples=300, seed=1))
    assert twin.ci_low == pytest.approx(fast.ci_low, abs=1e-10) and twin.ci_high == pytest.approx(fast.ci_high, abs=1e-10)
    a = rng.normal(size=(15, 15))
    a = a + a.T
    np.fill_diagonal(a, 0)
    b = a[None] + rng.normal(size=(3, 15, 15))
    b = b + b.transpose(0, 2, 1)
    for k in range(3):
        np.fill_diagonal(b[k], 0)
    fast, twin = _both(monkeypatch, lambda: bootstrap_rdm_comparison(a, b, n_resamples=200, seed=2))
    assert twin.extra["bootstrap_se"] == pytest.approx(fast.extra["bootstrap_se"], abs=1e-10)


def test_unknown_mode_is_refused(monkeypatch):
    monkeypatch.setenv("BRAINRES_KERNELS", "fastest")
    with pytest.raises(ValueError, match="BRAINRES_KERNELS"):
        compiled.bootstrap_counts(1, 3, 0, 2)


_FIRST_CALL = textwrap.dedent("""
    import json, sys, time
    started = time.perf_counter()
    import numpy as np
    from brainres.stats import compiled
    from brainres.stats.correlate import bootstrap_correlation
    imported = time.perf_counter() - started
    rng = np.random.default_rng(0)
    signal = rng.normal(size=160)
    model = signal + rng.normal(size=(10, 160))
    human = signal + 3 * rng.normal(size=(10, 160))
    cached_before = compiled.kernels_cached()
    started = time.perf_counter()
    result = bootstrap_correlation(model, human, n_resamples=int(sys.argv[1]), seed=1)
    first = time.perf_counter() - started
    started = time.perf_counter()
    bootstrap_correlation(model, human, n_resamples=int(sys.argv[1]), seed=1)
    second = time.perf_counter() - started
    in_memory = {name: bool(kernel.overloads) for name, kernel, _ in compiled._examples()}
    process = compiled._warm_up["process"]
    if sys.argv[2] == "stop" and process is not None and process.poll() is None:
        process.terminate()  # its cache is a temporary folder: no need to finish
    print(json.dumps({"import": imported, "first": first, "second": second, "ci": [result.ci_low, result.ci_high],
                      "cached_before": cached_before, "compiled_in_process": in_memory}))
""")


def _fresh_process(cache, mode, n_resamples=2000, timeout=1800, background="stop"):
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(cache), BRAINRES_KERNELS=mode)
    run = subprocess.run([sys.executable, "-c", _FIRST_CALL, str(n_resamples), background], env=environment,
                         capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_first_call_with_an_empty_cache_compiles_nothing_in_the_foreground(tmp_path):
    # A three-factor bootstrap (10 seeds x 160 stimuli x 10 subjects, 2,000 resamples,
    # 7 bootstraps for the dual correction), as the time-vs-rt comparison runs it.
    out = _fresh_process(tmp_path / "numba-cache", "auto")
    assert not any(out["cached_before"].values())
    assert not any(out["compiled_in_process"].values()), out["compiled_in_process"]
    print(f"\nfirst call in a fresh process with an empty numba cache: {out['first']:.2f} s "
          f"(import {out['import']:.2f} s, second call {out['second']:.2f} s)")


@pytest.mark.slow
def test_background_compile_fills_the_cache_and_later_processes_run_compiled(tmp_path):
    cache = tmp_path / "numba-cache"
    first = _fresh_process(cache, "auto", background="keep")
    # The background process started by the first one compiles every kernel into the cache.
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(cache), BRAINRES_KERNELS="compiled")
    subprocess.run([sys.executable, "-m", "brainres.stats.compiled"], env=environment, check=True, timeout=1800,
                   capture_output=True)  # waits for the lock the background process holds, then loads
    later = _fresh_process(cache, "auto")
    assert all(later["cached_before"].values()), later["cached_before"]
    assert later["compiled_in_process"]["crossed_spearman"] and later["compiled_in_process"]["bootstrap_counts"]
    assert later["ci"] == pytest.approx(first["ci"], abs=1e-10)


@pytest.mark.benchmark
def test_first_use_time_before_and_after(tmp_path):
    """A first bootstrap in a fresh process with an empty cache: compiling in the foreground vs the numpy twin."""
    before = _fresh_process(tmp_path / "compile-first", "compiled")
    started = time.perf_counter()
    after = _fresh_process(tmp_path / "numpy-first", "auto")
    wall = time.perf_counter() - started
    print(f"\n[benchmark] first three-factor Spearman bootstrap (10 seeds x 160 stimuli x 10 subjects, 2,000 "
          f"resamples) in a fresh process, empty numba cache\n"
          f"  compile in the foreground (BRAINRES_KERNELS=compiled, the old behaviour): first call "
          f"{before['first']:.2f} s, second {before['second']:.3f} s, import {before['import']:.2f} s\n"
          f"  numpy twin + background compile (default): first call {after['first']:.2f} s, second "
          f"{after['second']:.3f} s, import {after['import']:.2f} s (whole process {wall:.1f} s)\n"
          f"  first-call speed-up: {before['first'] / after['first']:.1f}x")
    assert after["ci"] == pytest.approx(before["ci"], abs=1e-10)
