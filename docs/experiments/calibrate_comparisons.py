"""Coverage of the intervals ``occlusion-recurrence`` and ``speed-accuracy`` report, and of the split-half noise-corrected correlation.

Each row is an interval computed exactly as the comparison computes it (the
comparison's own ``run`` on a simulated export and simulated human trials, or
``disattenuated_correlation(reliability="split_half")`` as ``time-vs-rt``
calls it for sparse human data), scored against the estimand the comparison
states for it (docs/statistics.md, "Estimands"):

* ``occlusion effect, seed s`` (BCa over stimuli) -> this trained seed's mean
  over the stimulus population of its time at the highest occlusion level
  minus unoccluded: ``(beta + b_s) * top`` for the seed's own slope.
* ``occlusion slope, mean over seeds`` -> the slope averaged over the
  population of seeds and stimuli: ``beta``.
* ``accuracy gain, seed s`` (BCa over stimuli) -> this seed's accuracy at the
  last step minus at step 1 over the stimulus population (a seed's per-stimulus
  gain is +1, 0 or -1 with probabilities fixed per seed).
* ``accuracy, seed s`` (Clopper-Pearson) -> this seed's accuracy over the
  stimulus population.
* ``model time on errors minus correct`` (percentile over stimuli) -> the
  same difference for the mean over these seeds, over the stimulus population
  (from one simulated study of 200,000 stimuli with the same seeds).
* ``human RT on errors minus correct`` (percentile over subjects) -> the mean
  over the subject population of a subject's mean RT on error minus correct
  trials: ``delta`` (errors are independent of the stimulus here, so the value
  does not depend on which stimuli were shown).
* ``split-half noise-corrected`` -> the correlation of the noise-free stimulus
  effects (as ``calibrate_time_vs_rt.py``'s ``latent``), in that script's
  simulation (seed and subject shifts, 10 % missing human cells).

Designs: 3 seeds x 160 stimuli x 10 subjects and 5 x 400 x 20; true effect 0
and not 0. Coverage with its Clopper-Pearson 95 % interval.

    nice -n 15 python docs/experiments/calibrate_comparisons.py --studies 500 --parts occlusion,speed
    nice -n 15 python docs/experiments/calibrate_comparisons.py --studies 200 --parts split-half
    nice -n 15 python docs/experiments/calibrate_comparisons.py --studies 3000 --parts mean-interval

``mean-interval`` compares, on a plain seed x stimulus table with normal seed,
stimulus and residual effects over a range of variance mixes, the
Graybill-Wang interval ``occlusion-recurrence`` uses for the mean slope with
the Satterthwaite t-interval (why the former).
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np
import xarray as xr
from scipy.stats import binomtest

_here = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("calibrate_time_vs_rt", _here / "calibrate_time_vs_rt.py")
TIME_VS_RT = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(TIME_VS_RT)

SMALL, LARGE = TIME_VS_RT.SMALL, TIME_VS_RT.LARGE
LEVELS = (0.0, 0.25, 0.5)
# occlusion: true mean slope beta (steps per unit occlusion); seeds' own slopes vary around it (SD 0.5)
OCCLUSION_CELLS = tuple(dict(**design, beta=beta) for design in (SMALL, LARGE) for beta in (0.0, 1.0))
# speed-accuracy: "effect" sets the accuracy gain, the time difference and the RT difference together
SPEED_CELLS = tuple(dict(**design, effect=effect) for design in (SMALL, LARGE) for effect in (0.0, 1.0))
SPLIT_HALF_CELLS = tuple(dict(**design, rho=rho, method=method)
                         for method in ("spearman", "pearson") for design in (SMALL, LARGE) for rho in (0.5, 0.0))
N_CLASSES, N_STEPS = 16, 4


def _ids(n):
    return np.array([f"stim{i:04d}" for i in range(n)])


def _trials(rt, correct, ids):
    n_subjects, n_stimuli = rt.shape
    subject = np.repeat([f"sub{j:02d}" for j in range(n_subjects)], n_stimuli)
    return xr.Dataset(
        {"rt": ("trial", rt.ravel(), {"units": "s"}), "response": ("trial", np.full(rt.size, "a")),
         "correct": ("trial", correct.ravel())},
        coords={"subject": ("trial", subject), "stimulus_id": ("trial", np.tile(ids, n_subjects)),
                "condition": ("trial", np.full(rt.size, "")), "session": ("trial", np.full(rt.size, "1")),
                "trial_index": ("trial", np.tile(np.arange(n_stimuli), n_subjects))},
        attrs={"brainres_kind": "human_trials", "dataset_id": "simulated", "exclusions": []})


# --- occlusion-recurrence ---------------------------------------------------------------------------------------
def occlusion_study(rng, *, n_seeds, n_stimuli, n_subjects, beta, seed_slope_sd=0.5, stimulus_slope_sd=1.0,
                    noise=0.5):
    """An export with time (seed, occlusion, stimulus) = 3 + a_s + d_i + (beta + b_s + c_i) level + noise."""
    levels = np.array(LEVELS)
    seed_slope = beta + seed_slope_sd * rng.standard_normal(n_seeds)
    time = (3 + 0.3 * rng.standard_normal((n_seeds, 1, 1)) + rng.standard_normal((1, 1, n_stimuli))
            + (seed_slope[:, None, None] + stimulus_slope_sd * rng.standard_normal((1, 1, n_stimuli)))
            * levels[None, :, None] + noise * rng.standard_normal((n_seeds, levels.size, n_stimuli)))
    ids = _ids(n_stimuli)
    model = xr.Dataset({"expected_halting_step": (("seed", "occlusion", "stimulus_id"), time)},
                       coords={"seed": np.arange(n_seeds), "occlusion": levels, "stimulus_id": ids},
                       attrs={"brainres_kind": "model_measures"})
    rt = 0.8 + 0.1 * rng.standard_normal((n_subjects, n_stimuli))
    data = _trials(rt, np.ones_like(rt, dtype=bool), ids)
    truths = {f"occlusion effect, seed {s}": float(seed_slope[s] * levels[-1]) for s in range(n_seeds)}
    truths["occlusion slope, mean over seeds"] = float(beta)
    return model, data, truths


def occlusion_rows(model, data, *, n_resamples, seed):
    from brainres.compare import get_comparison

    # the plug-in's own run (compare() would also validate the simulated files against the schema each time)
    result = get_comparison("occlusion-recurrence").run(model, data, n_resamples=n_resamples, seed=seed)
    rows = {}
    for r in result.results:
        if r.statistic == "occlusion_effect":
            rows[f"occlusion effect, seed {r.extra['model_seed']}"] = r
        elif r.statistic == "slope" and r.extra.get("headline"):
            rows["occlusion slope, mean over seeds"] = r
    return rows


# --- speed-accuracy ---------------------------------------------------------------------------------------------
def _logistic(x):
    return 1 / (1 + np.exp(-x))


def speed_population(rng, n_stimuli, *, n_seeds, effect, seed_bias):
    """Per stimulus: difficulty, per seed x stimulus: time and correctness at every step."""
    difficulty = rng.standard_normal(n_stimuli)
    time = 2.5 + 0.5 * effect * difficulty[None, :] + 0.5 * rng.standard_normal((n_seeds, n_stimuli))
    # on the logit scale accuracy rises by 0.6 * effect per step and falls with difficulty (so errors fall on the
    # slow stimuli); with effect 0 every answer is right with the seed's own probability, at every step
    steps = np.arange(N_STEPS)
    logit = seed_bias[:, None, None] + effect * (0.6 * steps[None, None, :] - difficulty[None, :, None])
    correct = rng.random((n_seeds, n_stimuli, N_STEPS)) < _logistic(logit)
    return time, correct


def speed_study(rng, *, n_seeds, n_stimuli, n_subjects, effect, delta_sd=0.1):
    seed_bias = 0.5 + 0.3 * rng.standard_normal(n_seeds)  # these trained seeds (fixed for the truths)
    time, correct = speed_population(rng, n_stimuli, n_seeds=n_seeds, effect=effect, seed_bias=seed_bias)
    ids = _ids(n_stimuli)
    model = xr.Dataset(
        {"expected_halting_step": (("seed", "stimulus_id"), time),
         "correct": (("seed", "stimulus_id", "step"), correct),
         "halted_correct": (("seed", "stimulus_id"), correct[:, :, -1]),
         "target_class": ("stimulus_id", np.zeros(n_stimuli, int))},
        coords={"seed": np.arange(n_seeds), "stimulus_id": ids, "step": np.arange(1, N_STEPS + 1),
                "class_index": np.arange(N_CLASSES)},
        attrs={"brainres_kind": "model_measures"})
    # humans: right with probability 0.8 on every stimulus; a subject's error trials are slower by delta_j
    delta = 0.1 * effect + delta_sd * rng.standard_normal(n_subjects)
    human_correct = rng.random((n_subjects, n_stimuli)) < 0.8
    rt = (0.8 + 0.1 * rng.standard_normal((n_subjects, 1)) + 0.05 * rng.standard_normal((1, n_stimuli))
          + 0.15 * rng.standard_normal((n_subjects, n_stimuli)) + np.where(human_correct, 0.0, delta[:, None]))
    data = _trials(rt, human_correct, ids)
    # truths for these seeds: each seed's accuracy and gain, and the time difference, over 200,000 stimuli
    big_time, big_correct = speed_population(np.random.default_rng(rng.integers(2**32)), 200_000, n_seeds=n_seeds,
                                             effect=effect, seed_bias=seed_bias)
    truths = {}
    for s in range(n_seeds):
        truths[f"accuracy gain, seed {s}"] = float(np.mean(big_correct[s, :, -1].astype(float)
                                                           - big_correct[s, :, 0]))
        truths[f"accuracy, seed {s}"] = float(np.mean(big_correct[s, :, -1]))
    error = 1 - big_correct[:, :, -1].mean(axis=0)
    mean_time = big_time.mean(axis=0)
    truths["model time on errors minus correct"] = float(
        (error @ mean_time) / error.sum() - ((1 - error) @ mean_time) / (1 - error).sum())
    truths["human RT on errors minus correct"] = 0.1 * effect
    return model, data, truths


def speed_rows(model, data, *, n_resamples, seed):
    from brainres.compare import get_comparison

    # the plug-in's own run (compare() would also validate the simulated files against the schema each time)
    result = get_comparison("speed-accuracy").run(model, data, n_resamples=n_resamples, seed=seed)
    rows = {}
    for r in result.results:
        if r.statistic == "accuracy_gain":
            rows[f"accuracy gain, seed {r.extra['model_seed']}"] = r
        elif r.statistic == "accuracy":
            rows[f"accuracy, seed {r.extra['model_seed']}"] = r
        elif r.statistic == "time_difference":
            rows["model time on errors minus correct"] = r
        elif r.statistic == "rt_difference":
            rows["human RT on errors minus correct"] = r
    return rows


# --- split-half noise-corrected correlation -------------------------------------------------------------------
def split_half_rows(model, human, *, method, n_resamples, seed):
    from brainres.stats import disattenuated_correlation

    # as time-vs-rt calls it (n_splits 1000: all 126 splits of 10 subjects; 100 bootstrap splits)
    return {"split-half noise-corrected (BCa)": disattenuated_correlation(
        model, human, method=method, reliability="split_half", n_splits=1000, bootstrap_splits=100,
        n_resamples=n_resamples, seed=seed)}


# --- the mean of a seed x stimulus table: which interval (why occlusion-recurrence uses Graybill-Wang) -----------
VARIANCE_MIXES = ((0.5, 1.0, 1.41), (0.0, 1.0, 1.41), (0.5, 0.0, 1.41), (0.1, 1.0, 1.41), (0.2, 0.5, 1.41),
                  (0.3, 1.0, 1.41), (0.05, 0.3, 1.41), (0.0, 0.0, 1.0))


def satterthwaite_interval(values, ci_level=0.95):
    """The t-interval with the unbiased crossed variance and Satterthwaite's df (the rejected alternative)."""
    from brainres.comparisons.occlusion_recurrence import crossed_mean_interval
    from scipy import stats

    k, n = values.shape
    out = crossed_mean_interval(values, ci_level=ci_level)
    terms = [(out["ms_seed"], k - 1), (out["ms_stimulus"], n - 1), (out["ms_residual"], (k - 1) * (n - 1))]
    combined = terms[0][0] + terms[1][0] - terms[2][0]
    if not combined > 0:
        combined, terms = terms[0][0] + terms[1][0], terms[:2]
    df = combined**2 / sum(ms**2 / d for ms, d in terms)
    half = stats.t.ppf(0.5 + ci_level / 2, df) * np.sqrt(combined / (k * n))
    return out["estimate"] - half, out["estimate"] + half


