"""The records of a converted folder, typed: ``conversion.json`` and ``verification.json``.

Every step reads and writes them through :class:`ConversionRecord` and :class:`VerificationRecord` (via
:class:`swinzoo.folder.ConvertedFolder`), so the schema is written down once, here: the dataclass fields are the
JSON fields, and their annotations are the JSON types a file must have. A record on disk is untrusted input (it
may be old, hand-edited or hostile): reading bounds its size, refuses non-UTF-8, invalid or too deeply nested
JSON, and a field of the wrong type, each in one message naming the file and the field. A field that is absent
reads as None (or an empty list/object); whether that is acceptable is the reader's decision (the publish gate,
for one, names the fields a verification must have).

Schemas are versioned. ``conversion.json``: 1 (records written before the version field existed read as 1).
``verification.json``: 2 binds the verdict to the sha256 of the weights and config, the stored dtype's tolerance
and the swinzoo version; a schema-1 record still reads, and the gate calls it an older schema.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, overload

from .errors import SwinzooError

MAX_RECORD_BYTES = 16 * 1024 * 1024  # conversion.json of the largest entry is ~0.1 MB; bounds what a record costs
_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true/false", list: "a list", dict: "an object"}


class RecordError(SwinzooError, ValueError):
    """A folder's JSON record cannot be read as swinzoo's schema; the message names the file (and field)."""


def _show(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 60 else text[:60] + "..."


# --------------------------------------------------------------------------------------------- plain JSON
@overload
def read_json(
    path: Path, *, required: Literal[True] = True, fields: Mapping[str, tuple[type, ...]] | None = None
) -> dict[str, Any]: ...


@overload
def read_json(
    path: Path, *, required: bool, fields: Mapping[str, tuple[type, ...]] | None = None
) -> dict[str, Any] | None: ...


def read_json(
    path: Path, *, required: bool = True, fields: Mapping[str, tuple[type, ...]] | None = None
) -> dict[str, Any] | None:
    """A JSON object from ``path`` (None when absent and not required); errors name the file (and field)."""
    if not path.is_file():
        if required:
            raise RecordError(f"{path}: missing (a converted folder has config.json and conversion.json)")
        return None
    size = path.stat().st_size
    if size > MAX_RECORD_BYTES:
        raise RecordError(f"{path}: {size} bytes; a swinzoo record is at most {MAX_RECORD_BYTES} bytes")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RecordError(f"{path}: not UTF-8 text, so not valid JSON ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}: not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise RecordError(f"{path}: not valid JSON (nested too deeply)") from exc
    if not isinstance(data, dict):
        raise RecordError(f"{path}: expected a JSON object, got {'null' if data is None else type(data).__name__}")
    if fields is not None:
        check_fields(path, data, fields)
    return data


def check_fields(path: Path | str, data: Mapping[str, Any], fields: Mapping[str, tuple[type, ...]]) -> None:
    """Refuse a record whose fields have the wrong JSON type, naming the file and the field."""
    for key, allowed in fields.items():
        _check_type(path, key, data.get(key), allowed)


def _check_type(where: Path | str, key: str, value: Any, allowed: tuple[type, ...]) -> None:
    # bool is an int in Python, but true is no version number
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        expected = " or ".join(_TYPE_NAMES[t] for t in allowed if t in _TYPE_NAMES)
        raise RecordError(f"{where}: field {key!r} is {_show(value)}, expected {expected}")


# --------------------------------------------------------------------------------------------- the schema
def _json_types(hint: Any) -> tuple[tuple[type, ...], type | None]:
    """(the JSON types a field may hold, the type each list item must have) from its annotation."""
    allowed: list[type] = []
    item: type | None = None
    union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    options = typing.get_args(hint) if union else (hint,)
    for option in options:
        origin = typing.get_origin(option) or option
        if origin is list:
            (arg,) = typing.get_args(option) or (Any,)
            item = typing.get_origin(arg) or arg
            item = item if isinstance(item, type) else None
        allowed.append(origin)
    return tuple(allowed), item


R = TypeVar("R", bound="Record")


class Record:
    """A typed JSON record: its dataclass fields are its JSON fields (see the module docstring)."""

    SCHEMA: ClassVar[int]
    KIND: ClassVar[str]  # the file's name, for messages

    @classmethod
    def field_types(cls) -> dict[str, tuple[tuple[type, ...], type | None]]:
        """Each field's JSON types and list-item type, read off the annotations (once per class)."""
        return _field_types(cls)

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any], where: Path | str | None = None) -> R:
        """The record in ``data`` (fields this swinzoo does not know are ignored); wrong types raise
        :class:`RecordError` naming ``where`` and the field."""
        where = where if where is not None else cls.KIND
        values: dict[str, Any] = {}
        for name, (allowed, item) in cls.field_types().items():
            value = data.get(name)  # every field is optional: an absent one reads as None
            _check_type(where, name, value, allowed)
            if item is not None and isinstance(value, list) and any(not isinstance(v, item) for v in value):
                raise RecordError(f"{where}: field {name!r} must be a list of {_TYPE_NAMES[item].split()[-1]}s")
            values[name] = value
        return cls(**values)

    @classmethod
    def read(cls: type[R], path: Path) -> R | None:
        """The record in ``path``, or None when there is no such file."""
        data = read_json(path, required=False)
        return None if data is None else cls.from_dict(data, path)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        """Strict JSON (no NaN / infinity: see :func:`finite`)."""
        return json.dumps(finite(self.to_dict()), indent=2, allow_nan=False) + "\n"


