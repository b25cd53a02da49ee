"""Official Microsoft checkpoints (microsoft/Swin-Transformer, microsoft/SimMIM) -> swinzoo.

Layouts:
* ``official-swin`` / ``official-swinv2``: ``torch.load(f, weights_only=True)["model"]`` of a classifier
  (also SimMIM fine-tunes);
* ``simmim-swin-pretrain`` / ``simmim-swinv2-pretrain``: the same encoder under ``encoder.`` plus the mask token
  and a ``decoder.0`` 1x1 conv.

The files also store buffers swinzoo recomputes (relative_position_index, attn_mask, relative_coords_table):
each is checked against swinzoo's own for the target architecture, then dropped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import torch

from swinzoo.config import SwinConfig
from swinzoo.modeling import (
    SwinBlock,
    SwinModel,
    SwinPreTrainedModel,
    SwinStage,
    log_spaced_coords,
    relative_position_index,
    shifted_window_mask,
)

from ..errors import SwinzooError
from ..manifest import LAYOUTS as MANIFEST_LAYOUTS
from .engine import Derived, Ignored, LayoutError, Rename, Rule, clip_key

LAYOUTS = tuple(MANIFEST_LAYOUTS.values())  # one per (family, kind): the names live with the manifest


ALIAS = "rpe_mlp"  # the older official name of cpb_mlp, accepted in every official layout


def alias_notes(renamed: Mapping[str, str]) -> list[str]:
    """The accounting line for keys mapped through the named alias (``report.renamed`` of a conversion)."""
    keys = [k for k in renamed if f".{ALIAS}." in k]
    return (
        [f"{len(keys)} {ALIAS}.* keys mapped as cpb_mlp.* (the older official name, renamed as utils_simmim.py does)"]
        if keys
        else []
    )


def layout_task(layout: str) -> str:
    return "masked-image-modeling" if layout.endswith("-pretrain") else "image-classification"


def _block(model: torch.nn.Module, values: dict[str, Any]) -> SwinBlock:
    """The swinzoo block a ``layers.{i}.blocks.{j}`` key belongs to (every official layout has a ``.swin``)."""
    stage = cast(SwinStage, cast(SwinModel, model.swin).stages[values["i"]])
    return cast(SwinBlock, stage.blocks[values["j"]])


def _expected_index(model: torch.nn.Module, values: dict[str, Any]) -> torch.Tensor:
    return relative_position_index(_block(model, values).window)


def _expected_mask(model: torch.nn.Module, values: dict[str, Any]) -> torch.Tensor | str:
    block, config = _block(model, values), cast(SwinPreTrainedModel, model).config
    if not block.shift:
        return (
            f"swinzoo runs stage {values['i'] + 1} block {values['j']} unshifted at image size "
            f"{config.image_size} (window {block.window}), but the checkpoint stores a shift mask"
        )
    h, w = config.stage_resolution(values["i"])
    hp, wp = h + (-h % block.window), w + (-w % block.window)
    return shifted_window_mask(hp, wp, block.window, block.shift, torch.device("cpu"))


def _expected_coords(model: torch.nn.Module, values: dict[str, Any]) -> torch.Tensor:
    attn = _block(model, values).attn
    side = 2 * attn.window - 1
    return log_spaced_coords(attn.window, attn.pretrained_window).view(1, side, side, 2)


def official_rules(prefix: str = "", simmim: bool = False) -> list[Rule]:
    """Rules for one official encoder (+ head), its keys starting with ``prefix`` (``encoder.`` in SimMIM)."""
    p = prefix
    rules: list[Rule] = [
        Derived(
            p + "layers.{i}.blocks.{j}.attn.relative_position_index",
            _expected_index,
            "recomputable: token-offset index of the window (checked against swinzoo's)",
        ),
        Derived(
            p + "layers.{i}.blocks.{j}.attn_mask",
            _expected_mask,
            "recomputable: shifted-window mask at the trained resolution (checked against swinzoo's)",
        ),
        Derived(
            p + "layers.{i}.blocks.{j}.attn.relative_coords_table",
            _expected_coords,
            "recomputable: v2 log-spaced offsets for this window and pretrained window (checked against swinzoo's)",
        ),
        Rename("swin.patch_embed.proj.{rest}", p + "patch_embed.proj.{rest}"),
        Rename("swin.patch_embed.norm.{rest}", p + "patch_embed.norm.{rest}"),
        Rename("swin.patch_embed.position_embeddings", p + "absolute_pos_embed"),
        # Older official SwinV2 code (and released SimMIM V2 files) name cpb_mlp rpe_mlp; utils_simmim.py renames it.
        # The canonical rule comes first, so the swinzoo -> official direction never writes the alias.
        Rename("swin.stages.{i}.blocks.{j}.attn.cpb_mlp.{rest}", p + "layers.{i}.blocks.{j}.attn.cpb_mlp.{rest}"),
        Rename("swin.stages.{i}.blocks.{j}.attn.cpb_mlp.{rest}", p + "layers.{i}.blocks.{j}.attn." + ALIAS + ".{rest}"),
        Rename("swin.stages.{i}.blocks.{j}.{rest}", p + "layers.{i}.blocks.{j}.{rest}"),
        Rename("swin.stages.{i}.merge.{rest}", p + "layers.{i}.downsample.{rest}"),
        Rename("swin.norm.{rest}", p + "norm.{rest}"),
    ]
    if simmim:
        rules += [
            Rename("swin.patch_embed.mask_token", p + "mask_token"),
            Rename("decoder.conv.{rest}", "decoder.0.{rest}"),
            Ignored(p + "head.{rest}", "SimMIM pretraining does not train a classifier"),
        ]
    else:
        rules.append(Rename("head.{rest}", "head.{rest}"))
    return rules


def rules_for_layout(layout: str) -> list[Rule]:
    if layout not in LAYOUTS:
        raise LayoutError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    if layout.endswith("-pretrain"):
        return official_rules("encoder.", simmim=True)
    return official_rules()


# --------------------------------------------------------------------------------------------- inference
@dataclass
class Inferred:
    """An architecture read off a state dict, with the reasoning a user is shown."""

    config: SwinConfig
    layout: str
    notes: list[str] = field(default_factory=list)


class ArchitectureError(SwinzooError, ValueError):
    pass


# Sane maxima, far above every published Swin (SwinV2-G: 4 stages, depth 42, width 512 x 8, window 48): checked
# before anything is built, so a key such as ``layers.0.blocks.100000`` cannot make swinzoo allocate for it.
MAX_STAGES = 8
MAX_BLOCKS = 256
MAX_WINDOW = 256
MAX_EMBED_DIM = 16384
MAX_PATCH = 64
MAX_CHANNELS = 64
MAX_HEADS = 1024
MAX_IMAGE_SIZE = 16384
MAX_LABELS = 1_000_000


def _describe(t: torch.Tensor) -> str:
    return f"shape {tuple(t.shape)}"


def _tensor(state: Mapping[str, torch.Tensor], key: str, ndim: int | None = None) -> torch.Tensor:
    """``state[key]`` with the dimensionality inference reads it with, or ArchitectureError naming key and shape."""
    t = state.get(key)
    if t is None:
        raise ArchitectureError(f"'{key}' is missing: cannot read the architecture without it")
    if ndim is not None and t.ndim != ndim:
        raise ArchitectureError(f"'{key}' has {_describe(t)}; a {ndim}-dimensional tensor was expected")
    if any(n == 0 for n in t.shape):
        raise ArchitectureError(f"'{key}' has {_describe(t)}: an empty tensor")
    return t


def _bounded(value: int, limit: int, what: str, key: str, t: torch.Tensor | None = None) -> int:
    shape = f" ({_describe(t)})" if t is not None else ""
    if not 1 <= value <= limit:
        raise ArchitectureError(f"'{clip_key(key)}'{shape} implies {what} {value}, outside 1..{limit}")
    return value


def _square_root(n: int, key: str, t: torch.Tensor) -> int:
    root = math.isqrt(n)
    if root * root != n:
        raise ArchitectureError(f"'{key}' has {_describe(t)}: {n} is not a square, so it is no window table")
    return root


def _stage_window_from(state: Mapping[str, torch.Tensor], prefix: str, stage: int) -> int | None:
    key = f"{prefix}layers.{stage}.blocks.0.attn.relative_position_bias_table"
    if key in state:
        table = _tensor(state, key, 2)
        side = _square_root(table.shape[0], key, table)
        if side % 2 == 0:
            raise ArchitectureError(f"'{key}' has {_describe(table)}: (2 * window - 1) ** 2 rows were expected")
        return _bounded((side + 1) // 2, MAX_WINDOW, "window", key, table)
    key = f"{prefix}layers.{stage}.blocks.0.attn.relative_position_index"
    if key in state:
        index = _tensor(state, key, 2)
        return _bounded(_square_root(index.shape[0], key, index), MAX_WINDOW, "window", key, index)
    key = f"{prefix}layers.{stage}.blocks.0.attn.relative_coords_table"
    if key in state:
        coords = _tensor(state, key, 4)
        if coords.shape[1] % 2 == 0 or coords.shape[-1] != 2:
            raise ArchitectureError(f"'{key}' has {_describe(coords)}; (1, 2w-1, 2w-1, 2) was expected")
        return _bounded((coords.shape[1] + 1) // 2, MAX_WINDOW, "window", key, coords)
    return None


def _pretrained_window_from(coords: torch.Tensor, window: int, key: str = "relative_coords_table") -> int:
    """Invert v2's normalisation: the largest log-spaced offset tells (window-1)/(pretrained-1)."""
    top = float(coords[..., 0].max())
    if not math.isfinite(top) or not 0 < top <= 2:
        raise ArchitectureError(f"'{key}' ({_describe(coords)}) holds a largest offset {top}, not v2's log table")
    ratio = (2 ** (3 * top) - 1) / 8  # = (window - 1) / (pretrained - 1)
    if window <= 1 or abs(ratio - 1.0) < 1e-4:
        return 0
    return _bounded(round((window - 1) / ratio) + 1, MAX_WINDOW, "pretrained window", key, coords)


