"""Coverage of the change of a model-human correlation between two training epochs of the same seeds.

``latent_correlation_difference(late, early, human)`` (the ``competence-alignment``
comparison's change rows; ``--estimator bootstrap``: the bias-shifted crossed
bootstrap ``bootstrap_correlation_difference``) is scored against the
noise-free change: the difference between the correlations of the model's
expected time over infinitely many seeds with the humans' expected measure,
over the population of stimuli. Each simulated study draws stimuli (a
difficulty the humans share and a private effect they do not), subjects
(difficulty plus noise) and seeds whose noise persists across epochs (one part
per seed and stimulus, shared by both epochs) plus noise of its own per epoch.

    python docs/experiments/calibrate_paired_epochs.py --studies 300 --resamples 999 [--estimator bootstrap]

prints one row per design and estimand (the noise-free change, and the change
of the correlations at the design's numbers of seeds and subjects): coverage
with its Clopper-Pearson 95% interval and the mean interval width.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy.stats import beta

from brainres.stats import bootstrap_correlation_difference
from brainres.stats.latent import latent_correlation_difference

# epoch -> (loading on the difficulty, loading on the private effect)
EPOCHS = {"early": (0.3, 1.0), "late": (1.0, 1.0)}


SEED_SD, EPOCH_SD, SUBJECT_SD = 1.0, 0.5, 2.0


def truth(method: str, design=None) -> float:
    """The change, late minus early, over the population of stimuli: noise-free (``design`` None), or at a design.

    corr(a d + b u + model noise, d + human noise) for normal d, u: Pearson
    a / sqrt((a^2 + b^2 + model noise variance) (1 + human noise variance));
    Spearman 6 / pi asin(r / 2). At a design (n_seeds, n_stimuli, n_subjects)
    the noise is that left in the mean of the seeds and of the subjects.
    """
    model_noise, human_noise = 0.0, 0.0
    if design is not None:
        model_noise = (SEED_SD**2 + EPOCH_SD**2) / design[0]
        human_noise = SUBJECT_SD**2 / design[2]

    def corr(a, b):
        r = a / math.sqrt((a * a + b * b + model_noise) * (1 + human_noise))
        return r if method == "pearson" else 6 / math.pi * math.asin(r / 2)
    return corr(*EPOCHS["late"]) - corr(*EPOCHS["early"])


def study(rng, n_seeds, n_stimuli, n_subjects, seed_sd=SEED_SD, epoch_sd=EPOCH_SD, subject_sd=SUBJECT_SD):
    difficulty, private = rng.standard_normal(n_stimuli), rng.standard_normal(n_stimuli)
    persistent = seed_sd * rng.standard_normal((n_seeds, n_stimuli))  # a seed's own view of each stimulus
    models = {name: a * difficulty + b * private + persistent + epoch_sd * rng.standard_normal((n_seeds, n_stimuli))
              for name, (a, b) in EPOCHS.items()}
    human = difficulty + subject_sd * rng.standard_normal((n_subjects, n_stimuli))
    return models, human


def coverage(n_studies, n_resamples, design, method, seed=0, paired_seeds=True, estimator="latent"):
    rng = np.random.default_rng(seed)
    targets = {"noise-free": truth(method), "at the design": truth(method, design)}
    hits, widths = dict.fromkeys(targets, 0), []
    for index in range(n_studies):
        models, human = study(rng, *design)
        if estimator == "latent":  # competence-alignment's change rows (human data with subjects)
            result = latent_correlation_difference(models["late"], models["early"], human, method=method,
                                                   n_resamples=n_resamples, seed=index)
        else:
            result = bootstrap_correlation_difference(models["late"], models["early"], human, method=method,
                                                      n_resamples=n_resamples, seed=index, paired_seeds=paired_seeds)
        for name, target in targets.items():
            hits[name] += result.ci_low <= target <= result.ci_high
        widths.append(result.ci_high - result.ci_low)
    rows = {}
    for name, hit in hits.items():
        low = beta.ppf(0.025, hit, n_studies - hit + 1) if hit else 0.0
        high = beta.ppf(0.975, hit + 1, n_studies - hit) if hit < n_studies else 1.0
        rows[name] = (hit / n_studies, low, high, targets[name])
    return rows, float(np.mean(widths))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=300)
    parser.add_argument("--resamples", type=int, default=999)
    parser.add_argument("--independent-seeds", action="store_true",
                        help="resample each epoch's seeds as a factor of its own (paired_seeds=False)")
    parser.add_argument("--designs", default="3x160x10,5x400x20")
    parser.add_argument("--null", action="store_true", help="no change: the early epoch loads on the difficulty as "
                                                            "the late one does")
    parser.add_argument("--estimator", choices=("latent", "bootstrap"), default="latent",
                        help="latent: latent_correlation_difference; bootstrap: the bias-shifted crossed bootstrap")
    args = parser.parse_args(argv)
    if args.null:
        EPOCHS["early"] = EPOCHS["late"]
    print("| design (seeds x stimuli x subjects) | method | estimand | true change | coverage [95% CI] | mean width |")
    print("|---|---|---|---|---|---|")
    for design in [tuple(int(v) for v in d.split("x")) for d in args.designs.split(",")]:
        for method in ("spearman", "pearson"):
            rows, width = coverage(args.studies, args.resamples, design, method,
                                   paired_seeds=not args.independent_seeds, estimator=args.estimator)
            for name, (cov, low, high, target) in rows.items():
                print(f"| {' x '.join(map(str, design))} | {method} | {name} | {target:.3f} | {cov:.3f} "
                      f"[{low:.3f}, {high:.3f}] | {width:.3f} |", flush=True)


if __name__ == "__main__":
    main()
