"""Download official checkpoints into a local cache, resumably, and check their sha256.

Uses only the standard library's urllib (no extra HTTP dependency). A download is written to
``<name>.part`` next to its final place; an interrupted transfer is continued with an HTTP ``Range``
request (validated with ``If-Range`` when the server gave an ETag/Last-Modified), and a server that
ignores ``Range`` is handled by starting over. The file is fsynced and moved into place with
``os.replace`` only after the whole body arrived and, when a hash is pinned, the hash matched.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock
from tqdm import tqdm

from .errors import SwinzooError

__all__ = [
    "FetchResult",
    "FetchError",
    "FetchArgumentError",
    "LocalFileNotFoundError",
    "HTTPStatusError",
    "NotFoundError",
    "NetworkError",
    "IncompleteDownloadError",
    "ChecksumMismatchError",
    "ManualDownloadRequired",
    "default_cache_dir",
    "cache_path_for",
    "sha256_file",
    "fetch",
]

log = logging.getLogger(__name__)

CACHE_ENV = "SWINZOO_CACHE"
_CHUNK = 1 << 20
_MAX_ATTEMPTS = 5  # attempts per fetch() call; each retry must have made progress
_USER_AGENT = "swinzoo-fetch/1 (+https://github.com/microsoft/Swin-Transformer checkpoints)"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


# ------------------------------------------------------------------------------------------------ errors


class FetchError(SwinzooError):
    """Base class: a checkpoint could not be obtained. The message names the URL or path."""


class FetchArgumentError(FetchError, ValueError):
    """An argument to fetch() is malformed (a sha256 that is not 64 hex digits, an unusable file name)."""


class LocalFileNotFoundError(FetchError, FileNotFoundError):
    """``source`` is a local path that does not exist."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"checkpoint file not found: {path}")


class HTTPStatusError(FetchError):
    """The server answered with an error status."""

    def __init__(self, url: str, status: int, reason: str = "") -> None:
        self.url, self.status, self.reason = url, status, reason
        text = f"{status} {reason}".strip()
        super().__init__(f"download failed: {url} answered HTTP {text}")


class NotFoundError(HTTPStatusError):
    """HTTP 404: the URL is wrong or the file was taken down."""

    def __init__(self, url: str, status: int = 404, reason: str = "Not Found") -> None:
        super().__init__(url, status, reason)
        self.args = (
            f"download failed: {url} answered HTTP 404 Not Found (moved or removed?). "
            "If you have the file, pass it with --source PATH.",
        )


class NetworkError(FetchError):
    """The server could not be reached or the connection broke (refused, DNS, timeout, reset)."""

    def __init__(self, url: str, cause: BaseException | str, *, message: str | None = None) -> None:
        self.url = url
        why = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        super().__init__(
            message
            or f"cannot download {url}: {why}. Check the network, or download the file yourself and pass "
            "it with --source PATH."
        )


class IncompleteDownloadError(NetworkError):
    """The transfer kept breaking off; the partial file is kept so the next call resumes it."""

    def __init__(self, url: str, have: int, total: int | None, part: Path, cause: str = "") -> None:
        self.have, self.total, self.part = have, total, part
        of = f" of {total}" if total is not None else ""
        because = f" ({cause})" if cause else ""
        super().__init__(
            url,
            cause,
            message=f"download of {url} stopped after {have}{of} bytes{because}; the partial file {part} "
            "is kept and the next attempt resumes it. Or download the file yourself and pass it with "
            "--source PATH.",
        )


class ChecksumMismatchError(FetchError):
    """The bytes do not have the pinned sha256 (corrupt transfer, or the file changed upstream)."""

    def __init__(self, source: str, expected: str, actual: str, deleted: bool) -> None:
        self.source, self.expected, self.actual = source, expected, actual
        tail = " The downloaded file was deleted." if deleted else ""
        super().__init__(
            f"sha256 mismatch for {source}: expected {expected}, got {actual}.{tail}"
            " If the file changed upstream, check it and update the pinned hash."
        )


class ManualDownloadRequired(FetchError):  # noqa: N818 - the name says what the user must do
    """A checkpoint has no direct URL (e.g. Google Drive only); the user must fetch it by hand."""

    def __init__(self, name: str, hint: str) -> None:
        self.name, self.hint = name, hint
        super().__init__(
            f"{name} cannot be downloaded automatically: {hint}. Download it yourself and pass it with --source PATH."
        )


# ------------------------------------------------------------------------------------------------ result


@dataclass(frozen=True)
class FetchResult:
    """Where the checkpoint is, and what its bytes hash to."""

    path: Path
    sha256: str  # the hash actually computed from the bytes
    from_cache: bool  # True when nothing was downloaded (cache hit or local file)
    pinned: bool  # True when ``sha256`` was checked against an expected value


