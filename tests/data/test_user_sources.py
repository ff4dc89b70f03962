"""A lab's own stimuli folders, precomputed model measures and rsatoolbox RDMs."""

import hashlib

import numpy as np
import pytest
import xarray as xr
from PIL import Image

import brainres
from brainres import read_measures, read_stimuli
from brainres.data import from_rsatoolbox, to_rsatoolbox
from brainres.data.io import write_netcdf
from brainres.errors import DataFileError, SchemaError
from brainres.testing import neural_rdms


def png(path, shape=(8, 8), value=0, grey=False):
    """Write a small uniform PNG; RGB unless ``grey``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full(shape if grey else (*shape, 3), value, np.uint8)
    if not grey:
        array[..., 1] = 255 - value  # not grey: channels differ
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    """cats/cat2, cats/cat10 (grey), dogs/dog1 (RGB), plus files that are not stimuli."""
    root = tmp_path / "stims"
    png(root / "cats" / "cat10.png", value=10, grey=True)
    png(root / "cats" / "cat2.PNG", value=2, grey=True)
    png(root / "dogs" / "dog1.jpg", value=100)
    (root / "dogs" / "notes.txt").write_text("not an image")
    (root / "cats" / "._cat2.png").write_bytes(b"macOS resource fork")  # hidden: skipped
    return root


# --- read_stimuli ----------------------------------------------------------------------


def test_subfolder_categories_natural_order_and_channels(folder):
    ds = read_stimuli(folder, citation="me 2026")
    assert ds.attrs["brainres_kind"] == "stimuli"
    assert ds["stimulus_id"].values.tolist() == ["cat2", "cat10", "dog1"]  # natural order of the path
    assert ds["category"].values.tolist() == ["cats", "cats", "dogs"]
    assert ds["file"].values.tolist() == ["cats/cat2.PNG", "cats/cat10.png", "dogs/dog1.jpg"]
    assert ds["image"].shape == (3, 8, 8, 3)  # one RGB image: all RGB
    assert ds["image"].values[0, 0, 0].tolist() == [2, 2, 2]
    assert ds.attrs["dataset_id"] == "stims" and ds.attrs["source"] == str(folder.resolve())
    assert ds.attrs["citation"] == "me 2026" and ds.attrs["license"] == "unknown"


def test_channels_inferred_grey_and_forced(folder):
    (folder / "dogs" / "dog1.jpg").unlink()
    grey = read_stimuli(folder)
    assert grey.sizes["channel"] == 1 and grey["image"].values[1, 0, 0, 0] == 10
    assert read_stimuli(folder, channels=3).sizes["channel"] == 3


def test_categories_from_csv_file_column(folder, tmp_path):
    table = tmp_path / "labels.csv"
    table.write_text("file,category\ncats/cat2.PNG,small\ncats/cat10,big\n./dogs/dog1.jpg,big\n")
    ds = read_stimuli(folder, categories=table)
    assert ds["category"].values.tolist() == ["small", "big", "big"]


def test_categories_from_tsv_stimulus_id_and_none(folder, tmp_path):
    table = tmp_path / "labels.tsv"
    table.write_text("stimulus_id\tcategory\tnote\ndog1\tanimal\tx\ncat10\tpet\ty\ncat2\tpet\tz\n")
    ds = read_stimuli(folder, categories=table)
    assert ds["category"].values.tolist() == ["pet", "pet", "animal"]
    unknown = read_stimuli(folder, categories=None)
    assert set(unknown["category"].values) == {"unknown"} and "unknown" in unknown.attrs["notes"]


def test_unmatched_table_rows_and_images_are_listed(folder, tmp_path):
    table = tmp_path / "labels.csv"
    table.write_text("stimulus_id,category\ncat2,pet\ncat10,pet\nhorse3,animal\n")
    with pytest.raises(DataFileError, match=r"labels.csv: 1 row\(s\) match no image: 'horse3' in data row\(s\) 3; "
                                            r"1 image\(s\) are not in the table: dogs/dog1.jpg"):
        read_stimuli(folder, categories=table)
    table.write_text("file,category\ncats/cat2.PNG,pet\ncats/cat2,pet\ncats/cat10.png,pet\ndogs/dog1.jpg,dog\n")
    twice = r"labels.csv: column 'file' names the same image twice \(e.g. 'cats/cat2.PNG'\) in data row\(s\) 1, 2"
    with pytest.raises(DataFileError, match=twice):
        read_stimuli(folder, categories=table)
    table.write_text("image,label\na,b\n")
    with pytest.raises(DataFileError, match=r"labels.csv: a category table needs .*columns \['image', 'label'\]"):
        read_stimuli(folder, categories=table)


def test_duplicate_stems_need_path_ids(folder):
    png(folder / "dogs" / "cat2.png", value=7)
    with pytest.raises(DataFileError, match=r"stims: 1 stimulus id\(s\) are shared by two files: "
                                            r"cats/cat2.PNG and dogs/cat2.png \(id 'cat2'\); use ids=\"path\""):
        read_stimuli(folder)
    ds = read_stimuli(folder, ids="path")
    assert ds["stimulus_id"].values.tolist() == ["cats/cat2", "cats/cat10", "dogs/cat2", "dogs/dog1"]


def test_mixed_sizes_need_size_and_are_resized(folder):
    png(folder / "dogs" / "dog2.png", shape=(12, 10), value=50)
    with pytest.raises(DataFileError, match=r"images differ in size \(height x width\): 8x8 \(e.g. cats/cat2.PNG\); "
                                            r"12x10 \(e.g. dogs/dog2.png\); pass size="):
        read_stimuli(folder)
    ds = read_stimuli(folder, size=(6, 4))
    assert ds["image"].shape == (4, 6, 4, 3) and ds["image"].dtype == np.uint8
    assert (ds["image"].values[3, ..., 0] == 50).all()  # a uniform image stays uniform
    assert read_stimuli(folder, size=5)["image"].shape == (4, 5, 5, 3)


def test_bad_folders(tmp_path):
    with pytest.raises(DataFileError, match=r"nowhere: no such folder"):
        read_stimuli(tmp_path / "nowhere")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(DataFileError, match=r"empty: no image files"):
        read_stimuli(tmp_path / "empty")
    png(tmp_path / "flat" / "a.png")
    with pytest.raises(DataFileError, match=r"flat: categories='folder' needs .* 1 image\(s\) lie directly in the "
                                            r"folder: a.png"):
        read_stimuli(tmp_path / "flat")
    (tmp_path / "flat" / "b.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataFileError, match=r"b.png: corrupted or truncated image"):
        read_stimuli(tmp_path / "flat", categories=None)


# --- read_measures ---------------------------------------------------------------------


def write(tmp_path, text, name="measures.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_measures_table_lands_on_the_grid(tmp_path):
    path = write(tmp_path, "stimulus_id,seed,rt_proxy,margin\nb,1,11,0.1\nb,0,10,0.2\na,0,20,0.3\na,1,21,0.4\n")
    ds = read_measures(path, model_name="resnet")
    assert ds["stimulus_id"].values.tolist() == ["b", "a"]  # order of first appearance
    assert ds["seed"].values.tolist() == [0, 1] and ds["seed"].dtype.kind == "i"
    assert ds["rt_proxy"].dims == ("seed", "stimulus_id")
    assert float(ds["rt_proxy"].sel(seed=1, stimulus_id="a")) == 21
    assert float(ds["margin"].sel(seed=0, stimulus_id="b")) == pytest.approx(0.2)
    attrs = ds.attrs
    assert attrs["brainres_kind"] == "model_measures" and attrs["model_family"] == "precomputed"
    assert attrs["pressures"] == {} and attrs["model_name"] == "resnet" and attrs["stimulus_set"] == ""
    assert attrs["config_hash"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert attrs["training_data"] == "unknown (precomputed measures)"
    assert attrs["brainres_version"] == brainres.__version__ and attrs["source_file"] == str(path)


def test_measures_table_with_occlusion_and_netcdf_round_trip(tmp_path):
    rows = [f"{seed}\t{stim}\t{occ}\t{seed * 100 + i * 10 + occ * 2}"
            for seed in (1, 0) for i, stim in enumerate(["x", "y"]) for occ in (0.5, 0.0)]
    path = write(tmp_path, "seed\tstimulus_id\tocclusion\ttime\n" + "\n".join(rows) + "\n", "m.tsv")
    ds = read_measures(path, training_data="imagenet")
    assert ds["time"].dims == ("seed", "stimulus_id", "occlusion")
    assert ds["occlusion"].values.tolist() == [0.0, 0.5] and ds["stimulus_id"].values.tolist() == ["x", "y"]
    assert float(ds["time"].sel(seed=1, stimulus_id="y", occlusion=0.5)) == 111
    assert float(ds["time"].sel(seed=0, stimulus_id="x", occlusion=0.0)) == 0
    assert ds.attrs["training_data"] == "imagenet"
    write_netcdf(ds, tmp_path / "m.nc")
    back = read_measures(tmp_path / "m.nc")
    xr.testing.assert_identical(back, ds)


@pytest.mark.parametrize(
    "body, message",
    [
        ("seed,stimulus_id,t\n0,a,1\n0,b,2\n0,a,3\n",
         r"measures.csv: 2 rows repeat a \(seed, stimulus_id\) combination, e.g. seed 0, stimulus 'a', "
         r"in data row\(s\) 1, 3"),
        ("seed,stimulus_id,t\n0,a,1\n0,b,2\n1,a,3\n",
         r"measures.csv: 1 \(seed, stimulus_id\) combination\(s\) have no row, e.g. seed 1, stimulus 'b'"),
        ("seed,stimulus_id,occlusion,t\n0,a,0,1\n0,a,0.5,2\n0,b,0,3\n",
         r"1 \(seed, stimulus_id, occlusion\) combination\(s\) have no row, e.g. seed 0, stimulus 'b', "
         r"occlusion 0.5; .* at every occlusion level"),
        ("seed,stimulus_id,t\n0,a,1\n0,b,fast\n",
         r"measures.csv: column 't' must hold finite numbers; it has a non-numeric value \('fast'\) "
         r"in data row\(s\) 2, stimulus 'b'"),
        ("seed,stimulus_id,t\n0,a,NaN\n0,b,2\n",
         r"column 't' .* a NaN value \('NaN'\) in data row\(s\) 1, stimulus 'a'"),
        ("seed,stimulus_id,t\n0,a,1\n0,b,\n", r"column 't' .* an empty cell in data row\(s\) 2, stimulus 'b'"),
        ("seed,stimulus_id,t\n0,a,inf\n0,b,2\n", r"column 't' .* an infinite value \('inf'\) in data row\(s\) 1"),
        ("seed,stimulus_id\n0,a\n", r"measures.csv: no measure columns: .*\['seed', 'stimulus_id'\]"),
        ("seed,t\n0,1\n", r"measures.csv: missing column\(s\) \['stimulus_id'\]; the file has columns \['seed', 't'\]"),
        ("seed,stimulus_id,t\n0,a,1\n-1,b,2\n", r"column 'seed' must hold non-negative integers; bad value\(s\) '-1' "
                                                r"in data row\(s\) 2"),
        ("seed,stimulus_id,occlusion,t\n0,a,1.5,1\n",
         r"column 'occlusion' must hold fractions in \[0, 1\]; bad value\(s\) '1.5' in data row\(s\) 1"),
        ("seed,stimulus_id,t\n0,,1\n", r"column 'stimulus_id' is empty in data row\(s\) 1"),
        ("seed,stimulus_id,correct\n0,a,1\n", r"column\(s\) \['correct'\] have a fixed per-step meaning"),
    ],
)
def test_bad_measure_tables_are_named(tmp_path, body, message):
    with pytest.raises(DataFileError, match=message):
        read_measures(write(tmp_path, body))


def test_measures_file_types(tmp_path):
    with pytest.raises(DataFileError, match=r"m.xlsx: unknown file type '.xlsx'"):
        read_measures(write(tmp_path, "x", "m.xlsx"))
    with pytest.raises(DataFileError, match=r"nope.nc: no such file"):
        read_measures(tmp_path / "nope.nc")
    path = write(tmp_path, "seed;stimulus_id;t\n0;a;1.5\n", "m.txt")
    assert float(read_measures(path, sep=";")["t"].item()) == 1.5


# --- rsatoolbox ------------------------------------------------------------------------

@pytest.fixture
def rsatoolbox():
    """rsatoolbox is an optional (test) dependency; only these tests need it."""
    return pytest.importorskip("rsatoolbox")


def test_rsatoolbox_round_trip_keeps_everything(rsatoolbox):
    ds = neural_rdms(n_rdms=3, n=5)
    ds["dissimilarity"][1, 0, 3] = ds["dissimilarity"][1, 3, 0] = np.nan  # a missing pair survives
    ds = ds.assign_coords(measure=("rdm", ["1 - Pearson r", "1 - Pearson r", "euclidean"]),
                          category=("stimulus_id", list("aabbc")))
    rdms = to_rsatoolbox(ds)
    assert rdms.n_rdm == 3 and rdms.n_cond == 5 and rdms.dissimilarity_measure == "mixed"
    assert rdms.rdm_descriptors["rdm"] == ["r0", "r1", "r2"] and rdms.rdm_descriptors["region"] == ["IT"] * 3
    assert rdms.pattern_descriptors["stimulus_id"] == [f"img{i}" for i in range(5)]
    np.testing.assert_array_equal(rdms.dissimilarities[0, :4], ds["dissimilarity"].values[0, 0, 1:])
    back = from_rsatoolbox(rdms, **{k: ds.attrs[k] for k in ("dataset_id", "source", "license", "citation")})
    xr.testing.assert_allclose(back["dissimilarity"], ds["dissimilarity"])
    xr.testing.assert_identical(back.coords.to_dataset(), ds.coords.to_dataset())
    assert back.attrs == ds.attrs


def test_from_rsatoolbox_defaults_and_errors(rsatoolbox):
    rdms = rsatoolbox.rdm.RDMs(np.array([[0.2, 0.9, 0.7]]), dissimilarity_measure="correlation")
    ds = from_rsatoolbox(rdms)
    assert ds["stimulus_id"].values.tolist() == ["0", "1", "2"]  # rsatoolbox's own index
    assert ds["rdm"].values.tolist() == ["rdm0"] and ds["measure"].values.tolist() == ["correlation"]
    assert ds["subject"].values.tolist() == [""] and ds.attrs["dataset_id"] == "rsatoolbox"
    np.testing.assert_allclose(ds["dissimilarity"].values[0], [[0, 0.2, 0.9], [0.2, 0, 0.7], [0.9, 0.7, 0]])
    assert from_rsatoolbox(rdms, stimulus_ids=["a", "b", "c"])["stimulus_id"].values.tolist() == ["a", "b", "c"]
    with pytest.raises(SchemaError, match=r"2 stimulus ids given for RDMs of 3 conditions"):
        from_rsatoolbox(rdms, stimulus_ids=["a", "b"])
    with pytest.raises(SchemaError, match=r"duplicate values: a"):
        from_rsatoolbox(rdms, stimulus_ids=["a", "a", "c"])
    with pytest.raises(SchemaError, match=r"expected an rsatoolbox.rdm.RDMs object, got Dataset"):
        from_rsatoolbox(neural_rdms())


def test_missing_rsatoolbox_says_what_to_install(monkeypatch):
    import sys

    from brainres.errors import BrainresError

    monkeypatch.setitem(sys.modules, "rsatoolbox", None)  # makes `import rsatoolbox` fail
    monkeypatch.setitem(sys.modules, "rsatoolbox.rdm", None)
    with pytest.raises(BrainresError, match=r"pip install rsatoolbox"):
        to_rsatoolbox(neural_rdms())


@pytest.mark.needs_data
def test_rsatoolbox_compare_matches_scipy_on_kriegeskorte(data_root, rsatoolbox):
    from scipy.stats import spearmanr

    ds = brainres.load_dataset("kriegeskorte2008-92")
    rdms = to_rsatoolbox(ds)
    assert rdms.dissimilarity_measure == "1 - Pearson r" and rdms.n_cond == 92
    back = from_rsatoolbox(rdms, **{k: ds.attrs[k] for k in ("dataset_id", "source", "license", "citation")})
    xr.testing.assert_allclose(back, ds)
    xr.testing.assert_identical(back.coords.to_dataset(), ds.coords.to_dataset())
    monkey, human = rdms.subset("rdm", "mIT"), rdms.subset("rdm", "hIT")
    upper = np.triu_indices(92, k=1)
    expected = spearmanr(ds["dissimilarity"].sel(rdm="mIT").values[upper],
                         ds["dissimilarity"].sel(rdm="hIT").values[upper]).statistic
    assert rsatoolbox.rdm.compare(monkey, human, method="spearman").item() == pytest.approx(expected, abs=1e-10)
