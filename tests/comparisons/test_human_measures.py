"""The human side of time-vs-rt: RT, accuracy and label entropy, each with a ceiling that fits it (synthetic truth)."""

import numpy as np
import pytest
import xarray as xr
from scipy.stats import entropy, hypergeom, pearsonr, spearmanr

from brainres.compare import compare
from brainres.comparisons._common import ComparisonError
from brainres.errors import StimulusMismatchError
from brainres.comparisons._human_measures import human_measure
from brainres.comparisons._annotator_subsets import effective_share, extrapolated_reliability, split_label_counts
from brainres.comparisons._label_counts import (
    category_counts, label_disattenuated_correlation, label_entropy, label_split_half_reliability,
    share_of_first_label,
)
from brainres.settings import SettingsError
from brainres.testing import PROVENANCE, planted_time_and_rt


def by_label(result, text):
    return next(r for r in result.results if text in r.extra["label"])


def _labels(n_stimuli, *, n_annotators=50, concentration=0.2, seed=0):
    """True label distributions (Dirichlet) and counts of ``n_annotators`` draws from each."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(10, concentration), size=n_stimuli)
    return p, rng.multinomial(n_annotators, p)


def _counts_dataset(counts, ids):
    return xr.Dataset({"counts": (("stimulus_id", "label"), counts)}, coords={"stimulus_id": ids},
                      attrs={**PROVENANCE, "dataset_id": "synthetic-labels", "brainres_kind": "human_labels"})


def test_label_entropy_matches_scipy():
    _, counts = _labels(50, seed=1)
    expected = entropy(counts, axis=1) / np.log(10)
    np.testing.assert_allclose(label_entropy(counts), expected, atol=1e-12)
    assert np.isnan(label_entropy([[0, 0]]))[0]


def test_split_halves_are_hypergeometric():
    counts = np.array([[30, 15, 5], [1, 0, 50]])
    first, second = split_label_counts(counts, n_splits=20_000, seed=3)
    assert (first + second == counts).all() and (first >= 0).all()
    np.testing.assert_array_equal(first.sum(axis=2), np.broadcast_to([25, 25], (20_000, 2)))
    # the first label of stimulus 0: 25 of 50 annotators drawn, 30 of whom chose it
    law = hypergeom(50, 30, 25)
    draws = first[:, 0, 0]
    assert abs(draws.mean() - law.mean()) < 4 * law.std() / np.sqrt(draws.size)
    assert abs(draws.var() / law.var() - 1) < 0.05
    # a label nobody chose is never drawn; same seed, same halves
    assert (first[:, 1, 1] == 0).all()
    again, _ = split_label_counts(counts, n_splits=20_000, seed=3)
    np.testing.assert_array_equal(first, again)


def test_quarter_subsets_are_disjoint_hypergeometric_draws():
    counts = np.array([[30, 15, 5], [1, 0, 50]])
    first, second = split_label_counts(counts, n_splits=20_000, seed=4, share=0.25)
    np.testing.assert_array_equal(first.sum(axis=2), np.broadcast_to([12, 12], (20_000, 2)))
    np.testing.assert_array_equal(second.sum(axis=2), first.sum(axis=2))
    assert ((first + second) <= counts).all() and (second >= 0).all()  # no annotator in both
    for draws, law in ((first[:, 0, 0], hypergeom(50, 30, 12)), (second[:, 0, 0], hypergeom(50, 30, 12))):
        assert abs(draws.mean() - law.mean()) < 4 * law.std() / np.sqrt(draws.size)
    # the second subset is drawn from what the first left: given the first, its mean follows the rest
    left = 30 - first[:, 0, 0]
    assert abs(np.mean(second[:, 0, 0] - 12 * left / 38)) < 0.02
    with pytest.raises(ComparisonError, match="share"):
        split_label_counts(counts, n_splits=2, share=0.6)


def _cifar10h_like(rng, n_stimuli):
    """Label counts as CIFAR-10H's: most stimuli near-unanimous (docs/experiments/calibrate_label_counts.py)."""
    error = rng.beta(0.35, 7.0, size=n_stimuli)
    p = np.column_stack([1 - error, error[:, None] * rng.dirichlet(np.full(9, 0.3), size=n_stimuli)])
    n = 47 + rng.binomial(16, 0.25, size=n_stimuli)
    return p, n


