"""The latent (noise-free) correlation: its variance components against statsmodels, bounds, reproducibility."""

import math

import numpy as np
import pandas as pd
import pytest

from brainres.stats.latent import (
    latent_correlation,
    latent_correlation_statistic,
    stimulus_effects,
)


def _layout(rng, n_units, n_stimuli, effects, noise_sd, missing=0.0):
    data = effects[None, :] + rng.normal(size=(n_units, 1)) + noise_sd * rng.normal(size=(n_units, n_stimuli))
    if missing:
        data[rng.random(data.shape) < missing] = np.nan
    return data


@pytest.mark.parametrize("missing", [0.0, 0.2])
def test_additive_fit_equals_statsmodels_ols(missing):
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(0)
    data = _layout(rng, 6, 25, rng.normal(size=25), 1.0, missing)
    effects, noise, sigma2, df = stimulus_effects(data)
    table = pd.DataFrame([(u, i, data[u, i]) for u in range(6) for i in range(25) if not np.isnan(data[u, i])],
                         columns=["unit", "stimulus", "y"])
    fit = smf.ols("y ~ C(unit, Sum) + C(stimulus)", table).fit()
    assert sigma2 == pytest.approx(fit.scale, rel=1e-8)
    assert df == int(fit.df_resid)
    # Stimulus effects agree up to a constant (statsmodels measures them from stimulus 0).
    ols_effects = np.array([0.0] + [fit.params[f"C(stimulus)[T.{i}]"] for i in range(1, 25)])
    np.testing.assert_allclose(effects - effects[0], ols_effects, atol=1e-6)
    counts = (~np.isnan(data)).sum(axis=0)
    np.testing.assert_allclose(noise, sigma2 / counts)


def test_pearson_estimate_is_the_variance_component_ratio():
    rng = np.random.default_rng(1)
    latent = rng.normal(size=200)
    model, human = _layout(rng, 3, 200, latent, 1.0), _layout(rng, 10, 200, latent, 2.0)
    statistic, parts = latent_correlation_statistic(model, human, method="pearson")
    m, h = model.mean(axis=0), human.mean(axis=0)
    # Two-way ANOVA residual mean squares, written out.
    def residual_ms(x):
        r = x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + x.mean()
        return (r**2).sum() / ((x.shape[0] - 1) * (x.shape[1] - 1))
    expected = np.cov(m, h)[0, 1] / math.sqrt((np.var(m, ddof=1) - residual_ms(model) / 3)
                                              * (np.var(h, ddof=1) - residual_ms(human) / 10))
    assert statistic({"stimulus": np.full((1, 200), 1 / 200)})[0] == pytest.approx(min(expected, 1.0))
    assert parts["reliability_model"] == pytest.approx(1 - residual_ms(model) / 3 / np.var(m, ddof=1))


def test_latent_correlation_recovers_the_truth_is_bounded_and_reproducible():
    rng = np.random.default_rng(2)
    h = rng.normal(size=600)
    m = 0.5 * h + math.sqrt(0.75) * rng.normal(size=600)
    model, human = _layout(rng, 3, 600, m, 1.0), _layout(rng, 10, 600, h, 2.0, missing=0.1)
    for method, truth in (("pearson", 0.5), ("spearman", 6 / math.pi * math.asin(0.25))):
        result = latent_correlation(model, human, method=method, n_resamples=500, seed=1)
        assert result.extra["raw_r"] < result.estimate
        assert result.ci_low < truth < result.ci_high
        assert result == latent_correlation(model, human, method=method, n_resamples=500, seed=1)
        assert "noise-free" in result.extra["estimand"]
    # No stimulus signal at all: the estimand is at a bound at worst, never beyond.
    noise_only = latent_correlation(rng.normal(size=(3, 50)), rng.normal(size=(10, 50)), n_resamples=300, seed=0)
    # pure noise: a side's latent variance can come out <= 0; then the correlation is not defined, and says why
    if noise_only.extra.get("not_estimable"):
        assert np.isnan([noise_only.estimate, noise_only.ci_low, noise_only.ci_high]).all()
        assert "no stimulus variance beyond its noise" in noise_only.extra["not_estimable"]
    else:
        assert -1 <= noise_only.ci_low <= noise_only.ci_high <= 1 and -1 <= noise_only.estimate <= 1
    defined = latent_correlation(rng.normal(size=(3, 50)) + np.arange(50), rng.normal(size=(10, 50)) + np.arange(50),
                                 n_resamples=300, seed=0)
    assert "not_estimable" not in defined.extra and defined.estimate > 0.9
