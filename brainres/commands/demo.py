"""``brainres demo``: the main job on a fresh machine, with no configuration.

Runs the pipeline shipped with brainres (``brainres/pipelines/demo.toml``):
train three seeds of the breadth-depth-time lattice on the shape labels of the
Geirhos cue-conflict images, export them on the edge and silhouette sets at
several occlusion levels, compare with human reaction times (time-vs-rt,
occlusion-recurrence, speed-accuracy) and write the report. Data come from the
registry (downloaded, or from ``BRAINRES_DATA``). Rerunning reuses finished work.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from brainres.commands import HelpFormatter

PIPELINES = {"demo": "demo.toml", "cifar10h": "cifar10h.toml", "rsa": "kriegeskorte.toml", "elm": "elm.toml",
             "plasticity": "plasticity.toml", "seqpar": "seqpar.toml"}


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", formatter_class=HelpFormatter, help="run the shipped demo pipeline and write its report")
    parser.add_argument("--pipeline", choices=sorted(PIPELINES), default="demo",
                        help="'demo' (model time vs human RT), 'cifar10h' (model time vs human label entropy and "
                             "accuracy on 2,000 held-out CIFAR-10 images, across training), 'rsa' (latents vs IT RDMs, "
                             "Kriegeskorte 2008), or a "
                             "family's headline: 'elm' (one parameter budget spent many ways), 'plasticity' (newborn gradient ratio; grow vs prune), "
                             "'seqpar' (sequential and parallel codes)")
    parser.add_argument("--out", help="run folder (default: ./brainres-<pipeline>)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=run)


def pipeline_path(name: str):
    return files("brainres.pipelines").joinpath(PIPELINES[name])


def run(args) -> int:
    from brainres.pipeline.run import run_pipeline

    with as_file(pipeline_path(args.pipeline)) as path:
        report = run_pipeline(path, args.out or f"brainres-{args.pipeline}", progress=not args.quiet, quiet=args.quiet)
    print(f"report: {report.resolve()}")
    return 0
