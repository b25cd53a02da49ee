"""The official checkpoint as the references read it: its own file, not swinzoo's converted weights.

Independent of swinzoo's converter (``converters/official.py``, the mapping engine); tests/test_verify.py checks
these imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..safeload import load_state_dict
from .errors import VerifyError
from .retargeted import retargeted_official

if TYPE_CHECKING:
    from .context import Context

# Official buffers that depend only on the architecture: they are not weights, the references rebuild them.
BUFFER_SUFFIXES = ("relative_position_index", "attn_mask", "relative_coords_table")

# The released SimMIM V2 files name SwinV2's continuous position bias MLP ``rpe_mlp`` (the code's older name); the
# official loaders rename it to ``cpb_mlp`` "only for loading provided models" (utils_simmim.py load_checkpoint,
# utils.py remap_pretrained_keys_swin; microsoft/Swin-Transformer#271, #273). Restated here, not imported from the
# converter, so the references read a released file the way the official code does.
_OLDER_CPB_NAME = ".rpe_mlp."


def official_names(state: dict[str, torch.Tensor], source: object = "the source file") -> dict[str, torch.Tensor]:
    """``state`` with ``rpe_mlp`` keys under their current official name ``cpb_mlp``, as the official loaders do.

    A file holding one tensor under both names is refused (which one the official code would load depends on
    dict order): a VerifyError naming the key and ``source``.
    """
    if not any(_OLDER_CPB_NAME in k for k in state):
        return state
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key.replace(_OLDER_CPB_NAME, ".cpb_mlp.")
        if name in out or (name != key and name in state):
            raise VerifyError(f"{source}: {name} is held twice, as cpb_mlp and as rpe_mlp (its older official name)")
        out[name] = value
    return out


def round_through(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if not t.is_floating_point():
        return t
    if dtype != torch.float32:
        t = t.to(dtype)
    return t.to(torch.float32)


def load_official_state(ctx: Context, *, mmap: bool = False) -> dict[str, torch.Tensor]:
    """The source file's state dict (``rpe_mlp`` read as ``cpb_mlp``), its weights rounded through the folder's
    dtype, as float32.

    Stored buffers are not weights (a converted folder does not hold them): they keep their values. Read
    without mmap (torch's own reader) unless ``mmap``: the timm reference keeps the plain reader, not the mmap
    path convert used, so a loader bug shows there; the transformers reference maps the file (its tensors are the
    file's pages, not a second copy). A retargeted folder (``ctx.retarget``): the state moved to the folder's
    geometry and head first, by the reference path (verify/retargeted.py), in the official classifier layout, its
    buffers dropped.
    """
    state = official_names(load_state_dict(ctx.source_path, mmap=mmap), ctx.source_path)
    if ctx.retarget is not None:
        state = retargeted_official(state, ctx)
    return {k: v if k.endswith(BUFFER_SUFFIXES) else round_through(v, ctx.dtype) for k, v in state.items()}
