"""Bad input is refused before any work, with a message that names it (file, table, key, stimulus).

Pipeline mistakes are found by the check that runs before any task (so they cost seconds, not a
training); comparisons refuse inputs they cannot use, naming the stimuli; the command line ends
every such error in one ``brainres: error:`` line. The run folder's own guarantees (lock,
clean-up, checksums, permissions, symlinks, disks) are in tests/pipeline/test_run_folder.py; the
readers' in tests/data/test_trials.py and tests/data/test_io.py.
"""

import json
import time

import numpy as np
import pytest

from brainres.cli import main
from brainres.compare import comparison_ids, compare, get_comparison
from brainres.pipeline.config import PipelineError, parse_pipeline
from brainres.pipeline.run import check, run_pipeline
from brainres.settings import Rule, SettingsError
from brainres.testing import planted_time_and_rt, toy_pipeline


@pytest.fixture(scope="module", autouse=True)
def toy_dataset(toy_datasets):
    """Every test here reads the toy dataset (tests/conftest.py)."""


def pipeline(change=None) -> dict:
    raw = json.loads(json.dumps(toy_pipeline()))
    if change is not None:
        change(raw)
    return raw


def without_halting(p):
    """The tiny model replaced by a user's network that has no halting head."""
    p["model"][0] = {"name": "tiny", "family": "torch", "factory": "brainres.testing:tiny_recurrent_net",
                     "options": {"n_classes": 10}, "data": "toy-digit-rts", "seeds": [0, 1], "training": {"epochs": 1}}


def options(**changes):
    return lambda p: p["comparison"][0]["options"].update(changes)


# (label, change, what the message must say); every one of these once failed only after training
PIPELINE_MISTAKES = [
    ("misspelt comparison option", options(n_resampels=200),
     r"\[\[comparison\]\] #1 \(time-vs-rt\)\.options: unknown option 'n_resampels' \(did you mean 'n_resamples'\?\)"),
    ("string for a number", options(n_resamples="200"),
     r"\[\[comparison\]\] #1 \(time-vs-rt\)\.options\.n_resamples: expected an integer, got '200'"),
    ("too few resamples", options(n_resamples=1), r"options\.n_resamples: expected an integer >= 2, got 1"),
    ("ci_level out of (0, 1)", options(ci_level=1.5), r"options\.ci_level: expected a number in \(0, 1\), got 1.5"),
    ("ci_level nan", options(ci_level=float("nan")), r"options\.ci_level: expected a finite number, got nan"),
    ("negative seed", options(seed=-1), r"options\.seed: expected an integer >= 0, got -1"),
    ("unknown method", options(method="kendall"),
     r"options\.method: expected one of 'spearman', 'pearson', got 'kendall'"),
    ("boolean as string", options(mixed_model="no"), r"options\.mixed_model: expected true or false, got 'no'"),
    ("occlusion level not exported", options(occlusion=0.3),
     r"options\.occlusion: reads occlusion level\(s\) \[0.3\], but the \[\[export\]\] of 'tiny' on 'toy-digit-rts' "
     r"has levels \[0.0, 0.5\]"),
    ("no unoccluded level", lambda p: p["export"][0].update(occlusion=[0.25, 0.5]),
     r"\(occlusion-recurrence\): reads occlusion level\(s\) \[0.0\] \(the unoccluded level is its baseline\)"),
    ("readout of a model without halting", lambda p: (without_halting(p), options(readout="expected_halting_step")(p)),
     r"\(time-vs-rt\)\.options\.readout: model 'tiny' will not export \['expected_halting_step'\].*its readouts: "
     r"\['entropy_threshold_step', 'uncertainty_auc'\]"),
    ("unknown training key", lambda p: p["model"][0]["training"].update(epoch=2),
     r"\[\[model\]\] #1 \('tiny'\) \[model.training\]: unknown key 'epoch' \(did you mean 'epochs'\?\)"),
    ("learning rate inf", lambda p: p["model"][0]["training"].update(learning_rate=float("inf")),
     r"\[model.training\]: learning_rate: expected a finite number, got inf"),
    ("lambda_time nan", lambda p: p["model"][0]["lattice"].update(lambda_time=float("nan")),
     r"\[model.lattice\]: lambda_time: expected a finite number, got nan"),
    ("misspelt dataset id", lambda p: p["comparison"][0].update(data="toy-digit-rt"),
     r"\[\[comparison\]\] #1 \(time-vs-rt\)\.data: 'toy-digit-rt' is neither a registered dataset"),
    ("data of the wrong kind", lambda p: p["comparison"][0].update(data="kriegeskorte2008-92"),
     r"\(time-vs-rt\)\.data: 'kriegeskorte2008-92' is neural_rdms data; time-vs-rt takes human_trials"),
    ("export batch_size 0", lambda p: p["export"][0].update(batch_size=0),
     r"\[\[export\]\] #1\.batch_size: expected a positive integer, got 0"),
    ("image_size 0", lambda p: p["model"][0].update(image_size=0),
     r"\[\[model\]\] #1\.image_size: expected a positive integer, got 0"),
    ("image_size negative", lambda p: p["model"][0].update(image_size=-3),
     r"\[\[model\]\] #1\.image_size: expected a positive integer, got -3"),
    ("occlusion nan", lambda p: p["export"][0].update(occlusion=[0.0, float("nan")]),
     r"\[\[export\]\] #1\.occlusion: expected fractions in \[0, 1\]"),
    ("entropy threshold 0", lambda p: p["export"][0].update(entropy_threshold=0.0),
     r"\[\[export\]\] #1\.entropy_threshold: expected a number in \(0, 1\]"),
    ("run name climbing out", lambda p: p["run"].update(name="../../somewhere"),
     r"\[run\]\.name: '\.\./\.\./somewhere' must be a plain name"),
    ("run name absolute", lambda p: p["run"].update(name="/tmp/somewhere"), r"\[run\]\.name: '/tmp/somewhere' must be a plain"),
    ("run name with a folder", lambda p: p["run"].update(name="a/b"), r"\[run\]\.name: 'a/b' must be a plain name"),
    ("workers 0", lambda p: p["run"].update(workers=0), r"\[run\]\.workers: expected a positive integer, got 0"),
    ("empty pipeline", lambda p: p.clear(), r"the pipeline has no \[\[model\]\]: there is nothing to run"),
    ("no comparison", lambda p: p.update(comparison=[]), r"the pipeline has no \[\[comparison\]\]: its report would"),
]


