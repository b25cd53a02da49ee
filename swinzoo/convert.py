"""Official checkpoint -> swinzoo folder: the ``convert`` step of manifest -> fetch -> load -> convert -> verify.

The output folder (model.safetensors, config.json, conversion.json, README.md) appears in one rename,
so a failure or Ctrl-C never leaves half of it behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import __version__
from .config import SwinConfig
from .converters.engine import ConversionReport, convert_state_dict, shapes_of
from .converters.official import infer_config, layout_task, rules_for_layout
from .errors import SwinzooError
from .fetch import ManualDownloadRequired, default_cache_dir, fetch
from .io import atomic_directory, parse_dtype, write_model_files
from .manifest import ZooEntry, get_entry
from .modeling import TASK_CLASSES, SwinPreTrainedModel
from .safeload import load_state_dict

CONVERSION_NAME = "conversion.json"


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
            "seconds": round(self.seconds, 2),
        }


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
        from .synthetic import write_official_checkpoint

        path = cache / "synthetic" / f"{entry.name}-seed{seed}.pth"
        if not path.exists():
            write_official_checkpoint(path, synthetic_config(entry), entry.layout, seed=seed)
        got = fetch(path, progress=False)
        return SourceFile(path, f"synthetic {entry.layout} checkpoint (seed {seed})", got.sha256, False, True)
    if source is not None:
        got = fetch(str(source), cache_dir=cache, progress=progress)
        return SourceFile(got.path, str(source), got.sha256, False)
    if entry is None:
        raise ConvertError("give a zoo entry NAME or --source PATH|URL")
    if not entry.source.urls:
        raise ManualDownloadRequired(entry.name, entry.source.manual_download or "no download URL is known")
    sha = entry.source.sha256 or None
    got = fetch(entry.source.urls[0], sha256=sha, cache_dir=cache, progress=progress, filename=entry.source.filename)
    return SourceFile(got.path, entry.source.urls[0], got.sha256, bool(sha))


def _check_against_entry(entry: ZooEntry, inferred: SwinConfig) -> None:
    want = entry.config()
    for name in ("version", "embed_dim", "depths", "num_heads", "window_size", "patch_size"):
        if getattr(want, name) != getattr(inferred, name):
            raise ConvertError(
                f"the file does not have {entry.name}'s architecture: {name} is {getattr(inferred, name)} in the "
                f"file, {getattr(want, name)} in the manifest"
            )


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
    name: str | None = None,
    *,
    source: str | os.PathLike | None = None,
    synthetic: bool = False,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    dtype: str | None = None,
    image_size: int | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
    write: bool = True,
) -> ConvertResult:
    """Convert a zoo entry (or any official-layout file) into a swinzoo folder; see ``swinzoo convert --help``."""
    started = time.perf_counter()
    entry = get_entry(name) if name else None
    src = resolve_source(entry, source=source, synthetic=synthetic, seed=seed, cache_dir=cache_dir, progress=progress)
    state = load_state_dict(src.path)
    notes: list[str] = []
    derive = entry is not None and bool(entry.architecture.derive_from_checkpoint)
    if entry is not None and source is None and not derive:
        config, layout = (synthetic_config(entry) if synthetic else entry.config()), entry.layout
    else:
        size = image_size or (entry.architecture.image_size if entry else None)
        try:
            inferred = infer_config(state, image_size=size)
        except ValueError as exc:
            raise ConvertError(f"{src.path}: {exc}") from exc
        notes.extend(inferred.notes)
        config, layout = inferred.config, inferred.layout
        if entry is not None:
            if not derive:
                _check_against_entry(entry, config)
            labels = entry.config()
            if labels.num_labels == config.num_labels:
                config = config.copy(id2label=labels.id2label)
            if entry.simmim is not None:
                config = config.copy(
                    mim_norm_target=entry.simmim.norm_target,
                    mim_norm_target_patch_size=entry.simmim.norm_target_patch_size,
                )
            if layout_task(layout) == layout_task(entry.layout):
                layout = entry.layout
    model, report = build_model(state, config, layout, what=str(src.path))
    if dtype is not None:
        model = model.to(parse_dtype(dtype))
    result = ConvertResult(None, model, config, layout, src, report, notes, entry)
    if write:
        target = Path(out_dir) if out_dir else Path("converted") / (entry.name if entry else Path(src.path).stem)
        with atomic_directory(target) as tmp:
            metadata = {
                "source": src.description,
                "source_sha256": src.sha256,
                "source_pinned": str(src.pinned).lower(),
                "synthetic": str(src.synthetic).lower(),
                "converter": layout,
                "entry": entry.name if entry else "",
            }
            write_model_files(model, tmp, metadata=metadata)
            conversion = {
                "swinzoo_version": __version__,
                **metadata,
                "source_pinned": src.pinned,
                "synthetic": src.synthetic,
                "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
                "mapped": report.renamed,
                "dropped": report.dropped,
                "buffers_checked": report.checked,
                "notes": notes,
            }
            if entry is not None:  # predict and the card read the entry's eval transform from here
                conversion["preprocessing"] = dataclasses.asdict(entry.preprocessing)
            (tmp / CONVERSION_NAME).write_text(json.dumps(conversion, indent=2) + "\n")
            from .card import write_card

            write_card(tmp)
        result.out_dir = target
    result.seconds = time.perf_counter() - started
    return result
