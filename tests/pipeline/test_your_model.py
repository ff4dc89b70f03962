"""A user's own model end to end (docs/your-model.md), precomputed measures, and a user's own files.

The BL network and the pipeline are the documentation's own code blocks, run as a user would
run them: ``brainres run`` on the TOML, then ``brainres report``; then the same pipeline with
the trained weights brought as checkpoints.
"""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from brainres.cli import main
from brainres.data.io import read_netcdf

pytestmark = pytest.mark.needs_data

DOC = Path(__file__).parents[2] / "docs" / "your-model.md"


def doc_block(first_line: str) -> str:
    """The fenced code block of docs/your-model.md that starts with ``first_line``."""
    for _, code in re.findall(r"```(\w+)\n(.*?)```", DOC.read_text(), re.S):
        if code.startswith(first_line):
            return code
    raise AssertionError(f"docs/your-model.md has no code block starting with {first_line!r}")


def run_toml(folder: Path, text: str, *options) -> Path:
    """Write a pipeline file into ``folder``, run it with ``brainres run`` in this process; return the run folder."""
    (folder / "p.toml").write_text(text)
    assert main(["run", str(folder / "p.toml"), "--out", str(folder / "run"), "--executor", "in-process", "--quiet",
                 *options]) == 0
    return folder / "run"


def exports(run_dir: Path) -> dict:
    return {p.parent.name.rsplit("-", 1)[0]: read_netcdf(p) for p in sorted(run_dir.glob("exports/*/measures.nc"))}


@pytest.fixture(scope="module")
def bl_run(tmp_path_factory):
    """The documentation's BL pipeline, run once with ``brainres run`` (2 seeds, trained here)."""
    import os

    if not os.environ.get("BRAINRES_DATA"):
        pytest.skip("BRAINRES_DATA is not set; this test trains on the Geirhos images")
    folder = tmp_path_factory.mktemp("my-bl")
    (folder / "blnet.py").write_text(doc_block("# blnet.py"))
    (folder / "my-bl.toml").write_text(doc_block("# my-bl.toml"))
    torch.set_num_threads(1)
    assert main(["run", str(folder / "my-bl.toml"), "--check"]) == 0
    assert main(["run", str(folder / "my-bl.toml"), "--out", str(folder / "run"), "--executor", "in-process",
                 "--quiet"]) == 0
    return folder


def test_the_documented_bl_network_runs_through_every_comparison(bl_run):
    run = bl_run / "run"
    results = pd.read_csv(run / "results.csv")
    assert set(results["comparison"]) == {"time-vs-rt", "occlusion-recurrence", "latents-vs-neural"}
    readouts = {json.loads(r.read_text())["inputs"]["readout"] for r in run.glob("results/time-vs-rt*/result.json")}
    assert readouts == {"entropy_threshold_step", "uncertainty_auc"}  # the same comparison twice, two readouts
    measures = exports(run)
    silhouette = measures["my-bl__geirhos2021-silhouette__seed-0"]
    assert silhouette.attrs["model_family"] == "torch"
    # no halting head: the halting readouts are absent, the answer is at the entropy-threshold step
    assert "halting_probability" not in silhouette and "expected_halting_step" not in silhouette
    assert silhouette.attrs["readouts"] == ["entropy_threshold_step", "uncertainty_auc"]
    step = silhouette["entropy_threshold_step"].astype(int)
    at_step = silhouette["predicted_class"].isel(step=(step - 1).clip(0)).values
    np.testing.assert_array_equal(silhouette["halted_class"].values, at_step)
    assert float(silhouette["entropy_threshold_step"].std()) > 0  # the trained model's time varies
    assert (silhouette["accuracy"].sel(occlusion=0.0) > 1 / 16).all()  # above chance in both seeds
    # latents: two layers of their own widths, named as the model names them
    rsa = measures["my-bl__kriegeskorte2008-92__seed-0"]
    layers = pd.Series(rsa["feature_layer"].values.astype(str)).value_counts().to_dict()
    assert layers == {"conv0": 16, "conv1": 32}
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["models"]["my-bl"]["user_code_sha256"]
    html = (run / "report.html").read_text()
    assert "a user-supplied PyTorch network (blnet:build" in html and "Held-out accuracy" in html
    # brainres report rewrites the report from the run folder alone
    (run / "report.html").unlink()
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").read_text() == html


