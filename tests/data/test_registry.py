import hashlib
import http.server
import sys
import threading

import numpy as np
import pytest
import xarray as xr

import brainres
from brainres.data import registry
from brainres.data.fetch import RemoteFile
from brainres.data.registry import DatasetSpec, get_spec, load_dataset
from brainres.errors import ChecksumError, DataFileError, UnknownDatasetError

REQUIRED_IDS = {
    "geirhos2021-edge", "geirhos2021-silhouette", "geirhos2021-cue-conflict", "kriegeskorte2008-92",
    "mnist-test", "cifar10-test", "cifar10h", "digits",
}
CONTENT = b"subject,stimulus_id,rt,response,correct\ns1,a,0.5,x,1\ns2,a,0.7,y,0\n"
SHA = hashlib.sha256(CONTENT).hexdigest()


def test_every_required_dataset_is_registered():
    assert REQUIRED_IDS <= set(brainres.dataset_ids())
    for dataset_id in REQUIRED_IDS:
        spec = get_spec(dataset_id)
        assert spec.id == dataset_id and spec.license and spec.citation and spec.source


def test_a_plugin_is_imported_only_when_used():
    for name in [m for m in sys.modules if m.startswith("brainres.datasets.")]:
        del sys.modules[name]
    brainres.dataset_ids()
    assert not [m for m in sys.modules if m.startswith("brainres.datasets.") and m != "brainres.datasets._common"]
    get_spec("digits")
    loaded = {m for m in sys.modules if m.startswith("brainres.datasets.")}
    assert "brainres.datasets.digits" in loaded and "brainres.datasets.geirhos2021" not in loaded


def test_unknown_dataset_lists_the_registered_ones():
    with pytest.raises(UnknownDatasetError, match=r"unknown dataset 'mnist' \(did you mean 'mnist-test'\?\); registered: .*mnist-test"):
        load_dataset("mnist")


def _load(paths):
    ds = brainres.read_trials(paths["trials.csv"])
    ds.attrs = {"exclusions": [], "brainres_kind": "human_trials"}  # the registry adds provenance
    return ds


@pytest.fixture
def toy_spec(request):
    url = getattr(request, "param", None)
    spec = DatasetSpec(
        id="toy-trials", kind="human_trials", description="toy", folder="toy", source="a test",
        license="CC0", citation="none", load=_load,
        data_files=lambda: [RemoteFile("trials.csv", SHA, url)],
    )
    registry.register(spec)
    yield spec
    registry._RUNTIME.pop(spec.id, None)


def test_mirror_is_used_in_place_and_verified(toy_spec, tmp_path, monkeypatch, isolated_cache):
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "trials.csv").write_bytes(CONTENT)
    monkeypatch.setenv("BRAINRES_DATA", str(mirror))
    ds = load_dataset("toy-trials")
    assert ds.sizes["trial"] == 2 and ds.attrs["dataset_id"] == "toy-trials"
    assert list(isolated_cache.rglob("*")) == []  # nothing copied into the cache


def test_mirror_checksum_mismatch_is_an_error_and_writes_nothing(toy_spec, tmp_path, monkeypatch, isolated_cache):
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    bad = mirror / "toy" / "trials.csv"
    bad.write_bytes(CONTENT.replace(b"0.5", b"0.6"))
    monkeypatch.setenv("BRAINRES_DATA", str(mirror))
    with pytest.raises(ChecksumError) as info:
        load_dataset("toy-trials")
    assert str(bad) in str(info.value) and SHA in str(info.value)
    assert bad.read_bytes() == CONTENT.replace(b"0.5", b"0.6")  # the mirror is never modified
    assert list(isolated_cache.rglob("*")) == []


class _Server:
    """A loopback HTTP server serving one byte string at /trials.csv."""

    def __init__(self, payload: bytes):
        payload_bytes = payload

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != "/trials.csv":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload_bytes)))
                self.end_headers()
                self.wfile.write(payload_bytes)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/trials.csv"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _spec_with_url(url):
    return DatasetSpec(id="toy-remote", kind="human_trials", description="toy", folder="toy", source="a test",
                       license="CC0", citation="none", load=_load,
                       data_files=lambda: [RemoteFile("trials.csv", SHA, url)])


@pytest.fixture
def no_mirror(monkeypatch):
    monkeypatch.delenv("BRAINRES_DATA", raising=False)


def test_download_is_verified_and_cached(no_mirror, isolated_cache):
    with _Server(CONTENT) as server:
        registry.register(_spec_with_url(server.url))
        try:
            ds = load_dataset("toy-remote")
        finally:
            registry._RUNTIME.pop("toy-remote")
    assert ds.sizes["trial"] == 2
    cached = isolated_cache / "toy" / "trials.csv"
    assert cached.read_bytes() == CONTENT
    # the server is gone: a second load comes from the verified cache
    registry.register(_spec_with_url("http://127.0.0.1:9/unreachable"))
    try:
        assert load_dataset("toy-remote").sizes["trial"] == 2
    finally:
        registry._RUNTIME.pop("toy-remote")


def test_download_checksum_mismatch_leaves_nothing(no_mirror, isolated_cache):
    with _Server(CONTENT + b"s3,b,0.9,z,1\n") as server:
        registry.register(_spec_with_url(server.url))
        try:
            with pytest.raises(ChecksumError, match="SHA-256 mismatch"):
                load_dataset("toy-remote")
        finally:
            registry._RUNTIME.pop("toy-remote")
    assert [p for p in isolated_cache.rglob("*") if p.is_file()] == []


def test_unreachable_source_names_file_and_mirror_hint(no_mirror, isolated_cache):
    registry.register(_spec_with_url("http://127.0.0.1:9/trials.csv"))
    try:
        with pytest.raises(DataFileError, match="trials.csv: download failed \\(BRAINRES_DATA is not set\\)"):
            load_dataset("toy-remote")
    finally:
        registry._RUNTIME.pop("toy-remote")
    assert [p for p in isolated_cache.rglob("*") if p.is_file()] == []


def test_cached_file_that_went_bad_is_reported(no_mirror, isolated_cache):
    (isolated_cache / "toy").mkdir()
    (isolated_cache / "toy" / "trials.csv").write_bytes(b"tampered")
    registry.register(_spec_with_url("http://127.0.0.1:9/trials.csv"))
    try:
        with pytest.raises(ChecksumError, match="trials.csv"):
            load_dataset("toy-remote")
    finally:
        registry._RUNTIME.pop("toy-remote")


def test_registering_an_existing_id_is_refused(toy_spec):
    from brainres.errors import BrainresError

    with pytest.raises(BrainresError, match="already registered"):
        registry.register(toy_spec)


def test_digits_needs_no_files():
    ds = brainres.load_stimuli("digits")
    assert ds.sizes["stimulus_id"] == 1797 and ds["image"].dtype == np.uint8
    assert ds["image"].shape[1:] == (8, 8, 1) and ds["image"].values.max() == 255
    xr.testing.assert_identical(ds, brainres.load_dataset("digits"))
