import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from brainres.errors import StimulusMismatchError
from brainres.stats.mixed import MixedModelError, mixed_model_results, rt_mixed_model


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


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.ConvergenceWarning")
def test_estimates_equal_statsmodels_on_the_same_formula():
    trials, measure = _trials()
    table = rt_mixed_model(trials, measure)
    data = trials.assign(log_rt=np.log(trials["rt"]), halting_step=measure.reindex(trials["stimulus_id"]).to_numpy(),
                         group=1)
    model = smf.mixedlm("log_rt ~ halting_step", data, groups="group",
                        vc_formula={"subject": "0 + C(subject)", "stimulus_id": "0 + C(stimulus_id)"})
    fits = [model.fit(method=[name]) for name in ("powell", "nm")]
    direct = max(fits, key=lambda f: f.llf)
    # At least as good an optimum as statsmodels' default optimizer chain.
    assert table.attrs["log_likelihood"] >= model.fit().llf - 1e-6
    fixed = table.set_index("term")
    for term in ("Intercept", "halting_step"):
        assert fixed.loc[term, "estimate"] == pytest.approx(direct.fe_params[term], rel=1e-6)
        assert fixed.loc[term, "se"] == pytest.approx(direct.bse_fe[term], rel=1e-6)
        assert fixed.loc[term, "p_value"] == pytest.approx(direct.pvalues[term], rel=1e-6)
        low, high = direct.conf_int().loc[term]
        assert (fixed.loc[term, "ci_low"], fixed.loc[term, "ci_high"]) == pytest.approx((low, high), rel=1e-6)
    assert fixed.loc["var(residual)", "estimate"] == pytest.approx(direct.scale)
    assert table.attrs["n_trials"] == len(trials) and table.attrs["converged"]


def test_slope_is_recovered_and_results_are_tidy():
    trials, measure = _trials(seed=1, n_subjects=10, n_stimuli=40, slope=0.15)
    table = rt_mixed_model(trials, measure)
    slope = table.set_index("term").loc["halting_step"]
    assert slope["ci_low"] < 0.15 < slope["ci_high"] and slope["p_value"] < 1e-3
    results = mixed_model_results(table)
    assert [r.statistic for r in results] == ["mixed_model_slope[Intercept]", "mixed_model_slope[halting_step]"]


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
