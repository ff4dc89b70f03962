"""Coverage of the per-step interval ``latents-vs-neural`` reports, against the estimand it states.

The comparison reports, per model step, the mean over subjects of the comparison (Spearman by default) of the
model's seed-averaged RDM with each subject's neural RDM, with a 95 % percentile interval from a crossed bootstrap
of stimuli x subjects (RDMs), dual-corrected (``bootstrap_rdm_comparison``); its row's estimand: "the mean over
the population of subjects (RDMs) of the comparison of this model step's RDM with a subject's RDM, over
stimulus sets of this size drawn from the population of stimuli (not corrected for measurement noise)". Each simulated study here is run through the
comparison's own ``run`` (``latents-vs-neural`` on an in-memory export and neural RDM dataset, 999 resamples,
``seed`` = the study's index) and the interval of each step is scored against that estimand.

Simulation (one fixed population per design, ``POPULATION_SEED``):

* Stimuli: ``n_categories = 6`` categories with centroids ``c_k ~ N(0, CATEGORY_SD^2 I_20)``; a stimulus of
  category ``k`` has true pattern ``x_i = c_k + N(0, I_20)``, a hidden feature vector ``u_i ~ N(0, I_20)`` that
  subjects see idiosyncratically, and a feature vector ``v_i = g_l + N(0, I_20)`` that only the model sees
  (``g_l`` the centroids of 4 model categories assigned independently of the true ones).
* Subject ``j`` (population: new draws of ``M_j``, ``N_j``): 100 voxels respond
  ``M_j x_i + 1.5 N_j u_i + sigma_j e`` (``M_j``, ``N_j`` Gaussian, scaled by ``1/sqrt(20)``, drawn per subject,
  so subjects' RDMs genuinely differ, not only by noise; ``sigma_j = 3 exp(0.3 z_j)``, so they differ in data
  quality too) in each of 2 sessions with fresh noise ``e``; the subject's RDM is the mean of the two sessions' correlation-distance RDMs (as
  ``subject_rdms`` averages the sessions of ``kriegeskorte2008-92``).
* Model (one fixed architecture ``A``, ``C``): 64 latent units respond, at step 1, ``C v_i + SEED_NOISE e`` (its
  own structure only: the true relation is 0) and, at step 2, ``0.6 A x_i + C v_i + SEED_NOISE e`` (a clear
  relation); a seed is a fresh draw of ``e`` (seed x stimulus x unit noise). The comparison builds a
  correlation-distance RDM per seed and averages the seeds' RDMs.

The true value of each step's estimand at a design: the expectation, over stimulus sets of the design's size
drawn from the population (each with a fresh 3-seed model RDM) and over the subject population, of the comparison
of the model RDM with one subject's RDM; i.e. the mean over studies of the per-study population-subject mean at
that number of stimuli (an RDM correlation depends on the number of stimuli only weakly, but it is a function of
the stimulus set, not a mean over stimuli, so the estimand is defined at the study's number of stimuli). It is
computed from ``TRUTH_SETS`` stimulus sets x ``TRUTH_SUBJECTS`` new subjects each, with an independent
implementation (``scipy.stats.rankdata`` and ``numpy.corrcoef`` on the upper triangles), and printed with its
Monte Carlo standard error. At step 1 it is 0 by symmetry (model and neural RDMs are independent).

Rows per step:

* ``percentile (shipped)``: the interval the comparison reports;
* ``t, rsatoolbox form``: the interval rsatoolbox's ``eval_dual_bootstrap`` result gives
  (``Result.get_ci(0.95, "t-test")``): bootstrap mean +- ``t(0.975, min(n_subjects, n_stimuli) - 1)`` x the
  dual-corrected bootstrap SE, computed from the same draws (``extra["bootstrap_se"]``, ``extra["bootstrap_bias"]``;
  rsatoolbox's own dual bootstrap costs about 1 s per resample at 92 stimuli, so it is not rerun here).

Also printed per design (no interval to score; diagnostics): the mean lower and upper noise ceilings and the mean
best-step estimate against the largest true step value (the best step is chosen on the same data).

Coverage with its Clopper-Pearson 95 % interval (``scipy.stats.binomtest(k, n).proportion_ci(0.95,
method="exact")``), mean width, mean estimate and the SD of the estimates over studies (a 95 % interval of the
right width is about 3.92 such SDs wide).

    nice -n 19 python docs/experiments/calibrate_latents_vs_neural.py --studies 500 --cells 0 --progress 50
    nice -n 19 python docs/experiments/calibrate_latents_vs_neural.py --studies 500 --cells 1 --progress 50
    nice -n 19 python docs/experiments/calibrate_latents_vs_neural.py --studies 200 --cells 2,3 --progress 50

``--stimulus-bootstrap-spread`` runs only a stripped-down check of why the interval is too wide at no relation
(``stimulus_bootstrap_spread``: random patterns, a stimulus bootstrap alone, no subjects or seeds):

    python docs/experiments/calibrate_latents_vs_neural.py --stimulus-bootstrap-spread --studies 200
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import xarray as xr
from scipy import stats as sps
from scipy.spatial.distance import pdist
from scipy.stats import binomtest

POPULATION_SEED = 20261127
N_TRUE, N_HIDDEN, N_OWN = 20, 20, 20  # dimensions of x_i, u_i, v_i
N_CATEGORIES, N_MODEL_CATEGORIES = 6, 4
N_VOXELS, N_UNITS, N_SESSIONS = 100, 64, 2
CATEGORY_SD = 1.0
IDIOSYNCRATIC = 1.5
SUBJECT_NOISE = 3.0
SUBJECT_NOISE_LOG_SD = 0.3  # subjects differ in data quality too (real hIT subjects: RDM correlations .21-.43)
SEED_NOISE = 1.0
RELATION = 0.6
STEPS = (1, 2)
TRUE_RELATION = {1: 0.0, 2: RELATION}
TRUTH_SETS, TRUTH_SUBJECTS = 1000, 10

SMALL = {"n_seeds": 3, "n_stimuli": 92, "n_subjects": 4}  # kriegeskorte2008-92: 92 images x 4 human IT subjects
# twice the subjects; 150 x 10 cost 18 s a study on the shared machine (92 x 8: 6 s, 92 x 4: 3 s), too slow for 500
LARGE = {"n_seeds": 3, "n_stimuli": 92, "n_subjects": 8}
CELLS = (dict(**SMALL, method="spearman"), dict(**LARGE, method="spearman"),
         dict(**SMALL, method="pearson"), dict(**LARGE, method="pearson"))


class Population:
    """The fixed parts of one simulated world: category centroids and the model's weights."""

    def __init__(self, seed=POPULATION_SEED):
        rng = np.random.default_rng(seed)
        self.centroids = CATEGORY_SD * rng.standard_normal((N_CATEGORIES, N_TRUE))
        self.model_centroids = CATEGORY_SD * rng.standard_normal((N_MODEL_CATEGORIES, N_OWN))
        self.relation = rng.standard_normal((N_TRUE, N_UNITS)) / math.sqrt(N_TRUE)  # A
        self.own = rng.standard_normal((N_OWN, N_UNITS)) / math.sqrt(N_OWN)  # C

    def stimuli(self, rng, n):
        """True patterns x, hidden features u, model-only features v of ``n`` new stimuli."""
        category = rng.integers(N_CATEGORIES, size=n)
        model_category = rng.integers(N_MODEL_CATEGORIES, size=n)
        x = self.centroids[category] + rng.standard_normal((n, N_TRUE))
        u = rng.standard_normal((n, N_HIDDEN))
        v = self.model_centroids[model_category] + rng.standard_normal((n, N_OWN))
        return x, u, v

    def latents(self, rng, stimuli, n_seeds):
        """Model latents (seed, step, stimulus, unit)."""
        x, _, v = stimuli
        out = np.empty((n_seeds, len(STEPS), x.shape[0], N_UNITS))
        for t, step in enumerate(STEPS):
            clean = TRUE_RELATION[step] * x @ self.relation + v @ self.own
            out[:, t] = clean[None] + SEED_NOISE * rng.standard_normal((n_seeds, *clean.shape))
        return out

    @staticmethod
    def session_vectors(rng, stimuli, n_subjects):
        """Upper triangles of each new subject's correlation-distance RDM per session: (subject, session, pair)."""
        x, u, _ = stimuli
        out = []
        for _ in range(n_subjects):
            mixing = rng.standard_normal((N_TRUE, N_VOXELS)) / math.sqrt(N_TRUE)
            hidden = rng.standard_normal((N_HIDDEN, N_VOXELS)) / math.sqrt(N_HIDDEN)
            signal = x @ mixing + IDIOSYNCRATIC * u @ hidden
            noise = SUBJECT_NOISE * math.exp(SUBJECT_NOISE_LOG_SD * rng.standard_normal())
            out.append([pdist(signal + noise * rng.standard_normal(signal.shape), "correlation")
                        for _ in range(N_SESSIONS)])
        return np.array(out)


