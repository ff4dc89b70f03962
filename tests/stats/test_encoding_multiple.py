import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from brainres.stats import StatResult
from brainres.stats.encoding import EncodingInputError, ridge_encoding
from brainres.stats.multiple import MultipleComparisonError, adjust_p_values, adjust_results


def _encoding_data(seed, n_repetitions=4, noise_sd=1.0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(120, 15))
    weights = rng.normal(size=(15, 6))
    signal = features @ weights / np.sqrt(15)
    responses = signal[None] + noise_sd * rng.normal(size=(n_repetitions, 120, 6))
    return features, responses, signal


def test_encoding_explains_linear_responses_up_to_their_ceiling():
    features, responses, _ = _encoding_data(0)
    summary, table = ridge_encoding(features, responses, seed=1)
    # Repetition mean: signal variance 1, noise variance 1/4 -> ceiling ~0.8.
    assert table["reliability"].median() == pytest.approx(0.8, abs=0.1)
    assert 0.8 < summary.estimate < 1.2
    assert (table["explained_variance"] < table["reliability"] + 0.1).all()
    again, _ = ridge_encoding(features, responses, seed=1)
    assert again == summary


def test_unrelated_features_explain_nothing():
    features, responses, _ = _encoding_data(2)
    shuffled = np.random.default_rng(3).permutation(features)
    summary, table = ridge_encoding(shuffled, responses, seed=1)
    assert table["explained_variance"].median() < 0.05


def test_encoding_refuses_mismatched_inputs():
    features, responses, _ = _encoding_data(4)
    with pytest.raises(EncodingInputError, match="same stimuli"):
        ridge_encoding(features[:-1], responses, seed=0)


@pytest.mark.parametrize("method, statsmodels_name", [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjustments_equal_statsmodels_and_skip_missing_tests(method, statsmodels_name):
    p_values = np.array([0.001, 0.04, np.nan, 0.03, 0.2, 0.011])
    adjusted, reject = adjust_p_values(p_values, method=method)
    finite = ~np.isnan(p_values)
    expected_reject, expected, _, _ = multipletests(p_values[finite], method=statsmodels_name)
    np.testing.assert_allclose(adjusted[finite], expected)
    assert reject[finite].tolist() == expected_reject.tolist() and np.isnan(adjusted[2])
    assert (adjusted[finite] >= p_values[finite]).all()


def test_results_carry_their_adjustment_and_family():
    results = [StatResult("spearman", 0.1 * k, p_value=p) for k, p in enumerate([0.01, 0.02, 0.5])]
    adjusted = adjust_results(results, method="holm")
    assert [r.extra["family_size"] for r in adjusted] == [3, 3, 3]
    assert adjusted[0].extra["p_adjusted"] == pytest.approx(multipletests([0.01, 0.02, 0.5], method="holm")[1][0])
    with pytest.raises(MultipleComparisonError, match="method"):
        adjust_p_values([0.1], method="bonferonni")
