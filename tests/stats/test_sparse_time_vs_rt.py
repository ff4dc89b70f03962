"""The CIFAR-10H raw file through ``time-vs-rt``: a synthetic file in the upstream schema, sparse end to end.

``write_cifar10h_raw`` is also the full-size input of tests/benchmarks/test_bench_sparse.py.
"""

import zipfile

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from brainres.compare import compare
from brainres.datasets.cifar10 import CLASSES, read_cifar10h_raw, stimulus_id
from brainres.stats import bootstrap_correlation
from brainres.stats.sparse import human_cells

# the upstream columns, in the upstream order (as tests/data/test_cifar10h_raw.py)
COLUMNS = ("annotator_id", "trial_index", "is_attn_check", "true_category", "chosen_category", "true_label",
           "chosen_label", "correct_guess", "cifar10_test_set_idx", "image_filename", "subcategory",
           "reaction_time", "time_elapsed")


def write_cifar10h_raw(path, *, n_annotators=2571, n_images=10_000, per_annotator=200, attention_checks=10,
                       link=0.5, seed=0):
    """A ``cifar10h-raw.zip`` in the upstream schema, and the per-image difficulty its RTs follow.

    Each annotator judges ``per_annotator`` images (dealt from shuffled passes
    over all images, so every image gets about ``n_annotators * per_annotator /
    n_images`` annotators) plus ``attention_checks`` attention-check trials
    (``cifar10_test_set_idx`` -99999). Log RT = annotator speed + ``link`` x
    image difficulty + other image effects + noise; harder images are also
    answered wrongly more often.

    Returns
    -------
    numpy.ndarray, shape (n_images,)
        The difficulty (standard normal).
    """
    rng = np.random.default_rng(seed)
    difficulty = rng.standard_normal(n_images)
    passes = -(-n_annotators * per_annotator // n_images)
    images = np.concatenate([rng.permutation(n_images) for _ in range(passes)])[:n_annotators * per_annotator]
    images = images.reshape(n_annotators, per_annotator)
    n_trials = per_annotator + attention_checks
    is_check = np.zeros((n_annotators, n_trials), bool)
    for row in is_check:
        row[rng.choice(n_trials, attention_checks, replace=False)] = True
    index = np.full((n_annotators, n_trials), -99999)
    index[~is_check] = images.ravel()
    label = rng.integers(0, 10, n_images)
    true_label = np.where(is_check, rng.integers(0, 10, is_check.shape), label[np.maximum(index, 0)])
    wrong = ~is_check & (rng.random(is_check.shape) < 0.05 + 0.05 * (difficulty[np.maximum(index, 0)] > 1))
    chosen = np.where(wrong, (true_label + rng.integers(1, 10, is_check.shape)) % 10, true_label)
    log_rt = (7.0 + 0.3 * rng.standard_normal(n_annotators)[:, None]
              + np.where(is_check, 0.0, 0.1 * (link * difficulty + np.sqrt(1 - link**2)
                                               * rng.standard_normal(n_images))[np.maximum(index, 0)])
              + 0.35 * rng.standard_normal(is_check.shape))
    rt = np.round(np.exp(log_rt), 1)
    classes = np.array(CLASSES)
    table = pd.DataFrame({
        "annotator_id": np.repeat(np.arange(n_annotators), n_trials),
        "trial_index": np.tile(np.arange(n_trials), n_annotators),
        "is_attn_check": is_check.ravel().astype(int),
        "true_category": classes[true_label.ravel()],
        "chosen_category": classes[chosen.ravel()],
        "true_label": true_label.ravel(),
        "chosen_label": chosen.ravel(),
        "correct_guess": (true_label == chosen).ravel().astype(int),
        "cifar10_test_set_idx": index.ravel(),
        "image_filename": [f"{c}-{i}.png" for c, i in zip(classes[true_label.ravel()], index.ravel())],
        "subcategory": "sub",
        "reaction_time": rt.ravel(),
        "time_elapsed": np.cumsum(rt, axis=1).ravel().round(1),
    }, columns=COLUMNS)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("cifar10h-raw.csv", table.to_csv(index=False))
    return difficulty


def model_export(difficulty, *, n_seeds=10, seed=1):
    """A model-measures export whose time follows the images' difficulty (plus seed noise)."""
    rng = np.random.default_rng(seed)
    time = 3 + difficulty[None, :] + 0.5 * rng.standard_normal((n_seeds, difficulty.size))
    return xr.Dataset(
        {"expected_halting_step": (("seed", "stimulus_id", "occlusion"), time[..., None])},
        coords={"seed": np.arange(n_seeds), "stimulus_id": [stimulus_id(i) for i in range(difficulty.size)],
                "occlusion": [0.0]},
        attrs={"brainres_kind": "model_measures", "model_family": "synthetic", "pressures": {},
               "config_hash": "cifar10h-like", "brainres_version": "test", "training_data": "none"},
    )


def by_label(result, text):
    return next(r for r in result.results if text in r.extra["label"])


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("cifar10h") / "cifar10h-raw.zip"
    difficulty = write_cifar10h_raw(path, n_annotators=60, n_images=120, per_annotator=20, attention_checks=2)
    return read_cifar10h_raw(path), model_export(difficulty, n_seeds=3)


def test_raw_file_goes_through_time_vs_rt_sparsely(small, monkeypatch):
    trials, model = small
    assert trials.sizes["trial"] == 60 * 20  # attention checks removed
    options = dict(n_resamples=300, n_splits=50, seed=1, control_accuracy=True)
    sparse = compare("time-vs-rt", model, trials, **options)
    assert "Sparse design (1,200 of the subject x stimulus cells observed, a median of 10 subjects" in sparse.methods
    assert "brainres profiled (RE)ML" in sparse.methods and "statsmodels" not in sparse.methods
    assert sparse.inputs["n_subjects"] == 60 and sparse.inputs["n_stimuli"] == 120
    # The same data forced through the dense subject x stimulus matrix give the same numbers, except the
    # noise-corrected correlation: its default variance-components estimator needs dense data, so sparse
    # data use the split-half one.
    import brainres.comparisons._per_stimulus as human_side

    monkeypatch.setattr(human_side, "prefer_sparse", lambda trials: False)
    dense = compare("time-vs-rt", model, trials, **options)
    assert "Sparse design" not in dense.methods
    for row_sparse, row_dense in zip(sparse.results, dense.results):
        assert row_sparse.extra["label"] == row_dense.extra["label"]
        if row_sparse.extra["label"] == "noise-corrected correlation":
            continue
        assert (row_sparse.estimate, row_sparse.ci_low, row_sparse.ci_high) == pytest.approx(
            (row_dense.estimate, row_dense.ci_low, row_dense.ci_high), abs=1e-10, nan_ok=True)
    assert by_label(sparse, "mixed model").p_value < 0.05  # RT follows difficulty in the file
    # time-vs-rt reports no seed x stimulus x subject row; the sparse trials bootstrap it as the dense ones do
    model_matrix = model["expected_halting_step"].sel(occlusion=0.0).values
    human = human_cells(trials)
    dense = human.to_dense()
    ids = [str(i) for i in model["stimulus_id"].values]
    three = bootstrap_correlation(model_matrix, human.sel(stimulus_id=ids), n_resamples=300, seed=1)
    same = bootstrap_correlation(model_matrix, dense[:, pd.Index(human.stimulus_ids).get_indexer(ids)],
                                 n_resamples=300, seed=1)
    assert three.resampled == ("seed", "stimulus", "subject") and three.ci_low < three.estimate < three.ci_high
    assert (three.ci_low, three.ci_high) == pytest.approx((same.ci_low, same.ci_high), abs=1e-12)
