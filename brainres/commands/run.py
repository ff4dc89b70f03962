"""``brainres run PIPELINE.toml`` and ``brainres report RUN_DIR``."""

from __future__ import annotations

from brainres.commands import HelpFormatter


def register(subparsers) -> None:
    run = subparsers.add_parser("run", help="run a pipeline: train, export, compare, report",
                                formatter_class=HelpFormatter)
    run.add_argument("pipeline", help="pipeline TOML file (see docs/pipelines.md)")
    run.add_argument("--out", help="run folder (default: runs/<pipeline name>); reruns reuse finished tasks")
    run.add_argument("--check", action="store_true",
                     help="only check the pipeline (data, models, options) and exit; runs no task")
    run.add_argument("--executor", choices=["in-process", "local", "scheduler", "slurm"],
                     help="where tasks run (default: the pipeline's [run] executor, else a local Dask cluster)")
    run.add_argument("--workers", type=int, help="worker processes of the local cluster (default: the pipeline's)")
    run.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://HOST:8786; required with --executor scheduler")
    run.add_argument("--device", help="train and export every model on this device (cpu, cuda, cuda:N); "
                                      "default: each model's device")
    run.add_argument("--wait", action="store_true",
                     help="if another run is writing into the same run folder, wait for it to finish (default: "
                          "refuse, naming its process)")
    run.add_argument("--dashboard", action="store_true",
                     help="start the Dask dashboard of the local cluster (its address is printed)")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.set_defaults(func=run_command)
    report = subparsers.add_parser("report", help="(re)write the report of a run folder",
                                   formatter_class=HelpFormatter)
    report.add_argument("run_dir", help="a folder written by brainres run")
    report.set_defaults(func=report_command)


def run_command(args) -> int:
    from brainres.pipeline.run import check, run_pipeline

    if args.check:
        checked = check(args.pipeline, device=args.device)
        pipeline = checked.pipeline
        seeds = sum(len(m.seeds) for m in checked.models.values())
        print(f"{args.pipeline}: OK ({len(pipeline.models)} models, {seeds} seeds, {len(pipeline.exports)} exports, "
              f"{len(pipeline.comparisons)} comparisons)")
        return 0
    report = run_pipeline(args.pipeline, args.out, executor=args.executor, workers=args.workers,
                          scheduler=args.scheduler, device=args.device, progress=not args.quiet, quiet=args.quiet,
                          wait=args.wait, dashboard=args.dashboard)
    print(f"report: {report}")
    return 0


def report_command(args) -> int:
    from pathlib import Path

    from brainres.pipeline.report import ReportError, write_run_report
    from brainres.pipeline.store import RunLock

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: no such folder (brainres report takes a folder written by brainres run)")
    if not (run_dir / "provenance.json").exists():
        write_run_report(run_dir)  # raises the error that says what a run folder is
    with RunLock(run_dir):  # not while a run is writing into it
        print(f"report: {write_run_report(run_dir)}")
    return 0
