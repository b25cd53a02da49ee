"""A retargeted folder (``swinzoo convert --image-size/--window-size/--num-labels``): its conversion.json
``retarget`` record, and the source file moved to the folder's geometry and head for the references.

The move is :mod:`swinzoo.verify.reference_retarget` (Keys cubic convolution, the geometric spline from its definition),
not :mod:`swinzoo.retarget`, the path the converter took, so the check still compares two implementations. The
references are built from the folder's config (the new geometry); one that cannot hold it says n/a. Independent of
swinzoo's converter and of swinzoo.retarget; tests/test_verify.py checks these imports.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..folder import CONVERSION_NAME, ConvertedFolder
from ..records import RecordError
from .errors import VerifyError
from .reference_retarget import reference_retarget

if TYPE_CHECKING:
    from ..config import SwinConfig
    from ..images import Preprocessing
    from ..manifest import ZooEntry
    from .context import Context

RECORD = "retarget"  # conversion.json's key
GEOMETRY = ("image_size", "window_size")


def read_record(folder: Path) -> dict[str, Any] | None:
    """conversion.json's retarget record, or None (no record, or no readable conversion.json: check_folder says
    so). A record verify cannot use is a VerifyError naming the field."""
    converted = ConvertedFolder(folder)
    try:
        conversion = converted.conversion()
    except RecordError:
        return None
    record = conversion.retarget if conversion is not None else None
    if record is None:
        return None
    where = f"{converted.conversion_file}: {RECORD}"
    for part in ("from", "to"):
        geometry = record.get(part)
        if not isinstance(geometry, dict):
            raise VerifyError(f"{where}.{part}: missing or not an object (the geometry it was moved {part})")
        for name in GEOMETRY:
            try:
                _hw(geometry.get(name))
            except (TypeError, ValueError):
                raise VerifyError(f"{where}.{part}.{name}: {geometry.get(name)!r} is not a size") from None
    if record.get("target_task") != "image-classification":
        raise VerifyError(
            f"{where}.target_task: {record.get('target_task')!r}; verify checks retargeted classifiers only"
        )
    if not isinstance(record.get("methods"), dict):
        raise VerifyError(f"{where}.methods: missing or not an object (which method moved which tensors)")
    return record


def _hw(value: Any) -> tuple[int, int]:
    """(height, width) of an image size recorded as one int or [height, width]."""
    sizes = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(sizes) not in (1, 2) or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"not a size: {value!r}")
    return (sizes[0], sizes[-1])


def table_method(record: dict[str, Any]) -> str:
    """The v1 table method the record states: the word before the colon of methods.relative_position_bias_table
    ("bicubic", "geometric", "kept"); "none" where it states none (Swin V2: no tables)."""
    text = record["methods"].get("relative_position_bias_table")
    return text.split(":", 1)[0].strip() if isinstance(text, str) and text.strip() else "none"


def sample_preprocessing(entry: ZooEntry, record: dict[str, Any] | None) -> Preprocessing:
    """The entry's eval transform, at the retargeted image size when there is one (a square crop)."""
    if record is None:
        return entry.preprocessing
    height, width = _hw(record["to"]["image_size"])
    if height != width:
        raise VerifyError(
            f"{CONVERSION_NAME}: {RECORD}.to.image_size is {height}x{width}; the sample transform crops squares only"
        )
    return dataclasses.replace(entry.preprocessing, input_size=height)


def check_record(config: SwinConfig, want: SwinConfig, derived: set[str], record: dict[str, Any]) -> list[str]:
    """The record's ``from`` geometry must be the manifest's (the source file's), and the folder's config.json
    must be at the record's ``to`` geometry and head: the references are built from that config, and given the
    source moved from ``from`` to it."""
    problems = []
    source, target = record["from"], record["to"]
    for name in GEOMETRY:
        if name not in derived and _hw(source[name]) != _hw(getattr(want, name)):
            problems.append(
                f"{CONVERSION_NAME}: {RECORD}.from.{name} is {source[name]}, the manifest says {getattr(want, name)}"
            )
        if _hw(target[name]) != _hw(getattr(config, name)):
            problems.append(f"config.json: {name} is {getattr(config, name)}, {RECORD}.to says {target[name]}")
    pairs = [("from", source, want, "the manifest says"), ("to", target, config, "config.json has")]
    for part, recorded, cfg, says in pairs:
        if part == "from" and "window_size" in derived:
            continue
        value = recorded.get("pretrained_window_sizes")
        if value is not None and list(value) != list(cfg.pretrained_window_sizes):
            field = f"{RECORD}.{part}.pretrained_window_sizes"
            problems.append(f"{CONVERSION_NAME}: {field} is {value}, {says} {cfg.pretrained_window_sizes}")
    labels = target.get("num_labels")
    if labels is not None and labels != config.num_labels:
        problems.append(f"config.json: num_labels is {config.num_labels}, {RECORD}.to says {labels}")
    return problems


def retargeted_official(state: dict[str, torch.Tensor], ctx: Context) -> dict[str, torch.Tensor]:
    """The official file's state moved by the reference path from the record's ``from`` geometry (checked
    against the manifest) to the folder's config, with the record's table method; official classifier layout."""
    record = ctx.retarget
    if record is None:
        raise VerifyError("retargeted_official: the folder has no retarget record")
    source = record["from"]
    return reference_retarget(
        state,
        patch_size=ctx.config.patch_size,
        source_image=_hw(source["image_size"]),
        source_window=_hw(source["window_size"])[0],
        target_image=ctx.config.image_hw,
        target_window=ctx.config.window_size,
        num_labels=ctx.config.num_labels,
        method=table_method(record),
        layout="official",
    )
