"""A small threaded HTTP file server on 127.0.0.1 for download tests.

Why: downloads (resume, range handling, broken connections, error statuses) are tested against a real
socket and a real HTTP exchange rather than a mocked client, so what is tested is what the user's
network stack sees. Files come from memory (``files={"a.pth": b"..."}``) and/or a directory.

Knobs, all changeable while the server runs:

* ``server.interrupt(name, after_bytes, times=1)``: the next ``times`` GETs of ``name`` send the full
  headers (``Content-Length`` of the whole body) but close the connection after ``after_bytes`` body bytes,
  like a dropped transfer.
* ``server.ignore_range = True``: answer every GET with 200 and the whole file, as servers without Range
  support do.
* ``server.fail(name, status, times=None)``: answer ``status`` (e.g. 500, 403) instead of the file.
* ``server.stall(name, seconds)``: wait before answering (for client timeouts).
* ``server.redirect(name, target)``: 302 to another served name (GitHub releases redirect to a CDN).
* ``server.endless(name, delay=0.0)``: answer 200 with a body that never ends (no ``Content-Length``),
  ``delay`` seconds between 64 KiB chunks, until the client hangs up: for download caps and signals.
* Unknown names get 404. ``server.requests`` logs every request (method, path, headers), so a test can
  assert that a ``Range`` header was sent or that no request was made at all.

Responses carry a strong ``ETag`` (sha256 of the content) and honour ``If-Range``, ``Range: bytes=N-`` /
``bytes=N-M`` (206 with ``Content-Range``) and unsatisfiable ranges (416, ``Content-Range: bytes */SIZE``).

Use::

    from httpserver import serve_files

    with serve_files({"w.pth": data}) as server:
        fetch(server.url("w.pth"), ...)
        assert server.requests[-1].headers.get("range") == "bytes=100-"

or the ``file_server`` fixture (import it into a test module: ``from httpserver import file_server``) and
fill ``file_server.files``.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest

__all__ = ["RequestRecord", "FileServer", "serve_files", "file_server", "unused_port"]


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it; header names are lower-cased."""

    method: str
    path: str  # the served name, without the leading slash, URL-decoded
    headers: dict[str, str] = field(default_factory=dict)


class FileServer:
    """Serves ``files`` (name -> bytes) and, for names not in it, files under ``directory``."""

    def __init__(self, files: Mapping[str, bytes] | None = None, directory: Path | None = None) -> None:
        self.files: dict[str, bytes] = dict(files or {})
        self.directory = Path(directory) if directory is not None else None
        self.requests: list[RequestRecord] = []
        self.ignore_range = False
        self.honour_if_range = True  # False: a server that answers a Range whatever If-Range says
        self.send_validators = True  # False: no ETag, as a plain server that cannot prove a file unchanged
        self._interrupts: dict[str, list[int]] = {}
        self._failures: dict[str, list[int]] = {}
        self._always_fail: dict[str, int] = {}
        self._stalls: dict[str, float] = {}
        self._redirects: dict[str, str] = {}
        self._endless: dict[str, float] = {}
        self._drips: dict[str, float] = {}
        self.endless_sent: dict[str, int] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control

    def interrupt(self, name: str, after_bytes: int, times: int = 1) -> None:
        """Cut the next ``times`` GET responses for ``name`` after ``after_bytes`` body bytes."""
        with self._lock:
            self._interrupts.setdefault(name, []).extend([after_bytes] * times)

    def fail(self, name: str, status: int, times: int | None = None) -> None:
        """Answer ``status`` for ``name`` (the next ``times`` requests, or every one when None)."""
        with self._lock:
            if times is None:
                self._always_fail[name] = status
            else:
                self._failures.setdefault(name, []).extend([status] * times)

    def clear_failures(self, name: str) -> None:
        """Serve ``name`` normally again."""
        with self._lock:
            self._always_fail.pop(name, None)
            self._failures.pop(name, None)

    def stall(self, name: str, seconds: float) -> None:
        """Sleep ``seconds`` before answering requests for ``name``."""
        self._stalls[name] = seconds

    def redirect(self, name: str, target: str) -> None:
        """Answer requests for ``name`` with a 302 to the served name ``target``."""
        self._redirects[name] = target

    def endless(self, name: str, delay: float = 0.0) -> None:
        """Serve ``name`` as a body that never ends (zip-signature first, then zeros)."""
        self._endless[name] = delay

    def drip(self, name: str, delay: float) -> None:
        """Serve ``name`` one byte every ``delay`` seconds (zip-signature first): never stalled, never done."""
        self._drips[name] = delay

    def requests_for(self, name: str, method: str = "GET") -> list[RequestRecord]:
        """The logged requests for one served name."""
        return [r for r in self.requests if r.path == name and r.method == method]

    # ------------------------------------------------------------------ addresses

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, name: str) -> str:
        return f"{self.base_url}/{quote(name)}"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FileServer:
        handler = type("_Handler", (_Handler,), {"owner": self})
        httpd = _QuietServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="test-file-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals

    def _content(self, name: str) -> bytes | None:
        if name in self.files:
            return self.files[name]
        if self.directory is not None:
            root = self.directory.resolve()
            candidate = (root / name).resolve()
            if candidate.is_relative_to(root) and candidate.is_file():
                return candidate.read_bytes()
        return None

    def _take(self, table: dict[str, list[int]], name: str) -> int | None:
        with self._lock:
            queue = table.get(name)
            if not queue:
                return None
            value = queue.pop(0)
            if not queue:
                del table[name]
            return value


