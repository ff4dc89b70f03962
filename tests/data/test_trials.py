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
    ds = read_trials(path, columns=COLUMNS, rt_unit="ms", citation="me 2026", allow_unusable=True)
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


# --- implausible tables: refused with what to do, each with an option to accept it ---------------
PLAIN = "subject,stimulus_id,rt,response,category\n"


def test_milliseconds_declared_as_seconds_suggest_ms(tmp_path):
    path = write(tmp_path, PLAIN + "s1,a,512,cat,cat\ns1,b,628,dog,dog\ns2,a,570,cat,cat\ns2,b,601,cat,dog\n")
    with pytest.raises(DataFileError, match=r"median reaction time of 585.5 s, implausible .*looks like milliseconds: pass "
                                            r"rt_unit='ms' \(in a pipeline's \[\[dataset\]\]: rt_unit = \"ms\"\)"):
        read_trials(path)
    np.testing.assert_allclose(read_trials(path, rt_unit="ms")["rt"].values, [0.512, 0.628, 0.570, 0.601])
    slow = read_trials(path, allow_unusual_rts=True)  # a task that really takes minutes
    assert float(slow["rt"].max()) == 628.0


def test_seconds_declared_as_milliseconds_suggest_s(tmp_path):
    path = write(tmp_path, PLAIN + "s1,a,0.512,cat,cat\ns1,b,0.628,dog,dog\n")
    with pytest.raises(DataFileError, match=r"looks like seconds: pass rt_unit='s'"):
        read_trials(path, rt_unit="ms")
    assert read_trials(path, rt_unit="ms", allow_unusual_rts=True)["rt"].values[0] == pytest.approx(0.000512)


def test_exact_duplicate_rows_without_trial_index_are_refused(tmp_path):
    path = write(tmp_path, PLAIN + "s1,a,0.5,cat,cat\ns1,b,0.6,dog,dog\ns1,a,0.5,cat,cat\n")
    with pytest.raises(DataFileError, match=r"2 rows repeat another row exactly \(data row\(s\) 1, 3\).*"
                                            r"allow_duplicates=True"):
        read_trials(path)
    kept = read_trials(path, allow_duplicates=True)
    assert kept["trial_index"].values.tolist() == [0, 1, 2] and kept.sizes["trial"] == 3
    # the same stimulus twice with different RTs is a real repetition, not a copy
    repeated = write(tmp_path, PLAIN + "s1,a,0.5,cat,cat\ns1,a,0.7,cat,cat\n", "repeated.csv")
    assert read_trials(repeated).sizes["trial"] == 2


def test_subjects_and_stimuli_without_an_answered_trial_are_named(tmp_path):
    path = write(tmp_path, PLAIN + "s1,a,0.5,cat,cat\ns1,b,,,dog\ns2,a,0.6,cat,cat\ns2,b,na,,dog\n")
    with pytest.raises(DataFileError, match=r"1 stimulus/stimuli in column 'stimulus_id' have no usable trial "
                                            r"\(every trial a missed response\): 'b'.*allow_unusable=True"):
        read_trials(path)
    subjects = write(tmp_path, PLAIN + "s1,a,0.5,cat,cat\ns1,b,0.6,dog,dog\ns2,a,,,cat\ns2,b,,,dog\n", "s.csv")
    with pytest.raises(DataFileError, match=r"1 subject\(s\) in column 'subject' have no usable trial.*'s2'"):
        read_trials(subjects)
    kept = read_trials(path, allow_unusable=True)
    assert np.isnan(kept["rt"].values[[1, 3]]).all() and kept.attrs["n_missed"] == 2


def test_wrong_separator_names_the_right_one(tmp_path):
    path = write(tmp_path, PLAIN.replace(",", ";") + "s1;a;0.5;cat;cat\ns1;b;0.6;dog;dog\n")
    with pytest.raises(DataFileError, match=r"the fields look separated by semicolons, not commas; pass sep=';'"):
        read_trials(path)
    assert read_trials(path, sep=";").sizes["trial"] == 2
    tabs = write(tmp_path, PLAIN.replace(",", "\t") + "s1\ta\t0.5\tcat\tcat\n", "tabs.csv")
    with pytest.raises(DataFileError, match=r"separated by tabs, not commas; pass sep='\\t' \(in a pipeline's "
                                            r"\[\[dataset\]\]: sep = \"\\t\"\)"):
        read_trials(tabs)


def test_decimal_commas_are_named_and_read_with_decimal(tmp_path):
    path = write(tmp_path, PLAIN.replace(",", ";") + "s1;a;0,512;cat;cat\ns1;b;0,6;dog;dog\n")
    with pytest.raises(DataFileError, match=r"numbers with a decimal comma \(e.g. '0,512'\).*pass decimal=','"):
        read_trials(path, sep=";")
    np.testing.assert_allclose(read_trials(path, sep=";", decimal=",")["rt"].values, [0.512, 0.6])
    points = write(tmp_path, PLAIN.replace(",", ";") + "s1;a;0.512;cat;cat\n", "points.csv")
    with pytest.raises(DataFileError, match=r"decimal point \(e.g. '0.512'\), but decimal=',' was given"):
        read_trials(points, sep=";", decimal=",")
    # decimal commas in a comma-separated file: the field count says so
    mixed = write(tmp_path, PLAIN + "s1,a,0,512,cat,cat\n", "mixed.csv")
    with pytest.raises(DataFileError, match=r"line 2 has 6 fields, the header has 5 .*decimal commas"):
        read_trials(mixed)


def test_bad_options_are_listed_together(tmp_path):
    from brainres.errors import ProblemsError

    path = write(tmp_path, PLAIN + "s1,a,0.5,cat,cat\n")
    with pytest.raises(ProblemsError) as info:
        read_trials(path, rt_unit="sec", decimal=";", min_rt=float("nan"))
    assert len(info.value.problems) == 3 and "rt_unit must be one of" in str(info.value)
    with pytest.raises(ProblemsError, match=r"min_rt \(2 s\) must be below max_rt \(1 s\)"):
        read_trials(path, min_rt=2, max_rt=1)
    with pytest.raises(DataFileError, match=r"remove every answered trial .*are the bounds in seconds"):
        read_trials(write(tmp_path, PLAIN + "s1,a,0.5,cat,cat\ns1,b,0.6,cat,cat\n", "b.csv"), min_rt=150)


def test_the_options_work_in_a_pipeline_dataset_table():
    from brainres.pipeline.sources import TrialsOptions
    from brainres.settings import SettingsError

    options = TrialsOptions.from_dict({"sep": ";", "decimal": ",", "allow_duplicates": True,
                                       "allow_unusual_rts": True, "allow_unusable": True})
    assert options.decimal == "," and options.allow_duplicates
    with pytest.raises(SettingsError) as info:
        TrialsOptions.from_dict({"allow_duplicate": True, "decimal": "x"})
    assert "did you mean 'allow_duplicates'" in str(info.value) and "decimal: expected one of '.', ','" in str(info.value)
    with pytest.raises(SettingsError, match="min_rt .* must be below max_rt"):
        TrialsOptions.from_dict({"min_rt": 3.0, "max_rt": 0.2})
