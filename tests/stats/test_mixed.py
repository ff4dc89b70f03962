import doctest
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats as sps

import brainres.stats.mixed as mixed
from brainres.errors import StimulusMismatchError
from brainres.stats.mixed import MixedModelError, compare_mixed_models, mixed_model_results, rt_mixed_model
from brainres.stats import mixed_fit
from brainres.stats.mixed_fit import CrossedModel, Factor

needs_r = pytest.mark.skipif(shutil.which("Rscript") is None,
                             reason="Rscript is not installed; the lme4 peer tests need R with lme4 "
                                    "(Debian: apt-get install r-cran-lme4)")
TOLERANCE = 1e-4  # relative, against lme4


def _trials(seed=0, n_subjects=8, n_stimuli=30, slope=0.1):
    rng = np.random.default_rng(seed)
    stimuli = [f"s{k:02d}" for k in range(n_stimuli)]
    measure = pd.Series(rng.normal(size=n_stimuli), index=stimuli, name="halting_step")
    subject_effect = rng.normal(scale=0.1, size=n_subjects)
    stimulus_effect = rng.normal(scale=0.1, size=n_stimuli)
    rows = []
    for j in range(n_subjects):
        for i, stimulus in enumerate(stimuli):
            log_rt = -0.5 + slope * measure.iloc[i] + subject_effect[j] + stimulus_effect[i] + rng.normal(scale=0.2)
            rows.append({"subject": f"p{j}", "stimulus_id": stimulus, "rt": np.exp(log_rt)})
    return pd.DataFrame(rows), measure


def _design(seed, n_subjects, n_stimuli, *, keep=1.0, repeats=1, slope_sd=0.0, n_measures=1):
    """Simulated crossed design: a share ``keep`` of subject x stimulus cells observed, 1..repeats trials each."""
    rng = np.random.default_rng(seed)
    stimuli = np.array([f"s{k:03d}" for k in range(n_stimuli)])
    measures = pd.DataFrame({f"m{k}": rng.normal(size=n_stimuli) for k in range(n_measures)}, index=stimuli)
    subject_intercept = rng.normal(scale=0.15, size=n_subjects)
    subject_slope = rng.normal(scale=slope_sd, size=n_subjects)
    stimulus_intercept = rng.normal(scale=0.1, size=n_stimuli)
    rows = []
    for j in range(n_subjects):
        for i in range(n_stimuli):
            if rng.random() > keep:
                continue
            for _ in range(rng.integers(1, repeats + 1)):
                x = measures.iloc[i].to_numpy()
                log_rt = (-0.4 + 0.08 * x[0] + (subject_slope[j] * x[0]) + subject_intercept[j]
                          + stimulus_intercept[i] + rng.normal(scale=0.25))
                if n_measures > 1:
                    log_rt += -0.03 * x[1]
                rows.append({"subject": f"p{j:03d}", "stimulus_id": stimuli[i], "rt": float(np.exp(log_rt))})
    return pd.DataFrame(rows), measures


def _relative(ours, theirs):
    return abs(ours - theirs) / max(abs(theirs), 1e-12)


