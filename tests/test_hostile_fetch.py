"""Hostile downloads, cache contents and source URLs, met through ``swinzoo convert --source URL`` (issue 11).

Each case asserts the hostile-input contract of tests/hostile.py: a non-zero exit with a one-line message
naming the culprit, no traceback, bounded memory and time, nothing outside the output touched (victim files
stay byte-identical), nothing half-written left behind. The server is a real socket on 127.0.0.1.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tiny_config
from hostile import assert_clean_failure, leftovers, run_cli, run_cli_subprocess, tree_digest
from httpserver import FileServer, serve_files

from swinzoo.fetch import cache_path_for
from swinzoo.manifest import get_entry
from swinzoo.synthetic import write_official_checkpoint
from swinzoo.system import process_start_time

SECONDS = 60
VICTIM_BYTES = b"the user's own file: must never change\n"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> bytes:
    """The bytes of a small official-layout checkpoint that converts cleanly."""
    path = tmp_path_factory.mktemp("ckpt") / "ckpt.pth"
    return write_official_checkpoint(path, tiny_config(1, embed_dim=16), "official-swin", seed=1).read_bytes()


@pytest.fixture
def server(checkpoint) -> FileServer:
    with serve_files({"ckpt.pth": checkpoint}) as s:
        yield s


@pytest.fixture
def victim(tmp_path) -> Path:
    path = tmp_path / "victim" / "notes.txt"
    path.parent.mkdir()
    path.write_bytes(VICTIM_BYTES)
    return path


def convert(url: str, tmp_path: Path, *extra: str, env: dict[str, str] | None = None):
    return run_cli(
        "convert", "--source", url, "--cache-dir", tmp_path / "cache", "--out", tmp_path / "out", "--quiet", *extra,
        env=env, seconds=SECONDS,
    )  # fmt: skip


def entry_dir(server: FileServer, tmp_path: Path, name: str = "ckpt.pth") -> Path:
    """The cache entry folder of ``name`` (computed with hashlib from the URL, as the cache layout says)."""
    url = server.url(name)
    folder = tmp_path / "cache" / hashlib.sha256(url.encode()).hexdigest()[:16]
    assert cache_path_for(url, tmp_path / "cache").parent == folder
    return folder


# ------------------------------------------------------------------------------------------------ symlinks


@pytest.mark.parametrize("leaf", ["ckpt.pth.part", "ckpt.pth", "ckpt.pth.lock"])
def test_planted_symlink_in_the_cache_is_refused_and_its_target_untouched(server, tmp_path, victim, leaf):
    folder = entry_dir(server, tmp_path)
    folder.mkdir(parents=True)
    (folder / leaf).symlink_to(victim)

    message = assert_clean_failure(convert(server.url("ckpt.pth"), tmp_path), str(folder / leaf), "link")
    assert len(message.splitlines()) == 1
    assert victim.read_bytes() == VICTIM_BYTES
    assert (folder / leaf).is_symlink()  # refused, not silently removed: the user sees what was planted
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("leaf", ["ckpt.pth.part.json", "ckpt.pth.part.json.tmp"])
def test_planted_symlink_at_a_metadata_name_is_replaced_never_written_through(server, tmp_path, victim, leaf):
    folder = entry_dir(server, tmp_path)
    folder.mkdir(parents=True)
    (folder / leaf).symlink_to(victim)

    result = convert(server.url("ckpt.pth"), tmp_path)
    assert result.exit_code == 0, result.output
    assert victim.read_bytes() == VICTIM_BYTES
    assert not (folder / leaf).is_symlink()


def test_symlink_to_a_partial_file_with_planted_metadata_link_is_refused(server, tmp_path, victim, checkpoint):
    folder = entry_dir(server, tmp_path)
    folder.mkdir(parents=True)
    (folder / "ckpt.pth.part").write_bytes(checkpoint[:1000])
    (folder / "ckpt.pth.part.json").symlink_to(victim)

    assert_clean_failure(convert(server.url("ckpt.pth"), tmp_path), str(folder / "ckpt.pth.part.json"), "link")
    assert victim.read_bytes() == VICTIM_BYTES


def test_hard_linked_partial_file_is_refused_and_not_appended_to(server, tmp_path, victim):
    folder = entry_dir(server, tmp_path)
    folder.mkdir(parents=True)
    os.link(victim, folder / "ckpt.pth.part")

    assert_clean_failure(convert(server.url("ckpt.pth"), tmp_path), str(folder / "ckpt.pth.part"), "hard link")
    assert victim.read_bytes() == VICTIM_BYTES


def test_cache_entry_folder_that_is_a_symlink_is_refused(server, tmp_path, victim):
    folder = entry_dir(server, tmp_path)
    folder.parent.mkdir(parents=True)
    folder.symlink_to(victim.parent, target_is_directory=True)
    before = tree_digest(victim.parent)

    assert_clean_failure(convert(server.url("ckpt.pth"), tmp_path), str(folder), "link")
    assert tree_digest(victim.parent) == before


def test_fifo_planted_as_the_cached_file_is_refused_without_hanging(server, tmp_path):
    folder = entry_dir(server, tmp_path)
    folder.mkdir(parents=True)
    os.mkfifo(folder / "ckpt.pth")
    assert_clean_failure(convert(server.url("ckpt.pth"), tmp_path), str(folder / "ckpt.pth"), "FIFO")


def test_folder_planted_at_the_partial_file_name_is_refused(server, tmp_path):
    part = entry_dir(server, tmp_path) / "ckpt.pth.part"
    part.mkdir(parents=True)
    assert_clean_failure(convert(server.url("ckpt.pth"), tmp_path), str(part), "is a folder")
    assert part.is_dir()


def test_fresh_download_never_writes_through_a_guessable_temporary_name(server, tmp_path, victim):
    """The body goes to an O_EXCL temporary with a random name: links at every pid-based name are ignored."""
    folder = entry_dir(server, tmp_path)
    folder.mkdir(parents=True)
    for pid in range(os.getpid() - 5, os.getpid() + 6):
        (folder / f".ckpt.pth.{pid}.tmp").symlink_to(victim)
    result = convert(server.url("ckpt.pth"), tmp_path)
    assert result.exit_code == 0, result.output
    assert victim.read_bytes() == VICTIM_BYTES


# ------------------------------------------------------------------------------------------------ secrets


def _all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink())


def test_presigned_url_secrets_are_never_printed_nor_stored(server, tmp_path):
    host = server.base_url.removeprefix("http://")
    url = f"http://alice:PW-s3cr3t@{host}/ckpt.pth?X-Amz-Signature=SIG-s3cr3t&X-Amz-Credential=CRED-s3cr3t"

    result = convert(url, tmp_path)
    assert result.exit_code == 0, result.output
    secrets = [b"s3cr3t", b"alice"]
    for secret in secrets:
        assert secret.decode() not in result.output
        assert secret not in _all_bytes(tmp_path / "out")  # safetensors metadata, conversion.json, card
        assert secret not in _all_bytes(tmp_path / "cache")  # .part.json keeps a hash, not the URL
    conversion = json.loads((tmp_path / "out" / "conversion.json").read_text())
    assert conversion["source"] == f"http://{host}/ckpt.pth (credentials and query string removed)"
    # the credentials still reached the server, as Basic auth
    sent = server.requests_for("ckpt.pth")[-1].headers["authorization"]
    assert sent == "Basic " + base64.b64encode(b"alice:PW-s3cr3t").decode()


def test_presigned_url_secrets_are_not_in_an_error_message(server, tmp_path):
    host = server.base_url.removeprefix("http://")
    url = f"http://bob:PW-s3cr3t@{host}/missing.pth?X-Amz-Signature=SIG-s3cr3t"
    message = assert_clean_failure(convert(url, tmp_path), f"http://{host}/missing.pth", "404")
    assert "s3cr3t" not in message and "bob" not in message


# ------------------------------------------------------------------------------------------------ size caps


def test_endless_body_stops_at_the_cap_and_the_partial_file_is_deleted(server, tmp_path):
    server.endless("endless.pth")
    cap = 1_000_000
    result = convert(server.url("endless.pth"), tmp_path, env={"SWINZOO_MAX_DOWNLOAD_BYTES": str(cap)})
    assert_clean_failure(result, server.url("endless.pth"), str(cap), "SWINZOO_MAX_DOWNLOAD_BYTES")
    assert leftovers(tmp_path / "cache") == []
    assert not list((tmp_path / "cache").rglob("endless.pth"))


def test_content_length_above_the_cap_is_refused_before_the_body_is_read(server, tmp_path, checkpoint):
    cap = len(checkpoint) - 1
    result = convert(server.url("ckpt.pth"), tmp_path, env={"SWINZOO_MAX_DOWNLOAD_BYTES": str(cap)})
    assert_clean_failure(result, server.url("ckpt.pth"), str(len(checkpoint)), str(cap))
    assert leftovers(tmp_path / "cache") == []


@pytest.mark.parametrize("value", ["lots", "-5", "0"])
def test_invalid_download_cap_variable_is_named(server, tmp_path, value):
    result = convert(server.url("ckpt.pth"), tmp_path, env={"SWINZOO_MAX_DOWNLOAD_BYTES": value})
    assert_clean_failure(result, "SWINZOO_MAX_DOWNLOAD_BYTES", repr(value))
    assert server.requests == []


def test_zoo_entry_download_is_capped_by_the_manifest_size(server, tmp_path, monkeypatch):
    server.endless("endless.pth")
    entry = get_entry("swin-tiny-patch4-window7-224")
    source = dataclasses.replace(entry.source, urls=(server.url("endless.pth"),), sha256="", pinned=False,
                                 size_bytes=300_000)  # fmt: skip
    small = dataclasses.replace(entry, source=source)
    monkeypatch.setattr("swinzoo.convert.get_entry", lambda name: small)
    result = run_cli("convert", entry.name, "--cache-dir", tmp_path / "cache", "--out", tmp_path / "out", "--quiet",
                     seconds=SECONDS)  # fmt: skip
    assert_clean_failure(result, "300000")
    assert leftovers(tmp_path / "cache") == []


# ------------------------------------------------------------------------------------------------ bad bodies


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"<!DOCTYPE html><html><body>Sign in to continue</body></html>" * 20, "HTML page"),
        (b'<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>' * 5, "XML document"),
        (b"x", "only 1 byte"),
        (b"", "empty body"),
    ],
)
def test_a_body_that_is_not_a_checkpoint_is_named_and_not_cached(tmp_path, body, said):
    with serve_files({"w.pth": body}) as s:
        assert_clean_failure(convert(s.url("w.pth"), tmp_path), s.url("w.pth"), said)
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and not p.name.endswith(".lock")] == []


def test_a_cached_html_page_is_deleted_with_a_message_and_downloaded_again(server, tmp_path, checkpoint):
    final = entry_dir(server, tmp_path) / "ckpt.pth"
    final.parent.mkdir(parents=True)
    final.write_bytes(b"<html><body>login</body></html>")

    result = convert(server.url("ckpt.pth"), tmp_path)
    assert result.exit_code == 0, result.output
    assert str(final) in result.output and "HTML page" in result.output
    assert final.read_bytes() == checkpoint
    assert len(server.requests_for("ckpt.pth")) == 1


# ------------------------------------------------------------------------------------------------ leftovers


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_dead_processes_are_removed_and_live_ones_kept(server, tmp_path):
    folder = entry_dir(server, tmp_path)
    folder.mkdir(parents=True)
    other = tmp_path / "cache" / "synthetic"
    other.mkdir()
    dead = _dead_pid()
    stale = [folder / f".ckpt.pth.{dead}.0123456789abcdef.tmp", other / f".x.pth.{dead}.tmp"]
    live = other / f".y.pth.{os.getpid()}.tmp"
    hour_ago = time.time() - 3600
    for path in [*stale, live]:
        path.write_bytes(b"half")
        os.utime(path, (hour_ago, hour_ago))
    # a live process's temporary is never older than the process (an older one is a reused pid's: stale)
    started = process_start_time(os.getpid()) or hour_ago
    os.utime(live, (max(hour_ago, started + 3), max(hour_ago, started + 3)))

    result = convert(server.url("ckpt.pth"), tmp_path)
    assert result.exit_code == 0, result.output
    assert [p.exists() for p in stale] == [False, False]
    assert live.exists()


def test_sigterm_during_a_download_leaves_only_the_resumable_part_file(server, tmp_path):
    server.endless("slow.pth", delay=0.02)
    cache = tmp_path / "cache"
    child = run_cli_subprocess("convert", "--source", server.url("slow.pth"), "--cache-dir", cache,
                               "--out", tmp_path / "out", "--quiet")  # fmt: skip
    deadline = time.monotonic() + 120
    while server.endless_sent.get("slow.pth", 0) < 200_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=60)
    name = "slow.pth"
    assert leftovers(cache) == sorted(str(p.relative_to(cache)) for p in cache.glob(f"*/{name}.part*"))
    assert {p.name for p in cache.glob("*/*")} <= {f"{name}.part", f"{name}.part.json", f"{name}.lock"}
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ sources


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("http://[::1", "invalid URL"),
        ("http://127.0.0.1:99999/x.pth", "invalid URL"),
        ("http://127.0.0.1:abc/x.pth", "invalid URL"),
        ("http:///x.pth", "no host"),
        ("ftp://example.com/swin.pth", "unsupported URL scheme 'ftp'"),
        ("s3://bucket/swin.pth?X-Amz-Signature=s3cr3t", "unsupported URL scheme 's3'"),
    ],
)
def test_unusable_url_is_a_one_line_error_naming_it(tmp_path, source, said):
    message = assert_clean_failure(convert(source, tmp_path), said, source.split("?")[0])
    assert "s3cr3t" not in message
    assert not (tmp_path / "cache").exists() or leftovers(tmp_path / "cache") == []


def test_a_folder_as_source_is_called_a_folder(tmp_path):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    message = assert_clean_failure(convert(str(folder), tmp_path), str(folder), "is a folder")
    assert "not found" not in message


def test_a_fifo_as_source_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "pipe.pth"
    os.mkfifo(fifo)
    assert_clean_failure(convert(str(fifo), tmp_path), str(fifo), "FIFO")


def test_cache_dir_below_a_file_is_a_one_line_error_naming_it(server, tmp_path):
    (tmp_path / "file").write_text("x")
    cache = tmp_path / "file" / "cache"
    result = run_cli("convert", "--source", server.url("ckpt.pth"), "--cache-dir", cache, "--out", tmp_path / "o",
                     seconds=SECONDS)  # fmt: skip
    assert_clean_failure(result, str(cache))
    assert (tmp_path / "file").read_text() == "x"


def test_unwritable_cache_dir_is_a_one_line_error_naming_it(server, tmp_path):
    cache = Path("/sys/swinzoo-cache-test") if os.geteuid() == 0 else tmp_path / "ro" / "cache"
    if os.geteuid() != 0:
        cache.parent.mkdir()
        cache.parent.chmod(0o500)
    result = run_cli("convert", "--source", server.url("ckpt.pth"), "--cache-dir", cache, "--out", tmp_path / "o",
                     seconds=SECONDS)  # fmt: skip
    assert_clean_failure(result, str(cache))
    assert server.requests == []


# ------------------------------------------------------------------------------------------------ resume (issue 21)
@pytest.fixture(scope="module")
def two_versions(tmp_path_factory) -> tuple[bytes, bytes]:
    """Two versions of one checkpoint (same layout and size, other values): what a server may hold before and
    after an update."""
    folder = tmp_path_factory.mktemp("versions")
    old, new = (  # one file name: the zip's record names are the same in both
        write_official_checkpoint(folder / f"v{seed}" / "ckpt.pth", tiny_config(1, embed_dim=16), "official-swin",
                                  seed=seed)
        for seed in (1, 2)
    )  # fmt: skip
    assert old.stat().st_size == new.stat().st_size
    return old.read_bytes(), new.read_bytes()


def _partial_download(url: str, cache: Path, head: bytes, **validators: str) -> None:
    """The cache as an earlier, interrupted download left it: the head of the file, and its validators."""
    final = cache_path_for(url, cache)
    final.parent.mkdir(parents=True)
    Path(f"{final}.part").write_bytes(head)
    meta = {"url_sha256": hashlib.sha256(url.encode()).hexdigest(), **validators}
    Path(f"{final}.part.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("validators", [{}, {"ETag": 'W/"weak"'}], ids=["none", "weak-etag"])
def test_a_partial_download_is_not_resumed_when_nothing_proves_the_file_unchanged(
    server, tmp_path, two_versions, validators
):
    """The file changed on the server since the partial download, and the server sends no validator: resuming
    would splice the old head onto the new tail. The download starts over and is the new file whole."""
    from swinzoo.fetch import fetch

    old, new = two_versions
    server.files["changed.pth"] = new
    server.send_validators = False
    url = server.url("changed.pth")
    _partial_download(url, tmp_path / "cache", old[: len(old) // 2], **validators)
    result = fetch(url, cache_dir=tmp_path / "cache", progress=False)
    assert Path(result.path).read_bytes() == new
    assert all("range" not in r.headers for r in server.requests_for("changed.pth"))


def test_a_partial_download_of_a_file_that_changed_is_not_resumed_by_a_server_ignoring_if_range(
    server, tmp_path, two_versions
):
    """The partial file's ETag is not the server's any more, and the server ignores If-Range (answers the range
    of its new file): the changed ETag of its 206 is caught and the download starts over."""
    from swinzoo.fetch import fetch

    old, new = two_versions
    server.files["changed.pth"] = new
    url = server.url("changed.pth")
    server.honour_if_range = False
    _partial_download(url, tmp_path / "cache", old[: len(old) // 2], ETag='"' + hashlib.sha256(old).hexdigest() + '"')
    result = fetch(url, cache_dir=tmp_path / "cache", progress=False)
    assert Path(result.path).read_bytes() == new


def test_a_checkpoint_spliced_from_two_versions_fails_its_crc_on_load(server, tmp_path, two_versions):
    """What an unguarded resume made (the old head, the new tail): every zip record states its CRC-32, which
    torch's reader does not check; swinzoo does, and names the file."""
    old, new = two_versions
    half = len(old) // 2
    server.files["spliced.pth"] = old[:half] + new[half:]
    result = convert(server.url("spliced.pth"), tmp_path)
    assert_clean_failure(result, "spliced.pth", "CRC", "download it again")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------- cache writes
