"""Coverage of every interval ``time-vs-rt`` and ``model-comparison`` report, each against its stated estimand.

Each simulated study draws, for every stimulus, latent (noise-free) effects
``(m_i, h_i)``, standard bivariate normal with correlation ``rho``; model seed
``s`` measures ``3 + m_i + a_s + seed_noise * e_si`` (``a_s`` a seed's overall
shift), subject ``j`` measures ``0.8 + 0.1 (h_i + b_j + subject_noise * u_ji)``
(``b_j`` a subject's overall speed), and a share ``missing`` of the subject x
stimulus cells is missing (missed trials, at random). Estimands and their true
values:

* ``latent``: the correlation of the noise-free effects ``m``, ``h`` over the
  stimulus population: ``rho`` (Pearson) or ``6/pi asin(rho/2)`` (Spearman).
* ``design``: the correlation of the model's mean over this many seeds with
  the mean of this many subjects (with the missing cells), over stimuli: the
  value in one study of 400,000 stimuli.
* ``seeds_infinite``: as ``design`` with infinitely many seeds and this many
  subjects (what the seed x stimulus bootstrap resamples toward).
* ``reliability``: the reliability of the mean of this many subjects (the
  correlation of two independent such means), from 400,000 stimuli.

Rows (interval, as the comparisons compute it -> estimand):

* analytic Fisher z of the plain correlation -> design;
* two-factor (seed x stimulus) bootstrap, bias-shifted percentile -> seeds_infinite;
* three-factor (seed x stimulus x subject) bootstrap, bias-shifted percentile -> latent;
* noise-corrected correlation (variance components, BCa, the default since 27 Nov 2026) -> latent;
* the same with the percentile interval (the earlier default; same resamples) -> latent;
* human split-half reliability (BCa over stimuli) -> reliability;
* model-comparison: paired difference of two models' correlations
  (bias-shifted percentile) -> latent difference and design difference.

Coverage is given with its Clopper-Pearson 95 % interval (scipy.stats.binomtest).

    nice -n 10 python docs/experiments/calibrate_time_vs_rt.py --studies 500 --resamples 999
    nice -n 10 python docs/experiments/calibrate_time_vs_rt.py --studies 500 --cells difference
    nice -n 10 python docs/experiments/calibrate_time_vs_rt.py --studies 500 --cells corners
    python docs/experiments/calibrate_time_vs_rt.py --studies 500 --cells corners --corners 4 \
        --only reliability --reliability-every 1   # the reliability at 10 x 2,000 x 50 in every study
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np
from scipy import stats as sps
from scipy.stats import binomtest

from brainres.stats import (
    bootstrap_correlation,
    bootstrap_correlation_difference,
    correlate,
    disattenuated_correlation,
    split_half_reliability,
)

SMALL = dict(n_seeds=3, n_stimuli=160, n_subjects=10)
LARGE = dict(n_seeds=5, n_stimuli=400, n_subjects=20)
# The split-half reliability's interval recomputes 100 splits per resample (seconds per study): it is scored
# in every RELIABILITY_EVERY-th study only, and its row says how many studies that is.
RELIABILITY_EVERY = 5
CORRELATION_CELLS = tuple(dict(**design, rho=rho, method=method)
                          for design in (SMALL, LARGE) for rho in (0.0, 0.5) for method in ("pearson", "spearman"))
# The corners of the design range the headline (noise-corrected) interval is claimed for: 3-10 seeds, 100-2,000
# stimuli, 5-50 subjects. At the largest the split-half reliability costs about 10 s a study, so it is scored in
# every 25th study there.
SMALLEST = dict(n_seeds=3, n_stimuli=100, n_subjects=5)
LARGEST = dict(n_seeds=10, n_stimuli=2000, n_subjects=50)
CORNER_CELLS = (*(dict(**SMALLEST, rho=rho, method=method, reliability_every=1)
                  for rho in (0.0, 0.5) for method in ("pearson", "spearman")),
                *(dict(**LARGEST, rho=rho, method="spearman", reliability_every=25) for rho in (0.0, 0.5)))
DIFFERENCE_CELLS = (dict(**SMALL, rho_a=0.8, rho_b=0.5), dict(**SMALL, rho_a=0.6, rho_b=0.6),
                    dict(**LARGE, rho_a=0.8, rho_b=0.5))
NOISE = dict(seed_noise=1.0, subject_noise=2.0, missing=0.1)


def latent_effects(rng, n_stimuli, rho):
    h = rng.standard_normal(n_stimuli)
    m = rho * h + math.sqrt(1 - rho**2) * rng.standard_normal(n_stimuli)
    return m, h


def measure(rng, effects, n_units, noise, *, scale=1.0, offset=0.0, missing=0.0):
    """Units x stimuli: ``offset + scale (effect + unit shift + noise)``, a share ``missing`` of cells NaN."""
    values = offset + scale * (effects[None, :] + 0.5 * rng.standard_normal((n_units, 1))
                               + noise * rng.standard_normal((n_units, effects.size)))
    if missing:
        values[rng.random(values.shape) < missing] = np.nan
    return values


def study(rng, *, n_seeds, n_stimuli, n_subjects, rho, seed_noise, subject_noise, missing):
    """One simulated study: model (seed, stimulus) times and human (subject, stimulus) RTs."""
    m, h = latent_effects(rng, n_stimuli, rho)
    model = measure(rng, m, n_seeds, seed_noise, offset=3.0)
    human = measure(rng, h, n_subjects, subject_noise, scale=0.1, offset=0.8, missing=missing)
    return model, human


def _correlation(x, y, method):
    return float(sps.pearsonr(x, y)[0] if method == "pearson" else sps.spearmanr(x, y)[0])


def truths(*, n_seeds, n_subjects, rho, method, seed_noise, subject_noise, missing, n_big=400_000, seed=12345):
    """True values of every estimand at a design (see the module docstring)."""
    rng = np.random.default_rng(seed)
    m, h = latent_effects(rng, n_big, rho)
    model_mean = np.nanmean(measure(rng, m, n_seeds, seed_noise), axis=0)
    with warnings.catch_warnings():  # at 5 subjects a few of the 400,000 stimuli miss every subject: dropped below
        warnings.simplefilter("ignore", RuntimeWarning)
        humans = [np.nanmean(measure(rng, h, n_subjects, subject_noise, missing=missing), axis=0) for _ in range(2)]
    keep = ~np.isnan(humans[0]) & ~np.isnan(humans[1])
    latent = rho if method == "pearson" else 6 / math.pi * math.asin(rho / 2)
    return {"latent": latent,
            "design": _correlation(model_mean[keep], humans[0][keep], method),
            "seeds_infinite": _correlation(m[keep], humans[0][keep], method),
            "reliability": _correlation(humans[0][keep], humans[1][keep], method)}


def correlation_rows(model, human, *, method, n_resamples, seed, reliability=True, only=None):
    """Every interval time-vs-rt reports, computed as time-vs-rt computes it, with the estimand it is scored on.

    ``only="noise-corrected"`` computes just the noise-corrected correlation (cheap); ``only="reliability"``
    just the human split-half reliability (where ``reliability`` is true), which depends on the human data alone.
    """
    if only == "noise-corrected":
        return noise_corrected_rows(model, human, method=method, n_resamples=n_resamples, seed=seed)
    if only == "reliability":
        return {("human split-half reliability (BCa)", "reliability"): split_half_reliability(
            human, method=method, n_resamples=n_resamples, seed=seed)} if reliability else {}
    model_mean, human_mean = model.mean(axis=0), np.nanmean(human, axis=0)
    rows = {("analytic (Fisher z)", "design"): correlate(model_mean, human_mean, method=method)}
    for factors, name in ((("seed", "stimulus"), "seed x stimulus, bias-shifted percentile"),
                          (("seed", "stimulus", "subject"), "seed x stimulus x subject, bias-shifted percentile")):
        estimand = "seeds_infinite" if len(factors) == 2 else "latent"
        rows[(name, estimand)] = bootstrap_correlation(model, human, method=method, resample=factors,
                                                       n_resamples=n_resamples, seed=seed)
    rows.update(noise_corrected_rows(model, human, method=method, n_resamples=n_resamples, seed=seed))
    if reliability:
        rows[("human split-half reliability (BCa)", "reliability")] = split_half_reliability(
            human, method=method, n_resamples=n_resamples, seed=seed)
    return rows


NOISE_CORRECTED = "noise-corrected (variance components, BCa)"
EARLIER_NOISE_CORRECTED = "noise-corrected (variance components, percentile; the earlier default)"


def noise_corrected_rows(model, human, *, method, n_resamples, seed):
    """time-vs-rt's noise-corrected correlation (its default interval, BCa) and, from the same resamples, the
    percentile interval it reported before 27 Nov 2026 (scored, not claimed)."""
    return {(name, "latent"): disattenuated_correlation(model, human, method=method, n_resamples=n_resamples,
                                                        seed=seed, interval=interval)
            for name, interval in ((NOISE_CORRECTED, "bca"), (EARLIER_NOISE_CORRECTED, "percentile"))}


def calibrate_correlation(*, studies, n_seeds, n_stimuli, n_subjects, rho, method, n_resamples=999, seed=0,
                          noise=NOISE, progress=0, only=None, reliability_every=None):
    """Coverage rows for one cell of the correlation calibration."""
    reliability_every = reliability_every or RELIABILITY_EVERY
    truth = truths(n_seeds=n_seeds, n_subjects=n_subjects, rho=rho, method=method, **noise)
    rng = np.random.default_rng(seed)
    hits, widths, estimates, below = {}, {}, {}, {}
    for index in range(studies):
        model, human = study(rng, n_seeds=n_seeds, n_stimuli=n_stimuli, n_subjects=n_subjects, rho=rho, **noise)
        for key, result in correlation_rows(model, human, method=method, n_resamples=n_resamples, seed=index,
                                            reliability=index % reliability_every == 0, only=only).items():
            hits.setdefault(key, []).append(result.ci_low <= truth[key[1]] <= result.ci_high)
            below.setdefault(key, []).append(truth[key[1]] < result.ci_low)  # a miss with the truth below
            widths.setdefault(key, []).append(result.ci_high - result.ci_low)
            estimates.setdefault(key, []).append(result.estimate)
        if progress and (index + 1) % progress == 0 and index + 1 < studies:
            print(f"<!-- after {index + 1} studies:", flush=True)
            for interval, estimand in hits:
                print(format_row(_row(dict(n_seeds=n_seeds, n_stimuli=n_stimuli, n_subjects=n_subjects, rho=rho,
                                           method=method), interval, estimand, truth[estimand],
                                      hits[(interval, estimand)], widths[(interval, estimand)],
                                      estimates[(interval, estimand)])), flush=True)
            print("-->", flush=True)
    # which side the misses fall on: a skewed interval misses on one side more than on the other
    print("<!-- misses, truth below the interval / above it: " + "; ".join(
        f"{interval}: {sum(below[key])} / {len(hits[key]) - sum(hits[key]) - sum(below[key])}"
        for key in hits for interval in [key[0]]) + " -->", flush=True)
    design = dict(n_seeds=n_seeds, n_stimuli=n_stimuli, n_subjects=n_subjects, rho=rho, method=method)
    return [_row(design, interval, estimand, truth[estimand], hits[(interval, estimand)],
                 widths[(interval, estimand)], estimates[(interval, estimand)])
            for interval, estimand in hits]


def calibrate_difference(*, studies, n_seeds, n_stimuli, n_subjects, rho_a, rho_b, n_resamples=999, seed=0,
                         noise=NOISE, method="spearman"):
    """Coverage of the model-comparison difference interval (bias-shifted percentile) at one design."""
    rng = np.random.default_rng(seed + 1)
    latent = {"pearson": lambda r: r, "spearman": lambda r: 6 / math.pi * math.asin(r / 2)}[method]
    h_big, model_means = None, {}
    big = np.random.default_rng(54321)
    m_a, h_big = latent_effects(big, 400_000, rho_a)
    m_b = rho_b * h_big + math.sqrt(1 - rho_b**2) * big.standard_normal(h_big.size)
    human_mean = np.nanmean(measure(big, h_big, n_subjects, noise["subject_noise"], missing=noise["missing"]), axis=0)
    keep = ~np.isnan(human_mean)
    for name, m in (("a", m_a), ("b", m_b)):
        model_means[name] = np.nanmean(measure(big, m, n_seeds, noise["seed_noise"]), axis=0)
    truth = {"latent": latent(rho_a) - latent(rho_b),
             "design": _correlation(model_means["a"][keep], human_mean[keep], method)
             - _correlation(model_means["b"][keep], human_mean[keep], method)}
    hits, widths, estimates = {k: [] for k in truth}, [], []
    for index in range(studies):
        h = rng.standard_normal(n_stimuli)
        models = [measure(rng, r * h + math.sqrt(1 - r**2) * rng.standard_normal(n_stimuli), n_seeds,
                          noise["seed_noise"], offset=3.0) for r in (rho_a, rho_b)]
        human = measure(rng, h, n_subjects, noise["subject_noise"], scale=0.1, offset=0.8, missing=noise["missing"])
        result = bootstrap_correlation_difference(*models, human, method=method, n_resamples=n_resamples, seed=index)
        for estimand, value in truth.items():
            hits[estimand].append(result.ci_low <= value <= result.ci_high)
        widths.append(result.ci_high - result.ci_low)
        estimates.append(result.estimate)
    design = dict(n_seeds=n_seeds, n_stimuli=n_stimuli, n_subjects=n_subjects, rho=f"{rho_a} vs {rho_b}",
                  method=method)
    return [_row(design, "paired difference, bias-shifted percentile", estimand, truth[estimand], hits[estimand],
                 widths, estimates) for estimand in truth]


def _row(design, interval, estimand, truth, hits, widths, estimates):
    k, n = int(np.sum(hits)), len(hits)
    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return {**design, "interval": interval, "estimand": estimand, "truth": float(truth), "studies": n,
            "covered": k, "coverage": k / n, "coverage_low": ci.low, "coverage_high": ci.high,
            "mean_width": float(np.mean(widths)), "mean_estimate": float(np.mean(estimates))}


def format_row(row) -> str:
    return (f"| {row['n_seeds']} x {row['n_stimuli']} x {row['n_subjects']} | {row['rho']} | {row['method']} "
            f"| {row['interval']} | {row['estimand']} ({row['truth']:.3f}) | {row['mean_estimate']:.3f} "
            f"| {row['coverage']:.3f} [{row['coverage_low']:.3f}, {row['coverage_high']:.3f}] "
            f"| {row['mean_width']:.3f} | {row['studies']} |")


HEADER = ("| seeds x stimuli x subjects | rho | method | interval | estimand (true value) | mean estimate "
          "| coverage [95% CI] | mean width | studies |\n|---|---|---|---|---|---|---|---|---|")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=500)
    parser.add_argument("--resamples", type=int, default=999)
    parser.add_argument("--progress", type=int, default=100, help="print interim rows every N studies")
    parser.add_argument("--only", default=None, choices=("noise-corrected", "reliability"),
                        help="'noise-corrected': only its rows (cheap); 'reliability': only the human split-half "
                             "reliability")
    parser.add_argument("--reliability-every", type=int, default=None,
                        help=f"score the split-half reliability in every N-th study (default {RELIABILITY_EVERY}, "
                             "or the corner cell's own; the slow test uses 1)")
    parser.add_argument("--cells", default="all",
                        help="'all', 'correlation', 'difference', 'corners', or comma-separated indices of "
                             "correlation cells")
    parser.add_argument("--corners", default=None,
                        help="with --cells corners: comma-separated indices of corner cells (default all)")
    args = parser.parse_args()
    print(HEADER, flush=True)
    if args.cells in ("all", "correlation") or args.cells[0].isdigit():
        chosen = (range(len(CORRELATION_CELLS)) if not args.cells[0].isdigit()
                  else [int(i) for i in args.cells.split(",")])
        for index in chosen:
            started = time.perf_counter()
            for row in calibrate_correlation(studies=args.studies, n_resamples=args.resamples,
                                             progress=args.progress, only=args.only,
                                             reliability_every=args.reliability_every, **CORRELATION_CELLS[index]):
                print(format_row(row), flush=True)
            print(f"<!-- correlation cell {index} took {time.perf_counter() - started:.0f} s -->", flush=True)
    if args.cells in ("all", "corners"):
        chosen = range(len(CORNER_CELLS)) if args.corners is None else [int(i) for i in args.corners.split(",")]
        for index in chosen:
            cell = dict(CORNER_CELLS[index])
            cell["reliability_every"] = args.reliability_every or cell["reliability_every"]
            started = time.perf_counter()
            for row in calibrate_correlation(studies=args.studies, n_resamples=args.resamples,
                                             progress=args.progress, only=args.only, **cell):
                print(format_row(row), flush=True)
            print(f"<!-- corner cell {index} took {time.perf_counter() - started:.0f} s -->", flush=True)
    if args.cells in ("all", "difference"):
        for cell in DIFFERENCE_CELLS:
            started = time.perf_counter()
            for row in calibrate_difference(studies=args.studies, n_resamples=args.resamples, **cell):
                print(format_row(row), flush=True)
            print(f"<!-- difference cell took {time.perf_counter() - started:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
