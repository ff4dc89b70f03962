"""Trial-level linear mixed models of reaction time on per-stimulus model measures.

The model is ``(log) rt ~ 1 + measure [+ more measures]`` with crossed random
intercepts for subject and stimulus and, by default, random slopes of the
measures by subject, fitted by (RE)ML as lme4 fits it: the profiled deviance
is minimised over the relative covariance parameters, with the penalised
least-squares solve done by blocks (see :mod:`brainres.stats.mixed_fit`).
Estimates, standard errors and variance components equal lme4's ``lmer`` to
better than 1e-4, the t tests' Satterthwaite df equal lmerTest's and the
optional Kenward-Roger SEs and df pbkrtest's (tests);
the fit is faster than ``lmer``'s (benchmarks).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats as sps

from brainres.errors import BrainresError, StimulusMismatchError
from brainres.stats.mixed_df import kenward_roger, satterthwaite_df
from brainres.stats.mixed_fit import CrossedModel, Factor
from brainres.stats.result import StatResult

class MixedModelError(BrainresError, ValueError):
    """A mixed model whose design cannot be fitted."""


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENGINE = "brainres profiled (RE)ML, lme4's formulation"
# df_method -> the test as a result's method text names it; and the interval's name in results.
DF_METHODS = {"satterthwaite": "t test with Satterthwaite's {df:.1f} df",
              "kenward-roger": "t test with Kenward-Roger's adjusted SE and {df:.1f} df", "normal": "Wald z test"}
INTERVAL_NAMES = {"satterthwaite": "satterthwaite_t", "kenward-roger": "kenward_roger_t", "normal": "wald"}
# ... and in a methods text's words (the comparisons' paragraphs name the intervals that ran from it)
DF_METHOD_WORDS = {"satterthwaite": "t intervals with Satterthwaite's degrees of freedom",
                   "kenward-roger": "t intervals with Kenward-Roger's adjusted SE and degrees of freedom",
                   "normal": "Wald z intervals"}


def rt_mixed_model(
    trials,
    measures,
    *,
    response: str = "rt",
    log_response: bool = True,
    subject: str = "subject",
    stimulus: str = "stimulus_id",
    reml: bool = True,
    random_slopes=True,
    df_method: str = "satterthwaite",
    ci_level: float = 0.95,
) -> pd.DataFrame:
    """Fit ``(log) rt ~ measures + (1 + measures | subject) + (1 | stimulus)`` and tabulate it.

    Parameters
    ----------
    trials : pandas.DataFrame or xarray.Dataset
        One row per trial with columns ``response``, ``subject`` and
        ``stimulus`` (a ``human_trials`` dataset works as is). Any design:
        unbalanced, incomplete (not every subject saw every stimulus) or with
        repeated trials of a subject on a stimulus.
    measures : pandas.Series, pandas.DataFrame, xarray.DataArray or xarray.Dataset
        Per-stimulus predictors indexed by stimulus id (a Series/DataArray is
        one predictor named after itself). Every stimulus in ``trials`` needs a
        value; stimuli only in ``measures`` are listed in the table's attrs.
    response : str, default "rt"
    log_response : bool, default True
        Model ``log(rt)``; every RT must then be positive.
    subject, stimulus : str
        Grouping columns of the crossed random effects.
    reml : bool, default True
        Restricted maximum likelihood (lme4's default); ``False`` gives
        maximum likelihood, needed to compare models with different fixed
        effects (:func:`compare_mixed_models`).
    random_slopes : bool or sequence of str, default True
        Correlated random slopes by subject, ``(1 + measure | subject)`` in
        lme4's notation: ``True`` for every measure, the names of some, or
        ``False`` for random intercepts only. With intercepts only, subjects
        whose slopes differ make the slope's interval too short (it covered
        the mean slope in 83 % of simulated studies at 20 subjects x 400
        stimuli; ``docs/statistics.md``).
    df_method : {"satterthwaite", "kenward-roger", "normal"}, default "satterthwaite"
        Reference distribution of each fixed effect's t statistic:
        Satterthwaite's degrees of freedom, as lmerTest computes them
        (:mod:`brainres.stats.mixed_df`); Kenward-Roger's, which also widen
        the standard error for the estimated variance components (as
        pbkrtest; REML only, and designs with up to 6,000 random-effect
        columns); or the normal (Wald z, infinite df). A slope that varies
        between few subjects has few df.
    ci_level : float, default 0.95
        Intervals ``estimate +- t(df) se`` from the model's standard errors.

    Returns
    -------
    pandas.DataFrame
        One row per fixed effect (``term, estimate, se, df, t, p_value,
        ci_low, ci_high``; t-tests with ``df_method``'s df, infinite for
        "normal") then one per variance component, estimate
        only: ``var(stimulus_id)``, ``var(subject)``, with random slopes
        ``var(measure | subject)`` and ``cor(Intercept, measure | subject)``
        (and ``cor(a, b | subject)`` between slopes), then ``var(residual)``.
        ``attrs`` holds ``formula``, ``n_trials``, ``n_missing_response``,
        ``n_subjects``, ``n_stimuli``, ``converged``, ``log_likelihood`` (the
        REML log-likelihood when ``reml``), ``deviance``, ``n_parameters``,
        ``reml``, ``fixed_effects``, ``random_slopes``, ``df_method``, ``theta`` (lme4's
        relative covariance parameters), ``singular``, ``warnings``,
        ``unused_stimuli``, ``ci_level``, ``fit_seconds`` and ``data_key`` (a
        fingerprint of the fitted trials, used by :func:`compare_mixed_models`).

    Raises
    ------
    MixedModelError
        Missing columns, non-positive RT with ``log_response``, fewer than two
        subjects or stimuli, a constant predictor, an unknown slope name, or a
        fit that fails.
    StimulusMismatchError
        Trials on stimuli that have no measure.

    Notes
    -----
    The fit is lme4's: the profiled (RE)ML deviance is minimised over the
    relative covariance parameters ``theta`` (bounded L-BFGS-B, then Newton
    steps), with the penalised least-squares problem solved through a
    Cholesky factor of ``Lambda' Z' Z Lambda + I`` taken by blocks (the
    factor with more levels is eliminated level by level; the Schur
    complement on the other is dense). Memory grows with the number of trials
    and the square of the smaller factor's size, never with subjects x
    stimuli. Standard errors are ``sigma^2 (R_X' R_X)^-1`` from the final
    factorization, as ``vcov`` of an ``lmer`` fit; Satterthwaite's df equal
    lmerTest's ``summary`` of the same fit (tests).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from brainres.stats.mixed import rt_mixed_model, mixed_model_results
    >>> rng = np.random.default_rng(0)
    >>> stimuli = [f"s{i}" for i in range(40)]
    >>> measure = pd.Series(rng.normal(size=40), index=stimuli, name="model_time_z")
    >>> trials = pd.DataFrame([{"subject": f"p{j}", "stimulus_id": s,
    ...                         "rt": float(np.exp(-0.5 + 0.1 * measure[s] + rng.normal(scale=0.2)))}
    ...                        for j in range(8) for s in stimuli])
    >>> table = rt_mixed_model(trials, measure)
    >>> list(table["term"])  # doctest: +NORMALIZE_WHITESPACE
    ['Intercept', 'model_time_z', 'var(stimulus_id)', 'var(subject)', 'var(model_time_z | subject)',
     'cor(Intercept, model_time_z | subject)', 'var(residual)']
    >>> bool(table.attrs["converged"]), table.attrs["n_trials"]
    (True, 320)
    >>> intercepts = rt_mixed_model(trials, measure, random_slopes=False)
    >>> "var(model_time_z | subject)" in set(intercepts["term"])
    False
    >>> [r.statistic for r in mixed_model_results(table)]
    ['mixed_model_slope[Intercept]', 'mixed_model_slope[model_time_z]']
    """
    table, y, predictors, n_missing, unused = _prepare(trials, measures, response, log_response, subject, stimulus)
    names = list(predictors.columns)
    if random_slopes is True:
        slopes = names
    elif random_slopes is False or random_slopes is None:
        slopes = []
    else:
        slopes = [random_slopes] if isinstance(random_slopes, str) else list(random_slopes)
        unknown = [name for name in slopes if name not in names]
        if unknown:
            raise MixedModelError(f"random_slopes names {unknown} are not measures ({names})")
    X = np.column_stack([np.ones(len(table))] + [table[name].to_numpy(dtype=float) for name in names])
    subject_codes, subject_levels = pd.factorize(table[subject], sort=True)
    stimulus_codes, stimulus_levels = pd.factorize(table[stimulus], sort=True)
    factors = [
        Factor(stimulus, stimulus_codes.astype(np.int64), len(stimulus_levels), np.ones((len(table), 1)),
               ("Intercept",)),
        Factor(subject, subject_codes.astype(np.int64), len(subject_levels),
               np.column_stack([np.ones(len(table))] + [table[name].to_numpy(dtype=float) for name in slopes]),
               ("Intercept", *slopes)),
    ]
    if df_method not in DF_METHODS:
        raise MixedModelError(f"df_method must be one of {list(DF_METHODS)}, got {df_method!r}")
    if df_method == "kenward-roger" and not reml:
        raise MixedModelError("df_method='kenward-roger' is defined for REML fits (reml=True)")
    try:
        model = CrossedModel(y, X, factors)
        fit = model.fit(reml=reml)
    except (np.linalg.LinAlgError, ValueError) as err:
        raise MixedModelError(f"the mixed model could not be fitted: {err}") from err
    terms = ["Intercept"] + names
    beta_cov = fit.beta_cov
    if df_method == "satterthwaite":
        dfs = satterthwaite_df(model, fit.theta, reml=reml)
    elif df_method == "kenward-roger":
        try:
            beta_cov, dfs = kenward_roger(X, factors, fit)
        except ValueError as err:
            raise MixedModelError(f"{err}; use df_method='satterthwaite'") from err
    else:
        dfs = np.full(len(terms), np.inf)
    rows = []
    for k, term in enumerate(terms):
        estimate, se, df = float(fit.beta[k]), float(np.sqrt(beta_cov[k, k])), float(dfs[k])
        t, critical = estimate / se, float(sps.t.ppf(1 - (1 - ci_level) / 2, df))
        rows.append({"term": term, "estimate": estimate, "se": se, "df": df, "t": t,
                     "p_value": float(2 * sps.t.sf(abs(t), df)),
                     "ci_low": estimate - critical * se, "ci_high": estimate + critical * se})
    rows.append({"term": f"var({stimulus})", "estimate": float(fit.covariances[stimulus][0, 0])})
    covariance = fit.covariances[subject]
    subject_terms = ("Intercept", *slopes)
    rows.append({"term": f"var({subject})", "estimate": float(covariance[0, 0])})
    for a in range(1, len(subject_terms)):
        rows.append({"term": f"var({subject_terms[a]} | {subject})", "estimate": float(covariance[a, a])})
    for a in range(len(subject_terms)):
        for c in range(a + 1, len(subject_terms)):
            scale = np.sqrt(covariance[a, a] * covariance[c, c])
            rows.append({"term": f"cor({subject_terms[a]}, {subject_terms[c]} | {subject})",
                         "estimate": float(covariance[a, c] / scale) if scale > 0 else float("nan")})
    rows.append({"term": "var(residual)", "estimate": fit.sigma2})
    result = pd.DataFrame(rows, columns=["term", "estimate", "se", "df", "t", "p_value", "ci_low", "ci_high"])
    left = f"log({response})" if log_response else response
    subject_part = " + ".join(("1", *slopes))
    n_theta = fit.theta.size
    result.attrs.update(
        formula=f"{left} ~ {' + '.join(names)} + ({subject_part} | {subject}) + (1 | {stimulus})",
        n_trials=int(len(table)),
        n_missing_response=n_missing,
        n_subjects=int(len(subject_levels)),
        n_stimuli=int(len(stimulus_levels)),
        converged=bool(fit.converged),
        log_likelihood=float(fit.log_likelihood),
        deviance=float(fit.deviance),
        n_parameters=int(len(terms) + n_theta + 1),
        reml=bool(reml),
        fixed_effects=terms,
        random_slopes=list(slopes),
        df_method=df_method,
        theta=[float(t) for t in fit.theta],
        singular=bool(fit.singular),
        warnings=list(fit.messages),
        unused_stimuli=unused,
        ci_level=ci_level,
        fit_seconds=float(fit.seconds),
        n_evaluations=int(fit.n_evaluations),
        data_key=_data_key(y, subject_codes, stimulus_codes),
        engine=ENGINE,
    )
    return result


def mixed_model_results(table: pd.DataFrame) -> list[StatResult]:
    """The fixed-effect rows of :func:`rt_mixed_model` as :class:`StatResult` objects.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"term": ["Intercept", "m", "var(residual)"], "estimate": [-0.5, 0.1, 0.04],
    ...                       "se": [0.02, 0.01, None], "df": [9.2, 17.4, None], "t": [-25.0, 10.0, None],
    ...                       "p_value": [0.0, 0.0, None],
    ...                       "ci_low": [-0.54, 0.08, None], "ci_high": [-0.46, 0.12, None]})
    >>> [r.statistic for r in mixed_model_results(table)]
    ['mixed_model_slope[Intercept]', 'mixed_model_slope[m]']
    """
    results = []
    df_method = table.attrs.get("df_method", "normal")
    for row in table.dropna(subset=["se"]).itertuples():
        results.append(
            StatResult(
                statistic=f"mixed_model_slope[{row.term}]",
                estimate=row.estimate,
                ci_low=row.ci_low,
                ci_high=row.ci_high,
                ci_level=table.attrs.get("ci_level", 0.95),
                interval=INTERVAL_NAMES[df_method],
                method=f"linear mixed model {table.attrs.get('formula', '')} "
                       f"({'REML' if table.attrs.get('reml', True) else 'ML'}, {ENGINE}; "
                       + DF_METHODS[df_method].format(df=row.df) + ")",
                p_value=row.p_value,
                n=table.attrs.get("n_trials"),
                extra={"se": row.se, "df": row.df, "converged": table.attrs.get("converged", True)},
            )
        )
    return results


def compare_mixed_models(reduced: pd.DataFrame, full: pd.DataFrame) -> StatResult:
    """Likelihood-ratio test of a reduced mixed model against a fuller one, both from :func:`rt_mixed_model`.

    ``2 (log L_full - log L_reduced)`` is referred to a chi-square with as
    many degrees of freedom as the full model has extra parameters (as
    ``anova(reduced, full)`` in lme4). Both must be fitted to the same trials.
    Models that differ in their fixed effects must be fitted by maximum
    likelihood (``reml=False``): REML likelihoods of different fixed effects
    are not comparable. Models that differ only in random effects may be
    REML fits. A variance tested at its boundary (zero) makes the chi-square
    p-value conservative (the null distribution is a mixture of chi-squares).

    Parameters
    ----------
    reduced, full : pandas.DataFrame
        Tables returned by :func:`rt_mixed_model`.

    Returns
    -------
    StatResult
        ``estimate`` is the likelihood-ratio statistic, ``p_value`` its
        chi-square p-value; ``extra`` holds ``df`` and both log-likelihoods.

    Raises
    ------
    MixedModelError
        Different trials, no extra parameter in ``full``, or REML fits with
        different fixed effects.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from brainres.stats.mixed import rt_mixed_model, compare_mixed_models
    >>> rng = np.random.default_rng(1)
    >>> stimuli = [f"s{i}" for i in range(30)]
    >>> measures = pd.DataFrame({"time": rng.normal(size=30), "noise": rng.normal(size=30)}, index=stimuli)
    >>> trials = pd.DataFrame([{"subject": f"p{j}", "stimulus_id": s,
    ...                         "rt": float(np.exp(-0.5 + 0.2 * measures.loc[s, "time"] + rng.normal(scale=0.2)))}
    ...                        for j in range(6) for s in stimuli])
    >>> reduced = rt_mixed_model(trials, measures[["time"]], reml=False, random_slopes=False)
    >>> full = rt_mixed_model(trials, measures, reml=False, random_slopes=False)
    >>> test = compare_mixed_models(reduced, full)
    >>> test.extra["df"], bool(0 <= test.p_value <= 1)
    (1, True)
    """
    for name, table in (("reduced", reduced), ("full", full)):
        missing = [k for k in ("log_likelihood", "n_parameters", "data_key", "reml", "fixed_effects") if k not in table.attrs]
        if missing:
            raise MixedModelError(f"{name} is not a table from rt_mixed_model (attrs lack {missing})")
    if reduced.attrs["data_key"] != full.attrs["data_key"]:
        raise MixedModelError("the two models were fitted to different trials (or responses); "
                              "a likelihood-ratio test needs the same data")
    df = full.attrs["n_parameters"] - reduced.attrs["n_parameters"]
    if df <= 0:
        raise MixedModelError(f"the full model has {full.attrs['n_parameters']} parameters, the reduced "
                              f"{reduced.attrs['n_parameters']}: pass the smaller model first")
    same_fixed = list(reduced.attrs["fixed_effects"]) == list(full.attrs["fixed_effects"])
    reml = reduced.attrs["reml"] or full.attrs["reml"]
    if reml and not same_fixed:
        raise MixedModelError("the models differ in their fixed effects; refit both with reml=False "
                              "(REML likelihoods of different fixed effects are not comparable)")
    if reduced.attrs["reml"] != full.attrs["reml"]:
        raise MixedModelError("one model was fitted by REML and the other by ML; fit both the same way")
    statistic = max(0.0, 2 * (full.attrs["log_likelihood"] - reduced.attrs["log_likelihood"]))
    p_value = float(sps.chi2.sf(statistic, df))
    method = (f"likelihood-ratio test ({'REML' if reml else 'ML'}), chi-square with {df} df: "
              f"{reduced.attrs.get('formula', 'reduced')} vs {full.attrs.get('formula', 'full')}")
    return StatResult(
        statistic="likelihood_ratio",
        estimate=statistic,
        method=method,
        p_value=p_value,
        n=full.attrs.get("n_trials"),
        extra={"df": int(df), "log_likelihood_reduced": reduced.attrs["log_likelihood"],
               "log_likelihood_full": full.attrs["log_likelihood"], "reml": bool(reml)},
    )


def _prepare(trials, measures, response, log_response, subject, stimulus):
    """Trials with their response (logged) and per-trial measures; checks the design."""
    table = _trials_table(trials, response, subject, stimulus)
    predictors = _measures_table(measures)
    for name in predictors.columns:
        if not _NAME.match(name) or name in (response, subject, stimulus, "Intercept"):
            raise MixedModelError(f"measure name {name!r} must be a plain identifier distinct from the trial columns")
    trial_stimuli = pd.unique(table[stimulus])
    missing = sorted(set(trial_stimuli) - set(predictors.index))
    if missing:
        raise StimulusMismatchError(missing, [], "measures", "trials")
    unused = sorted(set(predictors.index) - set(trial_stimuli))
    n_missing = int(table[response].isna().sum())
    table = table.dropna(subset=[response]).reset_index(drop=True)
    y = table[response].to_numpy(dtype=float)
    if log_response:
        bad = np.flatnonzero(y <= 0)
        if bad.size:
            raise MixedModelError(
                f"{bad.size} trial(s) have {response} <= 0 (first: {table.iloc[bad[0]][stimulus]!r}, "
                f"subject {table.iloc[bad[0]][subject]!r}); log({response}) is undefined"
            )
        y = np.log(y)
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
    X = np.column_stack([np.ones(len(table))] + [table[name].to_numpy(dtype=float) for name in predictors.columns])
    if np.linalg.matrix_rank(X.T @ X) < X.shape[1]:
        raise MixedModelError(f"the measures {list(predictors.columns)} are collinear over the fitted trials")
    return table, y, predictors, n_missing, unused


def _data_key(y, subject_codes, stimulus_codes):
    digest = hashlib.sha1()
    for array in (np.ascontiguousarray(y, dtype=float), np.ascontiguousarray(subject_codes, dtype=np.int64),
                  np.ascontiguousarray(stimulus_codes, dtype=np.int64)):
        digest.update(array.tobytes())
    return digest.hexdigest()


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
