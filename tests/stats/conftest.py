"""Fixtures for the statistics tests: simulated designs and the real datasets."""

from __future__ import annotations

import functools

import numpy as np
import pytest


@functools.lru_cache(maxsize=None)
def _load(dataset_id: str):
    from brainres.data.registry import load_dataset

    return load_dataset(dataset_id)


@pytest.fixture
def load_real(data_root):
    """Load a registered dataset from the mirror (skips when BRAINRES_DATA is unset)."""
    return _load


@pytest.fixture
def kriegeskorte(load_real):
    """(mIT RDM, hIT fig-1 RDM, the 8 per-subject/session human IT RDMs) as numpy arrays."""
    ds = load_real("kriegeskorte2008-92")
    d = ds["dissimilarity"]
    per_subject = d.where(ds["session"] != "all", drop=True)
    assert per_subject.sizes["rdm"] == 8
    return d.sel(rdm="mIT").values, d.sel(rdm="hIT").values, per_subject.values


def per_subject_stimulus_rt(trials) -> np.ndarray:
    """(n_subjects, n_stimuli) mean RT per subject and stimulus (NaN for missed trials)."""
    table = trials[["rt"]].to_dataframe()
    table["subject"] = trials["subject"].values.astype(str)
    table["stimulus_id"] = trials["stimulus_id"].values.astype(str)
    wide = table.pivot_table(index="subject", columns="stimulus_id", values="rt", aggfunc="mean", dropna=False)
    return wide.to_numpy(dtype=float)


def simulate_study(rng, *, n_stimuli=100, n_seeds=10, n_subjects=1, rho=0.5, seed_sd=0.5, noise_sd=1.0, subject_sd=0.0):
    """A simulated model-human study with a known population correlation ``rho``.

    Stimulus population: ``(m_i, h_i)`` standard bivariate normal with
    correlation ``rho``. Seed ``s`` measures ``m_i + seed_sd * g_s * z_i +
    noise_sd * e_si`` (a seed-specific loading ``g_s`` on a nuisance stimulus
    feature ``z_i``, plus seed x stimulus noise); subject ``j`` measures
    ``h_i + subject_sd * u_ji``. The population correlation of the seed-mean
    (over infinitely many seeds) with the subject-mean is ``rho``.
    """
    h = rng.normal(size=n_stimuli)
    m = rho * h + np.sqrt(1 - rho**2) * rng.normal(size=n_stimuli)
    z = rng.normal(size=n_stimuli)
    g = rng.normal(size=n_seeds)
    model = m[None, :] + seed_sd * g[:, None] * z[None, :] + noise_sd * rng.normal(size=(n_seeds, n_stimuli))
    human = h[None, :] + subject_sd * rng.normal(size=(n_subjects, n_stimuli))
    return model, human


@pytest.fixture
def simulate():
    """The simulated-study generator (:func:`simulate_study`)."""
    return simulate_study


@pytest.fixture
def subject_stimulus_rt():
    """The (subject x stimulus) mean-RT table builder (:func:`per_subject_stimulus_rt`)."""
    return per_subject_stimulus_rt
