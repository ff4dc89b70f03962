"""Coverage of the label-count, mixed-model and partial-correlation intervals ``time-vs-rt`` reports.

Slow (kept out of the default run): ``pytest -m slow -s tests/stats/test_calibration_labels.py``; a smoke run with
fewer studies per cell: ``BRAINRES_CALIBRATION_STUDIES=5`` (the coverage assertions then mean nothing). The
simulations and the estimands are those of ``docs/experiments/calibrate_label_counts.py`` and
``docs/experiments/calibrate_trials.py`` (which print the tables in docs/statistics.md); each interval is scored against
the estimand its function states. Cost (measured beside other runs): about 2 s per study of a Spearman label cell and
1 s of a Pearson one; a mixed-model study (three fits) 0.3-0.6 s at 5-20 subjects and about 4 s at 50 subjects x 2,000
stimuli. At 500 studies the 16 label cells take 3-4 hours of one core, the 12 mixed-model cells about 1.5 hours, the
rest a few minutes.
"""

import importlib.util
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

N_STUDIES = int(os.environ.get("BRAINRES_CALIBRATION_STUDIES", "500"))
# Random annotator splits of the point estimates: 100, as in the recorded table (the intervals recompute 100 splits
# per resample whatever n_splits is; time-vs-rt's default of 1,000 only sharpens the point estimate).
LABEL_SPLITS = 100


def _script(name):
    path = Path(__file__).resolve().parents[2] / "docs" / "experiments" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LABELS, TRIALS = _script("calibrate_label_counts"), _script("calibrate_trials")


def _check(rows, claimed, conservative=False):
    """Every claimed row: the Clopper-Pearson interval of its coverage reaches into [0.93, 0.97] (only above 0.93
    where the row is claimed to be conservative)."""
    assert rows
    for row in rows:
        print("\n[calibration] " + TRIALS.format_row(row))
        assert row["studies"] == N_STUDIES
        if row["estimand"] in claimed:
            # a coverage of 0.95 passes with near certainty, one of 0.90 or 0.99 fails with near certainty (500 studies)
            assert row["coverage_high"] >= 0.93, row
            if not conservative:
                assert row["coverage_low"] <= 0.97, row


@pytest.mark.parametrize("cell", range(len(LABELS.LABEL_CELLS)))
def test_label_count_reliability_and_noise_corrected_intervals_cover_their_estimands(cell):
    design = LABELS.LABEL_CELLS[cell]
    rows = LABELS.calibrate_labels(studies=N_STUDIES, n_resamples=999, n_splits=LABEL_SPLITS, **design)
    # the noise-corrected correlation in every cell; the annotators' reliability where the cell scores it
    assert {row["estimand"] for row in rows} == ({"latent", "reliability"} if design["reliability"] else {"latent"})
    # Pearson on the share correct is printed, not claimed: its reliability covered 0.902 [0.873, 0.927] at 3 x 160
    # (500 studies, docs/statistics.md), and time-vs-rt's notes say that Pearson on label counts falls short
    unclaimed = design["measure"] == "accuracy" and design["method"] == "pearson"
    _check(rows, claimed=set() if unclaimed else {"latent", "reliability"})


@pytest.mark.parametrize("cell", range(len(TRIALS.MIXED_CELLS)))
def test_mixed_model_slope_interval_covers_the_mean_slope(cell):
    design = TRIALS.MIXED_CELLS[cell]
    rows = TRIALS.calibrate_mixed(studies=N_STUDIES, kenward_roger=False, **design)  # KR is printed by the script
    # at 5 subjects sharing one slope the fitted slope variance widens the interval: 0.98-0.99 (docs/statistics.md)
    _check(rows, claimed={"mean slope over subjects"},
           conservative=design["n_subjects"] == 5 and design["subject_slope_sd"] == 0)


@pytest.mark.parametrize("cell", range(len(TRIALS.PARTIAL_CELLS)))
def test_partial_correlation_interval_covers_the_partial_correlation_of_the_means(cell):
    # scored against the partial correlation of these per-stimulus means over the stimulus population; the latent
    # partial correlation is printed, not claimed (the means' noise attenuates it)
    rows = TRIALS.calibrate_partial(studies=N_STUDIES, **TRIALS.PARTIAL_CELLS[cell])
    assert {row["estimand"] for row in rows} == {"design", "latent (not claimed)"}
    _check(rows, claimed={"design"})