class _QuietServer(ThreadingHTTPServer):
    """Says nothing when a client hangs up mid-body (what download tests do on purpose)."""

    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    owner: FileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep the test output quiet
        pass

    def do_HEAD(self) -> None:  # http.server naming
        self._serve(head=True)

    def do_GET(self) -> None:  # http.server naming
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        owner = self.owner
        name = unquote(urlsplit(self.path).path).lstrip("/")
        owner.requests.append(RequestRecord(self.command, name, {k.lower(): v for k, v in self.headers.items()}))
        if name in owner._stalls:
            time.sleep(owner._stalls[name])
        if name in owner._redirects:
            self.send_response(302)
            self.send_header("Location", owner.url(owner._redirects[name]))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if name in owner._drips and not head:
            self._serve_drip(owner._drips[name])
            return
        if name in owner._endless and not head:
            self._serve_endless(name, owner._endless[name])
            return
        status = owner._always_fail.get(name) or owner._take(owner._failures, name)
        if status is not None:
            self._plain(status, f"forced status {status}\n".encode())
            return
        data = owner._content(name)
        if data is None:
            self._plain(404, b"not found\n")
            return

        etag = '"' + hashlib.sha256(data).hexdigest() + '"'
        size = len(data)
        start, end, status = 0, size - 1, 200
        range_header = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        same = if_range is None or if_range == etag or not owner.honour_if_range
        use_range = range_header and not owner.ignore_range and same
        if use_range:
            m = _RANGE_RE.match(range_header.strip())
            if not m or (not m.group(1) and not m.group(2)):
                self._plain(416, b"bad range\n", {"Content-Range": f"bytes */{size}"})
                return
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:  # suffix range: the last N bytes
                start, end = max(size - int(m.group(2)), 0), size - 1
            if start >= size or start > end:
                self._plain(416, b"range not satisfiable\n", {"Content-Range": f"bytes */{size}"})
                return
            status = 206

        body = data[start : end + 1]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if owner.send_validators:
            self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "none" if owner.ignore_range else "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        cut = None if head else owner._take(owner._interrupts, name)
        if cut is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        if head:
            return
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(body)

    def _serve_drip(self, delay: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(1 << 20))
        self.end_headers()
        self.close_connection = True
        body = b"PK\x03\x04" + bytes((1 << 20) - 4)
        try:
            for i in range(len(body)):
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                time.sleep(delay)
        except OSError:  # the client hung up
            pass

    def _serve_endless(self, name: str, delay: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        chunk = b"PK\x03\x04" + bytes(65532)
        try:
            while True:
                self.wfile.write(chunk)
                self.owner.endless_sent[name] = self.owner.endless_sent.get(name, 0) + len(chunk)
                if delay:
                    time.sleep(delay)
        except OSError:  # the client hung up
            pass

    def _plain(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


@contextmanager
def serve_files(files: Mapping[str, bytes] | None = None, directory: Path | None = None) -> Iterator[FileServer]:
    """Run a :class:`FileServer` on 127.0.0.1 for the duration of the block."""
    server = FileServer(files, directory)
    with server:
        yield server


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    """An empty running :class:`FileServer`; put content in ``file_server.files``."""
    with serve_files() as server:
        yield server


def unused_port() -> int:
    """A local TCP port with nothing listening on it (for connection-refused tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
