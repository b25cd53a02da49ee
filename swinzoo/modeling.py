"""Swin Transformer (v1) and Swin Transformer V2 as in the papers, in one implementation.

Internally every stage works on a (B, H, W, C) token grid. v1 and v2 differ only in:

* ``WindowAttention``: scaled dot product + learned relative-position table (v1) versus cosine attention with a
  clamped per-head temperature (``logit_scale``) and a log-spaced continuous position bias MLP (v2);
* ``SwinBlock``: pre-norm (v1) versus res-post-norm (v2);
* ``PatchMerging``: norm-then-reduce (v1) versus reduce-then-norm (v2).

What depends only on shapes (shift masks, relative position indices, v2's log-spaced coordinate table) is
computed once. This file is the reference code path; eval on the CPU without gradients runs the same maths
through :mod:`swinzoo.fast_inference` (gathers, image groups, in-place tails, a cached position bias), switched
off per model with ``model.set_inference_path("readable")`` (the model's ``inference_path`` attribute).
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
import torch.utils._pytree
import torch.utils.checkpoint
from torch import nn

from . import fast_inference
from .config import SwinConfig
from .fast_inference import is_tracing

INFERENCE_PATHS = ("fast", "readable")
# The epsilon of the embedding, patch-merging and backbone stage norms: transformers builds these with LayerNorm's
# default whatever config.layer_norm_eps says (which only the block norms and the final norm read); the official
# code has no such setting (1e-5 everywhere). See docs/geometry.md.
FIXED_EPS = 1e-5
MASK_VALUE = -100.0  # what the official code adds to attention logits across shifted-window seams


# --------------------------------------------------------------------------------------------- outputs
class ModelOutput(OrderedDict):
    """transformers' ``ModelOutput`` contract without transformers (an optional dependency): a dataclass whose
    fields that are not None are also the items of an ordered dict, so ``out.logits``, ``out["logits"]``,
    ``out[0]``, ``len(out)``, ``out.keys()`` and ``out.to_tuple()`` all work. Registered as a pytree node, so
    ``torch.export`` and ``torch.compile`` see through it."""

    # Every subclass is a @dataclass; declared so type checkers accept ``fields(self)`` here.
    __dataclass_fields__: ClassVar[dict[str, Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        torch.utils._pytree.register_pytree_node(
            cls,
            lambda out: ([getattr(out, f.name) for f in fields(out)], [f.name for f in fields(out)]),
            lambda values, names: cls(**dict(zip(names, values, strict=True))),
            serialized_type_name=f"{cls.__module__}.{cls.__qualname__}",
        )

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                super().__setitem__(f.name, value)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return dict(self.items())[key]
        return self.to_tuple()[key]

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__dataclass_fields__ and value is not None:
            super().__setitem__(name, value)
        elif name in self.__dataclass_fields__ and name in self.keys():
            super().__delitem__(name)
        super().__setattr__(name, value)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        super().__setattr__(key, value)

    def __reduce__(self) -> tuple[Any, ...]:  # pickle / copy as the dataclass, not as a dict
        return type(self), tuple(getattr(self, f.name) for f in fields(self))

    def to_tuple(self) -> tuple[Any, ...]:
        """The fields that are not None, in declaration order: what ``return_dict=False`` returns."""
        return tuple(getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None)


# Field order follows transformers' output classes (``out[0]`` and ``return_dict=False`` tuples index alike).
@dataclass
class SwinModelOutput(ModelOutput):
    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    reshaped_hidden_states: tuple[torch.Tensor, ...] | None = None


@dataclass
class SwinImageClassifierOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    reshaped_hidden_states: tuple[torch.Tensor, ...] | None = None


@dataclass
class SwinMaskedImageModelingOutput(ModelOutput):
    loss: torch.Tensor | None = None
    reconstruction: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    reshaped_hidden_states: tuple[torch.Tensor, ...] | None = None


@dataclass
class BackboneOutput(ModelOutput):
    feature_maps: tuple[torch.Tensor, ...] | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


# --------------------------------------------------------------------------------------------- windows
def _cached_tensors(maxsize: int) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    """``lru_cache`` for functions that build constant tensors, built outside inference mode.

    A tensor first built under ``torch.inference_mode()`` (predict, an export check) is an inference tensor, and
    autograd refuses to save one for backward: a later training step through the same cache entry would fail.
    """

    def wrap(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        @lru_cache(maxsize=maxsize)
        @functools.wraps(fn)
        def cached(*args: Any) -> torch.Tensor:
            with torch.inference_mode(False), torch.no_grad():
                return fn(*args)

        return cached

    return wrap


@_cached_tensors(maxsize=64)
def relative_position_index(window: int) -> torch.Tensor:
    """(N, N) index into the (2w-1)^2 table of relative offsets between the N = w*w tokens of a window."""
    cpu = torch.device("cpu")  # explicit: these are cached and must never be created on a meta device
    ys, xs = torch.meshgrid(torch.arange(window, device=cpu), torch.arange(window, device=cpu), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])  # (2, N)
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)  # offsets shifted to start at 0
    return rel[0] * (2 * window - 1) + rel[1]


@_cached_tensors(maxsize=64)
def log_spaced_coords(window: int, pretrained_window: int) -> torch.Tensor:
    """V2's ((2w-1)^2, 2) relative coordinates, scaled to [-8, 8] by the pretraining window, then log-spaced."""
    offsets = torch.arange(-(window - 1), window, dtype=torch.float32, device="cpu")
    table = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij"), dim=-1)  # (2w-1, 2w-1, 2)
    denom = (pretrained_window if pretrained_window > 0 else window) - 1
    if denom > 0:
        table = table / denom
    table = table * 8
    table = torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)
    return table.reshape(-1, 2)


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, window*window, C); H and W must be multiples of window."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).transpose(2, 3)
    return x.reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`."""
    c = windows.shape[-1]
    x = windows.view(-1, height // window, width // window, window, window, c).transpose(2, 3)
    return x.reshape(-1, height, width, c)


def _shift_mask(height: int, width: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    """Label the nine regions the cyclic shift brings together; tokens of different regions must not attend."""
    regions = torch.zeros(height, width, device=device)
    bands = ((0, -window), (-window, -shift), (-shift, None))
    label = 0
    for hs in bands:
        for ws in bands:
            regions[slice(*hs), slice(*ws)] = label
            label += 1
    labels = window_partition(regions[None, :, :, None], window).squeeze(-1)  # (nW, N)
    differ = labels[:, None, :] != labels[:, :, None]
    return torch.zeros(differ.shape, device=device).masked_fill(differ, MASK_VALUE)


@_cached_tensors(maxsize=128)
def _cached_shift_mask(height: int, width: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    # Built on the CPU (explicitly: never on a meta device), copied once per device: no per-call transfer.
    return _shift_mask(height, width, window, shift, torch.device("cpu")).to(device)


def shifted_window_mask(height: int, width: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    """(nW, N, N) additive mask that stops attention between tokens that the cyclic shift made neighbours."""
    if is_tracing():  # computed in the graph (constant-folded there), not fetched from a Python-side cache
        return _shift_mask(height, width, window, shift, device)
    return _cached_shift_mask(height, width, window, shift, torch.device(device))


# --------------------------------------------------------------------------------------------- small modules
def activation(name: str) -> nn.Module:
    if name == "gelu":
        return nn.GELU()
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return nn.GELU(approximate="tanh")
    if name == "relu":
        return nn.ReLU()
    if name in ("silu", "swish"):
        return nn.SiLU()
    if name == "quick_gelu":
        return _QuickGELU()
    raise ValueError(f"hidden_act: unknown activation {name!r}")


class _QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch per sample during training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        return x * x.new_empty(shape).bernoulli_(keep) / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    """fc1 -> activation -> fc2, the per-token feed-forward of every block."""

    def __init__(self, dim: int, hidden: int, act: str, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = activation(act)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


# --------------------------------------------------------------------------------------------- the paper's modules
class PatchEmbedding(nn.Module):
    """Patch partition + linear embedding (a strided conv), LayerNorm, optional mask token and absolute positions."""

    def __init__(self, config: SwinConfig, use_mask_token: bool = False) -> None:
        super().__init__()
        self.patch_size = config.patch_size
        self.grid = config.patches_resolution
        self.proj = nn.Conv2d(config.num_channels, config.embed_dim, config.patch_size, config.patch_size)
        self.norm = nn.LayerNorm(config.embed_dim, eps=FIXED_EPS)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, config.embed_dim)) if use_mask_token else None
        self.position_embeddings = (
            nn.Parameter(torch.zeros(1, config.num_patches, config.embed_dim))
            if config.use_absolute_embeddings
            else None
        )
        self.drop = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, H, W) -> (B, H/p, W/p, D); any H, W (zero-padded on the bottom/right to a patch multiple)."""
        h, w = pixel_values.shape[-2:]
        pad_h, pad_w = -h % self.patch_size, -w % self.patch_size
        if pad_h or pad_w:
            pixel_values = F.pad(pixel_values, (0, pad_w, 0, pad_h))
        x = self.norm(self.proj(pixel_values).permute(0, 2, 3, 1))
        if bool_masked_pos is not None:
            if self.mask_token is None:
                raise ValueError(
                    "bool_masked_pos given but this model has no mask token (use SwinForMaskedImageModeling)"
                )
            b, gh, gw, _ = x.shape
            if bool_masked_pos.shape[-1] != gh * gw:
                raise ValueError(
                    f"bool_masked_pos has {bool_masked_pos.shape[-1]} positions, "
                    f"the input has {gh}x{gw}={gh * gw} patches"
                )
            mask = bool_masked_pos.reshape(b, gh, gw, 1).to(x.dtype)
            x = x * (1.0 - mask) + self.mask_token.view(1, 1, 1, -1) * mask
        if self.position_embeddings is not None:
            x = x + self._positions(x.shape[1], x.shape[2])
        return self.drop(x)

    def _positions(self, height: int, width: int) -> torch.Tensor:
        """Absolute positions on a (height, width) grid: bicubic-interpolated when it differs from the trained grid."""
        if self.position_embeddings is None:
            raise ValueError("this model has no absolute position embeddings (use_absolute_embeddings=False)")
        grid = self.position_embeddings.view(1, *self.grid, -1)
        if (height, width) == tuple(self.grid):
            return grid
        grid = F.interpolate(grid.permute(0, 3, 1, 2), size=(height, width), mode="bicubic", align_corners=False)
        return grid.permute(0, 2, 3, 1)


# Geometry buffers: computed from the config, never learned. The official files and timm store them (suffixes of
# their state-dict keys); swinzoo rebuilds them, so a conversion, a load or a retarget drops them.
GEOMETRY_BUFFERS = ("relative_position_index", "relative_coords_table", "attn_mask")


class WindowAttention(nn.Module):
    """(Shifted-)window multi-head self-attention with a relative position bias.

    v1: softmax(q k^T / sqrt(d) + B) with B looked up in a learned ((2w-1)^2, heads) table.
    v2: softmax(cos(q, k) * exp(min(logit_scale, log 100)) + B), B = 16 * sigmoid(MLP(log-spaced offsets)).
    """

    # Buffers (register_buffer): declared so type checkers see tensors, not Module.__getattr__'s Tensor | Module.
    relative_position_index: torch.Tensor
    relative_coords_table: torch.Tensor  # v2 only

    def __init__(self, config: SwinConfig, dim: int, num_heads: int, window: int, pretrained_window: int) -> None:
        super().__init__()
        self.version = config.version
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.window = window
        self.pretrained_window = pretrained_window
        self.attn_dropout = config.attention_probs_dropout_prob
        if self.version == 1:
            self.qkv = nn.Linear(dim, 3 * dim, bias=config.qkv_bias)
            self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        else:
            # v2 keeps a query and a value bias but no key bias (a key bias cancels in cosine attention).
            self.qkv = nn.Linear(dim, 3 * dim, bias=False)
            self.q_bias = nn.Parameter(torch.zeros(dim)) if config.qkv_bias else None
            self.v_bias = nn.Parameter(torch.zeros(dim)) if config.qkv_bias else None
            self.logit_scale = nn.Parameter(torch.full((num_heads, 1, 1), math.log(10.0)))
            self.cpb_mlp = nn.Sequential(
                nn.Linear(2, 512), nn.ReLU(inplace=True), nn.Linear(512, num_heads, bias=False)
            )
            self.register_buffer(
                "relative_coords_table", log_spaced_coords(window, pretrained_window), persistent=False
            )
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(config.hidden_dropout_prob)

    # ------------------------------------------------------------------ the bias and the temperature
    def position_bias(self) -> torch.Tensor:
        """(heads, N, N) relative position bias, computed from the parameters."""
        n = self.window * self.window
        if self.version == 1:
            table: torch.Tensor = self.relative_position_bias_table
        else:
            table = 16 * torch.sigmoid(self.cpb_mlp(self.relative_coords_table))
        return table[self.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1)

    def position_bias_parameters(self) -> tuple[torch.Tensor, ...]:
        """The parameters :meth:`position_bias` depends on (what a cache of it must be keyed on)."""
        if self.version == 1:
            return (self.relative_position_bias_table,)
        return tuple(self.cpb_mlp.parameters())

    def attention_bias(self, mask: torch.Tensor | None) -> torch.Tensor:
        """Position bias plus shift mask: (heads, N, N), or (nW, heads, N, N) with a (nW, N, N) mask."""
        bias = self.position_bias()
        if mask is None:
            return bias
        return bias.unsqueeze(0) + mask.unsqueeze(1).to(bias.dtype)

    def temperature(self) -> torch.Tensor:
        """v2's (heads, 1, 1) factor on the cosine similarities, capped at 100."""
        return torch.clamp(self.logit_scale, max=math.log(1.0 / 0.01)).exp()

    def _cosine_qkv(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``F.normalize(q) * temperature``, ``F.normalize(k)`` and v, each (B * nW, heads, N, d), from the packed
        (B * nW, N, 3, heads, d) projections: q and k in one pass, the temperature folded into 1/|q|."""
        temperature = self.temperature().view(1, 1, 1, -1, 1)
        qk = qkv[:, :, :2]
        factor = torch.linalg.vector_norm(qk, dim=-1, keepdim=True).clamp_min(1e-12).reciprocal()  # F.normalize's eps
        factor = factor * torch.cat([temperature, torch.ones_like(temperature)], dim=2)
        q, k = (qk * factor).permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, qkv[:, :, 2].transpose(1, 2)

    def qkv_bias(self) -> torch.Tensor | None:
        if self.version == 1 or self.q_bias is None or self.v_bias is None:
            return self.qkv.bias
        return torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])

    def queries_keys_values(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        """q, k, v (B * nW, heads, N, d) each, and the factor on q @ k^T: v1's 1/sqrt(d), or 1 for v2, whose
        temperature is already folded into its normalised q."""
        bw, n, _ = windows.shape
        qkv = F.linear(windows, self.qkv.weight, self.qkv_bias()).view(bw, n, 3, self.num_heads, self.head_dim)
        if self.version == 1:  # scaled dot product
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
            return q, k, v, self.head_dim**-0.5
        q, k, v = self._cosine_qkv(qkv)  # cosine similarity times a per-head temperature
        return q, k, v, 1.0

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        windows: torch.Tensor,
        bias: torch.Tensor,
        head_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """windows: (B * nW, N, C); bias: from :meth:`attention_bias`. Returns the attended windows and, if asked,
        the attention probabilities (B * nW, heads, N, N)."""
        bw, n, c = windows.shape
        heads = self.num_heads
        q, k, v, scale = self.queries_keys_values(windows)
        bias = bias.to(q.dtype)
        nw = bias.shape[0] if bias.ndim == 4 else 1  # windows per image that need their own mask
        dropout = self.attn_dropout if self.training else 0.0
        probs = None
        if output_attentions or head_mask is not None:
            logits = ((q * scale) @ k.transpose(-2, -1)).view(bw // nw, nw, heads, n, n) + bias
            probs = F.dropout(logits.softmax(dim=-1), dropout, self.training)
            if head_mask is not None:
                probs = probs * head_mask.view(1, 1, -1, 1, 1).to(probs.dtype)
            probs = probs.view(bw, heads, n, n)
            out = probs @ v
        else:
            # The fused kernels take a 4-D mask: the per-window mask is repeated for every image.
            attn_mask = bias.unsqueeze(0) if bias.ndim == 3 else bias.repeat(bw // nw, 1, 1, 1)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout, scale=scale)
        out = out.transpose(1, 2)
        if is_tracing():
            # The traced strides of SDPA's output are those of the kernel picked at trace time; decompositions
            # (torch.export -> ONNX) may pick another, so the graph must not record a stride-dependent view.
            out = out.clone(memory_format=torch.contiguous_format)
        out = self.proj_drop(self.proj(out.reshape(bw, n, c)))
        return out, probs


class SwinBlock(nn.Module):
    """(Shifted-)window attention + MLP with residuals; pre-norm in v1, res-post-norm in v2.

    The forward below is the paper's: roll, partition into windows, attend, reverse, roll back. With ``fast``
    (the model's ``inference_path == "fast"``, its default), eval on the CPU without gradients runs the same
    maths through :mod:`swinzoo.fast_inference` instead.
    """

    def __init__(
        self,
        config: SwinConfig,
        dim: int,
        num_heads: int,
        window: int,
        shift: int,
        pretrained_window: int,
        drop_path: float,
    ) -> None:
        super().__init__()
        self.post_norm = config.version == 2
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.attn = WindowAttention(config, dim, num_heads, window, pretrained_window)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio), config.hidden_act, config.hidden_dropout_prob)

    def shift_mask(self, height: int, width: int, shift: int, device: torch.device) -> torch.Tensor | None:
        return shifted_window_mask(height, width, self.window, shift, device) if shift else None

    def forward(
        self,
        x: torch.Tensor,
        head_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        fast: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if fast and fast_inference.applies(x, self.training, head_mask, output_attentions):
            return fast_inference.swin_block(self, x), None
        _, h, w, _ = x.shape
        window, shift = self.window, self.shift  # fixed by the configured size, whatever the input (docs/geometry.md)
        shortcut = x
        if not self.post_norm:
            x = self.norm1(x)
        pad_h, pad_w = -h % window, -w % window
        if pad_h or pad_w:  # bottom and right, to window multiples
            x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        hp, wp = h + pad_h, w + pad_w
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        bias = self.attn.attention_bias(self.shift_mask(hp, wp, shift, x.device))
        attended, probs = self.attn(window_partition(x, window), bias, head_mask, output_attentions)
        x = window_reverse(attended, window, hp, wp)
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        x = x[:, :h, :w, :]
        if self.post_norm:  # v2: x + norm(attention(x)), then x + norm(mlp(x))
            x = shortcut + self.drop_path(self.norm1(x))
            return x + self.drop_path(self.norm2(self.mlp(x))), probs
        # v1: x + attention(norm(x)), then x + mlp(norm(x))
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x))), probs


class PatchMerging(nn.Module):
    """Concatenate each 2x2 neighbourhood (4C) and project to 2C; v1 norms before, v2 after the projection."""

    def __init__(self, config: SwinConfig, dim: int) -> None:
        super().__init__()
        self.norm_first = config.version == 1
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim if self.norm_first else 2 * dim, eps=FIXED_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
            h, w = h + h % 2, w + w % 2
        # Channel order of the paper's code: (0,0), (1,0), (0,1), (1,1) as (row, col) offsets.
        x = x.view(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 4, 2, 5).reshape(b, h // 2, w // 2, 4 * c)
        if self.norm_first:
            return self.reduction(self.norm(x))
        return self.norm(self.reduction(x))


class SwinStage(nn.Module):
    """Blocks alternating regular and shifted windows, then patch merging (except after the last stage)."""

    def __init__(self, config: SwinConfig, index: int, drop_paths: Sequence[float]) -> None:
        super().__init__()
        dim = config.embed_dim * 2**index
        window, can_shift = config.stage_window(index)
        self.blocks = nn.ModuleList(
            SwinBlock(
                config,
                dim,
                config.num_heads[index],
                window,
                window // 2 if (can_shift and i % 2 == 1) else 0,
                config.pretrained_window_sizes[index],
                drop_paths[i],
            )
            for i in range(config.depths[index])
        )
        self.merge = PatchMerging(config, dim) if index < config.num_layers - 1 else None
        self.gradient_checkpointing = False
        self.checkpoint_kwargs: dict[str, Any] = {}  # torch.utils.checkpoint's keywords (use_reentrant)

    def forward(
        self,
        x: torch.Tensor,
        head_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        fast: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """x: (B, H, W, C). Returns (the merged grid, the (B, H*W, C) tokens before merging, the attentions)."""
        attentions = []
        for block in self.blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                # Activations of the block are recomputed in backward instead of kept: memory for compute.
                x, probs = torch.utils.checkpoint.checkpoint(
                    block, x, head_mask, output_attentions, fast, **self.checkpoint_kwargs
                )
            else:
                x, probs = block(x, head_mask, output_attentions, fast)
            if probs is not None:
                attentions.append(probs)
        before_merge, x = on_path(x)
        if self.merge is not None:
            x = self.merge(x)
        return x, before_merge, attentions


def on_path(grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, H, W, C) -> (tokens (B, H*W, C), grid as a view of those tokens).

    The caller goes on from the returned grid, so the tokens it reports as a hidden state are on the gradient
    path (``retain_grad`` works, a loss on them trains the model), as transformers' hidden states are.
    """
    b, h, w, c = grid.shape
    tokens = grid.reshape(b, h * w, c)
    return tokens, tokens.view(b, h, w, c)


# --------------------------------------------------------------------------------------------- models
class SwinPreTrainedModel(nn.Module):
    """Weight init, config handling and save/load shared by every head.

    ``inference_path`` (an attribute of every model, set with :meth:`set_inference_path`): ``"fast"``, the
    default, runs eval on the CPU without gradients through :mod:`swinzoo.fast_inference`; ``"readable"`` runs
    every forward through the code of this module. Both compute the same function (tests and ``swinzoo verify``
    check both).
    """

    config: SwinConfig
    loaded_format: str  # the layout from_pretrained read: "swinzoo", "transformers" or "timm"; "" if built here
    retarget_record: Any  # swinzoo.retarget's record of how the weights were moved to this geometry, or None
    image_processor: Any  # the checkpoint's eval transform (swinzoo.processing.ImageProcessor), set by from_pretrained
    image_processor_error: str | None  # why from_pretrained attached no processor (say, a non-square image_size)
    inference_path: str  # "fast" or "readable" (see the class docstring)
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = True

    def __init__(self, config: SwinConfig) -> None:
        super().__init__()
        if not isinstance(config, SwinConfig):
            raise TypeError(f"expected a SwinConfig, got {type(config).__name__}")
        self.config = config
        self.loaded_format = ""
        self.retarget_record = None
        self.image_processor = None
        self.image_processor_error = None
        self.inference_path = "fast"

    def init_weights(self) -> None:
        self.apply(self._init_module)

    def set_inference_path(self, path: str) -> SwinPreTrainedModel:
        """``"fast"`` or ``"readable"`` for this model and the models inside it (see the class docstring)."""
        if path not in INFERENCE_PATHS:
            raise ValueError(f"inference path {path!r}: expected one of {', '.join(INFERENCE_PATHS)}")
        for module in self.modules():
            if isinstance(module, SwinPreTrainedModel):
                module.inference_path = path
        return self

    def get_input_embeddings(self) -> nn.Module:
        """The patch projection (transformers' ``get_input_embeddings`` of its vision models)."""
        swin = self if isinstance(self, SwinModel) else cast(SwinModel, self.swin)
        return swin.patch_embed.proj

    def get_output_embeddings(self) -> None:
        return None  # no tied output embeddings in a vision model

    @property
    def is_gradient_checkpointing(self) -> bool:
        return any(getattr(m, "gradient_checkpointing", False) for m in self.modules())

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict[str, Any] | None = None) -> None:
        """Recompute each block's activations in backward (transformers' switch; ``use_reentrant`` defaults to
        True as there). Takes effect in training mode with gradients on."""
        kwargs = {"use_reentrant": True, **(gradient_checkpointing_kwargs or {})}
        for module in self.modules():
            if isinstance(module, SwinStage):
                module.gradient_checkpointing = True
                module.checkpoint_kwargs = dict(kwargs)

    def gradient_checkpointing_disable(self) -> None:
        for module in self.modules():
            if isinstance(module, SwinStage):
                module.gradient_checkpointing = False

    def train(self, mode: bool = True) -> SwinPreTrainedModel:
        if mode:  # training never reads the eval bias cache: let its memory go
            fast_inference.forget(self)
        return super().train(mode)

    def _init_module(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, WindowAttention) and module.version == 1:
            nn.init.trunc_normal_(module.relative_position_bias_table, std=std)
        elif isinstance(module, PatchEmbedding) and module.position_embeddings is not None:
            nn.init.trunc_normal_(module.position_embeddings, std=std)

    def _flags(self, output_attentions: bool | None, output_hidden_states: bool | None) -> tuple[bool, bool]:
        """A forward's keywords, None meaning the config's setting (as in transformers)."""
        c = self.config
        return (
            c.output_attentions if output_attentions is None else output_attentions,
            c.output_hidden_states if output_hidden_states is None else output_hidden_states,
        )

    def _finish(self, result: ModelOutput, return_dict: bool | None) -> Any:
        """``result``, or its tuple for ``return_dict=False``. Unset, the config decides, and a model given to
        torch.jit.trace itself returns the tuple (the tracer refuses dict outputs; transformers needs its
        ``torchscript`` setting for this)."""
        if return_dict is None:
            return_dict = self.config.return_dict and not _traced_as_a_whole(self)
        return result if return_dict else result.to_tuple()

    def save_pretrained(self, directory: str | Path, **kwargs: Any) -> Path:
        from .loading import save_pretrained

        return save_pretrained(self, directory, **kwargs)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **kwargs: Any) -> SwinPreTrainedModel:
        from .loading import from_pretrained

        return from_pretrained(name_or_path, model_class=cls, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload this model to the Hub (see :func:`swinzoo.loading.push_to_hub`)."""
        from .loading import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)


def _traced_as_a_whole(model: nn.Module) -> bool:
    """Whether ``model`` is the module torch.jit.trace was given (not one called inside a traced wrapper, which
    may read ``.logits``): the tracer names the module it traces ``"__module"``."""
    if not torch.jit.is_tracing():
        return False
    names = getattr(torch.jit._trace, "_trace_module_map", None) or {}
    return names.get("__module") is model


def _per_stage_head_mask(head_mask: Any, num_stages: int) -> list[torch.Tensor | None]:
    """head_mask: None, or one entry per stage (None or a (heads,) tensor of multipliers, 1 keeps a head)."""
    if head_mask is None:
        return [None] * num_stages
    if len(head_mask) != num_stages:
        raise ValueError(f"head_mask needs one entry per stage ({num_stages}), got {len(head_mask)}")
    return list(head_mask)


@dataclass
class StageTrace:
    """What one pass through the stages saw: tokens (B, H*W, C) on the gradient path, with their grid sizes."""

    final: torch.Tensor  # (B, H, W, C) after the last stage
    after: list[torch.Tensor]  # embeddings, then each stage after its merge
    before: list[torch.Tensor]  # each stage before its merge
    sizes_after: list[tuple[int, int]]
    sizes_before: list[tuple[int, int]]
    attentions: list[torch.Tensor]


def _grid(tokens: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W), transformers' reshaped hidden state."""
    return tokens.view(tokens.shape[0], *size, tokens.shape[-1]).permute(0, 3, 1, 2)


class SwinModel(SwinPreTrainedModel):
    """Patch embedding, four stages and the final LayerNorm; the pooled output is the mean over tokens."""

    def __init__(self, config: SwinConfig, add_pooling_layer: bool = True, use_mask_token: bool = False) -> None:
        super().__init__(config)
        self.patch_embed = PatchEmbedding(config, use_mask_token=use_mask_token)
        total = sum(config.depths)
        rates = [config.drop_path_rate * i / max(total - 1, 1) for i in range(total)]  # linear stochastic depth
        starts = [sum(config.depths[:i]) for i in range(config.num_layers)]
        self.stages = nn.ModuleList(
            SwinStage(config, i, rates[starts[i] : starts[i] + config.depths[i]]) for i in range(config.num_layers)
        )
        self.norm = nn.LayerNorm(config.num_features, eps=config.layer_norm_eps)
        self.add_pooling_layer = add_pooling_layer
        self.init_weights()

    def forward_stages(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        head_mask: Any = None,
        output_attentions: bool = False,
    ) -> StageTrace:
        """Run the embedding and the stages, keeping every stage's tokens (on the gradient path)."""
        fast = self.inference_path == "fast"
        tokens, x = on_path(self.patch_embed(pixel_values, bool_masked_pos))
        trace = StageTrace(x, [tokens], [], [tuple(x.shape[1:3])], [], [])  # type: ignore[list-item]
        for stage, stage_head_mask in zip(self.stages, _per_stage_head_mask(head_mask, len(self.stages)), strict=True):
            size = tuple(x.shape[1:3])
            x, before_merge, probs = stage(x, stage_head_mask, output_attentions, fast)
            tokens, x = on_path(x)
            trace.after.append(tokens)
            trace.sizes_after.append(tuple(x.shape[1:3]))  # type: ignore[arg-type]
            trace.before.append(before_merge)
            trace.sizes_before.append(size)  # type: ignore[arg-type]
            if self.config.output_block_attentions:
                trace.attentions.extend(probs)
            elif probs:  # transformers' convention: one per stage, that of its last block
                trace.attentions.append(probs[-1])
        trace.final = x
        return trace

    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        head_mask: Any = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        output_hidden_states_before_downsampling: bool = False,
        return_dict: bool | None = None,
        interpolate_pos_encoding: bool = True,
    ) -> Any:
        """transformers' keywords; ``interpolate_pos_encoding`` is accepted for its callers: absolute positions are
        always interpolated to the input (``PatchEmbedding._positions``)."""
        output_attentions, output_hidden_states = self._flags(output_attentions, output_hidden_states)
        trace = self.forward_stages(pixel_values, bool_masked_pos, head_mask, output_attentions)
        x = self.norm(trace.final)
        pooled = x.mean(dim=(1, 2)) if self.add_pooling_layer else None
        hidden = None
        reshaped = None
        if output_hidden_states:
            if output_hidden_states_before_downsampling:
                tokens, sizes = [trace.after[0], *trace.before], [trace.sizes_after[0], *trace.sizes_before]
            else:
                tokens, sizes = trace.after, trace.sizes_after
            hidden = tuple(tokens)
            reshaped = tuple(_grid(t, size) for t, size in zip(tokens, sizes, strict=True))
        out = SwinModelOutput(
            last_hidden_state=x.flatten(1, 2),
            pooler_output=pooled,
            hidden_states=hidden,
            attentions=tuple(trace.attentions) if output_attentions else None,
            reshaped_hidden_states=reshaped,
        )
        return self._finish(out, return_dict)


class SwinForImageClassification(SwinPreTrainedModel):
    """SwinModel + linear head on the pooled output (loss as in transformers when labels are given)."""

    def __init__(self, config: SwinConfig) -> None:
        super().__init__(config)
        self.swin = SwinModel(config)
        self.head = nn.Linear(config.num_features, config.num_labels)
        self._init_module(self.head)

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        head_mask: Any = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        interpolate_pos_encoding: bool = True,  # accepted; positions are always interpolated (see SwinModel)
    ) -> Any:
        output_attentions, output_hidden_states = self._flags(output_attentions, output_hidden_states)
        out = self.swin(
            pixel_values,
            head_mask=head_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.head(out.pooler_output)
        loss = None if labels is None else classification_loss(logits, labels, self.config)
        result = SwinImageClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
            reshaped_hidden_states=out.reshaped_hidden_states,
        )
        return self._finish(result, return_dict)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, config: SwinConfig) -> torch.Tensor:
    """transformers' rule: ``config.problem_type`` picks MSE, cross-entropy or multi-label BCE; unset, it is
    inferred (and recorded on the config, as transformers does) from the label count and the labels' dtype."""
    num_labels = logits.shape[-1]
    if config.problem_type is None:
        if num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    if config.problem_type == "regression":
        if num_labels == 1:
            return F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
        return F.mse_loss(logits, labels.to(logits.dtype))
    if config.problem_type == "single_label_classification":
        return F.cross_entropy(logits.view(-1, num_labels), labels.view(-1))
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def normalized_pixel_targets(pixels: torch.Tensor, patch_size: int) -> torch.Tensor:
    """SimMIM V2's targets: each pixel standardised by the mean and (unbiased) variance of its patch_size^2
    neighbourhood, the neighbourhood cut at the image border."""
    pad = patch_size // 2
    mean = F.avg_pool2d(pixels, patch_size, stride=1, padding=pad, count_include_pad=False)
    mean_sq = F.avg_pool2d(pixels**2, patch_size, stride=1, padding=pad, count_include_pad=False)
    count = F.avg_pool2d(torch.ones_like(pixels), patch_size, stride=1, padding=pad, count_include_pad=True)
    count = count * patch_size**2
    var = ((mean_sq - mean**2) * count / (count - 1)).clamp(min=0.0)
    return (pixels - mean) / (var + 1e-6).sqrt()


class SimMIMDecoder(nn.Module):
    """SimMIM's one-layer prediction head: 1x1 conv to stride^2 * C values per token, then pixel shuffle."""

    def __init__(self, config: SwinConfig) -> None:
        super().__init__()
        stride = config.encoder_stride
        self.conv = nn.Conv2d(config.num_features, stride**2 * config.num_channels, kernel_size=1)
        self.pixel_shuffle = nn.PixelShuffle(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pixel_shuffle(self.conv(x))


class SwinForMaskedImageModeling(SwinPreTrainedModel):
    """SimMIM: masked patches replaced by a learned token, pixels regressed with a masked L1 loss."""

    def __init__(self, config: SwinConfig) -> None:
        super().__init__(config)
        self.swin = SwinModel(config, add_pooling_layer=False, use_mask_token=True)
        self.decoder = SimMIMDecoder(config)
        self._init_module(self.decoder.conv)

    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        head_mask: Any = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        interpolate_pos_encoding: bool = True,  # accepted; positions are always interpolated (see SwinModel)
    ) -> Any:
        output_attentions, output_hidden_states = self._flags(output_attentions, output_hidden_states)
        out = self.swin(
            pixel_values,
            bool_masked_pos=bool_masked_pos,
            head_mask=head_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        b, _, h, w = pixel_values.shape
        grid = out.last_hidden_state.transpose(1, 2)
        gh, gw = self._final_grid(h, w)
        reconstruction = self.decoder(grid.reshape(b, -1, gh, gw))
        loss = None
        if bool_masked_pos is not None:
            loss = self.masked_loss(pixel_values, reconstruction, bool_masked_pos)
        result = SwinMaskedImageModelingOutput(
            loss=loss,
            reconstruction=reconstruction,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
            reshaped_hidden_states=out.reshaped_hidden_states,
        )
        return self._finish(result, return_dict)

    def _final_grid(self, height: int, width: int) -> tuple[int, int]:
        gh, gw = -(-height // self.config.patch_size), -(-width // self.config.patch_size)
        for _ in range(self.config.num_layers - 1):
            gh, gw = -(-gh // 2), -(-gw // 2)
        return gh, gw

    def masked_loss(
        self, pixel_values: torch.Tensor, reconstruction: torch.Tensor, bool_masked_pos: torch.Tensor
    ) -> torch.Tensor:
        """Mean L1 over masked pixels and channels (optionally against locally normalised targets)."""
        p = self.config.patch_size
        b, c, h, w = pixel_values.shape
        gh, gw = -(-h // p), -(-w // p)
        mask = bool_masked_pos.reshape(b, gh, gw).repeat_interleave(p, 1).repeat_interleave(p, 2)
        mask = mask[:, :h, :w].unsqueeze(1).to(pixel_values.dtype)
        target = pixel_values
        if self.config.mim_norm_target:
            target = normalized_pixel_targets(pixel_values, self.config.mim_norm_target_patch_size)
        per_pixel = F.l1_loss(target, reconstruction[..., :h, :w], reduction="none")
        return (per_pixel * mask).sum() / (mask.sum() + 1e-5) / c


class SwinBackbone(SwinPreTrainedModel):
    """Feature pyramid: NCHW maps of the stages named in config.out_features, each LayerNorm-ed (as transformers).

    The surface of transformers' ``BackboneMixin``: ``stage_names``, ``out_features`` / ``out_indices`` (set
    either, on the model or its config, and the other follows), ``channels`` and ``num_features``.
    """

    def __init__(self, config: SwinConfig) -> None:
        super().__init__(config)
        self.swin = SwinModel(config, add_pooling_layer=False)
        self.stage_norms = nn.ModuleDict({name: self._stage_norm(name) for name in config.out_features})

    def _stage_norm(self, name: str) -> nn.LayerNorm:
        return nn.LayerNorm(self.num_features[self.config.stage_names.index(name)], eps=FIXED_EPS)

    @property
    def stage_names(self) -> list[str]:
        return list(self.config.stage_names)

    @property
    def num_features(self) -> list[int]:
        """Channels of every stage, the stem first (transformers' ``BackboneMixin.num_features``)."""
        return [self.config.embed_dim] + self.config.hidden_sizes

    @property
    def out_feature_channels(self) -> dict[str, int]:
        return dict(zip(self.stage_names, self.num_features, strict=True))

    @property
    def channels(self) -> list[int]:
        return [self.out_feature_channels[name] for name in self.out_features]

    @property
    def out_features(self) -> list[str]:
        return list(self.config.out_features)

    @out_features.setter
    def out_features(self, names: list[str] | None) -> None:
        self.config.out_features = names
        self._add_missing_norms()

    @property
    def out_indices(self) -> list[int]:
        return list(self.config.out_indices)

    @out_indices.setter
    def out_indices(self, indices: list[int] | None) -> None:
        self.config.out_indices = indices
        self._add_missing_norms()

    def _add_missing_norms(self) -> None:
        """A stage newly asked for gets a fresh LayerNorm (transformers' backbone would fail on it)."""
        device = next(self.parameters()).device
        for name in self.config.out_features:
            if name not in self.stage_norms:
                self.stage_norms[name] = self._stage_norm(name).to(device)

    def forward(
        self,
        pixel_values: torch.Tensor,
        head_mask: Any = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Any:
        output_attentions, output_hidden_states = self._flags(output_attentions, output_hidden_states)
        trace = self.swin.forward_stages(pixel_values, head_mask=head_mask, output_attentions=output_attentions)
        tokens = [trace.after[0], *trace.before]  # every stage before its merge, as transformers' backbone
        sizes = [trace.sizes_after[0], *trace.sizes_before]
        grids = dict(zip(self.config.stage_names, zip(tokens, sizes, strict=True), strict=True))
        maps = tuple(
            _grid(self.stage_norms[name](grids[name][0]), grids[name][1]).contiguous()
            for name in self.config.out_features
        )
        result = BackboneOutput(
            feature_maps=maps,
            hidden_states=tuple(tokens) if output_hidden_states else None,
            attentions=tuple(trace.attentions) if output_attentions else None,
        )
        return self._finish(result, return_dict)


TASK_CLASSES: dict[str, type[SwinPreTrainedModel]] = {
    "base": SwinModel,
    "image-classification": SwinForImageClassification,
    "masked-image-modeling": SwinForMaskedImageModeling,
    "backbone": SwinBackbone,
}
