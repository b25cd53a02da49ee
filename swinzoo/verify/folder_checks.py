"""Checks of a converted folder (``--converted``) before its outputs are compared: it must come from the source
file being verified, and its config must be the manifest's, since the references are built from it.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config import SwinConfig
from ..folder import CONVERSION_NAME, WEIGHTS_NAME
from ..manifest import ZooEntry
from .errors import VerifyError


def check_folder(folder: Path, entry: ZooEntry, sha256: str) -> list[str]:
    """The folder about to be published must come from this source: sha256 in conversion.json and in the
    safetensors header equal the source file's, and it names this entry."""
    from ..io import read_safetensors_metadata

    problems = []
    conversion_file = folder / CONVERSION_NAME
    try:
        conversion = json.loads(conversion_file.read_text())
    except FileNotFoundError:
        problems.append(f"{conversion_file}: missing (a converted folder records its source there)")
        conversion = {}
    except json.JSONDecodeError as exc:
        problems.append(f"{conversion_file}: not valid JSON ({exc})")
        conversion = {}
    try:
        metadata = read_safetensors_metadata(folder / WEIGHTS_NAME)
    except Exception as exc:  # noqa: BLE001 - safetensors has its own error types
        problems.append(f"{folder / WEIGHTS_NAME}: cannot read its metadata ({exc})")
        metadata = {}
    for where, recorded in ((conversion_file, conversion), (folder / WEIGHTS_NAME, metadata)):
        if not recorded:
            continue
        seen = recorded.get("source_sha256")
        if seen != sha256:
            problems.append(
                f"{where}: source_sha256 is {seen!r}, but the source file's sha256 is {sha256}: "
                "this folder was not converted from this file"
            )
        named = recorded.get("entry")
        if named and named != entry.name:
            problems.append(f"{where}: made for entry {named!r}, not {entry.name!r}")
    return problems


def check_folder_config(config: SwinConfig, entry: ZooEntry, retarget: dict | None = None) -> list[str]:
    """Architecture fields of the folder's config.json against the manifest (fields read off the checkpoint
    at convert time excepted): the references are built from this config, so it must be the entry's. A
    retargeted folder (``retarget``: conversion.json's record): its geometry is the record's target, and the
    record's source geometry the manifest's (verify/retargeted.py ``check_record``)."""
    derived = set(entry.architecture.derive_from_checkpoint)
    want = entry.config()
    problems = []
    if retarget is not None:
        from .retargeted import GEOMETRY, check_record

        problems += check_record(config, want, derived, retarget)
        derived |= {*GEOMETRY, "pretrained_window_sizes"}
    for name in ("version", "image_size", "patch_size", "embed_dim", "depths", "num_heads", "window_size"):
        if name in derived:
            continue
        if getattr(config, name) != getattr(want, name):
            problems.append(f"config.json: {name} is {getattr(config, name)}, the manifest says {getattr(want, name)}")
    if (
        not {"window_size", "pretrained_window_sizes"} & derived
        and config.pretrained_window_sizes != want.pretrained_window_sizes
    ):
        problems.append(
            f"config.json: pretrained_window_sizes is {config.pretrained_window_sizes}, "
            f"the manifest says {want.pretrained_window_sizes}"
        )
    return problems


def folder_for(converted: Path, name: str, several: bool) -> Path:
    if (converted / WEIGHTS_NAME).is_file():
        if several:
            raise VerifyError(
                f"--converted {converted} is one model folder, but several entries are selected; "
                "give a parent folder holding one NAME/ folder per entry"
            )
        return converted
    return converted / name
