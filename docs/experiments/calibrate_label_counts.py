"""Coverage of the label-count intervals ``time-vs-rt`` reports (``measure="label_entropy"`` or ``"accuracy"`` on
label counts, as CIFAR-10H), and where their estimators converge.

Each interval is scored against the estimand its function states (issue 13). Coverage is given with its
Clopper-Pearson 95 % interval; the scoring is shared with ``calibrate_trials.py``.

``labels``:
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
      of ``m`` (the expected measure over infinitely many seeds) with the true score (the expected
      measure of ``n_i`` annotators' labels: for the share correct ``t`` itself; for the entropy below
      ``t``, since the entropy of a finite sample is biased low);
    * ``reliability`` (``label_split_half_reliability``): the correlation of the measure of ``n_i``
      annotators' labels with the same measure from another independent ``n_i`` annotators.

    Both are computed as ``time-vs-rt`` computes them (BCa stimulus bootstrap at <= 2,000 stimuli,
    100 bootstrap splits shared among the three subset sizes), with ``--splits`` random splits at each
    size for the point estimate (the recorded table: 100, not time-vs-rt's 1,000, to save time: the
    interval recomputes the same number of splits per resample either way). The annotators'
    reliability does not depend on the model, so it is scored in the rho = 0 cells only.

``population`` prints where the label estimators converge (``population_check``): in one population of
200,000 stimuli (rho 0.5, 3 seeds), the reliability of ``n_i`` annotators' measure against what
``label_split_half_reliability`` extrapolates (and Spearman-Brown from the halves alone), and the
noise-corrected correlation with the true and with the extrapolated reliabilities, against the true value.

    python docs/experiments/calibrate_label_counts.py --part labels --studies 500 --progress 50 \
        --splits 100 --interleave
    python docs/experiments/calibrate_label_counts.py --part population

``cifar10h-backtest`` checks the extrapolation on the real CIFAR-10H labels (``BRAINRES_DATA``): from subsets of an
eighth, a sixth and a quarter of each image's annotators it predicts the correlation of halves, which is observed
(``cifar10h_backtest``).

    python docs/experiments/calibrate_label_counts.py --part cifar10h-backtest
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import time
from pathlib import Path

import numpy as np
from scipy import stats as sps

from brainres.comparisons._annotator_subsets import (
    SUBSET_SHARES,
    effective_share,
    extrapolated_reliability,
    split_label_counts,
    subset_sizes,
)
from brainres.comparisons._label_counts import (
    label_disattenuated_correlation,
    label_entropy,
    label_split_half_reliability,
    share_of_first_label,
)
from brainres.stats.reliability import spearman_brown

_here = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("calibrate_trials", _here / "calibrate_trials.py")
TRIALS = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(TRIALS)
_Scores, cell_seed, format_row, HEADER = TRIALS._Scores, TRIALS.cell_seed, TRIALS.format_row, TRIALS.HEADER

N_LABELS = 10
N_POPULATION = TRIALS.N_POPULATION
SPLITS = 1000  # time-vs-rt's default n_splits
# The annotators' reliability does not depend on the model (nor on rho): it is scored in the rho = 0 cells only.
LABEL_CELLS = tuple({"n_seeds": n_seeds, "n_stimuli": n_stimuli, "rho": rho, "method": method, "measure": measure,
                     "reliability": rho == 0.0}
                    for measure in ("label_entropy", "accuracy") for method in ("spearman", "pearson")
                    for n_seeds, n_stimuli in ((3, 160), (5, 400)) for rho in (0.0, 0.5))


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

    def truths(self, rho, method, seed=777, replicates=100):
        """True values. ``latent``: the correlation of ``m`` with the true score (the expected measure of ``n_i``
        annotators' labels): exact where known (rho = 0: 0; the share correct, whose true score is ``t`` itself:
        Spearman from ``m`` bivariate normal with ``z``, a monotone function of ``t``, Pearson ``rho corr(z, t)``);
        for the entropy the mean of ``replicates`` draws of ``n_i`` labels per stimulus stands for the true score
        (its residual noise attenuates a correlation by a factor of about 0.999)."""
        rng = np.random.default_rng(seed)
        p = label_distributions(rng, N_POPULATION)
        n = annotators(rng, N_POPULATION)
        one, other = (SUMMARY[self.measure](label_counts(rng, p, n)) for _ in range(2))
        truths = {"reliability": _correlation(one, other, method)}
        if rho == 0.0:
            truths["latent"] = 0.0
        elif self.measure == "accuracy" and method == "spearman":
            truths["latent"] = 6 / math.pi * math.asin(rho / 2)
        elif self.measure == "accuracy":
            truths["latent"] = rho * _correlation(self.normal_score(self.reference), self.reference, "pearson")
        else:
            true_score = np.mean([SUMMARY[self.measure](label_counts(rng, p, n)) for _ in range(replicates)], axis=0)
            m = rho * self.normal_score(true_measure(p, self.measure)) + math.sqrt(1 - rho**2) * rng.standard_normal(
                N_POPULATION)
            truths["latent"] = _correlation(m, true_score, method)
        return truths


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


def population_check(*, measure="label_entropy", rho=0.5, n_seeds=3, seed=11, **_):
    """Where the label estimators converge: their parts in one population of 200,000 stimuli, per method.

    The reliability of the measure of ``n_i`` annotators (two independent sets); the correlations of two
    independent sets at each subset size, extrapolated to all annotators (what ``label_split_half_reliability``
    estimates), and Spearman-Brown from the halves alone (what it estimated before); the correlation of the seed
    mean with the measure, the model's reliability (two independent sets of seeds), and the noise-corrected
    correlation with the true and with the extrapolated reliabilities, against the true value (``truths``).
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
        full, other = (summary(label_counts(rng, p, n)) for _ in range(2))
        subsets = []
        for share in SUBSET_SHARES:
            first, second = subset_sizes(n, share)
            subsets.append(_correlation(summary(label_counts(rng, p, first)), summary(label_counts(rng, p, second)),
                                        method))
        raw = _correlation(model.mean(axis=0), full, method)
        reliability = _correlation(full, other, method)
        extrapolated = float(extrapolated_reliability(subsets, [effective_share(n, s) for s in SUBSET_SHARES]))
        model_reliability = _correlation(model.mean(axis=0), other_seeds.mean(axis=0), method)
        rows.append({"method": method, "measure": measure, "truth": population.truths(rho, method)["latent"],
                     "reliability": reliability, "extrapolated": extrapolated,
                     "halves_spearman_brown": float(spearman_brown(subsets[-1])), "raw_r": raw,
                     "model_reliability": model_reliability,
                     "corrected_true_reliabilities": raw / math.sqrt(reliability * model_reliability),
                     "corrected_extrapolated": raw / math.sqrt(extrapolated * model_reliability)})
    return rows


