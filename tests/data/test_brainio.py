import numpy as np
import pytest
import xarray as xr

from brainres.data.brainio import from_brainio, read_brainio, to_brainio, write_brainio
from brainres.errors import SchemaError
from brainres.testing import neural_responses


def assembly(seed=0):
    """A BrainIO-style assembly: 5 presentations of 3 stimuli (2, 2, 1 repetitions), 4 neuroids, 2 time bins."""
    rng = np.random.default_rng(seed)
    return xr.DataArray(
        rng.normal(size=(5, 4, 2)),
        dims=["presentation", "neuroid", "time_bin"],
        coords={"stimulus_id": ("presentation", ["b", "a", "b", "c", "a"]),
                "image_label": ("presentation", ["x", "y", "x", "z", "y"]),
                "neuroid_id": ("neuroid", list("pqrs")), "region": ("neuroid", ["IT", "IT", "V4", "V4"]),
                "time_bin_start": ("time_bin", [70, 90]), "time_bin_end": ("time_bin", [90, 110])},
        name="toy",
    ).set_index(presentation=["stimulus_id", "image_label"], neuroid=["neuroid_id", "region"])


def test_from_brainio_reshapes_without_averaging():
    source = assembly()
    ds = from_brainio(source)
    assert ds["response"].dims == ("stimulus_id", "neuroid", "time_bin", "repetition")
    assert ds["stimulus_id"].values.tolist() == ["b", "a", "c"]  # order of first presentation
    assert ds["n_repetitions"].values.tolist() == [2, 2, 1]
    np.testing.assert_array_equal(ds["response"].sel(stimulus_id="b").transpose("repetition", ...).values,
                                  source.sel(stimulus_id="b").values)
    assert np.isnan(ds["response"].sel(stimulus_id="c", repetition=1)).all()  # padding, counted above
    assert ds["region"].values.tolist() == ["IT", "IT", "V4", "V4"]
    assert ds["image_label"].values.tolist() == ["x", "y", "z"]


def test_round_trips_in_memory_and_on_disk(tmp_path):
    ds = from_brainio(assembly(), dataset_id="toy")
    back = to_brainio(ds)
    assert back.sizes == {"presentation": 5, "neuroid": 4, "time_bin": 2}
    np.testing.assert_array_equal(back.sel(stimulus_id="a").values, assembly().sel(stimulus_id="a").values)
    xr.testing.assert_identical(from_brainio(back, dataset_id="toy"), ds)
    read = read_brainio(write_brainio(ds, tmp_path / "assembly.nc"), dataset_id="toy")
    xr.testing.assert_equal(read, ds)


def test_our_responses_go_out_and_back():
    ds = neural_responses()
    again = from_brainio(to_brainio(ds), dataset_id=ds.attrs["dataset_id"], source=ds.attrs["source"],
                         license=ds.attrs["license"], citation=ds.attrs["citation"])
    xr.testing.assert_allclose(again.drop_vars("n_repetitions"), ds)


def test_bad_assemblies_are_named():
    bad = assembly().reset_index("presentation").drop_vars("stimulus_id")
    with pytest.raises(SchemaError, match="missing coordinate 'stimulus_id' along 'presentation'"):
        from_brainio(bad)
    with pytest.raises(SchemaError, match="missing dimension 'neuroid'"):
        from_brainio(xr.DataArray(np.zeros((2, 3)), dims=["presentation", "unit"],
                                  coords={"stimulus_id": ("presentation", ["a", "b"])}))
