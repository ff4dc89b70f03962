"""Headline experiments of the grow / prune plasticity family, through the pipeline machinery.

Run from the repository root:

    python docs/experiments/plasticity_headline.py                       # the shipped demo pipeline
    python docs/experiments/plasticity_headline.py --checks              # + the learning-rate and width checks
    python docs/experiments/plasticity_headline.py --continual           # the continual-learning headline
    python docs/experiments/plasticity_headline.py --seeds 3 --out /tmp/quick   # fewer seeds: a smoke test

Every run is a pipeline (``brainres/pipelines/plasticity.toml`` or
``plasticity-continual.toml``): each variant x seed is a cached task, so a
rerun into the same ``--out`` folder only redoes what changed. Prints the
results table; the report is ``<out>/report.html``.
"""

from __future__ import annotations

import argparse
import copy
import tomllib
from importlib.resources import files
from pathlib import Path

import pandas as pd

from brainres.pipeline.config import parse_pipeline
from brainres.pipeline.run import run_pipeline


def _pipeline(name: str) -> dict:
    return tomllib.loads(files("brainres.pipelines").joinpath(f"{name}.toml").read_text())


def _checks(mapping: dict) -> None:
    """The robustness checks of docs/plasticity.md: learning rate 1e-2, and an MLP as narrow as the conv trunk."""
    insertion = next(m for m in mapping["model"] if m["name"] == "insertion")
    faster = copy.deepcopy(insertion)
    faster.update(name="insertion-lr1e-2")
    faster["plasticity"]["learning_rate"] = 0.01
    faster["sweep"]["insertions"] = ["random"]
    narrow = copy.deepcopy(insertion)
    narrow.update(name="insertion-mlp16")
    narrow["sweep"].update(trunks=["mlp"], insertions=["random"], widths={"mlp": [16, 16]})
    mapping["model"] += [faster, narrow]
    mapping["comparison"] += [{"kind": "insertion-gradient", "model": name} for name in
                              ("insertion-lr1e-2", "insertion-mlp16")]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--continual", action="store_true", help="run plasticity-continual.toml instead")
    parser.add_argument("--checks", action="store_true", help="add the learning-rate and width checks")
    parser.add_argument("--seeds", type=int, help="use seeds 0..N-1 instead of the pipeline's")
    parser.add_argument("--out", help="run folder (default runs/<pipeline name>)")
    parser.add_argument("--workers", type=int, help="local Dask workers (default 2)")
    args = parser.parse_args(argv)
    mapping = _pipeline("plasticity-continual" if args.continual else "plasticity")
    if args.checks and not args.continual:
        _checks(mapping)
    if args.seeds:
        for model in mapping["model"]:
            model["seeds"] = list(range(args.seeds))
    report = run_pipeline(parse_pipeline(mapping), args.out and Path(args.out), workers=args.workers)
    table = pd.read_csv(report.parent / "results.csv")
    with pd.option_context("display.width", 220, "display.max_colwidth", 90, "display.max_rows", 500):
        print(table[["comparison", "label", "estimate", "ci_low", "ci_high", "n", "p_value"]].to_string(index=False))
    print(f"report: {report}")


if __name__ == "__main__":
    main()
