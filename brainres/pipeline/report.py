"""The report of a run folder: results table (CSV + netCDF), methods from what ran, HTML."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from brainres.data.io import atomic_path, atomic_write_text
from brainres.pipeline.config import parse_pipeline
from brainres.pipeline.store import load_result, results_frame
from brainres.pipeline.tasks import build_tasks
from brainres.report import write_report


def _methods(pipeline, tasks) -> list[str]:
    done = {t.key: json.loads(t.done_path.read_text()) for t in tasks if t.done_path.exists()}
    paragraphs = []
    for model in pipeline.models:
        from brainres.models.lattice import LatticeConfig
        from brainres.train import TrainConfig

        lattice = LatticeConfig(**{k: v for k, v in model.lattice.items() if k not in ("in_channels", "n_classes")})
        training = TrainConfig(model=lattice, **model.training)
        accuracies = [done.get(f"train/{model.name}/seed-{s}", {}).get("summary", {}).get("held_out_accuracy")
                      for s in model.seeds]
        accuracy_text = ", ".join("n/a" if a is None else f"{a:.3f}" for a in accuracies)
        size = f"resized to {model.image_size} x {model.image_size} pixels" if model.image_size else "at their original size"
        paragraphs.append(
            f"Model '{model.name}': {len(model.seeds)} seeds ({', '.join(map(str, model.seeds))}) of the "
            f"breadth-depth-time lattice (at most {lattice.max_channels} channels, {lattice.max_layers} layers and "
            f"{lattice.max_steps} recurrent steps; pressures lambda_breadth = {lattice.lambda_breadth}, "
            f"lambda_depth = {lattice.lambda_depth}, lambda_time = {lattice.lambda_time}; {lattice.halting} halting "
            f"with a geometric prior of {lattice.halting_prior}) were trained on the images of {model.data} "
            f"{size}, with their category labels, for {training.epochs} epochs (Adam, learning rate "
            f"{training.learning_rate}, batch size {training.batch_size}; occlusion augmentation at levels "
            f"{', '.join(map(str, training.occlusion_levels))}; {100 * training.held_out_fraction:.0f}% of the "
            f"images held out, split seed {training.split_seed}). Held-out accuracy at the median halting step "
            f"by seed: {accuracy_text}."
        )
    for export in pipeline.exports:
        paragraphs.append(
            f"Model '{export.model}' was run on every stimulus of {export.stimuli} at occlusion levels "
            f"{', '.join(map(str, export.occlusion))} (gray square occluders, masks fixed by stimulus and level, "
            "occlusion seed 0); per stimulus and step we recorded the halting distribution, entropy and prediction, "
            "and derived the expected, median and entropy-threshold halting steps and the area under the "
            "uncertainty curve."
        )
    return paragraphs


def write_run_report(run_dir, *, pipeline=None, tasks=None) -> Path:
    """(Re)write ``report.html``, ``results.csv`` and ``results.nc`` of a run folder."""
    run_dir = Path(run_dir)
    provenance = json.loads((run_dir / "provenance.json").read_text())
    if pipeline is None:
        pipeline = parse_pipeline(provenance["configuration"], source=provenance.get("pipeline_file", "pipeline"))
    if tasks is None:
        tasks = build_tasks(pipeline, run_dir)
    results = [load_result(t.folder) for t in tasks if t.kind == "compare" and t.is_done()]
    table = results_frame(results)
    with atomic_path(run_dir / "results.csv", suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)
    if results:
        from brainres.data.io import write_netcdf
        from brainres.stats.result import results_to_dataset

        stats = results_to_dataset([r for c in results for r in c.results], include_distribution=False)
        stats = stats.assign(comparison=("result", np.concatenate([[c.comparison] * len(c.results) for c in results])))
        stats.attrs["pipeline"] = pipeline.name
        write_netcdf(stats, run_dir / "results.nc")
    return write_report(run_dir / "report.html", title=f"brainres report: {pipeline.name}", comparisons=results,
                        methods=_methods(pipeline, tasks), provenance=provenance)


__all__ = ["write_run_report"]
