import importlib.util
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from brainres.compare import compare
from brainres.stats import rdm_from_responses
from brainres.testing import PROVENANCE

spec = importlib.util.spec_from_file_location("synthetic", Path(__file__).with_name("synthetic.py"))
synthetic = importlib.util.module_from_spec(spec)
spec.loader.exec_module(synthetic)

N_STIMULI, N_FEATURES, N_STEPS = 30, 20, 4
IDS = [f"s{i:03d}" for i in range(N_STIMULI)]


def neural_data(truth, rng, n_subjects=4, noise=0.6):
    matrices, subject, session = [], [], []
    for j in range(n_subjects):
        for k in (1, 2):
            matrices.append(rdm_from_responses(truth + noise * rng.standard_normal(truth.shape)))
            subject.append(f"sub{j}")
            session.append(str(k))
    return xr.Dataset(
        {"dissimilarity": (("rdm", "stimulus_id", "stimulus_id_2"), np.stack(matrices))},
        coords={"rdm": [f"r{i}" for i in range(len(matrices))], "stimulus_id": IDS, "stimulus_id_2": IDS,
                "measure": ("rdm", ["1 - Pearson r"] * len(matrices)), "subject": ("rdm", subject),
                "session": ("rdm", session), "region": ("rdm", ["IT"] * len(matrices))},
        attrs=PROVENANCE | {"brainres_kind": "neural_rdms", "dataset_id": "synthetic-rdms"})


def neural_responses(truth, rng, *, n_subjects=3, noise=0.6, n_repetitions=2, other_region=None):
    """Responses (stimulus, neuroid, repetition): each subject's neuroids carry ``truth`` plus noise.

    With ``other_region``, a second region of pure-noise neuroids is added.
    """
    blocks, subject, region = [], [], []
    for j in range(n_subjects):
        blocks.append(truth[:, :, None] + noise * rng.standard_normal((*truth.shape, n_repetitions)))
        subject += [f"sub{j}"] * truth.shape[1]
        region += ["IT"] * truth.shape[1]
        if other_region:
            blocks.append(rng.standard_normal((*truth.shape, n_repetitions)))
            subject += [f"sub{j}"] * truth.shape[1]
            region += [other_region] * truth.shape[1]
    response = np.concatenate(blocks, axis=1)
    return xr.Dataset(
        {"response": (("stimulus_id", "neuroid", "repetition"), response)},
        coords={"stimulus_id": IDS, "neuroid": [f"n{i}" for i in range(response.shape[1])],
                "repetition": np.arange(n_repetitions), "subject": ("neuroid", subject),
                "region": ("neuroid", region)},
        attrs=PROVENANCE | {"brainres_kind": "neural_responses", "dataset_id": "synthetic-responses"})


def states(truth, rng, weights, *, n_units=N_FEATURES, n_seeds=2):
    """Latent states (seed, stimulus, occlusion, step, unit) that move towards ``truth`` with the weights."""
    latent = np.empty((n_seeds, N_STIMULI, 1, len(weights), n_units))
    for t, w in enumerate(weights):
        for s in range(n_seeds):
            latent[s, :, 0, t] = w * truth[:, :n_units] + (1 - w) * rng.standard_normal((N_STIMULI, n_units))
    return latent


def model_with_latents(truth, rng, weights=None, *, layers=None):
    layers = layers if layers is not None else {"layer_0": states(truth, rng, weights)}
    n_steps = next(iter(layers.values())).shape[3]
    return synthetic.export(n_seeds=2, n_stimuli=N_STIMULI, n_steps=n_steps, levels=(0.0,),
                            accuracy_by_step=(0.5,) * n_steps, latent=layers)


def per_step(result):
    return [r for r in result.results if r.extra.get("label", "").startswith("step")]


