"""What the report says about a model at chance and about a model whose time never varies.

Two small user models (the torch family, docs/your-model.md) run end to end with ``brainres run`` on the
Geirhos silhouette set (160 images, 10 subjects), as a scientist would run them:

* an untrained network brought as weights: at chance, but its halting head still gives every image its own
  time, so ``time-vs-rt`` finds a "significant" correlation. The report must put "model at chance" next to
  every estimate (the summary row and the results-table row), not only in a note;
* a trained network whose halting probability is all on its last step: its time is the same for every image.
  ``time-vs-rt`` and ``occlusion-recurrence`` are "not estimable: model time ... does not vary across the
  160 stimuli", in the summary and in their sections, while ``speed-accuracy`` still reports its accuracies;
  the run does not fail.

The same files make the screenshots of the closing note (``make_project`` below).
"""

from __future__ import annotations

import html as html_module
import importlib.util
import json
import re
import types
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.needs_data

MODEL_CODE = '''"""Two small models for the diagnostics pipelines: one at chance, one whose time never varies."""
import torch
import torch.nn.functional as F
from torch import nn


class HaltingNet(nn.Module):
    """A small recurrent conv net with a readout and a halting head at every step."""

    def __init__(self, n_classes=16, steps=4, width=8, always_last=False, halting_scale=1.0):
        super().__init__()
        self.steps, self.always_last, self.halting_scale = steps, always_last, halting_scale
        self.up = nn.Conv2d(1, width, 3, padding=1)
        self.lateral = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.readout = nn.Linear(width, n_classes)
        self.halt = nn.Linear(width, 1)

    def forward(self, images):
        state, logits, halt = None, [], []
        for _ in range(self.steps):
            drive = self.up(images) if state is None else self.up(images) + self.lateral(state)
            state = F.relu(drive)
            pooled = state.mean(dim=(2, 3))
            logits.append(self.readout(pooled))
            halt.append(self.halting_scale * self.halt(pooled)[:, 0])
        halt = torch.stack(halt, 1)
        if self.always_last:  # every image halts at the last step, whatever it shows
            halt = torch.full_like(halt, -1e4)
            halt[:, -1] = 0.0
        return {"logits": torch.stack(logits, 1), "halting_probability": torch.softmax(halt, dim=1)}


def untrained(n_classes=16, steps=4, halting_scale=1.0):
    return HaltingNet(n_classes, steps, halting_scale=halting_scale)


def always_last_step(n_classes=16, steps=4):
    return HaltingNet(n_classes, steps, always_last=True)
'''

DATA = "geirhos2021-silhouette"
COMPARISONS = f'''
[[export]]
model = "MODEL"
stimuli = "{DATA}"
occlusion = [0.0, 0.5]

[[comparison]]
kind = "time-vs-rt"
model = "MODEL"
stimuli = "{DATA}"
data = "{DATA}"
[comparison.options]
n_resamples = 200
n_splits = 20
mixed_model = false

[[comparison]]
kind = "occlusion-recurrence"
model = "MODEL"
stimuli = "{DATA}"
data = "{DATA}"
[comparison.options]
n_resamples = 200

[[comparison]]
kind = "speed-accuracy"
model = "MODEL"
stimuli = "{DATA}"
data = "{DATA}"
[comparison.options]
n_resamples = 200
'''

CHANCE = '''[run]
name = "model-at-chance"

[[model]]
name = "untrained"
family = "torch"
factory = "diag_models:untrained"
options = { n_classes = 16, halting_scale = 20.0 }
classes = "DATA"
image_size = 16
in_channels = 1
seeds = [0, 1, 2]
checkpoints = ["weights/seed-0.pt", "weights/seed-1.pt", "weights/seed-2.pt"]
'''.replace("DATA", DATA) + COMPARISONS.replace("MODEL", "untrained")

CONSTANT = '''[run]
name = "constant-time"

[[model]]
name = "always-last"
family = "torch"
factory = "diag_models:always_last_step"
options = { n_classes = 16 }
classes = "DATA"
image_size = 16
in_channels = 1
seeds = [0, 1]
data = "DATA"
[model.training]
epochs = 20
batch_size = 16
learning_rate = 0.01
'''.replace("DATA", DATA) + COMPARISONS.replace("MODEL", "always-last")


