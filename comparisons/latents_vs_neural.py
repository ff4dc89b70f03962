"""``latents-vs-neural``: do the model's latent codes, step by step, look like neural ones?

At every recurrent step, an RDM of the model's latent states (pooled per
layer; one layer or all layers concatenated) is computed per seed with
correlation distance and averaged over seeds. Each step's RDM is compared with
the subjects' neural RDMs (for ``kriegeskorte2008-92``: the four human IT
subjects, their two sessions averaged). Reported per step: the mean
comparison over subjects with a bootstrap interval over stimuli and subjects;
the leave-one-subject-out lower and upper noise ceilings; the best step.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from brainres.comparisons._common import (
    COMMON_OPTIONS,
    OCCLUSION,
    ComparisonError,
    fmt,
    require_variable,
)

from brainres.compare import AnyOf, Comparison, ComparisonResult, match_stimuli
from brainres.settings import Choice, Optional, Sequence, Text
from brainres.stats import (
    bootstrap_rdm_comparison,
    compare_over_steps,
    rdm_from_responses,
    rdm_noise_ceiling,
)
from brainres.stats.result import StatResult
from brainres.stats.rsa import COMPARE_METHODS


def subject_rdms(data: xr.Dataset, target: str) -> xr.DataArray:
    """The neural RDMs to compare with: per subject (sessions averaged), or one named RDM."""
    if target == "subjects":
        individual = data["dissimilarity"].sel(rdm=data["session"] != "all")
        if individual.sizes["rdm"] == 0:
            raise ComparisonError("the neural data have no per-subject RDMs (session != 'all')")
        return individual.groupby("subject").mean("rdm").rename(subject="rdm")
    names = [str(r) for r in data["rdm"].values]
    if target not in names:
        raise ComparisonError(f"no RDM named {target!r}; choose 'subjects' or one of {names}")
    return data["dissimilarity"].sel(rdm=[target])


def response_rdms(data: xr.Dataset, *, method: str, region: str | None, notes: list) -> xr.DataArray:
    """RDMs of neural responses: one per subject when neuroids carry a ``subject``, else one.

    Responses are averaged over repetitions and time bins first; neuroids with
    a missing response to any stimulus are left out (and the notes say how many).
    """
    response = data["response"]
    if region is not None:
        if "region" not in data.coords:
            raise ComparisonError("region was given, but the neural data have no 'region' coordinate on 'neuroid'")
        response = response.sel(neuroid=data["region"].values.astype(str) == region)
        if response.sizes["neuroid"] == 0:
            raise ComparisonError(f"no neuroid of region {region!r}; regions: {sorted(set(data['region'].values.astype(str).tolist()))}")
    averaged = [d for d in ("repetition", "time_bin") if d in response.dims]
    response = response.mean(averaged) if averaged else response
    complete = ~response.isnull().any("stimulus_id")
    if not bool(complete.all()):
        notes.append(f"{int((~complete).sum())} neuroids with a missing response were left out.")
        response = response.sel(neuroid=complete.values)
    groups = [("all", response)]
    if "subject" in response.coords and len(set(response["subject"].values.astype(str))) > 1:
        groups = [(str(name), group) for name, group in response.groupby("subject")]
    ids = response["stimulus_id"].values
    if method == "correlation":
        for name, group in groups:
            flat = np.ptp(group.transpose("stimulus_id", "neuroid").values, axis=1) == 0
            if flat.any():
                named = [str(i) for i, f in zip(ids, flat) if f]
                raise ComparisonError(
                    f"the neural responses{'' if name == 'all' else f' of subject {name!r}'} are the same in every "
                    f"neuroid for {len(named)} stimuli: {', '.join(map(repr, named[:8]))}"
                    f"{' ...' if len(named) > 8 else ''}; correlation distance is undefined there (use rdm_method = "
                    "\"euclidean\", or leave those stimuli out)")
    matrices = [rdm_from_responses(group.transpose("stimulus_id", "neuroid").values, method=method)
                for _, group in groups]
    return xr.DataArray(np.stack(matrices), dims=("rdm", "stimulus_id", "stimulus_id_2"),
                        coords={"rdm": [name for name, _ in groups], "stimulus_id": ids, "stimulus_id_2": ids})


def latent_features(model: xr.Dataset, shared, *, layer, occlusion: float) -> tuple[np.ndarray, list[str]]:
    """Latents as (seed, step, stimulus, feature) for the chosen layers, and the layers' names."""
    latent = model["latent"].sel(stimulus_id=shared)
    if "occlusion" in latent.dims:
        latent = latent.sel(occlusion=float(occlusion))
    names = list(dict.fromkeys(model["feature_layer"].values.astype(str).tolist()))
    if layer != "all":
        wanted = [layer] if isinstance(layer, str) else list(layer)
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise ComparisonError(f"no latent layer named {unknown}; layers in this export: {names}")
        latent = latent.sel(feature=np.isin(model["feature_layer"].values.astype(str), wanted))
        names = wanted
    return latent.transpose("seed", "step", "stimulus_id", "feature").values, names


