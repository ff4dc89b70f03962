import numpy as np
import pytest
import xarray as xr

from brainres import read_trials
from brainres.data.readers import read_idx, read_image, read_mat
from brainres.errors import DataFileError

HEADER = "participant,image,RT_ms,key,truth,block,trial\n"


def write(tmp_path, text, name="rts.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


COLUMNS = {"subject": "participant", "stimulus_id": "image", "rt": "RT_ms", "response": "key",
           "category": "truth", "condition": "block", "trial_index": "trial"}


def test_read_trials_maps_columns_and_converts_ms(tmp_path):
    path = write(tmp_path, HEADER + "p1,a.png,512,cat,cat,A,1\np1,b.png,,,dog,A,2\np2,a.png,734.5,dog,cat,B,1\n")
    ds = read_trials(path, columns=COLUMNS, rt_unit="ms", citation="me 2026")
    assert ds.attrs["brainres_kind"] == "human_trials"
    np.testing.assert_allclose(ds["rt"].values, [0.512, np.nan, 0.7345])
    assert ds["response"].values.tolist() == ["cat", "", "dog"]
    assert ds["correct"].values.tolist() == [True, False, False]
    assert ds["stimulus_id"].values.tolist() == ["a.png", "b.png", "a.png"]  # file order kept
    assert ds.attrs["n_missed"] == 1
    assert {"rule": "missed responses kept with rt NaN and response ''", "n_trials": 1} in ds.attrs["exclusions"]


def test_read_trials_tsv_and_exclusion_bounds(tmp_path):
    text = HEADER.replace(",", "\t") + "p1\ta\t0.05\tcat\tcat\tA\t1\np1\tb\t0.5\tcat\tcat\tA\t2\np1\tc\t9\tcat\tcat\tA\t3\n"
    ds = read_trials(write(tmp_path, text, "rts.tsv"), columns=COLUMNS, min_rt=0.1, max_rt=3)
    assert ds["stimulus_id"].values.tolist() == ["b"]
    rules = {e["rule"]: e["n_trials"] for e in ds.attrs["exclusions"]}
    assert rules["trials with rt faster than 0.1 s removed"] == 1
    assert rules["trials with rt slower than 3 s removed"] == 1


@pytest.mark.parametrize(
    "body, message",
    [
        ("p1,a,fast,cat,cat,A,1\n", r"rts.csv: column 'RT_ms' has non-numeric reaction times \(e.g. 'fast'\) in data row\(s\) 1"),
        ("p1,a,500,cat,cat,A,1\np1,b,-3,cat,cat,A,2\n", r"rts.csv: column 'RT_ms' has negative reaction times in data row\(s\) 2"),
        ("p1,a,500,cat,cat,A,1\np1,b,600,cat,cat,A,1\n", r"rts.csv: 2 rows are duplicate trials .*subject 'p1'"),
        ("p1,a,500,cat,cat,A,1\np1,b,60", r"rts.csv: line 3 has 3 fields, the header has 7"),
        (",a,500,cat,cat,A,1\n", r"column 'participant' is empty in data row\(s\) 1"),
        ("p1,a,500,cat,cat,A,x\n", r"column 'trial' must hold integers"),
    ],
)
def test_bad_trials_are_named(tmp_path, body, message):
    path = write(tmp_path, HEADER + body)
    before = sorted(tmp_path.iterdir())
    with pytest.raises(DataFileError, match=message):
        read_trials(path, columns=COLUMNS, rt_unit="ms")
    assert sorted(tmp_path.iterdir()) == before  # nothing written


def test_missing_columns_are_listed_with_what_exists(tmp_path):
    path = write(tmp_path, "subj,img,rt\ns,a,0.5\n")
    with pytest.raises(DataFileError) as info:
        read_trials(path)
    text = str(info.value)
    assert "'subject'" in text and "'stimulus_id'" in text and "'response'" in text
    assert "the file has columns ['subj', 'img', 'rt']" in text


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(DataFileError, match="empty"):
        read_trials(write(tmp_path, ""))
    with pytest.raises(DataFileError, match="no such file"):
        read_trials(tmp_path / "nope.csv")
    with pytest.raises(DataFileError, match="no trials"):
        read_trials(write(tmp_path, HEADER), columns=COLUMNS)


def test_correct_column_is_used_when_given(tmp_path):
    path = write(tmp_path, "subject,stimulus_id,rt,response,correct\ns,a,0.4,x,1\ns,b,0.5,y,0\n")
    ds = read_trials(path)
    assert ds["correct"].values.tolist() == [True, False]
    assert ds["trial_index"].values.tolist() == [0, 1]  # numbered in file order when absent
    bad = write(tmp_path, "subject,stimulus_id,rt,response,correct\ns,a,0.4,x,maybe\n", "bad.csv")
    with pytest.raises(DataFileError, match="'correct' must be 0/1"):
        read_trials(bad)


def test_corrupted_and_truncated_binary_files(tmp_path):
    from PIL import Image

    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(good)
    assert read_image(good).shape == (8, 8, 3)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(DataFileError, match="truncated.png: corrupted or truncated image"):
        read_image(truncated)
    with pytest.raises(DataFileError, match="not.mat: not a readable MATLAB file"):
        (tmp_path / "not.mat").write_bytes(b"MATLAB 5.0 garbage" * 3)
        read_mat(tmp_path / "not.mat")
    import gzip

    idx = tmp_path / "t.idx.gz"
    with gzip.open(idx, "wb") as handle:
        handle.write(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + bytes(7))
    with pytest.raises(DataFileError, match="truncated: header announces 10 bytes of data, found 7"):
        read_idx(idx)
    broken_gz = tmp_path / "broken.gz"
    broken_gz.write_bytes(idx.read_bytes()[:-6])
    with pytest.raises(DataFileError, match="broken.gz"):
        read_idx(broken_gz)


def test_stimuli_without_images_are_listed():
    from brainres.data.trials import require_images
    from brainres.errors import StimulusMismatchError
    from brainres.testing import human_trials, stimuli

    trials, images = human_trials(n_stimuli=4), stimuli(n=4)
    require_images(trials, images)  # every trial's stimulus has an image
    with pytest.raises(StimulusMismatchError, match="img3"):
        require_images(trials, images.isel(stimulus_id=slice(0, 3)))
    xr.testing.assert_identical(trials, human_trials(n_stimuli=4))