def mean_interval_rows(*, studies=3000, seed=0):
    """Coverage of mu by the Graybill-Wang and the Satterthwaite intervals, ``mu + a_s + c_i + e_si`` normal."""
    from brainres.comparisons.occlusion_recurrence import crossed_mean_interval

    rng = np.random.default_rng(seed)
    rows = []
    for design in (SMALL, LARGE):
        k, n = design["n_seeds"], design["n_stimuli"]
        for sd_seed, sd_stimulus, sd_residual in VARIANCE_MIXES:
            hits, widths = {"Graybill-Wang": [], "Satterthwaite t": []}, {"Graybill-Wang": [], "Satterthwaite t": []}
            for _ in range(studies):
                table = (sd_seed * rng.standard_normal((k, 1)) + sd_stimulus * rng.standard_normal((1, n))
                         + sd_residual * rng.standard_normal((k, n)))
                out = crossed_mean_interval(table)
                for name, (low, high) in (("Graybill-Wang", (out["ci_low"], out["ci_high"])),
                                          ("Satterthwaite t", satterthwaite_interval(table))):
                    hits[name].append(low <= 0 <= high)
                    widths[name].append(high - low)
            label = dict(design, effect=f"SD seed/stimulus/residual {sd_seed}/{sd_stimulus}/{sd_residual}", method="")
            rows += [_row(label, f"mean of the table, {name}", hits[name], widths[name], [0.0], [0.0])
                     for name in hits]
    return rows