_FIELD_TYPES: dict[str, dict[str, tuple[tuple[type, ...], type | None]]] = {}


def _field_types(cls: type) -> dict[str, tuple[tuple[type, ...], type | None]]:
    key = f"{cls.__module__}.{cls.__qualname__}"
    if key not in _FIELD_TYPES:
        hints = typing.get_type_hints(cls)
        _FIELD_TYPES[key] = {f.name: _json_types(hints[f.name]) for f in dataclasses.fields(cls)}
    return _FIELD_TYPES[key]


def finite(data: Any) -> Any:
    """inf / nan (a shape mismatch's difference) as strings, so the JSON stays strict."""
    if isinstance(data, float) and not math.isfinite(data):
        return str(data)
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, list):
        return [finite(v) for v in data]
    return data


@dataclasses.dataclass(frozen=True)
class ConversionRecord(Record):
    """``conversion.json``: where the weights came from and what became of every source tensor.

    ``entry`` is "" for a file converted without a zoo entry; ``seed`` is set for synthetic sources only;
    ``preprocessing`` is the entry's eval transform (at the new size after a retarget), which predict, the image
    processor and the card read; ``retarget`` is :meth:`swinzoo.retarget.RetargetRecord.to_dict`.
    """

    SCHEMA: ClassVar[int] = 1
    KIND: ClassVar[str] = "conversion.json"

    schema_version: int | None = None  # None: written before the field existed, read as schema 1
    swinzoo_version: str | None = None
    entry: str | None = None
    converter: str | None = None
    source: str | None = None
    source_sha256: str | None = None
    source_pinned: bool | None = None
    synthetic: bool | None = None
    seed: int | None = None
    dtype: str | None = None
    mapped: dict[str, Any] | None = None
    dropped: dict[str, Any] | None = None
    buffers_checked: list[str] | None = None
    notes: list[str] | None = None
    preprocessing: dict[str, Any] | None = None
    retarget: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: Path | str | None = None) -> ConversionRecord:
        record = super().from_dict(data, where)
        if record.schema_version not in (None, cls.SCHEMA):
            raise RecordError(
                f"{where or cls.KIND}: schema_version {record.schema_version!r}; this swinzoo reads schema "
                f"{cls.SCHEMA}: convert again with this version"
            )
        return record


@dataclasses.dataclass(frozen=True)
class VerificationRecord(Record):
    """``verification.json``: what ``swinzoo verify --converted`` found, bound to the exact bytes it checked.

    ``references`` holds one object per reference (``reference``, ``status``, ``library_version``,
    ``output_max_abs_diff``, ``hidden_max_abs_diff``, ``top5_agreement``, ``comparisons``...):
    :func:`swinzoo.card.reference_rows` reads them, old shape included.
    """

    SCHEMA: ClassVar[int] = 3  # 3: conversion.json's bytes bound too (conversion_sha256)
    KIND: ClassVar[str] = "verification.json"
    #: What a record must hold to count as a verdict at all (the publish gate names the ones missing).
    REQUIRED: ClassVar[tuple[str, ...]] = (
        "schema_version",
        "swinzoo_version",
        "status",
        "passed",
        "dtype",
        "tolerance",
        "weights_sha256",
        "config_sha256",
        "conversion_sha256",
    )

    schema_version: int | None = None
    swinzoo_version: str | None = None
    verified_at: str | None = None
    entry: str | None = None
    status: str | None = None
    passed: bool | None = None
    problems: list[str] | None = None
    unchecked: list[str] | None = None
    source: str | None = None
    source_sha256: str | None = None
    weights_sha256: str | None = None
    config_sha256: str | None = None
    conversion_sha256: str | None = None
    synthetic: bool | None = None
    dtype: str | None = None
    tolerance: dict[str, Any] | None = None
    images: list[str] | None = None
    seed: int | None = None
    mask: dict[str, Any] | None = None
    libraries: dict[str, Any] | None = None
    references: list[dict[str, Any]] | None = None

    @property
    def verdict(self) -> bool:
        """True only for a verification that ran and passed (``status`` "pass" when verify wrote one)."""
        return self.passed is True and (self.status or "pass") == "pass"

    def missing(self) -> list[str]:
        """The required fields this record lacks."""
        return [name for name in self.REQUIRED if getattr(self, name) is None]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: Path | str | None = None) -> VerificationRecord:
        record = super().from_dict(data, where)
        if record.references and any(_OLD_REFERENCE_KEYS.keys() & ref.keys() for ref in record.references):
            record = dataclasses.replace(record, references=[_upgraded(ref) for ref in record.references])
        return record


#: The first verification.json shape (before schema_version) named a reference's figures so; read as today's.
_OLD_REFERENCE_KEYS = {
    "version": "library_version",
    "max_abs_diff_logits": "output_max_abs_diff",
    "max_abs_diff_hidden": "hidden_max_abs_diff",
}


def _upgraded(ref: dict[str, Any]) -> dict[str, Any]:
    new = {_OLD_REFERENCE_KEYS.get(k, k): v for k, v in ref.items() if k not in _OLD_REFERENCE_KEYS.values()}
    new.update({k: ref[k] for k in _OLD_REFERENCE_KEYS.values() if k in ref})  # today's name wins
    if "status" not in new:
        new["status"] = "pass" if ref.get("passed") is True else "fail"
    return new
