"""``brainres train FAMILY``: train seeds of any registered family into run folders (resumable).

Examples::

    brainres train lattice --data digits --set max_channels=8 --set lambda_time=0.02 \\
        --set training.epochs=15 --seeds 0 1 2 --out runs/digits
    brainres train elm --set task=onehot-adding --set n_neurons=16 --seeds 0 1 --out runs/elm
    brainres train torch --set factory=blnet:build --set 'options={"n_classes": 10}' \\
        --data digits --in-channels 1 --out runs/mine
    brainres train seqpar --show-config

Settings come from the family's declaration (``--show-config`` lists each with
its default, range and meaning), from a TOML file of them (``--config``), then
``--set KEY=VALUE`` (VALUE read as JSON when it parses). Image families also
take ``training.KEY=VALUE`` (``brainres.train.TrainConfig``: epochs, batch
size, learning rate, occlusion augmentation...). Every seed trains in
``<out>/seed-<seed>``; rerunning resumes an interrupted run and skips finished
ones; a folder holding another configuration is refused. ``brainres export``
turns the run folders into a model-measures file.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from brainres.errors import BrainresError
from brainres.commands import HelpFormatter


def register(subparsers) -> None:
    from brainres.families import family_ids

    parser = subparsers.add_parser(
        "train", help="train seeds of a model family into run folders (resumable)",
        description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    parser.add_argument("family", choices=family_ids(), help="a registered model family")
    parser.add_argument("--config", help="TOML file of the family's settings (image families: [training] too); default: the family's own settings")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="one setting (training.KEY for an image family's training); repeatable")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds, one run folder each")
    parser.add_argument("--out", help="root folder of the run folders (<out>/seed-<seed>); required unless --show-config")
    parser.add_argument("--show-config", action="store_true", help="list the family's settings and exit")
    images = parser.add_argument_group("image families (lattice, torch)")
    images.add_argument("--data", help="training images: a registered stimulus set or a folder of images; required for image families")
    images.add_argument("--image-size", type=int, help="resize the images to this side (default: as they are)")
    images.add_argument("--in-channels", type=int, help="image channels the model takes (default: the data's)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=run)


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def settings_from(config_file: str | None, pairs: list[str]) -> tuple[dict, dict]:
    """The family's settings and the image trainer's (``training.``) from a TOML file and KEY=VALUE pairs."""
    values = tomllib.loads(Path(config_file).read_text()) if config_file else {}
    training = dict(values.pop("training", {}))
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise BrainresError(f"--set expects KEY=VALUE, got {pair!r}")
        key = key.strip()
        if key.startswith("training."):
            training[key.removeprefix("training.")] = _value(text.strip())
        else:
            values[key] = _value(text.strip())
    return values, training


def show_config(family) -> None:
    """Print every setting of a family (and, for image families, of training) with default, range and meaning."""
    from brainres.families.base import TaskFamily
    from brainres.settings import describe_settings
    from brainres.train import TrainConfig

    tables = []
    if isinstance(family, TaskFamily):
        tables.append((f"[model.{family.id}]", describe_settings(family.config)))
    else:
        if family.id == "lattice":
            from brainres.families.lattice import LatticeConfig

            tables.append(("[model.lattice]", describe_settings(LatticeConfig)))
        else:
            print(f"{family.id}: settings {', '.join(family.model_keys)} ([[model]] keys); see docs/your-model.md")
        tables.append(("[model.training] (training.KEY)", describe_settings(TrainConfig)))
    for title, rows in tables:
        print(title)
        for row in rows:
            print(f"  {row['name']} = {json.dumps(row['default'], default=str)}  ({row['rule']}) {row['doc']}")


def run(args) -> int:
    from brainres.families import get_family
    from brainres.families.base import TaskFamily

    family = get_family(args.family)
    if args.show_config:
        show_config(family)
        return 0
    if not args.out:
        raise BrainresError("--out is needed: the root folder of the run folders")
    settings, training = settings_from(args.config, args.set)
    out = Path(args.out)
    if isinstance(family, TaskFamily):
        if training or args.data:
            raise BrainresError(f"{family.id} trains on its own task: it takes no --data and no training.KEY "
                                f"settings (its training settings are its own; see --show-config)")
        from brainres.settings import SettingsError

        try:
            config = family.config.from_dict(settings, where="settings")
        except SettingsError as err:
            raise err.located("brainres train") from None
        for seed in args.seeds:
            run_ = family.train(config, seed, run_dir=out / f"seed-{seed}", progress=not args.quiet,
                                label=f"{family.id} seed {seed}")
            last = run_.log.iloc[-1].to_dict() if len(run_.log) else {}
            print(f"seed {seed}: {out / f'seed-{seed}'} ({', '.join(f'{k} {v:.4g}' for k, v in last.items() if k != 'epoch' and isinstance(v, float))})")
        return 0
    return _train_image_family(family, settings, training, args, out)


def _train_image_family(family, settings: dict, training: dict, args, out: Path) -> int:
    """Image families: the same checks and trainer as a pipeline's [[model]] (brainres.pipeline)."""
    from brainres.pipeline.check import check_pipeline
    from brainres.pipeline.config import parse_pipeline
    from brainres.pipeline.tasks import Task, run_train

    if not args.data:
        raise BrainresError(f"{family.id} trains on images: give --data (a registered stimulus set or a folder)")
    model = {"name": "model", "family": family.id, "data": args.data, "seeds": list(args.seeds),
             "training": training}
    model |= {key: settings.pop(key) for key in list(settings) if key in family.model_keys}
    if family.settings_table:
        model[family.settings_table] = settings
    elif settings:
        raise BrainresError(f"{family.id} takes the settings {', '.join(family.model_keys)}; got {sorted(settings)}")
    for key, value in (("image_size", args.image_size), ("in_channels", args.in_channels)):
        if value is not None:
            model[key] = value
    checked = check_pipeline(parse_pipeline({"run": {"name": "train"}, "model": [model],
                                             "comparison": []}, source="brainres train", folder=".",
                                            allow_empty=True))
    entry = checked.model("model")
    for seed in args.seeds:
        task = Task(key=f"train/model/seed-{seed}", kind="train", spec={
            "model": entry.record, "code": entry.code, "seed": seed, "device": checked.device or "cpu",
            "data": entry.data.spec(), "training": training}, deps=(),
            context={"location": entry.location, "label": f"{family.id} seed {seed}", "data": entry.data},
            folder=out / f"seed-{seed}")
        summary = run_train(task, {}, progress=not args.quiet)
        print(f"seed {seed}: {task.folder} (held-out accuracy {summary['held_out_accuracy']:.3f}, "
              f"mean halting step {summary['held_out_mean_steps']:.2f})")
    return 0
