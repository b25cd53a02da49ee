"""Reporting a run: the text table, the ``--json`` summary, and ``verification.json`` in a converted folder."""

from __future__ import annotations

import datetime
import errno
import json
import math
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import printable
from ..folder import ConvertedFolder, OutputError, atomic_write_text
from ..gate import bound_hashes
from ..records import VerificationRecord, finite
from ..text import text_table
from .results import EntryReport
from .tolerances import TOLERANCES


def library_versions() -> dict[str, str | None]:
    """Versions of torch and the reference libraries (None when one is not installed)."""
    out: dict[str, str | None] = {"swinzoo": __version__, "torch": torch.__version__}
    for name in ("timm", "transformers"):
        try:
            module = __import__(name)
            out[name] = getattr(module, "__version__", "unknown")
        except ImportError:
            out[name] = None
    return out


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return "inf"
    return f"{value:.2e}"


def table_rows(reports: Sequence[EntryReport]) -> list[list[str]]:
    rows = []
    for r in reports:
        if not r.references:
            rows.append([r.entry, "-", "-", "-", "-", r.status, f"{r.seconds:.1f}s"])
            continue
        for i, ref in enumerate(r.references):
            top5 = "-" if ref.top5_per_image is None else f"{sum(ref.top5_per_image)}/{len(ref.top5_per_image)}"
            result = ref.status if i else f"{ref.status} [{r.status}]"
            rows.append(
                [
                    r.entry if i == 0 else "",
                    ref.reference,
                    _fmt(ref.output_max_abs_diff),
                    _fmt(ref.hidden_max_abs_diff),
                    top5,
                    result,
                    f"{ref.seconds:.1f}s",
                ]
            )
    return rows


def format_table(reports: Sequence[EntryReport]) -> str:
    """The human-readable table, then one line per problem or n/a reason, then the tolerance policy."""
    header = ["entry", "reference", "logits|recon", "hidden", "top-5", "result [entry]", "time"]
    rows = table_rows(reports)
    lines = [text_table(header, rows, right={2, 3, 4, 6})]
    notes = []
    for r in reports:
        readable = r.inference_paths.get("readable")
        if readable:
            notes.append(
                f"{r.entry}: inference paths: fast (checked by the references above), readable "
                f"(max |readable - fast|: output {_fmt(readable['output_max_abs_diff'])}, hidden "
                f"{_fmt(readable['hidden_max_abs_diff'])}: {readable['status']})"
            )
        notes += [printable(f"{r.entry}: {p}") for p in r.problems]  # problems quote key names from files
        notes += [
            printable(f"{r.entry}: {ref.reference} {ref.status}: {ref.reason}")
            for ref in r.references
            if ref.reason and ref.status != "pass"
        ]
        notes += [  # a check that could not fail (all-zero logits) is named, with what was compared instead
            f"{r.entry}: {ref.reference}: {c.name} {c.note}"
            for ref in r.references
            for c in ref.comparisons
            if "no information" in c.note
        ]
    if notes:
        lines += ["", *notes]
    dtypes = sorted({r.dtype for r in reports if r.references})
    policy = ", ".join(f"{d}: |diff| <= {TOLERANCES[d].atol:g} + {TOLERANCES[d].rtol:g} * max|ref|" for d in dtypes)
    passed = sum(r.passed for r in reports)
    lines += ["", f"{passed}/{len(reports)} entries passed" + (f"; tolerance {policy}" if policy else "")]
    return "\n".join(lines)


def summary(reports: Sequence[EntryReport], selected: int | None = None) -> dict[str, Any]:
    """Machine-readable result of a run (what ``--json`` writes). ``selected``: how many entries the run was to
    verify; a file written midway (or left by a stopped run) says ``complete: false`` and does not pass."""
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.status] = counts.get(r.status, 0) + 1
    selected = len(reports) if selected is None else selected
    complete = len(reports) >= selected
    return finite(
        {
            "swinzoo_version": __version__,
            "libraries": library_versions(),
            "tolerances": {k: v.to_dict() for k, v in TOLERANCES.items()},
            "passed": complete and all(r.passed for r in reports),
            "complete": complete,
            "selected": selected,
            "done": len(reports),
            "counts": counts,
            "entries": [r.to_dict() for r in reports],
        }
    )


