"""The publish gate: when does a converted folder count as verified, for exactly the bytes it holds?

``swinzoo verify --converted`` writes ``verification.json`` bound to the sha256 of every file in
:data:`BOUND_FILES` (the weights, ``config.json`` and ``conversion.json``, the provenance the card states),
this swinzoo version and the tolerance of the stored dtype (:data:`TOLERANCES`, the policy verify compares
under). :func:`verification_problems` says why a folder does not count as verified (empty: it does);
``publish`` refuses on any problem, the card renders NOT VERIFIED with them, ``verify`` binds through
:func:`bound_hashes`. :func:`check_publishable` is what publish sends at all: regular files inside the folder
(no link, nothing reached outside it) that parse as what their name says.

This module imports nothing of ``verify``, ``card`` or ``publish``: they read it.
"""

from __future__ import annotations

import functools
import json
import os
import stat
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .errors import SwinzooError
from .fetch import sha256_file
from .folder import CONFIG_NAME, CONVERSION_NAME, VERIFICATION_NAME, WEIGHTS_NAME, ConvertedFolder
from .records import ConversionRecord, RecordError, VerificationRecord, read_json

__all__ = [
    "BOUND_FILES",
    "TOLERANCES",
    "Tolerance",
    "UnsafeFileError",
    "as_verification",
    "bound_hashes",
    "check_publishable",
    "read_verification",
    "sha256_of",
    "stored_dtype",
    "verification_passed",
    "verification_problems",
    "verify_command",
]


@dataclass(frozen=True)
class Tolerance:
    """Allowed ``max |ours - reference|`` for one output: ``atol + rtol * max |reference|``.

    Relative to the output's own scale because Swin's residual stream grows stage by stage (hidden states of
    real checkpoints reach the hundreds) while logits and reconstructions stay near 1-10.
    """

    atol: float
    rtol: float

    def limit(self, scale: float) -> float:
        return self.atol + self.rtol * scale

    def to_dict(self) -> dict[str, float]:
        return {"atol": self.atol, "rtol": self.rtol}


# The tolerance policy per stored dtype: verify compares under it (verify/tolerances.py), and a verdict counts
# only if it was computed under it. Both sides always run in float32. A bfloat16 / float16 folder is upcast, and
# the reference gets the source's weights rounded to the same dtype first, so both hold bit-identical weights and
# only float32 implementation differences remain: measured <= 1.3e-6 relative on real-size synthetic Swin-T /
# SwinV2-T / SimMIM Swin-L (every stage), 3.8e-6 for a normalised-target SimMIM loss. So one bound serves every
# dtype, 25-100x above that noise; a 1e-2 shift of one attention bias of a real-size Swin-T (the hardest case
# measured) comes out at 8x the bound. Kept per dtype so a change for one dtype is one line.
TOLERANCES: dict[str, Tolerance] = {
    "float32": Tolerance(atol=1e-5, rtol=1e-4),
    "bfloat16": Tolerance(atol=1e-5, rtol=1e-4),
    "float16": Tolerance(atol=1e-5, rtol=1e-4),
}

VERIFICATION_SCHEMA = VerificationRecord.SCHEMA
# Every file whose bytes change what the model computes or what the card claims (entry, source, sha256,
# synthetic or not, retargeting), and the verification.json field holding its sha256.
BOUND_FILES = {"weights_sha256": WEIGHTS_NAME, "config_sha256": CONFIG_NAME, "conversion_sha256": CONVERSION_NAME}
_SAFETENSORS_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "F64": "float64"}
_MAX_HEADER = 100 * 1024 * 1024


class UnsafeFileError(SwinzooError, ValueError):
    """A file publish would send is a link, not a regular file, outside the folder, or not what its name says."""


