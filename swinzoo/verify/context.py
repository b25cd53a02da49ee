"""What every reference is given: swinzoo's outputs on the sample batch and the entry they belong to."""

from __future__ import annotations

import ctypes
import gc
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

import torch

from ..config import SwinConfig
from ..manifest import ZooEntry
from ..modeling import SwinModel
from .tolerances import Tolerance


@dataclass
class Outputs:
    """What a model produced on the sample batch; every tensor float32 on the CPU."""

    logits: torch.Tensor | None = None
    reconstruction: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    before_merge: list[torch.Tensor] = field(default_factory=list)  # (B, H, W, C) per stage
    hidden: list[torch.Tensor] = field(default_factory=list)  # (B, L, C): embeddings, after each stage
    features: torch.Tensor | None = None  # (B, H, W, C) after the final LayerNorm


def run_swinzoo(model: torch.nn.Module, pixels: torch.Tensor, mask: torch.Tensor | None) -> Outputs:
    """One forward of the public model; forward hooks keep each stage's output before patch merging."""
    before: dict[int, torch.Tensor] = {}
    normed: list[torch.Tensor] = []
    swin = cast(SwinModel, model.swin)  # every public head keeps its backbone at .swin
    hooks = [
        # out[1]: the stage's (B, H*W, C) tokens before merging, kept as the (B, H, W, C) grid it was given
        stage.register_forward_hook(lambda _m, inp, out, i=i: before.__setitem__(i, out[1].view(inp[0].shape)))
        for i, stage in enumerate(swin.stages)
    ]
    hooks.append(swin.norm.register_forward_hook(lambda _m, _i, out: normed.append(out)))
    try:
        with torch.no_grad():
            if mask is None:
                out = model(pixels, output_hidden_states=True)
            else:
                out = model(pixels, bool_masked_pos=mask, output_hidden_states=True)
    finally:
        for h in hooks:
            h.remove()
    result = Outputs(
        before_merge=[before[i].float() for i in range(len(before))],
        hidden=[h.float() for h in out.hidden_states],
        features=normed[-1].float(),
    )
    if mask is None:
        result.logits = out.logits.float()
    else:
        result.reconstruction, result.loss = out.reconstruction.float(), out.loss.float()
    return result


@dataclass
class Context:
    """Everything a reference needs about one entry (swinzoo's model is already gone: only its outputs remain).

    ``source_path`` is the official file swinzoo's weights came from; ``dtype`` the dtype they are stored in
    (a reference rounds the source's weights through it); ``mask`` the SimMIM mask (None for classifiers);
    ``retarget`` the folder's retargeting record (conversion.json), None for a folder at the source's geometry.
    """

    entry: ZooEntry
    config: SwinConfig
    task: str
    source_path: Path
    synthetic: bool
    pixels: torch.Tensor
    mask: torch.Tensor | None
    ours: Outputs
    dtype: torch.dtype
    tol: Tolerance
    retarget: dict | None = None


def release(ref: weakref.ref | None = None) -> None:
    """Make sure a model whose last name was just deleted is gone before the next one is built, and give the
    memory back to the system.

    Reference counting frees it at once; a full collection (~0.5 s with transformers imported) runs only
    when something still holds it in a reference cycle. Then glibc's ``malloc_trim``: freed activations and
    weights below glibc's (self-raising) mmap threshold otherwise stay in the process's heap, so the resident
    size only ever grows from one model to the next (measured: SwinV2-L kept ~0.9 GiB after verify ended).
    """
    if ref is not None and ref() is not None:
        gc.collect()
    _trim_heap()


def _trim_heap() -> None:
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL(None).malloc_trim  # glibc; elsewhere there is nothing to trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Callable[[int], int] | Literal[False] | None = None
