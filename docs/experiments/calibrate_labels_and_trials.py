"""Coverage of the label-count, mixed-model and partial-correlation intervals ``time-vs-rt`` reports.

Three parts, each scored against the estimand its function states (issue 13: "every interval type the
comparisons report"). Coverage is given with its Clopper-Pearson 95 % interval
(``scipy.stats.binomtest(k, n).proportion_ci(0.95, method="exact")``).

``labels``: human label counts, as CIFAR-10H (``measure="label_entropy"`` or ``"accuracy"``).
    Every stimulus has a true label distribution ``p_i`` over 10 labels, label 0 its category: the
    share choosing another label is ``e_i ~ Beta(0.35, 7)``, spread over the other nine labels by a
    ``Dirichlet(0.3)``. ``n_i = 47 + Binomial(16, 0.25)`` annotators (median 51, 47 to 63) give
    ``multinomial(n_i, p_i)`` counts. (Real CIFAR-10H: mean per-image entropy 0.067 of log 10, 44 % of
    images unanimous, mean share correct 0.952; this simulation: 0.079, 47 %, 0.952.) The human
    quantity ``t_i`` is the entropy of ``p_i`` (in units of log 10) or ``p_i[0]``; its normal score
    ``z_i = Phi^-1(F(t_i))`` (``F`` the population distribution of ``t``, from 200,000 stimuli) gives
    the model's noise-free effect ``m_i = rho z_i + sqrt(1 - rho^2) eps_i``, and seed ``s`` measures
    ``3 + m_i + 0.5 a_s + 1.0 eps_si``. Estimands, true values from one population of 200,000 stimuli:

    * ``latent`` (noise-corrected correlation, ``label_disattenuated_correlation``): the correlation
      of ``m`` (the expected measure over infinitely many seeds) with ``t`` (the measure of the true
      label distribution, infinitely many annotators);
    * ``reliability`` (``label_split_half_reliability``): the correlation of the measure of ``n_i``
      annotators' labels with the same measure from another independent ``n_i`` annotators.

    Both are computed as ``time-vs-rt`` computes them (BCa stimulus bootstrap at <= 2,000 stimuli,
    100 bootstrap splits), with ``--splits`` random splits for the point estimate (the recorded table:
    100, not time-vs-rt's 1,000: the interval recomputes the first 100 splits per resample either way,
    and on 5 studies 1,000 splits moved the estimates by <= 0.006 and the bounds by <= 0.025, the
    size of the difference between two draws of the splits). The annotators' reliability does not
    depend on the model, so it is scored in the rho = 0 cells only.

``mixed``: the slope of ``rt_mixed_model`` (``log rt ~ model_time_z + (1|subject) + (1|stimulus)``,
    Wald interval). Per stimulus a model time ``x_i ~ N(0, 1)``, standardised over the study's stimuli
    as ``time-vs-rt`` does; ``log rt_ji = log 0.8 + beta z_i + u_i + v_j + e_ji`` with stimulus
    intercepts ``u ~ N(0, 0.1^2)``, subject intercepts ``v ~ N(0, 0.15^2)``, residual
    ``e ~ N(0, 0.3^2)``; a share ``missing`` of the trials is dropped at random. Estimand: ``beta``.
    ``mixed-slopes`` (not claimed): as ``mixed``, but each subject's slope deviates from ``beta`` by a
    normal draw of SD 0.03, which the fitted model (random intercepts only) does not describe; the
    interval is scored against ``beta``, the mean slope over the population of subjects; the same trials
    are also fitted with ``random_slopes=True`` (``(1 + model_time_z | subject)``), for comparison.

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

    nice -n 19 python docs/experiments/calibrate_labels_and_trials.py --part labels --studies 500 --progress 50 \
        --splits 100 --cells 0,1,2,3 --interleave
    nice -n 19 python docs/experiments/calibrate_labels_and_trials.py --part mixed --studies 500 --progress 50
    nice -n 19 python docs/experiments/calibrate_labels_and_trials.py --part mixed-slopes --studies 500
    nice -n 19 python docs/experiments/calibrate_labels_and_trials.py --part population

``population`` prints where the two label estimators converge (``population_check``): in one population of
200,000 stimuli (rho 0.5, 3 seeds), the reliability of ``n_i`` annotators' measure, that of their halves and
its Spearman-Brown step-up, and the noise-corrected correlation with the true and with the stepped-up
reliabilities, against the true value.
    nice -n 19 python docs/experiments/calibrate_labels_and_trials.py --part partial --studies 500 --progress 50
"""

from __future__ import annotations

import argparse
import math
import time
import zlib

import numpy as np
import pandas as pd
from brainres.comparisons._label_counts import (
    label_disattenuated_correlation,
    label_entropy,
    label_split_half_reliability,
    share_of_first_label,
)
from scipy import stats as sps
from scipy.stats import binomtest