# --- scoring ------------------------------------------------------------------------------------------------------
def _scored(name: str) -> str | None:
    """The row a result is scored under: of the per-seed rows, the first seed's only (the seeds of one study share
    its stimuli, so their misses are not independent and pooling them would narrow the binomial interval)."""
    if ", seed " not in name:
        return name
    return name.replace(", seed 0", ", first seed") if name.endswith(", seed 0") else None


def calibrate(part: str, *, studies: int, n_resamples: int = 999, seed: int = 0, progress: int = 0, **cell):
    """Coverage rows for one cell of one part."""
    rng = np.random.default_rng(seed + {"occlusion": 11, "speed": 22, "split-half": 33}[part])
    if part == "occlusion":
        # the slope enters as a shift, and every interval here shifts with it: with the same draws the beta = 0 and
        # beta = 1 cells would score identically, so each cell gets draws of its own
        rng = np.random.default_rng([seed + 11, round(1000 * cell["beta"])])
    hits, widths, estimates, truth_values = {}, {}, {}, {}
    design = {k: cell[k] for k in ("n_seeds", "n_stimuli", "n_subjects")}
    effect = {"occlusion": "beta", "speed": "effect", "split-half": "rho"}[part]
    label = dict(design, effect=f"{effect} = {cell[effect]}", method=cell.get("method", ""))
    latent = None
    if part == "split-half":
        latent = TIME_VS_RT.truths(n_seeds=cell["n_seeds"], n_subjects=cell["n_subjects"], rho=cell["rho"],
                                   method=cell["method"], **TIME_VS_RT.NOISE)["latent"]
    for index in range(studies):
        if part == "occlusion":
            model, data, truths = occlusion_study(rng, **cell)
            rows = occlusion_rows(model, data, n_resamples=n_resamples, seed=index)
        elif part == "speed":
            model, data, truths = speed_study(rng, **cell)
            rows = speed_rows(model, data, n_resamples=n_resamples, seed=index)
        else:
            model, human = TIME_VS_RT.study(rng, **design, rho=cell["rho"], **TIME_VS_RT.NOISE)
            rows = split_half_rows(model, human, method=cell["method"], n_resamples=n_resamples, seed=index)
            truths = {name: latent for name in rows}
        for name, result in rows.items():
            key = _scored(name)
            if key is None:
                continue
            hits.setdefault(key, []).append(result.ci_low <= truths[name] <= result.ci_high)
            widths.setdefault(key, []).append(result.ci_high - result.ci_low)
            estimates.setdefault(key, []).append(result.estimate)
            truth_values.setdefault(key, []).append(truths[name])
        if progress and (index + 1) % progress == 0 and index + 1 < studies:
            print(f"<!-- after {index + 1} studies:", flush=True)
            for key, hit in hits.items():
                print(format_row(_row(label, key, hit, widths[key], estimates[key], truth_values[key])), flush=True)
            print("-->", flush=True)
    return [_row(label, key, hits[key], widths[key], estimates[key], truth_values[key]) for key in hits]


