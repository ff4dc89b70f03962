import os

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from brainres.data.io import atomic_path, read_netcdf, write_netcdf
from brainres.errors import DataFileError, SchemaError
from brainres.testing import BUILDERS, human_trials


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_round_trip_keeps_everything(kind, tmp_path):
    ds = BUILDERS[kind]()
    path = write_netcdf(ds, tmp_path / f"{kind}.nc")
    back = read_netcdf(path)
    xr.testing.assert_identical(back, ds)


def test_round_trip_unicode_bool_categorical_and_rich_attrs(tmp_path):
    ds = human_trials()
    ds = ds.assign_coords(condition=("trial", np.array(["größe", "naïve", "Ω"] * 4)))
    ds["flag"] = ("trial", np.arange(ds.sizes["trial"]) % 2 == 0)
    ds["level"] = ("trial", pd.Categorical(["high", "low", "mid"] * 4, categories=["low", "mid", "high"]))
    ds.attrs.update(nested={"a": [1, 2, {"b": None}]}, enabled=True, ratio=0.25, n=3)
    back = read_netcdf(write_netcdf(ds, tmp_path / "x.nc"))
    assert back["condition"].values.tolist() == ds["condition"].values.tolist()
    assert back["flag"].dtype == bool and back["flag"].values.tolist() == ds["flag"].values.tolist()
    assert back["level"].values.tolist() == ["high", "low", "mid"] * 4
    assert list(back["level"].dtype.categories) == ["low", "mid", "high"]  # the order survives
    assert back.attrs["nested"] == {"a": [1, 2, {"b": None}]}
    assert back.attrs["enabled"] is True and back.attrs["ratio"] == 0.25 and back.attrs["n"] == 3
    assert back.attrs["exclusions"] == ds.attrs["exclusions"]


def test_invalid_dataset_is_not_written(tmp_path):
    ds = human_trials().drop_vars("response")
    target = tmp_path / "bad.nc"
    with pytest.raises(SchemaError, match="missing variable 'response'"):
        write_netcdf(ds, target)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_existing_file_untouched(tmp_path):
    target = tmp_path / "trials.nc"
    write_netcdf(human_trials(seed=1), target)
    before = target.read_bytes()
    bad = human_trials()
    bad["response"] = ("trial", np.array(["x", 3] * 6, dtype=object))  # mixed types cannot be stored
    with pytest.raises((TypeError, SchemaError)):
        write_netcdf(bad, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trials.nc"]  # no temp file left


def test_atomic_path_renames_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole"


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(DataFileError, match="missing.nc: no such file"):
        read_netcdf(tmp_path / "missing.nc")
    junk = tmp_path / "junk.nc"
    junk.write_bytes(os.urandom(200))
    with pytest.raises(DataFileError, match="junk.nc: not a readable netCDF"):
        read_netcdf(junk)
    good = write_netcdf(human_trials(), tmp_path / "good.nc")
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataFileError, match="truncated.nc"):
        read_netcdf(truncated)


def test_categorical_coordinates_round_trip(tmp_path):
    from brainres.testing import stimuli

    ds = stimuli().assign_coords(
        stimulus_id=pd.CategoricalIndex(["img0", "img1", "img2", "img3"], categories=["img3", "img2", "img1", "img0"]),
        level=("stimulus_id", pd.Categorical(["a", "b", "a", "b"], categories=["b", "a"])),
    )
    back = read_netcdf(write_netcdf(ds, tmp_path / "c.nc"))
    assert isinstance(back.indexes["stimulus_id"], pd.CategoricalIndex)
    assert list(back.indexes["stimulus_id"].categories) == ["img3", "img2", "img1", "img0"]
    assert list(back["level"].dtype.categories) == ["b", "a"]
    xr.testing.assert_identical(back, ds)