from brainres.stats import partial_correlation, rt_mixed_model

N_LABELS = 10
N_POPULATION = 200_000
SPLITS = 1000  # time-vs-rt's default n_splits
# The annotators' reliability does not depend on the model (nor on rho): it is scored in the rho = 0 cells only.
LABEL_CELLS = tuple({"n_seeds": n_seeds, "n_stimuli": n_stimuli, "rho": rho, "method": method, "measure": measure,
                     "reliability": rho == 0.0}
                    for measure in ("label_entropy", "accuracy") for method in ("spearman", "pearson")
                    for n_seeds, n_stimuli in ((3, 160), (5, 400)) for rho in (0.0, 0.5))
MIXED_CELLS = tuple({"n_subjects": n_subjects, "n_stimuli": n_stimuli, "slope": slope}
                    for n_subjects, n_stimuli in ((10, 160), (20, 400)) for slope in (0.0, 0.05))
# Outside the model time-vs-rt fits (subjects differ in their slope): printed to show what the interval then
# misses, not claimed.
MIXED_SLOPE_CELLS = tuple({"n_subjects": n_subjects, "n_stimuli": n_stimuli, "slope": 0.05, "subject_slope_sd": 0.03}
                          for n_subjects, n_stimuli in ((10, 160), (20, 400)))
PARTIAL_CELLS = tuple({"n_stimuli": n_stimuli, "rho": rho, "method": method}
                      for method in ("spearman", "pearson") for n_stimuli in (160, 400) for rho in (0.0, 0.4))
MISSING = 0.1


def cell_seed(seed, *design):
    """A random stream per cell: cells that differ only in rho or slope would otherwise share every draw (the
    mixed model's slope interval is equivariant, so such cells would repeat one another's coverage exactly)."""
    return [seed, zlib.crc32(repr(design).encode())]


# ---------------------------------------------------------------------------------------------------- labels
def label_distributions(rng, n_stimuli):
    """True label distributions (n_stimuli, 10), label 0 each stimulus's category."""
    error = rng.beta(0.35, 7.0, size=n_stimuli)
    others = rng.dirichlet(np.full(N_LABELS - 1, 0.3), size=n_stimuli)
    return np.column_stack([1 - error, error[:, None] * others])


def annotators(rng, n_stimuli):
    return 47 + rng.binomial(16, 0.25, size=n_stimuli)


def label_counts(rng, p, n):
    # multinomial per stimulus, vectorised as sequential binomials (conditional shares)
    counts = np.zeros(p.shape, dtype=np.int64)
    left, mass = n.astype(np.int64), np.ones(p.shape[0])
    for label in range(N_LABELS - 1):
        share = np.clip(np.divide(p[:, label], mass, out=np.zeros_like(mass), where=mass > 0), 0, 1)
        counts[:, label] = rng.binomial(left, share)
        left -= counts[:, label]
        mass -= p[:, label]
    counts[:, -1] = left
    return counts


def true_measure(p, measure):
    """The measure of the true label distribution (infinitely many annotators)."""
    return label_entropy(p) if measure == "label_entropy" else share_of_first_label(p)


class LabelPopulation:
    """The stimulus population of one measure: the reference distribution of ``t`` and the true values."""

    def __init__(self, measure, seed=2026):
        rng = np.random.default_rng(seed)
        self.measure = measure
        self.reference = np.sort(true_measure(label_distributions(rng, N_POPULATION), measure))

    def normal_score(self, t):
        # Phi^-1 of the population CDF of t (mid-rank, so the score is never infinite)
        rank = (np.searchsorted(self.reference, t, side="left") + np.searchsorted(self.reference, t, side="right")) / 2
        return sps.norm.ppf((rank + 0.5) / (self.reference.size + 1))

    def draw(self, rng, n_stimuli, n_seeds, rho):
        p = label_distributions(rng, n_stimuli)
        m = rho * self.normal_score(true_measure(p, self.measure)) + math.sqrt(1 - rho**2) * rng.standard_normal(
            n_stimuli)
        model = 3.0 + m[None, :] + 0.5 * rng.standard_normal((n_seeds, 1)) + rng.standard_normal((n_seeds, n_stimuli))
        return p, m, model

    def truths(self, rho, method, seed=777):
        """True values; the latent one exactly where it is known (rho = 0: 0; Spearman: m is bivariate normal
        with the normal score z, a monotone function of t)."""
        if rho == 0.0:
            latent = 0.0
        elif method == "spearman":
            latent = 6 / math.pi * math.asin(rho / 2)
        else:  # corr(m, t) = rho corr(z, t)
            latent = rho * _correlation(self.normal_score(self.reference), self.reference, "pearson")
        rng = np.random.default_rng(seed)
        p = label_distributions(rng, N_POPULATION)
        n = annotators(rng, N_POPULATION)
        one, other = (SUMMARY[self.measure](label_counts(rng, p, n)) for _ in range(2))
        return {"latent": latent, "reliability": _correlation(one, other, method)}


