"""A Hugging Face Hub-compatible HTTP server for offline end-to-end tests.

Why: `swinzoo publish` and `swinzoo.from_pretrained` talk to the Hub through the real `huggingface_hub`
client (and transformers/timm load through it too). Mocking the client would test our assumptions about it,
not the client. This module serves, from memory on 127.0.0.1, the slice of the Hub HTTP API the client uses
to publish and download, so the real client runs end to end with no network.

Served (model, dataset and space repos; repo ids must be ``namespace/name``):

* ``POST /api/repos/create`` (409 with ``url`` when the repo exists, which ``exist_ok`` needs),
  ``DELETE /api/repos/delete``, ``GET /api/whoami-v2``, ``POST /api/validate-yaml``. A new repo gets an
  initial commit holding the Hub's default ``.gitattributes``, as on the Hub.
* ``GET /api/{models,datasets,spaces}/{repo}[/revision/{rev}]``: ``sha``, ``siblings`` (sizes, blob ids and
  LFS info with ``?blobs=True``).
* ``POST .../preupload/{rev}``: LFS when the path matches an LFS pattern of the revision's ``.gitattributes``
  (``*.safetensors``, ``*.bin``, ``*.pt``...), when the size reaches ``lfs_size_threshold`` or when the
  512-byte sample holds a NUL byte; regular otherwise. Returns the remote ``oid`` so the client skips
  unchanged files.
* ``POST /{repo}.git/info/lfs/objects/batch`` (basic transfer; the upload ``href`` points back here with a
  one-time nonce instead of auth, like a pre-signed S3 URL), ``PUT`` upload (size and sha256 checked),
  ``POST /{repo}.git/info/lfs/objects/verify``.
* ``POST .../commit/{rev}`` (ndjson lines ``header``, ``file``, ``lfsFile``, ``deletedFile``,
  ``deletedFolder``), atomic: a stale ``parentCommit`` gets 412 and nothing changes; an ``lfsFile`` whose
  object was never uploaded gets 422; a regular ``file`` that should have been LFS gets 400.
* ``GET .../refs``, ``POST/DELETE .../tag/{rev}``, ``POST/DELETE .../branch/{name}``,
  ``GET .../tree/{rev}[/path]``, ``GET .../commits/{rev}``, ``POST .../paths-info/{rev}``.
* ``HEAD/GET /{repo}/resolve/{rev}/{path}`` with ``X-Repo-Commit``, ``ETag`` (git blob sha1 for regular
  files, sha256 for LFS files, as on the Hub), ``X-Linked-Etag`` and ``X-Linked-Size`` for LFS files,
  ``Content-Length``, single ``Range`` requests. No redirects.
* Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) and
  ``X-Error-Message`` headers, which the client maps to ``RepositoryNotFoundError``,
  ``RevisionNotFoundError`` and ``RemoteEntryNotFoundError`` (a subclass of ``EntryNotFoundError``).

Auth: every write needs ``Authorization: Bearer <token>`` (401 without one). Any token is accepted unless
the server was built with ``tokens={...}``. Private repos are invisible (404 ``RepoNotFound``) without a
token. Every request and response is kept in ``server.exchanges``, so a test can assert that the token was
sent and never echoed (``server.find_in_responses(token)``); requests that matched no route are listed in
``server.unhandled``.

Pointing the client at the server
---------------------------------
``huggingface_hub`` reads ``HF_ENDPOINT``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``, ``HF_HUB_DISABLE_XET``...
once, at import, into ``huggingface_hub.constants``; the module-level ``HfApi`` behind
``huggingface_hub.model_info``, ``create_repo``... also keeps the import-time endpoint. So:

* In-process tests: ``hub_env(server, cache_dir)`` patches those constants, the module-level ``HfApi``, the
  copies huggingface_hub 0.x and transformers 4.x take of them at import (``file_download``'s URL template,
  ``transformers.utils.hub``'s offline flag and cache path...) and the environment variables, closes the
  client's HTTP session, and restores everything on exit. It nests:
  ``hub_env(server, cache_dir, offline=True)`` inside an online block switches to offline mode::

      from hubserver import HubServer, hub_env

      def test_round_trip(tmp_path):
          with HubServer() as server, hub_env(server, tmp_path / "hf-cache", token="hf_test"):
              HfApi().create_repo("someone/tiny")
              ...
              with hub_env(server, tmp_path / "hf-cache", offline=True):
                  hf_hub_download("someone/tiny", "config.json")  # served from the cache

* Subprocess tests (the ``swinzoo`` CLI): ``subprocess_env(server, cache_dir, token=..., offline=...)``
  returns a complete environment for ``subprocess.run(..., env=...)``: ``HF_ENDPOINT=<server.url>``,
  ``HF_HUB_CACHE``, ``HF_HOME`` (a sibling ``hf_home`` folder, so no real token file is read),
  ``HF_HUB_DISABLE_XET=1`` (hf_xet is installed and would otherwise take over transfers),
  ``HF_HUB_DISABLE_TELEMETRY=1``, ``HF_HUB_DISABLE_UPDATE_CHECK=1``, ``NO_PROXY=127.0.0.1,localhost``,
  ``HF_TOKEN`` (or removed), ``HF_HUB_OFFLINE=1`` (or removed); ``HUGGING_FACE_HUB_TOKEN``,
  ``HF_OIDC_RESOURCE``, ``TRANSFORMERS_OFFLINE`` and ``HUGGINGFACE_CO_STAGING`` are removed.

Not served: pull requests (``create_pr``), Xet storage, multipart LFS, pagination (every listing is one
page), ``expand`` fields, ``HfFileSystem`` (its module-level instance keeps the import-time endpoint).

Misbehaving (hostile tests): set ``server.fault`` to a function of the :class:`Request`; it returns None to
serve the request normally, a :class:`Response` to send instead (an HTML page, garbage, an error echoing
the request's headers), or ``DROP`` to send headers and part of the body, then close the connection.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import itertools
import json
import os
import re
import secrets
import sys
import threading
import traceback
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_USER = "hubtester"
# The Hub stores files of 10 MB and more in LFS whatever their name.
DEFAULT_LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
# LFS patterns of the .gitattributes the Hub writes into every new repo (abridged to what a model zoo needs).
DEFAULT_LFS_PATTERNS = (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*",
    "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle",
    "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite",
    "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*",
)  # fmt: skip
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
DROP = "drop"  # a fault: the connection is closed mid-reply
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def git_blob_sha1(data: bytes) -> str:
    """Git object id of a blob: what the Hub reports as `oid`/`blobId`/`ETag` for a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file committed in place of an LFS file; its git sha1 is the file's blob id."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def default_gitattributes() -> bytes:
    """The `.gitattributes` of the initial commit, listing `DEFAULT_LFS_PATTERNS` as LFS."""
    return "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in DEFAULT_LFS_PATTERNS).encode()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class Entry:
    """One file of a commit's tree: regular (`sha256` None) or LFS (content in the repo's LFS store)."""

    size: int
    blob_id: str
    sha256: str | None = None

    @property
    def is_lfs(self) -> bool:
        return self.sha256 is not None

    def lfs_json(self, oid_key: str) -> dict[str, Any] | None:
        if self.sha256 is None:
            return None
        return {
            oid_key: self.sha256,
            "size": self.size,
            "pointerSize": len(lfs_pointer(self.sha256, self.size)),
        }


