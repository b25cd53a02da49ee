"""Harness for the hostile-input tests: run the CLI under a memory and time budget and check how it failed.

Every hostile case asserts the same contract (issue 11): a non-zero exit, a one-line message that names the
file / key / value at fault, no traceback, bounded memory and time, no file outside the output touched and
nothing left behind. ``run_cli`` runs click in-process (fast: no second ``import torch``) with a soft
``RLIMIT_AS`` of the current address space plus a budget, and a SIGALRM deadline; both are restored after.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from swinzoo.cli import main

DEFAULT_MEMORY_MB = 1536
DEFAULT_SECONDS = 120


class Deadline(Exception):
    """The command ran past its time budget."""


def _address_space() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


@contextlib.contextmanager
def budget(memory_mb: int = DEFAULT_MEMORY_MB, seconds: int = DEFAULT_SECONDS) -> Iterator[None]:
    """At most ``memory_mb`` more address space and ``seconds`` of wall time for the block."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + memory_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)

    def on_alarm(signum, frame):
        raise Deadline(f"ran past its {seconds}s budget")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.signal(signal.SIGALRM, previous)


@dataclass
class CliResult:
    exit_code: int
    output: str  # stdout + stderr
    exception: BaseException | None


def run_cli(*args: str | os.PathLike, memory_mb: int = DEFAULT_MEMORY_MB, seconds: int = DEFAULT_SECONDS,
            env: dict[str, str] | None = None, input: str | None = None) -> CliResult:  # fmt: skip
    """``swinzoo ARGS`` in-process under :func:`budget`; a MemoryError or the deadline surfaces as the exception."""
    runner = CliRunner()
    with budget(memory_mb, seconds):
        result = runner.invoke(main, [str(a) for a in args], env=env, input=input, catch_exceptions=True)
    output = result.stdout + (result.stderr if result.stderr_bytes is not None else "")
    exc = result.exception if not isinstance(result.exception, SystemExit) else None
    return CliResult(result.exit_code, output, exc)


def assert_clean_failure(result: CliResult, *needles: str) -> str:
    """Non-zero exit, no traceback, no uncaught exception, and a message that names each of ``needles``."""
    assert result.exception is None, f"uncaught {type(result.exception).__name__}: {result.exception}"
    assert result.exit_code != 0, f"exit 0 for a hostile input; output:\n{result.output}"
    assert "Traceback" not in result.output, result.output
    message = result.output.strip()
    for needle in needles:
        assert needle in message, f"{needle!r} not named in the message:\n{message}"
    longest = max((len(line) for line in message.splitlines()), default=0)
    assert longest <= 2500, f"a {longest}-character line in the message"
    return message


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 (or '<dir>' / '-> target' for links) of everything under ``root``."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = f"-> {os.readlink(path)}"
        elif path.is_dir():
            out[rel] = "<dir>"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def leftovers(root: Path) -> list[str]:
    """Temporaries swinzoo must never leave behind: ``.partial`` folders, ``.tmp`` / ``.old`` / ``.part`` files."""
    marks = (".partial", ".tmp", ".old", ".part")
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if any(m in p.name for m in marks))


def run_cli_subprocess(*args: str | os.PathLike, memory_mb: int = 4096, seconds: int = 300,
                       env: dict[str, str] | None = None, **popen) -> subprocess.Popen:  # fmt: skip
    """The ``swinzoo`` entry point (``swinzoo.cli:run``) in a child with RLIMIT_AS (signal tests, process limits)."""
    limit = _address_space() + memory_mb * 1024 * 1024

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    code = "from swinzoo.cli import run; run()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        env={**os.environ, **(env or {})},
        preexec_fn=limits,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )
