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


def neural_data(truth, rng, n_subjects=4, noise=0.6):
    ids = [f"s{i:03d}" for i in range(N_STIMULI)]
    matrices, subject, session = [], [], []
    for j in range(n_subjects):
        for k in (1, 2):
            matrices.append(rdm_from_responses(truth + noise * rng.standard_normal(truth.shape)))
            subject.append(f"sub{j}")
            session.append(str(k))
    return xr.Dataset(
        {"dissimilarity": (("rdm", "stimulus_id", "stimulus_id_2"), np.stack(matrices))},
        coords={"rdm": [f"r{i}" for i in range(len(matrices))], "stimulus_id": ids, "stimulus_id_2": ids,
                "measure": ("rdm", ["1 - Pearson r"] * len(matrices)), "subject": ("rdm", subject),
                "session": ("rdm", session), "region": ("rdm", ["IT"] * len(matrices))},
        attrs=PROVENANCE | {"brainres_kind": "neural_rdms", "dataset_id": "synthetic-rdms"})


def model_with_latents(truth, rng, weights):
    latent = np.empty((2, N_STIMULI, 1, N_STEPS, 1, N_FEATURES))
    for t, w in enumerate(weights):
        for s in range(2):
            latent[s, :, 0, t, 0] = w * truth + (1 - w) * rng.standard_normal(truth.shape)
    return synthetic.export(n_seeds=2, n_stimuli=N_STIMULI, n_steps=N_STEPS, levels=(0.0,),
                            accuracy_by_step=(0.5,) * N_STEPS, latent=latent)


def test_latents_that_converge_on_the_neural_code_peak_late():
    rng = np.random.default_rng(0)
    truth = rng.standard_normal((N_STIMULI, N_FEATURES))
    data = neural_data(truth, rng)
    model = model_with_latents(truth, rng, weights=(0.0, 0.5, 0.75, 0.95))
    result = compare("latents-vs-neural", model, data, n_resamples=500, seed=0)
    per_step = [r for r in result.results if r.extra.get("label", "").startswith("step")]
    estimates = [r.estimate for r in per_step]
    assert np.all(np.diff(estimates) > 0)  # rises as the code converges
    assert per_step[0].ci_low < 0 < per_step[0].ci_high  # step 1 is noise
    assert per_step[-1].ci_low > 0.2
    best = next(r for r in result.results if r.statistic.startswith("best_step"))
    assert best.extra["step"] == 4
    figure = result.figures["over_steps"]
    assert figure.attrs["ceiling_low"] < figure.attrs["ceiling_high"]
    lower = next(r for r in result.results if "lower" in r.statistic)
    assert 0 < lower.estimate < 1


def test_single_target_rdm_has_no_ceiling_and_missing_latents_are_named():
    rng = np.random.default_rng(1)
    truth = rng.standard_normal((N_STIMULI, N_FEATURES))
    data = neural_data(truth, rng)
    model = model_with_latents(truth, rng, weights=(0.5,) * N_STEPS)
    result = compare("latents-vs-neural", model, data, target="r0", n_resamples=200)
    assert any("no leave-one-subject-out noise ceiling" in note for note in result.notes)
    with pytest.raises(Exception, match="no 'latent' variable"):
        compare("latents-vs-neural", model.drop_vars("latent"), data)