@dataclass(frozen=True)
class Commit:
    oid: str
    parent: str | None
    tree: Mapping[str, Entry]
    title: str
    message: str
    author: str
    date: str


@dataclass
class Repo:
    """A repo with git-like history: immutable commits, branches and tags pointing at them, content stores."""

    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    regular_blobs: dict[str, bytes] = field(default_factory=dict)  # git sha1 -> content
    lfs_objects: dict[str, bytes] = field(default_factory=dict)  # sha256 -> content

    def resolve(self, revision: str) -> str | None:
        """Commit oid for a branch, a tag, a full commit sha or an unambiguous prefix (>= 7 hex chars)."""
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.tags:
            return self.tags[revision]
        if revision in self.commits:
            return revision
        if re.fullmatch(r"[0-9a-f]{7,39}", revision):
            matches = [oid for oid in self.commits if oid.startswith(revision)]
            if len(matches) == 1:
                return matches[0]
        return None

    def content(self, entry: Entry) -> bytes:
        return self.lfs_objects[entry.sha256] if entry.sha256 is not None else self.regular_blobs[entry.blob_id]

    def history(self, oid: str) -> Iterator[Commit]:
        """Commits from `oid` back to the first one (first-parent chain), newest first."""
        current: str | None = oid
        while current is not None:
            commit = self.commits[current]
            yield commit
            current = commit.parent


