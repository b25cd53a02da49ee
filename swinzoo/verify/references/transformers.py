"""The ``transformers`` reference: transformers' ``Swin*`` / ``Swinv2*`` model (classification or masked image
modelling) filled from the official file by :func:`~swinzoo.verify.transformers_names.official_to_transformers`,
a rename table that shares no code with swinzoo's converter.
"""

from __future__ import annotations

import math
import weakref
from typing import Any, cast

import torch

from ...converters.transformers_layout import (
    create_transformers_model,
    detect_style,
    load_transformers_state,
    transformers_config,
)
from ...meta_device import build_on_meta, rebuild_transformers_buffers
from ..context import Context, release
from ..errors import VerifyError
from ..official_state import load_official_state
from ..results import PARTS, ReferenceResult
from ..tolerances import Comparison, compare
from ..transformers_names import official_to_transformers
from .base import LibraryReference, classification_comparisons, finish, mim_comparisons


class TransformersReference(LibraryReference):
    """transformers' model filled from the source by :func:`official_to_transformers`."""

    name = "transformers"
    library = "transformers"

    def not_applicable(self, ctx: Context) -> str | None:
        try:
            transformers_config(ctx.config)
        except ValueError as exc:  # e.g. Swin v1 with per-stage window clamps
            return str(exc)
        return None

    def check(self, ctx: Context, result: ReferenceResult) -> ReferenceResult:
        return run_then_release(_load_transformers(ctx), ctx, result)


def run_then_release(model: torch.nn.Module, ctx: Context, result: ReferenceResult) -> ReferenceResult:
    """:func:`transformers_run`, then the model freed before the next one is built (one copy at a time)."""
    ref = weakref.ref(model)
    try:
        return transformers_run(model, ctx, result, PARTS[ctx.task])
    finally:
        del model
        release(ref)


def _load_transformers(ctx: Context) -> torch.nn.Module:
    """transformers' model built on the meta device and given the renamed source tensors (``assign=True``), its
    non-persistent buffers rebuilt by transformers' own methods. The source is read memory-mapped here (timm's
    reference reads it with torch's plain reader, so a bug of either path still shows). Where this transformers
    cannot rebuild a buffer (4.x), the model is built on the CPU (its buffers computed by its constructor) and then
    given the same mapped tensors (``assign``): its own random weights are freed, the weights are the file's pages."""
    model = build_on_meta(lambda: create_transformers_model(ctx.config, ctx.task))
    mapped = official_to_transformers(
        load_official_state(ctx, mmap=True),
        ctx.config.version,
        ctx.task == "masked-image-modeling",
        detect_style(model.state_dict()),
    )
    try:
        model.load_state_dict(mapped, strict=True, assign=True)
        rebuild_transformers_buffers(model)
    except (VerifyError, RuntimeError):  # 4.x: buffers it cannot rebuild on meta, or keeps in its state dict
        model = create_transformers_model(ctx.config, ctx.task)
        load_transformers_state(model, mapped, assign=True)
    return model.eval()


def transformers_run(
    model: torch.nn.Module, ctx: Context, result: ReferenceResult, parts: tuple[str, ...]
) -> ReferenceResult:
    """Run transformers' model; compare each stage before merging (the input of its ``downsample``, which any
    transformers version has; the last stage is the last hidden state), the final LayerNorm's output, the
    hidden states after merging (``output_hidden_states``) and the task output.

    The states before merging matter: a LayerNorm removes a uniform shift, so a shifted residual stream
    (say, a bias off by a constant) can leave every later state and the logits unchanged.
    """
    # transformers' backbone: its submodules are unknown to torch's Module stubs
    base = cast(Any, model.swin if hasattr(model, "swin") else model.swinv2)
    before: dict[int, torch.Tensor] = {}
    normed: list[torch.Tensor] = []
    hooks = [
        stage.downsample.register_forward_pre_hook(lambda _m, args, i=i: before.__setitem__(i, args[0]))
        for i, stage in enumerate(base.encoder.layers)
        if stage.downsample is not None
    ]
    hooks.append(base.layernorm.register_forward_hook(lambda _m, _i, out: normed.append(out)))
    try:
        with torch.no_grad():
            if ctx.task == "masked-image-modeling":
                out = model(ctx.pixels, bool_masked_pos=ctx.mask, output_hidden_states=True)
            else:
                out = model(ctx.pixels, output_hidden_states=True)
    finally:
        for h in hooks:
            h.remove()
    hidden = [h.float() for h in out.hidden_states]
    stages = [before[i] for i in sorted(before)] + [hidden[-1]]
    ours = ctx.ours
    assert ours.features is not None, "run_swinzoo always records the final features"
    result.comparisons = [
        compare(f"stage{i + 1}", a.flatten(1, 2), b.float(), ctx.tol)
        for i, (a, b) in enumerate(zip(ours.before_merge, stages, strict=False))
    ]
    result.comparisons.append(compare("features", ours.features.flatten(1, 2), normed[-1].float(), ctx.tol))
    result.comparisons += [
        compare("hidden0 (embeddings)" if i == 0 else f"hidden{i}", a, b, ctx.tol)
        for i, (a, b) in enumerate(zip(ours.hidden, hidden, strict=False))
    ]
    if len(hidden) != len(ours.hidden) or len(stages) != len(ours.before_merge):
        result.comparisons.append(
            Comparison("hidden", math.inf, math.nan, 0.0, False, f"{len(ours.hidden)} vs {len(hidden)} states")
        )
    if ctx.task == "masked-image-modeling":
        # transformers' own loss has no normalised targets: with them, the loss is computed here from its output.
        loss = None if ctx.config.mim_norm_target else out.loss.float()
        mim_comparisons(result, ctx, out.reconstruction.float(), loss)
    else:
        assert ctx.ours.logits is not None, "a classifier always returns logits"
        classification_comparisons(
            result, ctx.ours.logits, out.logits.float(), ctx.tol, (ours.features, normed[-1].float())
        )
    return finish(result, parts)
