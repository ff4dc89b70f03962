"""Fixtures shared by the whole test-suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test downloads into its own empty cache, never the user's."""
    cache = tmp_path_factory.mktemp("brainres-cache")
    monkeypatch.setenv("BRAINRES_CACHE", str(cache))
    return cache


@pytest.fixture
def data_root() -> Path:
    """The real-data mirror; the test is skipped (with this reason) only when it is not configured."""
    value = os.environ.get("BRAINRES_DATA")
    if not value:
        pytest.skip("BRAINRES_DATA is not set; the real-data tests need the mirror (CI sets it)")
    root = Path(value)
    assert root.is_dir(), f"BRAINRES_DATA={value} is not a folder"
    return root


@pytest.fixture(scope="module")
def toy_datasets():
    """'toy-digit-rts' (60 digits, synthetic RTs) registered for this process and any worker it starts."""
    from brainres.data.registry import PLUGINS_ENV
    from brainres.testing import TOY_PLUGIN

    before = os.environ.get(PLUGINS_ENV)
    os.environ[PLUGINS_ENV] = TOY_PLUGIN  # an environment variable, so Dask workers and subprocesses see it too
    yield
    if before is None:
        del os.environ[PLUGINS_ENV]
    else:
        os.environ[PLUGINS_ENV] = before