@dataclass
class Exchange:
    """One recorded request/response pair: what the client sent and what the server answered.

    Header names are lower-cased (clients spell them differently): `request_headers["authorization"]`.
    """

    method: str
    path: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except json.JSONDecodeError as exc:
            raise HubError(400, f"Request body of {self.method} {self.path} is not valid JSON: {exc}") from exc

    def flag(self, name: str) -> bool:
        return any(v.lower() in ("1", "true", "yes") for v in self.query.get(name, []))


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class HubError(Exception):
    """An error answered as the Hub does: JSON `{"error": ...}` plus X-Error-Code / X-Error-Message."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


def _json(data: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(data).encode(), {"Content-Type": "application/json; charset=utf-8"})


def _repo_not_found(repo_type: str, repo_id: str) -> HubError:
    return HubError(404, f"Repository Not Found: {repo_type} {repo_id}", "RepoNotFound")


def _revision_not_found(revision: str) -> HubError:
    return HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")


def _validate_path(path: str) -> str:
    parts = path.split("/")
    if not path or any(part in ("", ".", "..") for part in parts) or "\\" in path:
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


def _gitattributes_lfs_patterns(text: str) -> list[str]:
    patterns = []
    for line in text.splitlines():
        fields = line.split()
        if fields and not fields[0].startswith("#") and "filter=lfs" in fields[1:]:
            patterns.append(fields[0])
    return patterns


def _matches(pattern: str, path: str) -> bool:
    """gitattributes/gitignore-style match: a pattern without '/' matches the file name at any depth."""
    pattern = pattern.lstrip("/")
    if "/" not in pattern:
        return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)
    return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, pattern.replace("**/", ""))


Handler = Callable[..., Response]


class HubServer:
    """In-memory Hub on 127.0.0.1 (random free port). Use as a context manager so it always stops.

    `tokens`: when given, only these bearer tokens are accepted (others get 401); by default any token is.
    `lfs_size_threshold`: files of at least this many bytes are LFS whatever their name.
    `user`: the account every token belongs to (namespace of `create_repo("name")`, `whoami`).
    """

    def __init__(
        self,
        *,
        user: str = DEFAULT_USER,
        tokens: Collection[str] | None = None,
        lfs_size_threshold: int = DEFAULT_LFS_SIZE_THRESHOLD,
    ) -> None:
        self.user = user
        self.tokens = set(tokens) if tokens is not None else None
        self.lfs_size_threshold = lfs_size_threshold
        self.repos: dict[tuple[str, str], Repo] = {}
        self.exchanges: list[Exchange] = []
        self.unhandled: list[str] = []
        self._pending_uploads: dict[str, tuple[tuple[str, str], str, int]] = {}  # nonce -> (repo key, oid, size)
        self._lock = threading.RLock()
        self._counter = itertools.count()
        self._httpd: ThreadingHTTPServer | None = None
        self._url: str | None = None
        self._thread: threading.Thread | None = None
        self._routes = self._build_routes()
        self.fault: Callable[[Request], Response | str | None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:54321` (`HF_ENDPOINT`); kept after stop() for offline hub_env."""
        if self._url is None:
            raise RuntimeError("HubServer was never started: use `with HubServer() as server:` or start()")
        return self._url

    def start(self) -> HubServer:
        if self._httpd is not None:
            return self
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _RequestHandler)
        httpd.daemon_threads = True
        httpd.hub = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._url = f"http://127.0.0.1:{httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="hubserver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening; requests afterwards fail with a connection error (what offline tests want)."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- helpers for tests --------------------------------------------------------------------------------

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        """The stored repo, for white-box assertions (KeyError naming the repo if it does not exist)."""
        try:
            return self.repos[(repo_type, repo_id)]
        except KeyError:
            raise KeyError(f"HubServer has no {repo_type} repo {repo_id!r}; it has {sorted(self.repos)}") from None

    def seed_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes],
        *,
        repo_type: str = "model",
        message: str = "Seed files",
        private: bool = False,
    ) -> str:
        """Commit `files` to main of a (new if needed) repo without the client; returns the commit oid.

        Files are stored as LFS or regular by the preupload rule. For tests whose subject is the download
        side (transformers, timm, from_pretrained) and that do not need to exercise uploads.
        """
        with self._lock:
            repo = self.repos.get((repo_type, repo_id)) or self._new_repo(repo_type, repo_id, private)
            tree = dict(repo.commits[repo.branches["main"]].tree)
            for path, data in files.items():
                _validate_path(path)
                if self._upload_mode(repo, tree, path, len(data), data[:512]) == "lfs":
                    sha = hashlib.sha256(data).hexdigest()
                    repo.lfs_objects[sha] = data
                    tree[path] = Entry(len(data), git_blob_sha1(lfs_pointer(sha, len(data))), sha)
                else:
                    blob_id = git_blob_sha1(data)
                    repo.regular_blobs[blob_id] = data
                    tree[path] = Entry(len(data), blob_id)
            return self._commit(repo, "main", tree, message, "")

    def find_in_responses(self, text: str) -> list[Exchange]:
        """Exchanges whose response headers or body contain `text` (e.g. a token that must not be echoed)."""
        needle = text.encode()
        return [
            ex
            for ex in list(self.exchanges)
            if needle in ex.response_body or any(text in k or text in v for k, v in ex.response_headers.items())
        ]

    # -- storage ------------------------------------------------------------------------------------------

    def _new_repo(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private, created_at=_now())
        self.repos[(repo_type, repo_id)] = repo
        attributes = default_gitattributes()
        blob_id = git_blob_sha1(attributes)
        repo.regular_blobs[blob_id] = attributes
        self._commit(repo, None, {".gitattributes": Entry(len(attributes), blob_id)}, "initial commit", "")
        return repo

    def _commit(self, repo: Repo, branch: str | None, tree: Mapping[str, Entry], title: str, description: str) -> str:
        parent = repo.branches.get(branch) if branch is not None else None
        listing = "\n".join(f"{e.blob_id} {p}" for p, e in sorted(tree.items()))
        oid = hashlib.sha1(
            f"{repo.repo_id}\n{parent}\n{next(self._counter)}\n{title}\n{description}\n{listing}".encode()
        ).hexdigest()
        message = title if not description else f"{title}\n\n{description}"
        repo.commits[oid] = Commit(oid, parent, dict(tree), title, message, self.user, _now())
        repo.branches[branch or "main"] = oid
        return oid

    def _upload_mode(self, repo: Repo, tree: Mapping[str, Entry], path: str, size: int, sample: bytes) -> str:
        """The Hub's rule: empty -> regular; .gitattributes LFS pattern, size or binary sample -> LFS."""
        if size == 0:
            return "regular"
        attributes = tree.get(".gitattributes")
        patterns = (
            _gitattributes_lfs_patterns(repo.content(attributes).decode("utf-8", "replace"))
            if attributes is not None
            else list(DEFAULT_LFS_PATTERNS)
        )
        if any(_matches(p, path) for p in patterns) or size >= self.lfs_size_threshold or b"\0" in sample:
            return "lfs"
        return "regular"

    # -- request plumbing ---------------------------------------------------------------------------------

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], Handler]]:
        api = r"/api/(?P<types>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)"
        git = r"/(?:(?P<prefix>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+)"
        table: list[tuple[str, str, Handler]] = [
            ("POST", r"/api/repos/create", self._h_create_repo),
            ("DELETE", r"/api/repos/delete", self._h_delete_repo),
            ("GET", r"/api/whoami-v2", self._h_whoami),
            ("POST", r"/api/validate-yaml", self._h_validate_yaml),
            ("GET", api, self._h_repo_info),
            ("GET", api + r"/revision/(?P<rev>[^/]+)", self._h_repo_info),
            ("POST", api + r"/preupload/(?P<rev>[^/]+)", self._h_preupload),
            ("POST", api + r"/commit/(?P<rev>[^/]+)", self._h_commit),
            ("GET", api + r"/refs", self._h_refs),
            ("POST", api + r"/tag/(?P<rev>[^/]+)", self._h_create_tag),
            ("DELETE", api + r"/tag/(?P<tag>[^/]+)", self._h_delete_tag),
            ("POST", api + r"/branch/(?P<branch>[^/]+)", self._h_create_branch),
            ("DELETE", api + r"/branch/(?P<branch>[^/]+)", self._h_delete_branch),
            ("GET", api + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", self._h_tree),
            ("GET", api + r"/commits/(?P<rev>[^/]+)", self._h_commits),
            ("POST", api + r"/paths-info/(?P<rev>[^/]+)", self._h_paths_info),
            ("POST", git + r"\.git/info/lfs/objects/batch", self._h_lfs_batch),
            ("POST", git + r"\.git/info/lfs/objects/verify", self._h_lfs_verify),
            ("PUT", r"/_lfs/upload/(?P<nonce>[A-Za-z0-9_-]+)", self._h_lfs_put),
            ("GET", git + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", self._h_resolve),
        ]
        return [(method, re.compile(pattern + r"/?"), handler) for method, pattern, handler in table]

    def _dispatch(self, request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if route_method == method and match:
                groups = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                return handler(request, **groups)
        self.unhandled.append(f"{request.method} {request.path}")
        raise HubError(404, f"No such endpoint on the test Hub: {request.method} {request.path}")

    def _caller(self, request: Request, *, required: bool) -> str | None:
        """The user behind the bearer token, None if anonymous; 401 if missing (and required) or bad."""
        header = request.headers.get("Authorization")
        if header is None:
            if required:
                raise HubError(401, "Authentication required: send an 'Authorization: Bearer <token>' header")
            return None
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or (self.tokens is not None and token not in self.tokens):
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.user

    def _repo_for(self, request: Request, types: str, repo_id: str, *, write: bool) -> Repo:
        repo_type = REPO_TYPES[types] if types in REPO_TYPES else types
        caller = self._caller(request, required=write)
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and caller is None):
            raise _repo_not_found(repo_type, repo_id)
        return repo

    def _commit_for(self, repo: Repo, revision: str) -> Commit:
        oid = repo.resolve(revision)
        if oid is None:
            raise _revision_not_found(revision)
        return repo.commits[oid]

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.url}/{URL_PREFIXES[repo.repo_type]}{repo.repo_id}"

    # -- handlers: repos ----------------------------------------------------------------------------------

    def _h_create_repo(self, request: Request) -> Response:
        self._caller(request, required=True)
        body = request.json() or {}
        name, organization = body.get("name"), body.get("organization") or self.user
        repo_type = body.get("type") or "model"
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise HubError(400, f"Invalid repo name: {name!r}")
        if repo_type not in URL_PREFIXES:
            raise HubError(400, f"Invalid repo type: {repo_type!r}")
        repo_id = f"{organization}/{name}"
        private = body.get("visibility") == "private" or bool(body.get("private"))
        with self._lock:
            existing = self.repos.get((repo_type, repo_id))
            if existing is not None:
                return _json({"error": "You already created this repo", "url": self._repo_url(existing)}, 409)
            repo = self._new_repo(repo_type, repo_id, private)
        return _json({"url": self._repo_url(repo), "name": repo_id, "id": repo_id})

    def _h_delete_repo(self, request: Request) -> Response:
        self._caller(request, required=True)
        body = request.json() or {}
        repo_type = body.get("type") or "model"
        repo_id = f"{body.get('organization') or self.user}/{body.get('name')}"
        with self._lock:
            if self.repos.pop((repo_type, repo_id), None) is None:
                raise _repo_not_found(repo_type, repo_id)
        return _json({})

    def _h_whoami(self, request: Request) -> Response:
        user = self._caller(request, required=True)
        return _json(
            {
                "type": "user",
                "id": "0" * 24,
                "name": user,
                "fullname": "Hub Server Test User",
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
            }
        )

    def _h_validate_yaml(self, request: Request) -> Response:
        return _json({"errors": [], "warnings": []})

    def _h_repo_info(self, request: Request, types: str, repo: str, rev: str = "main") -> Response:
        with self._lock:
            stored = self._repo_for(request, types, repo, write=False)
            commit = self._commit_for(stored, rev)
            blobs = request.flag("blobs")
            siblings = []
            for path, entry in sorted(commit.tree.items()):
                sibling: dict[str, Any] = {"rfilename": path}
                if blobs:
                    sibling.update(size=entry.size, blobId=entry.blob_id)
                    if entry.is_lfs:
                        sibling["lfs"] = entry.lfs_json("sha256")
                siblings.append(sibling)
            info = {
                "_id": hashlib.sha1(f"{stored.repo_type}/{stored.repo_id}".encode()).hexdigest()[:24],
                "id": stored.repo_id,
                "author": stored.repo_id.split("/")[0],
                "sha": commit.oid,
                "lastModified": commit.date,
                "createdAt": stored.created_at,
                "private": stored.private,
                "disabled": False,
                "gated": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
                "usedStorage": sum(len(b) for b in stored.lfs_objects.values())
                + sum(len(b) for b in stored.regular_blobs.values()),
            }
            if stored.repo_type == "model":
                info["modelId"] = stored.repo_id
        return _json(info)

    # -- handlers: refs and history -----------------------------------------------------------------------

    def _h_refs(self, request: Request, types: str, repo: str) -> Response:
        with self._lock:
            stored = self._repo_for(request, types, repo, write=False)
            data: dict[str, Any] = {
                "branches": [
                    {"name": n, "ref": f"refs/heads/{n}", "targetCommit": oid} for n, oid in stored.branches.items()
                ],
                "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": oid} for n, oid in stored.tags.items()],
                "converts": [],
            }
            if request.flag("include_prs"):
                data["pullRequests"] = []
        return _json(data)

    def _h_create_tag(self, request: Request, types: str, repo: str, rev: str) -> Response:
        body = request.json() or {}
        tag = body.get("tag")
        with self._lock:
            stored = self._repo_for(request, types, repo, write=True)
            commit = self._commit_for(stored, rev)
            if not isinstance(tag, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", tag) or ".." in tag:
                raise HubError(400, f"Invalid tag name: {tag!r}")
            if tag in stored.tags:
                raise HubError(409, f"Tag already exists: {tag}")
            stored.tags[tag] = commit.oid
        return _json({"name": tag, "ref": f"refs/tags/{tag}", "targetCommit": commit.oid})

    def _h_delete_tag(self, request: Request, types: str, repo: str, tag: str) -> Response:
        with self._lock:
            stored = self._repo_for(request, types, repo, write=True)
            if stored.tags.pop(tag, None) is None:
                raise _revision_not_found(tag)
        return _json({})

    def _h_create_branch(self, request: Request, types: str, repo: str, branch: str) -> Response:
        body = request.json() or {}
        with self._lock:
            stored = self._repo_for(request, types, repo, write=True)
            start = self._commit_for(stored, body.get("startingPoint") or "main")
            if branch in stored.branches:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            stored.branches[branch] = start.oid
        return _json({})

    def _h_delete_branch(self, request: Request, types: str, repo: str, branch: str) -> Response:
        with self._lock:
            stored = self._repo_for(request, types, repo, write=True)
            if branch == "main":
                raise HubError(403, "Cannot delete the default branch 'main'")
            if stored.branches.pop(branch, None) is None:
                raise _revision_not_found(branch)
        return _json({})

    def _h_commits(self, request: Request, types: str, repo: str, rev: str) -> Response:
        with self._lock:
            stored = self._repo_for(request, types, repo, write=False)
            head = self._commit_for(stored, rev)
            items = [
                {
                    "id": c.oid,
                    "title": c.title,
                    "message": c.message,
                    "authors": [{"user": c.author, "avatar": None}],
                    "date": c.date,
                }
                for c in stored.history(head.oid)
            ]
        return _json(items)

    # -- handlers: trees ----------------------------------------------------------------------------------

    @staticmethod
    def _tree_item(path: str, entry: Entry) -> dict[str, Any]:
        item: dict[str, Any] = {"type": "file", "oid": entry.blob_id, "size": entry.size, "path": path}
        if entry.is_lfs:
            item["lfs"] = entry.lfs_json("oid")
        return item

    @staticmethod
    def _folder_item(path: str, tree: Mapping[str, Entry]) -> dict[str, Any]:
        inside = sorted((p, e.blob_id) for p, e in tree.items() if p.startswith(path + "/"))
        return {
            "type": "directory",
            "oid": hashlib.sha1(repr(inside).encode()).hexdigest(),
            "size": 0,
            "path": path,
        }

    def _h_tree(self, request: Request, types: str, repo: str, rev: str, path: str = "") -> Response:
        path = path.strip("/")
        recursive = request.flag("recursive")
        with self._lock:
            stored = self._repo_for(request, types, repo, write=False)
            tree = self._commit_for(stored, rev).tree
            prefix = f"{path}/" if path else ""
            below = [p for p in tree if p.startswith(prefix)]
            if path and not below:
                raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
            folders: set[str] = set()
            files: list[str] = []
            for p in below:
                parts = p[len(prefix) :].split("/")
                depth = len(parts) if recursive else 1
                for i in range(1, min(depth, len(parts) - 1) + 1):
                    folders.add(prefix + "/".join(parts[:i]))
                if recursive or len(parts) == 1:
                    files.append(p)
            items = [self._folder_item(f, tree) for f in sorted(folders)]
            items += [self._tree_item(p, tree[p]) for p in sorted(files)]
        return _json(items)

    def _h_paths_info(self, request: Request, types: str, repo: str, rev: str) -> Response:
        content_type = request.headers.get("Content-Type", "")
        if "json" in content_type:
            paths = (request.json() or {}).get("paths", [])
        else:
            paths = parse_qs(request.body.decode(), keep_blank_values=True).get("paths", [])
        with self._lock:
            stored = self._repo_for(request, types, repo, write=False)
            tree = self._commit_for(stored, rev).tree
            items = []
            for path in paths:
                path = path.strip("/")
                if path in tree:
                    items.append(self._tree_item(path, tree[path]))
                elif any(p.startswith(path + "/") for p in tree):
                    items.append(self._folder_item(path, tree))
        return _json(items)

    # -- handlers: upload ---------------------------------------------------------------------------------

    def _h_preupload(self, request: Request, types: str, repo: str, rev: str) -> Response:
        body = request.json() or {}
        if request.flag("create_pr"):
            raise HubError(400, "The test Hub does not support pull requests (create_pr)")
        ignore = [
            line.strip()
            for line in (body.get("gitIgnore") or "").splitlines()
            if line.strip() and not line.startswith("#")
        ]
        with self._lock:
            stored = self._repo_for(request, types, repo, write=True)
            commit = self._commit_for(stored, rev)
            tree = commit.tree
            files = []
            for item in body.get("files", []):
                path = _validate_path(item.get("path", ""))
                sample = base64.b64decode(item.get("sample", ""))
                mode = self._upload_mode(stored, tree, path, int(item.get("size", 0)), sample)
                existing = tree.get(path)
                remote_oid = None
                if existing is not None:
                    remote_oid = existing.sha256 if mode == "lfs" else existing.blob_id
                files.append(
                    {
                        "path": path,
                        "uploadMode": mode,
                        "shouldIgnore": any(_matches(p, path) for p in ignore),
                        "oid": remote_oid,
                    }
                )
        return _json({"files": files, "commitOid": commit.oid})

    def _h_lfs_batch(self, request: Request, repo: str, prefix: str = "") -> Response:
        body = request.json() or {}
        types = prefix or "models"
        if body.get("operation") != "upload":
            raise HubError(400, f"The test Hub only serves LFS uploads, got operation {body.get('operation')!r}")
        if "basic" not in body.get("transfers", ["basic"]):
            raise HubError(400, "The test Hub only serves the 'basic' LFS transfer")
        objects = []
        with self._lock:
            stored = self._repo_for(request, types, repo, write=True)
            key = (stored.repo_type, stored.repo_id)
            verify_href = f"{self._repo_url(stored)}.git/info/lfs/objects/verify"
            for obj in body.get("objects", []):
                oid, size = obj.get("oid"), obj.get("size")
                if not (isinstance(oid, str) and _HEX64.fullmatch(oid) and isinstance(size, int) and size >= 0):
                    objects.append(
                        {
                            "oid": str(oid),
                            "size": int(size or 0),
                            "error": {"code": 422, "message": "Invalid oid"},
                        }
                    )
                    continue
                if oid in stored.lfs_objects:
                    objects.append({"oid": oid, "size": size})  # already present: no actions, nothing to upload
                    continue
                nonce = secrets.token_urlsafe(16)
                self._pending_uploads[nonce] = (key, oid, size)
                objects.append(
                    {
                        "oid": oid,
                        "size": size,
                        "authenticated": True,
                        "actions": {
                            "upload": {"href": f"{self.url}/_lfs/upload/{nonce}"},
                            "verify": {"href": verify_href},
                        },
                    }
                )
        response = _json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})
        response.headers["Content-Type"] = "application/vnd.git-lfs+json"
        return response

    def _h_lfs_put(self, request: Request, nonce: str) -> Response:
        with self._lock:
            pending = self._pending_uploads.pop(nonce, None)
            if pending is None:
                raise HubError(403, "Unknown or already used LFS upload URL")
            key, oid, size = pending
            repo = self.repos.get(key)
            if repo is None:
                raise _repo_not_found(*key)
            actual = hashlib.sha256(request.body).hexdigest()
            if len(request.body) != size or actual != oid:
                raise HubError(
                    400,
                    f"LFS upload does not match its announcement: announced sha256 {oid}, {size} bytes; "
                    f"received sha256 {actual} and {len(request.body)} bytes",
                )
            repo.lfs_objects[oid] = request.body
        return Response(200, b"", {"ETag": f'"{hashlib.md5(request.body).hexdigest()}"'})

    def _h_lfs_verify(self, request: Request, repo: str, prefix: str = "") -> Response:
        body = request.json() or {}
        with self._lock:
            stored = self._repo_for(request, prefix or "models", repo, write=True)
            data = stored.lfs_objects.get(body.get("oid", ""))
            if data is None or len(data) != body.get("size"):
                raise HubError(404, f"LFS object {body.get('oid')} of size {body.get('size')} was not uploaded")
        return _json({"success": True})

    def _h_commit(self, request: Request, types: str, repo: str, rev: str) -> Response:
        if request.flag("create_pr"):
            raise HubError(400, "The test Hub does not support pull requests (create_pr)")
        lines = []
        for number, raw in enumerate(request.body.splitlines(), start=1):
            if raw.strip():
                try:
                    lines.append(json.loads(raw))
                except json.JSONDecodeError as exc:
                    raise HubError(400, f"Commit payload line {number} is not JSON: {exc}") from exc
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "Commit payload must start with a 'header' line")
        header = lines[0].get("value") or {}
        summary = header.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            raise HubError(400, "Commit header needs a non-empty 'summary'")
        with self._lock:  # everything below is one atomic step: validate all, then move the branch
            stored = self._repo_for(request, types, repo, write=True)
            if rev not in stored.branches:
                if stored.resolve(rev) is not None:
                    raise HubError(400, f"Can only commit to a branch, {rev!r} is a tag or a commit")
                raise _revision_not_found(rev)
            head = stored.branches[rev]
            parent = header.get("parentCommit")
            if parent is not None and not (isinstance(parent, str) and len(parent) >= 7 and head.startswith(parent)):
                raise HubError(
                    412,
                    f"A commit has happened since. Please refresh and try again. "
                    f"(parentCommit {parent} is not the head {head} of branch {rev})",
                )
            tree = dict(stored.commits[head].tree)
            new_regular: dict[str, bytes] = {}
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value") or {}
                raw_path = str(value.get("path", ""))
                path = _validate_path(raw_path.rstrip("/") if key in ("deletedFile", "deletedFolder") else raw_path)
                if key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise HubError(400, f"Unsupported encoding for {path}: {value.get('encoding')!r}")
                    data = base64.b64decode(value.get("content", ""))
                    if self._upload_mode(stored, tree, path, len(data), data[:512]) == "lfs":
                        raise HubError(
                            400,
                            f"Your push was rejected because {path} must be stored with Git LFS "
                            "(matches an LFS pattern, is binary or too large for a regular file)",
                        )
                    blob_id = git_blob_sha1(data)
                    new_regular[blob_id] = data
                    tree[path] = Entry(len(data), blob_id)
                elif key == "lfsFile":
                    oid = value.get("oid", "")
                    data = stored.lfs_objects.get(oid)
                    if data is None:
                        raise HubError(
                            422,
                            f"Push rejected: the LFS pointer {path} points to an object never uploaded",
                        )
                    if value.get("size") is not None and value["size"] != len(data):
                        raise HubError(422, f"LFS file {path}: size {value['size']} != stored {len(data)}")
                    tree[path] = Entry(len(data), git_blob_sha1(lfs_pointer(oid, len(data))), oid)
                elif key == "deletedFile":
                    if tree.pop(path, None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                elif key == "deletedFolder":
                    inside = [p for p in tree if p.startswith(path + "/")]
                    if not inside:
                        raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in inside:
                        del tree[p]
                else:
                    raise HubError(400, f"Unsupported commit operation {key!r}")
            stored.regular_blobs.update(new_regular)
            oid = self._commit(stored, rev, tree, summary, header.get("description") or "")
        return _json(
            {
                "success": True,
                "commitOid": oid,
                "commitUrl": f"{self._repo_url(stored)}/commit/{oid}",
                "pullRequestUrl": None,
                "hookOutput": "",
            }
        )

    # -- handlers: download -------------------------------------------------------------------------------

    def _h_resolve(self, request: Request, repo: str, rev: str, path: str, prefix: str = "") -> Response:
        with self._lock:
            stored = self._repo_for(request, prefix or "models", repo, write=False)
            commit = self._commit_for(stored, rev)
            entry = commit.tree.get(path)
            if entry is None:
                raise HubError(404, f"Entry not found: {path}", "EntryNotFound", headers={"X-Repo-Commit": commit.oid})
            data = stored.content(entry)
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": commit.oid,
            "Accept-Ranges": "bytes",
            "ETag": f'"{entry.sha256 or entry.blob_id}"',
        }
        if entry.sha256 is not None:
            headers["X-Linked-Etag"] = f'"{entry.sha256}"'
            headers["X-Linked-Size"] = str(entry.size)
        status = 200
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("Range", ""))
        if match:
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
            if start >= len(data) and len(data) > 0:
                raise HubError(416, f"Range {request.headers['Range']} outside of {len(data)} bytes")
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        return Response(status, data, headers)


