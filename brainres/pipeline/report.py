"""The report of a run folder: results table (CSV + netCDF), methods from what ran, HTML.

Everything here is read back from the run folder: the provenance record lists
the tasks and their folders, each training folder's ``config.json`` says what
the model is and how it was trained, each export's file says how it was made.
The methods text therefore describes what ran, never a default.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from brainres.data.io import atomic_path, open_netcdf
from brainres.errors import BrainresError
from brainres.pipeline.store import load_result, results_frame
from brainres.report import write_report


class ReportError(BrainresError):
    """A folder is not a finished run, or its records are damaged."""


def _numbers(values, digits=3) -> str:
    return ", ".join("n/a" if v is None else f"{v:.{digits}f}" for v in values)


def _training_sentence(training: dict, data: str, has_halting: bool) -> str:
    levels = [level for level in training["occlusion_levels"]]
    augmentation = ("no occlusion augmentation" if levels == [0.0] else
                    f"occlusion augmentation at levels {', '.join(f'{level:g}' for level in levels)}")
    if training.get("edge_maps"):
        augmentation += (f"; each epoch {100 * training['edge_maps']:g}% of the training images (drawn at random) "
                         "shown as edge maps (one minus the Sobel gradient magnitude of their luminance)")
    if training.get("horizontal_flip"):
        augmentation += f"; each image mirrored left-right with probability {training['horizontal_flip']:g} per epoch"
    if training.get("max_shift"):
        augmentation += (f"; each image shifted by up to {training['max_shift']} pixels in y and x per epoch "
                         "(borders reflected)")
    schedule = ("" if training.get("learning_rate_schedule", "constant") == "constant"
                else ", cosine-annealed to 0 over the epochs")
    loss = ("halting-weighted cross-entropy plus "
            f"{training['step_loss_weight']:g} x the mean cross-entropy over steps" if has_halting
            else "the mean cross-entropy over steps")
    return (f"trained on the images of {data} with their category labels for {training['epochs']} epochs (Adam, "
            f"learning rate {training['learning_rate']:g}{schedule}, batch size {training['batch_size']}; loss: {loss}, plus "
            f"the model's own cost terms; {augmentation}; {100 * training['held_out_fraction']:.0f}% of the images "
            f"held out, split seed {training['split_seed']}; on {training['device']})")


def _model_paragraph(name: str, entries: list[tuple[dict, dict]]) -> str:
    from brainres.families import get_family

    stored, done = entries[0]
    record, seeds = stored["model"], [e[0]["training"]["seed"] for e in entries]
    family = get_family(record["family"])
    size = (f"resized to {record['image_size']} x {record['image_size']} pixels" if record["image_size"]
            else "at their original size")
    channels = "grey" if record["in_channels"] == 1 else f"{record['in_channels']}-channel"
    head = (f"Model '{name}': {len(seeds)} seed{'s' if len(seeds) > 1 else ''} ({', '.join(map(str, seeds))}) of "
            f"{family.describe(record)}, with {stored['n_parameters']:,} trainable parameters and "
            f"{len(record['classes'])} output classes, shown {channels} images {size}")
    if stored.get("weights"):
        files = "; ".join(f"seed {e[0]['training']['seed']}: {e[0]['weights']['file']} (SHA-256 "
                          f"{e[0]['weights']['sha256'][:12]})" for e in entries)
        return f"{head}. Weights were trained elsewhere and loaded from {files}."
    accuracies = [done.get("summary", {}).get("held_out_accuracy") for _, done in entries]
    has_halting = bool(done.get("summary", {}).get("halting"))
    return (f"{head}, were {_training_sentence(stored['training'], record['data']['ref'], has_halting)}. "
            f"Held-out accuracy at the halting step by seed: {_numbers(accuracies)}.")


def _task_model_paragraph(name: str, model: dict, variants: list[tuple[str, dict, dict]]) -> str:
    """A task family's model: the family's own description of each variant, from the recorded configs."""
    from brainres.families import get_family

    family = get_family(model["family"])
    seeds = ", ".join(map(str, model["seeds"]))
    if len(variants) == 1:
        label, config, _ = variants[0]
        return (f"Model '{name}': {len(model['seeds'])} seeds ({seeds}) of "
                f"{family.describe(family.config.from_dict(config))}.")
    base = family.config.from_dict(variants[0][1])
    differing = sorted({key for _, config, _ in variants for key, value in config.items() if base.to_dict()[key] != value})
    listed = "; ".join(f"{label}" + (f" ({', '.join(f'{k} = {v}' for k, v in tags.items())})" if tags else "")
                       for label, _, tags in variants)
    return (f"Model '{name}': {len(variants)} configurations x {len(model['seeds'])} seeds ({seeds}) of "
            f"{family.describe(base)}; the configurations differ in {', '.join(differing)}: {listed}.")


def _export_paragraph(model: str, stimuli: str, attrs: dict, occlusion, latents: bool, epochs=()) -> str:
    readouts = ", ".join(r.replace("_", " ") for r in attrs.get("readouts", []))
    kept = (f", with the weights it had at the end of training epoch{'s' if len(epochs) > 1 else ''} "
            f"{', '.join(map(str, epochs))} and at the end (epoch {attrs.get('training_epoch')}),"
            if epochs else "")
    return (f"Model '{model}' was run{kept} on every stimulus of {stimuli} at occlusion levels "
            f"{', '.join(f'{o:g}' for o in occlusion)} (gray square occluders, masks fixed by stimulus and level, "
            f"occlusion seed {attrs.get('occlusion_seed', 0)}). Per stimulus and step we recorded the entropy and the "
            f"prediction{' and the halting distribution' if 'expected_halting_step' in attrs.get('readouts', []) else ''}"
            f"{' and the latent states (averaged over space)' if latents else ''}, and derived: {readouts}. The "
            f"model's answer is its prediction at the {attrs.get('halting_step_readout', 'halting step')}.")


def _methods(provenance: dict, run_dir: Path) -> list[str]:
    tasks = provenance["tasks"]
    by_key = {t["task"]: t for t in tasks}
    paragraphs = []
    configuration = provenance["configuration"]
    for model in configuration.get("model", []):
        name = model["name"]
        variant_tasks = [t for t in tasks if t["task"].startswith(f"measures/{name}/")]
        if variant_tasks:
            variants = []
            for task in variant_tasks:
                path = run_dir / task["folder"] / "measures.nc"
                if path.exists():
                    with open_netcdf(path) as measures:
                        variants.append((measures.attrs.get("variant", ""), measures.attrs["config"],
                                         measures.attrs.get("variant_tags", {})))
            if variants:
                paragraphs.append(_task_model_paragraph(name, model, variants))
            continue
        if "measures" in model:
            info = provenance.get("models", {}).get(name, {}).get("measures") or {}
            paragraphs.append(f"Model '{name}': measures computed outside brainres, read from {model['measures']} "
                              f"(SHA-256 {str(info.get('digest', ''))[:12]}).")
            continue
        entries = []
        for seed in model["seeds"]:
            task = by_key.get(f"train/{name}/seed-{seed}")
            folder = run_dir / task["folder"] if task else None
            if folder is None or not (folder / "done.json").exists():
                continue
            entries.append((json.loads((folder / "config.json").read_text()),
                            json.loads((folder / "done.json").read_text())))
        if entries:
            paragraphs.append(_model_paragraph(name, entries))
    for export in configuration.get("export", []):
        seeds = next(m["seeds"] for m in configuration["model"] if m["name"] == export["model"])
        task = by_key.get(f"export/{export['model']}/{export['stimuli']}/seed-{seeds[0]}")
        path = run_dir / task["folder"] / "measures.nc" if task else None
        if path is None or not path.exists():
            continue
        with open_netcdf(path) as measures:
            attrs = dict(measures.attrs)
        # the epochs a run really exported: the tasks that ran, not the file's defaults
        ran = sorted(int(t["task"].split("/epoch-")[1].split("/")[0]) for t in tasks
                     if t["task"].startswith(f"export/{export['model']}/{export['stimuli']}/epoch-")
                     and t["task"].endswith(f"/seed-{seeds[0]}"))
        paragraphs.append(_export_paragraph(export["model"], export["stimuli"], attrs,
                                            export.get("occlusion", [0.0]), export.get("latents", False), ran))
    return paragraphs


def write_run_report(run_dir) -> Path:
    """(Re)write ``report.html``, ``results.csv`` and ``results.nc`` of a run folder, from what it holds."""
    run_dir = Path(run_dir)
    record = run_dir / "provenance.json"
    if not record.exists():
        raise ReportError(f"{run_dir} is not a finished brainres run (no provenance.json); run a pipeline into it "
                          "with 'brainres run PIPELINE.toml --out FOLDER'")
    try:
        provenance = json.loads(record.read_text())
        compare_folders = [run_dir / t["folder"] for t in provenance["tasks"] if t.get("kind") == "compare"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ReportError(f"{record} is damaged ({type(err).__name__}: {err})") from None
    results = [load_result(folder) for folder in compare_folders if (folder / "done.json").exists()]
    table = results_frame(results)
    with atomic_path(run_dir / "results.csv", suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)
    if results:
        from brainres.data.io import write_netcdf
        from brainres.stats.result import results_to_dataset

        stats = results_to_dataset([r for c in results for r in c.results], include_distribution=False)
        stats = stats.assign(comparison=("result", np.concatenate([[c.comparison] * len(c.results) for c in results])))
        stats.attrs["pipeline"] = provenance["pipeline"]
        write_netcdf(stats, run_dir / "results.nc")
    return write_report(run_dir / "report.html", title=f"brainres report: {provenance['pipeline']}",
                        comparisons=results, methods=_methods(provenance, run_dir), provenance=provenance)


__all__ = ["write_run_report"]
