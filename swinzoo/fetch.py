"""Download official checkpoints into a local cache, resumably, and check their sha256.

Uses only the standard library's urllib (no extra HTTP dependency). A download is written to
``<name>.part`` next to its final place; an interrupted transfer is continued with an HTTP ``Range``
request validated with ``If-Range`` (the server's strong ETag or Last-Modified; a partial file whose server
gave neither, or a 206 whose validator changed, starts over: resuming could splice two versions), and a
server that ignores ``Range`` is handled by starting over. The file is fsynced and moved into place with
``os.replace`` only after the whole body arrived, looked like a checkpoint and, when a hash is pinned,
the hash matched.

The cache may be shared, so nothing in it is trusted to be what its name says (POSIX only):

* every file of an entry is opened relative to the entry folder's descriptor with ``O_NOFOLLOW`` and
  checked to be a regular file with one link; a symbolic link (entry folder, ``.part``, ``.part.json``,
  the final file or the ``.lock``) is refused with a message naming it, never followed;
* a fresh body goes into an unpredictable ``.<name>.<pid>.<random>.tmp`` made with ``O_EXCL`` and is
  renamed to ``<name>.part`` at once, so an interrupted transfer (Ctrl-C, SIGTERM, a crash) leaves only
  the resumable ``.part`` (and its ``.part.json`` validators): that is intended, the next call resumes it;
* temporaries of dead processes (``.NAME.PID[.RANDOM].tmp``) are removed by the next download;
* the body is capped (the caller's ``max_bytes``, e.g. the manifest's size; else
  ``$SWINZOO_MAX_DOWNLOAD_BYTES``; else 8 GiB) and a body that is not a zip, pickle or safetensors file
  (an HTML login page, an XML error) is deleted instead of cached;
* URLs are shown and stored without credentials and query strings (presigned URLs carry their secret
  there); ``user:password@`` is sent as a Basic ``Authorization`` header that is not passed on to a
  redirect target. Only the sha256 pin proves the bytes are the published ones.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import hashlib
import http.client
import json
import logging
import os
import re
import secrets
import stat
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from tqdm import tqdm

from .errors import SwinzooError, one_line, redact_url
from .system import pid_alive

__all__ = [
    "FetchResult",
    "FetchError",
    "FetchArgumentError",
    "LocalFileNotFoundError",
    "LocalSourceError",
    "CacheError",
    "HTTPStatusError",
    "NotFoundError",
    "NetworkError",
    "IncompleteDownloadError",
    "DownloadTooLargeError",
    "NotACheckpointError",
    "ChecksumMismatchError",
    "ManualDownloadRequired",
    "default_cache_dir",
    "cache_path_for",
    "checkpoint_size_cap",
    "clean_stale_temporaries",
    "write_cache_file",
    "describe_source",
    "sha256_file",
    "git_blob_sha1",
    "fetch",
]

log = logging.getLogger(__name__)

CACHE_ENV = "SWINZOO_CACHE"
MAX_BYTES_ENV = "SWINZOO_MAX_DOWNLOAD_BYTES"
DEFAULT_MAX_BYTES = 8 << 30
_CHUNK = 1 << 20
# The whole download's time bound (the giant's 3 GB at 2 Mbit/s fits); a test sets it to seconds.
DOWNLOAD_TIMEOUT_ENV = "SWINZOO_DOWNLOAD_TIMEOUT"
DEFAULT_DOWNLOAD_TIMEOUT_S = 6 * 3600.0
_MAX_ATTEMPTS = 5  # attempts per fetch() call; each retry must have made progress
_USER_AGENT = "swinzoo-fetch/1 (+https://github.com/microsoft/Swin-Transformer checkpoints)"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_SCHEME_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)(?:\.[0-9a-f]{8,})?\.tmp$")
_STALE_AGE_S = 60  # a dead process's temporary this old is removed (guards against other pid namespaces)
_MAX_NAME = 200  # bytes: room for ".part.json" and the temporary's prefix within the 255-byte limit
_MAX_META = 64 * 1024
_MIN_CHECKPOINT = 64  # bytes: no torch.save / safetensors file with a tensor in it is smaller
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


# ------------------------------------------------------------------------------------------------ errors


class FetchError(SwinzooError):
    """Base class: a checkpoint could not be obtained. The message names the URL or path (redacted)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(one_line(a) if isinstance(a, str) else a for a in args))


class FetchArgumentError(FetchError, ValueError):
    """An argument to fetch() is malformed (a sha256 that is not 64 hex digits, an invalid URL or scheme)."""


