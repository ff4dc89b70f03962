"""The self-contained HTML report of a run: findings first, then each comparison, methods, provenance.

One file that works opened from disk, offline: figures are inline SVG, and the
data behind each figure and each results table is a CSV download embedded in
the page. The page starts with a summary table (one row per headline estimate,
with its interval, ceiling, n and any warning), then one section per
comparison whose heading names the comparison, model, readout and data.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from brainres.data.io import atomic_write_text
from brainres.report.figures import draw, figure_table
from brainres.report.text import apa_sentence, number

STYLE = """
body { font-family: Georgia, serif; max-width: 62rem; margin: 1.5rem auto; padding: 0 1rem; color: #222;
       line-height: 1.45; }
h1, h2, h3 { font-family: Helvetica, Arial, sans-serif; }
h3 { border-top: 1px solid #ddd; padding-top: 1rem; }
table { border-collapse: collapse; font-size: 0.78rem; margin: 0.5rem 0 1rem; width: 100%; table-layout: auto; }
th, td { border-bottom: 1px solid #ddd; padding: 0.2rem 0.4rem; text-align: right; vertical-align: top;
         white-space: nowrap; }
th:first-child, td:first-child, table.summary th:last-child { text-align: left; }
td.label { text-align: left; white-space: normal; overflow-wrap: anywhere; width: 60%; }
td.warning { text-align: left; white-space: normal; min-width: 10rem; width: 30%; }
table.summary td.label { width: 45%; }
figure { margin: 0.5rem 0; max-width: 34rem; } figure svg { width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85rem; color: #444; }
.note { background: #fff6dd; padding: 0.4rem 0.7rem; border-left: 3px solid #e0b000; }
.warning { color: #8a4b00; }
.download { font-size: 0.8rem; }
pre { background: #f6f6f6; padding: 0.6rem; overflow-x: auto; font-size: 0.72rem; }
@media (max-width: 900px) { .optional { display: none; } }
"""

# Results-table columns, in order; `optional` ones are hidden on narrow screens (they stay in the CSV).
COLUMNS = (("label", "result", False), ("estimate", "estimate", False), ("ci", "95% CI", False),
           ("p_value", "p", False), ("n", "n", False), ("interval", "method", True), ("n_resamples", "resamples", True),
           ("resampled", "resampled", True), ("seed", "seed", True), ("warning", "warning", False))


def _csv_link(frame, filename: str, text: str) -> str:
    data = base64.b64encode(frame.to_csv(index=False).encode()).decode("ascii")
    return (f'<a class="download" download="{html.escape(filename)}" '
            f'href="data:text/csv;base64,{data}">{html.escape(text)}</a>')


def _unit(result) -> str:
    """What ``n`` counts: stated by the comparison, else trials for mixed models, else stimuli."""
    if "n_unit" in result.extra:
        return str(result.extra["n_unit"])
    return "trials" if result.statistic.startswith("mixed_model") else "stimuli"


def _interval(result) -> str:
    if result.ci_low != result.ci_low:  # NaN: no interval
        return ""
    return f"[{number(result.ci_low)}, {number(result.ci_high)}]"


def heading(comparison) -> str:
    """A heading that names the comparison, the model, its readout and the data."""
    inputs = comparison.inputs
    parts = [comparison.comparison]
    if inputs.get("models"):
        names = [f"'{name}'" for name in inputs["models"]]
        parts.append("models " + (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]))
    if inputs.get("model"):
        model = f"model '{inputs['model']}'"
        if inputs.get("stimuli"):
            model += f" on {inputs['stimuli']}"
        parts.append(model)
    if inputs.get("readout"):
        parts.append(f"readout {str(inputs['readout']).replace('_', ' ')}")
    if inputs.get("measure"):
        parts.append(f"measure {str(inputs['measure']).replace('_', ' ')}")
    if inputs.get("data"):
        parts.append(f"vs {inputs['data']}")
    return ": ".join(parts[:1]) + (" — " + ", ".join(parts[1:]) if len(parts) > 1 else "")


def headline_results(comparison) -> list:
    """The results a comparison marks as its findings (``extra["headline"]``), else its first one."""
    marked = [r for r in comparison.results if r.extra.get("headline")]
    return marked or comparison.results[:1]


def _summary(comparisons) -> str:
    rows = []
    for comparison in comparisons:
        for result in headline_results(comparison):
            ceiling = result.extra.get("ceiling")
            ceiling = "" if ceiling is None or ceiling != ceiling else number(float(ceiling))
            rows.append(
                f"<tr><td class='label'>{html.escape(heading(comparison))}<br><small>"
                f"{html.escape(str(result.extra.get('label', result.statistic)))}</small></td>"
                f"<td>{number(result.estimate)}</td><td>{_interval(result)}</td><td>{ceiling}</td>"
                f"<td>{result.n or ''} {html.escape(_unit(result)) if result.n else ''}</td>"
                f"<td class='warning'>{html.escape(str(result.extra.get('warning') or ''))}</td></tr>")
    return ("<table class='summary'><tr><th>finding</th><th>estimate</th><th>95% CI</th><th>ceiling</th><th>n</th>"
            f"<th>warnings</th></tr>{''.join(rows)}</table>")


def _table(comparison, index: int) -> str:
    head = "".join(f"<th class='{'optional' if optional else ''}'>{html.escape(title)}</th>"
                   for _, title, optional in COLUMNS)
    rows, previous_warning = [], ""
    for result in comparison.results:
        cells = []
        for key, _, optional in COLUMNS:
            if key == "warning":
                # beside every row it applies to; in full once, then "as above" (the same text on every row of a
                # comparison would bury the table)
                warning = str(result.extra.get("warning") or "")
                value = "as above" if warning and warning == previous_warning else warning
                previous_warning = warning
            elif key == "label":
                value = result.extra.get("label", result.statistic)
            elif key == "estimate":
                value = number(result.estimate)
            elif key == "ci":
                value = _interval(result)
            elif key == "p_value":
                value = "" if result.p_value != result.p_value else number(result.p_value, bounded=True, digits=3)
            elif key == "resampled":
                value = "+".join(result.resampled)
            elif key == "n_resamples":
                value = f"{result.n_resamples:,}" if result.n_resamples else ""
            else:
                value = getattr(result, key)
                value = "" if value is None else value
            css = key if key in ("label", "warning") else ("optional" if optional else "")
            cells.append(f"<td class='{css}'>{html.escape(str(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    link = _csv_link(comparison.table(), f"{comparison.comparison}-{index}-results.csv",
                     "download every column (CSV)")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table><p>{link}</p>"


def _figure(name: str, figure, filename: str) -> str:
    svg = draw(figure, format="svg").decode("utf-8")
    svg = svg[svg.index("<svg"):]  # drop the XML prologue: the SVG is inline
    caption = html.escape(figure.attrs.get("caption", name))
    link = _csv_link(figure_table(figure), filename, "figure data (CSV)")
    return f"<figure>{svg}<figcaption>{caption} {link}</figcaption></figure>"


def comparison_section(comparison, index: int) -> str:
    """One comparison's section: heading, notes, figures, sentences, results table (also its notebook view)."""
    parts = [f"<h3 id='comparison-{index}'>{html.escape(heading(comparison))}</h3>",
             f"<p><em>{html.escape(comparison.title)}</em></p>"]
    parts += [f"<p class='note'>{html.escape(note)}</p>" for note in comparison.notes]
    parts += [_figure(name, figure, f"{comparison.comparison}-{index}-{name}.csv")
              for name, figure in comparison.figures.items()]
    sentences = [f"<li class='warning'>not estimable: {html.escape(str(r.extra['not_estimable']))}</li>"
                 if r.extra.get("not_estimable") else
                 f"<li>{html.escape(str(r.extra.get('label', r.statistic)))}: {apa_sentence(r, unit=_unit(r))}"
                 + (f" <small>Estimand: {html.escape(str(r.extra['estimand']))}.</small>" if r.extra.get("estimand")
                    else "") + "</li>"
                 for r in comparison.results]
    parts.append(f"<ul>{''.join(sentences)}</ul>")
    parts.append(_table(comparison, index))
    return "\n".join(parts)


def summary_table(comparisons) -> str:
    """The findings table the report starts with (also a run's notebook view)."""
    return _summary(comparisons)


def render_report(*, title: str, comparisons, methods: list[str], provenance: dict) -> str:
    """The report as one HTML string."""
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    if comparisons:
        parts.append("<h2>Summary</h2>")
        parts.append(_summary(comparisons))
    parts.append("<h2>Results</h2>")
    parts += [comparison_section(comparison, index) for index, comparison in enumerate(comparisons)]
    parts.append("<h2>Methods</h2>")
    parts.extend(f"<p>{html.escape(paragraph)}</p>" for paragraph in methods)
    parts.extend(f"<p>{html.escape(c.methods)}</p>" for c in comparisons if c.methods)
    parts.append("<h2>Provenance</h2><details><summary>software, configuration, data checksums, seeds, tasks</summary>")
    parts.append(f"<pre>{html.escape(json.dumps(provenance, indent=2, default=str))}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(path, **content) -> Path:
    """Render and write the report atomically; returns its path."""
    return atomic_write_text(path, render_report(**content))