def _square(vectors, n):
    rows, cols = np.triu_indices(n, 1)
    out = np.zeros((vectors.shape[0], n, n))  # correlation distance: zero diagonal
    out[:, rows, cols] = vectors
    out[:, cols, rows] = vectors
    return out


def study(rng, population, *, n_seeds, n_stimuli, n_subjects):
    """One simulated study as the comparison receives it: a model export and a neural RDM dataset."""
    stimuli = population.stimuli(rng, n_stimuli)
    latent = population.latents(rng, stimuli, n_seeds)
    ids = np.array([f"stim{i:04d}" for i in range(n_stimuli)])
    model = xr.Dataset(
        {"latent": (("seed", "step", "stimulus_id", "feature"), latent)},
        coords={"seed": np.arange(n_seeds), "step": np.array(STEPS), "stimulus_id": ids,
                "feature": np.arange(N_UNITS), "feature_layer": ("feature", np.full(N_UNITS, "code"))},
        attrs={"brainres_kind": "model_measures"})
    # per-subject, per-session RDMs: the comparison averages a subject's sessions itself (as for kriegeskorte2008-92)
    sessions = Population.session_vectors(rng, stimuli, n_subjects)
    matrices = _square(sessions.reshape(n_subjects * N_SESSIONS, -1), n_stimuli)
    subject = np.repeat([f"sub{j:02d}" for j in range(n_subjects)], N_SESSIONS)
    session = np.tile([str(k + 1) for k in range(N_SESSIONS)], n_subjects)
    data = xr.Dataset(
        {"dissimilarity": (("rdm", "stimulus_id", "stimulus_id_2"), np.stack(matrices))},
        coords={"rdm": [f"r{i}" for i in range(len(matrices))], "stimulus_id": ids, "stimulus_id_2": ids,
                "subject": ("rdm", subject), "session": ("rdm", session)},
        attrs={"brainres_kind": "neural_rdms", "dataset_id": "simulated"})
    return model, data


