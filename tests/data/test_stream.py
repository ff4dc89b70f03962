import numpy as np
import pytest
import xarray as xr

from brainres.data.io import read_netcdf
from brainres.data.stream import StreamingWriter
from brainres.errors import SchemaError
from brainres.testing import model_measures

FILLED = ["halting_probability", "expected_halting_step"]


def skeleton(full):
    coords = full.drop_vars(FILLED)
    return coords, {name: (full[name].dims, full[name].dtype, {"note": name}) for name in FILLED}


def test_slices_assemble_the_whole_dataset(tmp_path):
    full = model_measures(n_seeds=2, n_stimuli=11, n_steps=3)
    coords, variables = skeleton(full)
    with StreamingWriter(tmp_path / "m.nc", coords, variables, validate_kind="model_measures") as out:
        assert not (tmp_path / "m.nc").exists()  # nothing at the target until complete
        for start in range(0, 11, 4):
            chunk = slice(start, min(start + 4, 11))
            for name in FILLED:
                out.write(name, {"stimulus_id": chunk}, full[name].isel(stimulus_id=chunk).values)
        out.add("n_units", ("seed",), np.array([3, 5]))
    back = read_netcdf(tmp_path / "m.nc")
    xr.testing.assert_allclose(back[list(full.data_vars)], full)
    assert back.attrs == full.attrs and back["n_units"].dtype == np.int64
    assert back["halting_probability"].attrs["note"] == "halting_probability"


def test_failure_mid_stream_leaves_nothing(tmp_path):
    full = model_measures()
    coords, variables = skeleton(full)
    (tmp_path / "m.nc").write_text("previous export")
    with pytest.raises(RuntimeError):
        with StreamingWriter(tmp_path / "m.nc", coords, variables) as out:
            out.write("expected_halting_step", {"stimulus_id": slice(0, 2)}, np.ones((2, 2, 2)))
            raise RuntimeError("killed")
    assert (tmp_path / "m.nc").read_text() == "previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.nc"]


def test_invalid_result_is_not_moved_into_place(tmp_path):
    full = model_measures()
    coords, variables = skeleton(full)
    with pytest.raises(SchemaError, match="must sum to 1 over 'step'"):
        with StreamingWriter(tmp_path / "m.nc", coords, variables, validate_kind="model_measures") as out:
            out.write("halting_probability", {}, full["halting_probability"].values * 3)
    assert list(tmp_path.iterdir()) == []
