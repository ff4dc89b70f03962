"""``brainres train FAMILY`` then ``brainres export`` on its run folders: one command shape for every family."""

import json

import numpy as np
import pytest

from brainres.cli import main
from brainres.data.io import read_netcdf
from brainres.families.lattice import LatticeNet
from brainres.train import TrainConfig, load_trained, run_config_hash


def test_train_a_lattice_then_export(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "lattice", "--data", "digits", "--seeds", "0", "1", "--set", "max_channels=4",
                 "--set", "max_layers=1", "--set", "max_steps=3", "--set", "training.epochs=1",
                 "--out", str(runs), "--quiet"]) == 0
    folders = sorted(p for p in runs.iterdir() if p.is_dir())
    assert [f.name for f in folders] == ["seed-0", "seed-1"]
    for folder in folders:
        stored = json.loads((folder / "config.json").read_text())
        # the classes (and everything else needed to rebuild the model) live in config.json's record
        assert stored["model"]["family"] == "lattice" and stored["model"]["classes"] == [str(i) for i in range(10)]
        assert stored["model"]["in_channels"] == 1 and stored["model"]["settings"]["max_channels"] == 4
        assert stored["training"]["epochs"] == 1
        assert stored["config_hash"] == run_config_hash(stored["model"], TrainConfig.from_dict(stored["training"]))
        assert isinstance(load_trained(folder).model, LatticeNet)
    assert "held-out accuracy" in capsys.readouterr().out
    # rerunning trains nothing: every folder holds its finished run
    stamps = [(f / "checkpoint.pt").stat().st_mtime_ns for f in folders]
    assert main(["train", "lattice", "--data", "digits", "--seeds", "0", "1", "--set", "max_channels=4",
                 "--set", "max_layers=1", "--set", "max_steps=3", "--set", "training.epochs=1",
                 "--out", str(runs), "--quiet"]) == 0
    assert stamps == [(f / "checkpoint.pt").stat().st_mtime_ns for f in folders]

    out = tmp_path / "measures.nc"
    assert main(["export", *map(str, folders), "--stimuli", "digits", "--out", str(out), "--occlusion", "0", "0.5",
                 "--latents", "--quiet"]) == 0
    ds = read_netcdf(out)
    assert list(ds["seed"].values) == [0, 1] and ds.sizes["class_index"] == 10
    assert list(ds["occlusion"].values) == [0.0, 0.5]
    assert ds.attrs["model_family"] == "lattice" and ds.attrs["training_data"] == "digits"
    assert set(ds["feature_layer"].values.tolist()) == {"layer_0"} and ds.sizes["feature"] == 4
    assert "halting_probability" in ds and ds.sizes["step"] == 3
    assert "wrote" in capsys.readouterr().out

    # the export's default is the unoccluded images only
    default = tmp_path / "default.nc"
    assert main(["export", str(folders[0]), "--stimuli", "digits", "--out", str(default), "--quiet"]) == 0
    alone = read_netcdf(default)
    assert alone["occlusion"].values.tolist() == [0.0] and alone["seed"].values.tolist() == [0]
    np.testing.assert_array_equal(alone["halted_class"].sel(seed=0, occlusion=0.0),
                                  ds["halted_class"].sel(seed=0, occlusion=0.0))

    # two folders of one seed are refused, and nothing is written
    capsys.readouterr()
    assert main(["export", str(folders[0]), str(folders[0]), "--stimuli", "digits", "--out", str(tmp_path / "x.nc"),
                 "--quiet"]) == 2
    assert "same seed" in capsys.readouterr().err
    assert not (tmp_path / "x.nc").exists()


def test_train_and_export_a_task_family_with_the_same_commands(tmp_path, capsys):
    runs = tmp_path / "elm"
    assert main(["train", "elm", "--set", "task=onehot-adding", "--set", "n_neurons=3", "--set", "k_e=1",
                 "--set", "k_c=2", "--set", "epochs=1", "--set", "n_train=64", "--set", "n_test=16",
                 "--seeds", "0", "1", "--out", str(runs), "--quiet"]) == 0
    out = tmp_path / "elm.nc"
    assert main(["export", str(runs / "seed-0"), str(runs / "seed-1"), "--out", str(out), "--quiet"]) == 0
    ds = read_netcdf(out)
    assert ds.attrs["model_family"] == "elm" and list(ds["seed"].values) == [0, 1]
    assert ds.sizes["stimulus_id"] == 16
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("arguments, message", [
    (["train", "elm", "--set", "n_nuerons=3", "--out", "x"], "unknown key 'n_nuerons' (did you mean 'n_neurons'?)"),
    (["train", "elm", "--set", "n_neurons=0", "--out", "x"], "n_neurons: expected an integer >= 1, got 0"),
    (["train", "lattice", "--out", "x"], "give --data"),
    (["train", "lattice", "--data", "digits", "--set", "training.epoch=2", "--out", "x"], "unknown key 'epoch'"),
    (["train", "elm", "--data", "digits", "--out", "x"], "trains on its own task"),
])
def test_bad_settings_are_one_clear_error_before_any_work(arguments, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(arguments) == 2
    err = capsys.readouterr().err
    assert err.startswith("brainres: error:") and message in err
    assert not (tmp_path / "x").exists()


def test_show_config_lists_every_setting_with_default_and_meaning(capsys):
    assert main(["train", "elm", "--show-config"]) == 0
    shown = capsys.readouterr().out
    assert "n_neurons = 16" in shown and "an integer >= 1" in shown and "neurons in the recurrent layer" in shown
    assert main(["train", "lattice", "--show-config"]) == 0
    shown = capsys.readouterr().out
    assert "[model.lattice]" in shown and "lambda_time = 0.0" in shown and "occlusion_levels = [0.0]" in shown
