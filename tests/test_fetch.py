"""Checkpoint downloads against a real HTTP server on 127.0.0.1: caching, resume, hashes and errors.

Expected hashes are computed here with hashlib from the bytes the server holds, never taken from fetch().
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from pathlib import Path

import pytest
from httpserver import FileServer, serve_files, unused_port

from swinzoo.fetch import (
    ChecksumMismatchError,
    FetchError,
    HTTPStatusError,
    IncompleteDownloadError,
    LocalFileNotFoundError,
    ManualDownloadRequired,
    NetworkError,
    NotFoundError,
    cache_path_for,
    fetch,
)

NAME = "v1.0.0/swin_tiny_patch4_window7_224.pth"


def _checkpoint_like(n: int) -> bytes:
    """Random bytes behind a zip signature: what fetch's first-bytes check accepts as a torch.save file."""
    return b"PK\x03\x04" + os.urandom(n - 4)


DATA = _checkpoint_like(300_000)
DATA_SHA = hashlib.sha256(DATA).hexdigest()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server() -> FileServer:
    with serve_files({NAME: DATA}) as s:
        yield s


def _leftovers(cache: Path) -> list[str]:
    """Files in the cache other than lock files."""
    return sorted(p.name for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


def test_download_checks_hash_and_second_call_is_served_from_cache_without_a_request(server, tmp_path):
    first = fetch(server.url(NAME), sha256=DATA_SHA, cache_dir=tmp_path, progress=False)
    assert first.path.read_bytes() == DATA
    assert (first.sha256, first.from_cache, first.pinned) == (DATA_SHA, False, True)
    assert first.path.name == "swin_tiny_patch4_window7_224.pth"
    assert first.path.is_relative_to(tmp_path)
    assert _leftovers(tmp_path) == ["swin_tiny_patch4_window7_224.pth"]  # no .part / metadata left

    second = fetch(server.url(NAME), sha256=DATA_SHA, cache_dir=tmp_path, progress=False)
    assert second.path == first.path
    assert (second.sha256, second.from_cache) == (DATA_SHA, True)
    assert len(server.requests) == 1


def test_unpinned_download_returns_the_hash_it_saw(server, tmp_path):
    result = fetch(server.url(NAME), cache_dir=tmp_path, progress=False)
    assert result.sha256 == DATA_SHA
    assert result.pinned is False
    assert result.path.read_bytes() == DATA


def test_progress_bar_enabled_does_not_change_the_result(server, tmp_path):
    result = fetch(server.url(NAME), sha256=DATA_SHA, cache_dir=tmp_path, progress=True)
    assert result.path.read_bytes() == DATA


def test_interrupted_transfer_is_resumed_with_a_range_request(server, tmp_path):
    server.interrupt(NAME, 100_000)
    result = fetch(server.url(NAME), sha256=DATA_SHA, cache_dir=tmp_path, progress=False)

    assert result.path.read_bytes() == DATA
    gets = server.requests_for(NAME)
    assert len(gets) == 2
    assert "range" not in gets[0].headers
    assert gets[1].headers["range"] == "bytes=100000-"
    assert gets[1].headers["if-range"] == f'"{DATA_SHA}"'  # the server's ETag, so a changed file restarts


def test_partial_file_left_by_an_earlier_call_is_resumed_by_the_next(server, tmp_path):
    server.interrupt(NAME, 120_000)
    server.interrupt(NAME, 0)  # the retry gets nothing: the call gives up and keeps the partial file
    with pytest.raises(IncompleteDownloadError) as info:
        fetch(server.url(NAME), sha256=DATA_SHA, cache_dir=tmp_path, progress=False)
    part = cache_path_for(server.url(NAME), tmp_path).with_name("swin_tiny_patch4_window7_224.pth.part")
    assert part.read_bytes() == DATA[:120_000]
    assert server.url(NAME) in str(info.value) and "120000 of 300000" in str(info.value)

    result = fetch(server.url(NAME), sha256=DATA_SHA, cache_dir=tmp_path, progress=False)
    assert result.path.read_bytes() == DATA
    assert server.requests_for(NAME)[-1].headers["range"] == "bytes=120000-"
    assert not part.exists()


def test_server_that_ignores_range_restarts_the_file_cleanly(server, tmp_path):
    server.ignore_range = True
    server.interrupt(NAME, 100_000)
    result = fetch(server.url(NAME), sha256=DATA_SHA, cache_dir=tmp_path, progress=False)

    gets = server.requests_for(NAME)
    assert len(gets) == 2  # the 200 answer is used as a fresh start, not thrown away and asked for again
    assert gets[1].headers["range"] == "bytes=100000-"  # asked to resume, got the whole file (200)
    assert result.path.read_bytes() == DATA  # appending the 200 body would have made 400 000 bytes


def test_file_changed_upstream_between_attempts_is_downloaded_afresh(server, tmp_path):
    server.interrupt(NAME, 120_000)
    server.interrupt(NAME, 0)
    with pytest.raises(IncompleteDownloadError):
        fetch(server.url(NAME), cache_dir=tmp_path, progress=False)
    new = _checkpoint_like(250_000)
    server.files[NAME] = new  # new ETag: If-Range fails, the server sends the full new file

    result = fetch(server.url(NAME), cache_dir=tmp_path, progress=False)
    assert result.path.read_bytes() == new
    assert result.sha256 == _sha(new)


def test_complete_part_file_from_a_crash_before_rename_is_accepted(server, tmp_path):
    final = cache_path_for(server.url(NAME), tmp_path)
    final.parent.mkdir(parents=True)
    final.with_name(final.name + ".part").write_bytes(DATA)

    result = fetch(server.url(NAME), sha256=DATA_SHA, cache_dir=tmp_path, progress=False)
    assert result.path.read_bytes() == DATA
    gets = server.requests_for(NAME)
    assert len(gets) == 1 and gets[0].headers["range"] == f"bytes={len(DATA)}-"  # answered 416


def test_redirect_is_followed_and_the_resume_reaches_the_target(tmp_path):
    with serve_files({"cdn/blob": DATA}) as s:
        s.redirect("releases/swin.pth", "cdn/blob")
        s.interrupt("cdn/blob", 50_000)
        result = fetch(s.url("releases/swin.pth"), sha256=DATA_SHA, cache_dir=tmp_path, progress=False)
        assert result.path.name == "swin.pth"
        assert result.path.read_bytes() == DATA
        assert s.requests_for("cdn/blob")[-1].headers["range"] == "bytes=50000-"


def test_wrong_hash_is_refused_the_download_deleted_and_both_hashes_named(server, tmp_path):
    wrong = _sha(b"not the checkpoint")
    with pytest.raises(ChecksumMismatchError) as info:
        fetch(server.url(NAME), sha256=wrong, cache_dir=tmp_path, progress=False)
    message = str(info.value)
    assert server.url(NAME) in message
    assert wrong in message and DATA_SHA in message
    assert (info.value.expected, info.value.actual) == (wrong, DATA_SHA)
    assert _leftovers(tmp_path) == []


def test_hash_is_accepted_in_upper_case_or_with_prefix(server, tmp_path):
    result = fetch(server.url(NAME), sha256="sha256:" + DATA_SHA.upper(), cache_dir=tmp_path, progress=False)
    assert result.pinned and result.sha256 == DATA_SHA


def test_malformed_hash_is_rejected_before_any_request(server, tmp_path):
    with pytest.raises(FetchError, match="64 hex"):  # a FetchError, so the CLI reports it as one
        fetch(server.url(NAME), sha256="abc123", cache_dir=tmp_path, progress=False)
    assert server.requests == []


def test_damaged_cached_file_is_downloaded_again_when_pinned(server, tmp_path):
    first = fetch(server.url(NAME), sha256=DATA_SHA, cache_dir=tmp_path, progress=False)
    first.path.write_bytes(b"bit rot")
    again = fetch(server.url(NAME), sha256=DATA_SHA, cache_dir=tmp_path, progress=False)
    assert again.from_cache is False
    assert again.path.read_bytes() == DATA
    assert len(server.requests_for(NAME)) == 2


def test_two_urls_with_the_same_file_name_do_not_collide(tmp_path):
    other = _checkpoint_like(1000)
    with serve_files({"v1/model.pth": DATA, "v2/model.pth": other}) as s:
        a = fetch(s.url("v1/model.pth"), cache_dir=tmp_path, progress=False)
        b = fetch(s.url("v2/model.pth"), cache_dir=tmp_path, progress=False)
    assert a.path != b.path
    assert a.path.name == b.path.name == "model.pth"
    assert (a.path.read_bytes(), b.path.read_bytes()) == (DATA, other)


def test_filename_argument_names_the_cached_file(server, tmp_path):
    result = fetch(server.url(NAME), cache_dir=tmp_path, progress=False, filename="tiny.pth")
    assert result.path.name == "tiny.pth"


def test_cache_dir_defaults_to_the_environment_variable(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SWINZOO_CACHE", str(tmp_path / "env-cache"))
    result = fetch(server.url(NAME), progress=False)
    assert result.path.is_relative_to(tmp_path / "env-cache")


def test_concurrent_fetches_of_one_url_download_it_once(server, tmp_path):
    server.stall(NAME, 0.3)  # keep the first download in flight while the second thread arrives
    results: list = []
    errors: list = []

    def worker() -> None:
        try:
            results.append(fetch(server.url(NAME), sha256=DATA_SHA, cache_dir=tmp_path, progress=False))
        except Exception as e:  # surfaced by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert [r.path.read_bytes() == DATA for r in results] == [True, True]
    assert sorted(r.from_cache for r in results) == [False, True]
    assert len(server.requests_for(NAME)) == 1


# ------------------------------------------------------------------------------------------------ errors


def test_404_names_the_url_and_the_status(server, tmp_path):
    url = server.url("v1.0.0/missing.pth")
    with pytest.raises(NotFoundError) as info:
        fetch(url, cache_dir=tmp_path, progress=False)
    assert url in str(info.value) and "404" in str(info.value)
    assert info.value.status == 404
    assert _leftovers(tmp_path) == []


def test_server_error_status_names_the_url_and_the_status(server, tmp_path):
    server.fail(NAME, 503)
    with pytest.raises(HTTPStatusError) as info:
        fetch(server.url(NAME), cache_dir=tmp_path, progress=False)
    assert not isinstance(info.value, NotFoundError)
    assert info.value.status == 503
    assert server.url(NAME) in str(info.value) and "503" in str(info.value)


def test_connection_refused_names_the_url_and_suggests_a_local_source(tmp_path):
    url = f"http://127.0.0.1:{unused_port()}/swin.pth"
    with pytest.raises(NetworkError) as info:
        fetch(url, cache_dir=tmp_path, progress=False)
    assert url in str(info.value)
    assert "--source PATH" in str(info.value)
    assert "refused" in str(info.value).lower()


def test_unresponsive_server_times_out_with_a_network_error(server, tmp_path):
    server.stall(NAME, 1.5)
    with pytest.raises(NetworkError) as info:
        fetch(server.url(NAME), cache_dir=tmp_path, progress=False, timeout=0.3)
    assert server.url(NAME) in str(info.value)
    assert "timed out" in str(info.value).lower()


def test_manual_download_error_names_the_checkpoint_and_the_hint():
    err = ManualDownloadRequired("simmim_swin_base_100ep", "Google Drive id 1Wcbr66JL26FF30Kip9fZa_0lXrDAKP-d")
    assert isinstance(err, FetchError)
    assert "simmim_swin_base_100ep" in str(err) and "1Wcbr66JL26FF30Kip9fZa_0lXrDAKP-d" in str(err)
    assert "--source PATH" in str(err)


# ------------------------------------------------------------------------------------------------ local


def test_local_path_is_used_in_place_with_and_without_a_hash(tmp_path):
    path = tmp_path / "ckpt.pth"
    path.write_bytes(DATA)
    unpinned = fetch(path, progress=False)
    assert (unpinned.path, unpinned.sha256, unpinned.pinned) == (path, DATA_SHA, False)
    pinned = fetch(str(path), sha256=DATA_SHA, progress=False)
    assert (pinned.path, pinned.pinned, pinned.from_cache) == (path, True, True)


def test_local_file_with_the_wrong_hash_is_refused_but_not_deleted(tmp_path):
    path = tmp_path / "ckpt.pth"
    path.write_bytes(DATA)
    wrong = _sha(b"x")
    with pytest.raises(ChecksumMismatchError) as info:
        fetch(path, sha256=wrong, progress=False)
    assert str(path) in str(info.value) and wrong in str(info.value) and DATA_SHA in str(info.value)
    assert path.read_bytes() == DATA


def test_missing_local_file_is_a_clear_error(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(LocalFileNotFoundError) as info:
        fetch(path, progress=False)
    assert str(path) in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_file_url_is_treated_as_a_local_path(tmp_path):
    path = tmp_path / "ckpt.pth"
    path.write_bytes(DATA)
    assert fetch(path.as_uri(), progress=False).path == path


# ------------------------------------------------------------------------------------------------ eviction
def test_evict_deletes_a_download_and_the_next_fetch_downloads_it_again(server, tmp_path):
    from swinzoo.fetch import evict

    got = fetch(server.url(NAME), sha256=DATA_SHA, cache_dir=tmp_path, progress=False)
    assert evict(got.path, tmp_path) is True
    assert not got.path.exists() and _leftovers(tmp_path) == []
    again = fetch(server.url(NAME), sha256=DATA_SHA, cache_dir=tmp_path, progress=False)
    assert again.path == got.path and not again.from_cache and len(server.requests) == 2


def test_evict_never_deletes_a_file_outside_the_cache_a_link_or_a_hard_linked_file(server, tmp_path):
    from swinzoo.fetch import evict

    cache = tmp_path / "cache"
    got = fetch(server.url(NAME), sha256=DATA_SHA, cache_dir=cache, progress=False)
    users = tmp_path / "mine.pth"  # a user's --source file
    users.write_bytes(DATA)
    assert evict(users, cache) is False and users.exists()
    assert evict(got.path, tmp_path / "another-cache") is False and got.path.exists()
    link = got.path.parent / "link.pth"
    link.symlink_to(users)
    assert evict(link, cache) is False and users.exists() and link.is_symlink()
    linked = got.path.parent / "hard.pth"
    os.link(users, linked)
    assert evict(linked, cache) is False and users.exists() and linked.exists()
    outside = cache / "notahexfolder"
    outside.mkdir()
    (outside / "x.pth").write_bytes(DATA)
    assert evict(outside / "x.pth", cache) is False and (outside / "x.pth").exists()


def test_file_hashes_match_sha256sum_and_git_hash_object(tmp_path):
    """swinzoo's one home for file hashes agrees with the tools that define them (coreutils, git)."""
    import shutil

    from swinzoo.fetch import git_blob_sha1, sha256_file

    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    git = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True)
    assert git_blob_sha1(path) == git.stdout.strip()


def test_every_digest_the_manifest_holds_is_checked_not_only_sha256(server, tmp_path):
    import dataclasses

    from swinzoo.convert import resolve_source
    from swinzoo.manifest import get_entry

    real = get_entry("swin-tiny-patch4-window7-224")
    assert real.source.sha384 and not real.source.sha256  # OpenVINO's published sha384 is the only digest
    url = server.url(NAME)

    def entry(sha384: str):
        source = dataclasses.replace(real.source, urls=(url,), sha384=sha384, size_bytes=len(DATA))
        return dataclasses.replace(real, source=source)

    with pytest.raises(ChecksumMismatchError) as info:  # the published file's sha384, another file's bytes
        resolve_source(entry(real.source.sha384), cache_dir=tmp_path / "a", progress=False)
    assert info.value.algorithm == "sha384" and real.source.sha384 in str(info.value)
    assert hashlib.sha384(DATA).hexdigest() in str(info.value) and url in str(info.value)
    assert _leftovers(tmp_path / "a") == []

    good = resolve_source(entry(hashlib.sha384(DATA).hexdigest()), cache_dir=tmp_path / "b", progress=False)
    assert good.path.read_bytes() == DATA and good.sha256 == DATA_SHA


def test_a_cached_file_with_another_published_digest_is_replaced(server, tmp_path):
    digests = {"sha384": hashlib.sha384(DATA).hexdigest()}
    first = fetch(server.url(NAME), cache_dir=tmp_path, progress=False, digests=digests)
    first.path.chmod(0o644)
    first.path.write_bytes(DATA[:-1] + bytes([DATA[-1] ^ 1]))  # damaged in the cache
    again = fetch(server.url(NAME), cache_dir=tmp_path, progress=False, digests=digests)
    assert again.path.read_bytes() == DATA and len(server.requests) == 2