def test_synthetic_latents_follow_the_export_schema():
    rng = np.random.default_rng(5)
    truth = rng.standard_normal((N_STIMULI, N_FEATURES))
    model = model_with_latents(truth, rng, layers={"conv": states(truth, rng, (0.5,) * N_STEPS, n_units=3),
                                                   "dense": states(truth, rng, (0.5,) * N_STEPS, n_units=7)})
    assert model["latent"].dims == ("seed", "stimulus_id", "occlusion", "step", "feature")
    assert model["feature_layer"].values.tolist() == ["conv"] * 3 + ["dense"] * 7
    assert model["feature_unit"].values.tolist() == [0, 1, 2, 0, 1, 2, 3, 4, 5, 6]


def test_latents_that_converge_on_the_neural_code_peak_late():
    rng = np.random.default_rng(0)
    truth = rng.standard_normal((N_STIMULI, N_FEATURES))
    data = neural_data(truth, rng)
    model = model_with_latents(truth, rng, weights=(0.0, 0.5, 0.75, 0.95))
    result = compare("latents-vs-neural", model, data, n_resamples=500, seed=0)
    estimates = [r.estimate for r in per_step(result)]
    assert np.all(np.diff(estimates) > 0)  # rises as the code converges
    assert per_step(result)[0].ci_low < 0 < per_step(result)[0].ci_high  # step 1 is noise
    assert per_step(result)[-1].ci_low > 0.2
    best = next(r for r in result.results if r.statistic.startswith("best_step"))
    assert best.extra["step"] == 4
    figure = result.figures["over_steps"]
    assert figure.attrs["ceiling_low"] < figure.attrs["ceiling_high"]
    lower = next(r for r in result.results if "lower" in r.statistic)
    assert 0 < lower.estimate < 1
    assert "layers layer_0" in result.methods


def test_layers_of_different_widths_are_chosen_by_name():
    rng = np.random.default_rng(2)
    truth = rng.standard_normal((N_STIMULI, N_FEATURES))
    data = neural_data(truth, rng)
    # "noise" never carries the code; "code" does from step 2; they differ in width
    model = model_with_latents(truth, rng, layers={"noise": states(truth, rng, (0.0,) * N_STEPS, n_units=7),
                                                   "code": states(truth, rng, (0.0, 0.9, 0.9, 0.9))})
    options = dict(n_resamples=200, seed=0)
    code = compare("latents-vs-neural", model, data, layer="code", **options)
    noise = compare("latents-vs-neural", model, data, layer="noise", **options)
    both = compare("latents-vs-neural", model, data, layer="all", **options)
    as_list = compare("latents-vs-neural", model, data, layer=["code"], **options)
    assert [r.estimate for r in as_list.results] == [r.estimate for r in code.results]
    assert all(r.ci_low < 0 < r.ci_high for r in per_step(noise))
    assert all(r.ci_low > 0.2 for r in per_step(code)[1:])
    # all layers concatenated: the noise layer dilutes the code, but it is still there
    later = [r.estimate for r in per_step(both)[1:]]
    assert all(0.1 < value for value in later)
    assert "(layers code, pooled over space)" in code.methods
    assert "(layers noise, code, pooled over space)" in both.methods
    # the model RDM of one layer is the RDM of its own features only (a model without the other layer agrees)
    code_states = model["latent"].sel(feature=model["feature_layer"] == "code")
    alone = model_with_latents(truth, rng, layers={
        "code": code_states.transpose("seed", "stimulus_id", "occlusion", "step", "feature").values})
    assert [r.estimate for r in per_step(compare("latents-vs-neural", alone, data, **options))] == \
        [r.estimate for r in per_step(code)]
    with pytest.raises(Exception, match=r"no latent layer named \['layer_1'\]; layers in this export: .*noise.*code"):
        compare("latents-vs-neural", model, data, layer="layer_1")