def test_extrapolated_reliability_removes_the_step_up_bias_of_tied_ranks():
    # About half the stimuli are unanimous (entropy 0) and halves of the annotators are unanimous more often, so
    # Spearman-Brown from the halves overstates the Spearman reliability; the power fitted over three subset
    # sizes does not (docs/statistics.md: 0.002 against 0.02 in 200,000 stimuli)
    rng = np.random.default_rng(31)
    p, n = _cifar10h_like(rng, 30_000)
    one, other = (np.stack([rng.multinomial(k, row) for k, row in zip(n, p)]) for _ in range(2))
    truth = spearmanr(label_entropy(one), label_entropy(other))[0]
    estimate = label_split_half_reliability(one, n_splits=6, n_resamples=10, bootstrap_splits=3, seed=5)
    halves = estimate.extra["subset_correlations"][-1]
    assert 2 * halves / (1 + halves) - truth > 0.012  # what Spearman-Brown from the halves alone gives
    assert abs(estimate.estimate - truth) < 0.007
    # the sizes as drawn: a quarter and a third of 47-63 annotators, rounded down
    np.testing.assert_allclose(estimate.extra["subset_shares"], [0.24, 0.33, 0.5], atol=0.01)
    assert "fitted power" in estimate.method


@pytest.mark.parametrize("concentration, n_annotators, tolerance", [(0.2, 50, 0.08), (1.0, 50, 0.08), (1.0, 20, 0.12)])
def test_label_reliability_recovers_the_parallel_forms_reliability(concentration, n_annotators, tolerance):
    # truth: the correlation of the entropies of two independent sets of annotators (many stimuli)
    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.full(10, concentration), size=5000)
    sets = [rng.multinomial(n_annotators, p) for _ in range(2)]
    truth = spearmanr(label_entropy(sets[0]), label_entropy(sets[1]))[0]
    estimate = label_split_half_reliability(sets[0][:400], n_splits=50, n_resamples=200, seed=1)
    assert estimate.ci_low < truth < estimate.ci_high
    # (400 stimuli: the estimate has its own sampling error.) Over all 5,000 stimuli the extrapolation is close
    # with concentrated labels (0.873 against 0.870) and overshoots with diffuse ones (0.636 against 0.613 at 50
    # annotators, 0.381 against 0.347 at 20), where Spearman-Brown from the halves undershoots as much (0.864,
    # 0.587, 0.309): entropy is not a mean of annotators, and no step-up law holds for it in general
    assert abs(estimate.estimate - truth) < tolerance
    assert estimate.extra["unit"] == "annotator" and "annotators" in estimate.method


def test_noise_corrected_correlation_with_label_entropy_covers_the_truth():
    # model time = true entropy + a stimulus effect the humans do not share + seed noise
    rng = np.random.default_rng(11)
    p, counts = _labels(300, n_annotators=30, concentration=0.3, seed=12)
    truth_h = label_entropy(p * 1e6)  # the entropy of the label distribution itself (infinitely many annotators)
    private = rng.normal(0, truth_h.std() * 0.75, 300)
    model = truth_h + private + rng.normal(0, 0.3, (3, 300))
    # the estimand's true score: the expected entropy of 30 annotators' labels (below truth_h: the entropy of a
    # finite sample is biased low)
    true_score = np.mean([label_entropy(rng.multinomial(30, p)) for _ in range(2000)], axis=0)
    truth = pearsonr(truth_h + private, true_score)[0]
    corrected = label_disattenuated_correlation(model, counts, method="pearson", n_splits=100, n_resamples=400, seed=2)
    assert corrected.ci_low < truth < corrected.ci_high
    assert corrected.extra["raw_r"] < corrected.estimate  # the noise attenuated the raw correlation
    assert 0 < corrected.extra["reliability_human"] < 1 and 0 < corrected.extra["reliability_model"] < 1