def make_project(folder: Path) -> dict[str, Path]:
    """The model file, the untrained weights (seeded) and both pipeline files in ``folder``."""
    import torch

    folder = Path(folder)
    (folder / "diag_models.py").write_text(MODEL_CODE)
    spec = importlib.util.spec_from_file_location("diag_models", folder / "diag_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (folder / "weights").mkdir(exist_ok=True)
    for seed in (0, 1, 2):
        torch.manual_seed(100 + seed)  # untrained: a fixed random initialisation per seed
        torch.save(module.untrained(16).state_dict(), folder / "weights" / f"seed-{seed}.pt")
    (folder / "chance.toml").write_text(CHANCE)
    (folder / "constant.toml").write_text(CONSTANT)
    return {"chance": folder / "chance.toml", "constant": folder / "constant.toml"}


def run(pipeline: Path) -> Path:
    import torch

    from brainres.pipeline.run import run_pipeline

    torch.set_num_threads(1)
    report = run_pipeline(pipeline, pipeline.parent / f"run-{pipeline.stem}", executor="in-process", progress=False,
                          quiet=True)
    return report.parent


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    import os

    if not os.environ.get("BRAINRES_DATA"):
        pytest.skip("BRAINRES_DATA is not set; these pipelines run on the Geirhos silhouette images")
    return make_project(tmp_path_factory.mktemp("diagnostics"))


def text_of(fragment: str) -> str:
    return " ".join(html_module.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def summary_rows(report: str) -> list[str]:
    table = report[report.index("<table class='summary'>"):]
    return [text_of(row) for row in re.findall(r"<tr>(.*?)</tr>", table[:table.index("</table>")], re.DOTALL)[1:]]


def section(report: str, comparison: str) -> str:
    """The report's section of a comparison (its heading starts with the comparison's id)."""
    results = report[report.index("<h2>Results</h2>"):report.index("<h2>Methods</h2>")]
    return next(part for part in results.split("<h3 ")[1:] if part.split(">", 1)[1].startswith(f"{comparison} —"))


def table_rows(part: str) -> list[str]:
    tables = re.findall(r"<table>(.*?)</table>", part, re.DOTALL)
    return [text_of(row) for row in re.findall(r"<tr>(.*?)</tr>", tables[-1], re.DOTALL)[1:]]


def test_a_model_at_chance_carries_its_warning_beside_every_estimate(project):
    run_dir = run(project["chance"])
    results = pd.read_csv(run_dir / "results.csv")
    time_rows = results[results["comparison"] == "time-vs-rt"]
    # the point of the check: the estimates exist (the model's time varies) and every one of them is flagged; the
    # noise-corrected one is not defined (the seeds do not agree), and says so instead of showing -1
    assert len(time_rows) == 4
    corrected = time_rows["label"] == "noise-corrected correlation"
    assert time_rows.loc[~corrected, "estimate"].notna().all() and time_rows.loc[corrected, "estimate"].isna().all()
    assert time_rows["warning"].str.contains("model at chance: accuracy of seed(s) 0, 1, 2 is not above chance",
                                             regex=False).all()
    # untrained seeds are different random networks: they do not agree on which image takes longer
    assert time_rows["warning"].str.contains("the seeds do not agree on which stimuli take longer").all()
    slope = results[(results["comparison"] == "occlusion-recurrence") & results["headline"].eq(True)]
    assert slope["warning"].str.contains("model at chance").all()
    accuracy = results[results["statistic"] == "accuracy"]
    assert len(accuracy) == 3 and (accuracy["warning"] == "at chance").all()

    report = (run_dir / "report.html").read_text()
    summary = summary_rows(report)
    headline = next(row for row in summary if row.startswith("time-vs-rt"))
    assert "noise-corrected correlation" in headline and "model at chance" in headline
    assert sum("at chance" in row for row in summary if row.startswith("speed-accuracy")) == 3
    rows = table_rows(section(report, "time-vs-rt"))
    assert rows[0].startswith("model time vs human RT (analytic CI)") and "model at chance" in rows[0]
    assert all(row.endswith("as above") for row in rows[1:])  # the same warning, beside each later row


def test_a_model_whose_time_never_varies_is_not_estimable_and_the_rest_goes_on(project):
    run_dir = run(project["constant"])
    reason = ("model time (expected_halting_step) does not vary across the 160 stimuli: every stimulus has 4, so it "
              "cannot be compared with human data. Every stimulus is at the last step: the model's halting "
              "probability is all on its last step, for every image.")
    results = pd.read_csv(run_dir / "results.csv")
    by_comparison = {name: table for name, table in results.groupby("comparison")}
    time_row = by_comparison["time-vs-rt"].iloc[0]
    assert len(by_comparison["time-vs-rt"]) == 1 and time_row["statistic"] == "not_estimable"
    assert pd.isna(time_row["estimate"]) and time_row["warning"] == f"not estimable: {reason}"
    occlusion = by_comparison["occlusion-recurrence"].iloc[0]
    assert occlusion["statistic"] == "not_estimable" and "does not vary" in occlusion["warning"]
    # speed-accuracy does not need time to vary: its accuracies are reported (the model learnt something)
    accuracy = by_comparison["speed-accuracy"].query("statistic == 'accuracy'")
    assert len(accuracy) == 2 and (accuracy["p_value"] < 0.05).all()

    report = (run_dir / "report.html").read_text()
    assert "fewer than 2 finite bootstrap values" not in report
    summary = summary_rows(report)
    first = next(row for row in summary if row.startswith("time-vs-rt"))
    assert "not estimable" in first and f"not estimable: {reason}" in first and "n/a" in first
    part = text_of(section(report, "time-vs-rt"))
    assert f"not estimable: {reason}" in part and "r s =" not in part
    provenance = json.loads((run_dir / "provenance.json").read_text())
    flagged = {t["task"].split("/")[1]: t.get("not_estimable") for t in provenance["tasks"] if t["kind"] == "compare"}
    assert flagged["time-vs-rt"] == reason and flagged["speed-accuracy"] is None

    # a rerun reuses the finished "not estimable" comparisons: the same inputs give the same finding
    again = run(project["constant"])
    provenance = json.loads((again / "provenance.json").read_text())
    assert {t["status"] for t in provenance["tasks"]} == {"reused"}
    assert (again / "report.html").read_text().count("not estimable: model time") == \
        report.count("not estimable: model time")

    # the Python API raises the same finding as an error
    from brainres.comparisons._common import NotEstimableError

    import brainres
    from brainres.compare import compare
    from brainres.data.io import open_netcdf_many

    with (open_netcdf_many(sorted(run_dir.glob("exports/*/measures.nc")), concat_dim="seed") as measures,
          pytest.raises(NotEstimableError, match=re.escape(reason))):
        compare("time-vs-rt", measures, brainres.load_dataset(DATA), n_resamples=50, mixed_model=False)


def test_only_a_not_estimable_finding_is_recorded_other_errors_still_fail(tmp_path, monkeypatch):
    from brainres.comparisons._common import ComparisonError, NotEstimableError

    from brainres.pipeline import engine

    task = types.SimpleNamespace(kind="compare", key="compare/time-vs-rt/m/s/d", hash="0" * 64, folder=tmp_path,
                                 done_path=tmp_path / "done.json", outputs=dict,
                                 spec={"kind": "time-vs-rt", "model": "m", "stimuli": "s", "data": {"ref": "d"},
                                       "options": {}})
    monkeypatch.setattr(engine, "RUNNERS", {"compare": lambda *a: (_ for _ in ()).throw(
        ComparisonError("the model export has no readout 'x'"))})
    with pytest.raises(ComparisonError, match="no readout"):
        engine.execute_task(task, {}, 1)
    assert not (tmp_path / "done.json").exists()
    monkeypatch.setattr(engine, "RUNNERS", {"compare": lambda *a: (_ for _ in ()).throw(
        NotEstimableError("model time (x) does not vary"))})
    record = engine.execute_task(task, {}, 1)
    assert record["not_estimable"] == "model time (x) does not vary" and (tmp_path / "done.json").exists()
    from brainres.pipeline.store import load_result

    result = load_result(tmp_path)
    assert result.inputs == {"model": "m", "stimuli": "s", "data": "d", "readout": "expected_halting_step",
                             "measure": "rt", "not_estimable": "model time (x) does not vary"}
    assert result.results[0].extra["warning"] == "not estimable: model time (x) does not vary"
