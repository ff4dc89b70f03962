"""The run folder is a place you can trust.

One run at a time (a second refuses, naming the first, or waits); a run killed with SIGKILL at
any point (training, export, comparison, report) leaves nothing that the next run does not
clean up, and the rerun gives the same results; finished tasks are verified against the
checksums in their ``done.json``; files get the user's umask; nothing is written through a
symbolic link that leads out of the folder; a read-only or full disk is named in one line.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from brainres.data.io import TEMP_TAG, is_temporary
from brainres.pipeline.config import PipelineError, parse_pipeline
from brainres.pipeline.run import run_pipeline
from brainres.pipeline.store import LOCK_FILE, RunFolderError, RunLockedError
from brainres.testing import toy_pipeline

SMALL = toy_pipeline(epochs=2, seeds=(0,), comparisons=("time-vs-rt",))


@pytest.fixture(scope="module", autouse=True)
def toy_dataset(toy_datasets):
    """Every test here reads the toy dataset (tests/conftest.py)."""


def run(run_dir, raw=SMALL, **options):
    return run_pipeline(parse_pipeline(json.loads(json.dumps(raw))), run_dir, progress=False, quiet=True, **options)


def statuses(run_dir) -> dict:
    return {t["task"]: t["status"] for t in json.loads((run_dir / "provenance.json").read_text())["tasks"]}


def _close(a, b, where=""):
    """Equal, floats to 12 significant digits (the statistics engine's compiled kernels and their numpy
    fallback, used until the kernels are compiled, may differ in the last bit)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{where}[{index}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-300, nan_ok=True), where
    else:
        assert a == b, where


def assert_same_numbers(run_dir, reference):
    """The same files, and in them the same numbers: exports and trained weights bit for bit."""
    import pandas as pd
    import torch
    import xarray as xr

    from brainres.data.io import read_netcdf

    def by_task(folder):  # task folders by task, not hash (code edited meanwhile changes hashes, not numbers)
        return {re.sub(r"-[0-9a-f]{12}(?=/|$)", "", p.relative_to(folder).as_posix()): p for p in folder.rglob("*")}

    ours_by, theirs_by = by_task(run_dir), by_task(reference)
    assert ours_by.keys() == theirs_by.keys()  # nothing missing, nothing else
    for name in sorted(ours_by):
        ours, theirs = ours_by[name], theirs_by[name]
        if ours.name == "measures.nc":
            assert ours.read_bytes() == theirs.read_bytes(), name
        elif ours.name == "checkpoint.pt":  # it also holds each epoch's seconds and the global RNG state
            left, right = (torch.load(p, weights_only=True) for p in (ours, theirs))
            for key in left["model"]:
                assert torch.equal(left["model"][key], right["model"][key]), (name, key)
            for key, state in left["optimizer"]["state"].items():
                for part, value in state.items():
                    assert torch.equal(value, right["optimizer"]["state"][key][part]), (name, key, part)
        elif ours.name == "result.json":
            _close(json.loads(ours.read_text()), json.loads(theirs.read_text()), name)
        elif ours.name == "results.csv":
            pd.testing.assert_frame_equal(pd.read_csv(ours), pd.read_csv(theirs), rtol=1e-12)
        elif ours.suffix == ".nc":
            xr.testing.assert_allclose(read_netcdf(ours), read_netcdf(theirs), rtol=1e-12)


def task_folder(run_dir, key) -> Path:
    """The folder of task ``key`` in the run folder's last run."""
    tasks = json.loads((run_dir / "provenance.json").read_text())["tasks"]
    return run_dir / next(t["folder"] for t in tasks if t["task"] == key)


def stray(run_dir) -> list:
    """Anything a clean run folder does not hold: temporary files, a lock file."""
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*")
                  if is_temporary(p.name) or p.name == LOCK_FILE)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """SMALL run once, uninterrupted: the reference every other run is compared with."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    run(run_dir)
    return run_dir


@pytest.fixture
def copy(finished, tmp_path):
    """A private copy of the finished run folder, brought up to date (a rerun of it reuses every task)."""
    target = tmp_path / "run"
    shutil.copytree(finished, target)
    run(target)  # reuses all, unless brainres's code changed since `finished` ran
    return target


def toml(mapping: dict) -> str:
    """The pipelines of these tests as TOML text (tables, arrays of tables, scalars, lists of scalars)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines = []

    def table(name, body, array=False):
        lines.append(f"[[{name}]]" if array else f"[{name}]")
        for key, v in body.items():
            if not isinstance(v, dict):
                lines.append(f"{key} = {value(v)}")
        for key, v in body.items():
            if isinstance(v, dict):
                table(f"{name}.{key}", v)

    for name, body in mapping.items():
        if isinstance(body, list):
            for item in body:
                table(name, item, array=True)
        else:
            table(name, body)
    return "\n".join(lines) + "\n"


