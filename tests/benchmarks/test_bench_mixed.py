"""Speed of the mixed-model fit against lme4 in the same run (``pytest -m benchmark -s tests/benchmarks/test_bench_mixed.py``).

Two designs: the 12,669 answered trials of ``geirhos2021-cue-conflict`` (10
subjects x 1,280 stimuli; needs ``BRAINRES_DATA``) and a simulated
CIFAR-10H-like sparse design (500,000 trials, 2,571 annotators, 10,000
images, 50 annotators per image, about 194 images per annotator), both with
random intercepts only, the formula lme4 fits beside it; on the cue-conflict
trials also ``time-vs-rt``'s default (random slopes by subject, Satterthwaite's
df) against ``lmer`` with the same slopes plus lmerTest's df; and Kenward-Roger's adjustment against
pbkrtest's (through lmerTest) on the calibration's 10 subjects x 160 stimuli, and its cost beside the
default on the cue-conflict trials and a simulated 50 x 2,000 design, where pbkrtest cannot run. lme4 runs
through ``Rscript`` (``apt-get install r-cran-lme4 r-cran-lmertest``); without
it the lme4 column is skipped. Each prints both times, their ratio and the spread over
repeats, and the largest relative difference between the estimates; nothing
asserts a time. Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainres.stats.mixed import rt_mixed_model

pytestmark = pytest.mark.benchmark
needs_r = pytest.mark.skipif(shutil.which("Rscript") is None,
                             reason="Rscript is not installed; the lme4 comparison needs R with lme4 "
                                    "(Debian: apt-get install r-cran-lme4)")


def _largest_difference(table, peer):
    rows = table.set_index("term")
    pairs = [(rows.loc[t, "estimate"], v) for t, v in peer["fixef"].items()]
    pairs += [(rows.loc[t, "se"], v) for t, v in peer["se"].items()]
    pairs += [(rows.loc["var(stimulus_id)", "estimate"], peer["vcov"]["stimulus:Intercept:"]),
              (rows.loc["var(subject)", "estimate"], peer["vcov"]["subject:Intercept:"]),
              (rows.loc["var(residual)", "estimate"], peer["vcov"]["Residual::"])]
    pairs += [(rows.loc[t, "df"], v) for t, v in peer.get("df", {}).items()]
    return max(abs(ours - theirs) / abs(theirs) for ours, theirs in pairs)


def _spread(times):
    times = np.asarray(times)
    return f"median {np.median(times):.3f} s (min {times.min():.3f}, max {times.max():.3f}, {times.size} runs)"


@needs_r
@pytest.mark.needs_data
def test_cue_conflict_fit_against_lme4(data_root):
    from brainres.data.registry import load_dataset
    from brainres.stats.mixed_lme4 import fit_lme4

    ds = load_dataset("geirhos2021-cue-conflict")
    trials = pd.DataFrame({"rt": ds["rt"].values, "subject": ds["subject"].values.astype(str),
                           "stimulus_id": ds["stimulus_id"].values.astype(str), "correct": ds["correct"].values})
    trials = trials.dropna(subset=["rt"]).reset_index(drop=True)
    accuracy = trials.groupby("stimulus_id")["correct"].mean()
    measure = ((accuracy - accuracy.mean()) / accuracy.std()).rename("model_time_z")
    repeats = 7
    per_trial = pd.DataFrame({"model_time_z": measure.reindex(trials["stimulus_id"]).to_numpy()})
    rt_mixed_model(trials, measure)  # first call: imports
    # the formula lme4 has been compared on, then time-vs-rt's default (random slopes, Satterthwaite's df) against
    # lmer with the same slopes plus lmerTest's df
    for label, options, peer_options in (
            ("(1|subject) + (1|stimulus), Wald z", {"random_slopes": False, "df_method": "normal"}, {}),
            ("(1 + model_time_z|subject) + (1|stimulus), Satterthwaite df", {},
             {"random_slopes": ["model_time_z"], "satterthwaite": True})):
        ours = []
        for _ in range(repeats):
            started = time.perf_counter()
            table = rt_mixed_model(trials, measure, **options)
            ours.append(time.perf_counter() - started)
        peer = fit_lme4(np.log(trials["rt"].to_numpy()), trials["subject"], trials["stimulus_id"], per_trial,
                        repeats=repeats, **peer_options)
        ratio = np.median(ours) / np.median(peer["seconds"])
        print(f"\n[benchmark] log(rt) ~ model_time_z + {label}, REML, {len(trials):,} trials "
              f"(geirhos2021-cue-conflict)\n"
              f"  brainres rt_mixed_model: {_spread(ours)}, {table.attrs['n_evaluations']} deviance evaluations\n"
              f"  lme4 lmer{' + lmerTest df' if 'satterthwaite' in peer_options else ''} (same R session, model "
              f"frame included): {_spread(peer['seconds'])}, {peer['n_evaluations']} deviance evaluations\n"
              f"  time ratio brainres / lme4 (medians): {ratio:.2f}x (goal: at most 1x)\n"
              f"  largest relative difference of estimates, SEs and variances: {_largest_difference(table, peer):.1e}")
        assert table.attrs["converged"]


@needs_r
def test_kenward_roger_against_pbkrtest():
    from brainres.stats.mixed_lme4 import fit_lme4, pbkrtest_available

    if not pbkrtest_available():
        pytest.skip("R's pbkrtest is not installed (Debian: apt-get install r-cran-pbkrtest)")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs" / "experiments"))
    from calibrate_trials import mixed_study

    trials, measure = mixed_study(np.random.default_rng(0), n_subjects=10, n_stimuli=160, slope=0.05,
                                  subject_slope_sd=0.03)
    repeats = 3
    rt_mixed_model(trials, measure, df_method="kenward-roger")  # first call: imports
    ours = []
    for _ in range(repeats):
        started = time.perf_counter()
        table = rt_mixed_model(trials, measure, df_method="kenward-roger")
        ours.append(time.perf_counter() - started)
    per_trial = pd.DataFrame({"model_time_z": measure.reindex(trials["stimulus_id"]).to_numpy()})
    peer = fit_lme4(np.log(trials["rt"].to_numpy()), trials["subject"], trials["stimulus_id"], per_trial,
                    random_slopes=["model_time_z"], kenward_roger=True, repeats=repeats)
    rows = table.set_index("term")
    difference = max(abs(rows.loc[term, column] - peer[key][term]) / peer[key][term]
                     for term in ("Intercept", "model_time_z") for column, key in (("se", "kr_se"), ("df", "kr_df")))
    print(f"\n[benchmark] Kenward-Roger, log(rt) ~ model_time_z + (1 + model_time_z|subject) + (1|stimulus), REML, "
          f"{len(trials):,} trials (10 subjects x 160 stimuli, simulated)\n"
          f"  brainres rt_mixed_model(df_method='kenward-roger'): {_spread(ours)}\n"
          f"  lme4 lmer + pbkrtest via lmerTest summary(ddf = 'Kenward-Roger'): {_spread(peer['seconds'])}\n"
          f"  time ratio brainres / pbkrtest (medians): {np.median(ours) / np.median(peer['seconds']):.3f}x\n"
          f"  largest relative difference of the SEs and df: {difference:.1e}")
    assert table.attrs["converged"]


@pytest.mark.needs_data
def test_kenward_roger_cost_beside_satterthwaite(data_root):
    # pbkrtest cannot run at these sizes (n x n matrices); the peer is brainres' own default on the same trials.
    from brainres.data.registry import load_dataset

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs" / "experiments"))
    from calibrate_trials import mixed_study

    ds = load_dataset("geirhos2021-cue-conflict")
    cue = pd.DataFrame({"rt": ds["rt"].values, "subject": ds["subject"].values.astype(str),
                        "stimulus_id": ds["stimulus_id"].values.astype(str), "correct": ds["correct"].values})
    cue = cue.dropna(subset=["rt"]).reset_index(drop=True)
    accuracy = cue.groupby("stimulus_id")["correct"].mean()
    designs = [("geirhos2021-cue-conflict", cue, ((accuracy - accuracy.mean()) / accuracy.std()).rename("model_time_z"),
                3)]
    designs.append(("simulated 50 subjects x 2,000 stimuli (the calibration's cell 11)",
                    *mixed_study(np.random.default_rng(0), n_subjects=50, n_stimuli=2000, slope=0.05,
                                 subject_slope_sd=0.03), 1))
    for label, trials, measure, repeats in designs:
        times, slopes = {}, {}
        for method in ("satterthwaite", "kenward-roger"):
            times[method] = []
            for _ in range(repeats):
                started = time.perf_counter()
                table = rt_mixed_model(trials, measure, df_method=method)
                times[method].append(time.perf_counter() - started)
            slopes[method] = table.set_index("term").loc["model_time_z"]
        print(f"\n[benchmark] df_method='kenward-roger' against the default, {label}, {len(trials):,} trials\n"
              f"  Satterthwaite: {_spread(times['satterthwaite'])}; slope SE {slopes['satterthwaite']['se']:.6f}, "
              f"df {slopes['satterthwaite']['df']:.3f}\n"
              f"  Kenward-Roger: {_spread(times['kenward-roger'])}; slope SE {slopes['kenward-roger']['se']:.6f}, "
              f"df {slopes['kenward-roger']['df']:.3f}\n"
              f"  time ratio Kenward-Roger / Satterthwaite (medians): "
              f"{np.median(times['kenward-roger']) / np.median(times['satterthwaite']):.1f}x")


def _cifar10h_like(seed=0, n_annotators=2571, n_images=10_000, per_image=50, slope_sd=0.0):
    """Trials of a CIFAR-10H-like design: each image judged by ``per_image`` distinct annotators (whose slopes on
    the measure differ by ``slope_sd``)."""
    rng = np.random.default_rng(seed)
    annotator = np.concatenate([rng.choice(n_annotators, size=per_image, replace=False) for _ in range(n_images)])
    image = np.repeat(np.arange(n_images), per_image)
    measure = rng.normal(size=n_images)
    log_rt = (0.2 + 0.05 * measure[image] + rng.normal(scale=0.25, size=n_annotators)[annotator]
              + rng.normal(scale=0.1, size=n_images)[image] + rng.normal(scale=0.3, size=image.size))
    if slope_sd:
        log_rt += rng.normal(scale=slope_sd, size=n_annotators)[annotator] * measure[image]
    return annotator, image, measure, log_rt


_CHILD = r"""
import json, resource, sys, time
import numpy as np, pandas as pd
from brainres.stats.mixed import rt_mixed_model
data = np.load(sys.argv[1])
trials = pd.DataFrame({"subject": np.char.add("a", data["annotator"].astype(str)),
                       "stimulus_id": np.char.add("i", data["image"].astype(str)), "rt": np.exp(data["log_rt"])})