def _row(label, interval, hits, widths, estimates, truths):
    k, n = int(np.sum(hits)), len(hits)
    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return {**label, "interval": interval, "truth": float(np.mean(truths)), "intervals": n, "covered": k,
            "coverage": k / n, "coverage_low": ci.low, "coverage_high": ci.high,
            "mean_width": float(np.mean(widths)), "mean_estimate": float(np.mean(estimates))}


def format_row(row) -> str:
    method = f" {row['method']}" if row["method"] else ""
    return (f"| {row['n_seeds']} x {row['n_stimuli']} x {row['n_subjects']} | {row['effect']}{method} "
            f"| {row['interval']} | {row['truth']:.3f} | {row['mean_estimate']:.3f} "
            f"| {row['coverage']:.3f} [{row['coverage_low']:.3f}, {row['coverage_high']:.3f}] "
            f"| {row['mean_width']:.3f} | {row['intervals']} |")


HEADER = ("| seeds x stimuli x subjects | truth set by | interval | mean true value | mean estimate "
          "| coverage [95% CI] | mean width | intervals scored |\n|---|---|---|---|---|---|---|---|")
CELLS = {"occlusion": OCCLUSION_CELLS, "speed": SPEED_CELLS, "split-half": SPLIT_HALF_CELLS}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=500)
    parser.add_argument("--resamples", type=int, default=999)
    parser.add_argument("--progress", type=int, default=50, help="print interim rows every N studies")
    parser.add_argument("--parts", default="occlusion,speed,split-half")
    parser.add_argument("--cells", default="all", help="'all' or comma-separated cell indices within each part")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    print(HEADER, flush=True)
    for part in args.parts.split(","):
        if part == "mean-interval":
            for row in mean_interval_rows(studies=args.studies):
                print(format_row(row), flush=True)
            continue
        cells = CELLS[part]
        chosen = range(len(cells)) if args.cells == "all" else [int(i) for i in args.cells.split(",")]
        for index in chosen:
            started = time.perf_counter()
            for row in calibrate(part, studies=args.studies, n_resamples=args.resamples, progress=args.progress,
                                 **cells[index]):
                print(format_row(row), flush=True)
            print(f"<!-- {part} cell {index} took {time.perf_counter() - started:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
