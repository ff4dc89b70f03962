"""Kriegeskorte et al. (2008): 92 object images with monkey and human IT dissimilarities.

Files from rsatoolbox's ``demos/92imageData/`` (MIT). ``load_dataset`` gives a
``neural_rdms`` dataset with ten RDMs over the same 92 stimuli: the two RDMs of
figure 1 (monkey IT, 674 neurons; human IT fMRI, 316 voxels) and the eight
human IT RDMs of 4 subjects x 2 sessions. All use 1 - Pearson correlation of
the response patterns, as in the paper.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from scipy.spatial.distance import squareform

from brainres.data.readers import read_mat
from brainres.data.registry import DatasetSpec
from brainres.errors import DataFileError
from brainres.datasets._common import registered_files, stimuli_dataset

FOLDER = "kriegeskorte2008"
BASE_URLS = (("", "https://raw.githubusercontent.com/rsagroup/rsatoolbox/main/demos/92imageData/"),)
SUPPLEMENT = "Kriegeskorte_Neuron2008_supplementalData.mat"
BRAIN_RDMS = "92_brainRDMs.mat"
N_STIMULI = 92
MEASURE = "1 - Pearson r"
CITATION = (
    "Kriegeskorte, N., Mur, M., Ruff, D. A., Kiani, R., Bodurka, J., Esteky, H., Tanaka, K., & "
    "Bandettini, P. A. (2008). Matching categorical object representations in inferior temporal "
    "cortex of man and monkey. Neuron, 60(6), 1126-1141."
)
FIG1 = {  # upstream name -> (rdm id, species, subject description)
    "mIT_674neurons": ("mIT", "macaque", "group: 2 monkeys, 674 neurons"),
    "hITvisStim_316vx": ("hIT", "human", "group: 4 subjects, 316 voxels"),
}


def stimulus_ids() -> list[str]:
    return [f"obj{i:02d}" for i in range(1, N_STIMULI + 1)]


def _files(names):
    return [f for f in registered_files("kriegeskorte2008.txt", BASE_URLS) if f.path in names]


def _matrix(condensed_or_square, source, name) -> np.ndarray:
    values = np.asarray(condensed_or_square, dtype=float)
    if values.shape == (N_STIMULI * (N_STIMULI - 1) // 2,):
        return squareform(values, checks=False)
    if values.shape == (N_STIMULI, N_STIMULI):
        return values
    raise DataFileError(source, f"RDM {name!r} has shape {values.shape}, expected 92x92 or condensed 4186")


def load_rdms(paths: dict[str, Path]) -> xr.Dataset:
    supplement = read_mat(paths[SUPPLEMENT])
    brain = read_mat(paths[BRAIN_RDMS])
    matrices, rdm_ids, species, subject, session, original = [], [], [], [], [], []
    for entry in np.atleast_1d(supplement["RDMs_mIT_hIT_fig1"]):
        rdm_id, kind, who = FIG1[entry.name]
        matrices.append(_matrix(entry.RDM, paths[SUPPLEMENT], entry.name))
        rdm_ids.append(rdm_id), species.append(kind), subject.append(who)
        session.append("all"), original.append(entry.name)
    per_subject = np.asarray(brain["RDMs"])
    if per_subject.shape != (4, 2):
        raise DataFileError(paths[BRAIN_RDMS], f"RDMs has shape {per_subject.shape}, expected 4 subjects x 2 sessions")
    for entry in per_subject.ravel():
        # upstream names read 'hIT | BE | Session: 1'
        parts = [p.strip() for p in str(entry.name).split("|")]
        who, when = parts[1], parts[2].split(":")[-1].strip()
        matrices.append(_matrix(entry.RDM, paths[BRAIN_RDMS], entry.name))
        rdm_ids.append(f"hIT-{who}-{when}"), species.append("human"), subject.append(who)
        session.append(when), original.append(str(entry.name))
    ids = stimulus_ids()
    ds = xr.Dataset(
        {"dissimilarity": (("rdm", "stimulus_id", "stimulus_id_2"), np.stack(matrices))},
        coords={
            "rdm": rdm_ids,
            "stimulus_id": ids,
            "stimulus_id_2": ids,
            "measure": ("rdm", [MEASURE] * len(rdm_ids)),
            "subject": ("rdm", subject),
            "session": ("rdm", session),
            "region": ("rdm", ["IT"] * len(rdm_ids)),
            "species": ("rdm", species),
            "upstream_name": ("rdm", original),
        },
    )
    labels = _category_coords(supplement)
    for name, values in labels.items():
        ds.coords[name] = ("stimulus_id", values)
    return ds


def _category_coords(supplement) -> dict:
    stimuli = np.atleast_1d(supplement["stimuli_92objs"])
    return {"category": np.array([str(s.category) for s in stimuli])}


def load_stimuli(paths: dict[str, Path]) -> xr.Dataset:
    supplement = read_mat(paths[SUPPLEMENT])
    stimuli = np.atleast_1d(supplement["stimuli_92objs"])
    if len(stimuli) != N_STIMULI:
        raise DataFileError(paths[SUPPLEMENT], f"stimuli_92objs has {len(stimuli)} entries, expected 92")
    images = np.stack([np.asarray(s.image, dtype=np.uint8) for s in stimuli])
    flags = {name: np.array([bool(getattr(s, name)) for s in stimuli]) for name in ("human", "face", "animal", "natural")}
    ds = stimuli_dataset(stimulus_ids(), images, [str(s.category) for s in stimuli], **flags)
    vectors = np.asarray(supplement["categoryVectors"], dtype=bool)
    ds["category_vector"] = (("stimulus_id", "category_label"), vectors)
    ds.coords["category_label"] = [str(x) for x in supplement["categoryLabels"]]
    return ds


RDMS_92 = DatasetSpec(
    id="kriegeskorte2008-92",
    kind="neural_rdms",
    description="Kriegeskorte 2008: 92 images; monkey IT + human IT RDMs (fig. 1) and 4 subjects x 2 sessions hIT",
    folder=FOLDER,
    source="github.com/rsagroup/rsatoolbox demos/92imageData",
    license="MIT (rsatoolbox demo data)",
    citation=CITATION,
    data_files=lambda: _files({SUPPLEMENT, BRAIN_RDMS}),
    stimulus_files=lambda: _files({SUPPLEMENT}),
    load=load_rdms,
    load_stimuli=load_stimuli,
)
