"""Reading what ``swinzoo export`` wrote: the records beside each exported file, their one-line figures, whether
an export still belongs to its folder, and the model card's Exports section.

Kept apart from :mod:`swinzoo.export` (which traces and runs the model) so that the card and publish read the
records without importing torch or the export runtimes.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from .errors import SwinzooError
from .fetch import sha256_file

EXPORT_FORMATS = ("onnx", "openvino")
RECORD_SUFFIX = ".json"


class ExportError(SwinzooError, ValueError):
    """An export was refused or failed its check; nothing was written."""


def export_records(folder: str | os.PathLike) -> list[tuple[Path, dict[str, Any]]]:
    """The export records in ``folder``'s ``onnx/`` and ``openvino/`` (what publish carries), sorted by path."""
    folder = Path(folder)
    found = []
    for fmt in EXPORT_FORMATS:
        sub = folder / fmt
        if not sub.is_dir() or sub.is_symlink():
            continue
        for path in sorted(sub.glob(f"*{RECORD_SUFFIX}")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ExportError(f"{path}: not a readable export record ({exc})") from exc
            if not isinstance(record, dict) or record.get("format") != fmt or not isinstance(record.get("files"), dict):
                raise ExportError(f"{path}: not a swinzoo export record (no format/files fields)")
            found.append((path, record))
    return found


def summary_line(record: dict[str, Any]) -> str:
    """One line of figures: the worst float32 diff, or the int8 agreement."""
    parts = []
    for row in record.get("checks", []):
        figures = f"max |diff| {row.get('max_abs_diff', math.nan):.2g}"
        if "top1_agreement" in row:
            figures += f", top-1 {row['top1_agreement']:.1%}, top-5 {row.get('top5_agreement', math.nan):.1%}"
        parts.append(f"{row.get('runtime')} vs {row.get('against')} on {row.get('images')}: {figures}")
    return "; ".join(parts)


def stale_reason(folder: str | os.PathLike, record_file: Path, record: dict[str, Any]) -> str | None:
    """Why an export in ``folder`` no longer belongs to it (other weights or config, a file changed), or None."""
    folder = Path(folder)
    for key, path in (("weights_sha256", folder / "model.safetensors"), ("config_sha256", folder / "config.json")):
        if path.is_file() and record.get(key) != sha256_file(path):
            return f"{record_file} was made from other weights ({key} differs from {path})"
    for name, facts in record["files"].items():
        path = record_file.parent / name
        if not path.is_file() or path.is_symlink():
            return f"{record_file} lists {name}, which is missing from {record_file.parent}"
        if not isinstance(facts, dict) or facts.get("sha256") != sha256_file(path):
            return f"{path} changed since it was exported and checked (sha256 differs from {record_file})"
    return None


def _fmt_size(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "?"


def card_lines(folder: str | os.PathLike) -> list[str]:
    """The model card's Exports section: each file, its format, size and parity figures (none: no lines)."""
    try:
        records = export_records(folder)
    except ExportError as exc:
        return ["## Exports", "", f"Unreadable export record: {exc}", ""]
    if not records:
        return []
    lines = [
        "## Exports",
        "",
        "Each export was run by its runtime on the sample images before it was written and compared with swinzoo "
        "(eager, float32) and timm holding the same weights; int8 files are approximations of float32 and their "
        "figures say how close, not that they are equal.",
        "",
        "| file | format | precision | size | image size | checked |",
        "|---|---|---|---|---|---|",
    ]
    for record_file, record in records:
        fmt = record["format"]
        for name, facts in record["files"].items():
            size = _fmt_size(facts.get("size_bytes") if isinstance(facts, dict) else None)
            hw = "x".join(str(v) for v in record.get("image_size", []))
            figures = summary_line(record) if name == record.get("file") else f"see `{fmt}/{record_file.name}`"
            figures = figures.replace("|", "\\|")  # inside a markdown table cell
            lines.append(f"| `{fmt}/{name}` | {fmt} | {record.get('precision')} | {size} | {hw} | {figures} |")
    lines += ["", f"Records: {', '.join(f'`{p.parent.name}/{p.name}`' for p, _ in records)}.", ""]
    return lines
