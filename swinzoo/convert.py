"""Official checkpoint -> swinzoo folder: the ``convert`` step of manifest -> fetch -> load -> convert -> verify.

The output folder (model.safetensors, config.json, conversion.json, README.md) appears in one rename,
so a failure or Ctrl-C never leaves half of it behind.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import __version__
from .card import write_card
from .config import SwinConfig
from .converters.engine import ConversionReport, convert_state_dict, shapes_of
from .converters.official import alias_notes, deduce_architecture, layout_task, rules_for_layout
from .errors import SwinzooError
from .fetch import ManualDownloadRequired, checkpoint_size_cap, default_cache_dir, describe_source, fetch
from .folder import ConvertedFolder, atomic_output, check_output
from .loading import parse_dtype, write_model_files
from .manifest import ZooEntry, get_entry
from .modeling import TASK_CLASSES, SwinPreTrainedModel
from .records import ConversionRecord
from .retarget import RetargetRecord, retarget
from .safeload import load_state_dict
from .synthetic import write_official_checkpoint

# Every official SimMIM V2 config (microsoft/Swin-Transformer configs/simmim/*swinv2*) trains with
# NORM_TARGET.ENABLE True and PATCH_SIZE 47: a file with no manifest entry gets the same loss targets.
OFFICIAL_V2_NORM_PATCH = 47
SIMMIM_V2_TARGET_NOTE = (
    f"SimMIM V2 loss targets: normalised over {OFFICIAL_V2_NORM_PATCH}x{OFFICIAL_V2_NORM_PATCH} windows "
    f"(mim_norm_target=True, mim_norm_target_patch_size={OFFICIAL_V2_NORM_PATCH}), as every official SimMIM V2 "
    "config trains; the file itself does not record them (no manifest entry)"
)


class ConvertError(SwinzooError, ValueError):
    """The source does not fit the entry or cannot be converted; the message says which field or key."""


@dataclass
class SourceFile:
    path: Path
    description: str  # URL, path, or "synthetic (seed N)"
    sha256: str
    pinned: bool
    synthetic: bool = False


@dataclass
class ConvertResult:
    out_dir: Path | None
    model: SwinPreTrainedModel
    config: SwinConfig
    layout: str
    source: SourceFile
    report: ConversionReport
    notes: list[str] = field(default_factory=list)
    entry: ZooEntry | None = None
    seconds: float = 0.0
    retarget: RetargetRecord | None = None

    def summary(self) -> dict:
        return {
            "entry": self.entry.name if self.entry else None,
            "out_dir": str(self.out_dir) if self.out_dir else None,
            "layout": self.layout,
            "source": self.source.description,
            "source_sha256": self.source.sha256,
            "pinned": self.source.pinned,
            "synthetic": self.source.synthetic,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "mapped": len(self.report.renamed),
            "buffers_checked": len(self.report.checked),
            "dropped": len(self.report.dropped),
            "notes": self.notes,
            "retarget": self.retarget.to_dict() if self.retarget else None,
            "seconds": round(self.seconds, 2),
        }


def _retarget_suffix(image_size: int | None, window_size: int | None, num_labels: int | None) -> str:
    """The default output name of a retarget says what the folder became (``-384px-window12-1000labels``)."""
    parts = [f"{image_size}px"] if image_size is not None else []
    parts += [f"window{window_size}"] if window_size is not None else []
    parts += [f"{num_labels}labels"] if num_labels is not None else []
    return "".join(f"-{p}" for p in parts)


def _source_stem(source: str | os.PathLike | None) -> str:
    """The default output name for ``--source``: the file's stem (of a URL's path, without its query)."""
    import urllib.parse

    text = str(source or "converted")
    if "://" in text:
        try:
            text = urllib.parse.urlsplit(text).path
        except ValueError:  # not a URL at all: fetch says so, naming it
            return "converted"
    return Path(text).stem or "converted"


def synthetic_config(entry: ZooEntry) -> SwinConfig:
    """The architecture a synthetic file for ``entry`` is generated with."""
    return entry.config()


def resolve_source(
    entry: ZooEntry | None,
    *,
    source: str | os.PathLike | None = None,
    synthetic: bool = False,
    seed: int = 0,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> SourceFile:
    """Find the checkpoint file: a synthetic one, ``source`` (path or URL), or the entry's pinned URL."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if synthetic:
        if entry is None:
            raise ConvertError("--synthetic needs a zoo entry NAME (the file is generated in that entry's layout)")
        path = cache / "synthetic" / f"{entry.name}-seed{seed}.pth"
        if not path.exists():  # as the released file is saved: its extra entries, its key names
            if progress:  # a large entry takes a while: say what is happening, and where the file goes
                import sys

                print(
                    f"generating a synthetic {entry.layout} checkpoint of {entry.name} "
                    f"({entry.num_params / 1e6:.1f}M parameters, seed {seed}) -> {path}",
                    file=sys.stderr,
                    flush=True,
                )
            write_official_checkpoint(
                path,
                synthetic_config(entry),
                entry.layout,
                seed=seed,
                saved_by=entry.source.saved_by,
                cpb_mlp_name=entry.source.cpb_mlp_name,
                keep_existing=True,
            )
        got = fetch(path, progress=False)
        return SourceFile(path, f"synthetic {entry.layout} checkpoint (seed {seed})", got.sha256, False, True)
    if source is not None:
        got = fetch(str(source), cache_dir=cache, progress=progress)
        return SourceFile(got.path, describe_source(str(source)), got.sha256, False)
    if entry is None:
        raise ConvertError("give a zoo entry NAME or --source PATH|URL")
    if not entry.source.urls:
        raise ManualDownloadRequired(entry.name, entry.source.manual_download or "no download URL is known")
    sha = entry.source.sha256 or None
    cap = entry.source.size_bytes or (
        None if entry.architecture.derive_from_checkpoint else checkpoint_size_cap(entry.num_params)
    )
    url, name = entry.source.urls[0], entry.source.filename
    digests = {"sha384": entry.source.sha384}  # every digest the manifest holds is checked, not only sha256
    got = fetch(url, sha256=sha, cache_dir=cache, progress=progress, filename=name, max_bytes=cap, digests=digests)
    return SourceFile(got.path, describe_source(url), got.sha256, bool(sha))