measure = pd.Series(data["measure"], index=np.char.add("i", np.arange(data["measure"].size).astype(str)),
                    name="model_time_z")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
table = rt_mixed_model(trials, measure, random_slopes=False, df_method="normal")  # lme4's formula below
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_rss_mib": peak / 1024, "before_fit_rss_mib": before / 1024,
                  "n_evaluations": table.attrs["n_evaluations"], "converged": table.attrs["converged"],
                  "table": table[["term", "estimate", "se"]].to_dict("list")}))
"""


def test_cifar10h_like_sparse_design_against_lme4(tmp_path):
    annotator, image, measure, log_rt = _cifar10h_like()
    path = tmp_path / "design.npz"
    np.savez(path, annotator=annotator, image=image, measure=measure, log_rt=log_rt)
    # A fresh process, so its peak resident memory is this fit's (data and libraries included).
    run = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, timeout=3600)
    assert run.returncode == 0, run.stderr[-3000:]
    ours = json.loads(run.stdout.strip().splitlines()[-1])
    table = pd.DataFrame(ours["table"])
    per_image = np.bincount(image)
    per_annotator = np.bincount(annotator)
    lines = [f"\n[benchmark] CIFAR-10H-like sparse design: {log_rt.size:,} trials, {per_annotator.size:,} annotators "
             f"x {per_image.size:,} images ({per_image.mean():.0f} annotators per image, "
             f"{per_annotator.mean():.0f} images per annotator; {log_rt.size / (per_image.size * per_annotator.size):.1%}"
             f" of the cells)",
             f"  brainres: {ours['seconds']:.1f} s, {ours['n_evaluations']} deviance evaluations, peak resident "
             f"memory {ours['peak_rss_mib']:.0f} MiB ({ours['before_fit_rss_mib']:.0f} MiB before the fit) "
             f"(goals: under 60 s, under 2 GiB)"]
    if shutil.which("Rscript") is not None:
        from brainres.stats.mixed_lme4 import fit_lme4

        peer = fit_lme4(log_rt, annotator.astype(str), image.astype(str),
                        pd.DataFrame({"model_time_z": measure[image]}), repeats=1)
        seconds = peer["seconds"][0]
        lines.append(f"  lme4 lmer: {seconds:.1f} s, {peer['n_evaluations']} deviance evaluations, "
                     f"R's max used memory {peer['memory_mb']:.0f} MB; "
                     f"time ratio brainres / lme4: {ours['seconds'] / seconds:.2f}x")
        lines.append(f"  largest relative difference of estimates, SEs and variances: "
                     f"{_largest_difference(table, peer):.1e}")
    else:
        lines.append("  lme4: not run (Rscript is not installed)")
    print("\n".join(lines))
    assert ours["converged"]


def test_default_model_on_a_quarter_size_cifar10h_like_design():
    # time-vs-rt's default (random slopes by annotator, Satterthwaite's df) against random intercepts with a normal
    # quantile in the same run: the dense Schur complement on the annotators doubles with the slopes
    annotator, image, measure, log_rt = _cifar10h_like(n_annotators=640, n_images=2500, slope_sd=0.02)
    trials = pd.DataFrame({"subject": np.char.add("a", annotator.astype(str)),
                           "stimulus_id": np.char.add("i", image.astype(str)), "rt": np.exp(log_rt)})
    series = pd.Series(measure, index=np.char.add("i", np.arange(measure.size).astype(str)), name="model_time_z")
    lines = [f"\n[benchmark] quarter-size CIFAR-10H-like design: {len(trials):,} trials, 640 annotators x 2,500 "
             "images, annotators' slopes SD 0.02"]
    seconds = {}
    for label, options in (("random intercepts, Wald z", {"random_slopes": False, "df_method": "normal"}),
                           ("random intercepts, Satterthwaite df", {"random_slopes": False}),
                           ("default: random slopes by annotator, Satterthwaite df", {})):
        started = time.perf_counter()
        table = rt_mixed_model(trials, series, **options)
        seconds[label] = time.perf_counter() - started
        slope = table.set_index("term").loc["model_time_z"]
        lines.append(f"  {label}: {seconds[label]:.1f} s (fit {table.attrs['fit_seconds']:.1f} s, "
                     f"{table.attrs['n_evaluations']} deviance evaluations); slope {slope['estimate']:.4f}, "
                     f"SE {slope['se']:.4f}, df {slope['df']:.0f}")
        assert table.attrs["converged"]
    default, plain = seconds["default: random slopes by annotator, Satterthwaite df"], seconds["random intercepts, Wald z"]
    lines.append(f"  time ratio default / random intercepts: {default / plain:.0f}x")
    print("\n".join(lines))
