"""``brainres family``: every non-lattice family trains and exports through one command."""

import pytest

from brainres.cli import main
from brainres.data.io import read_netcdf


def test_elm_family_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "elm.nc"
    assert main(["family", "elm", "--set", "task=\"onehot-adding\"", "--set", "n_neurons=3", "--set", "k_e=1",
                 "--set", "k_c=2", "--set", "epochs=1", "--set", "n_train=64", "--set", "n_test=16",
                 "--seeds", "0", "1", "--out", str(out), "--quiet"]) == 0
    ds = read_netcdf(out)
    assert ds.attrs["model_family"] == "elm" and list(ds["seed"].values) == [0, 1]
    assert ds.sizes["stimulus_id"] == 16
    assert "wrote" in capsys.readouterr().out


def test_unknown_config_fields_are_named(tmp_path, capsys):
    assert main(["family", "plasticity", "--set", "widht=3", "--out", str(tmp_path / "x.nc")]) == 2
    assert "unknown plasticity Config field(s) ['widht']" in capsys.readouterr().err
    assert not (tmp_path / "x.nc").exists()


@pytest.mark.parametrize("family", ["elm", "plasticity", "seqpar"])
def test_every_family_has_the_common_entry_points(family):
    import importlib

    module = importlib.import_module(f"brainres.families.{family}")
    for name in ("Config", "train", "measure"):
        assert hasattr(module, name), f"{family} lacks {name}"
    config = module.Config()
    assert len(config.config_hash()) == 64 and isinstance(config.to_dict(), dict)