class _RequestHandler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so stopping the server leaves no idle keep-alive threads behind.
    protocol_version = "HTTP/1.0"
    server_version = "hubserver/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # signature fixed by the base class
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers, up to the blank line
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        hub: HubServer = self.server.hub  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        body = self._read_body()
        request = Request(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True), self.headers, body)
        fault = hub.fault(request) if hub.fault is not None else None
        if fault == DROP:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "4096")
            self.end_headers()
            self.wfile.write(b'{"id": "half a rep')
            self.wfile.flush()
            self.close_connection = True
            return
        try:
            if isinstance(fault, Response):
                response = fault
            else:
                response = hub._dispatch(request)
        except HubError as error:
            headers = {"Content-Type": "application/json; charset=utf-8", "X-Error-Message": error.message}
            if error.code is not None:
                headers["X-Error-Code"] = error.code
            headers.update(error.headers)
            response = Response(error.status, json.dumps({"error": error.message}).encode(), headers)
        except Exception as error:  # a bug in the test server: answer 500 and show where
            traceback.print_exc(file=sys.stderr)
            message = f"hubserver internal error: {type(error).__name__}: {error}"
            response = Response(500, json.dumps({"error": message}).encode(), {"Content-Type": "application/json"})
        response.headers["Content-Length"] = str(len(response.body))
        hub.exchanges.append(
            Exchange(
                self.command,
                self.path,
                {name.lower(): value for name, value in self.headers.items()},
                body,
                response.status,
                {name.lower(): value for name, value in response.headers.items()},
                response.body,
            )
        )
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle


