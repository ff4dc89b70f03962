import json
import subprocess
import sys

import pytest

from brainres.cli import main


def test_datasets_list_shows_every_dataset(capsys):
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    for dataset_id in ("geirhos2021-edge", "geirhos2021-silhouette", "geirhos2021-cue-conflict",
                       "kriegeskorte2008-92", "mnist-test", "cifar10-test", "cifar10h", "digits"):
        assert dataset_id in out


def test_unknown_dataset_is_a_clean_error(capsys):
    assert main(["datasets", "info", "nope"]) == 2
    assert "brainres: error: unknown dataset 'nope'" in capsys.readouterr().err


def test_console_script_is_installed():
    done = subprocess.run([sys.executable, "-m", "brainres.cli", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("brainres ")


@pytest.mark.needs_data
def test_datasets_info_prints_the_facts(data_root, capsys):
    assert main(["datasets", "info", "geirhos2021-silhouette"]) == 0
    out = capsys.readouterr().out
    for expected in ("subjects: 10", "trials: 1600", "stimuli: 160", "rt seconds: mean", "license:", "citation:"):
        assert expected in out
    assert main(["datasets", "info", "geirhos2021-edge", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["trials"] == 1600 and facts["missed_responses"] == 34


@pytest.mark.needs_data
def test_fetch_and_validate(data_root, tmp_path, capsys):
    assert main(["datasets", "fetch", "kriegeskorte2008-92", "mnist-test"]) == 0
    assert "files verified (SHA-256)" in capsys.readouterr().out


def test_shipped_pipelines_are_valid():
    from importlib.resources import as_file

    from brainres.commands.demo import PIPELINES, pipeline_path
    from brainres.pipeline.config import load_pipeline

    for name in PIPELINES:
        with as_file(pipeline_path(name)) as path:
            pipeline = load_pipeline(path)
        assert pipeline.models and pipeline.exports and pipeline.comparisons
    with as_file(pipeline_path("demo")) as path:
        demo = load_pipeline(path)
    assert demo.models[0].data == "geirhos2021-cue-conflict" and demo.models[0].seeds == (0, 1, 2)
    assert {e.stimuli for e in demo.exports} == {"geirhos2021-edge", "geirhos2021-silhouette"}
    assert {c.kind for c in demo.comparisons} == {"time-vs-rt", "occlusion-recurrence", "speed-accuracy"}


@pytest.mark.slow
@pytest.mark.needs_data
def test_demo_end_to_end(data_root, tmp_path, capsys):
    out_dir = tmp_path / "demo"
    assert main(["demo", "--out", str(out_dir), "--quiet"]) == 0
    assert capsys.readouterr().out.strip().endswith("report.html")
    assert (out_dir / "results.csv").exists() and (out_dir / "provenance.json").exists()
    assert main(["report", str(out_dir)]) == 0


def test_validate_reports_violations(tmp_path, capsys):
    from brainres.data.io import encode_for_netcdf
    from brainres.testing import human_trials

    ds = human_trials().drop_vars("response")
    encode_for_netcdf(ds).to_netcdf(tmp_path / "bad.nc", engine="h5netcdf")
    assert main(["validate", str(tmp_path / "bad.nc")]) == 2
    assert "missing variable 'response'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.needs_data
def test_rsa_demo_end_to_end(data_root, tmp_path, capsys):
    out_dir = tmp_path / "rsa"
    assert main(["demo", "--pipeline", "rsa", "--out", str(out_dir), "--quiet"]) == 0
    results = (out_dir / "results.csv").read_text()
    assert "latents-vs-neural" in results and "noise_ceiling_lower" in results
