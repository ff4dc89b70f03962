"""Coverage of every interval the comparisons report, on simulated studies with a known truth.

Slow (kept out of the default run): ``pytest -m slow -s tests/stats/test_calibration.py``; a smoke run with fewer
studies per cell: ``BRAINRES_CALIBRATION_STUDIES=5`` (the coverage assertions then mean nothing). The designs, the
simulation and the estimands are those of ``docs/experiments/calibrate_time_vs_rt.py`` (which prints the table
in docs/statistics.md); each interval is scored against the estimand it states.
"""

import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import pytest

from brainres.stats.correlate import bootstrap_correlation

pytestmark = pytest.mark.slow

N_STUDIES = int(os.environ.get("BRAINRES_CALIBRATION_STUDIES", 500))


def _population_value(method, rho):
    # Spearman's rho of a bivariate normal with Pearson correlation rho.
    return rho if method == "pearson" else 6 / math.pi * math.asin(rho / 2)


@pytest.mark.parametrize(
    "method, interval, n_subjects",
    [
        ("pearson", "bias_shifted_percentile", 1),
        ("spearman", "bias_shifted_percentile", 1),
        ("pearson", "bca", 1),
        ("pearson", "bias_shifted_percentile", 8),
        ("spearman", "bias_shifted_percentile", 8),
    ],
)
def test_crossed_bootstrap_intervals_cover_the_population_correlation(simulate, method, interval, n_subjects):
    rho = 0.5
    truth = _population_value(method, rho)
    rng = np.random.default_rng(2024)
    covered, widths = 0, []
    for study in range(N_STUDIES):
        model, human = simulate(rng, n_stimuli=100, n_seeds=10, n_subjects=n_subjects, rho=rho, seed_sd=0.5,
                                noise_sd=1.0, subject_sd=1.0 if n_subjects > 1 else 0.0)
        result = bootstrap_correlation(model, human, method=method, interval=interval, n_resamples=2000, seed=study)
        covered += result.ci_low <= truth <= result.ci_high
        # (10 seeds: the first-order bias shift is enough here; at 3 seeds it is not, see below)
        widths.append(result.ci_high - result.ci_low)
    coverage = covered / N_STUDIES
    factors = "seed x stimulus" + (" x subject" if n_subjects > 1 else "")
    print(f"\n[calibration] {method}, {interval}, {factors}: coverage {coverage:.3f} of {N_STUDIES} studies "
          f"(truth {truth:.3f}), mean width {np.mean(widths):.3f}")
    assert 0.93 <= coverage <= 0.97


def _script(name="calibrate_time_vs_rt"):
    path = Path(__file__).resolve().parents[2] / "docs" / "experiments" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CALIBRATION = _script()
COMPARISONS = _script("calibrate_comparisons")
# Rows whose stated claim is 93-97 % coverage of their estimand. The seed x stimulus x subject bias-shifted
# interval is not claimed (it undercovers the noise-free correlation at 3 seeds x 160 x 10; time-vs-rt no
# longer reports it): it is scored and printed, and must stay below the claim there, so the table stays true.
# Nor is the noise-corrected correlation's earlier percentile interval (short at 3 x 100 x 5 with Pearson).
CLAIMED = ("analytic (Fisher z)", "seed x stimulus, bias-shifted percentile",
           CALIBRATION.NOISE_CORRECTED, "human split-half reliability (BCa)",
           "paired difference, bias-shifted percentile")


def _check(rows):
    for row in rows:
        print("\n[calibration] " + CALIBRATION.format_row(row))
        if row["interval"] in CLAIMED:
            # The Clopper-Pearson interval of the coverage must reach into [0.93, 0.97]: a coverage of 0.95
            # passes with near certainty, one of 0.90 or 0.99 fails with near certainty (500 studies).
            assert row["coverage_high"] >= 0.93 and row["coverage_low"] <= 0.97, row


