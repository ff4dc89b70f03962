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


def test_python_m_brainres_is_the_command():
    done = subprocess.run([sys.executable, "-m", "brainres", "datasets", "list"], capture_output=True, text=True)
    assert done.returncode == 0 and "geirhos2021-edge" in done.stdout


def _options(parser, name="brainres"):
    """(command, option) for every option of every sub-command."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, subparser in action.choices.items():
                yield from _options(subparser, f"{name} {sub}")
        elif action.option_strings and not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield name, action


def test_every_option_has_help_and_says_its_default_once():
    from brainres.cli import build_parser
    from brainres.commands import HelpFormatter

    parser = build_parser()
    options = list(_options(parser))
    assert len(options) > 30
    for command, action in options:
        assert action.help, f"{command} {action.option_strings} has no help"
        shown = HelpFormatter("brainres")._get_help_string(action)
        where = f"{command} {action.option_strings}: {shown!r}"
        assert shown.count("default:") <= 1, where
        if action.nargs != 0 and not action.required:  # an option with a value says what leaving it out means
            assert "default" in shown or "required" in shown, where


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
        assert pipeline.models and pipeline.comparisons
        # image models are exported on stimuli; task families (elm, ...) measure themselves
        assert bool(pipeline.exports) == any(m.kind == "image" for m in pipeline.models), name
    with as_file(pipeline_path("demo")) as path:
        demo = load_pipeline(path)
    assert demo.models[0].data == "geirhos2021-cue-conflict" and demo.models[0].seeds == (0, 1, 2)
    assert {e.stimuli for e in demo.exports} == {"geirhos2021-edge", "geirhos2021-silhouette"}
    assert {c.kind for c in demo.comparisons} == {"time-vs-rt", "occlusion-recurrence", "speed-accuracy",
                                                  "competence-alignment"}
    assert all(e.epochs == (1, 2, 4, 8) for e in demo.exports)
    with as_file(pipeline_path("cifar10h")) as path:
        cifar = load_pipeline(path)
    # trained on the 8,000 images the export never shows; compared on the other 2,000
    assert cifar.models[0].data == "cifar10-test-train" and {e.stimuli for e in cifar.exports} == {"cifar10-test-heldout"}
    assert {c.options.get("measure") for c in cifar.comparisons if c.kind == "time-vs-rt"} == {"label_entropy", "accuracy"}


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


# --- every error is one "brainres: error:" line; --debug shows the traceback ---------------------
def test_validate_without_a_kind_says_pass_kind(tmp_path, capsys):
    import numpy as np
    import xarray as xr

    xr.Dataset({"a": ("x", np.arange(3.0))}).to_netcdf(tmp_path / "plain.nc", engine="h5netcdf")
    assert main(["validate", str(tmp_path / "plain.nc")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("brainres: error: ") and "no attribute brainres_kind" in err and "pass --kind" in err
    assert main(["validate", str(tmp_path / "plain.nc"), "--kind", "trials"]) == 2
    assert "--kind 'trials' is not a data-model kind" in capsys.readouterr().err


def test_validate_reads_netcdf3_classic_files(tmp_path, capsys):
    from brainres.data.io import encode_for_netcdf
    from brainres.testing import human_trials

    encode_for_netcdf(human_trials()).to_netcdf(tmp_path / "classic.nc", format="NETCDF3_CLASSIC", engine="netcdf4")
    assert main(["validate", str(tmp_path / "classic.nc")]) == 0
    assert "valid human_trials dataset" in capsys.readouterr().out


def test_missing_files_and_folders_are_one_line(tmp_path, capsys):
    for argv, words in ((["validate", str(tmp_path / "no.nc")], "no.nc: no such file"),
                        (["report", str(tmp_path / "nowhere")], "no such folder"),
                        (["report", str(tmp_path)], "is not a finished brainres run"),
                        (["run", str(tmp_path / "no.toml")], "no.toml: no such pipeline file"),
                        (["run", str(tmp_path)], "is a folder, not a pipeline file")):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("brainres: error: ") and words in err and "Traceback" not in err, argv


@pytest.mark.parametrize("err, words, status", [
    (PermissionError(13, "Permission denied", "/data/run"), "/data/run: permission denied", 2),
    (OSError(30, "Read-only file system", "/mnt/ro/x"), "/mnt/ro/x: read-only file system", 2),
    (OSError(28, "No space left on device", "/scratch/run"), "/scratch/run: no space left on device", 2),
    (FileNotFoundError(2, "No such file or directory", "/gone"), "/gone: no such file or folder", 2),
    (ZeroDivisionError("division by zero"), "unexpected ZeroDivisionError: division by zero", 1),
])
def test_os_errors_and_bugs_end_in_one_line(monkeypatch, capsys, err, words, status):
    import brainres.commands.validate as validate

    def fail(args):
        raise err

    monkeypatch.setattr(validate, "run", fail)
    assert main(["validate", "x.nc"]) == status
    out = capsys.readouterr().err
    assert out.startswith(f"brainres: error: {words}") and out.count("\n") == 1
    assert "Traceback" not in out
    assert main(["--debug", "validate", "x.nc"]) == status
    out = capsys.readouterr().err
    assert "Traceback (most recent call last)" in out and f"brainres: error: {words}" in out


def test_bad_dataset_plugins_variable_is_named_and_list_still_works(monkeypatch, capsys):
    from brainres.data.registry import PLUGINS_ENV

    monkeypatch.setenv(PLUGINS_ENV, "brainres.testing:TOY_TRIALS,nope.module:SPEC,json")
    assert main(["datasets", "list"]) == 0
    captured = capsys.readouterr()
    assert "geirhos2021-edge" in captured.out and "toy-digit-rts" in captured.out  # the good one still counts
    assert f"{PLUGINS_ENV}=" in captured.err and "module 'nope.module' cannot be imported" in captured.err
    assert "'json' is not of the form 'package.module:SPEC'" in captured.err
    assert main(["datasets", "info", "digits"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"brainres: error: the environment variable {PLUGINS_ENV}=") and "nope.module:SPEC" in err
    assert "Traceback" not in err
    monkeypatch.setenv(PLUGINS_ENV, "brainres.testing:human_trials")
    assert main(["datasets", "list"]) == 0
    assert "is a function, not a brainres.data.registry.DatasetSpec" in capsys.readouterr().err


def test_misspelt_dataset_suggests_the_closest(capsys):
    assert main(["datasets", "info", "geirhos2021-egde"]) == 2
    assert "did you mean 'geirhos2021-edge'?" in capsys.readouterr().err
