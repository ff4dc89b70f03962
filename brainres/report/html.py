"""The self-contained HTML report of a run: figures embedded, tables, sentences, methods, provenance."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from brainres.data.io import atomic_write_text
from brainres.report.figures import draw
from brainres.report.text import apa_sentence

STYLE = """
body { font-family: Georgia, serif; max-width: 60rem; margin: 2rem auto; color: #222; line-height: 1.45; }
h1, h2, h3 { font-family: Helvetica, Arial, sans-serif; }
table { border-collapse: collapse; font-size: 0.8rem; margin: 0.5rem 0 1rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.2rem 0.5rem; text-align: right; vertical-align: top; }
td:first-child { min-width: 16rem; }
.table { overflow-x: auto; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 0.5rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
.note { background: #fff6dd; padding: 0.4rem 0.7rem; border-left: 3px solid #e0b000; }
pre { background: #f6f6f6; padding: 0.6rem; overflow-x: auto; font-size: 0.75rem; }
"""

TABLE_COLUMNS = ("label", "statistic", "estimate", "ci_low", "ci_high", "interval", "p_value", "n", "n_resamples",
                 "seed", "resampled")


def _table(result) -> str:
    table = result.table()
    columns = [c for c in TABLE_COLUMNS if c in table.columns] + [
        c for c in table.columns if c not in TABLE_COLUMNS + ("comparison", "ci_level", "method")]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    rows = []
    for _, row in table.iterrows():
        cells = []
        for column in columns:
            value = row[column]
            if isinstance(value, float):
                value = "" if value != value else f"{value:.4g}"
            cells.append(f"<td>{html.escape(str(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<div class='table'><table><tr>{head}</tr>{''.join(rows)}</table></div>"


def _unit(result) -> str:
    """What ``n`` counts: stated by the comparison, else trials for mixed models, else stimuli."""
    if "n_unit" in result.extra:
        return str(result.extra["n_unit"])
    return "trials" if result.statistic.startswith("mixed_model") else "stimuli"


def _figure(name, figure) -> str:
    png = base64.b64encode(draw(figure)).decode("ascii")
    caption = html.escape(figure.attrs.get("caption", name))
    return (f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{png}">'
            f"<figcaption>{caption}</figcaption></figure>")


def render_report(*, title: str, comparisons, methods: list[str], provenance: dict) -> str:
    """The report as one HTML string (figures embedded as base64 PNG)."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts.append("<h2>Results</h2>")
    for result in comparisons:
        parts.append(f"<h3>{html.escape(result.title)}</h3>")
        for note in result.notes:
            parts.append(f"<p class='note'>{html.escape(note)}</p>")
        for name, figure in result.figures.items():
            parts.append(_figure(name, figure))
        sentences = [f"<li>{html.escape(r.extra.get('label', r.statistic))}: {apa_sentence(r, unit=_unit(r))}</li>"
                     for r in result.results]
        parts.append(f"<ul>{''.join(sentences)}</ul>")
        parts.append(_table(result))
    parts.append("<h2>Methods</h2>")
    parts.extend(f"<p>{html.escape(paragraph)}</p>" for paragraph in methods)
    parts.extend(f"<p>{html.escape(r.methods)}</p>" for r in comparisons if r.methods)
    parts.append("<h2>Provenance</h2>")
    parts.append(f"<pre>{html.escape(json.dumps(provenance, indent=2, default=str))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(path, **content) -> Path:
    """Render and write the report atomically; returns its path."""
    return atomic_write_text(path, render_report(**content))