def test_the_same_weights_as_checkpoints_give_identical_exports(bl_run, tmp_path):
    (tmp_path / "blnet.py").write_text(doc_block("# blnet.py"))
    weights = tmp_path / "weights"
    weights.mkdir()
    for seed in (0, 1):
        folder = next((bl_run / "run" / "models").glob(f"my-bl__seed-{seed}-*"))
        state = torch.load(folder / "checkpoint.pt", weights_only=True)["model"]
        torch.save(state, weights / f"seed-{seed}.pt")
    toml = doc_block("# my-bl.toml")
    training = toml[toml.index("[model.training]"):toml.index("[[export]]")]
    brought = toml.replace(training, "").replace(
        'data = "geirhos2021-cue-conflict"\n', 'checkpoints = ["weights/seed-0.pt", "weights/seed-1.pt"]\n')
    (tmp_path / "brought.toml").write_text(brought)
    # on a Dask cluster this time: its worker processes find the user's blnet.py through the recorded folder
    assert main(["run", str(tmp_path / "brought.toml"), "--out", str(tmp_path / "run"), "--executor", "local",
                 "--workers", "2", "--quiet"]) == 0
    trained, loaded = exports(bl_run / "run"), exports(tmp_path / "run")
    assert trained.keys() == loaded.keys() and len(trained) == 4
    for name in trained:
        xr.testing.assert_equal(trained[name], loaded[name])  # every value; the attributes say how they were made
        assert loaded[name].attrs["training_data"].startswith("weights from ")
    assert "loaded from" in (tmp_path / "run" / "report.html").read_text()


def test_editing_the_model_file_retrains_and_nothing_else_changes(bl_run, tmp_path):
    from brainres.pipeline.check import check_pipeline
    from brainres.pipeline.config import load_pipeline
    from brainres.pipeline.tasks import build_tasks

    def hashes(folder):
        checked = check_pipeline(load_pipeline(folder / "my-bl.toml"))
        return {t.key: t.hash for t in build_tasks(checked, tmp_path / "run")}

    for name in ("blnet.py", "my-bl.toml"):
        (tmp_path / name).write_text((bl_run / name).read_text())
    before = hashes(tmp_path)
    assert before == hashes(bl_run)  # where the project lies does not matter
    (tmp_path / "blnet.py").write_text((bl_run / "blnet.py").read_text() + "\n# a comment changes the source\n")
    after = hashes(tmp_path)
    assert all(before[k] != after[k] for k in before if k.startswith(("train", "export", "compare")))


def test_precomputed_model_times_go_through_time_vs_rt(tmp_path):
    import brainres

    trials = brainres.load_dataset("geirhos2021-silhouette")
    rt = trials.to_dataframe()[["stimulus_id", "rt"]].groupby("stimulus_id")["rt"].mean()
    rng = np.random.default_rng(0)
    rows = [{"seed": seed, "stimulus_id": stimulus, "model_time": 3 + 4 * value + rng.normal(0, 0.2)}
            for seed in (0, 1, 2) for stimulus, value in rt.items()]
    pd.DataFrame(rows).to_csv(tmp_path / "times.csv", index=False)
    run = run_toml(tmp_path, '''
[run]
name = "precomputed"
[[model]]
name = "their-model"
measures = "times.csv"
[[comparison]]
kind = "time-vs-rt"
model = "their-model"
data = "geirhos2021-silhouette"
[comparison.options]
readout = "model_time"
n_resamples = 2000
''')
    results = pd.read_csv(run / "results.csv")
    analytic = results[results["label"] == "model time vs human RT (analytic CI)"].iloc[0]
    assert analytic["estimate"] > 0.8  # the planted link to mean RT comes back
    assert "read from times.csv" in (run / "report.html").read_text()


def test_a_user_trial_table_and_a_folder_of_pngs_run_through_a_pipeline(tmp_path):
    from PIL import Image

    import brainres

    digits = brainres.load_stimuli("digits").isel(stimulus_id=slice(0, 90))
    for stimulus, image, category in zip(digits["stimulus_id"].values, digits["image"].values,
                                         digits["category"].values):
        folder = tmp_path / "images" / f"digit-{category}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[..., 0]).save(folder / f"{stimulus}.png")
    rng = np.random.default_rng(1)
    rows = [{"participant": f"p{j}", "image": stimulus, "RT": round(float(rng.uniform(400, 900)), 1), "key": "1",
             "truth": "1"} for j in range(6) for stimulus in digits["stimulus_id"].values]
    pd.DataFrame(rows).to_csv(tmp_path / "rts.tsv", sep="\t", index=False)
    run = run_toml(tmp_path, '''
[run]
name = "own-files"
[[model]]
name = "tiny"
family = "lattice"
data = "images"
seeds = [0, 1]
[model.lattice]
max_channels = 4
max_layers = 1
max_steps = 3
[model.training]
epochs = 2
batch_size = 16
[[export]]
model = "tiny"
stimuli = "images"
occlusion = [0.0, 0.5]
[[comparison]]
kind = "time-vs-rt"
model = "tiny"
stimuli = "images"
data = "rts.tsv"
[comparison.options]
n_resamples = 500
n_splits = 20
[[dataset]]
path = "rts.tsv"
rt_unit = "ms"
columns = { subject = "participant", stimulus_id = "image", rt = "RT", response = "key", category = "truth" }
''')
    export = exports(run)["tiny__images__seed-0"]
    assert export.sizes["stimulus_id"] == 90 and export.attrs["stimulus_set"] == "images"
    result = json.loads(next(run.glob("results/time-vs-rt*/result.json")).read_text())
    assert result["inputs"]["n_subjects"] == 6 and result["inputs"]["n_stimuli"] == 90
    data = json.loads((run / "provenance.json").read_text())["data"]
    assert data["rts.tsv"]["kind"] == "table" and len(data["images"]["sha256"]) == 64