# --- names -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["/tmp/elsewhere", "a/b", "../../somewhere", "..", ".hidden", "a\\b", ""])
def test_the_run_name_is_a_name_not_a_path(name):
    raw = json.loads(json.dumps(SMALL))
    raw["run"]["name"] = name
    with pytest.raises(PipelineError, match=r"\[run\]\.name: .* must be a plain name .*not a path"):
        parse_pipeline(raw)


# --- one run at a time -------------------------------------------------------------------------
HOLD = """
import sys, time
from brainres.pipeline.store import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold_lock(run_dir, seconds):
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir), str(seconds)], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_run_of_the_folder_refuses_naming_the_first(copy):
    holder = hold_lock(copy, 60)
    try:
        with pytest.raises(RunLockedError, match=rf"is in use by brainres process {holder.pid} on .* \(started .*"
                                                 r"command: .*\); wait for it to finish, or run with --wait"):
            run(copy)
        assert (copy / LOCK_FILE).exists()  # the holder's lock was left alone
    finally:
        holder.kill()
        holder.wait()
    run(copy)  # the lock of a killed process is free at once (the kernel releases it)
    assert set(statuses(copy).values()) == {"reused"} and stray(copy) == []


def test_wait_starts_when_the_other_run_is_done(copy, capsys):
    holder = hold_lock(copy, 3)
    started = time.monotonic()
    run_pipeline(parse_pipeline(json.loads(json.dumps(SMALL))), copy, progress=False, quiet=False, wait=True)
    assert time.monotonic() - started > 1.5 and holder.wait(timeout=30) == 0
    assert f"in use by brainres process {holder.pid}" in capsys.readouterr().err
    assert set(statuses(copy).values()) == {"reused"} and stray(copy) == []


def test_report_refuses_while_a_run_writes(copy):
    from brainres.cli import main

    holder = hold_lock(copy, 60)
    try:
        assert main(["report", str(copy)]) == 2
    finally:
        holder.kill()
        holder.wait()
    assert main(["report", str(copy)]) == 0


PAUSED = """
import os, sys, time
import brainres.pipeline.engine as engine
real = engine.execute_task

def paused(*args, **kwargs):  # hold the run folder until the test says go (it holds the lock meanwhile)
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.05)
    return real(*args, **kwargs)

