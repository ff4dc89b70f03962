import numpy as np
import pytest

from brainres.stats.rsa import (
    RSAInputError,
    bootstrap_rdm_comparison,
    compare_over_steps,
    compare_rdms,
    rdm_from_responses,
    rdm_noise_ceiling,
    rdm_vectors,
)

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.data import Dataset  # noqa: E402
from rsatoolbox.rdm import RDMs, calc_rdm  # noqa: E402
from rsatoolbox.rdm import compare as rsa_compare  # noqa: E402

RSA_NAMES = {"spearman": "spearman", "kendall_tau_a": "tau-a", "pearson": "corr", "cosine": "cosine"}


def _simulated_rdms(seed=0, n_stimuli=20, n_subjects=5):
    rng = np.random.default_rng(seed)
    patterns = rng.normal(size=(n_stimuli, 30))
    model = rdm_from_responses(patterns + 0.5 * rng.normal(size=patterns.shape))
    subjects = np.stack([rdm_from_responses(patterns + rng.normal(size=patterns.shape)) for _ in range(n_subjects)])
    return model, subjects


def test_rdms_from_responses_equal_rsatoolbox():
    rng = np.random.default_rng(1)
    responses = rng.normal(size=(12, 25))
    data = Dataset(responses)
    ours = rdm_vectors(rdm_from_responses(responses, method="correlation"))[0]
    np.testing.assert_allclose(ours, calc_rdm(data, method="correlation").get_vectors()[0], atol=1e-10)
    ours = rdm_vectors(rdm_from_responses(responses, method="squared_euclidean"))[0]
    np.testing.assert_allclose(ours, calc_rdm(data, method="euclidean").get_vectors()[0], atol=1e-10)


def test_crossvalidated_distance_is_unbiased_where_plain_distance_is_not():
    rng = np.random.default_rng(2)
    # Identical true patterns: true distance 0; noise inflates plain distances only.
    truth = rng.normal(size=(1, 50)).repeat(8, axis=0)
    repetitions = truth[None] + rng.normal(size=(6, 8, 50))
    crossvalidated = rdm_vectors(rdm_from_responses(repetitions, method="crossvalidated"))[0]
    plain = rdm_vectors(rdm_from_responses(repetitions.mean(axis=0), method="squared_euclidean"))[0]
    assert abs(crossvalidated.mean()) < 0.05 and plain.mean() > 0.25
    # Matches the definition: mean over pairs of distinct repetitions.
    i, j = 0, 3
    pairs = [(a, b) for a in range(6) for b in range(6) if a != b]
    expected = np.mean([(repetitions[a, i] - repetitions[a, j]) @ (repetitions[b, i] - repetitions[b, j])
                        for a, b in pairs]) / 50
    assert rdm_from_responses(repetitions, method="crossvalidated")[i, j] == pytest.approx(expected)


@pytest.mark.parametrize("method", ["spearman", "kendall_tau_a", "pearson", "cosine"])
def test_comparisons_equal_rsatoolbox(method):
    model, subjects = _simulated_rdms()
    ours = compare_rdms(model, subjects, method=method)
    theirs = rsa_compare(RDMs(rdm_vectors(model)), RDMs(rdm_vectors(subjects)), method=RSA_NAMES[method])
    np.testing.assert_allclose(ours, theirs, atol=1e-10)


@pytest.mark.parametrize("method", ["spearman", "pearson", "cosine"])
def test_noise_ceiling_equals_rsatoolbox(method):
    from rsatoolbox.inference import boot_noise_ceiling

    _, subjects = _simulated_rdms(seed=3)
    lower, upper = rdm_noise_ceiling(subjects, method=method)
    expected = boot_noise_ceiling(RDMs(rdm_vectors(subjects)), method=RSA_NAMES[method])
    assert (lower.estimate, upper.estimate) == pytest.approx(tuple(expected), abs=1e-10)
    assert lower.estimate < upper.estimate


def test_weighted_statistic_equals_rsatoolbox_on_a_resampled_pattern_set():
    # A resampled stimulus set as rsatoolbox builds it (duplicates, self-pairs NaN).
    from brainres.stats.rsa import rdm_comparison_statistic

    model, subjects = _simulated_rdms(seed=4)
    drawn = np.sort(np.random.default_rng(5).integers(0, 20, size=20))
    for method in ("spearman", "kendall_tau_a", "pearson", "cosine"):
        statistic, sizes = rdm_comparison_statistic(model, subjects, method=method)
        weights = {"stimulus": (np.bincount(drawn, minlength=20) / 20)[None], "rdm": np.full((1, 5), 0.2)}
        data = RDMs(rdm_vectors(subjects), pattern_descriptors={"index": np.arange(20)})
        predicted = RDMs(rdm_vectors(model), pattern_descriptors={"index": np.arange(20)})
        theirs = rsa_compare(predicted.subsample_pattern("index", drawn), data.subsample_pattern("index", drawn),
                             method=RSA_NAMES[method]).mean()
        assert statistic(weights)[0] == pytest.approx(theirs, abs=1e-10), method


