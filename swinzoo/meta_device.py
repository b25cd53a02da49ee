"""Reference models built without weights of their own: on the meta device, filled by ``load_state_dict(assign=True)``.

A model built on the CPU holds one copy of the weights (randomly initialised, which for SwinV2-G alone takes
minutes) that loading then overwrites, so the source and the model are two copies. Built on the meta device the
model takes the source's tensors as its parameters: one copy. What the library computes in ``__init__`` rather
than loads (its non-persistent buffers: relative position indices, coordinate tables, shift masks) is meta too
and is rebuilt here with the library's own code; anything still meta afterwards is an error, never a silent zero.

Shared by verify's references and by swinzoo.synthetic (which builds timm models to learn their tensor names), so it
sits beside them rather than inside the verify package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch

from .errors import SwinzooError


class MetaDeviceError(SwinzooError, RuntimeError):
    """A tensor was left unfilled after loading on the meta device (the library did not rebuild it)."""


def build_on_meta(factory: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """``factory()`` with every tensor it creates on the meta device (no memory, no initialisation cost)."""
    with torch.device("meta"):
        return factory()


def _unset(dtype: torch.dtype) -> float | int | bool:
    """The value a buffer is allocated with: NaN, or the most negative integer (an index never is)."""
    if dtype.is_floating_point:
        return float("nan")
    return True if dtype == torch.bool else torch.iinfo(dtype).min


def materialize_buffers(model: torch.nn.Module) -> list[str]:
    """Give every meta buffer CPU memory of its shape and dtype, holding an "unset" value (see
    :func:`check_filled`) until the library fills it; their names."""
    names = []
    for module_name, module in model.named_modules():
        for name, buf in module._buffers.items():
            if buf is not None and buf.is_meta:
                module._buffers[name] = torch.full(buf.shape, _unset(buf.dtype), dtype=buf.dtype)
                names.append(f"{module_name}.{name}" if module_name else name)
    return names


def check_filled(model: torch.nn.Module, rebuilt: list[str], what: str) -> None:
    """Raise naming any tensor still meta, or any rebuilt buffer the library left holding its unset value."""
    buffers = dict(model.named_buffers())
    left = [n for n, t in (*model.named_parameters(), *buffers.items()) if t.is_meta]
    left += [n for n in rebuilt if n in buffers and bool(_is_unset(buffers[n]).any())]
    if left:
        shown = ", ".join(left[:3]) + (f" and {len(left) - 3} more" if len(left) > 3 else "")
        raise MetaDeviceError(f"{what}: {shown} not filled after loading on the meta device")


def _is_unset(t: torch.Tensor) -> torch.Tensor:
    if t.dtype == torch.bool:  # no value is out of range: a bool buffer is trusted to be filled
        return torch.zeros((), dtype=torch.bool)
    return t.isnan() if t.is_floating_point() else t == _unset(t.dtype)


def timm_supports_meta(model: torch.nn.Module) -> bool:
    """timm >= 1.0.20 recomputes its non-persistent buffers in ``init_non_persistent_buffers`` (older: build on CPU)."""
    return any(hasattr(m, "init_non_persistent_buffers") for m in model.modules())


def rebuild_timm_buffers(model: torch.nn.Module) -> None:
    """timm's non-persistent buffers (``relative_position_index``, ``relative_coords_table``, ``attn_mask``,
    SwinV2's zero ``k_bias``) computed by timm's own ``init_non_persistent_buffers``, once the weights are real."""
    rebuilt = materialize_buffers(model)
    for module in model.modules():
        if hasattr(module, "init_non_persistent_buffers"):
            cast(Any, module).init_non_persistent_buffers()  # timm's method, absent from torch's stubs
    check_filled(model, rebuilt, "timm model")


def rebuild_transformers_buffers(model: torch.nn.Module) -> None:
    """transformers' non-persistent buffers, computed by the methods its ``_init_weights`` uses (transformers 5):
    Swin's ``relative_position_index`` (``_create_relative_position_index``), Swinv2's ``relative_coords_table``
    and ``relative_position_index`` (``create_coords_table_and_index``). transformers 4 stores Swin's index as a
    persistent buffer (loaded) and has no such methods: a buffer left unfilled raises (the caller builds on CPU).
    """
    rebuilt = materialize_buffers(model)
    with torch.no_grad():
        for mod in model.modules():
            module = cast(Any, mod)  # transformers' attention modules: methods and buffers torch's stubs don't know
            if hasattr(module, "create_coords_table_and_index"):
                table, index = module.create_coords_table_and_index()
                module.relative_coords_table.copy_(table.view(module.relative_coords_table.shape))
                module.relative_position_index.copy_(index.view(module.relative_position_index.shape))
            elif hasattr(module, "_create_relative_position_index"):
                index = module._create_relative_position_index()
                module.relative_position_index.copy_(index.view(module.relative_position_index.shape))
    check_filled(model, rebuilt, "transformers model")
