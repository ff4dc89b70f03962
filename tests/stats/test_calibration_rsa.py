"""Coverage of the per-step interval ``latents-vs-neural`` reports, on simulated studies with a known truth.

Slow (kept out of the default run): ``pytest -m slow -s tests/stats/test_calibration_rsa.py``; a smoke run with
fewer studies per cell: ``BRAINRES_CALIBRATION_STUDIES=5`` (the coverage assertions then mean nothing). The
simulation, the designs and the estimand are those of ``docs/experiments/calibrate_latents_vs_neural.py`` (which
prints the table in docs/statistics.md): each simulated study goes through the comparison's own ``run`` and each
step's interval is scored against the estimand the row states, the mean over the population of subjects of the
comparison of the model step's RDM with a subject's RDM, over stimulus sets of the study's size.
"""

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

N_STUDIES = int(os.environ.get("BRAINRES_CALIBRATION_STUDIES", "500"))


def _script(name):
    path = Path(__file__).resolve().parents[2] / "docs" / "experiments" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CALIBRATION = _script("calibrate_latents_vs_neural")
# The interval the comparison reports is claimed at 93-97 %. The t interval in rsatoolbox's form (bootstrap mean
# +- t(min(n_subjects, n_stimuli) - 1) x the dual-corrected SE) is a peer, scored and printed, not claimed.
CLAIMED = ("percentile (shipped)",)
# With no relation (step 1) the shipped interval is claimed only not to under-cover: it covered 0.998 [0.989,
# 1.000] of 500 studies at 3 x 92 x 4, 1.6 times wider than its estimates' spread (docs/statistics.md).
UNRELATED_STEP = 1


@pytest.fixture(scope="module")
def population():
    return CALIBRATION.Population()


@pytest.fixture(scope="module")
def true_values(population):
    """The true values by (seeds, stimuli, method): they do not depend on the number of subjects."""
    known = {}

    def truth(n_seeds, n_stimuli, method):
        if (n_seeds, n_stimuli, method) not in known:
            # 1,000 stimulus sets (MC SE under 0.001) from 50 studies a cell; fewer for a smoke run
            known[n_seeds, n_stimuli, method] = CALIBRATION.truths(
                population, n_seeds=n_seeds, n_stimuli=n_stimuli, method=method,
                n_sets=min(CALIBRATION.TRUTH_SETS, 20 * N_STUDIES))
        return known[n_seeds, n_stimuli, method]

    return truth


@pytest.mark.parametrize("cell", range(len(CALIBRATION.CELLS)))
def test_latents_vs_neural_interval_covers_the_population_subject_mean(cell, population, true_values):
    design = CALIBRATION.CELLS[cell]
    truth = true_values(design["n_seeds"], design["n_stimuli"], design["method"])
    rows, diagnostics = CALIBRATION.calibrate(studies=N_STUDIES, n_resamples=999, population=population,
                                              truth=truth, **design)
    print("\n[calibration] " + CALIBRATION.format_diagnostics(design, diagnostics))
    assert {row["step"] for row in rows} == set(CALIBRATION.STEPS)
    for row in rows:
        print("[calibration] " + CALIBRATION.format_row(row))
        assert row["studies"] == N_STUDIES
        if row["interval"] in CLAIMED:
            # The Clopper-Pearson interval of the coverage must reach into [0.93, 0.97]: a coverage of 0.95 passes
            # with near certainty, one of 0.90 or 0.99 fails with near certainty (500 studies).
            assert row["coverage_high"] >= 0.93, row  # never below the claim
            if row["step"] != UNRELATED_STEP:
                assert row["coverage_low"] <= 0.97, row


def test_the_truth_of_an_unrelated_step_is_zero_and_of_a_related_step_is_not(population):
    # At step 1 model and neural RDMs are independent, so the estimand is 0 by symmetry: the Monte Carlo truth
    # must find it (a check of the truth's computation, not of the interval); at step 2 it must be clearly above.
    truth = CALIBRATION.truths(population, n_seeds=3, n_stimuli=92, method="spearman", n_sets=200)
    (null, null_se), (related, related_se) = truth[1], truth[2]
    assert abs(null) < 4 * null_se
    assert related > 0.1 and related_se < 0.01


def test_the_scored_interval_is_the_one_the_comparison_reports(population):
    # comparison_rows wraps the comparison's bootstrap to keep its SE and bias: the rows must still be the
    # comparison's own, and the rsatoolbox-form interval must be centred on the bootstrap mean.
    from brainres.comparisons import latents_vs_neural

    model, data = CALIBRATION.study(np.random.default_rng(3), population, n_seeds=3, n_stimuli=40, n_subjects=4)
    out = CALIBRATION.comparison_rows(model, data, method="spearman", n_resamples=199, seed=5)
    plain = latents_vs_neural.run(model, data, method="spearman", n_resamples=199, seed=5)
    for r in plain.results:
        if r.extra.get("label", "").startswith("step"):
            kept = out["steps"][int(r.extra["step"])]
            assert (kept.estimate, kept.ci_low, kept.ci_high) == (r.estimate, r.ci_low, r.ci_high)
    assert latents_vs_neural.bootstrap_rdm_comparison.__name__ == "bootstrap_rdm_comparison"  # unwrapped again
    boot = out["bootstraps"][2]
    low, high = CALIBRATION.t_interval_rsatoolbox_form(boot, 4, 40)
    assert (low + high) / 2 == pytest.approx(boot.estimate + boot.extra["bootstrap_bias"])
    assert high - low > boot.ci_high - boot.ci_low  # t(3) = 3.18 standard errors against about 1.96
