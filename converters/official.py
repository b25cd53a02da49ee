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
from typing import Any

import torch

from swinzoo.config import SwinConfig
from swinzoo.modeling import log_spaced_coords, relative_position_index, shifted_window_mask

from ..errors import SwinzooError
from .engine import Derived, Ignored, Rename, Rule

LAYOUTS = (
    "official-swin",
    "official-swinv2",
    "simmim-swin-pretrain",
    "simmim-swinv2-pretrain",
    "simmim-swin-finetune",
    "simmim-swinv2-finetune",
)


def layout_task(layout: str) -> str:
    return "masked-image-modeling" if layout.endswith("-pretrain") else "image-classification"


def _block(model: torch.nn.Module, values: dict[str, Any]):
    return model.swin.stages[values["i"]].blocks[values["j"]]


def _expected_index(model: torch.nn.Module, values: dict[str, Any]) -> torch.Tensor:
    return relative_position_index(_block(model, values).window)


def _expected_mask(model: torch.nn.Module, values: dict[str, Any]) -> torch.Tensor | str:
    block = _block(model, values)
    if not block.shift:
        return (
            f"swinzoo runs stage {values['i'] + 1} block {values['j']} unshifted at image size "
            f"{model.config.image_size} (window {block.window}), but the checkpoint stores a shift mask"
        )
    h, w = model.config.stage_resolution(values["i"])
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
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
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


class InferenceError(SwinzooError, ValueError):
    pass


def _stage_window_from(state: Mapping[str, torch.Tensor], prefix: str, stage: int) -> int | None:
    table = state.get(f"{prefix}layers.{stage}.blocks.0.attn.relative_position_bias_table")
    if table is not None:
        return (math.isqrt(table.shape[0]) + 1) // 2
    index = state.get(f"{prefix}layers.{stage}.blocks.0.attn.relative_position_index")
    if index is not None:
        return math.isqrt(index.shape[0])
    coords = state.get(f"{prefix}layers.{stage}.blocks.0.attn.relative_coords_table")
    if coords is not None:
        return (coords.shape[1] + 1) // 2
    return None


def _pretrained_window_from(coords: torch.Tensor, window: int) -> int:
    """Invert v2's normalisation: the largest log-spaced offset tells (window-1)/(pretrained-1)."""
    top = float(coords[..., 0].max())
    ratio = (2 ** (3 * top) - 1) / 8  # = (window - 1) / (pretrained - 1)
    if window <= 1 or abs(ratio - 1.0) < 1e-4:
        return 0
    return round((window - 1) / ratio) + 1


def infer_config(
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
        raise InferenceError(
            f"no '{p}patch_embed.proj.weight': not an official Swin/SwinV2/SimMIM layout (first keys: {sample})"
        )
    embed_dim, in_chans, patch, _ = proj.shape
    version = 2 if any(k.endswith("attn.logit_scale") or ".cpb_mlp." in k for k in state) else 1
    depths: list[int] = []
    blocks = re.compile(re.escape(p) + r"layers\.(\d+)\.blocks\.(\d+)\.")
    for key in state:
        m = blocks.match(key)
        if m:
            i, j = int(m.group(1)), int(m.group(2))
            while len(depths) <= i:
                depths.append(0)
            depths[i] = max(depths[i], j + 1)
    if not depths or 0 in depths:
        raise InferenceError(f"cannot count blocks per stage from the keys (found depths {depths})")
    heads = []
    for i in range(len(depths)):
        if version == 1:
            heads.append(state[f"{p}layers.{i}.blocks.0.attn.relative_position_bias_table"].shape[1])
        else:
            heads.append(state[f"{p}layers.{i}.blocks.0.attn.logit_scale"].shape[0])
    notes.append(f"Swin{' V2' if version == 2 else ''}: embed_dim {embed_dim}, depths {depths}, heads {heads}")

    windows = [_stage_window_from(state, p, i) for i in range(len(depths))]
    window = window_size or windows[0]
    if window is None:
        raise InferenceError("the checkpoint stores no window-sized tensor or buffer: pass --window-size")
    notes.append(f"window {window} (stage windows in the file: {windows})")

    pretrained = [0] * len(depths)
    if version == 2:
        for i in range(len(depths)):
            coords = state.get(f"{p}layers.{i}.blocks.0.attn.relative_coords_table")
            if coords is not None and windows[i]:
                pretrained[i] = _pretrained_window_from(coords, windows[i])
        if any(pretrained):
            notes.append(f"pretrained windows {pretrained} (from the stored log-spaced coordinates)")

    if image_size is None:
        # Any stored shift mask tells its stage's padded grid: sqrt(windows) * window tokens per side.
        masks = re.compile(re.escape(p) + r"layers\.(\d+)\.blocks\.\d+\.attn_mask")
        found = [(int(m.group(1)), state[k]) for k in state if (m := masks.match(k))]
        if found:
            stage, mask = min(found, key=lambda item: item[0])
            side = math.isqrt(mask.shape[0]) * windows[stage] * 2**stage
            image_size = side * patch
            notes.append(f"image size {image_size} (from the stage-{stage + 1} shift mask: {mask.shape[0]} windows)")
        else:
            raise InferenceError("the checkpoint stores no shift mask to read the image size from: pass --image-size")
    else:
        notes.append(f"image size {image_size} (given)")

    head = state.get("head.weight")
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
