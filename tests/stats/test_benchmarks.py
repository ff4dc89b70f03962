"""Speed of the resampling engine against its peers (run with ``pytest -m benchmark -s``).

Each benchmark times ours and the peer in the same run on the same data and
prints the ratio and our peak traced memory; nothing here asserts a time.
"""

import time
import tracemalloc

import numpy as np
import pytest
from scipy import stats as sps

from brainres.stats.correlate import bootstrap_correlation
from brainres.stats.rsa import bootstrap_rdm_comparison, rdm_vectors

pytestmark = pytest.mark.benchmark


def _timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def _peak_memory(function):
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _spearman_rows(a, b, axis=-1):
    """Vectorised Spearman over the last axis, as a scipy user would write it."""
    rank_a = sps.rankdata(a, axis=-1)
    rank_b = sps.rankdata(b, axis=-1)
    rank_a = rank_a - rank_a.mean(axis=-1, keepdims=True)
    rank_b = rank_b - rank_b.mean(axis=-1, keepdims=True)
    return (rank_a * rank_b).sum(axis=-1) / np.sqrt((rank_a**2).sum(axis=-1) * (rank_b**2).sum(axis=-1))


def test_two_factor_spearman_bootstrap_against_scipy():
    rng = np.random.default_rng(0)
    n_seeds, n_stimuli, n_resamples = 10, 2000, 10_000
    signal = rng.normal(size=n_stimuli)
    model = signal + rng.normal(size=(n_seeds, n_stimuli))
    human = signal + rng.normal(size=n_stimuli)

    # The compiled kernels load (or compile) on first use in a process; time that apart.
    _, time_first = _timed(lambda: bootstrap_correlation(model[:, :50], human[:50], n_resamples=100, seed=1))
    _timed(lambda: bootstrap_correlation(model[:, :50], human[:50], n_resamples=100, seed=1, resample=["stimulus"],
                                         interval="bca"))
    ours_two, time_two = _timed(lambda: bootstrap_correlation(model, human, n_resamples=n_resamples, seed=1))
    ours_fast, time_fast = _timed(lambda: bootstrap_correlation(model, human, n_resamples=n_resamples, seed=1,
                                                                correction="none", interval="percentile"))
    ours_one, time_one = _timed(lambda: bootstrap_correlation(model, human, n_resamples=n_resamples, seed=1,
                                                              resample=["stimulus"], interval="bca"))
    subjects = signal + 3 * rng.normal(size=(10, n_stimuli))
    bootstrap_correlation(model[:, :50], subjects[:, :50], n_resamples=100, seed=1)
    ours_three, time_three = _timed(lambda: bootstrap_correlation(model, subjects, n_resamples=n_resamples, seed=1))
    theirs, time_scipy = _timed(lambda: sps.bootstrap((model.mean(axis=0), human), _spearman_rows, paired=True,
                                                      vectorized=True, n_resamples=n_resamples, method="BCa",
                                                      rng=np.random.default_rng(1)))
    peak = _peak_memory(lambda: bootstrap_correlation(model, human, n_resamples=n_resamples, seed=1))
    print(
        f"\n[benchmark] Spearman bootstrap, {n_seeds} seeds x {n_stimuli} stimuli, {n_resamples} resamples\n"
        f"  ours seed x stimulus (dual-corrected: 3 bootstraps, bias-corr.):{time_two:.2f} s\n"
        f"  ours seed x stimulus (uncorrected, percentile):                 {time_fast:.2f} s\n"
        f"  ours stimulus only (BCa):                                        {time_one:.2f} s\n"
        f"  ours seed x stimulus x subject (10 subjects, dual-corrected: 7): {time_three:.2f} s\n"
        f"  scipy.stats.bootstrap stimulus only (BCa, vectorised):           {time_scipy:.2f} s\n"
        f"  speed-up vs scipy: two-factor {time_scipy / time_two:.1f}x, uncorrected {time_scipy / time_fast:.1f}x, "
        f"stimulus-only {time_scipy / time_one:.1f}x\n"
        f"  peak traced memory (two-factor): {peak / 2**20:.1f} MiB\n"
        f"  first call in this process (loads the compiled kernels, not counted above): {time_first:.2f} s\n"
        f"  CIs: ours stimulus-only [{ours_one.ci_low:.4f}, {ours_one.ci_high:.4f}], scipy "
        f"[{theirs.confidence_interval.low:.4f}, {theirs.confidence_interval.high:.4f}]"
    )
    assert ours_two.n_resamples == ours_three.n_resamples == n_resamples


@pytest.mark.needs_data
def test_rdm_bootstrap_against_rsatoolbox(kriegeskorte):
    from rsatoolbox.inference import eval_bootstrap_pattern
    from rsatoolbox.model import ModelFixed
    from rsatoolbox.rdm import RDMs

    monkey, _, per_subject = kriegeskorte
    n_resamples = 1000
    bootstrap_rdm_comparison(monkey, per_subject, resample=["stimulus"], n_resamples=10, seed=0)  # load kernels
    ours, time_ours = _timed(lambda: bootstrap_rdm_comparison(monkey, per_subject, method="spearman",
                                                              resample=["stimulus"], n_resamples=n_resamples, seed=0))
    np.random.seed(0)
    model = ModelFixed("mIT", RDMs(rdm_vectors(monkey)))
    data = RDMs(rdm_vectors(per_subject))
    theirs, time_theirs = _timed(lambda: eval_bootstrap_pattern(model, data, method="spearman", N=n_resamples,
                                                                boot_noise_ceil=False))
    peak = _peak_memory(lambda: bootstrap_rdm_comparison(monkey, per_subject, method="spearman",
                                                         resample=["stimulus"], n_resamples=n_resamples, seed=0))
    values = theirs.evaluations[:, 0]
    print(
        f"\n[benchmark] 92-image RDM comparison (Spearman, mIT vs 8 human IT RDMs), {n_resamples} stimulus resamples\n"
        f"  ours: {time_ours:.2f} s   rsatoolbox eval_bootstrap_pattern: {time_theirs:.2f} s   "
        f"speed-up {time_theirs / time_ours:.1f}x\n"
        f"  peak traced memory (ours): {peak / 2**20:.1f} MiB\n"
        f"  bootstrap SE: ours {ours.extra['bootstrap_se']:.4f}, rsatoolbox {np.nanstd(values, ddof=1):.4f}"
    )
    assert ours.n_resamples == n_resamples
