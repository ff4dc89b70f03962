"""``seqpar-widths``: how the width of a channel decides between a parallel and a sequential code.

The model is a seqpar width sweep (``[model.sweep] kind = "widths"``): one
autoencoder per bottleneck width ``k`` and seed. Reported per width, each as
the mean over training seeds with a Student t interval: the bits that have
arrived after step 1 and after the last step (exact ``I(X; C_1..t)``), the
sequential/parallel index against the parallel limit ``min(k, H)/H`` (the
index of a code sending ``k`` new bits a step; one-sample t against it,
Holm-adjusted over the widths), the steps to transmit all of ``H(X)``, the
bits per step while transmitting, and the area efficiency (area under the
information curve over the channel limit ``min(k t, H)``). Figures: the
information curves by width, and the index against ``k`` with the limit.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from brainres.comparisons._common import CI_LEVEL, ComparisonError
from brainres.comparisons._seqpar import curves_figure, require_seqpar, step_values, summary
from brainres.comparisons._sweeps import per_seed
from brainres.compare import Comparison, ComparisonResult
from brainres.stats import adjust_results

MEASURES = {
    "steps_to_transmit": "steps to transmit all of H(X) (within 0.05 bits)",
    "bits_per_step": "bits per step while transmitting",
    "area_efficiency": "area efficiency (information curve over the channel limit)",
}


def run(model: xr.Dataset, data: None, *, ci_level: float = 0.95) -> ComparisonResult:
    """Per-width information after steps 1 and T, the index against its parallel limit, and when all bits arrived."""
    require_seqpar(model, "seqpar-widths")
    if "bottleneck_width" not in model.coords or len(set(model["bottleneck_width"].values.tolist())) < 2:
        raise ComparisonError("seqpar-widths compares bottleneck widths: sweep kind = \"widths\" with at least two")
    labels = [str(v) for v in model["variant"].values]
    widths = np.asarray(model["bottleneck_width"].values, dtype=float)
    first, last = step_values(model, 1), step_values(model, "last")
    index, limit = per_seed(model, "sequential_parallel_index"), per_seed(model, "parallel_limit")
    target = float(np.nanmean(per_seed(model, "target_bits").values))
    n_steps = int(model["step"].values[-1])
    results, tests = [], []
    for label, width in zip(labels, widths):
        k = int(width)
        tag = {"variant": label, "bottleneck_width": k}
        results.append(summary(first.sel(variant=label).values, "bits_step_1",
                               f"k={k}: bits at step 1 (channel limit {min(k, target):g})", ci_level=ci_level,
                               extra=tag))
        results.append(summary(last.sel(variant=label).values, "bits_final",
                               f"k={k}: bits after step {n_steps} (of H = {target:g})", ci_level=ci_level, extra=tag))
        parallel = float(np.nanmean(limit.sel(variant=label).values))
        tests.append(summary(index.sel(variant=label).values, "sequential_parallel_index",
                             f"k={k}: sequential/parallel index (parallel limit {parallel:.3f}; p: index = limit)",
                             ci_level=ci_level, null=parallel, extra={**tag, "parallel_limit": parallel}))
        for name, text in MEASURES.items():
            results.append(summary(per_seed(model, name).sel(variant=label).values, name, f"k={k}: {text}",
                                   ci_level=ci_level, extra=tag))
    tests = adjust_results(tests, method="holm") if len(tests) > 1 else tests
    results += tests
    n_seeds = int(model.sizes["seed"])
    figures = {
        "information": curves_figure(
            model, labels, [f"k={int(w)}" for w in widths], ci_level=ci_level,
            title=f"information over steps by bottleneck width (H = {target:g} bits)",
            caption=f"Exact I(X; C_1..t), mean over {n_seeds} seeds; band: {ci_level:.0%} Student t interval over "
                    "seeds. A parallel code has all bits at step 1; an ideal sequential one k more bits each step.",
            annotation=f"channel limit: min(k t, {target:g}) bits"),
        "index": _index_figure(tests, widths, ci_level=ci_level, n_seeds=n_seeds),
    }
    methods = (f"seqpar-widths: {len(labels)} bottleneck widths (k = {', '.join(str(int(w)) for w in widths)}) were "
               f"each trained with {n_seeds} seeds. The information the deterministic codes carry about the input "
               f"after each of {n_steps} steps is exact (enumeration of all inputs). Per width, the bits after step 1 "
               f"and step {n_steps}, the sequential/parallel index (bits at step 1 over final bits), the steps to "
               "transmit H(X), the bits per step and the area efficiency are averaged over seeds with a Student t "
               f"interval ({ci_level:.0%}); the index is tested against its parallel limit min(k, H)/H (one-sample t, "
               "Holm-adjusted over the widths). Seeds that never transmit H(X) are left out of the steps-to-transmit "
               "summary and counted in its label.")
    configs = model.attrs.get("variant_configs", {}).values()
    notes = ["Without feedback the encoder sees the same input at every step, so its deterministic code repeats "
             "and no information can arrive after step 1."] if any(c.get("feedback") is False for c in configs) else []
    return ComparisonResult(comparison="seqpar-widths", title="seqpar: parallel at k >= D, about k bits a step below",
                            results=results, figures=figures, methods=methods, notes=notes,
                            inputs={"n_variants": len(labels), "n_seeds": n_seeds, "target_bits": target})


def _index_figure(tests, widths, *, ci_level: float, n_seeds: int) -> xr.Dataset:
    limits = np.array([r.extra["parallel_limit"] for r in tests])
    mean = np.array([r.estimate for r in tests])
    low = np.where(np.isfinite([r.ci_low for r in tests]), [r.ci_low for r in tests], mean)
    high = np.where(np.isfinite([r.ci_high for r in tests]), [r.ci_high for r in tests], mean)
    return xr.Dataset(
        {"y": (("series", "x"), np.stack([mean, limits])), "y_low": (("series", "x"), np.stack([low, limits])),
         "y_high": (("series", "x"), np.stack([high, limits]))},
        coords={"series": np.array(["mean over seeds", "parallel limit min(k, H)/H"]), "x": widths},
        attrs={"figure": "lines", "title": "sequential/parallel index by bottleneck width", "x_label":
               "bottleneck width k", "y_label": "bits at step 1 / final bits",
               "caption": f"Mean over {n_seeds} seeds; band: {ci_level:.0%} Student t interval over seeds. 1 = "
                          "parallel; the limit is the index of a code sending k new bits a step."})


COMPARISON = Comparison(id="seqpar-widths", description="seqpar: when the information arrives, by bottleneck width",
                        run=run, data_kind=None, model_kinds=("task",), families=("seqpar",),
                        options={"ci_level": CI_LEVEL})
