"""Checks of a converted folder (``--converted``) before its outputs are compared: it must come from the source
file being verified, and its config must be the manifest's, since the references are built from it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError, SwinConfig
from ..converters.official import LAYOUTS, layout_task
from ..fetch import fetch
from ..folder import CONVERSION_NAME, WEIGHTS_NAME, ConvertedFolder, read_safetensors_metadata
from ..images import Preprocessing
from ..manifest import Architecture, ManifestError, SimMIM, Source, ZooEntry, get_entry
from ..records import ConversionRecord, RecordError
from .errors import VerifyError
from .retargeted import GEOMETRY, check_record
from .selection import select_entries


def check_folder(folder: Path, entry: ZooEntry, sha256: str) -> list[str]:
    """The folder about to be published must come from this source: sha256 in conversion.json and in the
    safetensors header equal the source file's, and it names this entry."""
    problems = []
    converted = ConvertedFolder(folder)
    conversion_file = converted.conversion_file
    conversion: dict = {}
    try:
        record = converted.conversion()
    except RecordError as exc:
        problems.append(str(exc))
    else:
        if record is None:
            problems.append(f"{conversion_file}: missing (a converted folder records its source there)")
        else:
            conversion = {"source_sha256": record.source_sha256, "entry": record.entry}
    try:
        metadata = read_safetensors_metadata(folder / WEIGHTS_NAME)
    except Exception as exc:  # safetensors has its own error types
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


def entry_folders(parent: Path) -> list[str]:
    """The entries a parent of converted folders holds (``PARENT/NAME/`` with the records of entry NAME)."""
    names = []
    for child in sorted(parent.iterdir()) if parent.is_dir() else []:
        if child.is_dir() and not child.is_symlink() and (child / CONVERSION_NAME).is_file():
            try:
                record = ConvertedFolder(child).conversion()
            except RecordError:
                record = None
            if record is not None and record.entry == child.name:
                names.append(child.name)
    return names


# --------------------------------------------------------------------------------------------- the folder's records
@dataclass(frozen=True)
class FolderRun:
    """What a ``--converted`` model folder says it was made from: the run that verifies it checks the same.

    ``entry`` is a zoo name, or for a folder converted with ``--source`` alone an entry built from its records
    (:func:`entry_from_folder`); ``source`` is then the file to verify it against."""

    entry: str | ZooEntry
    synthetic: bool
    seed: int
    source: str | None = None


def entry_from_folder(folder: Path, record: ConversionRecord) -> ZooEntry:
    """An ad-hoc zoo entry for a folder converted from ``--source`` with no entry: the references are built from
    ``config.json`` (its architecture, SimMIM stride and targets), the layout is the converter it records, and
    SimMIM masks use the official settings (32-pixel squares, ratio 0.6). The checks of config.json against a
    manifest do not apply: there is none, so the references' own loading of the source file is the check."""
    layout = record.converter
    if layout is None or layout not in LAYOUTS:
        raise VerifyError(f"--converted {folder}: {CONVERSION_NAME} names converter {layout!r}, not one of {LAYOUTS}")
    try:
        config = SwinConfig.from_json_file(ConvertedFolder(folder).config_file)
    except (ConfigError, OSError, ValueError) as exc:
        raise VerifyError(f"--converted {folder}: config.json cannot build the references ({exc})") from exc
    pretrain = layout_task(layout) == "masked-image-modeling"
    size = config.image_hw[0]
    arch = Architecture(
        version=config.version,
        image_size=size,
        patch_size=config.patch_size,
        embed_dim=config.embed_dim,
        depths=tuple(config.depths),
        num_heads=tuple(config.num_heads),
        window_size=config.window_size,
        pretrained_window_sizes=tuple(config.pretrained_window_sizes),
        derive_from_checkpoint=("image_size", "patch_size", "embed_dim", "depths", "num_heads", "window_size"),
    )
    simmim = (
        SimMIM(config.encoder_stride, 32, 0.6, config.mim_norm_target, config.mim_norm_target_patch_size)
        if pretrain
        else None
    )
    return ZooEntry(
        name=folder.name,
        family="swin" if config.version == 1 else "swinv2",
        kind="simmim-pretrain" if pretrain else "classification",
        layout=layout,
        num_classes=0,  # the head's size and labels are the folder's config.json, which the references use
        label_set="none",
        source=Source(filename=Path(record.source or "source.pth").name),
        architecture=arch,
        preprocessing=Preprocessing(input_size=size),
        simmim=simmim,
    )