# ------------------------------------------------------------------------------------------------ helpers


def default_cache_dir() -> Path:
    """``$SWINZOO_CACHE``, else ``$XDG_CACHE_HOME/swinzoo/checkpoints`` (``~/.cache/...``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "swinzoo" / "checkpoints"


def _is_url(source: str | Path) -> bool:
    return isinstance(source, str) and source.split(":", 1)[0].lower() in ("http", "https")


def _url_filename(url: str) -> str:
    name = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    return _safe_filename(name) or "download"


def _safe_filename(name: str) -> str:
    name = name.replace("/", "_").replace("\\", "_").strip()
    return "" if name in ("", ".", "..") else name


def cache_path_for(url: str, cache_dir: Path | None = None, filename: str | None = None) -> Path:
    """Final cache location of ``url``: ``<cache>/<first 16 hex of sha256(url)>/<file name>``.

    The URL-hash folder keeps two URLs that end in the same file name apart while the file keeps its
    recognisable name.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    name = _safe_filename(filename) if filename else _url_filename(url)
    if not name:
        raise FetchArgumentError(f"invalid file name {filename!r} for {url}")
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return root / key / name


def sha256_file(path: Path, progress: bool = False) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    size = path.stat().st_size
    with (
        open(path, "rb") as f,
        _bar(size, 0, f"sha256 {path.name}", progress and size > 64 * _CHUNK) as bar,
    ):
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            bar.update(len(chunk))
    return h.hexdigest()


def _normalize_sha(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    value = sha256.strip().lower().removeprefix("sha256:")
    if not _SHA256_RE.match(value):
        raise FetchArgumentError(f"not a sha256 hex digest (64 hex characters): {sha256!r}")
    return value


def _bar(total: int | None, initial: int, desc: str, enabled: bool) -> tqdm:
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=not (enabled and sys.stderr.isatty()),
        leave=False,
    )


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # not supported (Windows); the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------------ fetch


def fetch(
    source: str | Path,
    *,
    sha256: str | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
    filename: str | None = None,
    timeout: float = 60.0,
) -> FetchResult:
    """Return a local, hash-checked copy of ``source`` (an http(s) URL or a local path).

    A local path is used in place (never copied, never deleted). A URL is downloaded once into the
    cache and reused afterwards; a cached copy is re-hashed on every call so a damaged cache cannot go
    unnoticed. With ``sha256`` given, a mismatch raises :class:`ChecksumMismatchError` (naming both
    hashes) and a downloaded file is deleted; without it, the hash seen is returned so the caller can
    print and pin it. ``timeout`` is per socket operation (connect, each read), not for the whole file.
    """
    expected = _normalize_sha(sha256)
    if isinstance(source, str) and source.lower().startswith("file://"):
        source = Path(urllib.request.url2pathname(urllib.parse.urlsplit(source).path))
    if not _is_url(source):
        return _fetch_local(Path(source).expanduser(), expected, progress)
    url = str(source)
    final = cache_path_for(url, cache_dir, filename)
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if final.is_file():
            seen = sha256_file(final, progress)
            if expected is None or seen == expected:
                return FetchResult(final, seen, from_cache=True, pinned=expected is not None)
            log.warning("cached %s has sha256 %s, expected %s: downloading again", final, seen, expected)
            final.unlink()
        seen = _download(url, final, progress, timeout)
        if expected is not None and seen != expected:
            final.with_name(final.name + ".part").unlink(missing_ok=True)
            final.with_name(final.name + ".part.json").unlink(missing_ok=True)
            raise ChecksumMismatchError(url, expected, seen, deleted=True)
        os.replace(final.with_name(final.name + ".part"), final)
        _fsync_dir(final.parent)
        final.with_name(final.name + ".part.json").unlink(missing_ok=True)
    return FetchResult(final, seen, from_cache=False, pinned=expected is not None)


def _fetch_local(path: Path, expected: str | None, progress: bool) -> FetchResult:
    if not path.is_file():
        raise LocalFileNotFoundError(path)
    seen = sha256_file(path, progress)
    if expected is not None and seen != expected:
        raise ChecksumMismatchError(str(path), expected, seen, deleted=False)
    return FetchResult(path, seen, from_cache=True, pinned=expected is not None)