SUMMARY = {"label_entropy": label_entropy, "accuracy": share_of_first_label}


def _correlation(x, y, method):
    return float(sps.pearsonr(x, y)[0] if method == "pearson" else sps.spearmanr(x, y)[0])


def label_rows(model, counts, *, method, measure, n_splits, n_resamples, seed, reliability=True):
    """The two label-count intervals, computed as time-vs-rt computes them, keyed by (interval, estimand)."""
    common = {"method": method, "measure": measure, "n_splits": n_splits, "n_resamples": n_resamples, "seed": seed}
    rows = {("label noise-corrected (BCa)", "latent"): label_disattenuated_correlation(model, counts, **common)}
    if reliability:
        rows[("annotator split-half reliability (BCa)", "reliability")] = label_split_half_reliability(counts,
                                                                                                     **common)
    return rows


class LabelCell:
    """One cell of the label-count calibration, advanced one study at a time (so that cells can interleave)."""

    def __init__(self, *, n_seeds, n_stimuli, rho, method, measure, reliability=True, n_resamples=999,
                 n_splits=SPLITS, seed=0, population=None):
        self.population = population or LabelPopulation(measure)
        self.settings = {"n_seeds": n_seeds, "n_stimuli": n_stimuli, "rho": rho, "method": method, "measure": measure,
                             "reliability": reliability, "n_resamples": n_resamples, "n_splits": n_splits}
        self.rng = np.random.default_rng(cell_seed(seed, n_seeds, n_stimuli, rho, method, measure))
        self.scores = _Scores({"design": f"{n_seeds} seeds x {n_stimuli} stimuli x ~51 annotators", "rho": rho,
                                   "method": method, "measure": measure}, self.population.truths(rho, method))

    def step(self, index):
        s = self.settings
        p, _, model = self.population.draw(self.rng, s["n_stimuli"], s["n_seeds"], s["rho"])
        counts = label_counts(self.rng, p, annotators(self.rng, s["n_stimuli"]))
        for key, result in label_rows(model, counts, method=s["method"], measure=s["measure"],
                                      n_splits=s["n_splits"], n_resamples=s["n_resamples"], seed=index,
                                      reliability=s["reliability"]).items():
            self.scores.add(key, result.ci_low, result.ci_high, result.estimate)


def calibrate_labels(*, studies, progress=0, **cell):
    """Coverage rows of one label-count cell (``LABEL_CELLS``)."""
    labels = LabelCell(**cell)
    for index in range(studies):
        labels.step(index)
        labels.scores.progress(index, studies, progress)
    return labels.scores.rows()


def interleave_labels(cells, *, studies, progress, **settings):
    """All chosen label cells advanced together, study by study, so interim rows exist for every cell."""
    populations = {}
    running = []
    for cell in cells:
        population = populations.setdefault(cell["measure"], LabelPopulation(cell["measure"]))
        running.append(LabelCell(**cell, **settings, population=population))
    for index in range(studies):
        for labels in running:
            labels.step(index)
        if progress and (index + 1) % progress == 0 and index + 1 < studies:
            print(f"<!-- after {index + 1} studies per cell:", flush=True)
            for labels in running:
                for row in labels.scores.rows():
                    print(format_row(row), flush=True)
            print("-->", flush=True)
    return [row for labels in running for row in labels.scores.rows()]


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


def calibrate_mixed(*, studies, n_subjects, n_stimuli, slope, subject_slope_sd=0.0, seed=0, progress=0, **_):
    key = (n_subjects, n_stimuli, slope) + ((subject_slope_sd,) if subject_slope_sd else ())
    rng = np.random.default_rng(cell_seed(seed, *key))
    design = {"design": f"{n_subjects} subjects x {n_stimuli} stimuli, {MISSING:.0%} missing"
                        + (f", subjects' slopes SD {subject_slope_sd}" if subject_slope_sd else ""),
              "rho": slope, "method": "REML", "measure": "log rt"}
    estimand = "slope" if not subject_slope_sd else "mean slope over subjects (not claimed)"
    scores = _Scores(design, {estimand: slope})
    for index in range(studies):
        trials, measure = mixed_study(rng, n_subjects=n_subjects, n_stimuli=n_stimuli, slope=slope,
                                      subject_slope_sd=subject_slope_sd)
        row = _slope(rt_mixed_model(trials, measure))
        scores.add(("mixed-model slope (Wald, normal quantile)", estimand), row["ci_low"], row["ci_high"],
                   row["estimate"])
        if subject_slope_sd:  # what fitting the subjects' slopes (not done by time-vs-rt) would give
            row = _slope(rt_mixed_model(trials, measure, random_slopes=True))
            scores.add(("mixed-model slope, subject random slopes fitted (Wald, normal quantile)", estimand),
                       row["ci_low"], row["ci_high"], row["estimate"])
        scores.progress(index, studies, progress)
    return scores.rows()


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