def _comparisons(model_vector, subject_vectors, method):
    """Independent implementation: scipy ranks and numpy correlations of upper triangles."""
    if method == "spearman":
        model_vector = sps.rankdata(model_vector)
        subject_vectors = sps.rankdata(subject_vectors, axis=1)
    elif method != "pearson":
        raise ValueError(method)
    both = np.corrcoef(np.vstack([model_vector, subject_vectors]))
    return both[0, 1:]


def truths(population, *, n_seeds, n_stimuli, method, n_sets=TRUTH_SETS, n_subjects=TRUTH_SUBJECTS, seed=1):
    """True value of each step's estimand and its Monte Carlo SE: ``{step: (value, se)}``."""
    rng = np.random.default_rng([POPULATION_SEED, seed, n_stimuli])
    per_set = {step: np.empty(n_sets) for step in STEPS}
    for k in range(n_sets):
        stimuli = population.stimuli(rng, n_stimuli)
        latent = population.latents(rng, stimuli, n_seeds)
        subjects = Population.session_vectors(rng, stimuli, n_subjects).mean(axis=1)
        for t, step in enumerate(STEPS):
            model_vector = np.mean([pdist(latent[s, t], "correlation") for s in range(n_seeds)], axis=0)
            per_set[step][k] = _comparisons(model_vector, subjects, method).mean()
    # sets are independent, so the SE of the mean over sets covers the subject draws within them too
    return {step: (float(v.mean()), float(v.std(ddof=1) / math.sqrt(n_sets))) for step, v in per_set.items()}


def comparison_rows(model, data, *, method, n_resamples, seed):
    """The comparison's own rows: per-step results, the noise ceilings and the best step."""
    from brainres.comparisons import latents_vs_neural

    # The plug-in's own run (compare() would also validate the simulated files against the schema each time). Its
    # rows keep the interval but not the bootstrap's SE and bias, which the rsatoolbox-form t interval needs: the
    # bootstrap it calls is wrapped to keep its results (same call, same numbers).
    shipped = latents_vs_neural.bootstrap_rdm_comparison
    kept = []

    def keeping(*args, **kwargs):
        kept.append(shipped(*args, **kwargs))
        return kept[-1]

    latents_vs_neural.bootstrap_rdm_comparison = keeping
    try:
        result = latents_vs_neural.run(model, data, method=method, n_resamples=n_resamples, seed=seed)
    finally:
        latents_vs_neural.bootstrap_rdm_comparison = shipped
    rows = {"steps": {}, "ceiling": {}, "bootstraps": {}}
    per_step = [r for r in result.results if r.extra.get("label", "").startswith("step")]
    for r, boot in zip(per_step, kept, strict=True):
        assert (r.ci_low, r.ci_high) == (boot.ci_low, boot.ci_high)
        rows["steps"][int(r.extra["step"])] = r
        rows["bootstraps"][int(r.extra["step"])] = boot
    for r in result.results:
        if r.statistic.startswith("noise_ceiling"):
            rows["ceiling"]["lower" if "lower" in r.statistic else "upper"] = r.estimate
        elif r.statistic.startswith("best_step"):
            rows["best"] = r
    return rows


