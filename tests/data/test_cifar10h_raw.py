"""The upstream CIFAR-10H per-trial file, on a small file written in its exact schema."""

import zipfile

import numpy as np
import pytest

from brainres.datasets.cifar10 import read_cifar10h_raw
from brainres.errors import DataFileError

# the upstream columns, in the upstream order
HEADER = ("annotator_id,trial_index,is_attn_check,true_category,chosen_category,true_label,chosen_label,"
          "correct_guess,cifar10_test_set_idx,image_filename,subcategory,reaction_time,time_elapsed")
ROWS = [
    "0,0,0,cat,cat,3,3,1,0,cat-tabby-1.png,tabby,1532.0,1532",
    "0,1,1,airplane,airplane,0,0,1,-99999,airplane-attn.png,attn,800.5,2332",
    "0,2,0,ship,automobile,8,1,0,1,ship-liner-4.png,liner,2510.25,4842",
    "1,0,0,cat,dog,3,5,0,0,cat-tabby-1.png,tabby,990.0,990",
]


def write_zip(path, rows):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("cifar10h-raw.csv", "\n".join([HEADER, *rows]) + "\n")
    return path


def test_raw_file_becomes_human_trials(tmp_path):
    ds = read_cifar10h_raw(write_zip(tmp_path / "cifar10h-raw.zip", ROWS))
    assert ds.sizes["trial"] == 3  # the attention check is removed ...
    assert {"rule": "attention-check trials removed (is_attn_check == 1)", "n_trials": 1} in ds.attrs["exclusions"]
    np.testing.assert_allclose(ds["rt"].values, [1.532, 2.51025, 0.990])  # ms -> s
    assert ds["stimulus_id"].values.tolist() == ["cifar10-test-00000", "cifar10-test-00001", "cifar10-test-00000"]
    assert ds["correct"].values.tolist() == [True, False, False]
    assert ds["subject"].values.tolist() == ["0", "0", "1"]
    assert ds["subcategory"].values.tolist() == ["tabby", "liner", "tabby"]


def test_raw_file_errors_name_the_file(tmp_path):
    bad_index = ROWS[:1] + ["0,5,0,cat,cat,3,3,1,12000,x.png,tabby,900,900"]
    with pytest.raises(DataFileError, match="raw.zip: cifar10_test_set_idx out of range"):
        read_cifar10h_raw(write_zip(tmp_path / "raw.zip", bad_index))
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataFileError, match="broken.zip: not a valid zip archive"):
        read_cifar10h_raw(tmp_path / "broken.zip")