def _require_varying_patterns(features: np.ndarray, shared, steps, seeds) -> None:
    """Correlation distance is undefined for a constant latent pattern: name the stimuli (by id), steps and seeds."""
    flat = np.ptp(features, axis=-1) == 0  # (seed, step, stimulus)
    if not flat.any():
        return
    ids = [str(i) for i in np.asarray(shared)]
    bad = flat.any(axis=(0, 1))
    named = [i for i, b in zip(ids, bad) if b]
    where = [f"seed {seeds[s]} step {steps[t]}" for s, t in zip(*np.nonzero(flat.any(axis=2)))]
    shown = ", ".join(repr(i) for i in named[:8]) + (f" (and {len(named) - 8} more)" if len(named) > 8 else "")
    raise ComparisonError(
        f"the model's latent pattern is the same in every feature (e.g. all zero) for {len(named)} stimuli: "
        f"{shown} ({', '.join(where[:4])}{' ...' if len(where) > 4 else ''}); "
        "correlation distance is undefined there. Use rdm_method = \"euclidean\", another layer, or leave those "
        "stimuli out")


def run(model: xr.Dataset, data: xr.Dataset, *, layer="all", target: str = "subjects", method: str = "spearman",
        rdm_method: str = "correlation", region: str | None = None, occlusion: float = 0.0,
        n_resamples: int = 10_000, seed: int = 0, ci_level: float = 0.95, intersect: bool = False) -> ComparisonResult:
    """Time-resolved RSA of model latents against neural RDMs, or against RDMs formed from neural responses.

    ``layer`` is ``"all"`` (every latent layer, concatenated), a layer name or a
    list of names; ``rdm_method`` is the dissimilarity of the model's latents
    (and of neural responses, when those are given instead of RDMs);
    ``region`` picks neuroids of one region from neural responses.
    ``n_resamples`` (10,000, as every comparison) bootstrap resamples of
    stimuli and subjects give each step's interval; the bootstrap runs once
    per step, so its cost grows with the steps (about 1 s per step per 1,000
    resamples for 92 stimuli x 10 RDMs on one core).
    """
    require_variable(model, "latent")
    shared, notes = match_stimuli(model["stimulus_id"].values, data["stimulus_id"].values, intersect=intersect,
                                  model_name="the model export", data_name=data.attrs.get("dataset_id", "the neural data"))
    features, layers = latent_features(model, shared, layer=layer, occlusion=occlusion)
    steps = [int(s) for s in model["step"].values]
    if rdm_method == "correlation":
        _require_varying_patterns(features, shared, steps, [int(s) for s in model["seed"].values])
    model_rdms = np.stack([
        np.mean([rdm_from_responses(features[s, t], method=rdm_method) for s in range(features.shape[0])], axis=0)
        for t in range(len(steps))])
    if "response" in data:
        neural_rdms = response_rdms(data, method=rdm_method, region=region, notes=notes)
        target = "subjects" if neural_rdms.sizes["rdm"] > 1 else "responses"
    else:
        neural_rdms = subject_rdms(data, target)
    neural = neural_rdms.sel(stimulus_id=shared, stimulus_id_2=shared).transpose("rdm", ...).values

    results = list(compare_over_steps(model_rdms, neural, method=method, steps=steps))
    low, high = np.empty(len(steps)), np.empty(len(steps))
    resample = ("stimulus", "rdm") if neural.shape[0] > 1 else ("stimulus",)
    for index, step in enumerate(steps):
        boot = bootstrap_rdm_comparison(model_rdms[index], neural, method=method, resample=resample,
                                        n_resamples=n_resamples, seed=seed, ci_level=ci_level)
        low[index], high[index] = boot.ci_low, boot.ci_high
        results[index] = results[index].replace(
            ci_low=boot.ci_low, ci_high=boot.ci_high, ci_level=ci_level, interval=boot.interval, method=boot.method,
            n_resamples=boot.n_resamples, seed=boot.seed, resampled=boot.resampled,
            extra={**results[index].extra, "label": f"step {step}: model latents vs {target} ({method})",
                   "estimand": (f"the mean over {'the population of subjects (RDMs)' if 'rdm' in resample else 'this RDM'}"
                                f" of the {method} comparison of this model step's RDM with a subject's RDM, over "
                                "stimulus sets of this size drawn from the population of stimuli (not corrected for "
                                "measurement noise; the noise ceiling bounds it)")})
    ceiling = {}
    if neural.shape[0] > 1:
        for bound in rdm_noise_ceiling(neural, method=method):
            ceiling[bound.statistic] = bound.estimate
            results.append(bound.replace(extra={**bound.extra, "label": f"noise ceiling ({bound.statistic})"}))
    else:
        notes.append(f"One neural RDM ({target}); no leave-one-subject-out noise ceiling.")
    estimates = np.array([r.estimate for r in results[: len(steps)]])
    best = int(np.argmax(estimates))
    lower_ceiling = next((v for k, v in ceiling.items() if "lower" in k), float("nan"))
    results[best] = results[best].replace(extra={**results[best].extra, "headline": True, "ceiling": lower_ceiling})
    results.append(StatResult(statistic=f"best_step_{method}", estimate=float(estimates[best]), n=len(shared),
                              method="largest mean comparison over steps (no interval)",
                              extra={"step": steps[best], "label": f"best step ({steps[best]})",
                                     "estimand": "the largest of the per-step values (chosen on the same data, so "
                                                 "biased upward; no interval)"}))
    attrs = {"figure": "lines", "title": f"model latents vs {target} RDMs over steps", "x_label": "model step",
             "y_label": f"RDM comparison ({method})",
             "annotation": f"best step {steps[best]}: {fmt(estimates[best])}",
             "caption": f"Bands: {ci_level:.0%} bootstrap over stimuli and subjects ({n_resamples:,} resamples); "
                        "gray: leave-one-subject-out noise ceiling (lower to upper)."}
    lower = [v for k, v in ceiling.items() if "lower" in k]
    upper = [v for k, v in ceiling.items() if "upper" in k]
    if lower and upper:
        attrs.update(ceiling_low=float(lower[0]), ceiling_high=float(upper[0]))
    figure = xr.Dataset({"y": ("x", estimates), "y_low": ("x", low), "y_high": ("x", high)},
                        coords={"x": np.array(steps, dtype=float)}, attrs=attrs)
    methods = (
        f"latents-vs-neural: at each of {len(steps)} steps the latent states (layers {', '.join(layers)}, "
        f"pooled over space) of {features.shape[0]} seeds gave {rdm_method}-distance RDMs over {len(shared)} stimuli, "
        f"averaged over seeds, and compared ({method}) with {neural.shape[0]} neural RDM(s) ({target}"
        f"{f', formed from responses with {rdm_method} distance' if 'response' in data else ''}); intervals from "
        f"{n_resamples:,} bootstrap resamples of stimuli and subjects (seed {seed}); leave-one-subject-out noise ceilings."
    )
    return ComparisonResult(comparison="latents-vs-neural", title=f"Latent dynamics vs neural RDMs ({data.attrs.get('dataset_id', '')})",
                            results=results, figures={"over_steps": figure}, methods=methods, notes=notes,
                            inputs={"n_stimuli": len(shared), "n_seeds": int(features.shape[0]), "target": target})


COMPARISON = Comparison(
    id="latents-vs-neural", description="time-resolved RSA of model latents against neural RDMs", run=run,
    data_kind=("neural_rdms", "neural_responses"), requires=lambda options: ("latent",),
    options={"layer": AnyOf(Text(), Sequence(Text(), unique=True)), "target": Text(),
             "method": Choice(*COMPARE_METHODS), "rdm_method": Choice("correlation", "euclidean", "squared_euclidean"),
             "region": Optional(Text()), "occlusion": OCCLUSION, **COMMON_OPTIONS},
)
