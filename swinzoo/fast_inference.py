"""CPU inference paths of the shifted-window block: the maths of :mod:`swinzoo.modeling`, fewer copies.

``SwinBlock.forward`` in swinzoo.modeling is the paper's roll -> partition -> attend -> reverse -> roll back.
When :func:`applies` (eval, no gradients, on the CPU, not traced, neither attentions nor a head mask asked for)
and the model's inference path is ``"fast"`` (the default; ``model.set_inference_path("readable")`` turns it
off), the block runs :func:`swin_block` instead, which buys 13-26% over timm at batch 8 on CPU
(benchmarks/bench_throughput.py) with four things:

* gathers: roll + partition as one ``index_select`` of token rows, reverse + roll back + crop as another
  (:func:`window_order`), where the reference path copies twice each way;
* image groups: the block runs over groups of about ``GROUP_TOKENS`` tokens, so every intermediate (qkv,
  attention, the 4x-wide MLP activations) stays cache-sized and reuses heap memory instead of being freshly
  allocated, page-faulted and streamed through RAM;
* in-place tails: the residual adds and the MLP activation overwrite tensors nothing else reads;
* the eval bias cache: position bias + shift mask computed once per weights (:func:`cached_attention_bias`).

Attention is ``WindowAttention.forward``, shared by both paths, in float32; in bfloat16 the fast path computes
the same softmax(q k^T + bias) v with batched matmuls (:func:`window_attention`). tests/test_model_behaviour.py
keeps the two paths equal. This module imports nothing from swinzoo.modeling at run time (the model imports it);
the type checker reads its classes.
"""

from __future__ import annotations

import weakref
from functools import lru_cache
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # a run-time import would be circular
    from .modeling import Mlp, SwinBlock, WindowAttention

# Tokens per image group (see the module docstring): 4096 is one 64x64 grid, e.g. most of a 224 image's stage 1.
GROUP_TOKENS = 4096


def is_tracing() -> bool:
    """True under torch.compile / torch.export / torch.jit.trace, where Python-side caches must not be
    consulted and Python loops over the batch must not be unrolled into the graph."""
    if torch.jit.is_tracing():
        return True
    compiler = getattr(torch, "compiler", None)
    if compiler is None:
        return False
    return compiler.is_compiling() or bool(getattr(compiler, "is_exporting", lambda: False)())


def applies(x: torch.Tensor, training: bool, head_mask: torch.Tensor | None, output_attentions: bool) -> bool:
    """Whether a block's forward may take :func:`swin_block` (nothing it skips is needed, nothing is traced)."""
    return (
        x.device.type == "cpu"
        and not training
        and not torch.is_grad_enabled()
        and head_mask is None
        and not output_attentions
        and not is_tracing()
    )