def t_interval_rsatoolbox_form(boot, n_subjects, n_stimuli, ci_level=0.95):
    """rsatoolbox's ``Result.get_ci(.., "t-test")`` for a dual bootstrap, from the same draws (see docstring)."""
    dof = min(n_subjects, n_stimuli) - 1
    # rsatoolbox centres on the mean of the bootstrap evaluations: the plug-in value plus the bootstrap bias
    centre = boot.extra.get("plug_in_estimate", boot.estimate) + boot.extra["bootstrap_bias"]
    half = sps.t.ppf(0.5 + ci_level / 2, dof) * boot.extra["bootstrap_se"]
    return max(-1.0, centre - half), min(1.0, centre + half)


def calibrate(*, studies, n_seeds, n_stimuli, n_subjects, method, n_resamples=999, seed=0, progress=0,
              population=None, truth=None):
    """Coverage rows of one design (both steps, both interval forms) and the diagnostics."""
    population = population or Population()
    truth = truth or truths(population, n_seeds=n_seeds, n_stimuli=n_stimuli, method=method)
    rng = np.random.default_rng([POPULATION_SEED, seed, n_stimuli, n_subjects, 7])
    label = {"n_seeds": n_seeds, "n_stimuli": n_stimuli, "n_subjects": n_subjects, "method": method}
    scored = {}
    diagnostics = {"lower": [], "upper": [], "best": [], "best_truth": max(v for v, _ in truth.values())}

    def record(key, low, high, estimate, value):
        entry = scored.setdefault(key, {"hits": [], "widths": [], "estimates": [], "truth": value})
        entry["hits"].append(low <= value <= high)
        entry["widths"].append(high - low)
        entry["estimates"].append(estimate)

    def rows():
        return [_row(label, step, interval, entry, truth[step][1]) for (step, interval), entry in scored.items()]

    for index in range(studies):
        model, data = study(rng, population, n_seeds=n_seeds, n_stimuli=n_stimuli, n_subjects=n_subjects)
        out = comparison_rows(model, data, method=method, n_resamples=n_resamples, seed=index)
        for step, result in out["steps"].items():
            value = truth[step][0]
            record((step, "percentile (shipped)"), result.ci_low, result.ci_high, result.estimate, value)
            low, high = t_interval_rsatoolbox_form(out["bootstraps"][step], n_subjects, n_stimuli)
            record((step, "t, rsatoolbox form"), low, high, result.estimate, value)
        diagnostics["lower"].append(out["ceiling"]["lower"])
        diagnostics["upper"].append(out["ceiling"]["upper"])
        diagnostics["best"].append(out["best"].estimate)
        if progress and (index + 1) % progress == 0 and index + 1 < studies:
            print(f"<!-- after {index + 1} studies:", flush=True)
            for row in rows():
                print(format_row(row), flush=True)
            print(format_diagnostics(label, diagnostics), flush=True)
            print("-->", flush=True)
    return rows(), diagnostics


def _row(label, step, interval, entry, truth_se):
    k, n = int(np.sum(entry["hits"])), len(entry["hits"])
    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return {**label, "step": step, "relation": TRUE_RELATION[step], "interval": interval, "truth": entry["truth"],
            "truth_se": truth_se, "studies": n, "covered": k, "coverage": k / n, "coverage_low": ci.low,
            "coverage_high": ci.high, "mean_width": float(np.mean(entry["widths"])),
            "mean_estimate": float(np.mean(entry["estimates"])),
            "sd_estimate": float(np.std(entry["estimates"], ddof=1)) if n > 1 else float("nan")}


def format_row(row) -> str:
    return (f"| {row['n_seeds']} x {row['n_stimuli']} x {row['n_subjects']} | {row['method']} "
            f"| {row['step']} (relation {row['relation']}) | {row['interval']} "
            f"| {row['truth']:.4f} ({row['truth_se']:.4f}) | {row['mean_estimate']:.4f} | {row['sd_estimate']:.4f} "
            f"| {row['coverage']:.3f} [{row['coverage_low']:.3f}, {row['coverage_high']:.3f}] "
            f"| {row['mean_width']:.3f} | {row['studies']} |")


