"""What plasticity runs did, as a ``model_measures`` dataset: held-out behaviour, trajectories, every unit."""

from __future__ import annotations

import numpy as np
import xarray as xr

import brainres
from brainres.data.schema import validate
from brainres.families.base import runs_to_measure
from brainres.families.plasticity.data import PlasticityFamilyError

FAMILY = "plasticity"


def measure(config, runs) -> xr.Dataset:
    """The runs (one per seed) of one configuration as a validated ``model_measures`` dataset.

    Parameters
    ----------
    config : PlasticityConfig
    runs : sequence of TaskRun
        Finished results of :func:`brainres.families.plasticity.train` (or ``load``) for ``config``.

    Returns
    -------
    xarray.Dataset
        Variables are listed in ``docs/plasticity.md``.
    """
    runs = runs_to_measure(config, runs, PlasticityFamilyError)
    seeds = [run.seed for run in runs]
    for run in runs:
        if "final_accuracy" not in run.extras:
            raise PlasticityFamilyError(f"the run of seed {run.seed} is unfinished; train it to the end first")
    per_seed = [_seed_dataset(config, run.extras) for run in runs]
    # Units differ between seeds only when continual backprop replaced them; missing ones are NaN.
    ds = xr.concat(per_seed, dim="seed", join="outer")
    ds = ds.assign_coords(seed=np.asarray(seeds, dtype=np.int64), step=np.array([1], dtype=np.int64))
    sequence = ("" if config.task_sequence == "none" else
                f"; {config.n_tasks} {config.task_sequence} tasks switching every {config.task_switch_every} steps")
    ds.attrs = {
        "brainres_kind": "model_measures",
        "model_family": FAMILY,
        "pressures": config.pressures(),
        "config_hash": config.config_hash(),
        "config": config.to_dict(),
        "brainres_version": brainres.__version__,
        "training_data": f"{config.task} (train split, split_seed={config.split_seed}, "
                         f"held_out_fraction={config.held_out_fraction}){sequence}; data order seeded by the "
                         "training seed",
    }
    return validate(ds, "model_measures")


def _seed_dataset(config, run: dict) -> xr.Dataset:
    ids = run["held_out_ids"]
    data_vars = {
        "correct": (("stimulus_id", "step"), run["held_out_correct"][:, None]),
        "predicted_class": (("stimulus_id", "step"), run["held_out_predicted"].astype(np.int64)[:, None]),
        "final_accuracy": ((), run["final_accuracy"]),
        "trajectory_accuracy": ((), run["trajectory_accuracy"]),
        "mean_parameters": ((), run["mean_parameters"]),
        "final_width": (("hidden_layer",), np.asarray(run["final_widths"], dtype=np.int64)),
    }
    if "retrained_accuracy" in run:
        data_vars["retrained_correct"] = (("stimulus_id",), run["retrained_correct"])
        data_vars["retrained_accuracy"] = ((), run["retrained_accuracy"])
    evaluations = run["evaluations"]
    data_vars["held_out_accuracy"] = (("eval_step",), evaluations["held_out_accuracy"].to_numpy())
    coords = {"stimulus_id": ids, "hidden_layer": np.arange(len(run["final_widths"])),
              "eval_step": evaluations["step"].to_numpy()}
    ds = xr.Dataset(data_vars, coords=coords)
    if config.task_sequence != "none":
        ds = ds.merge(_task_variables(config, run))

    ratio = run["gradient_ratio"]
    if len(ratio):
        grid = ratio.set_index(["insertion", "layer", "steps_since_insertion"])["gradient_ratio"].to_xarray()
        # "insertion" along variant is the insertion method (a pressure); the event index gets its own name.
        grid = grid.rename(layer="hidden_layer", insertion="insertion_event").reindex(
            hidden_layer=ds["hidden_layer"].values,
            steps_since_insertion=np.arange(config.ratio_window),
        )
        ds["gradient_ratio"] = grid

    units = run["units"].copy()
    units["unit_name"] = [f"layer{layer}-unit{unit:04d}" for layer, unit in zip(units["layer"], units["unit"])]
    table = units.set_index(["unit_name", "step"])
    for column, name in (("mean_activation", "unit_mean_activation"), ("activation_std", "unit_activation_std"),
                         ("incoming_gradient_norm", "unit_gradient_norm"), ("utility", "unit_utility")):
        ds[name] = table[column].to_xarray().rename(unit_name="unit", step="track_step")
    lifetimes = run["unit_lifetimes"].copy()
    lifetimes["unit_name"] = [f"layer{la}-unit{u:04d}" for la, u in zip(lifetimes["layer"], lifetimes["unit"])]
    lifetimes = lifetimes.set_index("unit_name").reindex(ds["unit"].values)
    ds["unit_birth_step"] = (("unit",), lifetimes["birth_step"].to_numpy(dtype=float))
    ds["unit_removal_step"] = (("unit",), lifetimes["removal_step"].to_numpy(dtype=float))
    ds = ds.assign_coords(unit_layer=("unit", lifetimes["layer"].to_numpy(dtype=np.int64)))
    return ds


def _task_variables(config, run: dict) -> xr.Dataset:
    """Per task: accuracy at every evaluation, at the end of its block, and at the end of training."""
    table = run["task_evaluations"]
    grid = table.set_index(["step", "task"])["accuracy"].to_xarray().rename(step="eval_step")
    current = table.groupby("step")["current"].first().to_numpy()
    at_current = grid.isel(task=xr.DataArray(current, dims="eval_step"))
    end = run["task_end"].set_index("task")["accuracy"].reindex(np.arange(config.n_tasks))
    last = grid.isel(eval_step=-1)
    return xr.Dataset({
        "task_accuracy": grid,
        "current_task_accuracy": at_current.drop_vars("task"),
        "final_task_accuracy": last.drop_vars("eval_step"),
        "end_of_task_accuracy": (("task",), end.to_numpy(dtype=float)),
        # Plasticity: how well each new task is learnt by the end of its own block, averaged over tasks.
        "mean_end_of_task_accuracy": ((), float(np.nanmean(end.to_numpy(dtype=float)))),
        "current_task_trajectory_accuracy": ((), float(at_current.mean())),
    }, coords={"eval_step": grid["eval_step"].values, "task": np.arange(config.n_tasks, dtype=np.int64)})