def deduce_architecture(
    state: Mapping[str, torch.Tensor],
    *,
    image_size: int | None = None,
    window_size: int | None = None,
    num_labels: int | None = None,
) -> Inferred:
    """Read an official-layout state dict's architecture: v1/v2, widths, depths, heads, window, head, SimMIM."""
    notes: list[str] = []
    simmim = "decoder.0.weight" in state or any(k.startswith("encoder.") for k in state)
    p = "encoder." if simmim else ""
    proj = state.get(p + "patch_embed.proj.weight")
    if proj is None:
        sample = ", ".join(list(state)[:6])
        raise ArchitectureError(
            f"no '{p}patch_embed.proj.weight': not an official Swin/SwinV2/SimMIM layout (first keys: {sample})"
        )
    proj_key = p + "patch_embed.proj.weight"
    proj = _tensor(state, proj_key, 4)
    embed_dim, in_chans, patch, patch_w = proj.shape
    _bounded(embed_dim, MAX_EMBED_DIM, "embed_dim", proj_key, proj)
    _bounded(in_chans, MAX_CHANNELS, "input channels", proj_key, proj)
    _bounded(patch, MAX_PATCH, "patch size", proj_key, proj)
    if patch_w != patch:
        raise ArchitectureError(f"'{proj_key}' has {_describe(proj)}: a square patch was expected")
    version = 2 if any(k.endswith("attn.logit_scale") or ".cpb_mlp." in k or f".{ALIAS}." in k for k in state) else 1
    depths: list[int] = []
    blocks = re.compile(re.escape(p) + r"layers\.(\d{1,12})\.blocks\.(\d{1,12})\.")
    for key in state:
        m = blocks.match(key)
        if m:
            i, j = int(m.group(1)), int(m.group(2))
            _bounded(i + 1, MAX_STAGES, "stage count", key)
            _bounded(j + 1, MAX_BLOCKS, "blocks per stage", key)
            while len(depths) <= i:
                depths.append(0)
            depths[i] = max(depths[i], j + 1)
    if not depths or 0 in depths:
        raise ArchitectureError(f"cannot count blocks per stage from the keys (found depths {depths})")
    heads = []
    for i in range(len(depths)):
        if version == 1:
            key = f"{p}layers.{i}.blocks.0.attn.relative_position_bias_table"
            t = _tensor(state, key, 2)
            heads.append(_bounded(t.shape[1], MAX_HEADS, "heads", key, t))
        else:
            key = f"{p}layers.{i}.blocks.0.attn.logit_scale"
            t = _tensor(state, key)
            if t.ndim == 0:
                raise ArchitectureError(f"'{key}' has {_describe(t)}: one scale per head was expected")
            heads.append(_bounded(t.shape[0], MAX_HEADS, "heads", key, t))
    notes.append(f"Swin{' V2' if version == 2 else ''}: embed_dim {embed_dim}, depths {depths}, heads {heads}")

    windows = [_stage_window_from(state, p, i) for i in range(len(depths))]
    # What the file stores wins; ``window_size`` stands in where it stores nothing window-sized (a v2 file whose
    # buffers were stripped, as the official load_pretrained does before fine-tuning).
    window = windows[0] or window_size
    if window is None:
        raise ArchitectureError(
            "the checkpoint stores no window-sized tensor or buffer (a SwinV2 file without its "
            "relative_coords_table/attn_mask buffers): pass --source-window-size"
        )
    _bounded(window, MAX_WINDOW, "window", "--source-window-size")
    source = "in the file" if windows[0] else "given: the file stores none"
    notes.append(f"window {window} ({source}; stage windows in the file: {windows})")

    pretrained = [0] * len(depths)
    if version == 2:
        for i in range(len(depths)):
            key = f"{p}layers.{i}.blocks.0.attn.relative_coords_table"
            if key in state and (stage_window := windows[i]):
                pretrained[i] = _pretrained_window_from(_tensor(state, key, 4), stage_window, key)
        if any(pretrained):
            notes.append(f"pretrained windows {pretrained} (from the stored log-spaced coordinates)")

    if image_size is None:
        # Any stored shift mask tells its stage's padded grid: sqrt(windows) * window tokens per side.
        masks = re.compile(re.escape(p) + r"layers\.(\d+)\.blocks\.\d+\.attn_mask")
        found = [(int(m.group(1)), k) for k in state if (m := masks.match(k)) and len(m.group(1)) < 4]
        if found:
            stage, mask_key = min(found)
            mask_window = windows[stage] if stage < len(depths) else None
            if not mask_window:
                raise ArchitectureError(f"'{mask_key}' belongs to stage {stage + 1}, which has no window-sized table")
            mask = _tensor(state, mask_key, 3)
            side = _square_root(mask.shape[0], mask_key, mask) * mask_window * 2**stage
            image_size = _bounded(side * patch, MAX_IMAGE_SIZE, "image size", mask_key, mask)
            notes.append(f"image size {image_size} (from the stage-{stage + 1} shift mask: {mask.shape[0]} windows)")
        else:
            raise ArchitectureError(
                "the checkpoint stores no shift mask to read the image size from: pass --source-image-size"
            )
    else:
        _bounded(image_size, MAX_IMAGE_SIZE, "image size", "--source-image-size")
        notes.append(f"image size {image_size} (given)")

    head = _tensor(state, "head.weight", 2) if "head.weight" in state else None
    if head is not None:
        _bounded(head.shape[0], MAX_LABELS, "classes", "head.weight", head)
    if simmim:
        labels = 1
        layout = f"simmim-swin{'v2' if version == 2 else ''}-pretrain"
        notes.append("SimMIM pretraining checkpoint (encoder + mask token + decoder)")
    else:
        labels = head.shape[0] if head is not None else (num_labels or 1000)
        layout = f"official-swin{'v2' if version == 2 else ''}"
        notes.append(f"classifier with {labels} classes" if head is not None else "no classifier in the file")
    stride = patch * 2 ** (len(depths) - 1)
    config = SwinConfig(
        version=version,
        image_size=image_size,
        patch_size=patch,
        num_channels=in_chans,
        embed_dim=embed_dim,
        depths=depths,
        num_heads=heads,
        window_size=window,
        pretrained_window_sizes=pretrained,
        use_absolute_embeddings=f"{p}absolute_pos_embed" in state,
        encoder_stride=stride,
        num_labels=num_labels or labels,
    )
    return Inferred(config=config, layout=layout, notes=notes)
