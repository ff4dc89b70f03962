"""Figures drawn from the data a comparison returns.

Three kinds cover every comparison:

``scatter``
    variables ``x``, ``y`` along ``point``; optional ``x_low``/``x_high`` and
    ``y_low``/``y_high`` error bars; attrs ``x_label``, ``y_label``, ``title``,
    ``annotation`` (text in the corner, e.g. the correlation and its ceiling).
``lines``
    variable ``y`` along ``x`` (optionally also ``series``), optional
    ``y_low``/``y_high`` bands; attrs ``ceiling_low``/``ceiling_high`` shade a
    horizontal noise-ceiling band; labels as above.
``bars``
    variable ``y`` along one categorical dimension (e.g. ``model``), optional
    ``y_low``/``y_high`` whiskers and a ceiling band, as in rsatoolbox's
    model-comparison plot.
"""

from __future__ import annotations

import io

import numpy as np
import xarray as xr


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # SVG text stays text (searchable, small) and the same figure gives the same bytes.
    matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "brainres"})
    return plt


def draw(figure: xr.Dataset, format: str = "png") -> bytes:
    """Render one figure dataset to PNG (or SVG) bytes.

    The annotation (the estimate and its interval) is set below the axes, so
    neither the data nor the legend can hide it.
    """
    kind = figure.attrs.get("figure")
    if kind not in DRAWERS:
        raise ValueError(f"unknown figure kind {kind!r}; kinds are {sorted(DRAWERS)}")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    try:
        DRAWERS[kind](ax, figure)
        ax.set_xlabel(figure.attrs.get("x_label", ""))
        ax.set_ylabel(figure.attrs.get("y_label", ""))
        ax.set_title(figure.attrs.get("title", ""), fontsize=10)
        fig.tight_layout()
        if figure.attrs.get("annotation"):
            ax.annotate(figure.attrs["annotation"], xy=(0, -0.18), xycoords="axes fraction", va="top", fontsize=8)
        buffer = io.BytesIO()
        fig.savefig(buffer, format=format, dpi=100, bbox_inches="tight", metadata={"Date": None}
                    if format == "svg" else None)
        return buffer.getvalue()
    finally:
        plt.close(fig)


def figure_table(figure: xr.Dataset):
    """The data a figure is drawn from, as a tidy table (the CSV beside it in the report)."""
    table = figure.drop_attrs().to_dataframe().reset_index() if figure.data_vars else None
    if table is None:
        import pandas as pd

        return pd.DataFrame()
    return table


def _scatter(ax, figure):
    x, y = figure["x"].values, figure["y"].values
    xerr = yerr = None
    if "x_low" in figure:
        xerr = np.abs(np.vstack([x - figure["x_low"].values, figure["x_high"].values - x]))
    if "y_low" in figure:
        yerr = np.abs(np.vstack([y - figure["y_low"].values, figure["y_high"].values - y]))
    if xerr is not None or yerr is not None:
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor="0.75", elinewidth=0.6, zorder=1)
    ax.scatter(x, y, s=14, color="tab:blue", alpha=0.8, zorder=2)
    ok = ~(np.isnan(x) | np.isnan(y))
    if ok.sum() > 2 and np.ptp(x[ok]) > 0:
        slope, intercept = np.polyfit(x[ok], y[ok], 1)
        grid = np.linspace(x[ok].min(), x[ok].max(), 2)
        ax.plot(grid, slope * grid + intercept, color="tab:red", lw=1)


def _lines(ax, figure):
    y = figure["y"]
    x = figure["x"].values
    if "series" in y.dims:
        series = [str(s) for s in figure["series"].values]
    else:
        series = [None]
    colors = _pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(series):
        pick = (lambda v: v.sel(series=figure["series"].values[i])) if name is not None else (lambda v: v)
        color = colors[i % len(colors)]
        ax.plot(x, pick(y).values, marker="o", ms=3, color=color, label=name)
        if "y_low" in figure:
            ax.fill_between(x, pick(figure["y_low"]).values, pick(figure["y_high"]).values, color=color, alpha=0.2)
    if "ceiling_low" in figure.attrs:
        ax.axhspan(figure.attrs["ceiling_low"], figure.attrs["ceiling_high"], color="0.6", alpha=0.3,
                   label="noise ceiling")
    if figure.attrs.get("x_scale") == "log":
        ax.set_xscale("log")
    if len(series) > 1 or "ceiling_low" in figure.attrs:
        ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))


def _bars(ax, figure):
    """One bar per category (``y`` along its one dimension) with interval whiskers and a ceiling band."""
    dim = figure["y"].dims[0]
    labels = [str(v) for v in figure[dim].values]
    x = np.arange(len(labels))
    y = figure["y"].values
    if "ceiling_low" in figure.attrs:
        ax.axhspan(figure.attrs["ceiling_low"], figure.attrs["ceiling_high"], color="0.6", alpha=0.3,
                   label="noise ceiling")
    yerr = None
    if "y_low" in figure:
        yerr = np.abs(np.vstack([y - figure["y_low"].values, figure["y_high"].values - y]))
    ax.bar(x, y, color="tab:blue", alpha=0.8, yerr=yerr, capsize=4, ecolor="0.2")
    ax.axhline(0, color="0.3", lw=0.6)
    ax.set_xticks(x, labels, rotation=20 if max(map(len, labels)) > 8 else 0, ha="right" if max(map(len, labels)) > 8
                  else "center")
    if "ceiling_low" in figure.attrs:
        ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))


def _path(ax, figure):
    """Points joined in order (e.g. training epochs), each labelled, with x and y interval bars."""
    x, y = figure["x"].values, figure["y"].values
    xerr = np.abs(np.vstack([x - figure["x_low"].values, figure["x_high"].values - x])) if "x_low" in figure else None
    yerr = np.abs(np.vstack([y - figure["y_low"].values, figure["y_high"].values - y])) if "y_low" in figure else None
    if "ceiling_low" in figure.attrs:
        ax.axhspan(figure.attrs["ceiling_low"], figure.attrs["ceiling_high"], color="0.6", alpha=0.3,
                   label="noise ceiling")
    if "chance" in figure.attrs:
        ax.axvline(figure.attrs["chance"], color="0.3", lw=0.8, ls="--", label="chance")
    ax.axhline(0, color="0.3", lw=0.6)
    ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="-o", ms=4, color="tab:blue", ecolor="0.6", elinewidth=0.8,
                capsize=2, zorder=2)
    if "point_label" in figure:
        for xi, yi, label in zip(x, y, figure["point_label"].values):
            ax.annotate(str(label), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))


DRAWERS = {"scatter": _scatter, "lines": _lines, "bars": _bars, "path": _path}