# --------------------------------------------------------------------------------------------- hashes
def sha256_of(path: Path) -> str | None:
    """Hex sha256 of a regular file (None if absent or not a regular file). A file whose inode, size, mtime and
    ctime are unchanged since the last call is not re-read (publish checks the gate, then renders the card:
    multi-GB weights are hashed once); ctime cannot be set back by a writer, so an edit is always re-read."""
    try:
        st = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return _sha256_cached(str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@functools.lru_cache(maxsize=32)
def _sha256_cached(path: str, inode: int, size: int, mtime_ns: int, ctime_ns: int) -> str:  # noqa: ARG001
    return sha256_file(Path(path))


def bound_hashes(folder: Path) -> dict[str, str | None]:
    """sha256 of each file in :data:`BOUND_FILES`: what verify records and publish compares."""
    return {key: sha256_of(folder / name) for key, name in BOUND_FILES.items()}


def stored_dtype(weights: Path) -> str | None:
    """The one dtype a safetensors file stores (read from its header alone), or None if it cannot tell."""
    try:
        header = _safetensors_header(weights)
    except (OSError, UnsafeFileError):
        return None
    # str(): a non-string dtype (even an unhashable list) is simply not one of the known names
    dtypes = {str(v.get("dtype")) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}
    return _SAFETENSORS_DTYPES.get(dtypes.pop(), None) if len(dtypes) == 1 else None


def _safetensors_header(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise UnsafeFileError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
        (size,) = struct.unpack("<Q", raw)
        if size > _MAX_HEADER:
            raise UnsafeFileError(f"{path}: not a safetensors file (a header of {size} bytes)")
        try:
            header = json.loads(f.read(size))
        except (ValueError, RecursionError) as exc:
            raise UnsafeFileError(f"{path}: not a safetensors file (its header is not JSON: {exc})") from exc
    if not isinstance(header, dict):
        raise UnsafeFileError(f"{path}: not a safetensors file (its header is not a JSON object)")
    return header


# --------------------------------------------------------------------------------------------- what publish sends
def check_publishable(folder: Path, name: str) -> Path:
    """``folder/name`` if it is a regular file inside ``folder`` (not a link, nothing resolving elsewhere) that
    parses as what its name says (safetensors header, JSON object); else :class:`UnsafeFileError` (or, for a
    record, :class:`RecordError`) naming it."""
    path = folder / name
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise UnsafeFileError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeFileError(f"{path} is a symbolic link: publish sends only regular files inside the folder")
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFileError(f"{path} is not a regular file: publish sends only regular files inside the folder")
    if path.resolve().parent != folder.resolve():
        raise UnsafeFileError(f"{path} resolves outside {folder}: publish sends only files inside the folder")
    if name.endswith(".safetensors"):
        _safetensors_header(path)
    elif name.endswith(".json"):
        read_json(path)  # size-capped, a JSON object, or a RecordError naming the file
    return path


# --------------------------------------------------------------------------------------------- the verdict
def as_verification(verification: Any, where: Path | str = VERIFICATION_NAME) -> VerificationRecord | None:
    """A :class:`VerificationRecord` from a record, a mapping (type-checked, ``where`` named) or None."""
    if verification is None or isinstance(verification, VerificationRecord):
        return verification
    if isinstance(verification, Mapping):
        return VerificationRecord.from_dict(verification, where)
    raise RecordError(f"verification={verification!r}: expected True (read the folder's), None or a mapping")


def read_verification(folder: str | os.PathLike) -> VerificationRecord | None:
    """``verification.json`` of ``folder`` (written by ``swinzoo verify --converted``), or None if absent."""
    return ConvertedFolder(Path(folder)).verification()


def verification_passed(verification: VerificationRecord | Mapping[str, Any] | None) -> bool:
    """True only for a verification that ran and passed (``status`` "pass" when verify wrote one)."""
    if isinstance(verification, Mapping):
        verification = as_verification(verification)
    return isinstance(verification, VerificationRecord) and verification.verdict


def verify_command(folder: Path) -> str:
    """The command that (re)writes a folder's verification.json."""
    try:
        name = (ConvertedFolder(folder).conversion() or ConversionRecord()).entry
    except RecordError:
        name = None
    return f"`swinzoo verify {name or 'NAME'} --converted {folder}`"


def verification_problems(
    folder: str | os.PathLike, verification: VerificationRecord | Mapping[str, Any] | None | bool = True
) -> list[str]:
    """Why the folder does not count as verified (empty list: it does, these exact bytes).

    The verdict holds only for the bytes it was computed on: the sha256 of every file in :data:`BOUND_FILES`,
    the swinzoo version and the tolerance policy for the stored dtype; and the provenance it states (entry,
    source sha256, synthetic or not) must be conversion.json's. A record of an older schema, or one missing a
    field, is not a verdict at all. ``verification``: True reads the folder's file.
    """
    folder = Path(folder)
    where = folder / VERIFICATION_NAME
    again = f"run {verify_command(folder)}"
    record = read_verification(folder) if verification is True else as_verification(verification, where)
    if record is None:
        return [f"{where} is missing: {again} first"]
    schema = record.schema_version
    if schema != VERIFICATION_SCHEMA:
        older = schema is None or (isinstance(schema, int) and schema < VERIFICATION_SCHEMA)
        why = "an older schema" if older else "a schema this swinzoo does not know"
        return [
            f"{where} has {why} (schema_version {schema!r}, this swinzoo writes {VERIFICATION_SCHEMA}) and "
            f"does not count as a verification: re-verify ({again})"
        ]
    missing = record.missing()
    if missing:
        return [f"{where} lacks the required field(s) {', '.join(missing)}, so it is not a verification: {again}"]
    problems = []
    if not record.verdict:
        failed = [
            f"{r.get('reference', '?')}: {r.get('status') or 'fail'}"
            for r in record.references or []
            if r.get("status") != "pass"
        ]
        which = f" ({'; '.join(failed)})" if failed else ""
        problems.append(f"{where} says verification did not pass: status {record.status}{which}")
    if record.swinzoo_version != __version__:
        problems.append(
            f"{where} field swinzoo_version is {record.swinzoo_version!r}, but this is swinzoo "
            f"{__version__}: re-verify with this version ({again})"
        )
    for key, actual in bound_hashes(folder).items():
        if getattr(record, key) != actual:
            problems.append(
                f"{where} was made for other files: {key} {getattr(record, key)} there, {actual} for "
                f"{folder / BOUND_FILES[key]} here (it changed since verify: {again})"
            )
    dtype = stored_dtype(folder / WEIGHTS_NAME)
    if dtype != record.dtype:
        problems.append(f"{where} field dtype is {record.dtype!r}, but {WEIGHTS_NAME} stores {dtype}: {again}")
    elif dtype not in TOLERANCES or dict(record.tolerance or {}) != TOLERANCES[dtype].to_dict():
        policy = TOLERANCES[dtype].to_dict() if dtype in TOLERANCES else None
        problems.append(
            f"{where} field tolerance is {record.tolerance}, but swinzoo's policy for {dtype} is {policy}: {again}"
        )
    try:
        conversion = ConvertedFolder(folder).conversion() or ConversionRecord()
    except RecordError as exc:
        return [*problems, str(exc)]
    return problems + _provenance_problems(record, conversion, where, again)


def _provenance_problems(
    record: VerificationRecord, conversion: ConversionRecord, where: Path, again: str
) -> list[str]:
    """The verdict's own account of what it checked (source sha256, entry, synthetic) against conversion.json's,
    which the card shows: a record copied from another folder, or one side edited, is refused."""
    claims = [
        ("source_sha256", record.source_sha256, conversion.source_sha256),
        ("entry", record.entry if conversion.entry else None, conversion.entry or None),  # --source: no entry
        ("synthetic", bool(record.synthetic), bool(conversion.synthetic)),
    ]
    return [
        f"{where} was made for other provenance: {name} {ours!r} there, {theirs!r} in {CONVERSION_NAME} ({again})"
        for name, ours, theirs in claims
        if ours != theirs
    ]