def _check_against_entry(entry: ZooEntry, want: SwinConfig, inferred: SwinConfig) -> None:
    for name in ("version", "embed_dim", "depths", "num_heads", "window_size", "patch_size"):
        if getattr(want, name) != getattr(inferred, name):
            raise ConvertError(
                f"the file does not have {entry.name}'s architecture: {name} is {getattr(inferred, name)} in the "
                f"file, {getattr(want, name)} in the manifest"
            )


def retarget_model(
    model: SwinPreTrainedModel,
    config: SwinConfig,
    layout: str,
    *,
    image_size: int | None = None,
    window_size: int | None = None,
    num_labels: int | None = None,
) -> tuple[SwinPreTrainedModel, SwinConfig, RetargetRecord]:
    """The converted model moved to a new geometry and head (see :func:`swinzoo.retarget.retarget`)."""
    state, new_config, record = retarget(
        model.state_dict(),
        config,
        layout_task(layout),
        image_size=image_size,
        window_size=window_size,
        num_labels=num_labels,
    )
    with torch.device("meta"):
        moved = TASK_CLASSES[record.target_task](new_config)
    moved.load_state_dict(state, strict=True, assign=True)
    return moved.eval(), new_config, record


def build_model(
    state: dict[str, torch.Tensor],
    config: SwinConfig,
    layout: str,
    *,
    what: str = "checkpoint",
) -> tuple[SwinPreTrainedModel, ConversionReport]:
    """Map an official state dict into a swinzoo model without copying tensors (meta init + assign)."""
    cls = TASK_CLASSES[layout_task(layout)]
    with torch.device("meta"):
        model = cls(config)
    converted, report = convert_state_dict(
        state, rules_for_layout(layout), shapes_of(model), to_swinzoo=True, model=model, what=what
    )
    model.load_state_dict(converted, strict=True, assign=True)
    return model.eval(), report


