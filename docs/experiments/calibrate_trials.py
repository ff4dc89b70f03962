"""Coverage of the mixed-model and partial-correlation intervals ``time-vs-rt`` reports, and the scoring the
calibration scripts of the label counts share.

Two parts, each scored against the estimand its function states (issue 13: "every interval type the
comparisons report"). Coverage is given with its Clopper-Pearson 95 % interval
(``scipy.stats.binomtest(k, n).proportion_ci(0.95, method="exact")``).

``mixed``: the slope of ``rt_mixed_model`` as ``time-vs-rt`` fits it (``log rt ~ model_time_z +
    (1 + model_time_z | subject) + (1 | stimulus)``, t interval with Satterthwaite's df). Per stimulus a model
    time ``x_i ~ N(0, 1)``, standardised over the study's stimuli as ``time-vs-rt`` does;
    ``log rt_ji = log 0.8 + (beta + w_j) z_i + u_i + v_j + e_ji`` with stimulus intercepts
    ``u ~ N(0, 0.1^2)``, subject intercepts ``v ~ N(0, 0.15^2)``, subjects' slope deviations
    ``w ~ N(0, sd^2)`` (sd 0 or 0.03), residual ``e ~ N(0, 0.3^2)``; a share ``missing`` of the trials is
    dropped at random. Estimand: ``beta``, the mean slope over the population of subjects. The same trials
    are also fitted as ``time-vs-rt`` fitted them until 27 Nov 2026 (random intercepts only, normal
    quantile), with Kenward-Roger's adjusted SE and df, and the first fit's SE is also scored with a normal
    quantile, for comparison (not claimed). For time-vs-rt's fit each cell ends with a comment line: coverage
    among the studies whose fit ended with a variance at zero and among the others, the SD of the estimates
    against the RMS standard error, the misses on each side and the median df.

``partial``: ``partial_correlation`` of the model's seed mean with the subjects' mean RT, controlling
    for the subjects' mean accuracy (``control_accuracy=True``; analytic Fisher z interval with
    ``n - k`` in place of ``n``). Latent per-stimulus effects: difficulty ``d``, model ``m``, human
    speed ``h``, standard normal with ``corr(m, d) = corr(h, d) = 0.5`` and ``corr(m, h | d) = rho``;
    the model's seeds measure ``m`` as above (3 seeds), subject ``j``'s RT is
    ``0.8 + 0.1 (h_i + b_j + 2 u_ji)`` and its answer is correct with probability
    ``Phi(1.5 - 0.8 d_i + 0.3 w_j)``, 10 % of trials missing. The function states no estimand beyond
    its inputs: its interval is the sampling interval of the partial correlation of these three
    per-stimulus means, so the estimand scored (``design``) is that partial correlation over the
    stimulus population, at this design (this many seeds and subjects, noise included), from one study
    of 200,000 stimuli. The latent partial correlation (``rho``) is printed too, not claimed: the
    means' noise attenuates it, and the noisy accuracy leaves part of the difficulty uncontrolled.

    nice -n 19 python docs/experiments/calibrate_trials.py --part mixed --studies 500 --progress 50
    python docs/experiments/calibrate_trials.py --part mixed --studies 100 --cells 9,10,11 --without-kenward-roger
    python docs/experiments/calibrate_trials.py --part fitter-starts --studies 100 --cells 2,1,6
    python docs/experiments/calibrate_trials.py --part lme4-peer --studies 100 --cells 5
        # time-vs-rt's fit against lme4 + lmerTest on the cell's own draws (needs R)
        # the committed fitter against a single start from lme4's slope value, on the cells' own draws
    nice -n 19 python docs/experiments/calibrate_trials.py --part partial --studies 500 --progress 50

The label counts' calibration is in ``calibrate_label_counts.py``.
"""

from __future__ import annotations

import argparse
import math
import time
import zlib

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.stats import binomtest

from brainres.stats import partial_correlation, rt_mixed_model

