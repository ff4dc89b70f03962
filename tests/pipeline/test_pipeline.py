"""A whole pipeline, small enough for the default run: train, export, compare, report, rerun."""

import json

import numpy as np
import pytest
import xarray as xr

import brainres
from brainres.data import registry
from brainres.data.registry import DatasetSpec
from brainres.errors import StimulusMismatchError
from brainres.pipeline.config import PipelineError, parse_pipeline
from brainres.pipeline.run import run_pipeline
from brainres.testing import PROVENANCE

N_STIMULI, N_SUBJECTS = 60, 5


def toy_stimuli(paths=None):
    stimuli = brainres.load_stimuli("digits").isel(stimulus_id=slice(0, N_STIMULI))
    stimuli.attrs = {}
    return stimuli


def toy_trials(paths=None):
    rng = np.random.default_rng(0)
    ids = toy_stimuli()["stimulus_id"].values
    rt = 0.6 + 0.1 * rng.random((N_SUBJECTS, N_STIMULI))
    return xr.Dataset(
        {"rt": ("trial", rt.ravel(), {"units": "s"}), "response": ("trial", np.full(rt.size, "1")),
         "correct": ("trial", rng.random(rt.size) < 0.8)},
        coords={"subject": ("trial", np.repeat([f"p{j}" for j in range(N_SUBJECTS)], N_STIMULI)),
                "stimulus_id": ("trial", np.tile(ids, N_SUBJECTS)), "condition": ("trial", np.full(rt.size, "")),
                "session": ("trial", np.full(rt.size, "1")),
                "trial_index": ("trial", np.tile(np.arange(N_STIMULI), N_SUBJECTS))},
        attrs={"exclusions": []})


@pytest.fixture(scope="module")
def toy_dataset():
    spec = DatasetSpec(id="toy-digit-rts", kind="human_trials", description="toy", folder="toy",
                       source=PROVENANCE["source"], license="CC0", citation="none", load=toy_trials,
                       load_stimuli=toy_stimuli)
    registry.register(spec)
    yield spec
    registry._RUNTIME.pop(spec.id, None)


PIPELINE = {
    "run": {"name": "toy"},
    "model": [{"name": "tiny", "family": "lattice", "data": "toy-digit-rts", "seeds": [0, 1],
               "lattice": {"max_channels": 4, "max_layers": 1, "max_steps": 3},
               "training": {"epochs": 1, "batch_size": 32}}],
    "export": [{"model": "tiny", "stimuli": "toy-digit-rts", "occlusion": [0.0, 0.5]}],
    "comparison": [
        {"kind": "time-vs-rt", "model": "tiny", "stimuli": "toy-digit-rts", "data": "toy-digit-rts",
         "options": {"n_resamples": 300, "n_splits": 20, "mixed_model": False}},
        {"kind": "occlusion-recurrence", "model": "tiny", "stimuli": "toy-digit-rts", "data": "toy-digit-rts",
         "options": {"n_resamples": 300}},
        {"kind": "speed-accuracy", "model": "tiny", "stimuli": "toy-digit-rts", "data": "toy-digit-rts",
         "options": {"n_resamples": 300}},
    ],
}


def test_pipeline_runs_reuses_and_reports(toy_dataset, tmp_path):
    run_dir = tmp_path / "run"
    report = run_pipeline(parse_pipeline(PIPELINE), run_dir, progress=False, quiet=True)
    html = report.read_text()
    assert html.count("data:image/png;base64,") == 4  # scatter, occlusion, two speed-accuracy figures
    assert "95% CI [" in html and "Methods" in html and "Provenance" in html
    results = (run_dir / "results.csv").read_text()
    assert "time-vs-rt" in results and "occlusion-recurrence" in results
    provenance = json.loads((run_dir / "provenance.json").read_text())
    assert provenance["seeds"] == {"tiny": [0, 1]} and provenance["packages"]["torch"].startswith("2.")
    assert [t["status"] for t in provenance["tasks"]] == ["ran"] * 6
    first = {p.name: p.stat().st_mtime_ns for p in run_dir.rglob("*.nc")}

    run_pipeline(parse_pipeline(PIPELINE), run_dir, progress=False, quiet=True)
    provenance = json.loads((run_dir / "provenance.json").read_text())
    assert [t["status"] for t in provenance["tasks"]] == ["reused"] * 6
    exports = {n: t for n, t in first.items() if n == "measures.nc"}
    assert exports == {n: t for n, t in ((p.name, p.stat().st_mtime_ns) for p in run_dir.rglob("measures.nc"))}

    changed = json.loads(json.dumps(PIPELINE))
    changed["comparison"][0]["options"]["n_resamples"] = 400
    run_pipeline(parse_pipeline(changed), run_dir, progress=False, quiet=True)
    statuses = {t["task"]: t["status"] for t in json.loads((run_dir / "provenance.json").read_text())["tasks"]}
    assert statuses["compare/time-vs-rt/tiny/toy-digit-rts/toy-digit-rts"] == "ran"  # only what changed
    assert sum(s == "ran" for s in statuses.values()) == 1


def test_stimulus_mismatch_stops_the_run_without_a_result(toy_dataset, tmp_path):
    mismatched = json.loads(json.dumps(PIPELINE))
    mismatched["export"] = [{"model": "tiny", "stimuli": "digits", "occlusion": [0.0, 0.5]}]
    mismatched["comparison"] = [{"kind": "time-vs-rt", "model": "tiny", "stimuli": "digits", "data": "toy-digit-rts",
                                 "options": {"n_resamples": 100, "n_splits": 10, "mixed_model": False}}]
    with pytest.raises(StimulusMismatchError, match="1737 stimuli in the model export but not in toy-digit-rts"):
        run_pipeline(parse_pipeline(mismatched), tmp_path / "run", progress=False, quiet=True)
    assert not list((tmp_path / "run").rglob("result.json"))
    assert not (tmp_path / "run" / "report.html").exists()


@pytest.mark.parametrize("change, message", [
    (lambda p: p["model"][0].update(family="transformer"), "family: 'transformer' is not one of"),
    (lambda p: p["model"][0].update(seeds=[0, 0]), "repeats a seed"),
    (lambda p: p["export"][0].update(model="nope"), "no \\[\\[model\\]\\] is named 'nope'"),
    (lambda p: p["comparison"][0].update(kind="vibes"), "'vibes' is not a registered comparison"),
    (lambda p: p["comparison"][0].update(stimuli="cifar10-test"), "no \\[\\[export\\]\\] of model 'tiny' on stimuli"),
    (lambda p: p["model"][0]["training"].update(seed=3), "set seeds with 'seeds'"),
    (lambda p: p.update(extra=1), "unknown key\\(s\\) \\['extra'\\]"),
])
def test_bad_pipelines_name_the_key(change, message):
    broken = json.loads(json.dumps(PIPELINE))
    change(broken)
    with pytest.raises(PipelineError, match=message):
        parse_pipeline(broken)
