"""Export what trained lattice models do on a stimulus set, as a ``model_measures`` netCDF.

For every seed x stimulus x occlusion level: the halting distribution over
steps, the model-time readouts (expected and median halting step, entropy-
threshold step, area under the uncertainty curve), the normalised entropy and
the predicted class and correctness at every step, the prediction at the
halting step, and optionally the latent states (pooled per layer) at every
step. Per seed: active channels and depth gate per layer, effective depth, the
cost terms and the accuracy per occlusion level.

Stimuli are processed in chunks and written as they are computed
(:class:`brainres.data.stream.StreamingWriter`), so the export of 10,000
stimuli never holds all their measures in memory; the file appears only when
complete and valid.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr

import brainres
from brainres.data.schema import validate
from brainres.data.stream import StreamingWriter
from brainres.errors import BrainresError
from brainres.models import readouts
from brainres.hashing import canonical_hash
from brainres.models.lattice import LatticeNet
from brainres.models.occlusion import occlude


class ExportError(BrainresError, ValueError):
    """Models and stimuli cannot be exported together."""


def stable_stimulus_index(stimulus_id: str) -> int:
    """An integer identity of a stimulus for its occluder, independent of stimulus order."""
    return int.from_bytes(hashlib.sha256(stimulus_id.encode()).digest()[:4], "big")


def prepare_images(images: np.ndarray, *, in_channels: int, image_size: int | None) -> torch.Tensor:
    """uint8 (stimulus, y, x, channel) -> float (stimulus, in_channels, size, size) in [0, 1].

    Colour images become luminance (ITU-R 601 weights) for a grey model; grey
    images are repeated for a colour model; images are resized with
    antialiased bilinear interpolation when ``image_size`` differs.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(np.asarray(images).transpose(0, 3, 1, 2))).float() / 255.0
    channels = tensor.shape[1]
    if channels == 3 and in_channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        tensor = (tensor * weights).sum(dim=1, keepdim=True)
    elif channels == 1 and in_channels == 3:
        tensor = tensor.repeat(1, 3, 1, 1)
    elif channels != in_channels:
        raise ExportError(f"cannot turn {channels}-channel images into {in_channels}-channel model input")
    if image_size is not None and tuple(tensor.shape[2:]) != (image_size, image_size):
        tensor = F.interpolate(tensor, size=(image_size, image_size), mode="bilinear", antialias=True,
                               align_corners=False).clamp(0, 1)
    return tensor


def class_indices(stimuli: xr.Dataset, classes: Sequence[str], *, unknown_classes: str = "error") -> np.ndarray:
    """Index of each stimulus's ``category`` in the model's ``classes``.

    A category the model was not trained on is an error, or with
    ``unknown_classes="unscored"`` gets index -1 (such stimuli are never
    counted correct; for representational comparisons on foreign image sets).
    """
    if unknown_classes not in ("error", "unscored"):
        raise ExportError(f"unknown_classes must be 'error' or 'unscored', got {unknown_classes!r}")
    categories = np.asarray(stimuli["category"].values).astype(str)
    position = {name: i for i, name in enumerate(classes)}
    unknown = sorted(str(c) for c in set(categories) - set(position))
    if unknown and unknown_classes == "error":
        raise ExportError(f"stimulus categories the model was not trained on: {unknown}; model classes: {list(classes)}"
                          " (export with unknown_classes='unscored' to run it anyway)")
    return np.array([position.get(c, -1) for c in categories], dtype=np.int64)


