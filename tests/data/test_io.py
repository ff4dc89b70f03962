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


# --- permissions, temporaries, disks that refuse -----------------------------------------------
@pytest.fixture
def umask():
    """Set the process umask for one test, restoring it after."""
    before = os.umask(0o022)
    os.umask(before)

    def set_mask(mask):
        os.umask(mask)

    yield set_mask
    os.umask(before)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_written_files_follow_the_umask_not_0600(tmp_path, umask, mask, mode):
    from brainres.data.io import atomic_write_text, current_umask
    from brainres.data.stream import StreamingWriter

    umask(mask)
    assert current_umask() == mask
    text = atomic_write_text(tmp_path / "report.html", "<html></html>")
    nc = write_netcdf(human_trials(), tmp_path / "trials.nc")
    coords = xr.Dataset(coords={"stimulus_id": ["a", "b"]})
    with StreamingWriter(tmp_path / "streamed.nc", coords, {"x": (("stimulus_id",), "float32", {})}) as out:
        out.write("x", {}, [1.0, 2.0])
    for path in (text, nc, tmp_path / "streamed.nc"):
        assert path.stat().st_mode & 0o777 == mode, path.name


def test_temporary_files_are_recognisable_and_removed(tmp_path):
    from brainres.data.io import TEMP_TAG, is_temporary, remove_temporaries, temporary_file

    tmp = temporary_file(tmp_path / "exports" / "x", "measures.nc", ".nc")
    assert TEMP_TAG in tmp.name and tmp.name.startswith(".measures.nc.") and tmp.suffix == ".nc"
    legacy = tmp_path / ".results.csv.k2j4_x9a.csv"  # an earlier version's temporary file
    legacy.write_text("")
    kept = [tmp_path / "measures.nc", tmp_path / ".hidden", tmp_path / "notes.tmp"]
    for path in kept:
        path.write_text("mine")
    assert is_temporary(tmp.name) and is_temporary(legacy.name)
    assert not any(is_temporary(p.name) for p in kept)
    assert sorted(remove_temporaries(tmp_path)) == sorted([tmp, legacy])
    assert all(p.exists() for p in kept) and not tmp.exists() and not legacy.exists()


def _raise(err):
    def fail(*args, **kwargs):
        raise err
    return fail


@pytest.mark.parametrize("err, words", [
    (OSError(28, "No space left on device"), "no space left on device"),
    (OSError(30, "Read-only file system"), "read-only file system"),
    (PermissionError(13, "Permission denied"), "permission denied"),
    (OSError(122, "Disk quota exceeded"), "disk quota exceeded"),
])
def test_a_disk_that_refuses_is_named(tmp_path, monkeypatch, err, words):
    import brainres.data.io as io
    from brainres.data.io import WriteError, atomic_write_text

    target = tmp_path / "report.html"
    atomic_write_text(target, "old")
    monkeypatch.setattr(io.os, "fsync", _raise(err))
    with pytest.raises(WriteError, match=f"report.html: cannot write: {words}"):
        atomic_write_text(target, "new")
    with pytest.raises(WriteError, match=words):
        write_netcdf(human_trials(), tmp_path / "trials.nc")
    monkeypatch.undo()
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_a_folder_that_cannot_be_created_is_named(tmp_path, monkeypatch):
    import tempfile

    from brainres.data.io import WriteError, atomic_write_text

    monkeypatch.setattr(tempfile, "mkstemp", _raise(PermissionError(13, "Permission denied", str(tmp_path))))
    with pytest.raises(WriteError, match=f"{tmp_path}: cannot write: permission denied"):
        atomic_write_text(tmp_path / "x.json", "{}")


def test_a_library_error_on_a_full_disk_says_disk_full(tmp_path, monkeypatch):
    """torch and HDF5 report a full disk in their own words; the free space tells."""
    import brainres.data.io as io
    from brainres.data.io import WriteError, atomic_path

    monkeypatch.setattr(io, "_free_bytes", lambda folder: 0)
    with pytest.raises(WriteError, match=r"checkpoint.pt: cannot write: no space left on device .*unexpected pos"):
        with atomic_path(tmp_path / "checkpoint.pt", suffix=".pt"):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 12850 vs 12820")
    monkeypatch.setattr(io, "_free_bytes", lambda folder: 10 << 30)
    with pytest.raises(RuntimeError):  # with room to spare it is what it says
        with atomic_path(tmp_path / "checkpoint.pt", suffix=".pt"):
            raise RuntimeError("a bug")


def test_write_errors_survive_pickling():
    """Dask sends a worker's errors back to the client by pickling them."""
    import pickle

    from brainres.data.io import WriteError

    err = pickle.loads(pickle.dumps(WriteError("/x/y.nc", "cannot write: read-only file system")))
    assert str(err) == "/x/y.nc: cannot write: read-only file system" and err.path == "/x/y.nc"


def test_netcdf3_classic_files_are_read(tmp_path):
    from brainres.data.io import encode_for_netcdf, open_netcdf

    ds = human_trials()
    for fmt, engine in (("NETCDF3_CLASSIC", "netcdf4"), ("NETCDF3_64BIT", "scipy")):
        path = tmp_path / f"{fmt}.nc"
        encode_for_netcdf(ds).to_netcdf(path, format=fmt, engine=engine)
        back = read_netcdf(path)
        assert back["stimulus_id"].values.tolist() == ds["stimulus_id"].values.tolist()
        np.testing.assert_allclose(back["rt"].values, ds["rt"].values)
        assert back.attrs["exclusions"] == ds.attrs["exclusions"]
        with open_netcdf(path) as lazy:
            assert lazy.sizes == ds.sizes