# -- pointing huggingface_hub at a server ----------------------------------------------------------------

_UNSET = object()


def _env_vars(
    server: HubServer, cache_dir: Path, *, token: str | None, offline: bool, home_dir: Path | None
) -> dict[str, str | None]:
    """Environment for the client (None = variable removed)."""
    home = home_dir if home_dir is not None else cache_dir.parent / "hf_home"
    no_proxy = ",".join(filter(None, ["127.0.0.1", "localhost", os.environ.get("NO_PROXY")]))
    return {
        "HF_ENDPOINT": server.url,
        "HF_HUB_CACHE": str(cache_dir),
        "HF_HOME": str(home),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "HF_HUB_OFFLINE": "1" if offline else None,
        "HF_TOKEN": token,
        "HUGGING_FACE_HUB_TOKEN": None,
        "HF_OIDC_RESOURCE": None,
        "TRANSFORMERS_OFFLINE": None,
        "HUGGINGFACE_CO_STAGING": None,
        "HUGGINGFACE_HUB_CACHE": None,
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
    }


def subprocess_env(
    server: HubServer,
    cache_dir: str | os.PathLike[str],
    *,
    token: str | None = None,
    offline: bool = False,
    home_dir: str | os.PathLike[str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A full environment for `subprocess.run(..., env=...)` so a child process (e.g. the CLI) uses `server`.

    Works because the child imports huggingface_hub after these are set. `base` defaults to os.environ.
    """
    env = dict(os.environ if base is None else base)
    variables = _env_vars(
        server, Path(cache_dir), token=token, offline=offline, home_dir=Path(home_dir) if home_dir else None
    )
    for name, value in variables.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _import_time_copies(server: HubServer, cache: Path, home: Path, offline: bool) -> list[tuple[Any, str, Any]]:
    """Module-level copies of the constants, taken at import by some versions, each with its value for `server`.

    huggingface_hub 0.x: ``file_download`` builds every download URL from its own ``HUGGINGFACE_CO_URL_TEMPLATE``
    (``from .constants import ...``), and ``hf_api``, ``_cache_manager``, ``_cache_assets`` and ``_git_credential``
    keep ``ENDPOINT`` / cache paths. transformers 4.x (``transformers.utils.hub``): ``is_offline_mode()`` returns
    ``_is_offline_mode``, read once from ``HF_HUB_OFFLINE``; ``TRANSFORMERS_CACHE`` (the default ``cache_dir`` of
    its downloads) and ``HUGGINGFACE_CO_RESOLVE_ENDPOINT`` / ``HUGGINGFACE_CO_PREFIX`` likewise. Only names the
    installed modules have are returned (newer versions read ``constants`` at call time and have none of them).
    """
    import importlib

    template = server.url + "/{repo_id}/resolve/{revision}/{filename}"
    wanted: dict[str, dict[str, Any]] = {
        "huggingface_hub.file_download": {"HUGGINGFACE_CO_URL_TEMPLATE": template, "HUGGINGFACE_HUB_CACHE": str(cache)},
        "huggingface_hub.hf_api": {"ENDPOINT": server.url},
        "huggingface_hub.utils._cache_manager": {"HF_HUB_CACHE": str(cache)},
        "huggingface_hub.utils._cache_assets": {"HF_ASSETS_CACHE": str(home / "assets")},
        "huggingface_hub.utils._git_credential": {"ENDPOINT": server.url},
        "transformers.utils.hub": {
            "_is_offline_mode": offline,
            "TRANSFORMERS_CACHE": str(cache),
            "PYTORCH_TRANSFORMERS_CACHE": str(cache),
            "PYTORCH_PRETRAINED_BERT_CACHE": str(cache),
            "HUGGINGFACE_CO_RESOLVE_ENDPOINT": server.url,
            "HUGGINGFACE_CO_PREFIX": server.url + "/{model_id}/resolve/{revision}/{filename}",
        },
    }
    out: list[tuple[Any, str, Any]] = []
    for module_name, names in wanted.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # transformers is optional for hub-only tests
            continue
        out += [(module, name, value) for name, value in names.items() if hasattr(module, name)]
    return out


@contextmanager
def hub_env(
    server: HubServer,
    cache_dir: str | os.PathLike[str],
    *,
    token: str | None = None,
    offline: bool = False,
    home_dir: str | os.PathLike[str] | None = None,
) -> Iterator[Path]:
    """Point the imported huggingface_hub (and transformers/timm through it) at `server`; yields the cache.

    Patches `huggingface_hub.constants` (ENDPOINT, URL template, cache/home/token paths, offline, Xet,
    telemetry), the module-level `HfApi` behind `huggingface_hub.create_repo/model_info/...`, the client's
    trusted origins, the import-time copies of those constants that huggingface_hub 0.x and transformers 4.x
    keep in their own modules (:func:`_import_time_copies`), and the environment variables of `subprocess_env`
    (for code reading them at call time and for child processes).
    `token`: sets HF_TOKEN (removed otherwise, so no ambient token leaks in). `offline`: HF_HUB_OFFLINE=1.
    Everything is restored on exit and the client's HTTP session is closed on entry and exit.
    """
    import huggingface_hub.hf_api as hf_api
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    cache = Path(cache_dir)
    home = Path(home_dir) if home_dir is not None else cache.parent / "hf_home"
    cache.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    variables = _env_vars(server, cache, token=token, offline=offline, home_dir=home)
    origin = urlsplit(server.url)
    patches: list[tuple[Any, str, Any]] = [
        (constants, "ENDPOINT", server.url),
        (constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}"),
        (constants, "HF_URL_HOSTS", frozenset(getattr(constants, "HF_URL_HOSTS", frozenset()) | {"127.0.0.1"})),
        (constants, "HF_HOME", str(home)),
        (constants, "HF_HUB_CACHE", str(cache)),
        (constants, "HUGGINGFACE_HUB_CACHE", str(cache)),
        (constants, "HF_ASSETS_CACHE", str(home / "assets")),
        (constants, "HF_XET_CACHE", str(home / "xet")),
        (constants, "HF_TOKEN_PATH", str(home / "token")),
        (constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens")),
        (constants, "HF_HUB_OFFLINE", offline),
        (constants, "HF_HUB_DISABLE_XET", True),
        (constants, "HF_HUB_DISABLE_TELEMETRY", True),
        (constants, "HF_HUB_DISABLE_UPDATE_CHECK", True),
        (hf_api.api, "endpoint", server.url),
    ]
    if hasattr(_http, "_HUB_ORIGINS"):
        patches.append((_http, "_HUB_ORIGINS", frozenset(_http._HUB_ORIGINS | {("http", "127.0.0.1", origin.port)})))
    patches += [(module, name, value) for module, name, value in _import_time_copies(server, cache, home, offline)]

    saved_attrs = [(obj, name, getattr(obj, name, _UNSET)) for obj, name, _ in patches]
    saved_env = {name: os.environ.get(name) for name in variables}
    # huggingface_hub >= 1 (httpx) has close_session; 0.x (requests) caches one session per thread: reset_sessions
    close_session = getattr(_http, "close_session", None) or getattr(_http, "reset_sessions", lambda: None)
    try:
        close_session()
        for obj, name, value in patches:
            setattr(obj, name, value)
        for name, value in variables.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield cache
    finally:
        for obj, name, value in reversed(saved_attrs):
            if value is _UNSET:
                delattr(obj, name)
            else:
                setattr(obj, name, value)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        close_session()
