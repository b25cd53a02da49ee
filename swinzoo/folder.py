"""The converted folder: its file names, and how swinzoo writes one without ever losing what a user had.

A folder appears in one rename of a temporary sibling. The rules for an ``--out`` that already exists:

* missing or an empty folder: created;
* a previous swinzoo output (its ``conversion.json`` or ``config.json`` says swinzoo wrote it): refused unless
  ``overwrite=True``, and then only the files swinzoo writes are replaced (a stale ``verification.json`` is
  removed, since it speaks of other weights); anything else in the folder is left as it is;
* anything else (a folder holding other files, a file, a symbolic link, ``.`` or ``..``): refused, always.

SIGINT and SIGTERM are held back while the final renames run, so an interrupt either leaves nothing or a complete
folder; :func:`committed` tells the CLI which of the two happened. Temporaries of processes that died are removed
the next time a folder is written beside them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from safetensors import safe_open

from .errors import SwinzooError
from .records import ConversionRecord, RecordError, VerificationRecord, read_json
from .system import pid_alive, umask

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CONVERSION_NAME = "conversion.json"
VERIFICATION_NAME = "verification.json"
EVALUATION_NAME = "evaluation.json"
CARD_NAME = "README.md"
#: Every file swinzoo writes into a converted folder: the only ones ``overwrite=True`` may replace or remove.
SWINZOO_FILES = (WEIGHTS_NAME, CONFIG_NAME, CONVERSION_NAME, VERIFICATION_NAME, EVALUATION_NAME, CARD_NAME)

_PARTIAL = ".partial"
_committed: list[Path] = []


class OutputError(SwinzooError):
    """The output folder cannot be written as asked; nothing was written or deleted."""


@dataclasses.dataclass(frozen=True)
class ConvertedFolder:
    """A converted folder, typed: where each of its files is, and its records read and written as records.

    convert writes one (inside :func:`atomic_output`), verify adds ``verification.json``, evaluate adds
    ``evaluation.json``; the card, publish, predict and the image processor read them through this class.
    Reads raise :class:`~swinzoo.records.RecordError` naming the file and field at fault.
    """

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS_NAME

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def conversion_file(self) -> Path:
        return self.path / CONVERSION_NAME

    @property
    def verification_file(self) -> Path:
        return self.path / VERIFICATION_NAME

    @property
    def evaluation_file(self) -> Path:
        return self.path / EVALUATION_NAME

    @property
    def card_file(self) -> Path:
        return self.path / CARD_NAME

    def conversion(self) -> ConversionRecord | None:
        """``conversion.json``, or None when the folder has none (a folder swinzoo did not convert)."""
        return ConversionRecord.read(self.conversion_file)

    def require_conversion(self) -> ConversionRecord:
        record = self.conversion()
        if record is None:
            raise RecordError(
                f"{self.conversion_file}: missing (a converted folder has {CONFIG_NAME} and {CONVERSION_NAME})"
            )
        return record

    def verification(self) -> VerificationRecord | None:
        """``verification.json``, or None before ``swinzoo verify --converted`` wrote one."""
        return VerificationRecord.read(self.verification_file)

    def evaluation(self) -> dict | None:
        """``evaluation.json`` as written by ``swinzoo evaluate`` (plain JSON: its fields are evaluate's)."""
        return read_json(self.evaluation_file, required=False)

    def write_conversion(self, record: ConversionRecord) -> Path:
        return atomic_write_text(self.conversion_file, record.to_json())

    def write_verification(self, record: VerificationRecord) -> Path:
        return atomic_write_text(self.verification_file, record.to_json())


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a safetensors header (entry, source sha256...), read without torch."""
    with safe_open(str(path), framework="numpy") as f:
        return dict(f.metadata() or {})


def _swinzoo_record(path: Path) -> bool:
    try:
        data = read_json(path, required=False)
    except (OSError, RecordError):
        return False
    return data is not None and "swinzoo_version" in data


def is_swinzoo_output(folder: str | os.PathLike) -> bool:
    """Does ``folder`` hold a previous swinzoo output (a record that swinzoo wrote it)?"""
    folder = Path(folder)
    return _swinzoo_record(folder / CONVERSION_NAME) or _swinzoo_record(folder / CONFIG_NAME)


def check_output(target: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Refuse an output place that would lose a user's files, before any work is done; returns the target.

    Raises :class:`OutputError` naming the path and what to do instead.
    """
    raw = Path(target)
    if raw.name in ("", ".", "..") or str(target).rstrip("/").endswith(("/.", "/..")):
        raise OutputError(f"--out {target}: name a new folder, not {raw.name or str(target)!r}")
    if len(raw.name.encode()) > 255:
        raise OutputError(f"--out {str(target)[:80]}...: the folder name is {len(raw.name.encode())} bytes, over 255")
    if raw.is_symlink():
        raise OutputError(
            f"--out {target}: is a symbolic link; give the real folder (swinzoo never writes through links)"
        )
    if raw.exists() and not raw.is_dir():
        raise OutputError(f"--out {target}: exists and is not a folder")
    parent = raw.parent
    for up in [parent, *parent.parents]:
        if up.exists():
            if not up.is_dir():
                raise OutputError(f"--out {target}: {up} is not a folder")
            if not os.access(up, os.W_OK | os.X_OK):
                raise OutputError(f"--out {target}: cannot create it: {up} is not writable")
            break
    if raw.is_dir():
        try:
            entries = list(raw.iterdir())
        except OSError as exc:
            raise OutputError(f"--out {target}: cannot read it ({exc.strerror})") from exc
        if entries:
            if not is_swinzoo_output(raw):
                shown = ", ".join(sorted(p.name for p in entries)[:5])
                raise OutputError(
                    f"--out {target}: the folder is not empty and is not a swinzoo output (holds {shown}"
                    f"{', ...' if len(entries) > 5 else ''}); nothing was written: choose a new or empty folder"
                )
            if not overwrite:
                raise OutputError(
                    f"--out {target}: already holds a swinzoo conversion; pass --overwrite to replace swinzoo's "
                    "files in it (other files are kept), or choose another folder"
                )
            _replaceable(raw)  # before any work: a folder or link where swinzoo's file would go is refused
    return raw


def clean_stale_partials(parent: Path, name: str) -> list[Path]:
    """Remove ``.NAME.PID.*.partial`` folders left by processes that no longer run (killed, power loss)."""
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    for path in parent.glob(f".{name}.*{_PARTIAL}"):
        parts = path.name[len(name) + 2 :].split(".")
        if not parts or not parts[0].isdigit() or path.is_symlink() or not path.is_dir():
            continue
        try:
            made_at = path.lstat().st_mtime
        except OSError:
            continue
        # pid_alive with the folder's time: a PID 1 (or any reused pid) that started after the folder was made
        # is not the process that made it, so a container's first process does not keep its partials forever.
        if not pid_alive(int(parts[0]), made_at=made_at):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back for a few renames; one that came meanwhile is raised right after the block.

    Python-level handlers rather than a signal mask: a mask is per thread, and torch's worker threads would take
    the signal while the main thread's mask is on.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, _frame: pending.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pending:
            signal.raise_signal(pending[0])


def _apply_umask(root: Path) -> None:
    """mkdtemp/mkstemp create 0700/0600; the user's umask decides what a finished folder gets."""
    mask = umask()
    root.chmod(0o777 & ~mask)
    for path in root.iterdir():
        if path.is_file() and not path.is_symlink():
            path.chmod(0o666 & ~mask)


@contextlib.contextmanager
def committing(*paths: Path) -> Iterator[None]:
    """A few writes that happen whole (a record and the card that shows it): SIGINT/SIGTERM are held back until
    they are done, and then ``paths`` are reported as written completely. An interrupt before the block leaves
    them as they were."""
    with signals_deferred():
        yield
        _committed.extend(paths)


@contextlib.contextmanager
def interrupts_kept() -> Iterator[None]:
    """A Ctrl-C or SIGTERM that lands where Python swallows exceptions (a DataLoader's ``__del__`` shutting its
    workers down prints "Exception ignored" and carries on) still ends the command: each signal is noted as it is
    handled as usual, and one that did not end the block is raised again right after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous: dict[int, Any] = {int(s): signal.getsignal(s) for s in held}

    def note(signum: int, frame: FrameType | None) -> None:
        noted.append(signum)
        handler = previous[signum]
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    for s in held:
        signal.signal(s, note)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if noted:  # the block ended normally although a signal came: something swallowed it
        signal.raise_signal(noted[0])


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """Refuse, naming ``folder``, the bytes ``what`` needs and the bytes free, before a write that cannot fit."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # cannot tell: the write itself reports a full disk (see :func:`disk_full`)
    if free < needed:
        raise OutputError(
            f"{folder}: {what} needs {needed} bytes ({needed / 2**20:.1f} MiB), but its file system has {free} bytes "
            "free; free some space or choose another folder"
        )


def disk_full(path: Path, needed: int, exc: BaseException) -> OutputError:
    """A failed write as an :class:`OutputError` naming the path, the bytes needed and the bytes free."""
    try:
        free = f"{shutil.disk_usage(path.parent).free} bytes free"
    except OSError:
        free = "free space unknown"
    why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return OutputError(f"{path}: cannot write {needed} bytes ({why}); {free} on its file system")


def committed() -> list[Path]:
    """Folders this process finished writing (the CLI reports them honestly after an interrupt)."""
    return list(_committed)


@contextlib.contextmanager
def atomic_output(target: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it becomes ``target`` (see the module rules)."""
    target = check_output(target, overwrite=overwrite)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_partials(target.parent, target.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=_PARTIAL, dir=target.parent))
    except OSError as exc:
        raise OutputError(f"--out {target}: cannot create it ({exc.strerror or exc})") from exc
    try:
        yield tmp
        _apply_umask(tmp)
        check_output(target, overwrite=overwrite)  # again: something may have appeared there meanwhile
        with signals_deferred():
            _commit(tmp, target)
            _committed.append(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _commit(tmp: Path, target: Path) -> None:
    if not target.exists():
        os.rename(tmp, target)
        return
    if not any(target.iterdir()):
        os.replace(tmp, target)  # rename(2) replaces an empty folder
        return
    _replace_whole(tmp, target)


def _replaceable(target: Path) -> list[str]:
    """swinzoo's file names present in ``target``, each a regular file (else :class:`OutputError` naming it)."""
    old = [name for name in SWINZOO_FILES if os.path.lexists(target / name)]
    for name in old:
        mode = os.lstat(target / name).st_mode
        if not stat.S_ISREG(mode):
            kind = "symbolic link" if stat.S_ISLNK(mode) else "folder" if stat.S_ISDIR(mode) else "special file"
            raise OutputError(
                f"--out {target}: {target / name} is a {kind}, not the file swinzoo wrote; nothing was replaced "
                "(move it away, or choose another folder)"
            )
    return old


def _replace_whole(tmp: Path, target: Path) -> None:
    """A previous swinzoo output, overwrite asked for: swinzoo's files of ``target`` become ``tmp``'s (stale ones
    go), other files stay. Whole or not at all: the old files are first moved aside, then the new ones in, each
    by a rename; should any step fail, every rename is undone and the old output (verdict included) is as it
    was. A name of swinzoo's that holds something else (a folder, a link) is refused before anything moves."""
    old = _replaceable(target)
    new = [name for name in SWINZOO_FILES if (tmp / name).exists()]
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.old.", suffix=_PARTIAL, dir=target.parent))
    moved: list[str] = []
    placed: list[str] = []
    try:
        for name in old:
            os.rename(target / name, aside / name)
            moved.append(name)
        for name in new:
            os.rename(tmp / name, target / name)
            placed.append(name)
    except BaseException as exc:
        for name in reversed(placed):
            os.rename(target / name, tmp / name)
        for name in reversed(moved):
            os.rename(aside / name, target / name)
        aside.rmdir()
        if isinstance(exc, OSError):
            raise OutputError(
                f"--out {target}: cannot replace {exc.filename or 'a file'} ({exc.strerror or exc}); the previous "
                "output was left as it was"
            ) from exc
        raise
    shutil.rmtree(aside, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through an unpredictable temporary sibling and one rename."""
    path = Path(path)
    if path.is_symlink():
        raise OutputError(f"{path}: is a symbolic link; swinzoo never writes through links")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write it ({exc.strerror or exc})") from exc
    try:
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:  # a full disk, a quota: name the file and what it needed
            raise disk_full(path, len(text.encode("utf-8")), exc) from exc
        os.chmod(name, 0o666 & ~umask())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return path