N_POPULATION = 200_000
# The corners of the range the issue names (5-50 subjects, 100-2,000 stimuli) and the two designs between; per design
# no slope, a slope shared by all subjects, and subjects whose slopes differ.
MIXED_CELLS = tuple({"n_subjects": n_subjects, "n_stimuli": n_stimuli, "slope": slope, "subject_slope_sd": sd}
                    for n_subjects, n_stimuli in ((5, 100), (10, 160), (20, 400), (50, 2000))
                    for slope, sd in ((0.0, 0.0), (0.05, 0.0), (0.05, 0.03)))
MIXED_FITS = (  # (interval, estimand, keyword arguments of rt_mixed_model, normal quantile); the first is time-vs-rt's
    ("mixed-model slope, subjects' slopes fitted (t, Satterthwaite df)", "mean slope over subjects", {}, False),
    ("mixed-model slope, subjects' slopes fitted (t, Kenward-Roger SE and df)", "mean slope over subjects (not claimed)",
     {"df_method": "kenward-roger"}, False),
    # the first fit's SE with a normal quantile (no second fit)
    ("mixed-model slope, subjects' slopes fitted (Wald, normal quantile)", "mean slope over subjects (not claimed)",
     {}, True),
    ("mixed-model slope, random intercepts only (Wald, normal quantile; the earlier default)",
     "mean slope over subjects (not claimed)", {"random_slopes": False, "df_method": "normal"}, False),
)
PARTIAL_CELLS = tuple({"n_stimuli": n_stimuli, "rho": rho, "method": method}
                      for method in ("spearman", "pearson") for n_stimuli in (160, 400) for rho in (0.0, 0.4))
MISSING = 0.1


def cell_seed(seed, *design):
    """A random stream per cell: cells that differ only in rho or slope would otherwise share every draw (the
    mixed model's slope interval is equivariant, so such cells would repeat one another's coverage exactly)."""
    return [seed, zlib.crc32(repr(design).encode())]


# ---------------------------------------------------------------------------------------------------- mixed
def mixed_study(rng, *, n_subjects, n_stimuli, slope, missing=MISSING, subject_slope_sd=0.0):
    """Trial table (subject, stimulus_id, rt) and the standardised per-stimulus model time.

    ``subject_slope_sd > 0``: each subject's slope is ``slope`` plus a normal deviation of this SD (a model that
    time-vs-rt's random intercepts do not describe).
    """
    x = rng.standard_normal(n_stimuli)
    z = (x - x.mean()) / x.std()  # as time-vs-rt standardises the seed mean
    stimuli = np.array([f"s{i}" for i in range(n_stimuli)])
    log_rt = (math.log(0.8) + (slope * z + 0.1 * rng.standard_normal(n_stimuli))[None, :]
              + 0.15 * rng.standard_normal((n_subjects, 1)) + 0.3 * rng.standard_normal((n_subjects, n_stimuli)))
    if subject_slope_sd:
        log_rt += subject_slope_sd * rng.standard_normal((n_subjects, 1)) * z[None, :]
    keep = rng.random(log_rt.shape) >= missing
    subject, stimulus = np.nonzero(keep)
    trials = pd.DataFrame({"subject": [f"p{j}" for j in subject], "stimulus_id": stimuli[stimulus],
                           "rt": np.exp(log_rt[keep])})
    return trials, pd.Series(z, index=stimuli, name="model_time_z")