def convert(
    entry: ZooEntry | str | None = None,
    *,
    source: str | os.PathLike | None = None,
    synthetic: bool = False,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    dtype: str | None = None,
    source_image_size: int | None = None,
    source_window_size: int | None = None,
    image_size: int | None = None,
    window_size: int | None = None,
    num_labels: int | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
    write: bool = True,
    overwrite: bool = False,
    resolved: SourceFile | None = None,
) -> ConvertResult:
    """Convert a zoo entry (or any official-layout file) into a swinzoo folder; see ``swinzoo convert --help``.

    ``entry`` is a :class:`ZooEntry` (a name is looked up once, here). ``image_size``, ``window_size`` and
    ``num_labels`` move the weights to a new geometry and head as the official fine-tuning loaders do
    (:mod:`swinzoo.retarget`); ``source_image_size`` and ``source_window_size`` are the size and window the
    file was trained at, for a file whose stored buffers do not tell (a file that stores another is refused).
    ``overwrite`` lets a previous swinzoo output at ``out_dir`` be replaced (its
    other files are kept); any other non-empty folder is refused before anything is downloaded. ``resolved``:
    the file :func:`resolve_source` already found for these arguments (verify times finding it apart from
    converting it); it is not looked up again.
    """
    started = time.perf_counter()
    if isinstance(entry, str):
        entry = get_entry(entry)
    want = entry.config() if entry is not None else None  # built once: labels, SimMIM settings, checks
    for flag, value in (("--source-image-size", source_image_size), ("--source-window-size", source_window_size),
                        ("--image-size", image_size), ("--window-size", window_size),
                        ("--num-labels", num_labels)):  # fmt: skip
        if value is not None and value < 1:
            raise ConvertError(f"{flag}: must be a positive number (got {value})")
    target = None
    if write:
        default = (entry.name if entry else _source_stem(source)) + _retarget_suffix(
            image_size, window_size, num_labels
        )
        target = check_output(Path(out_dir) if out_dir else Path("converted") / default, overwrite=overwrite)
    src = resolved or resolve_source(
        entry, source=source, synthetic=synthetic, seed=seed, cache_dir=cache_dir, progress=progress
    )
    notes: list[str] = []
    state = load_state_dict(src.path, notes=notes)
    derive = entry is not None and bool(entry.architecture.derive_from_checkpoint)
    if entry is not None and source is None and not derive:
        assert want is not None, "want is entry.config() whenever there is an entry"
        config, layout = want, entry.layout
    else:
        size = source_image_size or (entry.architecture.image_size if entry else None)
        window = source_window_size or (entry.architecture.window_size if entry else None)
        try:
            inferred = deduce_architecture(state, image_size=size, window_size=window)
        except ValueError as exc:
            raise ConvertError(f"{src.path}: {exc}") from exc
        stored = inferred.config.window_size
        if source_window_size is not None and stored != source_window_size:
            raise ConvertError(
                f"{src.path}: the file stores window {stored}, --source-window-size says {source_window_size} "
                "(to move the weights to another window, use --window-size)"
            )
        notes.extend(inferred.notes)
        config, layout = inferred.config, inferred.layout
        if entry is not None and want is not None:
            if not derive:
                _check_against_entry(entry, want, config)
            if want.num_labels == config.num_labels:
                config = config.copy(id2label=want.id2label)
            if entry.simmim is not None:
                config = config.copy(
                    mim_norm_target=entry.simmim.norm_target,
                    mim_norm_target_patch_size=entry.simmim.norm_target_patch_size,
                )
            if layout_task(layout) == layout_task(entry.layout):
                layout = entry.layout
        elif entry is None and layout == "simmim-swinv2-pretrain":
            config = config.copy(mim_norm_target=True, mim_norm_target_patch_size=OFFICIAL_V2_NORM_PATCH)
            notes.append(SIMMIM_V2_TARGET_NOTE)
    model, report = build_model(state, config, layout, what=str(src.path))
    notes.extend(alias_notes(report.renamed))
    retargeted = None
    if any(v is not None for v in (image_size, window_size, num_labels)):
        model, config, retargeted = retarget_model(
            model, config, layout, image_size=image_size, window_size=window_size, num_labels=num_labels
        )
    if dtype is not None:
        model = model.to(parse_dtype(dtype))
    result = ConvertResult(None, model, config, layout, src, report, notes, entry, retarget=retargeted)
    if target is not None:
        with atomic_output(target, overwrite=overwrite) as tmp:
            metadata = {
                "source": src.description,
                "source_sha256": src.sha256,
                "source_pinned": str(src.pinned).lower(),
                "synthetic": str(src.synthetic).lower(),
                "converter": layout,
                "entry": entry.name if entry else "",
            }
            write_model_files(model, tmp, metadata=metadata)
            preprocessing = None
            if entry is not None:  # predict and the card read the entry's eval transform from here
                preprocessing = dataclasses.asdict(entry.preprocessing)
                if retargeted is not None:  # the same kind of transform (crop or squash) at the new size
                    preprocessing["input_size"] = config.image_hw[0]
            record = ConversionRecord(
                schema_version=ConversionRecord.SCHEMA,
                swinzoo_version=__version__,
                entry=entry.name if entry else "",
                converter=layout,
                source=src.description,
                source_sha256=src.sha256,
                source_pinned=src.pinned,
                synthetic=src.synthetic,
                seed=seed if src.synthetic else None,
                dtype=str(next(model.parameters()).dtype).removeprefix("torch."),
                mapped=report.renamed,
                dropped=report.dropped,
                buffers_checked=report.checked,
                notes=notes,
                preprocessing=preprocessing,
                retarget=retargeted.to_dict() if retargeted is not None else None,
            )
            ConvertedFolder(tmp).write_conversion(record)
            write_card(tmp)
        result.out_dir = target
    result.seconds = time.perf_counter() - started
    return result