# ---------------------------------------------------------------------------------------------------- population
def population_check(*, measure="label_entropy", rho=0.5, n_seeds=3, seed=11, **_):
    """Where the label estimators converge: their parts in one population of 200,000 stimuli, per method.

    The reliability of the measure of ``n_i`` annotators (two independent sets), of the halves of them, and the
    Spearman-Brown step-up of the halves' (what ``label_split_half_reliability`` estimates); the correlation of
    the seed mean with the measure, the model's reliability (two independent sets of seeds), and the
    noise-corrected correlation with the true and with the stepped-up reliabilities, against the true value.
    """
    population = LabelPopulation(measure)
    rows = []
    for method in ("spearman", "pearson"):
        rng = np.random.default_rng(seed)
        p, m, model = population.draw(rng, N_POPULATION, n_seeds, rho)
        other_seeds = 3.0 + m[None, :] + 0.5 * rng.standard_normal((n_seeds, 1)) + rng.standard_normal(
            (n_seeds, N_POPULATION))
        n = annotators(rng, N_POPULATION)
        summary = SUMMARY[measure]
        full, other, half, rest = (summary(label_counts(rng, p, k)) for k in (n, n, n // 2, n - n // 2))
        raw = _correlation(model.mean(axis=0), full, method)
        reliability, halves = _correlation(full, other, method), _correlation(half, rest, method)
        stepped = 2 * halves / (1 + halves)
        model_reliability = _correlation(model.mean(axis=0), other_seeds.mean(axis=0), method)
        rows.append({"method": method, "measure": measure, "truth": _correlation(m, true_measure(p, measure), method),
                     "reliability": reliability, "halves": halves, "stepped_up": stepped, "raw_r": raw,
                     "model_reliability": model_reliability,
                     "corrected_true_reliabilities": raw / math.sqrt(reliability * model_reliability),
                     "corrected_stepped_up": raw / math.sqrt(stepped * model_reliability)})
    return rows


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
PARTS = {"labels": (LABEL_CELLS, calibrate_labels), "mixed": (MIXED_CELLS, calibrate_mixed),
         "mixed-slopes": (MIXED_SLOPE_CELLS, calibrate_mixed),
         "partial": (PARTIAL_CELLS, calibrate_partial)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=[*sorted(PARTS), "population"], required=True)
    parser.add_argument("--studies", type=int, default=500)
    parser.add_argument("--resamples", type=int, default=999, help="bootstrap resamples (labels part)")
    parser.add_argument("--splits", type=int, default=SPLITS, help="random annotator splits (labels part)")
    parser.add_argument("--cells", default=None, help="comma-separated indices of the part's cells (default all)")
    parser.add_argument("--progress", type=int, default=100, help="print interim rows every N studies")
    parser.add_argument("--interleave", action="store_true",
                        help="labels part: advance the chosen cells together, study by study")
    args = parser.parse_args()
    if args.part == "population":
        keys = ("truth", "reliability", "halves", "stepped_up", "raw_r", "model_reliability",
                "corrected_true_reliabilities", "corrected_stepped_up")
        print("| measure | method | " + " | ".join(keys) + " |\n|---|---|" + "---|" * len(keys), flush=True)
        for measure in ("label_entropy", "accuracy"):
            for row in population_check(measure=measure):
                print(f"| {measure} | {row['method']} | " + " | ".join(f"{row[k]:.4f}" for k in keys) + " |",
                      flush=True)
        return
    cells, calibrate = PARTS[args.part]
    chosen = range(len(cells)) if args.cells is None else [int(i) for i in args.cells.split(",")]
    extra = {"n_resamples": args.resamples, "n_splits": args.splits} if args.part == "labels" else {}
    print(HEADER, flush=True)
    print(f"<!-- {args.part}: {args.studies} studies per cell, cells {list(chosen)}"
          + (f", {args.resamples} resamples, {args.splits} splits" if args.part == "labels" else "") + " -->",
          flush=True)
    if args.interleave and args.part == "labels":
        started = time.perf_counter()
        for row in interleave_labels([cells[i] for i in chosen], studies=args.studies, progress=args.progress,
                                     **extra):
            print(format_row(row), flush=True)
        print(f"<!-- labels cells {list(chosen)} took {time.perf_counter() - started:.0f} s -->", flush=True)
        return
    for index in chosen:
        started = time.perf_counter()
        for row in calibrate(studies=args.studies, progress=args.progress, **extra, **cells[index]):
            print(format_row(row), flush=True)
        print(f"<!-- {args.part} cell {index} took {time.perf_counter() - started:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