def test_single_target_rdm_has_no_ceiling_and_missing_latents_are_named():
    rng = np.random.default_rng(1)
    truth = rng.standard_normal((N_STIMULI, N_FEATURES))
    data = neural_data(truth, rng)
    model = model_with_latents(truth, rng, weights=(0.5,) * N_STEPS)
    result = compare("latents-vs-neural", model, data, target="r0", n_resamples=200)
    assert any("no leave-one-subject-out noise ceiling" in note for note in result.notes)
    with pytest.raises(Exception, match="no variable 'latent'"):
        compare("latents-vs-neural", model.drop_vars(["latent", "feature_layer", "feature_unit"]), data)
    with pytest.raises(Exception, match="no RDM named 'r99'"):
        compare("latents-vs-neural", model, data, target="r99")


def test_rdms_are_formed_from_neural_responses():
    rng = np.random.default_rng(3)
    truth = rng.standard_normal((N_STIMULI, N_FEATURES))
    model = model_with_latents(truth, rng, weights=(0.0, 0.5, 0.75, 0.95))
    responses = neural_responses(truth, rng, other_region="V1")
    result = compare("latents-vs-neural", model, responses, region="IT", n_resamples=300, seed=0)
    estimates = [r.estimate for r in per_step(result)]
    assert np.all(np.diff(estimates) > 0) and per_step(result)[-1].ci_low > 0.2
    assert result.inputs["target"] == "subjects"  # one RDM per subject, so a noise ceiling
    assert "ceiling_low" in result.figures["over_steps"].attrs
    assert "formed from responses with correlation distance" in result.methods
    # the other region carries no code
    noise = compare("latents-vs-neural", model, responses, region="V1", n_resamples=300, seed=0)
    assert all(r.ci_low < 0 < r.ci_high for r in per_step(noise))
    with pytest.raises(Exception, match=r"no neuroid of region 'V4'; regions: .*IT.*V1"):
        compare("latents-vs-neural", model, responses, region="V4")


def test_responses_of_one_subject_with_gaps_and_another_rdm_method():
    rng = np.random.default_rng(4)
    truth = rng.standard_normal((N_STIMULI, N_FEATURES))
    model = model_with_latents(truth, rng, weights=(0.2, 0.9, 0.9, 0.9))
    responses = neural_responses(truth, rng, n_subjects=1).drop_vars("subject")
    response = responses["response"].values.copy()
    response[3, :2, :] = np.nan  # two neuroids miss their response to one stimulus
    response[5, 4, 0] = np.nan  # one repetition missing is not a missing response: repetitions are averaged
    responses["response"] = (responses["response"].dims, response)
    result = compare("latents-vs-neural", model, responses, rdm_method="euclidean", n_resamples=200, seed=0)
    assert result.inputs["target"] == "responses"
    assert any("2 neuroids with a missing response were left out" in note for note in result.notes)
    assert any("no leave-one-subject-out noise ceiling" in note for note in result.notes)
    assert "euclidean-distance RDMs" in result.methods
    assert per_step(result)[-1].estimate > per_step(result)[0].estimate


def test_options_every_comparison_shares_have_one_default():
    """One default per setting, across comparisons. (API, CLI and pipelines share it: a pipeline's and the CLI's
    options are filled in from the plug-in's own signature by ``Comparison.check_options``.)"""
    from brainres.compare import comparison_ids, get_comparison

    expected = {"n_resamples": 10_000, "seed": 0, "ci_level": 0.95, "intersect": False, "occlusion": 0.0,
                "readout": "expected_halting_step", "n_splits": 1000, "method": "spearman",
                "reliability_resamples": 2000}
    seen = {}
    for comparison_id in comparison_ids():
        for name, parameter in get_comparison(comparison_id).parameters().items():
            if name in expected:
                seen.setdefault(name, {})[comparison_id] = parameter.default
    differing = {name: {c: v for c, v in by.items() if v != expected[name]} for name, by in seen.items()}
    assert not any(differing.values()), differing
    assert set(seen["n_resamples"]) >= {"time-vs-rt", "occlusion-recurrence", "speed-accuracy", "latents-vs-neural",
                                        "model-comparison"}
    # and a pipeline that leaves the option out gets that default
    filled = get_comparison("latents-vs-neural").check_options({})
    assert filled["n_resamples"] == 10_000