def _tiny_checkpoint(path: Path) -> Path:
    return write_official_checkpoint(path, tiny_config(1, embed_dim=16), "official-swin", seed=4)


@pytest.mark.parametrize("planted", ["predictable", "random"])
def test_a_link_planted_at_a_synthetic_temporary_name_is_never_written_through(tmp_path, monkeypatch, planted):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(VICTIM_BYTES)
    cache = tmp_path / "cache"
    cache.mkdir()
    final = cache / "ckpt.pth"
    if planted == "predictable":  # the name the old writer used: .NAME.<pid>.tmp
        (cache / f".{final.name}.{os.getpid()}.tmp").symlink_to(victim)
        _tiny_checkpoint(final)
        assert final.stat().st_size > 10_000 and not final.is_symlink()
    else:  # an attacker who guesses every name the writer draws: refused, naming the folder
        import swinzoo.fetch as fetch_module

        monkeypatch.setattr(fetch_module.secrets, "token_hex", lambda n: "ab" * n)
        # planted after the writer's clean-up of stale temporaries (which would remove it): O_EXCL must refuse it
        monkeypatch.setattr(fetch_module._Entry, "clean_own_temporaries", lambda self: None)
        (cache / f".{final.name}.{os.getpid()}.{'ab' * 8}.tmp").symlink_to(victim)
        from swinzoo.errors import SwinzooError

        with pytest.raises(SwinzooError, match=str(cache)):
            _tiny_checkpoint(final)
        assert not final.exists()
    assert victim.read_bytes() == VICTIM_BYTES


def test_a_killed_synthetic_generation_leaves_a_temporary_the_next_run_removes(tmp_path):
    cache = tmp_path / "cache"
    final = cache / "ckpt.pth"
    code = (
        "import sys, time; from pathlib import Path; from swinzoo.fetch import write_cache_file\n"
        "def write(f):\n    f.write(b'x' * 4096); f.flush(); print('writing', flush=True); time.sleep(60)\n"
        f"write_cache_file(Path({str(final)!r}), write)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "writing"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=SECONDS)
    left = [p.name for p in cache.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1 and left[0].startswith(f".{final.name}.{child.pid}.")  # what a kill leaves
    _tiny_checkpoint(final)
    assert [p.name for p in cache.iterdir() if p.name.endswith(".tmp")] == []
    assert final.stat().st_size > 10_000