def _compare_with_lme4(trials, measures, *, reml=True, random_slopes=(), label=""):
    """Fit with brainres and lme4 (tight tolerances; lmerTest's df where it is installed); return the relative
    differences."""
    from brainres.stats.mixed_lme4 import fit_lme4, lmertest_available

    measures = measures if isinstance(measures, pd.DataFrame) else measures.to_frame()
    table = rt_mixed_model(trials, measures, reml=reml, random_slopes=list(random_slopes) or False)
    answered = trials.dropna(subset=["rt"])
    per_trial = measures.reindex(answered["stimulus_id"].astype(str)).reset_index(drop=True)
    peer = fit_lme4(np.log(answered["rt"].to_numpy()), answered["subject"], answered["stimulus_id"], per_trial,
                    reml=reml, random_slopes=list(random_slopes), tight=True, satterthwaite=lmertest_available())
    rows = table.set_index("term")
    differences = {}
    for term, value in peer["fixef"].items():
        differences[f"estimate[{term}]"] = _relative(rows.loc[term, "estimate"], value)
        differences[f"se[{term}]"] = _relative(rows.loc[term, "se"], peer["se"][term])
        if "df" in peer:
            differences[f"df[{term}]"] = _relative(rows.loc[term, "df"], peer["df"][term])
    vcov = peer["vcov"]
    differences["var(stimulus_id)"] = _relative(rows.loc["var(stimulus_id)", "estimate"], vcov["stimulus:Intercept:"])
    differences["var(subject)"] = _relative(rows.loc["var(subject)", "estimate"], vcov["subject:Intercept:"])
    differences["var(residual)"] = _relative(rows.loc["var(residual)", "estimate"], vcov["Residual::"])
    for name in random_slopes:
        differences[f"var({name} | subject)"] = _relative(rows.loc[f"var({name} | subject)", "estimate"],
                                                          vcov[f"subject:{name}:"])
        differences[f"cor(Intercept, {name} | subject)"] = _relative(
            rows.loc[f"cor(Intercept, {name} | subject)", "estimate"], peer["sdcor"][f"subject:Intercept:{name}"])
    differences["log_likelihood"] = _relative(table.attrs["log_likelihood"], peer["loglik"])
    fit_part = {k: v for k, v in differences.items() if not k.startswith("df[")}
    worst = max(fit_part, key=fit_part.get)
    df_part = {k: v for k, v in differences.items() if k.startswith("df[")}
    print(f"\n[lme4 peer] {label} ({'REML' if reml else 'ML'}): largest relative difference "
          f"{differences[worst]:.2e} ({worst}); brainres log L {table.attrs['log_likelihood']:.8f}, "
          f"lme4 {peer['loglik']:.8f}"
          + (f"; Satterthwaite df vs lmerTest: {max(df_part.values()):.2e}" if df_part else ""))
    assert table.attrs["converged"]
    return differences, table, peer


# --- agreement with statsmodels (always runs) ---------------------------------------