def calibrate_mixed(*, studies, n_subjects, n_stimuli, slope, subject_slope_sd=0.0, seed=0, progress=0,
                    kenward_roger=True, **_):
    key = (n_subjects, n_stimuli, slope) + ((subject_slope_sd,) if subject_slope_sd else ())
    rng = np.random.default_rng(cell_seed(seed, *key))
    design = {"design": f"{n_subjects} subjects x {n_stimuli} stimuli, {MISSING:.0%} missing, subjects' slopes SD "
                        f"{subject_slope_sd}", "rho": slope, "method": "REML", "measure": "log rt"}
    # Kenward-Roger costs about 8 s a study at 50 x 2,000 (dense over the 2,100 random-effect columns)
    fits = [fit for fit in MIXED_FITS if kenward_roger or fit[2].get("df_method") != "kenward-roger"]
    scores = _Scores(design, {estimand: slope for _, estimand, _, _ in fits})
    singular, spread = {True: [], False: []}, []
    for index in range(studies):
        trials, measure = mixed_study(rng, n_subjects=n_subjects, n_stimuli=n_stimuli, slope=slope,
                                      subject_slope_sd=subject_slope_sd)
        fitted = {}
        for interval, estimand, options, normal_quantile in fits:
            fit_key = tuple(sorted(options.items()))
            if fit_key not in fitted:
                table = rt_mixed_model(trials, measure, **options)
                fitted[fit_key] = _slope(table)
                if not options:  # time-vs-rt's fit: where it misses, and whether its SE matches the spread
                    default = fitted[fit_key]
                    covered = default["ci_low"] <= slope <= default["ci_high"]
                    singular[table.attrs["singular"]].append(covered)
                    spread.append((default["estimate"], default["se"], default["df"],
                                   default["ci_high"] < slope, default["ci_low"] > slope))
            row = fitted[fit_key]
            low, high = row["ci_low"], row["ci_high"]
            if normal_quantile:
                half = sps.norm.ppf(0.975) * row["se"]
                low, high = row["estimate"] - half, row["estimate"] + half
            scores.add((interval, estimand), low, high, row["estimate"])
        scores.progress(index, studies, progress)
    estimate, se, df, below, above = np.array(spread).T
    print(f"<!-- {key}, time-vs-rt's fit: " + "; ".join(
        f"{len(hits)} studies {'with' if at_zero else 'without'} a variance estimated at zero, coverage "
        f"{np.mean(hits):.3f}" for at_zero, hits in singular.items() if hits)
        + f"; SD of the estimates {estimate.std(ddof=1):.5f}, RMS standard error {np.sqrt(np.mean(se**2)):.5f}, "
          f"misses below {int(below.sum())} and above {int(above.sum())}, median df {np.median(df):.1f} -->",
          flush=True)
    return scores.rows()


def compare_fitter_starts(*, studies, n_subjects, n_stimuli, slope, subject_slope_sd=0.0, seed=0, **_):
    """The committed fitter against a single start from lme4's slope value (what the first mixed run used), on a
    cell's own draws: how many fits end elsewhere, how far the interval moves, and how many coverage hits differ."""
    from brainres.stats import mixed_fit

    key = (n_subjects, n_stimuli, slope) + ((subject_slope_sd,) if subject_slope_sd else ())
    rng = np.random.default_rng(cell_seed(seed, *key))
    committed_start, committed_near = mixed_fit.CrossedModel._moment_start, mixed_fit.NEAR_BOUNDARY

    def single_start(self, X, y):
        start = committed_start(self, X, y)
        return None if start is None else self._slopes_at_one(start)

    moved, worst, flips, gaps = 0, 0.0, 0, []
    try:
        for _ in range(studies):
            trials, measure = mixed_study(rng, n_subjects=n_subjects, n_stimuli=n_stimuli, slope=slope,
                                          subject_slope_sd=subject_slope_sd)
            tables = []
            for start, near in ((single_start, -1.0), (committed_start, committed_near)):
                mixed_fit.CrossedModel._moment_start, mixed_fit.NEAR_BOUNDARY = start, near
                tables.append(rt_mixed_model(trials, measure))
            old, new = (_slope(t) for t in tables)
            change = max(abs(old["ci_low"] - new["ci_low"]), abs(old["ci_high"] - new["ci_high"]))
            worst = max(worst, change)
            moved += change > 1e-6
            gaps.append(tables[1].attrs["log_likelihood"] - tables[0].attrs["log_likelihood"])
            flips += (old["ci_low"] <= slope <= old["ci_high"]) != (new["ci_low"] <= slope <= new["ci_high"])
    finally:
        mixed_fit.CrossedModel._moment_start, mixed_fit.NEAR_BOUNDARY = committed_start, committed_near
    gaps = np.array(gaps)
    print(f"<!-- {key}: {studies} studies; interval moved (> 1e-6) in {moved}, largest move {worst:.1e}; coverage hits "
          f"that differ {flips}; log-likelihood gain of the committed fitter: largest {gaps.max():.3g}, smallest "
          f"{gaps.min():.3g} -->", flush=True)
    return []


