"""``brainres run PIPELINE.toml`` and ``brainres report RUN_DIR``."""

from __future__ import annotations


def register(subparsers) -> None:
    run = subparsers.add_parser("run", help="run a pipeline: train, export, compare, report")
    run.add_argument("pipeline", help="pipeline TOML file (see docs/pipelines.md)")
    run.add_argument("--out", help="run folder (default: runs/<pipeline name>); reruns reuse finished tasks")
    run.add_argument("--executor", choices=["in-process", "local", "scheduler", "slurm"],
                     help="where tasks run (default: the pipeline's [run] executor, else a local Dask cluster)")
    run.add_argument("--workers", type=int, help="worker processes of the local cluster")
    run.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://HOST:8786")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.set_defaults(func=run_command)
    report = subparsers.add_parser("report", help="(re)write the report of a run folder")
    report.add_argument("run_dir")
    report.set_defaults(func=report_command)


def run_command(args) -> int:
    from brainres.pipeline.run import run_pipeline

    report = run_pipeline(args.pipeline, args.out, executor=args.executor, workers=args.workers,
                          scheduler=args.scheduler, progress=not args.quiet, quiet=args.quiet)
    print(f"report: {report}")
    return 0


def report_command(args) -> int:
    from brainres.pipeline.report import write_run_report

    print(f"report: {write_run_report(args.run_dir)}")
    return 0
