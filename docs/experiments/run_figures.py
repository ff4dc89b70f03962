"""Save every figure of a finished run as a PNG (for the docs): ``python docs/experiments/run_figures.py RUN OUT``.

The figures are the ones the run's report draws, from the data each comparison
saved (``results/*/figure_*.nc``), named ``<comparison folder>__<figure>.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from brainres.pipeline.store import load_result
from brainres.report.figures import draw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder written by brainres run")
    parser.add_argument("out", type=Path, help="folder for the PNG files")
    parser.add_argument("--only", nargs="*", default=None, help="keep comparison folders whose name starts so")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for folder in sorted((args.run / "results").iterdir()):
        if args.only and not any(folder.name.startswith(prefix) for prefix in args.only):
            continue
        result = load_result(folder)
        for name, figure in result.figures.items():
            path = args.out / f"{folder.name.rsplit('-', 1)[0]}__{name}.png"
            path.write_bytes(draw(figure))
            print(path)


if __name__ == "__main__":
    main()