def test_label_accuracy_reliability_recovers_the_parallel_forms_reliability():
    # share of annotators choosing the true class (class 0 here), from two independent sets of 50 annotators
    rng = np.random.default_rng(21)
    p = rng.dirichlet(np.full(10, 0.3), size=5000)
    sets = [category_counts(rng.multinomial(50, p), [str(i) for i in range(10)], ["0"] * 5000) for _ in range(2)]
    truth = pearsonr(share_of_first_label(sets[0]), share_of_first_label(sets[1]))[0]
    estimate = label_split_half_reliability(sets[0][:500], n_splits=50, n_resamples=300, seed=2, measure="accuracy",
                                            method="pearson")
    assert estimate.ci_low < truth < estimate.ci_high
    assert abs(estimate.estimate - truth) < 0.01  # a share is a mean of annotators: Spearman-Brown fits Pearson's r
    assert "chose its category" in estimate.extra["estimand"]
    # Spearman's r of shares with many ties: Spearman-Brown from the halves gave 0.902 against 0.887 over 5,000
    # stimuli, the fitted power gives 0.889
    truth = spearmanr(share_of_first_label(sets[0]), share_of_first_label(sets[1]))[0]
    estimate = label_split_half_reliability(sets[0], n_splits=20, n_resamples=50, seed=2, measure="accuracy")
    assert abs(estimate.estimate - truth) < 0.008


def test_time_vs_label_accuracy_scores_each_stimulus_against_its_category():
    p, counts = _labels(120, seed=14)
    ids = [f"s{i:03d}" for i in range(120)]
    names = [f"class{i}" for i in range(10)]
    categories = np.array(names)[np.random.default_rng(15).integers(0, 10, 120)]
    model, _ = planted_time_and_rt(correlation=0.0, seed=5, n_stimuli=120, n_subjects=4)
    model = model.assign_coords(stimulus_id=ids)
    model["category"] = ("stimulus_id", categories)
    share = counts[np.arange(120), [names.index(c) for c in categories]] / counts.sum(axis=1)
    time = -share[None, :, None] * 3 + np.random.default_rng(16).normal(0, 0.3, (3, 120, 1))
    model["expected_halting_step"] = (("seed", "stimulus_id", "occlusion"),
                                      np.broadcast_to(time, model["expected_halting_step"].shape).copy())
    labels = _counts_dataset(counts, ids).assign_coords(label_name=("label", names))
    result = compare("time-vs-rt", model, labels, measure="accuracy", n_resamples=300, n_splits=30, seed=1)
    analytic = by_label(result, "analytic")
    expected = spearmanr(model["expected_halting_step"].sel(occlusion=0.0).mean("seed"), share)[0]
    assert analytic.estimate == pytest.approx(expected) and analytic.ci_high < -0.5
    assert "human accuracy" in result.title and "chose its category" in result.methods
    assert by_label(result, "reliability").extra["unit"] == "annotator"
    # a labelled stimulus the model was not exported on is never dropped unsaid
    fewer = model.isel(stimulus_id=slice(0, 119))
    with pytest.raises(StimulusMismatchError):
        compare("time-vs-rt", fewer, labels, measure="accuracy", n_resamples=100, n_splits=10)
    kept = compare("time-vs-rt", fewer, labels, measure="accuracy", n_resamples=100, n_splits=10, intersect=True)
    assert any("1 only in synthetic-labels" in note for note in kept.notes)
    # without category names on the labels, accuracy cannot be scored: said, naming what is missing
    with pytest.raises(ComparisonError, match="label_name"):
        compare("time-vs-rt", model, _counts_dataset(counts, ids), measure="accuracy", n_resamples=100)


def test_time_vs_label_entropy_names_the_measure_and_uses_annotator_splits():
    p, counts = _labels(120, seed=4)
    ids = [f"s{i:03d}" for i in range(120)]
    model, _ = planted_time_and_rt(correlation=0.0, seed=5, n_stimuli=120, n_subjects=4)
    model = model.assign_coords(stimulus_id=ids)
    # plant model time as the human entropy plus noise
    time = label_entropy(counts)[None, :, None] * 3 + np.random.default_rng(6).normal(0, 0.3, (3, 120, 1))
    model["expected_halting_step"] = (("seed", "stimulus_id", "occlusion"),
                                      np.broadcast_to(time, model["expected_halting_step"].shape).copy())
    result = compare("time-vs-rt", model, _counts_dataset(counts, ids), measure="label_entropy", n_resamples=500,
                     n_splits=50, seed=1)
    assert "human label entropy" in result.title
    labels = [r.extra["label"] for r in result.results]
    assert not any("human RT" in label for label in labels)
    analytic = by_label(result, "analytic")
    expected = spearmanr(model["expected_halting_step"].sel(occlusion=0.0).mean("seed"), label_entropy(counts))[0]
    assert analytic.estimate == pytest.approx(expected)
    assert analytic.ci_low > 0.5
    assert by_label(result, "two-factor").resampled == ("seed", "stimulus")
    assert by_label(result, "reliability").extra["unit"] == "annotator"
    assert not any("mixed model" in label for label in labels)  # a trial-level log-RT model needs RTs
    assert "human label entropy" in result.methods and "annotators" in result.methods
    assert result.inputs["measure"] == "label_entropy"
    assert not any("Pearson intervals" in note for note in result.notes)
    # Pearson on label counts is calibrated short of 95 %: the report says so
    pearson = compare("time-vs-rt", model, _counts_dataset(counts, ids), measure="label_entropy", method="pearson",
                      n_resamples=100, n_splits=10, reliability_resamples=100, seed=1)
    assert any("Pearson intervals fell short" in note for note in pearson.notes)


