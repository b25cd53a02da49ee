"""The official checkpoint as the references read it: its own file, not swinzoo's converted weights.

Independent of swinzoo's converter (``converters/official.py``, the mapping engine); tests/test_verify.py checks
these imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .context import Context

# Official buffers that depend only on the architecture: they are not weights, the references rebuild them.
BUFFER_SUFFIXES = ("relative_position_index", "attn_mask", "relative_coords_table")


def round_through(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if not t.is_floating_point():
        return t
    if dtype != torch.float32:
        t = t.to(dtype)
    return t.to(torch.float32)


def load_official_state(ctx: Context, *, mmap: bool = False) -> dict[str, torch.Tensor]:
    """The source file's state dict, its weights rounded through the folder's dtype, as float32.

    Stored buffers are not weights (a converted folder does not hold them): they keep their values. Read
    without mmap (torch's own reader) unless ``mmap``: the timm reference keeps the plain reader, not the mmap
    path convert used, so a loader bug shows there; the transformers reference maps the file (its tensors are the
    file's pages, not a second copy). A retargeted folder (``ctx.retarget``): the state moved to the folder's
    geometry and head first, by the reference path (verify/retargeted.py), in the official classifier layout, its
    buffers dropped.
    """
    from ..safeload import load_state_dict

    state = load_state_dict(ctx.source_path, mmap=mmap)
    if ctx.retarget is not None:
        from .retargeted import retargeted_official

        state = retargeted_official(state, ctx)
    return {k: v if k.endswith(BUFFER_SUFFIXES) else round_through(v, ctx.dtype) for k, v in state.items()}
