"""Honest exits, round three (issue 21): interrupts while records are written, full disks, waiting on a lock,
temporaries of killed runs, --json-file into a pipe, torchrun's variables and a server that drips bytes.

Each case asserts the contract of tests/hostile.py (non-zero exit, one line naming the culprit, no traceback,
bounded memory and time, nothing half-written); every input is generated here, at test time.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import stat
import threading
import time
from pathlib import Path

import pytest
from hostile import assert_clean_failure, leftovers, run_cli, run_cli_subprocess, tree_digest
from httpserver import serve_files
from PIL import Image
from test_hostile_output import ckpt, convert_args, run_cli_json_file  # noqa: F401 - fixtures
from test_hostile_publish import verified  # noqa: F401 - fixture
from test_verify import cache, zoo  # noqa: F401 - fixtures

from swinzoo.fetch import cache_path_for

HOSTILE: list[str] = []  # the hostile inputs tried here, by name
WNID = "n01440764"


def _data(tmp_path: Path, images: int = 3) -> Path:
    data = tmp_path / "data"
    (data / WNID).mkdir(parents=True)
    for i in range(images):
        Image.new("RGB", (40, 30), (i * 40, 20, 200)).save(data / WNID / f"{i}.png")
    return data


def _signal_inside(monkeypatch, target: str, signum: int = signal.SIGINT) -> None:
    """``target`` (module:function) gets ``signum`` delivered while it runs, as a Ctrl-C at that moment would."""
    import importlib

    module_name, name = target.split(":")
    module = importlib.import_module(module_name)
    real = getattr(module, name)

    def interrupted(*args, **kwargs):
        signal.raise_signal(signum)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, interrupted)


# --------------------------------------------------------------------------------------------- interrupts
def test_ctrl_c_while_evaluate_writes_leaves_the_record_and_card_whole_and_says_so(verified, tmp_path, monkeypatch):  # noqa: F811
    HOSTILE.append("Ctrl-C while evaluate writes evaluation.json and the card")
    data = _data(tmp_path)
    card_before = (verified / "README.md").stat().st_ino
    _signal_inside(monkeypatch, "swinzoo.evaluate:write_card")
    result = run_cli("evaluate", verified, "--data", data, "--workers", "0", "--quiet")
    assert result.exit_code == 130, result.output
    assert "evaluation.json" in result.output and "written completely" in result.output, result.output
    record = json.loads((verified / "evaluation.json").read_text())
    card = (verified / "README.md").stat().st_ino
    # both written: the card was replaced (a new file renamed into place; a synthetic folder's card claims no
    # accuracy, so its text may read the same)
    assert record["images"] == 3 and card != card_before


def test_ctrl_c_during_evaluate_with_workers_leaves_the_folder_as_it_was(verified, tmp_path, monkeypatch):  # noqa: F811
    HOSTILE.append("Ctrl-C during evaluate with workers")
    data = _data(tmp_path, images=6)
    before = tree_digest(verified)
    _signal_inside(monkeypatch, "swinzoo.evaluate:sha256_file")  # after the workers, before anything is written
    result = run_cli("evaluate", verified, "--data", data, "--workers", "2", "--batch-size", "2", "--quiet")
    assert result.exit_code == 130 and "nothing was written" in result.output, result.output
    assert tree_digest(verified) == before and leftovers(verified) == []


def test_a_ctrl_c_that_the_dataloader_swallows_still_ends_evaluate(verified, tmp_path, monkeypatch):  # noqa: F811
    HOSTILE.append("Ctrl-C swallowed by a DataLoader __del__")
    import swinzoo.evaluate as E

    real = E._run

    def swallowing(*args, **kwargs):
        out = real(*args, **kwargs)
        try:  # what torch's _MultiProcessingDataLoaderIter.__del__ does with an exception: prints and goes on
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            pass
        return out

    monkeypatch.setattr(E, "_run", swallowing)
    before = tree_digest(verified)
    result = run_cli("evaluate", verified, "--data", _data(tmp_path), "--workers", "0", "--quiet")
    assert result.exit_code == 130 and "nothing was written" in result.output, result.output
    assert tree_digest(verified) == before


def test_ctrl_c_while_verify_writes_leaves_the_verdict_and_card_whole_and_says_so(verified, cache, monkeypatch):  # noqa: F811
    HOSTILE.append("Ctrl-C while verify writes verification.json and the card")
    (verified / "verification.json").unlink()
    _signal_inside(monkeypatch, "swinzoo.verify.orchestration:write_card")
    result = run_cli("verify", "tiny-swin", "--synthetic", "--converted", verified, "--cache-dir", cache, "--quiet")
    assert result.exit_code == 130, result.output
    assert "verification.json" in result.output and "written completely" in result.output, result.output
    assert (verified / "verification.json").is_file() and "verif" in (verified / "README.md").read_text().lower()


def test_ctrl_c_during_verify_leaves_the_folder_as_it_was(verified, cache, monkeypatch):  # noqa: F811
    HOSTILE.append("Ctrl-C during verify")
    before = tree_digest(verified)
    _signal_inside(monkeypatch, "swinzoo.verify.orchestration:_verdict")  # the references ran, nothing written yet
    result = run_cli("verify", "tiny-swin", "--synthetic", "--converted", verified, "--cache-dir", cache, "--quiet")
    assert result.exit_code == 130 and "nothing was written" in result.output, result.output
    assert tree_digest(verified) == before and leftovers(verified) == []


def test_sigterm_to_evaluate_with_workers_exits_143(verified, tmp_path):  # noqa: F811
    HOSTILE.append("SIGTERM to evaluate with workers (process group)")
    data = _data(tmp_path, images=400)
    before = tree_digest(verified)
    child = run_cli_subprocess(
        "evaluate", verified, "--data", data, "--workers", "2", "--batch-size", "1", start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        line = child.stderr.readline()  # the progress bar is off (no tty): wait for torch to be imported
        if not line:
            break
        if "evaluate" in line or "img" in line:
            break
    time.sleep(0.5)
    os.killpg(child.pid, signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    if child.returncode == 0:
        pytest.skip("evaluate finished before the signal came (a fast machine)")
    assert child.returncode == 143, err
    after = tree_digest(verified)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert not changed or "written completely" in err, (changed, err)
    assert leftovers(verified) == []


# --------------------------------------------------------------------------------------------- full disk
def test_a_full_output_disk_names_the_folder_and_the_space_needed(tmp_path, ckpt, monkeypatch):  # noqa: F811
    HOSTILE.append("full disk under --out")
    import collections

    import swinzoo.folder

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(swinzoo.folder.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 4096, 4096))
    result = run_cli(*convert_args(ckpt, tmp_path / "out"))
    message = assert_clean_failure(result, str(tmp_path), "model.safetensors", "needs", "4096 bytes")
    assert "unexpected" not in message
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_a_disk_filling_during_the_weights_write_names_the_file(tmp_path, ckpt, monkeypatch):  # noqa: F811
    HOSTILE.append("ENOSPC from safetensors")
    from safetensors import SafetensorError

    def full(*args, **kwargs):
        raise SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        )

    monkeypatch.setattr("swinzoo.loading.save_file", full)
    result = run_cli(*convert_args(ckpt, tmp_path / "out"))
    message = assert_clean_failure(result, "model.safetensors", "No space left on device", "bytes")
    assert "unexpected" not in message and not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_a_full_disk_under_a_record_names_the_file_and_the_bytes(verified, tmp_path, monkeypatch):  # noqa: F811
    HOSTILE.append("ENOSPC writing evaluation.json")
    import errno

    import swinzoo.folder

    real_fdopen = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(swinzoo.folder.os, "fdopen", lambda fd, *a, **k: Full(real_fdopen(fd, *a, **k)))
    before = tree_digest(verified)
    result = run_cli("evaluate", verified, "--data", _data(tmp_path), "--workers", "0", "--quiet")
    assert_clean_failure(result, "evaluation.json", "No space left on device", "bytes")
    assert tree_digest(verified) == before and leftovers(verified) == []


# --------------------------------------------------------------------------------------------- waiting, leftovers
def test_waiting_on_another_process_lock_says_so_on_stderr(tmp_path, ckpt):  # noqa: F811
    HOSTILE.append("a download waiting on another's lock")
    with serve_files({"ckpt.pth": ckpt.read_bytes()}) as server:
        url = server.url("ckpt.pth")
        cache = tmp_path / "cache"
        final = cache_path_for(url, cache)
        final.parent.mkdir(parents=True)
        lock = os.open(final.parent / f"{final.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            child = run_cli_subprocess("convert", "--source", url, "--out", tmp_path / "o", "--cache-dir", cache,
                                       "--quiet")  # fmt: skip
            said: list[str] = []
            reader = threading.Thread(target=lambda: said.append(child.stderr.readline()), daemon=True)
            reader.start()
            reader.join(timeout=90)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            os.close(lock)
        child.communicate(timeout=120)
    assert said and "waiting for another swinzoo process" in said[0] and "Ctrl-C" in said[0], said
    assert str(final.name) in said[0]
    assert child.returncode == 0


def test_a_partial_folder_left_by_a_container_pid_1_is_cleaned(tmp_path, ckpt):  # noqa: F811
    HOSTILE.append(".partial folder of a previous PID 1")
    stale = tmp_path / ".out.1.abcd1234.partial"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    os.utime(stale, (1_000_000, 1_000_000))  # made long before this machine's PID 1 started
    live = tmp_path / f".out.{os.getppid()}.efgh5678.partial"  # a process that runs and is older than its folder
    live.mkdir()
    assert run_cli(*convert_args(ckpt, tmp_path / "out")).exit_code == 0
    assert not stale.exists() and live.is_dir()


# --------------------------------------------------------------------------------------------- --json-file
def test_json_file_that_is_a_named_pipe_is_written_into_not_replaced(tmp_path):
    HOSTILE.append("--json-file FIFO")
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    time.sleep(0.2)
    result = run_cli_json_file(fifo, [])
    reader.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the pipe was replaced by a file"
    assert got and json.loads(got[0]) is not None


def test_json_file_that_is_a_pipe_nobody_reads_is_refused_at_once(tmp_path):
    HOSTILE.append("--json-file FIFO without a reader")
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    assert_clean_failure(run_cli_json_file(fifo, []), str(fifo), "no process reads")
    assert time.monotonic() - started < 10 and stat.S_ISFIFO(os.lstat(fifo).st_mode)


# --------------------------------------------------------------------------------------------- torchrun
@pytest.mark.parametrize(
    ("variable", "value"), [("LOCAL_RANK", "abc"), ("RANK", "-1"), ("WORLD_SIZE", "two"), ("WORLD_SIZE", "0")]
)
def test_garbage_torchrun_variables_are_named(verified, tmp_path, variable, value):  # noqa: F811
    HOSTILE.append(f"torchrun {variable}={value}")
    env = {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}
    env[variable] = value
    result = run_cli("evaluate", verified, "--data", _data(tmp_path), "--workers", "0", "--quiet", env=env)
    message = assert_clean_failure(result, f"{variable}={value!r}")
    assert "unexpected" not in message


def test_a_stale_world_size_says_what_it_waits_for_and_gives_up(verified, tmp_path):  # noqa: F811
    HOSTILE.append("torchrun: stale WORLD_SIZE=2")
    from httpserver import unused_port

    env = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(unused_port()), "SWINZOO_RENDEZVOUS_TIMEOUT": "3"}  # fmt: skip
    child = run_cli_subprocess("evaluate", verified, "--data", _data(tmp_path), "--workers", "0", "--quiet", env=env)
    started = time.monotonic()
    _, err = child.communicate(timeout=120)
    assert child.returncode == 1, err
    assert "waiting for all 2 processes" in err and "SWINZOO_RENDEZVOUS_TIMEOUT" in err, err
    assert "WORLD_SIZE=2" in err.splitlines()[-1] and "Traceback" not in err
    assert time.monotonic() - started < 90


# --------------------------------------------------------------------------------------------- a dripping server
def test_a_server_that_drips_bytes_is_timed_out_by_the_whole_download_bound(tmp_path):
    HOSTILE.append("server dripping one byte at a time")
    with serve_files({}) as server:
        server.drip("drip.pth", 0.05)
        started = time.monotonic()
        result = run_cli("convert", "--source", server.url("drip.pth"), "--out", tmp_path / "o", "--cache-dir",
                         tmp_path / "cache", "--quiet", env={"SWINZOO_DOWNLOAD_TIMEOUT": "2"}, seconds=60)  # fmt: skip
    assert_clean_failure(result, "drip.pth", "SWINZOO_DOWNLOAD_TIMEOUT", "2s")
    assert time.monotonic() - started < 30 and not (tmp_path / "o").exists()


def test_an_invalid_download_bound_is_named(tmp_path):
    HOSTILE.append("SWINZOO_DOWNLOAD_TIMEOUT=soon")
    with serve_files({}) as server:
        server.drip("drip.pth", 0.05)
        args = ["convert", "--source", server.url("drip.pth"), "--out", tmp_path / "o", "--cache-dir", tmp_path / "c"]
        result = run_cli(*args, "--quiet", env={"SWINZOO_DOWNLOAD_TIMEOUT": "soon"}, seconds=60)
    assert_clean_failure(result, "SWINZOO_DOWNLOAD_TIMEOUT", "'soon'")
