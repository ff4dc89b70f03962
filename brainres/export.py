"""Export what trained image models do on a stimulus set, as a ``model_measures`` netCDF.

Any model meeting the image-model contract is exported the same way. For every
seed x stimulus x occlusion level: the normalised entropy, predicted class and
correctness at every step, the model-time readouts (entropy-threshold step,
area under the uncertainty curve and, for models that halt, the halting
distribution with its expected and median step), the prediction at the
halting step, and optionally the latent states (pooled over space, each
layer at its own width) at every step. Per seed: accuracy and mean time per
occlusion level, parameter count and the model's resource summary.

Stimuli are processed in chunks and written as they are computed
(:class:`brainres.data.stream.StreamingWriter`), so the export of 10,000
stimuli never holds all their measures in memory; the file appears only when
complete and valid.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import xarray as xr

import brainres
from brainres.data.schema import validate
from brainres.data.stream import StreamingWriter
from brainres.errors import BrainresError
from brainres.hashing import canonical_hash
from brainres.models import readouts
from brainres.models.contract import (
    ContractError, StepOutputs, halting_rule, halting_steps, parameter_count, resource_summary, run_model,
)
from brainres.models.inputs import class_indices, prepare_images, stable_stimulus_index
from brainres.models.occlusion import occlude

TIME_READOUTS = ("expected_halting_step", "median_halting_step", "entropy_threshold_step", "uncertainty_auc")
HALTING_READOUTS = ("expected_halting_step", "median_halting_step")


class ExportError(BrainresError, ValueError):
    """Models and stimuli cannot be exported together."""


def _structure(outputs: StepOutputs) -> dict:
    return {"steps": outputs.n_steps, "classes": outputs.n_classes, "halting": outputs.halting_probability is not None,
            "latents": {name: int(value.shape[2]) for name, value in outputs.latents.items()}}


def _probe(models: Mapping[int, torch.nn.Module], images: torch.Tensor, n_classes: int, latents: bool) -> dict:
    """Run every seed on a few images: they must agree on steps, halting and latent layers."""
    structures = {}
    for seed, model in models.items():
        try:
            structures[seed] = _structure(run_model(model, images, n_classes=n_classes, latents=latents))
        except ContractError as err:
            raise ExportError(f"seed {seed}: {err}") from None
    first_seed = next(iter(structures))
    for seed, structure in structures.items():
        if structure != structures[first_seed]:
            raise ExportError(f"models of one export must have the same structure; seed {first_seed} gives "
                              f"{structures[first_seed]}, seed {seed} gives {structure}")
    structure = structures[first_seed]
    if latents and not structure["latents"]:
        raise ExportError("latents were asked for, but the model returns no 'latents' (see docs/your-model.md)")
    return structure


def _summaries(models) -> tuple[dict, int]:
    """Per-seed resource summaries (same names in every seed) and the number of layers of list-valued ones."""
    summaries = {seed: resource_summary(model) for seed, model in models.items()}
    names = {seed: sorted(s) for seed, s in summaries.items()}
    if len({tuple(n) for n in names.values()}) > 1:
        raise ExportError(f"seeds report different resource summaries: {names}")
    lengths = {len(v) for s in summaries.values() for v in s.values() if isinstance(v, list)}
    if len(lengths) > 1:
        raise ExportError(f"per-layer resource summaries must have one length, got {sorted(lengths)}")
    return summaries, (lengths.pop() if lengths else 0)


@torch.no_grad()
def export_models(
    models: Mapping[int, torch.nn.Module],
    stimuli: xr.Dataset,
    path,
    *,
    classes: Sequence[str],
    in_channels: int,
    image_size: int | None = None,
    record: dict | None = None,
    training_data: str = "",
    pressures: dict | None = None,
    occlusion_levels: Sequence[float] = (0.0,),
    occlusion_seed: int = 0,
    patch_size: int | None = None,
    entropy_threshold: float = 0.5,
    latents: bool = False,
    unknown_classes: str = "error",
    batch_size: int = 128,
    device: str = "cpu",
    progress: bool = False,
    training_epoch: int | None = None,
) -> Path:
    """Run trained contract models on a stimulus set and write a model-measures netCDF.

    Parameters
    ----------
    models : mapping seed -> torch.nn.Module
        Trained models of one configuration, by training seed.
    stimuli : xarray.Dataset
        A ``stimuli`` dataset (``brainres.load_stimuli`` or ``brainres.read_stimuli``); its order is kept.
    path : path
        Output file, written atomically.
    classes : sequence of str
        The model's class names in logit order; each stimulus's ``category``
        must be one of them (or see ``unknown_classes``).
    in_channels : int
        Channels the models take (colour images become grey or grey colour to fit).
    image_size : int, optional
        Side the models expect; images are resized to it.
    record : dict, optional
        What the models are and how they were trained (recorded and hashed).
    training_data : str
        What the models were trained on, recorded.
    pressures : dict, optional
        Resource pressures they were trained under, recorded (default none).
    occlusion_levels : sequence of float
        Fractions occluded; masks depend on ``(occlusion_seed, stimulus_id, level)`` only.
    entropy_threshold : float
        Threshold of the entropy-threshold readout (normalised entropy); also
        the halting rule of models without halting probabilities.
    latents : bool
        Also export the latent states at every step (variable ``latent``).
    unknown_classes : {"error", "unscored"}
        What to do with stimuli whose category is not a model class; unscored
        stimuli have ``target_class`` -1 and are never counted correct.
    batch_size : int
        Stimuli per chunk.
    device : str
        Where the models run (``"cpu"``, ``"cuda"``...).
    training_epoch : int, optional
        The training epoch whose weights the models hold (recorded as an
        attribute; -1 when unknown, e.g. weights trained elsewhere).

    Returns
    -------
    pathlib.Path
    """
    validate(stimuli, "stimuli")
    if not models:
        raise ExportError("no models to export")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ExportError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not 0 < entropy_threshold <= 1:
        raise ExportError(f"entropy_threshold must lie in (0, 1], got {entropy_threshold}")
    seeds = sorted(int(s) for s in models)
    models = {seed: models[seed].to(device).eval() for seed in seeds}
    levels = [float(level) for level in occlusion_levels]
    if not levels or len(set(levels)) != len(levels) or any(not 0 <= level <= 1 for level in levels):
        raise ExportError(f"occlusion levels must be distinct fractions in [0, 1], got {list(occlusion_levels)}")
    targets = class_indices(stimuli, classes, unknown_classes=unknown_classes)
    ids = np.asarray(stimuli["stimulus_id"].values).astype(str)
    n_stimuli = ids.size

    def images_of(chunk):
        return prepare_images(np.asarray(stimuli["image"].values[chunk]), in_channels=in_channels,
                              image_size=image_size)

    structure = _probe(models, images_of(slice(0, min(2, n_stimuli))).to(device), len(classes), latents)
    summaries, n_layers = _summaries(models)
    halting = structure["halting"]
    coords = {
        "seed": np.array(seeds, dtype=np.int64),
        "stimulus_id": ids,
        "occlusion": np.array(levels),
        "step": np.arange(1, structure["steps"] + 1, dtype=np.int64),
        "class_name": ("class_index", list(classes)),
    }
    if n_layers:
        coords["layer"] = np.arange(n_layers, dtype=np.int64)
    if latents:
        widths = structure["latents"]
        coords["feature_layer"] = ("feature", np.concatenate([[name] * width for name, width in widths.items()]))
        coords["feature_unit"] = ("feature", np.concatenate([np.arange(width) for width in widths.values()]))
    readout_names = [r for r in TIME_READOUTS if halting or r not in HALTING_READOUTS]
    dataset = xr.Dataset(
        {"category": ("stimulus_id", np.asarray(stimuli["category"].values).astype(str)),
         "target_class": ("stimulus_id", targets)},
        coords=coords,
    )
    record = dict(record or {})
    dataset.attrs = {
        "brainres_kind": "model_measures",
        "model_family": str(record.get("family", "torch")),
        "pressures": dict(pressures or {}),
        "config_hash": canonical_hash(record),
        "config": record,
        "brainres_version": brainres.__version__,
        "training_data": training_data or "unknown",
        "stimulus_set": stimuli.attrs.get("dataset_id", ""),
        "occlusion_seed": int(occlusion_seed),
        "patch_size": -1 if patch_size is None else int(patch_size),
        "entropy_threshold": float(entropy_threshold),
        "image_size": -1 if image_size is None else int(image_size),
        "halting_step_readout": halting_rule(halting, entropy_threshold),
        "readouts": readout_names,
        "n_unscored": int((targets < 0).sum()),
        "training_epoch": -1 if training_epoch is None else int(training_epoch),
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
        "halted_class": (per_stimulus, "int16", "prediction at the halting step (attribute halting_step_readout)"),
        "halted_correct": (per_stimulus, bool, "halted_class equals target_class"),
    }
    if not halting:
        for name in ("halting_probability", *HALTING_READOUTS):
            del described[name]
    variables = {name: (dims, dtype, {"description": text}) for name, (dims, dtype, text) in described.items()}
    if latents:
        variables["latent"] = ((*per_step, "feature"), "float32",
                               {"description": "state of each latent layer at each step, averaged over space; "
                                               "feature_layer names the layer, feature_unit the unit within it"})

    time_name = "expected_halting_step" if halting else "entropy_threshold_step"
    correct_at_halt = np.zeros((len(seeds), len(levels)))
    time_sum = np.zeros((len(seeds), len(levels)))
    stable = np.array([stable_stimulus_index(i) for i in ids])
    chunks = range(0, n_stimuli, batch_size)
    label = dataset.attrs["stimulus_set"] or "stimuli"
    bar = None
    if progress is True and sys.stderr.isatty():  # "lines" (Dask workers, logs): no bar
        from tqdm import tqdm

        bar = tqdm(total=len(chunks), desc=f"export {label}", unit="chunk", file=sys.stderr, leave=False)
    with StreamingWriter(path, dataset, variables) as out:
        for start in chunks:
            chunk = slice(start, min(start + batch_size, n_stimuli))
            images = images_of(chunk)
            for level_index, level in enumerate(levels):
                shown = images if level == 0 else occlude(images, level=level, seed=occlusion_seed,
                                                          stimulus_index=stable[chunk], patch_size=patch_size)
                shown = shown.to(device)
                for seed_index, seed in enumerate(seeds):
                    outputs = run_model(models[seed], shown, n_classes=len(classes), latents=latents)
                    where = {"seed": seed_index, "stimulus_id": chunk, "occlusion": level_index}
                    written = _write_measures(out, where, outputs, targets[chunk], entropy_threshold)
                    correct_at_halt[seed_index, level_index] += written["halted_correct"].sum()
                    time_sum[seed_index, level_index] += written[time_name].sum()
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        # per-seed summaries are small: written in one piece at the end
        out.add("accuracy", ("seed", "occlusion"), correct_at_halt / n_stimuli,
                {"description": "fraction correct at the halting step (attribute halting_step_readout)"})
        out.add(f"mean_{time_name}", ("seed", "occlusion"), time_sum / n_stimuli,
                {"description": f"{time_name.replace('_', ' ')} averaged over stimuli"})
        out.add("n_parameters", ("seed",), [parameter_count(models[s]) for s in seeds],
                {"description": "trainable parameters"})
        for name in (sorted(summaries[seeds[0]]) if summaries[seeds[0]] else []):
            values = [summaries[s][name] for s in seeds]
            dims = ("seed", "layer") if isinstance(values[0], list) else ("seed",)
            out.add(name, dims, values, {"description": "from the model's resource_summary()"})
    return Path(path)


def _write_measures(out, where, outputs: StepOutputs, targets, entropy_threshold) -> dict:
    logits = outputs.logits.float().cpu().numpy()
    predicted = logits.argmax(axis=2)
    values = {
        "entropy": readouts.step_entropy(logits),
        "predicted_class": predicted,
        "correct": predicted == targets[:, None],
        "entropy_threshold_step": readouts.entropy_threshold_step(logits, threshold=entropy_threshold),
        "uncertainty_auc": readouts.uncertainty_auc(logits),
    }
    halting = None
    if outputs.halting_probability is not None:
        halting = outputs.halting_probability.double().cpu().numpy()
        halting /= halting.sum(axis=1, keepdims=True)  # float32 rounding must not break sum-to-one
        values["halting_probability"] = halting
        values["expected_halting_step"] = readouts.expected_halting_step(halting)
        values["median_halting_step"] = readouts.median_halting_step(halting)
    step = halting_steps(logits, halting, entropy_threshold=entropy_threshold)
    halted = predicted[np.arange(len(predicted)), step - 1]
    values["halted_class"] = halted
    values["halted_correct"] = halted == targets
    for name, value in values.items():
        out.write(name, where, value)
    if outputs.latents:
        out.write("latent", where, np.concatenate([v.float().cpu().numpy() for v in outputs.latents.values()], axis=2))
    return values