def write_json(path: str, reports: Sequence[EntryReport], selected: int | None = None) -> None:
    """:func:`summary` as JSON to ``path`` (atomically), or to stdout for ``-``."""
    if path == "-":
        print(json.dumps(summary(reports, selected), indent=2))
    elif _is_stream(Path(path)):
        _write_stream(Path(path), summary(reports, selected))
    else:
        _write_json_atomic(Path(path), summary(reports, selected))


def _is_stream(path: Path) -> bool:
    """A named pipe or character device (``>(jq .)``, /dev/stdout): written into, never replaced by a file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def _write_stream(path: Path, data: Any) -> None:
    """Write into a pipe or device as it is. A pipe without a reader is refused at once instead of waiting."""
    text = json.dumps(finite(data), indent=2, allow_nan=False, default=_json_default) + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        why = "a named pipe that no process reads" if exc.errno == errno.ENXIO else (exc.strerror or str(exc))
        raise OutputError(f"--json-file {path}: cannot write into it ({why})") from exc
    try:
        os.set_blocking(fd, True)
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            fd = -1
            stream.write(text)
    except OSError as exc:
        raise OutputError(f"--json-file {path}: cannot write into it ({exc.strerror or exc})") from exc
    finally:
        if fd != -1:
            os.close(fd)


def write_verification(folder: Path, report: EntryReport) -> Path:
    """``verification.json`` beside the converted weights (atomically): what the model card reports.

    The verdict is bound to what produced it (gate.verification_problems checks each): the sha256 of every
    file that changes what the model computes or what the card claims, as verify read them (``report.bound``),
    this swinzoo version and the tolerance of the stored dtype.
    """
    versions = library_versions()
    hashes = report.bound if report.bound is not None else bound_hashes(folder)
    record = VerificationRecord(
        schema_version=VerificationRecord.SCHEMA,
        swinzoo_version=__version__,
        verified_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        entry=report.entry,
        status=report.status,
        passed=report.passed,
        problems=list(report.problems),
        unchecked=list(report.unchecked),
        source=report.source,
        source_sha256=report.source_sha256,
        # the exact bytes that were checked: publish refuses a folder whose weights or config changed since
        weights_sha256=hashes["weights_sha256"],
        config_sha256=hashes["config_sha256"],
        conversion_sha256=hashes["conversion_sha256"],
        synthetic=report.synthetic,
        dtype=report.dtype,
        tolerance=report.tolerance.to_dict(),
        images=list(report.images),
        seed=report.seed,
        mask=report.mask,
        libraries={k: versions.get(k) for k in ("torch", "timm", "transformers")},
        references=[
            {
                "reference": r.reference,
                "library": r.library,
                "library_version": r.library_version,
                "status": r.status,
                "reason": r.reason,
                "output_max_abs_diff": r.output_max_abs_diff,
                "hidden_max_abs_diff": r.hidden_max_abs_diff,
                "top5_agreement": r.top5_agreement,
                "comparisons": [c.to_dict() for c in r.comparisons],
            }
            for r in report.references
        ],
    )
    converted = ConvertedFolder(folder)
    _make_parent(converted.verification_file)
    return converted.write_verification(record)


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create its folder ({exc.strerror or exc})") from exc


def _write_json_atomic(path: Path, data: Any) -> None:
    """Through an unpredictable temporary sibling and one rename (a folder or link at ``path`` is refused)."""
    _make_parent(path)
    atomic_write_text(path, json.dumps(finite(data), indent=2, allow_nan=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    raise TypeError(f"not JSON serialisable: {value!r}")