def test_time_resolved_comparison_finds_the_matching_step():
    model, subjects = _simulated_rdms(seed=6)
    rng = np.random.default_rng(7)
    scrambled = rdm_from_responses(rng.normal(size=(20, 30)))
    results = compare_over_steps(np.stack([scrambled, model, scrambled]), subjects, method="spearman")
    assert [r.extra["step"] for r in results] == [1, 2, 3]
    assert int(np.argmax([r.estimate for r in results])) == 1


def test_bad_rdms_are_refused():
    with pytest.raises(RSAInputError, match="method"):
        compare_rdms(np.zeros((3, 3)), np.zeros((3, 3)), method="euclid")
    with pytest.raises(RSAInputError, match="RDMs must be"):
        rdm_vectors(np.zeros((3, 4)))


@pytest.mark.needs_data
def test_real_rdm_comparisons_and_ceilings_equal_rsatoolbox(kriegeskorte):
    from rsatoolbox.inference import boot_noise_ceiling

    monkey, human_fig1, per_subject = kriegeskorte
    humans = np.concatenate([human_fig1[None], per_subject])
    for method in ("spearman", "kendall_tau_a", "pearson", "cosine"):
        # tau-a is O(n_pairs^2) in both implementations: two RDMs suffice.
        data = humans[:2] if method == "kendall_tau_a" else humans
        ours = compare_rdms(monkey, data, method=method)
        theirs = rsa_compare(RDMs(rdm_vectors(monkey)), RDMs(rdm_vectors(data)), method=RSA_NAMES[method])
        np.testing.assert_allclose(ours, theirs, atol=1e-10)
    lower, upper = rdm_noise_ceiling(per_subject, method="spearman")
    expected = boot_noise_ceiling(RDMs(rdm_vectors(per_subject)), method="spearman")
    assert (lower.estimate, upper.estimate) == pytest.approx(tuple(expected), abs=1e-10)


@pytest.mark.needs_data
def test_real_stimulus_bootstrap_agrees_with_rsatoolbox(kriegeskorte):
    from rsatoolbox.inference import eval_bootstrap_pattern
    from rsatoolbox.model import ModelFixed

    monkey, _, per_subject = kriegeskorte
    ours = bootstrap_rdm_comparison(monkey, per_subject, method="spearman", resample=["stimulus"],
                                    n_resamples=1000, seed=0, interval="percentile", keep_distribution=True)
    np.random.seed(0)  # rsatoolbox draws from numpy's global generator
    theirs = eval_bootstrap_pattern(ModelFixed("mIT", RDMs(rdm_vectors(monkey))), RDMs(rdm_vectors(per_subject)),
                                    method="spearman", N=200, boot_noise_ceil=False)
    values = theirs.evaluations[:, 0]
    values = values[np.isfinite(values)]
    se_ours, se_theirs = np.std(ours.distribution, ddof=1), np.std(values, ddof=1)
    # SE from 200 rsatoolbox resamples has ~5% relative MC error.
    assert se_ours == pytest.approx(se_theirs, rel=0.2)
    assert np.mean(ours.distribution) == pytest.approx(np.mean(values), abs=0.25 * se_theirs)
    low, high = np.percentile(values, [2.5, 97.5])
    assert abs(ours.ci_low - low) < 0.35 * se_theirs and abs(ours.ci_high - high) < 0.35 * se_theirs


@pytest.mark.slow
@pytest.mark.needs_data
def test_real_dual_bootstrap_se_agrees_with_rsatoolbox(kriegeskorte):
    # rsatoolbox's dual bootstrap costs ~1 s per resample (it also bootstraps
    # noise ceilings), hence slow; 100 resamples give its SE to ~7 %.
    from rsatoolbox.inference import eval_dual_bootstrap
    from rsatoolbox.model import ModelFixed

    monkey, _, per_subject = kriegeskorte
    ours = bootstrap_rdm_comparison(monkey, per_subject, method="spearman", resample=["stimulus", "rdm"],
                                    n_resamples=1000, seed=0)
    np.random.seed(0)
    theirs = eval_dual_bootstrap(ModelFixed("mIT", RDMs(rdm_vectors(monkey))), RDMs(rdm_vectors(per_subject)),
                                 method="spearman", N=100)
    se_theirs = float(theirs.get_sem()[0])
    print(f"\n[rsatoolbox dual bootstrap] SE ours {ours.extra['bootstrap_se']:.4f} (1000 resamples), "
          f"rsatoolbox {se_theirs:.4f} (100 resamples); uncorrected crossed SE {ours.extra['crossed_se']:.4f}")
    assert ours.extra["bootstrap_se"] == pytest.approx(se_theirs, rel=0.25)