def compare_with_lme4(*, studies, n_subjects, n_stimuli, slope, subject_slope_sd=0.0, seed=0, **_):
    """time-vs-rt's fit against lme4 + lmerTest (tight tolerances) on a cell's own draws: the largest relative
    differences of the slope's estimate, SE and Satterthwaite df and of the log-likelihood (needs R)."""
    from brainres.stats.mixed_lme4 import fit_lme4

    key = (n_subjects, n_stimuli, slope) + ((subject_slope_sd,) if subject_slope_sd else ())
    rng = np.random.default_rng(cell_seed(seed, *key))
    worst = {"estimate": 0.0, "se": 0.0, "df": 0.0, "log_likelihood": 0.0}
    for _ in range(studies):
        trials, measure = mixed_study(rng, n_subjects=n_subjects, n_stimuli=n_stimuli, slope=slope,
                                      subject_slope_sd=subject_slope_sd)
        table = rt_mixed_model(trials, measure)
        ours = _slope(table)
        peer = fit_lme4(np.log(trials["rt"].to_numpy()), trials["subject"], trials["stimulus_id"],
                        pd.DataFrame({"model_time_z": measure.reindex(trials["stimulus_id"]).to_numpy()}),
                        random_slopes=["model_time_z"], satterthwaite=True, tight=True)
        pairs = {"estimate": (ours["estimate"], peer["fixef"]["model_time_z"]),
                 "se": (ours["se"], peer["se"]["model_time_z"]), "df": (ours["df"], peer["df"]["model_time_z"]),
                 "log_likelihood": (table.attrs["log_likelihood"], peer["loglik"])}
        for name, (mine, theirs) in pairs.items():
            worst[name] = max(worst[name], abs(mine - theirs) / abs(theirs))
    print(f"<!-- {key}: {studies} studies against lme4 + lmerTest; largest relative difference: "
          + ", ".join(f"{name} {value:.1e}" for name, value in worst.items()) + " -->", flush=True)
    return []


def _slope(table):
    return table.loc[table["term"] == "model_time_z"].iloc[0]


# ---------------------------------------------------------------------------------------------------- partial
def partial_latents(rng, n, rho):
    """Difficulty d, model m, human speed h: corr(m, d) = corr(h, d) = 0.5, corr(m, h | d) = rho."""
    d = rng.standard_normal(n)
    residual_sd = math.sqrt(1 - 0.25)
    e_m = rng.standard_normal(n)
    e_h = rho * e_m + math.sqrt(1 - rho**2) * rng.standard_normal(n)
    return d, 0.5 * d + residual_sd * e_m, 0.5 * d + residual_sd * e_h


def partial_means(rng, n_stimuli, rho, n_seeds=3, n_subjects=10, missing=MISSING):
    """Per-stimulus model seed mean, mean RT and mean accuracy over the subjects who answered."""
    d, m, h = partial_latents(rng, n_stimuli, rho)
    model = (3.0 + m[None, :] + 0.5 * rng.standard_normal((n_seeds, 1))
             + rng.standard_normal((n_seeds, n_stimuli))).mean(axis=0)
    rt = 0.8 + 0.1 * (h[None, :] + 0.5 * rng.standard_normal((n_subjects, 1))
                      + 2.0 * rng.standard_normal((n_subjects, n_stimuli)))
    correct = rng.random((n_subjects, n_stimuli)) < sps.norm.cdf(
        1.5 - 0.8 * d[None, :] + 0.3 * rng.standard_normal((n_subjects, 1)))
    answered = rng.random((n_subjects, n_stimuli)) >= missing
    count = answered.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (model, np.where(answered, rt, 0).sum(axis=0) / count,
                np.where(answered, correct, 0).sum(axis=0) / count)


def _partial(x, y, z, method):
    return partial_correlation(x, y, z, method=method).estimate


