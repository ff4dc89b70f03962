"""Turning comparison results into figures, sentences and a self-contained HTML report."""

from brainres.report.html import render_report, write_report
from brainres.report.text import apa_sentence

__all__ = ["apa_sentence", "render_report", "write_report"]