def test_time_vs_accuracy_uses_per_subject_accuracy():
    model, trials = planted_time_and_rt(correlation=0.5, seed=3, n_stimuli=60, n_subjects=6)
    result = compare("time-vs-rt", model, trials, measure="accuracy", n_resamples=300, n_splits=20, seed=1)
    measured = human_measure(trials, "accuracy")
    accuracy = measured.select([str(s) for s in model["stimulus_id"].values]).values()
    expected = spearmanr(model["expected_halting_step"].sel(occlusion=0.0).mean("seed"), accuracy)[0]
    assert by_label(result, "analytic").estimate == pytest.approx(expected)
    assert "human accuracy" in result.title and "human accuracy" in by_label(result, "reliability").extra["label"]
    assert by_label(result, "reliability").extra["unit"] == "subject"


def test_a_measure_that_does_not_fit_the_data_is_refused():
    model, trials = planted_time_and_rt(correlation=0.0, seed=5, n_stimuli=30, n_subjects=4)
    with pytest.raises(ComparisonError, match="label_entropy.*counts"):
        compare("time-vs-rt", model, trials, measure="label_entropy", n_resamples=100)
    _, counts = _labels(30)
    labels = _counts_dataset(counts, [str(s) for s in model["stimulus_id"].values])
    with pytest.raises(ComparisonError, match="measure 'rt' needs human trials.*label_entropy"):
        compare("time-vs-rt", model, labels, n_resamples=100)
    with pytest.raises(ComparisonError, match="correct_only applies to measure 'rt' only"):
        compare("time-vs-rt", model, trials, measure="accuracy", correct_only=True, n_resamples=100)
    with pytest.raises((SettingsError, ComparisonError), match="measure"):
        compare("time-vs-rt", model, trials, measure="entropy", n_resamples=100)
    counts[3] = 0
    counts[3, 0] = 3
    with pytest.raises(ComparisonError, match="fewer than 4 labels.*'s3'"):
        human_measure(_counts_dataset(counts, [f"s{i}" for i in range(30)]), "label_entropy")


def test_extrapolation_predicts_a_held_out_subset_size_on_cifar10h(data_root):
    # A back-test on the real labels: extrapolate from subsets of an eighth, a sixth and a quarter of each image's
    # annotators to halves (twice a quarter), whose correlation is observed. Spearman-Brown from the quarters
    # overshoots the Spearman correlation of halves by about 0.11, the fitted power by 0.011-0.021 (three seeds
    # of 16 splits; docs/experiments/calibrate_label_counts.py --part cifar10h-backtest)
    from brainres.data.registry import load_dataset

    counts = load_dataset("cifar10h")["counts"].values.astype(np.int64)
    total = counts.sum(axis=1)
    correlation, share = {}, {}
    for size in (1 / 8, 1 / 6, 1 / 4, 1 / 2):
        first, second = split_label_counts(counts, n_splits=16, seed=2, share=size)
        correlation[size] = np.mean([spearmanr(label_entropy(a), label_entropy(b))[0] for a, b in zip(first, second)])
        share[size] = effective_share(total, size) / effective_share(total, 1 / 2)  # as a share of the halves
    fitted = extrapolated_reliability([correlation[s] for s in (1 / 8, 1 / 6, 1 / 4)],
                                      [share[s] for s in (1 / 8, 1 / 6, 1 / 4)])
    stepped = 2 * correlation[1 / 4] / (1 + correlation[1 / 4])  # shares .24 and .5: a factor of about 2
    assert abs(fitted - correlation[1 / 2]) < 0.035
    assert stepped - correlation[1 / 2] > 0.08
