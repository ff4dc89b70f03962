"""Trial-level linear mixed models of reaction time on per-stimulus model measures.

The model is ``(log) rt ~ 1 + measure [+ more measures]`` with crossed random
intercepts for subject and stimulus, fitted with statsmodels' ``MixedLM``.
statsmodels fits crossed effects as variance components inside one group that
holds every trial (``groups`` all ones, ``vc_formula`` one entry per factor).
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import threadpoolctl
import xarray as xr
from scipy import stats as sps

from brainres.errors import BrainresError, StimulusMismatchError
from brainres.stats.result import StatResult


class MixedModelError(BrainresError, ValueError):
    """A mixed model whose design cannot be fitted."""


# Derivative-free optimizers tried in turn (see the note in rt_mixed_model).
OPTIMIZERS = ("powell", "nm")

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def rt_mixed_model(
    trials,
    measures,
    *,
    response: str = "rt",
    log_response: bool = True,
    subject: str = "subject",
    stimulus: str = "stimulus_id",
    reml: bool = True,
    ci_level: float = 0.95,
) -> pd.DataFrame:
    """Fit ``(log) rt ~ measures + (1 | subject) + (1 | stimulus)`` and tabulate it.

    Parameters
    ----------
    trials : pandas.DataFrame or xarray.Dataset
        One row per trial with columns ``response``, ``subject`` and
        ``stimulus`` (a ``human_trials`` dataset works as is).
    measures : pandas.Series, pandas.DataFrame, xarray.DataArray or xarray.Dataset
        Per-stimulus predictors indexed by stimulus id (a Series/DataArray is
        one predictor named after itself). Every stimulus in ``trials`` needs a
        value; stimuli only in ``measures`` are listed in the table's attrs.
    response : str, default "rt"
    log_response : bool, default True
        Model ``log(rt)``; every RT must then be positive.
    subject, stimulus : str
        Grouping columns of the crossed random intercepts.
    reml : bool, default True
    ci_level : float, default 0.95
        Wald intervals from the model's standard errors.

    Returns
    -------
    pandas.DataFrame
        One row per fixed effect (``term, estimate, se, z, p_value, ci_low,
        ci_high``) then one per variance component (``var(subject)``,
        ``var(stimulus_id)``, ``var(residual)``, estimate only). ``attrs`` holds
        ``formula``, ``n_trials``, ``n_missing_response``, ``converged``,
        ``log_likelihood``, ``warnings`` and ``unused_stimuli``.

    Notes
    -----
    statsmodels' default gradient optimizers often stop short on crossed
    designs (on the Geirhos silhouette trials L-BFGS stops at a REML
    log-likelihood of 170.54 while Powell and Nelder-Mead agree on 172.55), so
    the model is fitted with Powell and with Nelder-Mead and the fit with the
    higher likelihood is kept; a disagreement is reported in ``warnings``.

    Raises
    ------
    MixedModelError
        Missing columns, non-positive RT with ``log_response``, fewer than two
        subjects or stimuli, a constant predictor, or a fit that fails.
    StimulusMismatchError
        Trials on stimuli that have no measure.
    """
    import statsmodels.formula.api as smf

    table = _trials_table(trials, response, subject, stimulus)
    predictors = _measures_table(measures)
    for name in predictors.columns:
        if not _NAME.match(name) or name in (response, subject, stimulus, "_group", "_y"):
            raise MixedModelError(f"measure name {name!r} must be a plain identifier distinct from the trial columns")
    trial_stimuli = pd.unique(table[stimulus])
    missing = sorted(set(trial_stimuli) - set(predictors.index))
    if missing:
        raise StimulusMismatchError(missing, [], "measures", "trials")
    unused = sorted(set(predictors.index) - set(trial_stimuli))
    n_missing = int(table[response].isna().sum())
    table = table.dropna(subset=[response]).copy()
    y = table[response].to_numpy(dtype=float)
    if log_response:
        bad = np.flatnonzero(y <= 0)
        if bad.size:
            raise MixedModelError(
                f"{bad.size} trial(s) have {response} <= 0 (first: {table.iloc[bad[0]][stimulus]!r}, "
                f"subject {table.iloc[bad[0]][subject]!r}); log({response}) is undefined"
            )
        y = np.log(y)
    table["_y"] = y
    for name in predictors.columns:
        values = predictors[name].reindex(table[stimulus]).to_numpy(dtype=float)
        if np.isnan(values).any():
            first = table[stimulus].to_numpy()[np.isnan(values)][0]
            raise MixedModelError(f"measure {name!r} is NaN for stimulus {first!r}")
        if np.ptp(values) == 0:
            raise MixedModelError(f"measure {name!r} is constant over the fitted trials; its effect cannot be estimated")
        table[name] = values
    for factor in (subject, stimulus):
        levels = table[factor].nunique()
        if levels < 2:
            raise MixedModelError(f"column {factor!r} has {levels} level(s); a random intercept needs at least 2")
    table["_group"] = 1
    formula = "_y ~ " + " + ".join(predictors.columns)
    variance_components = {subject: f"0 + C({subject})", stimulus: f"0 + C({stimulus})"}
    with warnings.catch_warnings(record=True) as caught, threadpoolctl.threadpool_limits(1):
        # Small dense solves: one BLAS thread is faster and avoids oversubscription.
        warnings.simplefilter("always")
        try:
            model = smf.mixedlm(formula, table, groups="_group", vc_formula=variance_components, use_sparse=True)
            fits = [model.fit(reml=reml, method=[optimizer]) for optimizer in OPTIMIZERS]
        except (np.linalg.LinAlgError, ValueError) as err:
            raise MixedModelError(f"the mixed model {formula} could not be fitted: {err}") from err
    messages = sorted({str(w.message) for w in caught})
    # Gradient optimizers stop early on this likelihood surface; two derivative-
    # free ones agree on the best optimum, and the higher likelihood wins.
    fit = max(fits, key=lambda f: f.llf)
    if abs(fits[0].llf - fits[1].llf) > 1e-3:
        messages.append(f"optimizers {OPTIMIZERS} reached log-likelihoods {[round(f.llf, 4) for f in fits]}; kept the higher")
    fixed = fit.fe_params
    se = fit.bse_fe
    critical = sps.norm.ppf(1 - (1 - ci_level) / 2)
    rows = []
    for term in fixed.index:
        z = fixed[term] / se[term]
        rows.append(
            {
                "term": term,
                "estimate": float(fixed[term]),
                "se": float(se[term]),
                "z": float(z),
                "p_value": float(2 * sps.norm.sf(abs(z))),
                "ci_low": float(fixed[term] - critical * se[term]),
                "ci_high": float(fixed[term] + critical * se[term]),
            }
        )
    for name, value in zip(model.exog_vc.names, fit.vcomp):
        rows.append({"term": f"var({name})", "estimate": float(value)})
    rows.append({"term": "var(residual)", "estimate": float(fit.scale)})
    result = pd.DataFrame(rows, columns=["term", "estimate", "se", "z", "p_value", "ci_low", "ci_high"])
    result.attrs.update(
        formula=f"{'log(' + response + ')' if log_response else response} ~ {' + '.join(predictors.columns)}"
        f" + (1 | {subject}) + (1 | {stimulus})",
        n_trials=int(len(table)),
        n_missing_response=n_missing,
        n_subjects=int(table[subject].nunique()),
        n_stimuli=int(table[stimulus].nunique()),
        converged=bool(fit.converged),
        log_likelihood=float(fit.llf),
        warnings=messages,
        unused_stimuli=unused,
        ci_level=ci_level,
        reml=reml,
    )
    return result


def mixed_model_results(table: pd.DataFrame) -> list[StatResult]:
    """The fixed-effect rows of :func:`rt_mixed_model` as :class:`StatResult` objects."""
    results = []
    for row in table.dropna(subset=["se"]).itertuples():
        results.append(
            StatResult(
                statistic=f"mixed_model_slope[{row.term}]",
                estimate=row.estimate,
                ci_low=row.ci_low,
                ci_high=row.ci_high,
                ci_level=table.attrs.get("ci_level", 0.95),
                interval="wald",
                method=f"linear mixed model {table.attrs.get('formula', '')} (statsmodels MixedLM)",
                p_value=row.p_value,
                n=table.attrs.get("n_trials"),
                extra={"se": row.se, "converged": table.attrs.get("converged", True)},
            )
        )
    return results


def _trials_table(trials, response, subject, stimulus) -> pd.DataFrame:
    if isinstance(trials, xr.Dataset):
        needed = [response, subject, stimulus]
        missing = [n for n in needed if n not in trials.variables]
        if missing:
            raise MixedModelError(f"trials lack variable(s) {missing}")
        table = pd.DataFrame({n: np.asarray(trials[n].values) for n in needed})
    elif isinstance(trials, pd.DataFrame):
        missing = [n for n in (response, subject, stimulus) if n not in trials.columns]
        if missing:
            raise MixedModelError(f"trials lack column(s) {missing}")
        table = trials[[response, subject, stimulus]].copy()
    else:
        raise MixedModelError(f"trials must be a pandas.DataFrame or xarray.Dataset, got {type(trials).__name__}")
    table[subject] = table[subject].astype(str)
    table[stimulus] = table[stimulus].astype(str)
    table[response] = pd.to_numeric(table[response], errors="raise").astype(float)
    return table.reset_index(drop=True)


def _measures_table(measures) -> pd.DataFrame:
    if isinstance(measures, xr.DataArray):
        measures = measures.to_series()
    elif isinstance(measures, xr.Dataset):
        measures = measures.to_dataframe()
    if isinstance(measures, pd.Series):
        if measures.name is None:
            raise MixedModelError("a measures Series/DataArray needs a name; it becomes the predictor's name")
        measures = measures.to_frame()
    if not isinstance(measures, pd.DataFrame):
        raise MixedModelError(f"measures must be a Series, DataFrame, DataArray or Dataset, got {type(measures).__name__}")
    if isinstance(measures.index, pd.MultiIndex):
        raise MixedModelError("measures must be indexed by stimulus id alone; average over seeds first")
    measures = measures.copy()
    measures.index = measures.index.astype(str)
    if measures.index.has_duplicates:
        raise MixedModelError(f"measures has duplicate stimulus ids, e.g. {measures.index[measures.index.duplicated()][0]!r}")
    measures.columns = [str(c) for c in measures.columns]
    return measures