# --------------------------------------------------------------------------------------------- gathers
@lru_cache(maxsize=128)
def window_order(
    height: int, width: int, window: int, shift: int, crop: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token indices for one-gather window partition and reverse of a (height, width) grid, row-major.

    ``order[i]`` is the grid token that lands at position i of the concatenated windows of the grid rolled by
    ``-shift`` (what ``window_partition(torch.roll(x, -shift))`` computes). ``back`` undoes it, rolls back and
    keeps only the top-left ``crop`` = (h, w) tokens, dropping the padding.
    """
    cpu = torch.device("cpu")  # explicit: cached, never created on a meta device
    rows = (torch.arange(height, device=cpu) + shift) % height  # rolled by -shift, row i holds row i + shift
    cols = (torch.arange(width, device=cpu) + shift) % width
    tokens = rows[:, None] * width + cols[None, :]
    order = tokens.view(height // window, window, width // window, window).transpose(1, 2).flatten()
    back = torch.empty_like(order)
    back[order] = torch.arange(order.numel(), device=cpu)
    return order, back.view(height, width)[: crop[0], : crop[1]].flatten()


# --------------------------------------------------------------------------------------------- bias cache
# WindowAttention -> {mask shape: (mask, snapshot of the bias parameters, bias)}; entries die with the module.
_BIAS_CACHE: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


def cached_attention_bias(attn: WindowAttention, mask: torch.Tensor | None) -> torch.Tensor:
    """``attn.attention_bias(mask)``, computed once per weights.

    A hit needs the very same mask object and bias parameters equal in value to a snapshot taken when the entry
    was made: edits that bypass the autograd version counter (``p.data.add_``, ``p.data = ...``,
    ``vector_to_parameters``) are caught too. The check reads a few thousand numbers; on accelerators it would
    synchronise the device, which is one reason this path is CPU-only.
    """
    params = attn.position_bias_parameters()
    entries = _BIAS_CACHE.setdefault(attn, {})
    key = None if mask is None else tuple(mask.shape)
    hit = entries.get(key)
    if hit is not None:
        cached_mask, snapshot, bias = hit
        same = all(p.dtype == s.dtype and torch.equal(p, s) for p, s in zip(params, snapshot, strict=True))
        if cached_mask is mask and same:
            return bias
    bias = attn.attention_bias(mask)
    if len(entries) > 8:
        entries.clear()
    # The entry holds the mask itself, so its id cannot be recycled while the entry lives.
    entries[key] = (mask, tuple(p.detach().clone() for p in params), bias)
    return bias


def forget(model: nn.Module) -> None:
    """Drop the cached biases of every module of ``model`` (called when it goes into training mode)."""
    for module in model.modules():
        _BIAS_CACHE.pop(module, None)


# --------------------------------------------------------------------------------------------- the block
def swin_block(block: SwinBlock, x: torch.Tensor) -> torch.Tensor:
    """``SwinBlock.forward(x)`` for eval on the CPU: gathers, image groups, the cached bias, in-place tails."""
    b, h, w, c = x.shape
    window, shift = block.window, block.shift
    hp, wp = h + -h % window, w + -w % window
    shortcut = x.reshape(b, h * w, c)
    if not block.post_norm:
        x = block.norm1(x)
    if (hp, wp) != (h, w):
        x = F.pad(x, (0, 0, 0, wp - w, 0, hp - h))
    x = x.reshape(b, hp * wp, c)
    order, back = window_order(hp, wp, window, shift, (h, w))
    bias = cached_attention_bias(block.attn, block.shift_mask(hp, wp, shift, x.device))
    group = max(1, GROUP_TOKENS // (hp * wp))
    out = shortcut.new_empty(b, h * w, c)
    for start in range(0, b, group):
        stop = min(start + group, b)
        windows = x[start:stop].index_select(1, order).view(-1, window * window, c)
        attended = window_attention(block.attn, windows, bias)
        attended = attended.view(stop - start, hp * wp, c).index_select(1, back)
        _tail_into(block, shortcut[start:stop], attended, out[start:stop])
    return out.view(b, h, w, c)


def window_attention(attn: WindowAttention, windows: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``attn(windows, bias)[0]``. In float32, that is the fused ``scaled_dot_product_attention``. In lower
    precision it is batched matmuls and a softmax instead: at Swin's 49-64 token windows torch's CPU flash kernel
    runs 1.6-2x slower than they do in bfloat16 (equal or faster in float32; benchmarks/README.md)."""
    if windows.dtype == torch.float32:
        return attn(windows, bias)[0]
    bw, n, c = windows.shape
    q, k, v, scale = attn.queries_keys_values(windows)
    heads = q.shape[1]
    logits = q @ k.transpose(-2, -1)  # (B * nW, heads, N, N)
    if scale != 1.0:
        logits.mul_(scale)
    nw = bias.shape[0] if bias.ndim == 4 else 1  # windows per image with their own mask
    logits.view(bw // nw, nw, heads, n, n).add_(bias.to(logits.dtype))
    out = logits.softmax(dim=-1) @ v  # (B * nW, heads, N, d)
    return attn.proj(out.transpose(1, 2).reshape(bw, n, c))


def _tail_into(block: SwinBlock, shortcut: torch.Tensor, attended: torch.Tensor, out: torch.Tensor) -> None:
    """The block's residuals, norms and MLP (v1 pre-norm, v2 res-post-norm) written into ``out``; ``attended``
    is overwritten. Dropout and stochastic depth are the identity in eval, so they are left out."""
    if block.post_norm:
        x = block.norm1(attended).add_(shortcut)
        torch.add(x, block.norm2(_mlp(block.mlp, x)), out=out)
    else:
        x = attended.add_(shortcut)
        torch.add(x, _mlp(block.mlp, block.norm2(x)), out=out)


def _mlp(mlp: Mlp, x: torch.Tensor) -> torch.Tensor:
    """``mlp(x)`` with the activation written into fc1's output (one 4x-wide tensor less)."""
    hidden = mlp.fc1(x)
    act = mlp.act
    if isinstance(act, nn.GELU):
        hidden = torch.ops.aten.gelu_(hidden, approximate=act.approximate)
    elif isinstance(act, nn.ReLU):
        hidden = torch.relu_(hidden)
    elif isinstance(act, nn.SiLU):
        hidden = F.silu(hidden, inplace=True)
    else:
        hidden = act(hidden)
    return mlp.fc2(hidden)
