"""A whole pipeline, small enough for the default run: train, export, compare, report, rerun."""

import json

import pytest

from brainres.errors import StimulusMismatchError
from brainres.pipeline.config import PipelineError, parse_pipeline
from brainres.pipeline.run import run_pipeline
from brainres.testing import toy_pipeline

@pytest.fixture(scope="module", autouse=True)
def toy_dataset(toy_datasets):
    """Every test here reads the toy dataset (tests/conftest.py)."""


def assert_figures_parse(html: str):
    """Every inline figure is well-formed SVG with drawn content, and its data is a CSV download."""
    import base64
    import re
    import xml.etree.ElementTree as ElementTree

    figures = re.findall(r"<figure>(<svg.*?</svg>)", html, re.S)
    assert figures
    for svg in figures:
        root = ElementTree.fromstring(svg)
        assert root.tag.endswith("svg") and len(svg) > 5000
    tables = re.findall(r'download="([^"]+\.csv)" href="data:text/csv;base64,([^"]+)"', html)
    assert len(tables) >= len(figures)
    for _, data in tables:
        text = base64.b64decode(data).decode()
        assert text.count("\n") >= 2 and "," in text.splitlines()[0]


PIPELINE = toy_pipeline()


def test_pipeline_runs_reuses_and_reports(tmp_path):
    run_dir = tmp_path / "run"
    report = run_pipeline(parse_pipeline(PIPELINE), run_dir, progress=False, quiet=True)
    html = report.read_text()
    assert html.count("<figure><svg") == 4  # scatter, occlusion, two speed-accuracy figures
    assert_figures_parse(html)
    assert html.index("<h2>Summary</h2>") < html.index("<h2>Results</h2>")  # findings first
    import html as html_module

    assert ("time-vs-rt — model 'tiny' on toy-digit-rts, readout expected halting step, measure rt, vs toy-digit-rts"
            in html_module.unescape(html))
    assert "95% CI [" in html and "Methods" in html and "Provenance" in html
    results = (run_dir / "results.csv").read_text()
    assert "time-vs-rt" in results and "occlusion-recurrence" in results
    provenance = json.loads((run_dir / "provenance.json").read_text())
    assert provenance["seeds"] == {"tiny": [0, 1]} and provenance["packages"]["torch"].startswith("2.")
    assert [t["status"] for t in provenance["tasks"]] == ["ran"] * 7
    first = {p.name: p.stat().st_mtime_ns for p in run_dir.rglob("*.nc")}

    run_pipeline(parse_pipeline(PIPELINE), run_dir, progress=False, quiet=True)
    provenance = json.loads((run_dir / "provenance.json").read_text())
    assert [t["status"] for t in provenance["tasks"]] == ["reused"] * 7
    exports = {n: t for n, t in first.items() if n == "measures.nc"}
    assert exports == {n: t for n, t in ((p.name, p.stat().st_mtime_ns) for p in run_dir.rglob("measures.nc"))}

    # the finished run, opened in a notebook: the summary, every estimate, and a view of each part
    import brainres

    run = brainres.open_run(run_dir)
    assert len(run.comparisons) == 3 and list(run.results.columns[:2]) == ["comparison", "statistic"]
    assert len(run.results) == results.count("\n") - 1
    assert not run.summary().empty and "<th>finding</th>" in run._repr_html_() and "<svg" in run._repr_html_()
    first_result = run.comparisons[0].results[0]
    assert "<table" in first_result._repr_html_() and "<svg" in run.comparisons[0]._repr_html_()
    with pytest.raises(brainres.errors.BrainresError, match="not a finished brainres run"):
        brainres.open_run(tmp_path)

    changed = json.loads(json.dumps(PIPELINE))
    changed["comparison"][0]["options"]["n_resamples"] = 400
    run_pipeline(parse_pipeline(changed), run_dir, progress=False, quiet=True)
    statuses = {t["task"]: t["status"] for t in json.loads((run_dir / "provenance.json").read_text())["tasks"]}
    assert statuses["compare/time-vs-rt/tiny/toy-digit-rts/toy-digit-rts"] == "ran"  # only what changed
    assert sum(s == "ran" for s in statuses.values()) == 1


def test_stimulus_mismatch_stops_the_run_without_a_result(tmp_path):
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
    (lambda p: p["model"][0]["training"].update(seed=3), "training.seed: set it with 'seeds'"),
    (lambda p: p.update(extra=1), "unknown key 'extra'"),
])
def test_bad_pipelines_name_the_key(change, message):
    broken = json.loads(json.dumps(PIPELINE))
    change(broken)
    with pytest.raises(PipelineError, match=message):
        parse_pipeline(broken)


def test_code_fingerprints_follow_what_each_task_depends_on():
    from brainres.pipeline.provenance import TASK_SOURCES, _source_files, code_fingerprint
    from brainres.pipeline.tasks import _family_sources

    labels = [label for label, _ in _source_files()]
    assert "comparisons/time_vs_rt.py" in labels and "brainres/families/lattice/network.py" in labels
    covered = {kind: [l for l in labels if any(l == p or l.startswith(p + "/") for p in prefixes)]
               for kind, prefixes in TASK_SOURCES.items()}
    lattice = [l for l in labels if any(l == p or l.startswith(p + "/") for p in _family_sources("lattice"))]
    assert "comparisons/time_vs_rt.py" in covered["compare"] and "comparisons/time_vs_rt.py" not in covered["train"]
    assert "brainres/families/lattice/network.py" in lattice and "brainres/families/elm/network.py" not in lattice
    assert "brainres/train.py" in covered["train"] and "brainres/stats/resample.py" not in covered["train"]
    assert "brainres/families/lattice/network.py" not in covered["compare"]
    prints = {code_fingerprint(prefixes) for prefixes in TASK_SOURCES.values()} | {code_fingerprint()}
    assert len(prints) == len(TASK_SOURCES) + 1
