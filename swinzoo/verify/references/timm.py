"""The ``timm`` reference: timm's Swin / SwinV2 loaded through timm's own official-checkpoint filter.

SimMIM pretrain files are checked end to end too: timm's encoder plus the SimMIM wrapper written out here from
the paper's code (mask-token blend after the patch embedding, 1x1 conv, pixel shuffle, masked L1 loss), since
timm has no SimMIM model.
"""

from __future__ import annotations

import math
import weakref
from typing import Any, cast

import torch
import torch.nn.functional as F

from ...config import SwinConfig
from ...converters.timm_layout import create_timm_model
from ...meta_device import build_on_meta, rebuild_timm_buffers, timm_supports_meta
from ..context import Context, release
from ..official_state import BUFFER_SUFFIXES, load_official_state
from ..results import PARTS, ReferenceResult
from ..tolerances import Comparison
from .base import LibraryReference, classification_comparisons, finish, mim_comparisons, stage_comparisons


def _timm_not_applicable(config: SwinConfig) -> str | None:
    if config.use_absolute_embeddings:
        return "timm's Swin has no absolute position embeddings"
    if config.hidden_act != "gelu" or config.layer_norm_eps != 1e-5:
        return "timm's Swin uses GELU and LayerNorm eps 1e-5"
    return None


def timm_classify(
    model: torch.nn.Module, pixels: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """timm's final features, each stage's output and the logits (its own ``forward_head``)."""
    final, stages = _timm_forward(model, pixels)
    with torch.no_grad():
        logits = cast(Any, model).forward_head(final)  # timm's method, absent from torch's stubs
    return final, stages, logits


def _timm_forward(model: torch.nn.Module, pixels: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """timm's final normed features (NHWC) and each stage's output (NHWC; a timm stage merges first)."""
    with torch.no_grad():
        final, stages = cast(Any, model).forward_intermediates(pixels, norm=False, output_fmt="NCHW")
    return final, [s.permute(0, 2, 3, 1) for s in stages]


def _timm_simmim_forward(
    model: torch.nn.Module, pixels: torch.Tensor, mask: torch.Tensor, mask_token: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """timm's encoder run the way the official SimMIM wrapper runs its Swin: masked tokens after the patch
    embedding (LayerNorm included) replaced by ``mask_token``, then the stages and the final norm."""
    timm = cast(Any, model)  # timm's submodules and methods, unknown to torch's Module stubs
    with torch.no_grad():
        x = timm.patch_embed(pixels)  # (B, H, W, C)
        b, h, w, _ = x.shape
        weight = mask.view(b, h, w, 1).to(x.dtype)
        x = x * (1 - weight) + mask_token.view(1, 1, 1, -1) * weight
        stages = []
        for layer in timm.layers:
            x = layer(x)
            stages.append(x)
        return timm.norm(x), stages


def _compare_buffers(state: dict[str, torch.Tensor], model: torch.nn.Module, prefix: str) -> list[str]:
    """Stored official buffers vs the ones timm builds for this configuration (window, image size, pretrained
    windows): a folder whose config disagrees with its source shows here even where weights would still load."""
    theirs = dict(model.named_buffers())
    problems = []
    for key, value in state.items():
        if not key.endswith(BUFFER_SUFFIXES):
            continue
        name = key.removeprefix(prefix)
        mine = theirs.get(name)
        if mine is None:
            continue
        if tuple(mine.shape) != tuple(value.shape):
            problems.append(f"{key}: stored {tuple(value.shape)}, timm builds {tuple(mine.shape)}")
        elif not torch.allclose(mine.double(), value.double(), atol=1e-5, rtol=1e-4):
            problems.append(f"{key}: stored values differ from the ones timm builds for this configuration")
    return problems


class TimmReference(LibraryReference):
    """timm's model, loaded through timm's own official-checkpoint filter from the source file."""

    name = "timm"
    library = "timm"

    def not_applicable(self, ctx: Context) -> str | None:
        return _timm_not_applicable(ctx.config)

    def check(self, ctx: Context, result: ReferenceResult) -> ReferenceResult:
        simmim = ctx.task == "masked-image-modeling"
        official = load_official_state(ctx)
        model = _load_timm(ctx, official)
        buffer_problems = _compare_buffers(official, model, "encoder." if simmim else "")
        if simmim:
            assert ctx.mask is not None, "a SimMIM context always carries its mask"
            final, stages = _timm_simmim_forward(model, ctx.pixels, ctx.mask, official["encoder.mask_token"])
            with torch.no_grad():
                grid = final.permute(0, 3, 1, 2)
                reconstruction = F.pixel_shuffle(
                    F.conv2d(grid, official["decoder.0.weight"], official["decoder.0.bias"]), ctx.config.encoder_stride
                )
        else:
            final, stages, logits = timm_classify(model, ctx.pixels)
        ref = weakref.ref(model)
        del model
        release(ref)
        result.comparisons = stage_comparisons(ctx.ours, stages, final, ctx.tol)
        if simmim:
            mim_comparisons(result, ctx, reconstruction, None)
        else:
            assert ctx.ours.logits is not None, "a classifier always returns logits"
            assert ctx.ours.features is not None, "run_swinzoo always records the final features"
            classification_comparisons(result, ctx.ours.logits, logits, ctx.tol, (ctx.ours.features, final))
        if buffer_problems:
            result.comparisons.append(Comparison("buffers", math.inf, math.nan, 0.0, False, "; ".join(buffer_problems)))
            result.reason = "stored buffers disagree with the configuration: " + "; ".join(buffer_problems[:3])
        return finish(result, PARTS[ctx.task])


def _load_timm(ctx: Context, official: dict[str, torch.Tensor]) -> torch.nn.Module:
    """``create_timm_model(config)`` filled by timm's ``checkpoint_filter_fn``; a SimMIM file's encoder only.

    Built on the meta device and given the source's tensors (``assign=True``: one copy of the weights, not two),
    then timm rebuilds its non-persistent buffers; a timm without meta-device support builds on the CPU.
    """
    from timm.models import swin_transformer, swin_transformer_v2

    module = swin_transformer if ctx.config.version == 1 else swin_transformer_v2
    simmim = ctx.task == "masked-image-modeling"
    config = ctx.config.copy(num_labels=1) if simmim else ctx.config

    def build() -> torch.nn.Module:
        model = create_timm_model(config)
        if simmim:
            model.reset_classifier(0)
        return model

    if simmim:
        encoder = {
            k.removeprefix("encoder."): v
            for k, v in official.items()
            if k.startswith("encoder.") and k != "encoder.mask_token" and not k.startswith("encoder.head.")
        }
    else:
        encoder = official
    model = build_on_meta(build)
    on_meta = timm_supports_meta(model)
    if not on_meta:
        model = build()
    model.eval()
    model.load_state_dict(module.checkpoint_filter_fn(encoder, model), strict=True, assign=on_meta)
    if on_meta:
        rebuild_timm_buffers(model)
    return model
