"""``brainres train`` then ``brainres export`` on its run folders, from the command line."""

import json

import numpy as np

from brainres.cli import main
from brainres.data.io import read_netcdf
from brainres.families.lattice import LatticeNet
from brainres.train import TrainConfig, load_trained, run_config_hash


def test_train_then_export(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "--dataset", "digits", "--classes", "0", "1", "--seeds", "0", "1", "--epochs", "1",
                 "--max-channels", "4", "--max-layers", "1", "--max-steps", "3", "--out", str(runs), "--quiet"]) == 0
    folders = sorted(p for p in runs.iterdir() if p.is_dir())
    assert len(folders) == 2
    for folder in folders:
        assert not (folder / "data.json").exists()
        stored = json.loads((folder / "config.json").read_text())
        # the classes (and everything else needed to rebuild the model) live in config.json's record
        assert stored["model"]["family"] == "lattice" and stored["model"]["classes"] == ["0", "1"]
        assert stored["model"]["in_channels"] == 1 and stored["model"]["settings"]["n_classes"] == 2
        assert folder.name == run_config_hash(stored["model"], TrainConfig.from_dict(stored["training"]))[:16]
        assert isinstance(load_trained(folder).model, LatticeNet)
    out = tmp_path / "measures.nc"
    assert main(["export", *map(str, folders), "--stimuli", "digits", "--out", str(out), "--occlusion", "0", "0.5",
                 "--unscored", "--latents", "--quiet"]) == 0
    ds = read_netcdf(out)
    assert list(ds["seed"].values) == [0, 1] and list(ds["class_name"].values) == ["0", "1"]
    assert list(ds["occlusion"].values) == [0.0, 0.5]
    assert ds.attrs["model_family"] == "lattice" and ds.attrs["training_data"] == "digits"
    assert ds.attrs["n_unscored"] == int((~ds["category"].isin(["0", "1"])).sum())
    assert set(ds["feature_layer"].values.tolist()) == {"layer_0"} and ds.sizes["feature"] == 4
    assert "halting_probability" in ds and ds.sizes["step"] == 3
    assert "wrote" in capsys.readouterr().out

    # the export's default is the unoccluded images only
    default = tmp_path / "default.nc"
    seed = load_trained(folders[0]).seed
    assert main(["export", str(folders[0]), "--stimuli", "digits", "--out", str(default), "--unscored", "--quiet"]) == 0
    alone = read_netcdf(default)
    assert alone["occlusion"].values.tolist() == [0.0] and alone["seed"].values.tolist() == [seed]
    np.testing.assert_array_equal(alone["halted_class"].sel(seed=seed, occlusion=0.0),
                                  ds["halted_class"].sel(seed=seed, occlusion=0.0))

    # two folders of one seed are refused
    capsys.readouterr()
    assert main(["export", str(folders[0]), str(folders[0]), "--stimuli", "digits", "--out", str(tmp_path / "x.nc"),
                 "--unscored", "--quiet"]) != 0
    assert "same seed" in capsys.readouterr().err
    assert not (tmp_path / "x.nc").exists()
