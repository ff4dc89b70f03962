"""A finished run, opened for reading: its results, figures and provenance, and a notebook view.

>>> run = brainres.open_run("runs/demo")          # doctest: +SKIP
>>> run                                            # in Jupyter: the summary table, then every comparison
>>> run.results                                    # one row per estimate (the report's results.csv)
>>> run.comparisons[0]                             # one comparison: figures, sentences, table
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from brainres.pipeline.report import ReportError


class Run:
    """A finished run folder: ``results`` (tidy table), ``comparisons`` (each with figures), ``provenance``."""

    def __init__(self, run_dir):
        from brainres.pipeline.store import load_result

        self.path = Path(run_dir)
        record = self.path / "provenance.json"
        if not record.exists():
            raise ReportError(f"{self.path} is not a finished brainres run (no provenance.json)")
        self.provenance = json.loads(record.read_text())
        folders = [self.path / t["folder"] for t in self.provenance["tasks"] if t.get("kind") == "compare"]
        self.comparisons = [load_result(folder) for folder in folders if (folder / "done.json").exists()]

    @property
    def name(self) -> str:
        return self.provenance["pipeline"]

    @property
    def results(self) -> pd.DataFrame:
        """Every estimate of every comparison, one row each (as ``results.csv``)."""
        tables = [c.table() for c in self.comparisons]
        return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()

    def summary(self) -> pd.DataFrame:
        """The findings the report leads with: one row per headline estimate."""
        from brainres.report.html import heading, headline_results

        rows = [{"comparison": heading(c), "finding": r.extra.get("label", r.statistic), "estimate": r.estimate,
                 "ci_low": r.ci_low, "ci_high": r.ci_high, "ceiling": r.extra.get("ceiling"), "n": r.n,
                 "n_unit": r.extra.get("n_unit", "")} for c in self.comparisons for r in headline_results(c)]
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}: {self.name}, {len(self.comparisons)} comparisons)"

    def _repr_html_(self) -> str:
        from brainres.report.html import comparison_section, summary_table

        parts = [f"<h3>brainres run: {self.name}</h3>", summary_table(self.comparisons)]
        parts += [comparison_section(c, i) for i, c in enumerate(self.comparisons)]
        return "\n".join(parts)


def open_run(run_dir) -> Run:
    """Open a finished run folder for reading (and for display in a notebook)."""
    return Run(run_dir)