def _record(folder: Path) -> ConversionRecord:
    try:
        record = ConvertedFolder(folder).conversion()
    except RecordError as exc:
        raise VerifyError(f"--converted {folder}: {exc}") from exc
    if record is None:
        raise VerifyError(
            f"--converted {folder}: no {CONVERSION_NAME} (a folder written by `swinzoo convert` records its entry "
            "and source there)"
        )
    return record


def recorded_seed(record: ConversionRecord) -> int:
    """The seed of a synthetic source: the ``seed`` field, else the one its description names, else 0."""
    if record.seed is not None:
        return record.seed
    found = re.search(r"\(seed (-?\d+)\)", record.source or "")
    return int(found.group(1)) if found else 0


def plan_folder_run(
    folder: Path,
    name: str | None,
    *,
    synthetic: bool = False,
    source: str | os.PathLike | None = None,
    seed: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> FolderRun:
    """The entry, synthetic flag and seed to verify ``folder`` with: what the command gives, the folder's
    records for what it leaves out. Anything given that contradicts the records is refused (VerifyError) before
    anything is written, so a wrong NAME or file cannot turn a good verification.json into a failure."""
    record = _record(folder)
    recorded = record.entry or ""
    if name is None and not recorded:
        return _entryless_run(folder, record, source, cache_dir, progress)
    if name is not None and recorded and name != recorded:
        raise VerifyError(
            f"--converted {folder}: {CONVERSION_NAME} says it was converted for entry {recorded!r}, not {name!r}: "
            f"run `swinzoo verify --converted {folder}` (the folder names its entry)"
        )
    name = name or recorded
    try:
        entry = get_entry(name)
    except ManifestError as exc:
        raise VerifyError(f"--converted {folder}: {CONVERSION_NAME} names entry {name!r}: {exc}") from exc
    was_synthetic = record.synthetic is True
    sha = record.source_sha256
    if synthetic and not was_synthetic:
        raise VerifyError(
            f"--converted {folder}: {CONVERSION_NAME} says it was converted from {record.source or '?'}, "
            "not from a --synthetic checkpoint: drop --synthetic"
        )
    if source is not None:
        _check_source_sha(folder, source, sha, cache_dir, progress)
        return FolderRun(entry.name, False, 0 if seed is None else seed)
    if was_synthetic:
        made_with = recorded_seed(record)
        if seed is not None and seed != made_with:
            raise VerifyError(
                f"--converted {folder}: {CONVERSION_NAME} says its synthetic source was made with seed {made_with}, "
                f"not --seed {seed}: drop --seed"
            )
        return FolderRun(entry.name, True, made_with)
    recorded_source = record.source or ""
    if recorded_source and "://" not in recorded_source and Path(recorded_source).is_file():
        # converted from a local file (`convert NAME --source FILE`): verified against that file, as recorded
        _check_source_sha(folder, recorded_source, sha, cache_dir, progress)
        return FolderRun(entry.name, False, 0 if seed is None else seed, recorded_source)
    pinned = entry.source.sha256
    if pinned and sha and pinned.lower() != str(sha).lower():
        raise VerifyError(
            f"--converted {folder}: {CONVERSION_NAME} records source_sha256 {sha}, but {entry.name}'s pinned file "
            f"has {pinned}: this folder was not converted from the entry's file (give it with --source)"
        )
    return FolderRun(entry.name, False, 0 if seed is None else seed)


def _check_source_sha(
    folder: Path, source: str | os.PathLike, sha: str | None, cache_dir: str | os.PathLike | None, progress: bool
) -> None:
    got = fetch(str(source), cache_dir=Path(cache_dir) if cache_dir else None, progress=progress).sha256
    if got != sha:
        raise VerifyError(
            f"--converted {folder}: --source {source} has sha256 {got}, but {CONVERSION_NAME} records "
            f"source_sha256 {sha}: this folder was not converted from this file"
        )


def _entryless_run(
    folder: Path,
    record: ConversionRecord,
    source: str | os.PathLike | None,
    cache_dir: str | os.PathLike | None,
    progress: bool,
) -> FolderRun:
    """A folder converted with ``--source`` alone: verified against that file (``--source``, or the local path
    its record names), with an entry built from its own config."""
    recorded_source = record.source or ""
    if source is None:
        if not recorded_source or "://" in recorded_source or not Path(recorded_source).is_file():
            raise VerifyError(
                f"--converted {folder}: converted from --source {recorded_source or '?'} with no zoo entry, and that "
                "file is not here to build the references from: give it again with --source FILE"
            )
        source = recorded_source
    _check_source_sha(folder, source, record.source_sha256, cache_dir, progress)
    return FolderRun(entry_from_folder(folder, record), False, 0, str(source))


def records_agree(folder: Path, entry: str, source_sha256: str | None) -> bool:
    """May a verdict on (``entry``, ``source_sha256``) be written into ``folder``? Only when its records name this
    entry (or none) and this source: a run given the wrong entry or file leaves the folder as it was."""
    try:
        record = ConvertedFolder(folder).conversion() or ConversionRecord()
    except RecordError:
        return True  # unreadable records: the verdict says so (check_folder), and there is no good one to keep
    if record.entry and record.entry != entry:
        return False
    return source_sha256 is not None and record.source_sha256 in (None, source_sha256)


@dataclass
class ConvertedPlan:
    """What ``swinzoo verify`` runs: the entries, and the synthetic flag, source and seed the folders agree on."""

    entries: list[str | ZooEntry]
    synthetic: bool
    source: str | os.PathLike | None
    seed: int | None


def plan_converted_run(
    converted: str | os.PathLike | None,
    names: Sequence[str] = (),
    *,
    all_entries: bool = False,
    shard: str | None = None,
    synthetic: bool = False,
    source: str | os.PathLike | None = None,
    seed: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> ConvertedPlan:
    """The command line's selection and ``--converted`` turned into one plan, before anything is written.

    ``--converted DIR`` alone: the folder names what it was made from (entry, synthetic seed, ``--source`` file).
    With names: each selected entry's existing folder must agree with them (a NAME or file it was not made from is
    refused), and one folder's records fill in the synthetic flag and seed."""
    parent_of = (
        [] if converted is None or (Path(converted) / CONVERSION_NAME).exists() else entry_folders(Path(converted))
    )
    if converted is not None and not names and not all_entries and parent_of:
        names = tuple(parent_of)  # a parent folder: every NAME/ folder in it, each read as its own records say
    if converted is not None and not names and not all_entries and not shard:
        planned = plan_folder_run(
            Path(converted), None, synthetic=synthetic, source=source, seed=seed, cache_dir=cache_dir, progress=progress
        )
        # a --source folder: the file its record names
        return ConvertedPlan([planned.entry], planned.synthetic, planned.source or source, planned.seed)
    selected = select_entries(names, all_entries=all_entries, shard=shard)
    if converted is not None and Path(converted).is_dir():
        agreed = False  # whether a folder's records have set the synthetic flag and seed for the others
        for name in selected:
            folder = folder_for(Path(converted), name, len(selected) > 1)
            if not folder.is_dir():
                continue
            planned = plan_folder_run(
                folder, name, synthetic=synthetic, source=source, seed=seed, cache_dir=cache_dir, progress=progress
            )
            if len(selected) == 1:
                synthetic, seed = planned.synthetic, planned.seed
                source = planned.source or source
            elif planned.synthetic and not synthetic and not agreed:
                synthetic, seed = True, planned.seed  # as one folder: the records say synthetic
            elif planned.synthetic != synthetic:
                raise VerifyError(
                    f"{folder}: its source and the other folders' differ (synthetic or not): verify it on its own"
                )
            elif planned.synthetic and planned.seed != (seed or 0):
                raise VerifyError(f"{folder} was made with --seed {planned.seed}: verify it on its own")
            agreed = True
    return ConvertedPlan([*selected], synthetic, source, seed)
