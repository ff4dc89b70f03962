"""Geirhos et al. (2021): human trials and stimuli of the edge, silhouette and cue-conflict sets.

The trial files come from the model-vs-human benchmark (``raw-data/``), the
images from the texture-vs-shape repository (``stimuli/``); the mirror keeps
both under one ``geirhos2021/`` folder.

The stimulus of a trial is the trailing file part of its ``imagename``
(``0001_edg_s01_0_oven_00_oven10.png`` -> ``oven10``): every subject saw every
stimulus once, so a stimulus has one trial per subject.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import pandas as pd

from brainres.data.readers import read_images, read_table
from brainres.data.registry import DatasetSpec
from brainres.data.trials import trials_from_table
from brainres.errors import DataFileError
from brainres.datasets._common import natural_key, registered_files, stimuli_dataset

FOLDER = "geirhos2021"
BASE_URLS = (
    ("raw-data/", "https://raw.githubusercontent.com/bethgelab/model-vs-human/master/raw-data/"),
    ("stimuli/", "https://raw.githubusercontent.com/rgeirhos/texture-vs-shape/master/stimuli/"),
    ("DATASET_LICENSE", "https://raw.githubusercontent.com/rgeirhos/texture-vs-shape/master/DATASET_LICENSE"),
    ("CODE_LICENSE", "https://raw.githubusercontent.com/bethgelab/model-vs-human/master/CODE_LICENSE"),
)
STIMULUS_FOLDERS = {
    "edge": "edges",
    "silhouette": "filled-silhouettes",
    "cue-conflict": "style-transfer-preprocessed-512",
}
COLUMNS = ("subj", "session", "trial", "rt", "object_response", "category", "condition", "imagename")
# NNNN_<exp>_sNN_<condition>_<category>_NN_<file>.png
IMAGENAME = re.compile(r"^\d+_[^_]+_s\d+_[^_]+_[^_]+_\d+_(?P<file>[^_/]+)\.png$")
CITATION = (
    "Geirhos, R., Narayanappa, K., Mitzkus, B., Thieringer, T., Bethge, M., Wichmann, F. A., & "
    "Brendel, W. (2021). Partial success in closing the gap between human and machine vision. "
    "Advances in Neural Information Processing Systems 34."
)
SOURCE = "github.com/bethgelab/model-vs-human (raw-data/) and github.com/rgeirhos/texture-vs-shape (stimuli/)"
LICENSE = "stimuli CC-BY-4.0; trial data and code MIT"


def _files(experiment: str, part: str):
    prefix = f"raw-data/{experiment}/" if part == "data" else f"stimuli/{STIMULUS_FOLDERS[experiment]}/"
    return [f for f in registered_files("geirhos2021.txt", BASE_URLS) if f.path.startswith(prefix)]


def stimulus_id_of(imagename: str, source) -> str:
    """The stimulus (file part, without extension) of a trial's ``imagename``."""
    match = IMAGENAME.match(imagename)
    if match is None:
        raise DataFileError(source, f"imagename {imagename!r} does not have the form "
                                    "NNNN_<exp>_sNN_<condition>_<category>_NN_<file>.png")
    return match.group("file")


def _stimulus_ids(experiment: str) -> set[str]:
    return {Path(f.path).stem for f in _files(experiment, "stimuli")}


def load_trials(paths: dict[str, Path], experiment: str):
    frames = []
    for relpath in sorted(p for p in paths if p.endswith(".csv")):
        path = paths[relpath]
        table = read_table(path)
        missing = [c for c in COLUMNS if c not in table.columns]
        if missing:
            raise DataFileError(path, f"missing column(s) {missing}; the file has columns {list(table.columns)}")
        table["stimulus_id"] = [stimulus_id_of(name, path) for name in table["imagename"]]
        table["texture_category"] = [_texture_of(s) for s in table["stimulus_id"]]
        unknown = sorted(set(table["stimulus_id"]) - _stimulus_ids(experiment))
        if unknown:
            raise DataFileError(path, f"{len(unknown)} stimulus id(s) have no image in "
                                      f"stimuli/{STIMULUS_FOLDERS[experiment]}/: {unknown[:10]}")
        table["source_file"] = Path(relpath).name
        frames.append(table)
    if not frames:
        raise DataFileError(FOLDER, f"no trial files found for {experiment!r}")
    table = pd.concat(frames, ignore_index=True)
    extra = {"imagename": "imagename"}
    if experiment == "cue-conflict":
        extra["texture_category"] = "texture_category"
    ds = trials_from_table(
        table,
        source=f"{FOLDER}/raw-data/{experiment}",
        columns={"subject": "subj", "trial_index": "trial", "response": "object_response"},
        extra_coords=extra,
    )
    ds.attrs["experiment"] = experiment
    ds.attrs["rt_note"] = "rt capped at 1.5 s by the response deadline; missed trials ('na') have NaN rt"
    return ds


def _texture_of(stimulus_id: str) -> str:
    """Cue-conflict ids are '<shape><n>-<texture><m>'; other sets have no texture cue."""
    if "-" not in stimulus_id:
        return ""
    return re.sub(r"\d+$", "", stimulus_id.split("-", 1)[1])


def load_stimuli(paths: dict[str, Path], experiment: str):
    relpaths = sorted(paths, key=lambda p: (Path(p).parent.name, natural_key(Path(p).stem)))
    ids = [Path(p).stem for p in relpaths]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise DataFileError(f"{FOLDER}/stimuli/{STIMULUS_FOLDERS[experiment]}", f"stimulus ids appear twice: {duplicated[:10]}")
    categories = [Path(p).parent.name for p in relpaths]
    labels = {name: i for i, name in enumerate(sorted(set(categories)))}
    ds = stimuli_dataset(
        ids,
        read_images([paths[p] for p in relpaths], mode="RGB"),
        categories,
        label=[labels[c] for c in categories],
        texture_category=[_texture_of(i) for i in ids],
    )
    ds["label"].attrs["classes"] = sorted(labels)
    ds.attrs["experiment"] = experiment
    return ds


def _spec(experiment: str, description: str) -> DatasetSpec:
    return DatasetSpec(
        id=f"geirhos2021-{experiment}",
        kind="human_trials",
        description=description,
        folder=FOLDER,
        source=SOURCE,
        license=LICENSE,
        citation=CITATION,
        data_files=partial(_files, experiment, "data"),
        stimulus_files=partial(_files, experiment, "stimuli"),
        load=partial(load_trials, experiment=experiment),
        load_stimuli=partial(load_stimuli, experiment=experiment),
    )


EDGE = _spec("edge", "Geirhos 2021 edge drawings: 10 subjects x 160 trials, 16-class RT task")
SILHOUETTE = _spec("silhouette", "Geirhos 2021 filled silhouettes: 10 subjects x 160 trials, 16-class RT task")
CUE_CONFLICT = _spec("cue-conflict", "Geirhos 2021 shape-texture cue conflict: 10 subjects x 1280 trials")
