"""Pipelines: which models to train, where to export them, which comparisons to run; cached by hash.

``run_pipeline("my.toml")`` (or ``brainres run my.toml``) runs the tasks that are
not finished yet, on the chosen executor, and writes the report. See
``docs/pipelines.md`` and ``docs/scale-out.md``.
"""

from brainres.pipeline.config import Pipeline, load_pipeline, parse_pipeline
from brainres.pipeline.run import check, run_pipeline

__all__ = ["Pipeline", "check", "load_pipeline", "parse_pipeline", "run_pipeline"]