class LocalFileNotFoundError(FetchError, FileNotFoundError):
    """``source`` is a local path that does not exist."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"checkpoint file not found: {path}")


class LocalSourceError(FetchError):
    """``source`` is a local path that exists but is not a regular file (a folder, a FIFO, a device)."""


class CacheError(FetchError):
    """The cache folder cannot be used (not a folder, not writable) or holds a link or non-file."""


class HTTPStatusError(FetchError):
    """The server answered with an error status."""

    def __init__(self, url: str, status: int, reason: str = "") -> None:
        self.url, self.status, self.reason = _shown(url), status, reason
        text = f"{status} {reason}".strip()
        super().__init__(f"download failed: {url} answered HTTP {text}")


class NotFoundError(HTTPStatusError):
    """HTTP 404: the URL is wrong or the file was taken down."""

    def __init__(self, url: str, status: int = 404, reason: str = "Not Found") -> None:
        super().__init__(url, status, reason)
        self.args = (
            one_line(
                f"download failed: {url} answered HTTP 404 Not Found (moved or removed?). "
                "If you have the file, pass it with --source PATH."
            ),
        )


class NetworkError(FetchError):
    """The server could not be reached or the connection broke (refused, DNS, timeout, reset)."""

    def __init__(self, url: str, cause: BaseException | str, *, message: str | None = None) -> None:
        self.url = _shown(url)
        why = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        super().__init__(
            message
            or f"cannot download {url}: {why}. Check the network, or download the file yourself and pass "
            "it with --source PATH."
        )


class DownloadTimeoutError(NetworkError):
    """The download ran past its whole-transfer time bound (a server too slow or dripping bytes)."""


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


class DownloadTooLargeError(FetchError):
    """The body is larger than the cap (announced or as it arrived); nothing of it is kept."""


class NotACheckpointError(FetchError):
    """The server sent something that is not a checkpoint (an HTML page, an XML error, a few bytes)."""


class ChecksumMismatchError(FetchError):
    """The bytes do not have the pinned sha256 (corrupt transfer, or the file changed upstream)."""

    def __init__(self, source: str, expected: str, actual: str, deleted: bool, algorithm: str = "sha256") -> None:
        self.source, self.expected, self.actual, self.algorithm = _shown(source), expected, actual, algorithm
        tail = " The downloaded file was deleted." if deleted else ""
        super().__init__(
            f"{algorithm} mismatch for {source}: expected {expected}, got {actual}.{tail}"
            " If the file changed upstream, check it and update the pinned hash."
        )


class ManualDownloadRequired(FetchError):  # the name says what the user must do
    """A checkpoint has no direct URL (e.g. Google Drive only); the user must fetch it by hand."""

    def __init__(self, name: str, hint: str) -> None:
        self.name, self.hint = name, hint
        advice = "" if "--source" in hint else " Download it yourself and pass it with --source PATH."
        super().__init__(f"{name} cannot be downloaded automatically: {hint.rstrip('. ')}.{advice}")


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


def _shown(url: str) -> str:
    """``url`` as it may be printed or stored: no credentials, no query string."""
    return redact_url(url)[0]


def describe_source(source: str) -> str:
    """What to record and print for ``source``: a URL without its secrets, saying that they were removed."""
    shown, removed = redact_url(source) if _SCHEME_RE.match(source) else (source, False)
    return f"{shown} (credentials and query string removed)" if removed else shown


def _is_url(source: str | Path) -> bool:
    return isinstance(source, str) and source.split(":", 1)[0].lower() in ("http", "https")


def _check_url(url: str) -> None:
    """Refuse a URL urllib would choke on later (``http://[::1``, no host, a bad port) with one clear line."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as e:
        raise FetchArgumentError(f"invalid URL {url!r}: {e}") from None
    if not parts.hostname:
        raise FetchArgumentError(f"invalid URL {url!r}: no host name")


def _split_credentials(url: str) -> tuple[str, str | None]:
    """``url`` without ``user:password@`` and the Basic ``Authorization`` value they stand for."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    netloc = parts.netloc.rsplit("@", 1)[1]
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), f"Basic {token}"


def _url_filename(url: str) -> str:
    name = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    return _safe_filename(name) or "download"


def _safe_filename(name: str) -> str:
    """A name usable in the cache: no separators or control characters, at most ``_MAX_NAME`` bytes."""
    name = re.sub(r"[\x00-\x1f\x7f/\\]", "_", name).strip()
    if name in ("", ".", ".."):
        return ""
    if len(name.encode()) > _MAX_NAME:
        suffix = Path(name).suffix if len(Path(name).suffix) <= 16 else ""
        stem = name[: len(name) - len(suffix)]
        while len((stem + suffix).encode()) > _MAX_NAME:
            stem = stem[:-1]
        name = stem + suffix
    return name


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


def checkpoint_size_cap(num_params: int) -> int:
    """A generous download cap for a checkpoint of ``num_params`` parameters.

    float32 weights plus two AdamW moments and an EMA copy (4 x 4 bytes a parameter) and 64 MiB for the
    pickle, config and scheduler state: an official file is never larger, an endless body stops here.
    """
    return 16 * int(num_params) + (64 << 20)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "folder"),
        (stat.S_ISLNK, "symbolic link"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "special file"


def _sha256_fd(fd: int, size: int, name: str, progress: bool, h: Any = None) -> str:
    """Hex digest of the open file (sha256, or the hash object ``h`` given), from its start."""
    h = hashlib.sha256() if h is None else h
    os.lseek(fd, 0, os.SEEK_SET)
    with _bar(size, 0, f"sha256 {name}", progress and size > 64 * _CHUNK) as bar:
        while chunk := os.read(fd, _CHUNK):
            h.update(chunk)
            bar.update(len(chunk))
    return h.hexdigest()


def sha256_file(path: Path, progress: bool = False) -> str:
    """Hex sha256 of a regular file, read in 1 MiB chunks (a FIFO or device is refused, never read): swinzoo's
    one file hash (downloads, the publish gate, verify, evaluate, the Hub check)."""
    return _hash_file(path, progress, git_blob=False)


def git_blob_sha1(path: Path) -> str:
    """Git's blob id of a regular file (sha1 of ``blob <size>\0`` + bytes): what the Hub states for a file that
    is not in LFS."""
    return _hash_file(path, False, git_blob=True)


def _hash_file(path: Path, progress: bool, *, git_blob: bool) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LocalSourceError(f"{path} is a {_kind(st.st_mode)}, not a regular file")
        h = hashlib.sha1(f"blob {st.st_size}\0".encode()) if git_blob else None
        return _sha256_fd(fd, st.st_size, Path(path).name, progress, h)
    finally:
        os.close(fd)


def _normalize_sha(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    value = sha256.strip().lower().removeprefix("sha256:")
    if not _SHA256_RE.match(value):
        raise FetchArgumentError(f"not a sha256 hex digest (64 hex characters): {sha256!r}")
    return value


def _download_deadline() -> float:
    """Seconds one download may take in all (a server dripping a byte at a time never trips the per-read
    ``timeout``): ``$SWINZOO_DOWNLOAD_TIMEOUT``, else :data:`DEFAULT_DOWNLOAD_TIMEOUT_S`."""
    env = os.environ.get(DOWNLOAD_TIMEOUT_ENV, "").strip()
    if not env:
        return DEFAULT_DOWNLOAD_TIMEOUT_S
    try:
        value = float(env)
    except ValueError:
        value = 0.0
    if not value > 0 or value != value or value == float("inf"):
        raise FetchArgumentError(f"{DOWNLOAD_TIMEOUT_ENV}={env!r} is not a positive number of seconds")
    return value


def _resolve_cap(max_bytes: int | None) -> tuple[int, str]:
    """The body cap and where it comes from (said in the error when a body exceeds it)."""
    if max_bytes is not None:
        if int(max_bytes) <= 0:
            raise FetchArgumentError(f"max_bytes must be positive, got {max_bytes}")
        return int(max_bytes), "the size expected for this checkpoint"
    env = os.environ.get(MAX_BYTES_ENV, "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            value = 0
        if value <= 0:
            raise FetchArgumentError(f"{MAX_BYTES_ENV}={env!r} is not a positive whole number of bytes")
        return value, f"{MAX_BYTES_ENV}"
    return DEFAULT_MAX_BYTES, f"the default cap; set {MAX_BYTES_ENV} to raise it"


def _sniff(head: bytes, size: int) -> str | None:
    """None when ``head`` starts like a checkpoint (zip, pickle, safetensors), else what it looks like."""
    if size >= _MIN_CHECKPOINT:
        if head.startswith(b"PK\x03\x04"):
            return None  # torch.save zip archive
        if head[:1] == b"\x80" and 2 <= head[1] <= 5:
            return None  # a pickle: legacy torch.save
        if head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") < 100_000_000:
            return None  # safetensors
    text = head.lstrip().lower()
    if size == 0:
        return "an empty body"
    if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text or b"<body" in text:
        return "an HTML page"
    if text.startswith(b"<"):
        return "an XML document"
    if text.startswith((b"{", b"[")):
        return "a JSON document"
    if size < _MIN_CHECKPOINT:
        return f"only {size} byte{'s' if size != 1 else ''}"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip file"
    if all(32 <= b < 127 or b in b"\r\n\t" for b in head):
        return "a text file"
    return "unrecognised binary data"


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


def _warn(message: str) -> None:
    """Tell the user (stderr, like the CLI's own warnings) that fetch deleted something of theirs, and why."""
    log.debug(message)
    print(f"warning: {one_line(message)}", file=sys.stderr)


def clean_stale_temporaries(cache_dir: Path) -> list[Path]:
    """Remove ``.NAME.PID[.RANDOM].tmp`` files of dead processes one level below ``cache_dir``.

    Why: a process killed mid-write (SIGKILL, power loss) cannot remove its temporary. A file is removed
    only when its pid is not running here and it is older than a minute (a cache shared with another pid
    namespace). Links are never followed. Returns what was removed.
    """
    removed: list[Path] = []
    now = time.time()
    try:
        folders = [e for e in os.scandir(cache_dir) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return removed
    for folder in folders[:10_000]:
        try:
            entries = list(os.scandir(folder.path))
        except OSError:
            continue
        for e in entries:
            m = _TMP_RE.match(e.name)
            if not m:
                continue
            try:
                made_at = e.stat(follow_symlinks=False).st_mtime
                if pid_alive(int(m.group("pid")), made_at=made_at) or now - made_at < _STALE_AGE_S:
                    continue
                os.unlink(e.path)
            except OSError:
                continue
            removed.append(Path(e.path))
            log.info("removed stale temporary %s", e.path)
    return removed


# ------------------------------------------------------------------------------------------------ cache entry


def _prepare_root(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise CacheError(
            f"cache folder {root} cannot be created: a file is in the way; pass another --cache-dir"
        ) from None
    except OSError as e:
        raise CacheError(f"cache folder {root} cannot be created: {e.strerror}; pass another --cache-dir") from None


class _Entry:
    """One cache entry's folder, opened without following links; its files are reached through the folder fd.

    Why: a shared cache may hold planted links; resolving names relative to an fd opened with
    ``O_NOFOLLOW`` means a swapped folder or file is refused rather than written through.
    """

    def __init__(self, final: Path) -> None:
        self.final, self.dir, self.name = final, final.parent, final.name
        self.part, self.meta, self.lock = f"{final.name}.part", f"{final.name}.part.json", f"{final.name}.lock"
        try:
            os.mkdir(self.dir)
        except FileExistsError:
            pass
        except OSError as e:
            raise CacheError(f"cannot create cache folder {self.dir}: {e.strerror}; pass another --cache-dir") from None
        try:
            self.fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                st = os.lstat(self.dir)
                raise self._refuse(self.dir, st.st_mode) from None
            raise CacheError(f"cannot open cache folder {self.dir}: {e.strerror}") from None

    def path(self, leaf: str) -> Path:
        return self.dir / leaf

    def _refuse(self, path: Path, mode: int) -> CacheError:
        return CacheError(
            f"cache entry {path} is a {_kind(mode)}, not a regular {'folder' if path == self.dir else 'file'}; "
            + ("swinzoo never follows links in its cache" if stat.S_ISLNK(mode) else "swinzoo did not make it")
            + ". Remove it (or use another --cache-dir) and run again"
        )

    def lstat(self, leaf: str) -> os.stat_result | None:
        """The entry's own metadata (never a link's target); a link or non-file is refused."""
        try:
            st = os.stat(leaf, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            raise self._refuse(self.path(leaf), st.st_mode)
        return st

    def open(self, leaf: str, flags: int, mode: int = 0o644) -> int:
        """``os.open`` of ``leaf`` that refuses links, non-files and hard-linked files."""
        try:
            fd = os.open(leaf, flags | _O_NOFOLLOW | os.O_NONBLOCK | _O_CLOEXEC, mode, dir_fd=self.fd)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EMLINK):
                mode = os.stat(leaf, dir_fd=self.fd, follow_symlinks=False).st_mode
                raise self._refuse(self.path(leaf), mode) from None
            raise
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            os.close(fd)
            if stat.S_ISREG(st.st_mode):
                raise CacheError(
                    f"cache entry {self.path(leaf)} has {st.st_nlink} hard links; swinzoo writes only files of its "
                    "own. Remove it and run again"
                )
            raise self._refuse(self.path(leaf), st.st_mode)
        return fd

    def create_temp(self) -> tuple[int, str]:
        """A new file with an unpredictable name (``O_EXCL``: never an existing file or link)."""
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC
        for _ in range(5):  # a name taken (by a planted link, say) is never opened: try another
            leaf = f".{self.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp"
            try:
                return os.open(leaf, flags, 0o644, dir_fd=self.fd), leaf
            except FileExistsError:
                continue
        raise CacheError(
            f"cache folder {self.dir}: every temporary name tried for {self.name} is already taken (planted links?); "
            "remove the .tmp entries there (or use another --cache-dir) and run again"
        )

    def unlink(self, leaf: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(leaf, dir_fd=self.fd)

    def replace(self, src: str, dst: str) -> None:
        os.replace(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def fsync(self) -> None:
        with contextlib.suppress(OSError):
            os.fsync(self.fd)

    def read_meta(self) -> dict[str, str]:
        if self.lstat(self.meta) is None:
            return {}
        fd = self.open(self.meta, os.O_RDONLY)
        try:
            data = json.loads(os.read(fd, _MAX_META))
            return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}
        except (OSError, ValueError, AttributeError):
            return {}
        finally:
            os.close(fd)

    def write_meta(self, meta: dict[str, str]) -> None:
        fd, tmp = self.create_temp()
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(meta))
            self.replace(tmp, self.meta)
        finally:
            self.unlink(tmp)

    def clean_own_temporaries(self) -> None:
        """Under the entry's lock no one else writes this name's temporaries: any left is stale."""
        for leaf in os.listdir(self.fd):
            m = _TMP_RE.match(leaf)
            if (m and m.group("name") == self.name) or leaf == f"{self.meta}.tmp":
                self.unlink(leaf)
                log.info("removed stale temporary %s", self.path(leaf))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """An exclusive ``flock`` on ``<name>.lock`` (opened without following links, never truncated)."""
        while True:
            fd = self.open(self.lock, os.O_RDWR | os.O_CREAT)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    print(
                        f"waiting for another swinzoo process to finish with {one_line(str(self.final))} (it holds "
                        f"{one_line(str(self.path(self.lock)))}); Ctrl-C to stop, and rerun when it is done",
                        file=sys.stderr,
                        flush=True,
                    )
                    fcntl.flock(fd, fcntl.LOCK_EX)
                mine, now = os.fstat(fd), self.lstat(self.lock)
            except BaseException:
                os.close(fd)
                raise
            if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
                break
            os.close(fd)  # the lock file was replaced while we waited: lock the one that is there now
        try:
            yield
        finally:
            os.close(fd)

    def close(self) -> None:
        os.close(self.fd)


def write_cache_file(final: Path, write: Callable[[BinaryIO], None], *, keep_existing: bool = False) -> Path:
    """Write ``final`` as every cache write is made: ``write`` fills an unpredictable temporary created with
    ``O_EXCL | O_NOFOLLOW`` beside it (a link planted at any name is never written through), under the entry's
    lock, then one rename. A temporary a killed writer left for this name is removed first (under the lock no one
    else writes it). ``keep_existing``: a file already there (made while we waited for the lock) is kept.
    """
    entry = _Entry(final)
    try:
        with entry.locked():
            entry.clean_own_temporaries()
            if keep_existing and entry.lstat(entry.name) is not None:
                entry.unlink(entry.lock)
                return final
            fd, tmp = entry.create_temp()
            try:
                with os.fdopen(fd, "wb") as f:
                    write(f)
                entry.replace(tmp, entry.name)
            finally:
                entry.unlink(tmp)
                entry.unlink(entry.lock)  # while held: a waiter sees it gone and locks afresh (``locked``)
            entry.fsync()
    finally:
        entry.close()
    return final


# ------------------------------------------------------------------------------------------------ fetch


def fetch(
    source: str | Path,
    *,
    sha256: str | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
    filename: str | None = None,
    timeout: float = 60.0,
    max_bytes: int | None = None,
    digests: Mapping[str, str] | None = None,
) -> FetchResult:
    """Return a local, hash-checked copy of ``source`` (an http(s) URL or a local path).

    ``digests``: further published digests of a download (``{"sha384": hex}``), each checked like ``sha256``.

    A local path is used in place (never copied, never deleted). A URL is downloaded once into the
    cache and reused afterwards; a cached copy is re-hashed on every call so a damaged cache cannot go
    unnoticed. With ``sha256`` given, a mismatch raises :class:`ChecksumMismatchError` (naming both
    hashes) and a downloaded file is deleted; without it, the hash seen is returned so the caller can
    print and pin it. ``timeout`` is per socket operation (connect, each read), not for the whole file.
    ``max_bytes`` caps the body (pass the manifest's size, or :func:`checkpoint_size_cap`); without it
    ``$SWINZOO_MAX_DOWNLOAD_BYTES`` or 8 GiB.
    """
    expected = _normalize_sha(sha256)
    if isinstance(source, str):
        m = _SCHEME_RE.match(source)
        scheme = m.group(1).lower() if m else ""
        if scheme == "file":
            source = Path(urllib.request.url2pathname(urllib.parse.urlsplit(source).path))
        elif m and scheme not in ("http", "https"):
            raise FetchArgumentError(
                f"unsupported URL scheme {scheme!r} in {source}: swinzoo downloads http:// and https:// URLs; "
                "download the file yourself and pass it with --source PATH"
            )
    if not _is_url(source):
        return _fetch_local(Path(source).expanduser(), expected, progress)
    url = str(source)
    _check_url(url)
    cap = _resolve_cap(max_bytes)
    final = cache_path_for(url, cache_dir, filename)
    _prepare_root(final.parent.parent)
    try:
        entry = _Entry(final)
        try:
            with entry.locked():
                entry.clean_own_temporaries()
                clean_stale_temporaries(final.parent.parent)
                hit = _from_cache(entry, expected, progress)
                if hit is not None:
                    wrong = _wrong_digest(entry, entry.name, digests)
                    if wrong is None:
                        return hit
                    _warn(f"the cached {entry.final} has {wrong[0]} {wrong[2]}, expected {wrong[1]}: deleted it")
                    entry.unlink(entry.name)
                seen = _download(url, entry, progress, timeout, cap, pinned=expected is not None)
                wrong = ("sha256", expected, seen) if expected is not None and seen != expected else None
                wrong = wrong or _wrong_digest(entry, entry.part, digests)
                if wrong is not None:
                    entry.unlink(entry.part)
                    entry.unlink(entry.meta)
                    raise ChecksumMismatchError(url, wrong[1], wrong[2], deleted=True, algorithm=wrong[0])
                entry.replace(entry.part, entry.name)
                entry.fsync()
                entry.unlink(entry.meta)
        finally:
            entry.close()
    except FetchError:
        raise
    except OSError as e:  # the cache's file system failed (full, read-only, vanished)
        where = e.filename if isinstance(e.filename, str) and os.sep in e.filename else final.parent
        raise CacheError(f"cache {where}: {e.strerror or e}") from None
    return FetchResult(final, seen, from_cache=False, pinned=expected is not None)


def evict(path: str | os.PathLike, cache_dir: Path | None = None) -> bool:
    """Delete a checkpoint swinzoo put in its cache (a download, or a generated synthetic file) to free the disk.

    Why: a verify shard downloads tens of GB, one file after the other, and needs each only while its entry is
    checked (``verify --evict-sources``). Only a regular file directly inside a ``<16 hex>/`` download folder or
    ``synthetic/`` of the cache is removed (a user's own file, a link or anything else is left, and False
    returned); a download is removed under its entry's lock, so a concurrent fetch of it is not cut short.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = Path(path)
    try:
        inside = path.parent.parent.resolve() == root.resolve() and not path.parent.is_symlink()
    except OSError:
        return False
    folder = path.parent.name
    if not inside or not (folder == "synthetic" or re.fullmatch(r"[0-9a-f]{16}", folder)):
        return False
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        return False
    if folder == "synthetic":
        path.unlink(missing_ok=True)
        return True
    entry = _Entry(path)
    try:
        with entry.locked():
            if entry.lstat(entry.name) is None:
                return False
            entry.unlink(entry.name)
    finally:
        entry.close()
    return True


def _wrong_digest(entry: _Entry, leaf: str, digests: Mapping[str, str] | None) -> tuple[str, str, str] | None:
    """The first of ``digests`` (algorithm -> hex) the file does not have: (algorithm, expected, seen), or None."""
    for algorithm, want in (digests or {}).items():
        if not want:
            continue
        h = hashlib.new(algorithm)
        fd = entry.open(leaf, os.O_RDONLY)
        try:
            with os.fdopen(os.dup(fd), "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        finally:
            os.close(fd)
        if h.hexdigest() != want.lower():
            return algorithm, want.lower(), h.hexdigest()
    return None


def _from_cache(entry: _Entry, expected: str | None, progress: bool) -> FetchResult | None:
    """The cached file when it is a checkpoint with the expected hash; a bad one is deleted (and said so)."""
    st = entry.lstat(entry.name)
    if st is None:
        return None
    fd = entry.open(entry.name, os.O_RDONLY)
    try:
        what = _sniff(os.pread(fd, 512, 0), st.st_size)
        seen = None if what else _sha256_fd(fd, st.st_size, entry.name, progress)
    finally:
        os.close(fd)
    if what:
        _warn(f"the cached {entry.final} is not a checkpoint ({what}): deleted it, downloading it again")
    elif seen is not None and (expected is None or seen == expected):
        return FetchResult(entry.final, seen, from_cache=True, pinned=expected is not None)
    else:
        _warn(f"the cached {entry.final} has sha256 {seen}, expected {expected}: deleted it, downloading it again")
    entry.unlink(entry.name)
    return None


def _fetch_local(path: Path, expected: str | None, progress: bool) -> FetchResult:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise LocalFileNotFoundError(path) from None
    except OSError as e:
        raise LocalSourceError(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise LocalSourceError(f"{path} is a folder, not a checkpoint file; pass the checkpoint file itself")
    if not stat.S_ISREG(st.st_mode):
        raise LocalSourceError(f"{path} is a {_kind(st.st_mode)}, not a regular file; pass a checkpoint file")
    try:
        seen = sha256_file(path, progress)
    except OSError as e:
        raise LocalSourceError(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    if expected is not None and seen != expected:
        raise ChecksumMismatchError(str(path), expected, seen, deleted=False)
    return FetchResult(path, seen, from_cache=True, pinned=expected is not None)


def _download(url: str, entry: _Entry, progress: bool, timeout: float, cap: tuple[int, str], *, pinned: bool) -> str:
    """Fill ``<final>.part`` with the whole body of ``url`` (resuming) and return its sha256.

    Retries within the call while each attempt makes progress, so a flaky connection does not need
    the user to rerun the command. A body that is not a checkpoint is deleted.
    """
    failure: _Interrupted | None = None
    seconds = _download_deadline()
    deadline = time.monotonic() + seconds
    for attempt in range(_MAX_ATTEMPTS):
        before = _size(entry, entry.part)
        try:
            _download_once(url, entry, progress, timeout, cap, (deadline, seconds), pinned=pinned)
        except _Interrupted as e:
            failure = e
            now = _size(entry, entry.part)
            log.warning("download of %s interrupted at %d bytes (attempt %d): %s", _shown(url), now, attempt + 1, e)
            if now <= before and not e.restart:
                break  # no progress: do not spin
            continue
        # Hash what is on disk, not the stream: after a resume the bytes come from two transfers, and
        # what matters is the file that gets moved into place.
        fd = entry.open(entry.part, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            what = _sniff(os.pread(fd, 512, 0), size)
            if what is None:
                return _sha256_fd(fd, size, entry.name, progress=False)
        finally:
            os.close(fd)
        entry.unlink(entry.part)
        entry.unlink(entry.meta)
        raise NotACheckpointError(
            f"{url} did not return a checkpoint: the server sent {what} ({size} bytes) instead of a torch.save "
            "zip, pickle or safetensors file; nothing was cached. Check the URL (an expired link, a login page?)"
        )
    assert failure is not None
    have = _size(entry, entry.part)
    if have == 0 and not failure.restart:
        raise NetworkError(url, failure.cause) from failure.cause
    raise IncompleteDownloadError(url, have, failure.total, entry.path(entry.part), str(failure)) from failure.cause


def _size(entry: _Entry, leaf: str) -> int:
    st = entry.lstat(leaf)
    return st.st_size if st is not None else 0


class _Interrupted(Exception):
    """One attempt ended early; ``restart`` means the partial file was dropped on purpose."""

    def __init__(self, cause: BaseException | str, total: int | None, restart: bool = False) -> None:
        super().__init__(one_line(str(cause)))
        self.cause = cause if isinstance(cause, BaseException) else ConnectionError(cause)
        self.total = total
        self.restart = restart


def _url_key(url: str) -> str:
    """What ``.part.json`` records to tie a partial file to its URL, without storing the URL's secrets."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def _validators(url: str, headers: http.client.HTTPMessage) -> dict[str, str]:
    meta = {"url_sha256": _url_key(url)}
    for name in ("ETag", "Last-Modified"):
        value = headers.get(name)
        if value:
            meta[name] = value
    return meta


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    """Parse ``bytes START-END/TOTAL`` (TOTAL may be ``*``) into (START, TOTAL)."""
    m = re.match(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", value or "")
    if not m:
        return None
    return int(m.group(1)), (None if m.group(3) == "*" else int(m.group(3)))


def _opener() -> urllib.request.OpenerDirector:
    """http(s) only: a redirect to ftp:// or file:// fails instead of being followed."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.UnknownHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPRedirectHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def _too_large(url: str, entry: _Entry, cap: tuple[int, str], what: str) -> DownloadTooLargeError:
    entry.unlink(entry.part)
    entry.unlink(entry.meta)
    limit, why = cap
    return DownloadTooLargeError(
        f"download of {url} refused: {what}, more than the cap of {limit} bytes ({why}); nothing was kept. "
        "If the file is really that large, download it yourself and pass it with --source PATH"
    )


def _check_deadline(url: str, deadline: tuple[float, float], received: int) -> None:
    if time.monotonic() > deadline[0]:
        raise DownloadTimeoutError(
            url,
            "",
            message=f"cannot download {_shown(url)}: {received} bytes arrived in {deadline[1]:g}s, the bound on "
            f"one download ({DOWNLOAD_TIMEOUT_ENV} sets it); the server is too slow or stalled. The partial file "
            "is kept: rerun to resume",
        )


def _resumable(url: str, entry: _Entry, pinned: bool) -> tuple[int, dict[str, str]]:
    """Bytes of ``part`` worth resuming from, and its recorded validators. A partial file resumes only when the
    server can prove it still has the same file (a strong ETag or a Last-Modified, sent as ``If-Range``) or a
    pinned sha256 will check the result: else the old head could be spliced onto a new tail, so it starts from
    zero."""
    have = _size(entry, entry.part)
    meta = entry.read_meta() if have else {}
    if meta.get("url_sha256", _url_key(url)) != _url_key(url) or meta.get("url", url) != url:
        return 0, {}
    validator = meta.get("ETag") or meta.get("Last-Modified")
    if have and not pinned and (not validator or validator.startswith("W/")):
        os.close(entry.open(entry.part, os.O_WRONLY | os.O_APPEND))  # a planted link is still refused, by name
        log.info("%s: nothing proves the partial file's source unchanged: restarting from 0", _shown(url))
        return 0, {}
    return have, meta


def _same_file(meta: dict[str, str], headers: http.client.HTTPMessage) -> bool:
    """Does a 206 answer come from the file the partial download began (its validators unchanged)?"""
    return all(not meta.get(k) or headers.get(k) in (None, meta[k]) for k in ("ETag", "Last-Modified"))


def _download_once(
    url: str,
    entry: _Entry,
    progress: bool,
    timeout: float,
    cap: tuple[int, str],
    deadline: tuple[float, float],
    *,
    pinned: bool,
) -> int:
    """One HTTP request: append to (or restart) ``part``. Raises _Interrupted on a broken transfer, and
    :class:`DownloadTimeoutError` past ``deadline`` (monotonic time, and the bound in seconds)."""
    have, meta = _resumable(url, entry, pinned)
    target, auth = _split_credentials(url)
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
        validator = meta.get("ETag") or meta.get("Last-Modified")
        if validator and not validator.startswith("W/"):
            headers["If-Range"] = validator
    request = urllib.request.Request(target, headers=headers)
    if auth:
        request.add_unredirected_header("Authorization", auth)  # not sent on to a redirect's host
    try:
        response = _opener().open(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and have:
            # Range not satisfiable: usually the part file is already complete (crash before rename).
            m = re.match(r"^\s*bytes\s+\*/(\d+)\s*$", (e.headers.get("Content-Range", "") if e.headers else "") or "")
            if m and int(m.group(1)) == have:
                return have
            entry.unlink(entry.part)
            raise _Interrupted(f"server refused to resume at byte {have}; restarting", None, True) from None
        if e.code == 404:
            raise NotFoundError(url) from None
        raise HTTPStatusError(url, e.code, str(e.reason or "")) from None
    except urllib.error.URLError as e:
        raise NetworkError(url, e.reason if isinstance(e.reason, BaseException) else str(e.reason)) from None
    except (OSError, http.client.HTTPException, ValueError) as e:  # timeouts, resets, malformed responses
        raise NetworkError(url, e) from None

    with response:
        status = response.status
        length = response.headers.get("Content-Length")
        body_len = int(length) if length and length.isdigit() else None
        limit = cap[0]
        if status == 206 and have:
            cr = _content_range(response.headers.get("Content-Range"))
            if not _same_file(meta, response.headers):  # a server that ignored If-Range: another file
                entry.unlink(entry.part)
                raise _Interrupted("the file changed on the server since the partial download; restarting", None, True)
            if cr is None or cr[0] != have:
                # A range we did not ask for: drop the partial file and start clean next attempt.
                entry.unlink(entry.part)
                raise _Interrupted(f"server answered range {cr} to bytes={have}-; restarting", None, True)
            total = cr[1] if cr[1] is not None else (have + body_len if body_len is not None else None)
            if total is not None and total > limit:
                raise _too_large(url, entry, cap, f"the server announced {total} bytes")
            fd = entry.open(entry.part, os.O_WRONLY | os.O_APPEND)
            if os.fstat(fd).st_size != have:  # changed under us: start over next attempt
                os.close(fd)
                entry.unlink(entry.part)
                raise _Interrupted("the partial file changed during the request; restarting", None, True)
            start = have
        elif status == 200:
            if have:
                log.info("%s ignored the Range request (or the file changed): restarting from 0", _shown(url))
            total = body_len
            if total is not None and total > limit:
                raise _too_large(url, entry, cap, f"the server announced {total} bytes (Content-Length)")
            entry.write_meta(_validators(url, response.headers))
            fd, tmp = entry.create_temp()
            try:
                entry.replace(tmp, entry.part)  # the body never goes through a name someone else chose
            except BaseException:
                os.close(fd)
                entry.unlink(tmp)
                raise
            start = 0
        else:
            raise HTTPStatusError(url, status, response.reason)

        written = start
        try:
            with os.fdopen(fd, "wb") as out, _bar(total, start, entry.name, progress) as bar:
                while True:
                    chunk = response.read1(_CHUNK)  # what has arrived: a drip cannot hold one read forever
                    if not chunk:
                        break
                    _check_deadline(url, deadline, written + len(chunk))
                    if written + len(chunk) > limit:
                        out.close()
                        raise _too_large(url, entry, cap, f"the body went past {limit} bytes")
                    out.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
                out.flush()
                os.fsync(out.fileno())
        except (OSError, http.client.HTTPException) as e:
            raise _Interrupted(e, total) from e
    if total is not None and written != total:
        if written > total:
            entry.unlink(entry.part)
            raise _Interrupted(f"received {written} bytes, more than the announced {total}", total, True)
        raise _Interrupted(f"connection closed after {written} of {total} bytes", total)
    return written