@pytest.mark.parametrize("reml", [True, False])
def test_estimates_equal_statsmodels_on_the_same_formula(reml):
    trials, measure = _trials()
    # statsmodels fits variance components without slopes and tests with z
    table = rt_mixed_model(trials, measure, reml=reml, random_slopes=False, df_method="normal")
    data = trials.assign(log_rt=np.log(trials["rt"]), halting_step=measure.reindex(trials["stimulus_id"]).to_numpy(),
                         group=1)
    model = smf.mixedlm("log_rt ~ halting_step", data, groups="group",
                        vc_formula={"subject": "0 + C(subject)", "stimulus_id": "0 + C(stimulus_id)"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = [model.fit(reml=reml, method=[name]) for name in ("powell", "nm")]
    direct = max(fits, key=lambda f: f.llf)
    # At least as good an optimum as statsmodels' best (same likelihood, same constants).
    assert table.attrs["log_likelihood"] >= direct.llf - 1e-8
    assert table.attrs["log_likelihood"] == pytest.approx(direct.llf, rel=1e-8)
    fixed = table.set_index("term")
    for term in ("Intercept", "halting_step"):
        assert fixed.loc[term, "estimate"] == pytest.approx(direct.fe_params[term], rel=1e-5)
        assert fixed.loc[term, "se"] == pytest.approx(direct.bse_fe[term], rel=1e-5)
        assert fixed.loc[term, "p_value"] == pytest.approx(direct.pvalues[term], rel=1e-4)
        low, high = direct.conf_int().loc[term]
        assert (fixed.loc[term, "ci_low"], fixed.loc[term, "ci_high"]) == pytest.approx((low, high), rel=1e-5)
    variances = dict(zip(model.exog_vc.names, direct.vcomp))
    for name in ("subject", "stimulus_id"):
        assert fixed.loc[f"var({name})", "estimate"] == pytest.approx(variances[name], rel=1e-4)
    assert fixed.loc["var(residual)", "estimate"] == pytest.approx(direct.scale, rel=1e-5)
    assert table.attrs["n_trials"] == len(trials) and table.attrs["converged"] and table.attrs["reml"] is reml


def test_slope_is_recovered_and_results_are_tidy():
    trials, measure = _trials(seed=1, n_subjects=10, n_stimuli=40, slope=0.15)
    table = rt_mixed_model(trials, measure)
    slope = table.set_index("term").loc["halting_step"]
    assert slope["ci_low"] < 0.15 < slope["ci_high"] and slope["p_value"] < 1e-3
    # the interval is the t interval with the row's df
    critical = sps.t.ppf(0.975, slope["df"])
    assert slope["ci_high"] - slope["estimate"] == pytest.approx(critical * slope["se"], rel=1e-12)
    results = mixed_model_results(table)
    assert [r.statistic for r in results] == ["mixed_model_slope[Intercept]", "mixed_model_slope[halting_step]"]
    assert "REML" in results[0].method and results[0].interval == "satterthwaite_t"
    assert "Satterthwaite" in results[1].method and results[1].extra["df"] == slope["df"]
    assert list(table["term"]) == ["Intercept", "halting_step", "var(stimulus_id)", "var(subject)",
                                   "var(halting_step | subject)", "cor(Intercept, halting_step | subject)",
                                   "var(residual)"]
    assert table.attrs["formula"] == "log(rt) ~ halting_step + (1 + halting_step | subject) + (1 | stimulus_id)"
    plain = rt_mixed_model(trials, measure, random_slopes=False, df_method="normal")
    assert plain.attrs["formula"] == "log(rt) ~ halting_step + (1 | subject) + (1 | stimulus_id)"
    assert np.isinf(plain["df"].iloc[:2]).all() and mixed_model_results(plain)[1].interval == "wald"
    row = plain.set_index("term").loc["halting_step"]
    assert row["p_value"] == pytest.approx(2 * sps.norm.sf(abs(row["t"])), rel=1e-12)


def test_the_report_sentence_gives_the_t_test_with_its_df():
    from brainres.report.text import apa_sentence

    trials, measure = _trials(seed=1, n_subjects=10, n_stimuli=40, slope=0.15)
    table = rt_mixed_model(trials, measure)
    row = table.set_index("term").loc["halting_step"]
    sentence = apa_sentence(mixed_model_results(table)[1], unit="trials")
    assert f"t({row['df']:.1f}) = {row['t']:.2f}, p " in sentence and "(satterthwaite_t interval)" in sentence
    # a z test has no df to give
    plain = rt_mixed_model(trials, measure, random_slopes=False, df_method="normal")
    assert "t(" not in apa_sentence(mixed_model_results(plain)[1], unit="trials")


def test_satterthwaite_df_follow_the_information_about_each_effect():
    # A slope that varies between 10 subjects is known from 10 subjects; without that variation (or with
    # random intercepts only) a stimulus-level slope's df come from the 60 stimuli.
    varying, measures = _design(11, 10, 60, slope_sd=0.1)
    table = rt_mixed_model(varying, measures).set_index("term")
    assert 5 < table.loc["m0", "df"] < 12
    assert 5 < table.loc["Intercept", "df"] < 20  # the intercept: mostly the subjects' intercepts
    plain = rt_mixed_model(varying, measures, random_slopes=False).set_index("term")
    assert 45 < plain.loc["m0", "df"] <= 60
    with pytest.raises(MixedModelError, match="df_method"):
        rt_mixed_model(varying, measures, df_method="kenward_roger")


def _kenward_roger_dense(trials, measure, table):
    """Kenward & Roger (1997) from their formulas with every n x n matrix formed (independent of mixed_df)."""
    log_rt = np.log(trials["rt"].to_numpy())
    x = measure.reindex(trials["stimulus_id"]).to_numpy()
    n = log_rt.size
    X = np.column_stack([np.ones(n), x])
    rows = table.set_index("term")["estimate"]
    subject = pd.get_dummies(trials["subject"]).to_numpy(float)
    stimulus = pd.get_dummies(trials["stimulus_id"]).to_numpy(float)
    slope_columns = subject * x[:, None]
    name = measure.name
    covariance = rows[f"cor(Intercept, {name} | subject)"] * np.sqrt(rows["var(subject)"]
                                                                     * rows[f"var({name} | subject)"])
    G = [stimulus @ stimulus.T, subject @ subject.T, subject @ slope_columns.T + slope_columns @ subject.T,
         slope_columns @ slope_columns.T, np.eye(n)]
    s = [rows["var(stimulus_id)"], rows["var(subject)"], covariance, rows[f"var({name} | subject)"],
         rows["var(residual)"]]
    V_inv = np.linalg.inv(sum(value * Gi for value, Gi in zip(s, G)))
    phi = np.linalg.inv(X.T @ V_inv @ X)
    projection = V_inv - V_inv @ X @ phi @ X.T @ V_inv
    P = [-X.T @ V_inv @ Gi @ V_inv @ X for Gi in G]
    information = np.array([[np.trace(projection @ Gi @ projection @ Gj) for Gj in G] for Gi in G])
    W = 2 * np.linalg.inv(information)
    Q = [[X.T @ V_inv @ Gi @ V_inv @ Gj @ V_inv @ X for Gj in G] for Gi in G]
    adjustment = sum(W[i, j] * (Q[i][j] - P[i] @ phi @ P[j]) for i in range(5) for j in range(5))
    phi_adjusted = phi + 2 * phi @ adjustment @ phi
    a = np.array([np.diag(phi @ Pi @ phi) for Pi in P]) / np.diag(phi)
    return np.sqrt(np.diag(phi_adjusted)), 2 / np.einsum("ik,ij,jk->k", a, W, a)


def test_kenward_roger_equals_its_formulas_with_dense_matrices():
    # An incomplete design with subjects' slopes that differ; the test forms V, P~, P_i and Q_ij outright.
    trials, measures = _design(41, 9, 30, keep=0.85, slope_sd=0.08)
    measure = measures["m0"]
    table = rt_mixed_model(trials, measure, df_method="kenward-roger")
    expected_se, expected_df = _kenward_roger_dense(trials, measure, table)
    rows = table.set_index("term")
    np.testing.assert_allclose(rows.loc[["Intercept", "m0"], "se"], expected_se, rtol=1e-8)
    np.testing.assert_allclose(rows.loc[["Intercept", "m0"], "df"], expected_df, rtol=1e-8)
    # It widens the Wald SE for the estimated variances, and its interval is estimate +- t(df) se.
    wald = rt_mixed_model(trials, measure, df_method="normal").set_index("term")
    assert rows.loc["m0", "se"] > wald.loc["m0", "se"]
    row = rows.loc["m0"]
    critical = sps.t.ppf(0.975, row["df"])
    assert row["ci_low"] == pytest.approx(row["estimate"] - critical * row["se"], rel=1e-12)
    result = mixed_model_results(table)[1]
    assert result.interval == "kenward_roger_t" and f"Kenward-Roger's adjusted SE and {row['df']:.1f} df" in result.method


def test_at_a_zero_slope_variance_kenward_roger_gives_fewer_df_than_satterthwaite():
    # No slope variation simulated: the slope variance ends at zero. Satterthwaite leaves that flat direction
    # out (as lmerTest); Kenward-Roger's expected information keeps the component (as pbkrtest), so its df
    # are fewer and its interval the wider one (why it is the more conservative where subjects share a slope).
    trials, measure = _trials(seed=0, n_subjects=8, n_stimuli=40, slope=0.1)
    tables = {method: rt_mixed_model(trials, measure, df_method=method) for method in ("satterthwaite",
                                                                                      "kenward-roger")}
    assert all(table.attrs["singular"] for table in tables.values())
    rows = {method: table.set_index("term").loc["halting_step"] for method, table in tables.items()}
    print(f"\n[df at a zero slope variance] Satterthwaite {rows['satterthwaite']['df']:.1f}, "
          f"Kenward-Roger {rows['kenward-roger']['df']:.1f}")
    assert rows["kenward-roger"]["df"] < 0.8 * rows["satterthwaite"]["df"]
    width = {method: row["ci_high"] - row["ci_low"] for method, row in rows.items()}
    assert width["kenward-roger"] > width["satterthwaite"]


def test_kenward_roger_is_refused_where_it_is_not_defined_or_too_large(monkeypatch):
    from brainres.stats import mixed_df

    trials, measures = _design(42, 6, 20)
    with pytest.raises(MixedModelError, match="REML"):
        rt_mixed_model(trials, measures["m0"], df_method="kenward-roger", reml=False)
    monkeypatch.setattr(mixed_df, "KENWARD_ROGER_MAX_COLUMNS", 25)  # 6 x 2 subject columns + 20 stimuli = 32
    with pytest.raises(MixedModelError, match="32 x 32.*satterthwaite"):
        rt_mixed_model(trials, measures["m0"], df_method="kenward-roger")


def test_missed_trials_are_dropped_and_counted():
    trials, measure = _trials(seed=2)
    trials.loc[[0, 5, 9], "rt"] = np.nan
    table = rt_mixed_model(trials, measure)
    assert table.attrs["n_missing_response"] == 3 and table.attrs["n_trials"] == len(trials) - 3


def test_designs_that_cannot_be_fitted_raise_clear_errors():
    trials, measure = _trials(seed=3)
    with pytest.raises(MixedModelError, match="<= 0"):
        rt_mixed_model(trials.assign(rt=trials["rt"].where(trials.index != 4, 0.0)), measure)
    with pytest.raises(MixedModelError, match="'subject' has 1 level"):
        rt_mixed_model(trials[trials["subject"] == "p0"], measure)
    with pytest.raises(MixedModelError, match="constant"):
        rt_mixed_model(trials, measure * 0 + 1.0)
    with pytest.raises(StimulusMismatchError, match="s29"):
        rt_mixed_model(trials, measure.drop("s29"))
    with pytest.raises(MixedModelError, match="lack column"):
        rt_mixed_model(trials.drop(columns="subject"), measure)
    with pytest.raises(MixedModelError, match="random_slopes"):
        rt_mixed_model(trials, measure, random_slopes=["nope"])
    with pytest.raises(MixedModelError, match="collinear"):
        rt_mixed_model(trials, pd.DataFrame({"a": measure, "b": 2 * measure}))


def test_sparse_and_dense_cross_products_give_the_same_fit(monkeypatch):
    # Few subjects keep C (subjects x stimuli) dense; many levels switch it to a sparse matrix.
    trials, measures = _design(5, 40, 120, keep=0.3, repeats=2, slope_sd=0.05)
    y = np.log(trials["rt"].to_numpy())
    x = measures["m0"].reindex(trials["stimulus_id"]).to_numpy()
    subjects, subject_levels = pd.factorize(trials["subject"], sort=True)
    stimuli, stimulus_levels = pd.factorize(trials["stimulus_id"], sort=True)
    factors = [Factor("stimulus_id", stimuli.astype(np.int64), len(stimulus_levels), np.ones((y.size, 1)), ("Intercept",)),
               Factor("subject", subjects.astype(np.int64), len(subject_levels), np.column_stack([np.ones(y.size), x]),
                      ("Intercept", "m0"))]
    X = np.column_stack([np.ones(y.size), x])
    dense = CrossedModel(y, X, factors)
    sparse = CrossedModel(y, X, factors)
    assert dense.C_dense is not None
    sparse.C_dense = None
    from brainres.stats.mixed_fit import _csr_layout

    s, b = sparse.small, sparse.big
    rows = (sparse.pair_s[:, None, None] * s.q + np.arange(s.q)[None, :, None]) + 0 * np.arange(b.q)[None, None, :]
    cols = (sparse.pair_b[:, None, None] * b.q + np.arange(b.q)[None, None, :]) + 0 * np.arange(s.q)[None, :, None]
    shape = (s.n_levels * s.q, b.n_levels * b.q)
    sparse._C_layout = _csr_layout(rows.ravel(), cols.ravel(), shape)
    sparse._CT_layout = _csr_layout(cols.ravel(), rows.ravel(), shape[::-1])
    thetas = (np.array([0.4, 0.6, 0.1, 0.3]), np.array([1.0, 1.0, 0.0, 1.0]))
    expected = {(k, reml): dense.deviance(theta, reml) for k, theta in enumerate(thetas) for reml in (True, False)}
    for (k, reml), value in expected.items():
        assert sparse.deviance(thetas[k], reml) == pytest.approx(value, rel=1e-12)
    # Large designs with little overlap keep the Schur complement sparse too (LU instead of Cholesky).
    monkeypatch.setattr(mixed_fit, "SPARSE_SCHUR_SIZE", 0)
    monkeypatch.setattr(mixed_fit, "SPARSE_SCHUR_DENSITY", 1.1)
    for (k, reml), value in expected.items():
        assert sparse.deviance(thetas[k], reml) == pytest.approx(value, rel=1e-10)


def test_an_end_at_a_zero_variance_is_checked_from_other_starts():
    # 5 subjects x 100 stimuli whose slopes differ: from lme4's start for the slope (relative SD 1) the optimiser
    # ends with the stimulus variance at zero, a local minimum; the fit looks again from other starts and keeps
    # the better end (stimulus SD 0.1 in the simulation)
    rng = np.random.default_rng(1)
    z = rng.standard_normal(100)
    z = (z - z.mean()) / z.std()
    log_rt = (np.log(0.8) + (0.05 * z + 0.1 * rng.standard_normal(100))[None, :]
              + 0.15 * rng.standard_normal((5, 1)) + 0.3 * rng.standard_normal((5, 100))
              + 0.03 * rng.standard_normal((5, 1)) * z[None, :])
    subject, stimulus = np.repeat(np.arange(5), 100), np.tile(np.arange(100), 5)
    X = np.column_stack([np.ones(subject.size), z[stimulus]])
    model = CrossedModel(log_rt.ravel(), X, [
        Factor("stimulus_id", stimulus.astype(np.int64), 100, np.ones((subject.size, 1)), ("Intercept",)),
        Factor("subject", subject.astype(np.int64), 5, X.copy(), ("Intercept", "m"))])
    stuck = model.fit(theta0=model._slopes_at_one(model._start))
    assert stuck.theta[0] < 1e-4 and stuck.converged
    best = model.fit()
    assert best.deviance < stuck.deviance - 0.5 and best.theta[0] > 0.1
    assert best.deviance <= model.fit(theta0=model.theta_start()).deviance + 1e-9


def test_memory_grows_with_trials_not_subjects_times_stimuli():
    # 600 subjects x 6,000 stimuli (3.6 million cells) with 9,000 trials: nothing of
    # subjects x stimuli size may be built (a dense float array of it is 27 MiB).
    import tracemalloc

    rng = np.random.default_rng(7)
    n = 9000
    subject = rng.integers(0, 600, size=n)
    stimulus = rng.integers(0, 6000, size=n)
    measure = pd.Series(rng.normal(size=6000), index=[f"s{k}" for k in range(6000)], name="m")
    log_rt = 0.1 * measure.to_numpy()[stimulus] + rng.normal(scale=0.2, size=600)[subject] + rng.normal(scale=0.3, size=n)
    trials = pd.DataFrame({"subject": [f"p{k}" for k in subject], "stimulus_id": [f"s{k}" for k in stimulus],
                           "rt": np.exp(log_rt)})
    tracemalloc.start()
    try:
        # random intercepts: with slopes the dense Schur complement is (2 x 600)^2, still not subjects x stimuli
        table = rt_mixed_model(trials, measure, random_slopes=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert table.attrs["converged"]
    assert peak < 20 * 2**20, f"peak traced memory {peak / 2**20:.1f} MiB"


# --- random slopes and likelihood-ratio tests -------------------------------------


def test_random_slopes_table_and_likelihood_ratio_test():
    trials, measures = _design(3, 12, 40, slope_sd=0.08, n_measures=2)
    plain = rt_mixed_model(trials, measures[["m0"]], reml=False, random_slopes=False)
    slopes = rt_mixed_model(trials, measures[["m0"]], reml=False, random_slopes=True)
    rows = slopes.set_index("term")
    assert {"var(m0 | subject)", "cor(Intercept, m0 | subject)"} <= set(rows.index)
    assert -1 <= rows.loc["cor(Intercept, m0 | subject)", "estimate"] <= 1
    assert slopes.attrs["formula"] == "log(rt) ~ m0 + (1 + m0 | subject) + (1 | stimulus_id)"
    assert slopes.attrs["n_parameters"] == plain.attrs["n_parameters"] + 2
    test = compare_mixed_models(plain, slopes)
    assert test.extra["df"] == 2
    assert test.estimate == pytest.approx(2 * (slopes.attrs["log_likelihood"] - plain.attrs["log_likelihood"]))
    assert test.estimate > 0 and test.p_value < 0.05  # the simulated slopes vary by subject
    # Fixed effects: ML fits only.
    both = rt_mixed_model(trials, measures, reml=False, random_slopes=False)
    assert compare_mixed_models(plain, both).extra["df"] == 1
    with pytest.raises(MixedModelError, match="reml=False"):
        compare_mixed_models(rt_mixed_model(trials, measures[["m0"]]), rt_mixed_model(trials, measures))
    with pytest.raises(MixedModelError, match="smaller model first"):
        compare_mixed_models(slopes, plain)
    with pytest.raises(MixedModelError, match="different trials"):
        compare_mixed_models(plain, rt_mixed_model(trials.iloc[1:], measures, reml=False, random_slopes=False))


def test_docstring_examples_run():
    results = doctest.testmod(mixed, optionflags=doctest.ELLIPSIS)
    assert results.attempted >= 8 and results.failed == 0


# --- agreement with lme4 (needs R) ---------------------------------------------------


@needs_r
@pytest.mark.parametrize("case", ["balanced", "unbalanced_incomplete", "few_stimuli_many_subjects"])
@pytest.mark.parametrize("reml", [True, False])
def test_simulated_designs_equal_lme4(case, reml):
    if case == "balanced":
        trials, measures = _design(11, 15, 60)
    elif case == "unbalanced_incomplete":
        # About 40 % of subject x stimulus cells missing, 1-3 trials per observed cell.
        trials, measures = _design(12, 25, 80, keep=0.6, repeats=3)
    else:
        # More subjects than stimuli: the stimulus factor becomes the dense Schur side.
        trials, measures = _design(13, 120, 20, keep=0.5, repeats=2)
    differences, _, _ = _compare_with_lme4(trials, measures[["m0"]], reml=reml, label=case)
    assert max(differences.values()) < TOLERANCE, differences


@needs_r
@pytest.mark.parametrize("reml", [True, False])
def test_random_slopes_equal_lme4(reml):
    trials, measures = _design(21, 30, 50, keep=0.8, repeats=2, slope_sd=0.06, n_measures=2)
    differences, table, _ = _compare_with_lme4(trials, measures, reml=reml, random_slopes=("m0",),
                                               label="random slopes, two measures")
    assert max(differences.values()) < TOLERANCE, differences
    assert table.attrs["random_slopes"] == ["m0"]


@needs_r
@pytest.mark.parametrize("random_slopes", [False, True])
def test_singular_fits_equal_lme4(random_slopes):
    # No subject or stimulus variation in the simulation: variances at the boundary (zero), as lme4 finds.
    from brainres.stats.mixed_lme4 import fit_lme4, lmertest_available

    rng = np.random.default_rng(5)
    stimuli = [f"s{i}" for i in range(40)]
    measure = pd.Series(rng.normal(size=40), index=stimuli, name="m0")
    trials = pd.DataFrame([{"subject": f"p{j}", "stimulus_id": s,
                            "rt": float(np.exp(-0.4 + 0.1 * measure[s] + rng.normal(scale=0.25)))}
                           for j in range(12) for s in stimuli])
    table = rt_mixed_model(trials, measure, random_slopes=random_slopes)
    peer = fit_lme4(np.log(trials["rt"].to_numpy()), trials["subject"], trials["stimulus_id"],
                    pd.DataFrame({"m0": measure.reindex(trials["stimulus_id"]).to_numpy()}), tight=True,
                    random_slopes=["m0"] if random_slopes else [], satterthwaite=lmertest_available())
    assert table.attrs["singular"] and table.attrs["converged"]
    # Both order theta stimulus term first (lme4: the factor with more levels first), then subject.
    np.testing.assert_allclose(table.attrs["theta"], peer["theta"], atol=1e-5)
    rows = table.set_index("term")
    for term in ("Intercept", "m0"):
        assert rows.loc[term, "estimate"] == pytest.approx(peer["fixef"][term], rel=TOLERANCE)
        assert rows.loc[term, "se"] == pytest.approx(peer["se"][term], rel=TOLERANCE)
        if "df" in peer:  # Satterthwaite at the boundary: the flat directions are left out, as lmerTest does
            assert rows.loc[term, "df"] == pytest.approx(peer["df"][term], rel=TOLERANCE)
    assert table.attrs["log_likelihood"] == pytest.approx(peer["loglik"], rel=TOLERANCE)


@needs_r
@pytest.mark.parametrize("case", ["slopes that differ", "singular"])
def test_kenward_roger_equals_pbkrtest(case):
    from brainres.stats.mixed_lme4 import fit_lme4, pbkrtest_available

    if not pbkrtest_available():
        pytest.skip("R's pbkrtest is not installed (Debian: apt-get install r-cran-pbkrtest)")
    # Small designs: pbkrtest forms n x n matrices.
    if case == "singular":
        trials, measures = _design(43, 8, 25, keep=0.9)  # no slope variation: its variance ends at zero
    else:
        trials, measures = _design(44, 10, 30, keep=0.8, slope_sd=0.08)
    table = rt_mixed_model(trials, measures["m0"], df_method="kenward-roger")
    peer = fit_lme4(np.log(trials["rt"].to_numpy()), trials["subject"], trials["stimulus_id"],
                    measures[["m0"]].reindex(trials["stimulus_id"]).reset_index(drop=True), tight=True,
                    random_slopes=["m0"], kenward_roger=True)
    rows = table.set_index("term")
    differences = {f"{kind}[{term}]": _relative(rows.loc[term, column], peer[key][term])
                   for term in ("Intercept", "m0") for kind, column, key in (("se", "se", "kr_se"),
                                                                              ("df", "df", "kr_df"))}
    print(f"\n[pbkrtest peer] {case}: largest relative difference {max(differences.values()):.2e}")
    assert table.attrs["singular"] == (case == "singular")
    assert max(differences.values()) < TOLERANCE, differences


@needs_r
def test_likelihood_ratio_equals_lme4_anova():
    from brainres.stats.mixed_lme4 import fit_lme4

    trials, measures = _design(31, 20, 40, keep=0.9, n_measures=2)
    reduced = rt_mixed_model(trials, measures[["m0"]], reml=False, random_slopes=False)
    full = rt_mixed_model(trials, measures, reml=False, random_slopes=False)
    per_trial = measures.reindex(trials["stimulus_id"]).reset_index(drop=True)
    y = np.log(trials["rt"].to_numpy())
    peers = [fit_lme4(y, trials["subject"], trials["stimulus_id"], per_trial[columns], reml=False, tight=True)
             for columns in (["m0"], ["m0", "m1"])]
    test = compare_mixed_models(reduced, full)
    expected = 2 * (peers[1]["loglik"] - peers[0]["loglik"])
    assert test.estimate == pytest.approx(expected, rel=1e-4)


@needs_r
@pytest.mark.needs_data
@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("random_slopes", [(), ("model_time_z",)])
def test_real_cue_conflict_trials_equal_lme4(load_real, reml, random_slopes):
    trials = load_real("geirhos2021-cue-conflict")
    table = trials[["rt", "correct"]].to_dataframe().reset_index(drop=True)
    table["subject"] = trials["subject"].values.astype(str)
    table["stimulus_id"] = trials["stimulus_id"].values.astype(str)
    answered = table.dropna(subset=["rt"])
    assert len(answered) == 12_669
    # A per-stimulus measure with a real relation: the standardised human accuracy of the stimulus.
    accuracy = answered.groupby("stimulus_id")["correct"].mean()
    measure = ((accuracy - accuracy.mean()) / accuracy.std()).rename("model_time_z")
    differences, result, _ = _compare_with_lme4(table, measure, reml=reml, random_slopes=random_slopes,
                                                label="geirhos2021-cue-conflict, 12,669 trials")
    assert max(differences.values()) < TOLERANCE, differences
    assert result.attrs["n_missing_response"] == 131


@pytest.mark.needs_data
def test_fits_real_silhouette_trials(load_real):
    trials = load_real("geirhos2021-silhouette")
    stimuli = np.unique(trials["stimulus_id"].values.astype(str))
    # A per-stimulus measure with a known relation: the stimulus' own human accuracy.
    table = trials[["correct"]].to_dataframe()
    table["stimulus_id"] = trials["stimulus_id"].values.astype(str)
    accuracy = table.groupby("stimulus_id")["correct"].mean().reindex(stimuli).rename("accuracy")
    result = rt_mixed_model(trials, accuracy)
    assert result.attrs["n_stimuli"] == 160 and result.attrs["n_subjects"] == 10
    slope = result.set_index("term").loc["accuracy"]
    # Harder stimuli (lower accuracy) are answered more slowly.
    assert slope["estimate"] < 0 and slope["p_value"] < 0.05