def cifar10h_backtest(*, n_splits=16, seeds=(1, 2, 3)):
    """On the real CIFAR-10H labels (``BRAINRES_DATA``): from disjoint subsets of an eighth, a sixth and a quarter
    of each image's annotators, predict the correlation of halves, which is observed; per seed and method, the
    observed value, the fitted power's prediction and Spearman-Brown's from the quarters."""
    from brainres.data.registry import load_dataset

    counts = load_dataset("cifar10h")["counts"].values.astype(np.int64)
    total, smaller = counts.sum(axis=1), (1 / 8, 1 / 6, 1 / 4)
    rows = []
    for method in ("spearman", "pearson"):
        for seed in seeds:
            correlation = {}
            for size in (*smaller, 1 / 2):
                first, second = split_label_counts(counts, n_splits=n_splits, seed=seed, share=size)
                correlation[size] = np.mean([_correlation(label_entropy(a), label_entropy(b), method)
                                             for a, b in zip(first, second)])
            relative = [effective_share(total, size) / effective_share(total, 1 / 2) for size in smaller]
            rows.append({"method": method, "seed": seed, "halves": correlation[1 / 2],
                         "fitted_power": float(extrapolated_reliability([correlation[s] for s in smaller], relative)),
                         "spearman_brown_from_quarters": float(spearman_brown(correlation[1 / 4], 1 / relative[-1]))})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("labels", "population", "cifar10h-backtest"), required=True)
    parser.add_argument("--studies", type=int, default=500)
    parser.add_argument("--resamples", type=int, default=999, help="bootstrap resamples")
    parser.add_argument("--splits", type=int, default=SPLITS, help="random annotator splits at each subset size")
    parser.add_argument("--cells", default=None, help="comma-separated indices of LABEL_CELLS (default all)")
    parser.add_argument("--progress", type=int, default=100, help="print interim rows every N studies")
    parser.add_argument("--interleave", action="store_true", help="advance the chosen cells together, study by study")
    args = parser.parse_args()
    if args.part == "population":
        keys = ("truth", "reliability", "extrapolated", "halves_spearman_brown", "raw_r", "model_reliability",
                "corrected_true_reliabilities", "corrected_extrapolated")
        print("| measure | method | " + " | ".join(keys) + " |\n|---|---|" + "---|" * len(keys), flush=True)
        for measure in ("label_entropy", "accuracy"):
            for row in population_check(measure=measure):
                print(f"| {measure} | {row['method']} | " + " | ".join(f"{row[k]:.4f}" for k in keys) + " |",
                      flush=True)
        return
    if args.part == "cifar10h-backtest":
        print("| method | seed | halves (observed) | fitted power | Spearman-Brown from quarters |\n|---|---|---|---|---|")
        for row in cifar10h_backtest():
            print(f"| {row['method']} | {row['seed']} | {row['halves']:.4f} | {row['fitted_power']:.4f} "
                  f"| {row['spearman_brown_from_quarters']:.4f} |", flush=True)
        return
    chosen = range(len(LABEL_CELLS)) if args.cells is None else [int(i) for i in args.cells.split(",")]
    settings = {"n_resamples": args.resamples, "n_splits": args.splits}
    print(HEADER, flush=True)
    print(f"<!-- labels: {args.studies} studies per cell, cells {list(chosen)}, {args.resamples} resamples, "
          f"{args.splits} splits -->", flush=True)
    started = time.perf_counter()
    if args.interleave:
        for row in interleave_labels([LABEL_CELLS[i] for i in chosen], studies=args.studies, progress=args.progress,
                                     **settings):
            print(format_row(row), flush=True)
        print(f"<!-- labels cells {list(chosen)} took {time.perf_counter() - started:.0f} s -->", flush=True)
        return
    for index in chosen:
        started = time.perf_counter()
        for row in calibrate_labels(studies=args.studies, progress=args.progress, **settings, **LABEL_CELLS[index]):
            print(format_row(row), flush=True)
        print(f"<!-- labels cell {index} took {time.perf_counter() - started:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
