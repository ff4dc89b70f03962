"""``brainres train`` then ``brainres export`` on its run folders, from the command line."""

from brainres.cli import main
from brainres.data.io import read_netcdf


def test_train_then_export(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "--dataset", "digits", "--classes", "0", "1", "--seeds", "0", "1", "--epochs", "1",
                 "--max-channels", "4", "--max-layers", "1", "--max-steps", "3", "--out", str(runs), "--quiet"]) == 0
    folders = sorted(p for p in runs.iterdir() if p.is_dir())
    assert len(folders) == 2 and all((f / "data.json").exists() for f in folders)
    out = tmp_path / "measures.nc"
    assert main(["export", *map(str, folders), "--stimuli", "digits", "--out", str(out), "--occlusion", "0", "0.5",
                 "--unscored", "--quiet"]) == 0
    ds = read_netcdf(out)
    assert list(ds["seed"].values) == [0, 1] and list(ds["class_name"].values) == ["0", "1"]
    assert ds.attrs["n_unscored"] == int((~ds["category"].isin(["0", "1"])).sum())
    assert "wrote" in capsys.readouterr().out