@pytest.mark.parametrize("label, change, message", PIPELINE_MISTAKES, ids=[m[0] for m in PIPELINE_MISTAKES])
def test_pipeline_mistakes_are_refused_before_any_task(tmp_path, label, change, message):
    started = time.perf_counter()
    with pytest.raises(PipelineError, match=message):
        run_pipeline(parse_pipeline(pipeline(change), source="p.toml"), tmp_path / "run", progress=False, quiet=True)
    assert time.perf_counter() - started < 30  # seconds (a check), not a training
    assert not (tmp_path / "run").exists()  # nothing written: no task ran


def test_every_problem_is_listed_at_once_with_file_table_and_key():
    def many(p):
        p["model"][0]["training"]["learning_rate"] = float("inf")
        p["model"][0]["lattice"]["lambda_time"] = float("nan")
        p["comparison"][0]["options"]["n_resampels"] = 200
        p["comparison"][1]["options"]["seed"] = "zero"

    with pytest.raises(PipelineError) as info:
        check(parse_pipeline(pipeline(many), source="study/p.toml"))
    problems = info.value.problems
    assert str(info.value).startswith("study/p.toml: 4 problems:")
    assert any("[model.lattice]: lambda_time" in p for p in problems)
    assert any("[model.training]: learning_rate" in p for p in problems)
    assert any("#1 (time-vs-rt).options: unknown option 'n_resampels'" in p for p in problems)
    assert any("#2 (occlusion-recurrence).options.seed: expected an integer" in p for p in problems)


TOY_TOML = """
[run]
name = "toy"
executor = "in-process"

[[model]]
name = "tiny"
family = "lattice"
data = "toy-digit-rts"
seeds = [0]
[model.lattice]
max_channels = 4
max_layers = 1
max_steps = 3
[model.training]
epochs = 1

[[export]]
model = "tiny"
stimuli = "toy-digit-rts"

[[comparison]]
kind = "time-vs-rt"
model = "tiny"
stimuli = "toy-digit-rts"
data = "{data}"
[comparison.options]
n_resamples = {n_resamples}
mixed_model = false
"""


