"""Plain-language summaries of datasets (for ``brainres datasets info``)."""

from __future__ import annotations

import numpy as np
import xarray as xr


def describe(ds: xr.Dataset) -> dict:
    """A dict of the facts a scientist checks first, by data-model kind."""
    kind = ds.attrs.get("brainres_kind", "unknown")
    facts = {"dataset_id": ds.attrs.get("dataset_id", ""), "kind": kind}
    if kind == "human_trials":
        rt = ds["rt"].values
        valid = rt[~np.isnan(rt)]
        per_stimulus = ds["stimulus_id"].to_series().value_counts()
        facts.update(
            subjects=int(np.unique(ds["subject"].values.astype(str)).size),
            trials=int(ds.sizes["trial"]),
            stimuli=int(per_stimulus.size),
            trials_per_stimulus=f"{per_stimulus.min()}-{per_stimulus.max()}",
            missed_responses=int(np.isnan(rt).sum()),
            accuracy=round(float(ds["correct"].values[~np.isnan(rt)].mean()), 4),
        )
        if valid.size:
            q1, median, q3 = np.percentile(valid, [25, 50, 75])
            facts["rt_seconds"] = {
                "mean": round(float(valid.mean()), 4), "sd": round(float(valid.std(ddof=1)), 4),
                "median": round(float(median), 4), "iqr": [round(float(q1), 4), round(float(q3), 4)],
                "min": round(float(valid.min()), 4), "max": round(float(valid.max()), 4),
            }
        facts["exclusions"] = ds.attrs.get("exclusions", [])
    else:
        facts["dims"] = {str(k): int(v) for k, v in ds.sizes.items()}
        facts["variables"] = sorted(map(str, ds.data_vars))
        if "rdm" in ds.dims:
            facts["rdms"] = [str(r) for r in ds["rdm"].values]
        if "category" in ds:
            facts["categories"] = int(np.unique(ds["category"].values.astype(str)).size)
    facts["license"] = ds.attrs.get("license", "")
    facts["citation"] = ds.attrs.get("citation", "")
    facts["source"] = ds.attrs.get("source", "")
    return facts