engine.execute_task = paused
from brainres.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_two_brainres_runs_of_one_folder_at_once(tmp_path):
    """The real thing: `brainres run` twice on one folder while a first run works in it, once with --wait."""
    (tmp_path / "p.toml").write_text(toml(SMALL))
    out, go = tmp_path / "run", tmp_path / "go"
    command = ["run", str(tmp_path / "p.toml"), "--out", str(out), "--executor", "in-process"]
    first = subprocess.Popen([sys.executable, "-c", PAUSED, str(go), *command, "--quiet"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / LOCK_FILE).exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    cli = [sys.executable, "-m", "brainres.cli", *command]
    second = subprocess.Popen([*cli, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    waiting = subprocess.Popen([*cli, "--wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second_out, second_err = second.communicate(timeout=300)
    lines = []
    while not any("waiting for it to finish" in line for line in lines) and waiting.poll() is None:
        lines.append(waiting.stderr.readline())
    go.touch()
    first_out, first_err = first.communicate(timeout=300)
    wait_out, wait_err = waiting.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert second.returncode == 2 and second_err.count("\n") == 1, second_err
    assert second_err.startswith(f"brainres: error: {out} is in use by brainres process {first.pid} on ")
    assert f"command: {sys.executable} -c" in second_err and "wait for it to finish, or run with --wait" in second_err
    assert waiting.returncode == 0, wait_err
    assert any(f"in use by brainres process {first.pid}" in line for line in lines)
    assert set(statuses(out).values()) == {"reused"}  # the waiting run found every task finished
    assert stray(out) == []


# --- killed runs: no stray files, identical reruns -------------------------------------------
KILLER = """
import os, signal, sys
import brainres.data.io as io
import brainres.data.stream as stream
target, nth = sys.argv[1], int(sys.argv[2])
seen = [0]
real = io.apply_umask

def kill_at_the_nth_write(path, *args):
    real(path, *args)
    if os.path.basename(str(path)).startswith("." + target + "."):
        seen[0] += 1
        if seen[0] == nth:  # the file is written in full under its temporary name, not yet renamed
            os.kill(os.getpid(), signal.SIGKILL)

io.apply_umask = stream.apply_umask = kill_at_the_nth_write
from brainres.cli import main
sys.exit(main(["run", sys.argv[3], "--out", sys.argv[4], "--quiet", "--executor", "in-process"]))
"""

# (where, the file being written when SIGKILL comes, which write of it)
KILL_POINTS = [
    ("training", "checkpoint.pt", 2),      # after epoch 2 of 2, before the rename
    ("training, done", "done.json", 1),    # the training finished, its done.json not yet in place
    ("export", "measures.nc", 1),
    ("comparison", "result.json", 1),
    ("report", "report.html", 1),
]


def killed_then_rerun(tmp_path, target, nth, finished):
    (tmp_path / "p.toml").write_text(toml(SMALL))
    out = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", KILLER, target, str(nth), str(tmp_path / "p.toml"), str(out)],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = [p for p in out.rglob("*") if TEMP_TAG in p.name]
    assert left, "the kill left no temporary file: it did not come mid-write"
    from brainres.cli import main

    assert main(["run", str(tmp_path / "p.toml"), "--out", str(out), "--quiet", "--executor", "in-process"]) == 0
    assert stray(out) == []  # the temporary file is gone, and so is the lock
    assert_same_numbers(out, finished)  # the uninterrupted run's files and numbers, and nothing else
    return out


def test_a_run_killed_mid_export_reruns_to_the_same_results(tmp_path, finished):
    killed_then_rerun(tmp_path, "measures.nc", 1, finished)


@pytest.mark.slow
@pytest.mark.parametrize("where, target, nth", KILL_POINTS, ids=[k[0] for k in KILL_POINTS])
def test_sigkill_at_every_stage_then_rerun(tmp_path, finished, where, target, nth):
    out = killed_then_rerun(tmp_path, target, nth, finished)
    assert (out / "report.html").exists() and (out / "provenance.json").exists()


def test_temporary_files_of_a_killed_run_are_removed(copy, capsys):
    export = task_folder(copy, "export/tiny/toy-digit-rts/seed-0")
    leftovers = [export / f".measures.nc.a1b2c3d4{TEMP_TAG}.nc", copy / f".report.html.zz9_x8y7{TEMP_TAG}.tmp",
                 task_folder(copy, "train/tiny/seed-0") / ".checkpoint.pt.k2j4_x9a.pt"]  # the last: an earlier version's
    for path in leftovers:
        path.write_bytes(b"")
    (copy / LOCK_FILE).write_text('{"pid": 999999}')  # a killed run's lock file: stale, not held
    run_pipeline(parse_pipeline(json.loads(json.dumps(SMALL))), copy, progress=False, quiet=False)
    assert "removed 3 temporary file(s) left by an interrupted run" in capsys.readouterr().err
    assert stray(copy) == [] and set(statuses(copy).values()) == {"reused"}


# --- finished tasks are verified -------------------------------------------------------------
def test_done_json_records_a_checksum_of_every_output(finished):
    from brainres.pipeline.tasks import file_sha256

    for done in finished.rglob("done.json"):
        recorded = json.loads(done.read_text())["files"]
        outputs = {p.relative_to(done.parent).as_posix() for p in done.parent.rglob("*") if p.name != "done.json"}
        assert set(recorded) == outputs and outputs
        assert all(file_sha256(done.parent / name) == digest for name, digest in recorded.items())


def test_a_changed_output_reruns_its_task_and_says_so(copy, finished, capsys):
    export = task_folder(copy, "export/tiny/toy-digit-rts/seed-0") / "measures.nc"
    data = bytearray(export.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    export.write_bytes(bytes(data))
    (task_folder(copy, "compare/time-vs-rt/tiny/toy-digit-rts/toy-digit-rts") / "result.json").unlink()
    run_pipeline(parse_pipeline(json.loads(json.dumps(SMALL))), copy, progress=False, quiet=False)
    err = capsys.readouterr().err
    assert "export/tiny/toy-digit-rts/seed-0: finished earlier, but its output measures.nc changed since it was " \
           "written (SHA-256 mismatch); running it again" in err
    assert "finished earlier, but its output result.json is missing; running it again" in err
    states = statuses(copy)
    assert states["export/tiny/toy-digit-rts/seed-0"] == "ran" and states["train/tiny/seed-0"] == "reused"
    assert_same_numbers(copy, finished)  # the rerun restored the numbers
    notes = [t.get("note", "") for t in json.loads((copy / "provenance.json").read_text())["tasks"]]
    assert any("ran again: its output measures.nc changed" in n for n in notes)


def test_a_damaged_done_json_is_not_trusted(copy):
    done = task_folder(copy, "export/tiny/toy-digit-rts/seed-0") / "done.json"
    done.write_text(done.read_text()[:40])
    run(copy)
    assert statuses(copy)["export/tiny/toy-digit-rts/seed-0"] == "ran"


# --- permissions and bounds -----------------------------------------------------------------
def test_every_file_follows_the_umask(tmp_path):
    before = os.umask(0o027)
    try:
        run(tmp_path / "run")
    finally:
        os.umask(before)
    modes = {p.relative_to(tmp_path).as_posix(): p.stat().st_mode & 0o777 for p in (tmp_path / "run").rglob("*")
             if p.is_file()}
    assert modes and set(modes.values()) == {0o640}, modes


def test_a_symlink_leading_out_of_the_run_folder_is_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "exports").symlink_to(outside)
    with pytest.raises(RunFolderError, match=rf"1 folder\(s\) in the run folder lead outside it .*"
                                             rf"{run_dir / 'exports'} -> {outside}"):
        run(run_dir)
    assert list(outside.iterdir()) == [] and not (run_dir / "models").exists()  # nothing written anywhere


def test_a_task_folder_symlinked_out_is_refused(copy, tmp_path):
    from brainres.pipeline.store import check_inside

    export = task_folder(copy, "export/tiny/toy-digit-rts/seed-0")
    moved = tmp_path / "moved"
    shutil.move(export, moved)
    export.symlink_to(moved)
    with pytest.raises(RunFolderError, match=rf"{export} -> {moved}"):
        run(copy)
    (copy / "exports" / "real").mkdir()
    inside = copy / "exports" / "alias"
    inside.symlink_to(copy / "exports" / "real")
    export.unlink()
    check_inside(copy, [inside])  # a link that stays inside the folder is fine


def test_a_folder_that_cannot_be_written_is_named_before_any_task(tmp_path, monkeypatch):
    from brainres.data.io import WriteError

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(WriteError, match=rf"{blocker}/run: cannot create the run folder: a part of the path is a "
                                         r"file, not a folder"):
        run(blocker / "run")
    import brainres.pipeline.store as store

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system", str(tmp_path / "ro" / LOCK_FILE))

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(store.os, "open", read_only)
    with pytest.raises(WriteError, match=rf"{tmp_path / 'ro' / LOCK_FILE}: cannot write into the run folder: "
                                         r"read-only file system"):
        run(tmp_path / "ro")


def _private_tmpfs_available() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _private_tmpfs_available(), reason="needs unshare and a private mount namespace")
@pytest.mark.parametrize("mount, words", [
    ("size=48k", "no space left on device"),
    ("size=1m,ro", "read-only file system"),
])
def test_a_full_or_read_only_disk_is_one_line(tmp_path, mount, words):
    """A real small (or read-only) file system, mounted in a private namespace for this process only."""
    (tmp_path / "p.toml").write_text(toml(SMALL))
    disk = tmp_path / "disk"
    disk.mkdir()
    script = textwrap.dedent(f"""
        mount -t tmpfs -o {mount} tmpfs {disk} &&
        {sys.executable} -m brainres.cli run {tmp_path / 'p.toml'} --out {disk}/run --quiet --executor in-process
    """)
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"brainres: error: {disk}/run") and words in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