def format_diagnostics(label, diagnostics) -> str:
    return (f"<!-- diagnostics {label['n_seeds']} x {label['n_stimuli']} x {label['n_subjects']} {label['method']}, "
            f"{len(diagnostics['best'])} studies: mean noise ceiling lower {np.mean(diagnostics['lower']):.4f}, "
            f"upper {np.mean(diagnostics['upper']):.4f}; mean best-step estimate {np.mean(diagnostics['best']):.4f} "
            f"vs largest true step value {diagnostics['best_truth']:.4f} -->")


HEADER = ("| seeds x stimuli x subjects | method | step (true relation) | interval | true value (MC SE) "
          "| mean estimate | SD of estimates | coverage [95% CI] | mean width | studies |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def stimulus_bootstrap_spread(*, studies=100, n_resamples=200, n_stimuli=92, n_features=20, seed=0):
    """Why the interval is wide at no relation, stripped down: two sets of random patterns per stimulus, their
    correlation-distance RDMs correlated (Pearson, upper triangles), the stimuli resampled with replacement
    (pairs of a stimulus with its own copy left out). Returns, per relation of the patterns, the SD of the
    estimates over studies and the mean bootstrap SD."""
    rng = np.random.default_rng(seed)

    def rdm_correlation(x, y, index):
        first, second = np.triu_indices(index.size, 1)
        keep = index[first] != index[second]
        return np.corrcoef(pdist(x[index], "correlation")[keep], pdist(y[index], "correlation")[keep])[0, 1]

    spread = {}
    for relation in (0.0, 0.5):
        estimates, bootstrap_sds = [], []
        for _ in range(studies):
            shared = rng.standard_normal((n_stimuli, n_features))
            x = shared + rng.standard_normal((n_stimuli, n_features))
            y = (relation * shared + math.sqrt(1 - relation**2) * rng.standard_normal((n_stimuli, n_features))
                 + rng.standard_normal((n_stimuli, n_features)))
            estimates.append(rdm_correlation(x, y, np.arange(n_stimuli)))
            bootstrap_sds.append(np.std([rdm_correlation(x, y, rng.integers(0, n_stimuli, n_stimuli))
                                         for _ in range(n_resamples)]))
        spread[relation] = (float(np.std(estimates)), float(np.mean(bootstrap_sds)))
    return spread


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=500)
    parser.add_argument("--resamples", type=int, default=999)
    parser.add_argument("--progress", type=int, default=50, help="print interim rows every N studies")
    parser.add_argument("--cells", default="0,1", help="comma-separated indices into CELLS, or 'all'")
    parser.add_argument("--stimulus-bootstrap-spread", action="store_true",
                        help="only the stripped-down check of the stimulus bootstrap's spread (stimulus_bootstrap_spread)")
    args = parser.parse_args()
    if args.stimulus_bootstrap_spread:
        print("| relation | SD of estimates | mean bootstrap SD | ratio |\n|---|---|---|---|")
        for relation, (sampling, bootstrap) in stimulus_bootstrap_spread(studies=args.studies).items():
            print(f"| {relation} | {sampling:.4f} | {bootstrap:.4f} | {bootstrap / sampling:.2f} |", flush=True)
        return
    import torch

    torch.set_num_threads(1)
    population = Population()
    print(HEADER, flush=True)
    chosen = range(len(CELLS)) if args.cells == "all" else [int(i) for i in args.cells.split(",")]
    known = {}  # the estimand does not depend on the number of subjects: designs that differ only there share it
    for index in chosen:
        cell = CELLS[index]
        started = time.perf_counter()
        key = (cell["n_seeds"], cell["n_stimuli"], cell["method"])
        if key not in known:
            known[key] = truths(population, n_seeds=cell["n_seeds"], n_stimuli=cell["n_stimuli"],
                                method=cell["method"])
        truth = known[key]
        print(f"<!-- cell {index} {cell}: true values {truth} ({TRUTH_SETS} stimulus sets x {TRUTH_SUBJECTS} "
              f"subjects, {time.perf_counter() - started:.0f} s) -->", flush=True)
        rows, diagnostics = calibrate(studies=args.studies, n_resamples=args.resamples, progress=args.progress,
                                      population=population, truth=truth, **cell)
        for row in rows:
            print(format_row(row), flush=True)
        print(format_diagnostics(cell, diagnostics), flush=True)
        print(f"<!-- cell {index} took {time.perf_counter() - started:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
