"""Coverage of the crossed bootstrap on simulated studies with a known population correlation.

Slow (kept out of the default run): ``pytest -m slow -s tests/stats/test_calibration.py``.
"""

import math

import numpy as np
import pytest

from brainres.stats.correlate import bootstrap_correlation

pytestmark = pytest.mark.slow

N_STUDIES = 500


def _population_value(method, rho):
    # Spearman's rho of a bivariate normal with Pearson correlation rho.
    return rho if method == "pearson" else 6 / math.pi * math.asin(rho / 2)


@pytest.mark.parametrize(
    "method, interval, n_subjects",
    [
        ("pearson", "bias_corrected", 1),
        ("spearman", "bias_corrected", 1),
        ("pearson", "bca", 1),
        ("pearson", "bias_corrected", 8),
        ("spearman", "bias_corrected", 8),
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
        widths.append(result.ci_high - result.ci_low)
    coverage = covered / N_STUDIES
    factors = "seed x stimulus" + (" x subject" if n_subjects > 1 else "")
    print(f"\n[calibration] {method}, {interval}, {factors}: coverage {coverage:.3f} of {N_STUDIES} studies "
          f"(truth {truth:.3f}), mean width {np.mean(widths):.3f}")
    assert 0.93 <= coverage <= 0.97