def export_lattice(
    models: Mapping[int, LatticeNet],
    stimuli: xr.Dataset,
    path,
    *,
    classes: Sequence[str],
    training_data: str,
    training_config: dict | None = None,
    image_size: int | None = None,
    occlusion_levels: Sequence[float] = (0.0,),
    occlusion_seed: int = 0,
    patch_size: int | None = None,
    entropy_threshold: float = 0.5,
    latents: bool = False,
    unknown_classes: str = "error",
    batch_size: int = 128,
    progress: bool = False,
) -> Path:
    """Run trained lattice models on a stimulus set and write a model-measures netCDF.

    Parameters
    ----------
    models : mapping seed -> LatticeNet
        Trained models of one configuration, by training seed.
    stimuli : xarray.Dataset
        A ``stimuli`` dataset (``brainres.load_stimuli``); its order is kept.
    path : path
        Output file, written atomically.
    classes : sequence of str
        The model's class names in output-index order; each stimulus's
        ``category`` must be one of them.
    training_data : str
        What the models were trained on (dataset id and labels), recorded.
    training_config : dict, optional
        The training configuration without its seed, recorded and hashed.
    image_size : int, optional
        Side the models expect; images are resized to it.
    occlusion_levels : sequence of float
        Fractions occluded; masks depend on ``(occlusion_seed, stimulus_id, level)`` only.
    entropy_threshold : float
        Threshold of the entropy-threshold readout (normalised entropy).
    latents : bool
        Also export the pooled latent state of every layer at every step.
    unknown_classes : {"error", "unscored"}
        What to do with stimuli whose category is not a model class (see
        :func:`class_indices`); unscored stimuli have ``target_class`` -1.
    batch_size : int
        Stimuli per chunk.

    Returns
    -------
    pathlib.Path
    """
    validate(stimuli, "stimuli")
    if not models:
        raise ExportError("no models to export")
    seeds = sorted(int(s) for s in models)
    configs = {seed: models[seed].config for seed in seeds}
    first = configs[seeds[0]]
    if any(c != first for c in configs.values()):
        raise ExportError("models of one export must share a configuration (they differ beyond their seed)")
    levels = [float(level) for level in occlusion_levels]
    if len(set(levels)) != len(levels) or any(not 0 <= level <= 1 for level in levels):
        raise ExportError(f"occlusion levels must be distinct fractions in [0, 1], got {list(occlusion_levels)}")
    targets = class_indices(stimuli, classes, unknown_classes=unknown_classes)
    ids = np.asarray(stimuli["stimulus_id"].values).astype(str)
    n_stimuli, n_steps, n_layers = ids.size, first.max_steps, first.max_layers

    coords = xr.Dataset(
        {
            "category": ("stimulus_id", np.asarray(stimuli["category"].values).astype(str)),
            "target_class": ("stimulus_id", targets),
        },
        coords={
            "seed": np.array(seeds, dtype=np.int64),
            "stimulus_id": ids,
            "occlusion": np.array(levels),
            "step": np.arange(1, n_steps + 1, dtype=np.int64),
            "layer": np.arange(n_layers, dtype=np.int64),
            "class_name": ("class_index", list(classes)),
        },
    )
    if latents:
        coords = coords.assign_coords(unit=np.arange(first.max_channels, dtype=np.int64))
    config_record = {"model": first.to_dict(), "training": training_config or {}}
    coords.attrs = {
        "brainres_kind": "model_measures",
        "model_family": "lattice",
        "pressures": first.pressures,
        "config_hash": canonical_hash(config_record),
        "config": config_record,
        "brainres_version": brainres.__version__,
        "training_data": training_data,
        "stimulus_set": stimuli.attrs.get("dataset_id", ""),
        "occlusion_seed": int(occlusion_seed),
        "patch_size": -1 if patch_size is None else int(patch_size),
        "entropy_threshold": float(entropy_threshold),
        "image_size": -1 if image_size is None else int(image_size),
        "halting_step_readout": "median halting step: first step whose cumulative halting probability reaches 0.5",
        "n_unscored": int((targets < 0).sum()),
    }
    per_stimulus = ("seed", "stimulus_id", "occlusion")
    per_step = (*per_stimulus, "step")
    described = {
        "halting_probability": (per_step, "float32", "probability of halting at each step"),
        "entropy": (per_step, "float32", "softmax entropy of the readout / log(n_classes)"),
        "predicted_class": (per_step, "int16", "readout's class index at each step"),
        "correct": (per_step, bool, "predicted class equals target_class"),
        "expected_halting_step": (per_stimulus, "float32", "sum over steps of step x halting probability"),
        "median_halting_step": (per_stimulus, "float32", "first step with cumulative halting probability >= 0.5"),
        "entropy_threshold_step": (per_stimulus, "float32", "first step with normalised entropy below entropy_threshold (last step if never)"),
        "uncertainty_auc": (per_stimulus, "float32", "area under the normalised-entropy-over-steps curve"),
        "halted_class": (per_stimulus, "int16", "prediction at the median halting step (early exit)"),
        "halted_correct": (per_stimulus, bool, "halted_class equals target_class"),
    }
    variables = {name: (dims, dtype, {"description": text}) for name, (dims, dtype, text) in described.items()}
    if latents:
        variables["latent"] = ((*per_step, "layer", "unit"), "float32",
                               {"description": "layer state averaged over space, at each step"})

    summaries = {seed: models[seed].resource_summary() for seed in seeds}
    correct_at_halt = np.zeros((len(seeds), len(levels)))
    expected_sum = np.zeros((len(seeds), len(levels)))
    chunks = range(0, n_stimuli, batch_size)
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc=f"export {coords.attrs['stimulus_set'] or 'stimuli'}", unit="chunk")
    stable = np.array([stable_stimulus_index(i) for i in ids])
    with StreamingWriter(path, coords, variables) as out:
        for start in chunks:
            chunk = slice(start, min(start + batch_size, n_stimuli))
            images = prepare_images(np.asarray(stimuli["image"].values[chunk]), in_channels=first.in_channels,
                                    image_size=image_size)
            for level_index, level in enumerate(levels):
                shown = images if level == 0 else occlude(images, level=level, seed=occlusion_seed,
                                                          stimulus_index=stable[chunk], patch_size=patch_size)
                for seed_index, seed in enumerate(seeds):
                    measured = models[seed].measure(shown)
                    where = {"seed": seed_index, "stimulus_id": chunk, "occlusion": level_index}
                    written = _write_measures(out, where, measured, targets[chunk], entropy_threshold, latents)
                    correct_at_halt[seed_index, level_index] += written["halted_correct"].sum()
                    expected_sum[seed_index, level_index] += written["expected_halting_step"].sum()
        # per-seed summaries are small: written in one piece at the end
        out_vars = {
            "accuracy": (("seed", "occlusion"), correct_at_halt / n_stimuli,
                         "fraction correct at the median halting step"),
            "mean_expected_halting_step": (("seed", "occlusion"), expected_sum / n_stimuli,
                                           "expected halting step averaged over stimuli"),
            "active_channels": (("seed", "layer"), [summaries[s]["active_channels"] for s in seeds],
                                "channels whose gate magnitude exceeds gate_threshold"),
            "depth_gate": (("seed", "layer"), [summaries[s]["depth_gates"] for s in seeds],
                           "openness of each layer's residual branch"),
            "effective_depth": (("seed",), [summaries[s]["effective_depth"] for s in seeds], "sum of depth gates"),
            "open_layers": (("seed",), [summaries[s]["open_layers"] for s in seeds], "layers with gate above depth_threshold"),
            "active_breadth": (("seed",), [summaries[s]["active_breadth"] for s in seeds], "mean active channels over open layers"),
            "cost_breadth": (("seed",), [summaries[s]["breadth_cost"] for s in seeds], "breadth cost term"),
            "cost_depth": (("seed",), [summaries[s]["depth_cost"] for s in seeds], "depth cost term"),
        }
        for name, (dims, values, text) in out_vars.items():
            out.add(name, dims, values, {"description": text})
    return Path(path)


def _write_measures(out, where, measured, targets, entropy_threshold, latents) -> dict:
    logits = measured["logits"].numpy()
    halting = measured["halting_probability"].numpy().astype(np.float64)
    halting /= halting.sum(axis=1, keepdims=True)  # float32 rounding must not break sum-to-one
    predicted = logits.argmax(axis=2)
    median_step = readouts.median_halting_step(halting)
    halted = predicted[np.arange(len(predicted)), median_step.astype(int) - 1]
    values = {
        "halting_probability": halting,
        "entropy": readouts.step_entropy(logits),
        "predicted_class": predicted,
        "correct": predicted == targets[:, None],
        "expected_halting_step": readouts.expected_halting_step(halting),
        "median_halting_step": median_step,
        "entropy_threshold_step": readouts.entropy_threshold_step(logits, threshold=entropy_threshold),
        "uncertainty_auc": readouts.uncertainty_auc(logits),
        "halted_class": halted,
        "halted_correct": halted == targets,
    }
    for name, value in values.items():
        out.write(name, where, value)
    if latents:
        stacked = np.stack([measured["latents"][f"layer_{i}"].numpy() for i in range(len(measured["latents"]))], axis=2)
        out.write("latent", where, stacked)
    return values
