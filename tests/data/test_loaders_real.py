"""Each registered loader on the real files (the BRAINRES_DATA mirror)."""

import numpy as np
import pandas as pd
import pytest

import brainres
from brainres.data.summary import describe

pytestmark = pytest.mark.needs_data


@pytest.mark.parametrize(
    "dataset_id, trials, stimuli",
    [("geirhos2021-silhouette", 1600, 160), ("geirhos2021-edge", 1600, 160), ("geirhos2021-cue-conflict", 12800, 1280)],
)
def test_geirhos_trials_and_stimuli(data_root, dataset_id, trials, stimuli):
    ds = brainres.load_dataset(dataset_id)
    images = brainres.load_stimuli(dataset_id)
    assert ds.sizes["trial"] == trials
    assert np.unique(ds["subject"].values).size == 10
    ids = np.unique(ds["stimulus_id"].values.astype(str))
    assert ids.size == stimuli
    # every stimulus was seen once by each of the 10 subjects
    per_stimulus = pd.crosstab(ds["stimulus_id"].values, ds["subject"].values)
    assert (per_stimulus.values == 1).all()
    assert set(ids) == set(images["stimulus_id"].values.astype(str))
    assert images["image"].shape[1:] == (224, 224, 3) and images["image"].dtype == np.uint8
    # a trial's category is its stimulus's category
    category_of = dict(zip(images["stimulus_id"].values.astype(str), images["category"].values.astype(str)))
    assert all(category_of[s] == c for s, c in zip(ds["stimulus_id"].values.astype(str), ds["category"].values))
    # missed responses are kept as NaN rt with '' response, and counted
    missed = np.isnan(ds["rt"].values)
    assert missed.sum() == ds.attrs["n_missed"] > 0
    assert (ds["response"].values[missed] == "").all() and not ds["correct"].values[missed].any()
    assert np.nanmax(ds["rt"].values) <= 1.51  # the 1.5 s response deadline
    assert ds["correct"].values.mean() > 1 / 16  # far above chance


def test_geirhos_stimulus_is_the_file_part(data_root):
    ds = brainres.load_dataset("geirhos2021-edge")
    first = ds.isel(trial=0)
    assert str(first["imagename"].values) == "0001_edg_s01_0_oven_00_oven10.png"
    assert str(first["stimulus_id"].values) == "oven10"
    assert float(first["rt"].values) == pytest.approx(0.868942022323608)
    assert str(first["response"].values) == "knife" and not bool(first["correct"].values)
    raw = pd.read_csv(data_root / "geirhos2021/raw-data/edge/edge_subject-09_session_1.csv")
    assert int(raw["rt"].isna().sum()) == int(np.isnan(ds["rt"].values[ds["subject"].values == "subject-09"]).sum()) == 30


def test_cue_conflict_keeps_the_texture_cue(data_root):
    ds = brainres.load_stimuli("geirhos2021-cue-conflict")
    row = ds.sel(stimulus_id="airplane8-bicycle3")
    assert str(row["category"].values) == "airplane" and str(row["texture_category"].values) == "bicycle"


def test_kriegeskorte_rdms_and_stimuli(data_root):
    rdms = brainres.load_dataset("kriegeskorte2008-92")
    stimuli = brainres.load_stimuli("kriegeskorte2008-92")
    assert rdms.sizes == {"rdm": 10, "stimulus_id": 92, "stimulus_id_2": 92}
    assert list(rdms["rdm"].values[:2]) == ["mIT", "hIT"]
    per_subject = rdms.sel(rdm=rdms["session"] != "all")
    assert per_subject.sizes["rdm"] == 8
    assert sorted(set(per_subject["subject"].values)) == ["BE", "KO", "SN", "TI"]
    assert sorted(set(per_subject["session"].values)) == ["1", "2"]
    assert list(rdms["stimulus_id"].values) == list(stimuli["stimulus_id"].values)
    assert stimuli["image"].shape == (92, 175, 175, 3)
    # the fig-1 matrices are the upstream condensed vectors, unfolded
    from scipy.io import loadmat

    raw = loadmat(data_root / "kriegeskorte2008/Kriegeskorte_Neuron2008_supplementalData.mat",
                  squeeze_me=True, struct_as_record=False)["RDMs_mIT_hIT_fig1"]
    upper = np.triu_indices(92, 1)
    np.testing.assert_allclose(rdms["dissimilarity"].sel(rdm="mIT").values[upper], raw[0].RDM)
    assert stimuli["category"].values[0] == "human bodypart" and bool(stimuli["face"].values[:24].any())


def test_mnist_and_cifar(data_root):
    mnist = brainres.load_stimuli("mnist-test")
    assert mnist["image"].shape == (10000, 28, 28, 1)
    assert np.bincount(mnist["label"].values).tolist()[:2] == [980, 1135]  # the canonical class counts
    cifar = brainres.load_stimuli("cifar10-test")
    assert cifar["image"].shape == (10000, 32, 32, 3)
    assert (np.bincount(cifar["label"].values) == 1000).all()
    human = brainres.load_dataset("cifar10h")
    assert list(human["stimulus_id"].values) == list(cifar["stimulus_id"].values)
    np.testing.assert_allclose(human["probability"].sum("label"), 1, atol=1e-6)
    # people mostly agree with the CIFAR label: CIFAR-10H and the test set are aligned
    agreement = (human["counts"].argmax("label").values == cifar["label"].values).mean()
    assert agreement > 0.9
    # the fixed split of the CIFAR-10H pipeline: 8,000 to train on, the other 2,000 (index divisible by 5) held out
    train, held_out = brainres.load_stimuli("cifar10-test-train"), brainres.load_stimuli("cifar10-test-heldout")
    held_out_labels = brainres.load_dataset("cifar10h-heldout")
    assert train.sizes["stimulus_id"] == 8000 and held_out.sizes["stimulus_id"] == 2000
    assert not set(train["stimulus_id"].values) & set(held_out["stimulus_id"].values)
    assert (held_out["test_index"].values % 5 == 0).all() and (train["test_index"].values % 5 != 0).all()
    assert list(held_out_labels["stimulus_id"].values) == list(held_out["stimulus_id"].values)
    np.testing.assert_array_equal(held_out_labels["counts"].values,
                                  human["counts"].sel(stimulus_id=held_out["stimulus_id"].values).values)
    np.testing.assert_array_equal(held_out["image"].values, cifar["image"].isel(stimulus_id=slice(0, None, 5)).values)
    assert brainres.load_stimuli("cifar10h").sizes["stimulus_id"] == 10000


def test_describe_reports_rt_summary(data_root):
    facts = describe(brainres.load_dataset("geirhos2021-silhouette"))
    assert facts["subjects"] == 10 and facts["trials"] == 1600 and facts["stimuli"] == 160
    assert 0.4 < facts["rt_seconds"]["median"] < 1.5
    assert "CC-BY-4.0" in facts["license"] and "Geirhos" in facts["citation"]
