"""Exports across training (``[[export]] epochs``) and the competence-alignment comparison (issue 15)."""

import numpy as np
import pytest
import xarray as xr

from brainres.pipeline import parse_pipeline, run_pipeline
from brainres.pipeline.config import PipelineError
from brainres.pipeline.check import check_pipeline
from brainres.testing import toy_pipeline


@pytest.fixture(autouse=True)
def toy_dataset(toy_datasets):
    """Every test here reads the toy dataset (tests/conftest.py)."""


def across_training(epochs=3, kept=(1, 2)) -> dict:
    pipeline = toy_pipeline(epochs=epochs, comparisons=("time-vs-rt",))
    pipeline["export"][0]["epochs"] = list(kept)
    pipeline["comparison"].append({"kind": "competence-alignment", "model": "tiny", "stimuli": "toy-digit-rts",
                                   "data": "toy-digit-rts", "options": {"n_resamples": 200, "n_splits": 20}})
    return pipeline


def test_the_model_is_exported_after_each_kept_epoch_and_compared_across_training(tmp_path):
    run_dir = tmp_path / "run"
    report = run_pipeline(parse_pipeline(across_training()), run_dir, progress=False, quiet=True)
    exports = {}
    for path in sorted(run_dir.glob("exports/*/measures.nc")):
        with xr.open_dataset(path) as ds:
            exports.setdefault(int(ds.attrs["training_epoch"]), []).append(int(ds["seed"].values[0]))
    assert {epoch: sorted(seeds) for epoch, seeds in exports.items()} == {1: [0, 1], 2: [0, 1], 3: [0, 1]}
    # the weights kept after epochs 1 and 2 differ from the last, and from each other
    kept = sorted(run_dir.glob("models/*seed-0*/weights-epoch-*.pt"))
    assert [p.name for p in kept] == ["weights-epoch-0001.pt", "weights-epoch-0002.pt"]
    table = (run_dir / "results.csv").read_text()
    assert "competence-alignment" in table
    for label in ("epoch 1: held-out accuracy", "epoch 3: model time vs human RT",
                  "change of the correlation from epoch 1 to epoch 3", "human RT split-half reliability"):
        assert label in table, label
    html = report.read_text()
    assert "Competence against alignment" in html and "<figure><svg" in html
    # the methods text names the per-epoch interval that ran (it once said "percentile" whatever ran)
    assert "BCa stimulus bootstrap, 200 resamples" in html


def test_exports_across_training_differ_by_epoch(tmp_path):
    run_dir = tmp_path / "run"
    run_pipeline(parse_pipeline(across_training(epochs=3, kept=(1,))), run_dir, progress=False, quiet=True)
    by_epoch = {}
    for path in run_dir.glob("exports/*/measures.nc"):
        with xr.open_dataset(path) as ds:
            if int(ds["seed"].values[0]) == 0:
                by_epoch[int(ds.attrs["training_epoch"])] = ds["expected_halting_step"].values.copy()
    assert set(by_epoch) == {1, 3}
    assert not np.allclose(by_epoch[1], by_epoch[3])


@pytest.mark.parametrize("change, message", [
    (lambda p: p["export"][0].update(epochs=[3]), "not before the last"),
    (lambda p: p["export"][0].update(epochs=[0]), "whole numbers from 1"),
    (lambda p: p["export"][0].pop("epochs"), "epochs = [...]"),
])
def test_bad_epochs_are_refused_before_any_task(tmp_path, change, message):
    pipeline = across_training()
    change(pipeline)
    with pytest.raises(PipelineError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        check_pipeline(parse_pipeline(pipeline))