def calibrate_partial(*, studies, n_stimuli, rho, method, seed=0, progress=0, **_):
    big = np.random.default_rng(4242)
    truth = {"design": _partial(*partial_means(big, N_POPULATION, rho), method)}
    d, m, h = partial_latents(big, N_POPULATION, rho)
    truth["latent (not claimed)"] = _partial(m, h, d, method)
    rng = np.random.default_rng(cell_seed(seed, n_stimuli, rho, method))
    design = {"design": f"3 seeds x {n_stimuli} stimuli x 10 subjects, {MISSING:.0%} missing", "rho": rho,
                  "method": method, "measure": "rt given accuracy"}
    scores = _Scores(design, truth)
    for index in range(studies):
        result = partial_correlation(*partial_means(rng, n_stimuli, rho), method=method)
        for estimand in truth:
            scores.add(("partial correlation (Fisher z, n - k)", estimand), result.ci_low, result.ci_high,
                       result.estimate)
        scores.progress(index, studies, progress)
    return scores.rows()


# ---------------------------------------------------------------------------------------------------- scoring
class _Scores:
    """Hits, widths and estimates per (interval, estimand) of one cell."""

    def __init__(self, design, truth):
        self.design, self.truth, self.hits, self.widths, self.estimates = design, truth, {}, {}, {}

    def add(self, key, low, high, estimate):
        self.hits.setdefault(key, []).append(bool(low <= self.truth[key[1]] <= high))
        self.widths.setdefault(key, []).append(high - low)
        self.estimates.setdefault(key, []).append(estimate)

    def rows(self):
        return [_row(self.design, interval, estimand, self.truth[estimand], self.hits[(interval, estimand)],
                     self.widths[(interval, estimand)], self.estimates[(interval, estimand)])
                for interval, estimand in self.hits]

    def progress(self, index, studies, every):
        if every and (index + 1) % every == 0 and index + 1 < studies:
            print(f"<!-- after {index + 1} studies:", flush=True)
            for row in self.rows():
                print(format_row(row), flush=True)
            print("-->", flush=True)


def _row(design, interval, estimand, truth, hits, widths, estimates):
    k, n = int(np.sum(hits)), len(hits)
    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return {**design, "interval": interval, "estimand": estimand, "truth": float(truth), "studies": n,
            "covered": k, "coverage": k / n, "coverage_low": ci.low, "coverage_high": ci.high,
            "mean_width": float(np.nanmean(widths)), "mean_estimate": float(np.nanmean(estimates))}


def format_row(row) -> str:
    return (f"| {row['design']} | {row['measure']} | {row['rho']} | {row['method']} | {row['interval']} "
            f"| {row['estimand']} ({row['truth']:.3f}) | {row['mean_estimate']:.3f} "
            f"| {row['coverage']:.3f} [{row['coverage_low']:.3f}, {row['coverage_high']:.3f}] "
            f"| {row['mean_width']:.3f} | {row['studies']} |")


HEADER = ("| design | measure | rho / slope | method | interval | estimand (true value) | mean estimate "
          "| coverage [95% CI] | mean width | studies |\n|---|---|---|---|---|---|---|---|---|---|")
PARTS = {"mixed": (MIXED_CELLS, calibrate_mixed), "lme4-peer": (MIXED_CELLS, compare_with_lme4),
         "fitter-starts": (MIXED_CELLS, compare_fitter_starts),
         "partial": (PARTIAL_CELLS, calibrate_partial)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=sorted(PARTS), required=True)
    parser.add_argument("--studies", type=int, default=500)
    parser.add_argument("--cells", default=None, help="comma-separated indices of the part's cells (default all)")
    parser.add_argument("--progress", type=int, default=100, help="print interim rows every N studies")
    parser.add_argument("--without-kenward-roger", action="store_true",
                        help="mixed: leave out the Kenward-Roger row (slow at 50 x 2,000)")
    args = parser.parse_args()
    options = {"kenward_roger": False} if args.without_kenward_roger else {}
    cells, calibrate = PARTS[args.part]
    chosen = range(len(cells)) if args.cells is None else [int(i) for i in args.cells.split(",")]
    print(HEADER, flush=True)
    print(f"<!-- {args.part}: {args.studies} studies per cell, cells {list(chosen)} -->", flush=True)
    for index in chosen:
        started = time.perf_counter()
        for row in calibrate(studies=args.studies, progress=args.progress, **cells[index], **options):
            print(format_row(row), flush=True)
        print(f"<!-- {args.part} cell {index} took {time.perf_counter() - started:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