@pytest.mark.parametrize("cell", range(len(CALIBRATION.CORRELATION_CELLS)))
def test_time_vs_rt_intervals_cover_their_estimands(cell, monkeypatch):
    monkeypatch.setattr(CALIBRATION, "RELIABILITY_EVERY", 1)  # every study scores every row
    rows = CALIBRATION.calibrate_correlation(studies=N_STUDIES, n_resamples=999,
                                             **CALIBRATION.CORRELATION_CELLS[cell])
    _check(rows)
    assert all(row["studies"] == N_STUDIES for row in rows)
    design = CALIBRATION.CORRELATION_CELLS[cell]
    if design["n_seeds"] == 3 and design["rho"] > 0:
        three = next(r for r in rows if r["interval"].startswith("seed x stimulus x subject"))
        assert three["coverage_high"] < 0.93  # the documented undercoverage of the first-order shift


@pytest.mark.parametrize("cell", range(len(CALIBRATION.CORNER_CELLS)))
def test_time_vs_rt_intervals_cover_their_estimands_at_the_corners_of_the_design_range(cell):
    # 3 x 100 x 5 and 10 x 2,000 x 50: the ends of the range the noise-corrected interval is claimed for
    rows = CALIBRATION.calibrate_correlation(studies=N_STUDIES, n_resamples=999, **CALIBRATION.CORNER_CELLS[cell])
    _check(rows)


@pytest.mark.parametrize("cell", range(len(CALIBRATION.DIFFERENCE_CELLS)))
def test_model_comparison_difference_interval_covers_both_estimands(cell):
    rows = CALIBRATION.calibrate_difference(studies=N_STUDIES, n_resamples=999, **CALIBRATION.DIFFERENCE_CELLS[cell])
    _check(rows)


# occlusion-recurrence, speed-accuracy and the split-half noise-corrected correlation (docs/experiments/
# calibrate_comparisons.py): every row they report is claimed at 93-97 %, except the rows listed here, which are
# claimed only not to under-cover (the table in docs/statistics.md says the same, and why).
CONSERVATIVE = {
    # 0.962-0.970 of 500 studies at 3 x 160 x 10: the wide side of the band (docs/statistics.md)
    "split-half noise-corrected (BCa)",
}


@pytest.mark.parametrize("part, cell", [(part, index) for part in ("occlusion", "speed", "split-half")
                                        for index in range(len(COMPARISONS.CELLS[part]))])
def test_occlusion_speed_and_split_half_intervals_cover_their_estimands(part, cell):
    rows = COMPARISONS.calibrate(part, studies=N_STUDIES, n_resamples=999, **COMPARISONS.CELLS[part][cell])
    for row in rows:
        print("\n[calibration] " + COMPARISONS.format_row(row))
        assert row["intervals"] == N_STUDIES
        assert row["coverage_high"] >= 0.93, row  # never below the claim
        if row["interval"] not in CONSERVATIVE:
            assert row["coverage_low"] <= 0.97, row


EPOCHS = _script("calibrate_paired_epochs")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["spearman", "pearson"])
@pytest.mark.parametrize("null", [False, True])
def test_change_across_training_covers_the_noise_free_change(method, null, monkeypatch):
    # competence-alignment's change rows: latent_correlation_difference at 3 seeds x 160 stimuli x 10 subjects
    # (docs/experiments/calibrate_paired_epochs.py; docs/statistics.md)
    if null:
        monkeypatch.setitem(EPOCHS.EPOCHS, "early", EPOCHS.EPOCHS["late"])
    rows, _ = EPOCHS.coverage(N_STUDIES, 999, (3, 160, 10), method)
    coverage, low, high, truth = rows["noise-free"]
    print(f"\n[calibration] change across training, {method}, true change {truth:.3f}: {coverage:.3f} "
          f"[{low:.3f}, {high:.3f}] of {N_STUDIES} studies")
    assert low <= 0.97 and high >= 0.93