def _download(url: str, final: Path, progress: bool, timeout: float) -> str:
    """Fill ``<final>.part`` with the whole body of ``url`` (resuming) and return its sha256.

    Retries within the call while each attempt makes progress, so a flaky connection does not need
    the user to rerun the command.
    """
    part = final.with_name(final.name + ".part")
    meta_path = final.with_name(final.name + ".part.json")
    failure: _Interrupted | None = None
    for attempt in range(_MAX_ATTEMPTS):
        before = part.stat().st_size if part.exists() else 0
        try:
            _download_once(url, part, meta_path, progress, timeout, final.name)
        except _Interrupted as e:
            failure = e
            now = part.stat().st_size if part.exists() else 0
            log.warning("download of %s interrupted at %d bytes (attempt %d): %s", url, now, attempt + 1, e)
            if now <= before and not e.restart:
                break  # no progress: do not spin
            continue
        # Hash what is on disk, not the stream: after a resume the bytes come from two transfers, and
        # what matters is the file that gets moved into place.
        return sha256_file(part, progress=False)
    assert failure is not None
    have = part.stat().st_size if part.exists() else 0
    if have == 0 and not failure.restart:
        raise NetworkError(url, failure.cause) from failure.cause
    raise IncompleteDownloadError(url, have, failure.total, part, str(failure)) from failure.cause


class _Interrupted(Exception):
    """One attempt ended early; ``restart`` means the partial file was dropped on purpose."""

    def __init__(self, cause: BaseException | str, total: int | None, restart: bool = False) -> None:
        super().__init__(str(cause))
        self.cause = cause if isinstance(cause, BaseException) else ConnectionError(cause)
        self.total = total
        self.restart = restart


def _read_meta(meta_path: Path) -> dict[str, str]:
    try:
        data = json.loads(meta_path.read_text())
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}
    except (OSError, ValueError, AttributeError):
        return {}


def _write_meta(meta_path: Path, url: str, headers: http.client.HTTPMessage) -> None:
    meta = {"url": url}
    for name in ("ETag", "Last-Modified"):
        value = headers.get(name)
        if value:
            meta[name] = value
    tmp = meta_path.with_name(meta_path.name + ".tmp")
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, meta_path)


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    """Parse ``bytes START-END/TOTAL`` (TOTAL may be ``*``) into (START, TOTAL)."""
    m = re.match(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", value or "")
    if not m:
        return None
    return int(m.group(1)), (None if m.group(3) == "*" else int(m.group(3)))


def _download_once(url: str, part: Path, meta_path: Path, progress: bool, timeout: float, name: str) -> int:
    """One HTTP request: append to (or restart) ``part``. Raises _Interrupted on a broken transfer."""
    have = part.stat().st_size if part.exists() else 0
    meta = _read_meta(meta_path) if have else {}
    if meta.get("url", url) != url:
        have, meta = 0, {}
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
        validator = meta.get("ETag") or meta.get("Last-Modified")
        if validator and not validator.startswith("W/"):
            headers["If-Range"] = validator
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and have:
            # Range not satisfiable: usually the part file is already complete (crash before rename).
            m = re.match(r"^\s*bytes\s+\*/(\d+)\s*$", (e.headers or {}).get("Content-Range", "") or "")
            if m and int(m.group(1)) == have:
                return have
            part.unlink(missing_ok=True)
            raise _Interrupted(f"server refused to resume at byte {have}; restarting", None, True) from None
        if e.code == 404:
            raise NotFoundError(url) from None
        raise HTTPStatusError(url, e.code, str(e.reason or "")) from None
    except urllib.error.URLError as e:
        raise NetworkError(url, e.reason if isinstance(e.reason, BaseException) else str(e.reason)) from e
    except (OSError, http.client.HTTPException) as e:  # timeouts, resets, malformed responses
        raise NetworkError(url, e) from e

    with response:
        status = response.status
        length = response.headers.get("Content-Length")
        body_len = int(length) if length and length.isdigit() else None
        if status == 206 and have:
            cr = _content_range(response.headers.get("Content-Range"))
            if cr is None or cr[0] != have:
                # A range we did not ask for: drop the partial file and start clean next attempt.
                part.unlink(missing_ok=True)
                raise _Interrupted(f"server answered range {cr} to bytes={have}-; restarting", None, True)
            total = cr[1] if cr[1] is not None else (have + body_len if body_len is not None else None)
            mode, start = "ab", have
        elif status == 200:
            if have:
                log.info("%s ignored the Range request (or the file changed): restarting from 0", url)
            total = body_len
            mode, start = "wb", 0
            _write_meta(meta_path, url, response.headers)
        else:
            raise HTTPStatusError(url, status, response.reason)

        written = start
        try:
            with open(part, mode) as out, _bar(total, start, name, progress) as bar:
                while True:
                    chunk = response.read(_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
                out.flush()
                os.fsync(out.fileno())
        except (OSError, http.client.HTTPException) as e:
            raise _Interrupted(e, total) from e
    if total is not None and written != total:
        if written > total:
            part.unlink(missing_ok=True)
            raise _Interrupted(f"received {written} bytes, more than the announced {total}", total, True)
        raise _Interrupted(f"connection closed after {written} of {total} bytes", total)
    return written