def test_run_check_on_a_file(tmp_path, capsys):
    path = tmp_path / "p.toml"
    path.write_text(TOY_TOML.format(data="toy-digit-rts", n_resamples=200))
    assert main(["run", str(path), "--check"]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: OK (1 models, 1 seeds, 1 exports, 1 comparisons)"
    path.write_text(TOY_TOML.format(data="toy-digit-rt", n_resamples='"200"'))
    started = time.perf_counter()
    assert main(["run", str(path), "--check"]) == 2
    seconds = time.perf_counter() - started
    err = capsys.readouterr().err
    assert err.startswith(f"brainres: error: {path}: 2 problems:") and "Traceback" not in err
    assert "options.n_resamples: expected an integer, got '200'" in err and "'toy-digit-rt' is neither" in err
    assert seconds < 30 and not (tmp_path / "runs").exists()
    path.write_text("[run\nname = ")
    assert main(["run", str(path), "--check"]) == 2
    assert f"{path}: not valid TOML" in capsys.readouterr().err


def test_a_user_trial_table_is_read_when_the_pipeline_is_checked(tmp_path):
    """Milliseconds read as seconds are refused before training, with the option to set."""
    from brainres.testing import TOY_TRIALS

    trials = TOY_TRIALS.load(None)
    table = "subject,stimulus_id,rt,response,correct\n" + "".join(
        f"{s},{i},{1000 * r:.1f},{a},{int(c)}\n" for s, i, r, a, c in zip(
            trials["subject"].values, trials["stimulus_id"].values, trials["rt"].values, trials["response"].values,
            trials["correct"].values))
    (tmp_path / "rts.csv").write_text(table)

    def mine(p, **dataset):
        p["comparison"] = p["comparison"][:1]
        p["comparison"][0]["data"] = "rts.csv"
        if dataset:
            p["dataset"] = [{"path": "rts.csv", **dataset}]

    with pytest.raises(PipelineError, match=r"\(time-vs-rt\)\.data: .*rts.csv: column 'rt' has a median reaction "
                                            r"time of 6\d\d.* s.*pass rt_unit='ms'"):
        check(parse_pipeline(pipeline(mine), folder=tmp_path))
    check(parse_pipeline(pipeline(lambda p: mine(p, rt_unit="ms")), folder=tmp_path))
    with pytest.raises(PipelineError, match=r"options from its \[\[dataset\]\]\): decimal: expected one of '.', ','"):
        check(parse_pipeline(pipeline(lambda p: mine(p, rt_unit="ms", decimal=";")), folder=tmp_path))


def test_a_netcdf_data_file_must_say_what_it_is(tmp_path):
    import xarray as xr

    xr.Dataset({"a": ("x", np.arange(3.0))}).to_netcdf(tmp_path / "data.nc", engine="h5netcdf")

    def mine(p):
        p["comparison"] = p["comparison"][:1]
        p["comparison"][0]["data"] = "data.nc"

    with pytest.raises(PipelineError, match=r"data.nc has no attribute brainres_kind; time-vs-rt takes human_trials"):
        check(parse_pipeline(pipeline(mine), folder=tmp_path))


# --- comparisons: declared option rules, and inputs checked before the statistics ------------
@pytest.mark.parametrize("comparison_id", comparison_ids())
def test_every_comparison_declares_a_rule_for_every_option(comparison_id):
    plugin = get_comparison(comparison_id)
    assert set(plugin.options) == set(plugin.parameters()), comparison_id
    assert all(isinstance(rule, Rule) for rule in plugin.options.values())
    defaults = {name: p.default for name, p in plugin.parameters().items() if p.default is not p.empty}
    for name, value in defaults.items():  # every default passes its own rule
        if value is not None:
            plugin.options[name].check(value)


@pytest.fixture(scope="module")
def planted():
    return planted_time_and_rt(correlation=0.5, n_stimuli=30)


FAST = {"n_resamples": 50, "n_splits": 5, "mixed_model": False}


def test_compare_checks_options_against_the_rules(planted):
    model, trials = planted
    with pytest.raises(SettingsError) as info:
        compare("time-vs-rt", model, trials, n_resampels=50, ci_level=1.0, method="kendall")
    text = str(info.value)
    assert text.startswith("time-vs-rt options: 3 problems") and "did you mean 'n_resamples'" in text
    with pytest.raises(SettingsError, match="missing option 'measure'"):
        get_comparison("seed-sweep").check_options({})


def test_non_finite_model_values_are_named_by_stimulus_id(planted):
    from brainres.comparisons._common import ComparisonError

    model, trials = planted
    nan = model.copy(deep=True)
    nan["expected_halting_step"][:] = np.nan
    with pytest.raises(ComparisonError, match=r"'expected_halting_step' is NaN everywhere \(all 30 stimuli\)"):
        compare("time-vs-rt", nan, trials, **FAST)
    some = model.copy(deep=True)
    some["expected_halting_step"][0, 3, 0] = np.inf
    some["expected_halting_step"][1, 5, 0] = np.inf
    with pytest.raises(ComparisonError, match=r"'expected_halting_step' is infinite for 2 of 30 stimuli: "
                                              r"'stim0003', 'stim0005' \(seed 0, 1\)"):
        compare("time-vs-rt", some, trials, **FAST)


def test_missing_variables_and_levels_are_named(planted):
    from brainres.comparisons._common import ComparisonError

    model, trials = planted
    with pytest.raises(ComparisonError, match=r"no readout 'expected_halting_step'; readouts in this export: none"):
        compare("occlusion-recurrence", model.drop_vars("expected_halting_step"), trials, n_resamples=50)
    with pytest.raises(ComparisonError, match=r"needs at least two occlusion levels"):
        compare("occlusion-recurrence", model, trials, n_resamples=50)
    with pytest.raises(ComparisonError, match=r"needs occlusion level\(s\) \[0.5\], which the export does not hold"):
        compare("time-vs-rt", model, trials, occlusion=0.5, **FAST)
    with pytest.raises(ComparisonError, match=r"no variable 'correct'"):
        compare("speed-accuracy", model, trials, n_resamples=50)
    from brainres.errors import BrainresError

    with pytest.raises(BrainresError, match=r"latents-vs-neural takes data of kind neural_rdms or neural_responses; "
                                            r"planted is human_trials"):
        compare("latents-vs-neural", model, trials)


def test_stimuli_without_a_human_rt_are_named(planted):
    from brainres.comparisons._common import ComparisonError

    model, trials = planted
    missed = trials.copy(deep=True)
    rt = missed["rt"].values.copy()
    rt[np.isin(missed["stimulus_id"].values, ["stim0003", "stim0011"])] = np.nan
    missed["rt"] = ("trial", rt, {"units": "s"})
    with pytest.raises(ComparisonError, match=r"planted has no answered trial of 2 of the 30 stimuli, so no human RT "
                                              r"to compare with: 'stim0003', 'stim0011'"):
        compare("time-vs-rt", model, missed, **FAST)


def test_constant_latent_patterns_are_named_by_stimulus():
    from brainres.comparisons._common import ComparisonError
    from brainres.testing import neural_rdms

    rdms = neural_rdms(n=5)
    ids = [str(s) for s in rdms["stimulus_id"].values]
    rng = np.random.default_rng(0)
    import xarray as xr

    latent = rng.normal(size=(2, 5, 3, 4))
    latent[:, 2] = 0.0  # stimulus img2 silent in every feature at every step
    model = xr.Dataset(
        {"latent": (("seed", "stimulus_id", "step", "feature"), latent),
         "entropy_threshold_step": (("seed", "stimulus_id"), rng.uniform(1, 3, (2, 5)))},
        coords={"seed": [0, 1], "stimulus_id": ids, "step": [1, 2, 3], "feature_layer": ("feature", ["a"] * 4),
                "feature_unit": ("feature", np.arange(4))},
        attrs={"brainres_kind": "model_measures", "model_family": "torch", "pressures": {}, "config_hash": "x",
               "brainres_version": "test", "training_data": "none"})
    with pytest.raises(ComparisonError, match=r"latent pattern is the same in every feature .* for 1 stimuli: 'img2'"):
        compare("latents-vs-neural", model, rdms, n_resamples=20)


def test_a_latent_layer_the_model_lacks_is_named_before_training():
    def rsa(p):
        without_halting(p)  # the tiny user network names its latent layer 'conv'
        p["export"][0]["latents"] = True
        p["comparison"] = [{"kind": "latents-vs-neural", "model": "tiny", "stimuli": "toy-digit-rts",
                            "data": "kriegeskorte2008-92", "options": {"layer": ["conv", "conv2"]}}]

    with pytest.raises(PipelineError, match=r"\(latents-vs-neural\)\.options\.layer: model 'tiny' has no latent "
                                            r"layer\(s\) \['conv2'\]; its layers: \['conv'\]"):
        check(parse_pipeline(pipeline(rsa)))
