"""``swinzoo verify``: the zoo checked against implementations swinzoo did not write.

For each zoo entry the official checkpoint is converted (or an already converted folder, the one about to be
published, is loaded), then the SAME source file is loaded into each reference by a path that does not go
through swinzoo's official converter, and both run on the sample photographs:

* ``timm``: ``create_timm_model(config)`` loaded through timm's own official-checkpoint filter
  (``checkpoint_filter_fn``). SimMIM pretrain files are checked end to end too: timm's encoder plus the
  SimMIM wrapper written out here from the paper's code (mask-token blend after the patch embedding, 1x1 conv,
  pixel shuffle, masked L1 loss), since timm has no SimMIM model.
* ``transformers``: transformers' model (``Swin*`` / ``Swinv2*``, classification or masked image modelling)
  filled from the official file by :func:`official_to_transformers`, a rename table written here for the
  purpose (it shares no code with ``converters/official.py`` nor with the mapping engine).
* ``upstream`` (needs a network): timm's Hub weights (``timm.create_model(tag, pretrained=True)``) and the
  transformers ``microsoft/*`` repos named in the manifest: the same weights as published by others.

Compared: classification logits (max |diff| and top-5 agreement per image), every stage's hidden state, the
final normed features, and for SimMIM the reconstruction and the loss under one fixed, seeded random mask.
Tolerances are per stored dtype (:data:`TOLERANCES`); everything is computed in float32.

A reference that cannot represent a checkpoint (transformers' Swin v1 with per-stage window clamps, an
architecture timm lacks) is reported "n/a" with the reason. It does not fail the entry by itself, but an entry
passes only when every part of it (encoder, classifier or SimMIM head) was checked by at least one reference
that passed; otherwise it is "unchecked", which fails. A missing reference library, a corrupt image, a source
that cannot be fetched: "error", which fails too. See docs/verification.md.
"""

from __future__ import annotations

import dataclasses
import datetime
import gc
import json
import math
import os
import re
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from . import __version__
from .config import SwinConfig
from .errors import SwinzooError
from .manifest import ZooEntry, get_entry, load_manifests

REFERENCES = ("timm", "transformers", "upstream")
DEFAULT_REFERENCES = ("timm", "transformers")
VERIFICATION_NAME = "verification.json"
PARTS = {
    "image-classification": ("encoder", "classifier"),
    "masked-image-modeling": ("encoder", "simmim-head"),
}
# Official buffers that depend only on the architecture: they are not weights, the references rebuild them.
_BUFFER_SUFFIXES = ("relative_position_index", "attn_mask", "relative_coords_table")


class VerifyError(SwinzooError, ValueError):
    """The request itself is wrong (bad --shard, --source with several entries...); nothing was verified."""


# --------------------------------------------------------------------------------------------- tolerance
@dataclass(frozen=True)
class Tolerance:
    """Allowed ``max |ours - reference|`` for one output: ``atol + rtol * max |reference|``.

    Relative to the output's own scale because Swin's residual stream grows stage by stage (hidden states of
    real checkpoints reach the hundreds) while logits and reconstructions stay near 1-10.
    """

    atol: float
    rtol: float

    def limit(self, scale: float) -> float:
        return self.atol + self.rtol * scale

    def to_dict(self) -> dict[str, float]:
        return {"atol": self.atol, "rtol": self.rtol}


# Both sides always run in float32. A bfloat16 / float16 folder is upcast, and the reference gets the source's
# weights rounded to the same dtype first, so both hold bit-identical weights and only float32 implementation
# differences remain: measured <= 1.3e-6 relative on real-size synthetic Swin-T / SwinV2-T / SimMIM Swin-L (every
# stage), 3.8e-6 for a normalised-target SimMIM loss. So one bound serves every dtype, 25-100x above that noise;
# a 1e-2 shift of one attention bias of a real-size Swin-T (the hardest case measured) comes out at 8x the bound.
# Kept per dtype so a change for one dtype is one line.
TOLERANCES: dict[str, Tolerance] = {
    "float32": Tolerance(atol=1e-5, rtol=1e-4),
    "bfloat16": Tolerance(atol=1e-5, rtol=1e-4),
    "float16": Tolerance(atol=1e-5, rtol=1e-4),
}


def tolerance_for(dtype: torch.dtype | str) -> Tolerance:
    name = str(dtype).removeprefix("torch.")
    if name not in TOLERANCES:
        raise VerifyError(f"no tolerance policy for weights stored as {name}; known: {', '.join(TOLERANCES)}")
    return TOLERANCES[name]


# --------------------------------------------------------------------------------------------- results
@dataclass
class Comparison:
    """One output compared: ``max_abs_diff`` against ``limit`` (from the tolerance and ``ref_max_abs``)."""

    name: str
    max_abs_diff: float
    ref_max_abs: float
    limit: float
    passed: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ReferenceResult:
    """What one reference said about one entry.

    ``status``: ``pass``; ``fail`` (outputs differ beyond tolerance, or top-5 disagrees); ``n/a`` (the reference
    cannot represent this checkpoint: ``reason`` says why); ``error`` (it could not run: missing library,
    no network, a load failure; ``reason`` has the message).
    """

    reference: str
    status: str
    reason: str = ""
    library: str = ""
    library_version: str = ""
    checked: tuple[str, ...] = ()
    comparisons: list[Comparison] = field(default_factory=list)
    top5_agreement: float | None = None
    top5_per_image: list[bool] | None = None
    seconds: float = 0.0

    def _max(self, names: Callable[[str], bool]) -> float | None:
        values = [c.max_abs_diff for c in self.comparisons if names(c.name)]
        return max(values) if values else None

    @property
    def output_max_abs_diff(self) -> float | None:
        """Logits (classifiers) or reconstruction (SimMIM pretrain)."""
        return self._max(lambda n: n in ("logits", "reconstruction"))

    @property
    def hidden_max_abs_diff(self) -> float | None:
        return self._max(lambda n: n.startswith(("stage", "hidden", "features")))

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "status": self.status,
            "reason": self.reason,
            "library": self.library,
            "library_version": self.library_version,
            "checked": list(self.checked),
            "output_max_abs_diff": self.output_max_abs_diff,
            "hidden_max_abs_diff": self.hidden_max_abs_diff,
            "top5_agreement": self.top5_agreement,
            "top5_per_image": self.top5_per_image,
            "comparisons": [c.to_dict() for c in self.comparisons],
            "seconds": round(self.seconds, 3),
        }


@dataclass
class EntryReport:
    """The verdict on one zoo entry.

    ``status``: ``pass``; ``fail`` (a reference disagrees, or the converted folder does not match its source);
    ``error`` (it could not be checked: no source, unreadable image, missing library...); ``unchecked`` (no
    reference could check some part of it); ``skipped`` (manual download, and skipping was asked for).
    Only ``pass`` and ``skipped`` count as success.
    """

    entry: str
    status: str = "error"
    layout: str = ""
    task: str = ""
    problems: list[str] = field(default_factory=list)
    references: list[ReferenceResult] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    source: str = ""
    source_sha256: str = ""
    synthetic: bool = False
    converted: str | None = None
    dtype: str = "float32"
    tolerance: Tolerance = TOLERANCES["float32"]
    images: list[str] = field(default_factory=list)
    seed: int = 0
    mask: dict[str, Any] | None = None
    seconds: float = 0.0
    convert_seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status in ("pass", "skipped")

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry": self.entry,
            "status": self.status,
            "passed": self.passed,
            "layout": self.layout,
            "task": self.task,
            "problems": self.problems,
            "unchecked": self.unchecked,
            "source": self.source,
            "source_sha256": self.source_sha256,
            "synthetic": self.synthetic,
            "converted": self.converted,
            "dtype": self.dtype,
            "tolerance": self.tolerance.to_dict(),
            "images": self.images,
            "seed": self.seed,
            "mask": self.mask,
            "references": [r.to_dict() for r in self.references],
            "seconds": round(self.seconds, 3),
            "convert_seconds": round(self.convert_seconds, 3),
        }


# --------------------------------------------------------------------------------------------- helpers
def library_versions() -> dict[str, str | None]:
    """Versions of torch and the reference libraries (None when one is not installed)."""
    out: dict[str, str | None] = {"swinzoo": __version__, "torch": torch.__version__}
    for name in ("timm", "transformers"):
        try:
            module = __import__(name)
            out[name] = getattr(module, "__version__", "unknown")
        except ImportError:
            out[name] = None
    return out


def _import_reference(name: str):
    try:
        return __import__(name)
    except ImportError as exc:
        raise ImportError(
            f"the {name} reference needs the '{name}' package, which cannot be imported ({exc}); "
            "install the references with: pip install 'swinzoo[verify]'"
        ) from exc


def simmim_mask(
    count: int, image_size: int, patch_size: int, mask_patch_size: int, mask_ratio: float, seed: int
) -> torch.Tensor:
    """SimMIM's random mask as ``bool_masked_pos`` (count, (image_size / patch_size)^2), reproducibly seeded.

    As the official MaskGenerator: the image is cut into ``mask_patch_size`` squares, ``ceil(ratio * squares)``
    of them are masked (a random permutation per image), and each square covers
    ``(mask_patch_size / patch_size)^2`` model patches.
    """
    if mask_patch_size % patch_size:
        raise VerifyError(f"mask_patch_size {mask_patch_size} is not a multiple of patch_size {patch_size}")
    side = -(-image_size // mask_patch_size)
    scale = mask_patch_size // patch_size
    grid = image_size // patch_size
    squares = side * side
    masked = math.ceil(squares * mask_ratio)
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        flat = torch.zeros(squares, dtype=torch.bool)
        flat[torch.randperm(squares, generator=g)[:masked]] = True
        full = flat.view(side, side).repeat_interleave(scale, 0).repeat_interleave(scale, 1)
        out.append(full[:grid, :grid].reshape(-1))
    return torch.stack(out)


def local_norm_targets(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """SimMIM V2's normalised targets, from their definition with box sums over an integral image.

    Each pixel is standardised by the mean and the unbiased variance (clamped at 0, + 1e-6) of the
    ``size x size`` window centred on it, the window cut at the image border. Written independently of
    swinzoo's pooling-based version, in float64.
    """
    if size % 2 == 0:
        raise VerifyError(f"norm target patch size {size} must be odd (a window centred on each pixel)")
    x = pixels.double()
    _, _, h, w = x.shape
    r = size // 2

    def bounds(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = torch.arange(n)
        return (i - r).clamp(0, n), (i + r + 1).clamp(0, n)

    y0, y1 = bounds(h)
    x0, x1 = bounds(w)

    def box(t: torch.Tensor) -> torch.Tensor:
        s = F.pad(t.cumsum(2).cumsum(3), (1, 0, 1, 0))
        return s[:, :, y1][..., x1] - s[:, :, y0][..., x1] - s[:, :, y1][..., x0] + s[:, :, y0][..., x0]

    n = ((y1 - y0)[:, None] * (x1 - x0)[None, :]).double()
    total, squares = box(x), box(x * x)
    mean = total / n
    var = ((squares - total * total / n) / (n - 1)).clamp(min=0.0)
    return ((x - mean) / (var + 1e-6).sqrt()).to(pixels.dtype)


def masked_l1_loss(
    pixels: torch.Tensor, reconstruction: torch.Tensor, mask: torch.Tensor, patch_size: int, target_size: int | None
) -> torch.Tensor:
    """SimMIM's loss: mean L1 over masked pixels, divided by the channels (optionally vs normalised targets)."""
    b, c, h, w = pixels.shape
    grid = mask.view(b, h // patch_size, w // patch_size)
    pixel_mask = grid.repeat_interleave(patch_size, 1).repeat_interleave(patch_size, 2).unsqueeze(1).float()
    target = local_norm_targets(pixels, target_size) if target_size else pixels
    per_pixel = (target - reconstruction).abs()
    return (per_pixel * pixel_mask).sum() / (pixel_mask.sum() + 1e-5) / c


def _compare(name: str, ours: torch.Tensor, ref: torch.Tensor, tol: Tolerance) -> Comparison:
    ours, ref = ours.detach().double(), ref.detach().double()
    if tuple(ours.shape) != tuple(ref.shape):
        return Comparison(
            name, math.inf, math.nan, 0.0, False, f"shapes differ: swinzoo {tuple(ours.shape)}, {tuple(ref.shape)}"
        )
    diff = (ours - ref).abs().max().item() if ours.numel() else 0.0
    scale = ref.abs().max().item() if ref.numel() else 0.0
    if not math.isfinite(diff):
        return Comparison(name, math.inf, scale, tol.limit(scale), False, "non-finite values")
    limit = tol.limit(scale)
    return Comparison(name, diff, scale, limit, diff <= limit)


def top5_agreement(ours: torch.Tensor, ref: torch.Tensor, limit: float) -> list[bool]:
    """Per image: do both give the same top-5 classes (as a set)?

    A disagreement is forgiven only for a tie at the boundary: every class in the difference has a reference
    logit within ``2 * limit`` of the reference's 5th-largest one, so float noise may order them either way.
    """
    k = min(5, ref.shape[-1])
    agree = []
    for a, b in zip(ours.double(), ref.double(), strict=True):
        top_a, top_b = set(a.topk(k).indices.tolist()), set(b.topk(k).indices.tolist())
        if top_a == top_b:
            agree.append(True)
            continue
        kth = b.topk(k).values[-1].item()
        agree.append(all(abs(b[c].item() - kth) <= 2 * limit for c in top_a ^ top_b))
    return agree


def _release(ref: weakref.ref) -> None:
    """Make sure a model whose last name was just deleted is gone before the next one is built.

    Reference counting frees it at once; a full collection (~0.5 s with transformers imported) runs only
    when something still holds it in a reference cycle.
    """
    if ref() is not None:
        gc.collect()


def _round_through(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if not t.is_floating_point():
        return t
    if dtype != torch.float32:
        t = t.to(dtype)
    return t.to(torch.float32)


# --------------------------------------------------------------------------------------------- swinzoo side
@dataclass
class _Outputs:
    """What a model produced on the sample batch; every tensor float32 on the CPU."""

    logits: torch.Tensor | None = None
    reconstruction: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    before_merge: list[torch.Tensor] = field(default_factory=list)  # (B, H, W, C) per stage
    hidden: list[torch.Tensor] = field(default_factory=list)  # (B, L, C): embeddings, after each stage
    features: torch.Tensor | None = None  # (B, H, W, C) after the final LayerNorm


def _run_swinzoo(model: torch.nn.Module, pixels: torch.Tensor, mask: torch.Tensor | None) -> _Outputs:
    """One forward of the public model; forward hooks keep each stage's output before patch merging."""
    before: dict[int, torch.Tensor] = {}
    normed: list[torch.Tensor] = []
    hooks = [
        stage.register_forward_hook(lambda _m, _i, out, i=i: before.__setitem__(i, out[1]))
        for i, stage in enumerate(model.swin.stages)
    ]
    hooks.append(model.swin.norm.register_forward_hook(lambda _m, _i, out: normed.append(out)))
    try:
        with torch.no_grad():
            if mask is None:
                out = model(pixels, output_hidden_states=True)
            else:
                out = model(pixels, bool_masked_pos=mask, output_hidden_states=True)
    finally:
        for h in hooks:
            h.remove()
    result = _Outputs(
        before_merge=[before[i].float() for i in range(len(before))],
        hidden=[h.float() for h in out.hidden_states],
        features=normed[-1].float(),
    )
    if mask is None:
        result.logits = out.logits.float()
    else:
        result.reconstruction, result.loss = out.reconstruction.float(), out.loss.float()
    return result


# --------------------------------------------------------------------------------------------- transformers mapping
# Official names -> transformers names, inside one block ``layers.{i}.blocks.{j}.`` (``{base}`` = swin / swinv2).
# The fused qkv projection is split into query, key and value; everything else is a plain rename.
_BLOCK_V1_LEGACY = {
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
    "attn.proj": "attention.output.dense",
    "attn.relative_position_bias_table": "attention.self.relative_position_bias_table",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
}
_BLOCK_V1_QPROJ = {  # transformers >= 5 renamed Swin v1's attention
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
    "attn.proj": "attention.o_proj",
    "attn.relative_position_bias_table": "attention.relative_position_bias.relative_position_bias_table",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_BLOCK_V2 = {
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
    "attn.proj": "attention.output.dense",
    "attn.q_bias": "attention.self.query.bias",
    "attn.v_bias": "attention.self.value.bias",  # v2 has no key bias
    "attn.logit_scale": "attention.self.logit_scale",
    "attn.cpb_mlp": "attention.self.continuous_position_bias_mlp",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
}
_QKV = {"legacy": ("attention.self.query", "attention.self.key", "attention.self.value"),
        "q_proj": ("attention.q_proj", "attention.k_proj", "attention.v_proj")}  # fmt: skip


def official_to_transformers(
    state: dict[str, torch.Tensor], version: int, simmim: bool, style: str = "legacy"
) -> dict[str, torch.Tensor]:
    """An official (Microsoft) state dict renamed into transformers' Swin / Swinv2 layout.

    Written for verification, apart from swinzoo's converter: a plain table of renames per official name,
    the fused ``qkv`` split into query / key / value. Buffers the models rebuild (relative_position_index,
    attn_mask, relative_coords_table) are dropped. ``style`` is ``q_proj`` for transformers >= 5 Swin v1.
    """
    base = "swin" if version == 1 else "swinv2"
    block_table = _BLOCK_V2 if version == 2 else (_BLOCK_V1_QPROJ if style == "q_proj" else _BLOCK_V1_LEGACY)
    qkv_names = _QKV["legacy" if version == 2 else style]
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        k = key
        if simmim:
            if k.startswith("decoder."):
                out[k] = value  # decoder.0 (1x1 conv) in both
                continue
            if not k.startswith("encoder."):
                unknown.append(key)
                continue
            k = k.removeprefix("encoder.")
            if k == "mask_token":
                out[f"{base}.embeddings.mask_token"] = value
                continue
            if k.startswith("head."):
                continue  # SimMIM pretraining trains no classifier
        if k.endswith(_BUFFER_SUFFIXES):
            continue
        block = re.fullmatch(r"layers\.(\d+)\.blocks\.(\d+)\.(.+)", k)
        if block:
            i, j, rest = block.groups()
            prefix = f"{base}.encoder.layers.{i}.blocks.{j}."
            if rest in ("attn.qkv.weight", "attn.qkv.bias"):
                kind = rest.rsplit(".", 1)[1]
                for name, chunk in zip(qkv_names, value.chunk(3, dim=0), strict=True):
                    out[f"{prefix}{name}.{kind}"] = chunk.contiguous()
                continue
            for old, new in block_table.items():
                if rest == old or rest.startswith(old + "."):
                    out[prefix + new + rest[len(old) :]] = value
                    break
            else:
                unknown.append(key)
            continue
        renames = [
            (r"patch_embed\.proj\.(.+)", rf"{base}.embeddings.patch_embeddings.projection.\1"),
            (r"patch_embed\.norm\.(.+)", rf"{base}.embeddings.norm.\1"),
            (r"layers\.(\d+)\.downsample\.(.+)", rf"{base}.encoder.layers.\1.downsample.\2"),
            (r"norm\.(.+)", rf"{base}.layernorm.\1"),
            (r"head\.(.+)", r"classifier.\1"),
        ]
        for pattern, repl in renames:
            if re.fullmatch(pattern, k):
                out[re.sub(pattern, repl, k)] = value
                break
        else:
            if k == "absolute_pos_embed":
                # Swinv2 and transformers 4.x Swin keep a class-token row in front (unused by patches); 5.x Swin not.
                if not (version == 1 and style == "q_proj"):
                    value = torch.cat([torch.zeros_like(value[:, :1]), value], 1)
                out[f"{base}.embeddings.position_embeddings"] = value
            else:
                unknown.append(key)
    if unknown:
        raise ValueError(f"no transformers name for official key(s): {', '.join(unknown[:10])}")
    return out


# --------------------------------------------------------------------------------------------- references
@dataclass
class _Context:
    """Everything a reference needs about one entry."""

    entry: ZooEntry
    config: SwinConfig
    task: str
    source_path: Path
    synthetic: bool
    pixels: torch.Tensor
    mask: torch.Tensor | None
    ours: _Outputs
    dtype: torch.dtype
    tol: Tolerance


def _official_state(ctx: _Context) -> dict[str, torch.Tensor]:
    """The source file's state dict, its weights rounded through the folder's dtype, as float32.

    Stored buffers are not weights (a converted folder does not hold them): they keep their values.
    """
    from .safeload import load_state_dict

    return {
        k: v if k.endswith(_BUFFER_SUFFIXES) else _round_through(v, ctx.dtype)
        for k, v in load_state_dict(ctx.source_path).items()
    }


def _timm_not_applicable(config: SwinConfig) -> str | None:
    if config.use_absolute_embeddings:
        return "timm's Swin has no absolute position embeddings"
    if config.hidden_act != "gelu" or config.layer_norm_eps != 1e-5:
        return "timm's Swin uses GELU and LayerNorm eps 1e-5"
    return None


def _timm_forward(model: torch.nn.Module, pixels: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """timm's final normed features (NHWC) and each stage's output (NHWC; a timm stage merges first)."""
    with torch.no_grad():
        final, stages = model.forward_intermediates(pixels, norm=False, output_fmt="NCHW")
    return final, [s.permute(0, 2, 3, 1) for s in stages]


def _timm_simmim_forward(
    model: torch.nn.Module, pixels: torch.Tensor, mask: torch.Tensor, mask_token: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """timm's encoder run the way the official SimMIM wrapper runs its Swin: masked tokens after the patch
    embedding (LayerNorm included) replaced by ``mask_token``, then the stages and the final norm."""
    with torch.no_grad():
        x = model.patch_embed(pixels)  # (B, H, W, C)
        b, h, w, _ = x.shape
        weight = mask.view(b, h, w, 1).to(x.dtype)
        x = x * (1 - weight) + mask_token.view(1, 1, 1, -1) * weight
        stages = []
        for layer in model.layers:
            x = layer(x)
            stages.append(x)
        return model.norm(x), stages


def _compare_buffers(state: dict[str, torch.Tensor], model: torch.nn.Module, prefix: str) -> list[str]:
    """Stored official buffers vs the ones timm builds for this configuration (window, image size, pretrained
    windows): a folder whose config disagrees with its source shows here even where weights would still load."""
    theirs = dict(model.named_buffers())
    problems = []
    for key, value in state.items():
        if not key.endswith(_BUFFER_SUFFIXES):
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


def _stage_comparisons(ours: _Outputs, stages: list[torch.Tensor], final: torch.Tensor, tol: Tolerance):
    comps = [
        _compare(f"stage{i + 1}", a, b, tol) for i, (a, b) in enumerate(zip(ours.before_merge, stages, strict=False))
    ]
    if len(stages) != len(ours.before_merge):
        comps.append(
            Comparison("stages", math.inf, math.nan, 0.0, False, f"{len(ours.before_merge)} vs {len(stages)} stages")
        )
    comps.append(_compare("features", ours.features, final, tol))
    return comps


def _classification_comparisons(
    result: ReferenceResult, ours: torch.Tensor, logits: torch.Tensor, tol: Tolerance
) -> None:
    comp = _compare("logits", ours, logits, tol)
    result.comparisons.append(comp)
    if tuple(ours.shape) == tuple(logits.shape):
        agree = top5_agreement(ours, logits, comp.limit)
        result.top5_per_image = agree
        result.top5_agreement = sum(agree) / len(agree)


def _mim_comparisons(
    result: ReferenceResult, ctx: _Context, reconstruction: torch.Tensor, loss: torch.Tensor | None
) -> None:
    result.comparisons.append(_compare("reconstruction", ctx.ours.reconstruction, reconstruction, ctx.tol))
    if loss is None:
        target = ctx.config.mim_norm_target_patch_size if ctx.config.mim_norm_target else None
        loss = masked_l1_loss(ctx.pixels, reconstruction, ctx.mask, ctx.config.patch_size, target)
    result.comparisons.append(_compare("loss", ctx.ours.loss, loss, ctx.tol))


def _finish(result: ReferenceResult, parts: tuple[str, ...]) -> ReferenceResult:
    ok = bool(result.comparisons) and all(c.passed for c in result.comparisons)
    top5_ok = result.top5_per_image is None or all(result.top5_per_image)
    result.status = "pass" if ok and top5_ok else "fail"
    if result.status == "fail":
        bad = [c.name for c in result.comparisons if not c.passed]
        if not top5_ok:
            bad.append("top-5")
        result.reason = result.reason or f"outside tolerance: {', '.join(bad)}"
    result.checked = parts if result.status == "pass" else ()
    return result


def _reference_timm(ctx: _Context) -> ReferenceResult:
    """timm's model, loaded through timm's own official-checkpoint filter from the source file."""
    result = ReferenceResult("timm", "error", library="timm")
    timm = _import_reference("timm")
    result.library_version = timm.__version__
    reason = _timm_not_applicable(ctx.config)
    if reason:
        result.status, result.reason = "n/a", reason
        return result
    from timm.models import swin_transformer, swin_transformer_v2

    from .converters.timm_layout import create_timm_model

    module = swin_transformer if ctx.config.version == 1 else swin_transformer_v2
    simmim = ctx.task == "masked-image-modeling"
    official = _official_state(ctx)
    prefix = "encoder." if simmim else ""
    if simmim:
        model = create_timm_model(ctx.config.copy(num_labels=1))
        model.reset_classifier(0)
        encoder = {
            k.removeprefix(prefix): v
            for k, v in official.items()
            if k.startswith(prefix) and k != "encoder.mask_token" and not k.startswith("encoder.head.")
        }
    else:
        model = create_timm_model(ctx.config)
        encoder = official
    model.eval()
    model.load_state_dict(module.checkpoint_filter_fn(encoder, model), strict=True)
    buffer_problems = _compare_buffers(official, model, prefix)
    if simmim:
        final, stages = _timm_simmim_forward(model, ctx.pixels, ctx.mask, official["encoder.mask_token"])
        with torch.no_grad():
            grid = final.permute(0, 3, 1, 2)
            reconstruction = F.pixel_shuffle(
                F.conv2d(grid, official["decoder.0.weight"], official["decoder.0.bias"]), ctx.config.encoder_stride
            )
    else:
        final, stages = _timm_forward(model, ctx.pixels)
        with torch.no_grad():
            logits = model.forward_head(final)
    ref = weakref.ref(model)
    del model, encoder
    _release(ref)
    result.comparisons = _stage_comparisons(ctx.ours, stages, final, ctx.tol)
    if simmim:
        _mim_comparisons(result, ctx, reconstruction, None)
    else:
        _classification_comparisons(result, ctx.ours.logits, logits, ctx.tol)
    if buffer_problems:
        result.comparisons.append(Comparison("buffers", math.inf, math.nan, 0.0, False, "; ".join(buffer_problems)))
        result.reason = "stored buffers disagree with the configuration: " + "; ".join(buffer_problems[:3])
    return _finish(result, PARTS[ctx.task])


def _transformers_run(model: torch.nn.Module, ctx: _Context, result: ReferenceResult, parts) -> ReferenceResult:
    """Run transformers' model; compare each stage before merging (the input of its ``downsample``, which any
    transformers version has; the last stage is the last hidden state), the final LayerNorm's output, the
    hidden states after merging (``output_hidden_states``) and the task output.

    The states before merging matter: a LayerNorm removes a uniform shift, so a shifted residual stream
    (say, a bias off by a constant) can leave every later state and the logits unchanged.
    """
    base = model.swin if hasattr(model, "swin") else model.swinv2
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
    result.comparisons = [
        _compare(f"stage{i + 1}", a.flatten(1, 2), b.float(), ctx.tol)
        for i, (a, b) in enumerate(zip(ours.before_merge, stages, strict=False))
    ]
    result.comparisons.append(_compare("features", ours.features.flatten(1, 2), normed[-1].float(), ctx.tol))
    result.comparisons += [
        _compare("hidden0 (embeddings)" if i == 0 else f"hidden{i}", a, b, ctx.tol)
        for i, (a, b) in enumerate(zip(ours.hidden, hidden, strict=False))
    ]
    if len(hidden) != len(ours.hidden) or len(stages) != len(ours.before_merge):
        result.comparisons.append(
            Comparison("hidden", math.inf, math.nan, 0.0, False, f"{len(ours.hidden)} vs {len(hidden)} states")
        )
    if ctx.task == "masked-image-modeling":
        # transformers' own loss has no normalised targets: with them, the loss is computed here from its output.
        loss = None if ctx.config.mim_norm_target else out.loss.float()
        _mim_comparisons(result, ctx, out.reconstruction.float(), loss)
    else:
        _classification_comparisons(result, ctx.ours.logits, out.logits.float(), ctx.tol)
    return _finish(result, parts)


def _reference_transformers(ctx: _Context) -> ReferenceResult:
    """transformers' model filled from the source by :func:`official_to_transformers`."""
    result = ReferenceResult("transformers", "error", library="transformers")
    transformers = _import_reference("transformers")
    result.library_version = transformers.__version__
    from .converters.transformers_layout import create_transformers_model

    try:
        model = create_transformers_model(ctx.config, ctx.task)
    except ValueError as exc:  # e.g. Swin v1 with per-stage window clamps
        result.status, result.reason = "n/a", str(exc)
        return result
    model.eval()
    style = "q_proj" if any(".attention.q_proj." in k for k in model.state_dict()) else "legacy"
    mapped = official_to_transformers(
        _official_state(ctx), ctx.config.version, ctx.task == "masked-image-modeling", style
    )
    model.load_state_dict(mapped, strict=True)
    del mapped
    ref = weakref.ref(model)
    try:
        return _transformers_run(model, ctx, result, PARTS[ctx.task])
    finally:
        del model
        _release(ref)


def _hub_offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover - huggingface_hub is a core dependency
        return False


def _reference_upstream(ctx: _Context) -> list[ReferenceResult]:
    """The manifest's timm Hub tag and transformers repo: the same weights as published by others."""
    results = []
    up = ctx.entry.upstream
    for lib, ident in (("timm", up.timm), ("transformers", up.transformers)):
        name = f"upstream-{lib}"
        result = ReferenceResult(name, "error", library=lib)
        started = time.perf_counter()
        try:
            module = _import_reference(lib)
            result.library_version = module.__version__
            if not ident:
                result.status, result.reason = "n/a", f"the manifest names no {lib} upstream copy of this entry"
            elif ctx.synthetic:
                result.reason = (
                    "a synthetic checkpoint has random weights: it cannot match the published upstream weights "
                    f"({ident}); verify the real source against upstream"
                )
            elif _hub_offline():
                result.reason = f"cannot download {ident}: the Hugging Face Hub is offline (HF_HUB_OFFLINE=1)"
            elif lib == "timm":
                result = _upstream_timm(ctx, ident, result)
            else:
                result = _upstream_transformers(ctx, ident, result)
            if ident and up.transformers_inferred and lib == "transformers":
                result.reason = (result.reason + "; " if result.reason else "") + (
                    "the manifest marks this repo id as inferred (it may hold other weights)"
                )
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded as an error that fails the entry
            result.status = "error"
            result.reason = f"could not load upstream {lib} weights {ident!r}: {type(exc).__name__}: {exc}"
        result.seconds = time.perf_counter() - started
        results.append(result)
    return results


def _round_module(model: torch.nn.Module, dtype: torch.dtype) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(_round_through(p.float(), dtype))


def _upstream_timm(ctx: _Context, tag: str, result: ReferenceResult) -> ReferenceResult:
    import timm

    if ctx.task != "image-classification":
        result.status, result.reason = "n/a", "timm has no SimMIM models"
        return result
    model = timm.create_model(tag, pretrained=True).eval().float()
    _round_module(model, ctx.dtype)
    final, stages = _timm_forward(model, ctx.pixels)
    with torch.no_grad():
        logits = model.forward_head(final)
    ref = weakref.ref(model)
    del model
    _release(ref)
    result.comparisons = _stage_comparisons(ctx.ours, stages, final, ctx.tol)
    _classification_comparisons(result, ctx.ours.logits, logits, ctx.tol)
    return _finish(result, PARTS[ctx.task])


def _upstream_transformers(ctx: _Context, repo: str, result: ReferenceResult) -> ReferenceResult:
    import transformers

    v1 = ctx.config.version == 1
    cls = {
        ("image-classification", True): transformers.SwinForImageClassification,
        ("image-classification", False): transformers.Swinv2ForImageClassification,
        ("masked-image-modeling", True): transformers.SwinForMaskedImageModeling,
        ("masked-image-modeling", False): transformers.Swinv2ForMaskedImageModeling,
    }[(ctx.task, v1)]
    model = cls.from_pretrained(repo, attn_implementation="eager").eval().float()
    _round_module(model, ctx.dtype)
    ref = weakref.ref(model)
    try:
        return _transformers_run(model, ctx, result, PARTS[ctx.task])
    finally:
        del model
        _release(ref)


# --------------------------------------------------------------------------------------------- converted folders
def _check_folder(folder: Path, entry: ZooEntry, sha256: str) -> list[str]:
    """The folder about to be published must come from this source: sha256 in conversion.json and in the
    safetensors header equal the source file's, and it names this entry."""
    from .convert import CONVERSION_NAME
    from .io import WEIGHTS_NAME, read_safetensors_metadata

    problems = []
    conversion_file = folder / CONVERSION_NAME
    try:
        conversion = json.loads(conversion_file.read_text())
    except FileNotFoundError:
        problems.append(f"{conversion_file}: missing (a converted folder records its source there)")
        conversion = {}
    except json.JSONDecodeError as exc:
        problems.append(f"{conversion_file}: not valid JSON ({exc})")
        conversion = {}
    try:
        metadata = read_safetensors_metadata(folder / WEIGHTS_NAME)
    except Exception as exc:  # noqa: BLE001 - safetensors has its own error types
        problems.append(f"{folder / WEIGHTS_NAME}: cannot read its metadata ({exc})")
        metadata = {}
    for where, recorded in ((conversion_file, conversion), (folder / WEIGHTS_NAME, metadata)):
        if not recorded:
            continue
        seen = recorded.get("source_sha256")
        if seen != sha256:
            problems.append(
                f"{where}: source_sha256 is {seen!r}, but the source file's sha256 is {sha256}: "
                "this folder was not converted from this file"
            )
        named = recorded.get("entry")
        if named and named != entry.name:
            problems.append(f"{where}: made for entry {named!r}, not {entry.name!r}")
    return problems


def _check_folder_config(config: SwinConfig, entry: ZooEntry) -> list[str]:
    """Architecture fields of the folder's config.json against the manifest (fields read off the checkpoint
    at convert time excepted): the references are built from this config, so it must be the entry's."""
    derived = set(entry.architecture.derive_from_checkpoint)
    want = entry.config()
    problems = []
    for name in ("version", "image_size", "patch_size", "embed_dim", "depths", "num_heads", "window_size"):
        if name in derived:
            continue
        if getattr(config, name) != getattr(want, name):
            problems.append(f"config.json: {name} is {getattr(config, name)}, the manifest says {getattr(want, name)}")
    if "window_size" not in derived and config.pretrained_window_sizes != want.pretrained_window_sizes:
        problems.append(
            f"config.json: pretrained_window_sizes is {config.pretrained_window_sizes}, "
            f"the manifest says {want.pretrained_window_sizes}"
        )
    return problems


def _folder_for(converted: Path, name: str, several: bool) -> Path:
    from .io import WEIGHTS_NAME

    if (converted / WEIGHTS_NAME).is_file():
        if several:
            raise VerifyError(
                f"--converted {converted} is one model folder, but several entries are selected; "
                "give a parent folder holding one NAME/ folder per entry"
            )
        return converted
    return converted / name


def write_verification(folder: Path, report: EntryReport) -> Path:
    """``verification.json`` beside the converted weights (atomically): what the model card reports."""
    versions = library_versions()
    data = {
        "swinzoo_version": __version__,
        "verified_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "entry": report.entry,
        "status": report.status,
        "passed": report.passed,
        "problems": report.problems,
        "unchecked": report.unchecked,
        "source": report.source,
        "source_sha256": report.source_sha256,
        # the exact bytes that were checked: publish refuses a folder whose weights changed since
        "weights_sha256": _sha256_of(folder / "model.safetensors"),
        "synthetic": report.synthetic,
        "dtype": report.dtype,
        "tolerance": report.tolerance.to_dict(),
        "images": report.images,
        "seed": report.seed,
        "mask": report.mask,
        "libraries": {k: versions.get(k) for k in ("torch", "timm", "transformers")},
        "references": [
            {
                "reference": r.reference,
                "library": r.library,
                "library_version": r.library_version,
                "status": r.status,
                "reason": r.reason,
                "output_max_abs_diff": r.output_max_abs_diff,
                "hidden_max_abs_diff": r.hidden_max_abs_diff,
                "top5_agreement": r.top5_agreement,
                "comparisons": [c.to_dict() for c in r.comparisons],
            }
            for r in report.references
        ],
    }
    path = folder / VERIFICATION_NAME
    _write_json_atomic(path, _finite(data))
    return path


def _sha256_of(path: Path) -> str | None:
    if not path.is_file():
        return None
    from .fetch import sha256_file

    return sha256_file(path)


def _write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, allow_nan=False, default=_json_default) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _json_default(value: Any) -> Any:
    raise TypeError(f"not JSON serialisable: {value!r}")


def _finite(data: Any) -> Any:
    """inf / nan (shape mismatches) as strings so the JSON stays strict."""
    if isinstance(data, float) and not math.isfinite(data):
        return str(data)
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_finite(v) for v in data]
    return data


# --------------------------------------------------------------------------------------------- verify
_REFERENCE_FUNCS = {"timm": _reference_timm, "transformers": _reference_transformers}


def parse_references(value: str | Iterable[str]) -> tuple[str, ...]:
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    unknown = [n for n in names if n not in REFERENCES]
    if unknown or not names:
        raise VerifyError(f"--reference: {', '.join(unknown) or '(empty)'} not one of {', '.join(REFERENCES)}")
    return tuple(dict.fromkeys(names))


def verify_entry(
    name: str,
    *,
    synthetic: bool = False,
    source: str | os.PathLike | None = None,
    converted: str | os.PathLike | None = None,
    references: Sequence[str] = DEFAULT_REFERENCES,
    images_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    progress: bool = False,
) -> EntryReport:
    """Verify one zoo entry; never raises for a problem with the entry itself (it is in the report).

    ``converted``: a converted folder to check instead of converting in memory; ``verification.json`` is
    written into it. ``references``: any of ``timm``, ``transformers``, ``upstream``.
    """
    from .convert import convert, resolve_source
    from .fetch import ManualDownloadRequired
    from .images import load_samples
    from .io import from_pretrained

    started = time.perf_counter()
    references = parse_references(references)
    report = EntryReport(entry=name, seed=seed)
    entry = get_entry(name)
    report.layout = entry.layout
    cache = Path(cache_dir) if cache_dir else None
    folder = Path(converted) if converted is not None else None
    report.converted = str(folder) if folder else None
    ctx = None
    try:
        pixels, report.images = load_samples(entry.preprocessing, images_dir)
        t0 = time.perf_counter()
        if folder is None:
            conversion = convert(
                name, source=source, synthetic=synthetic, seed=seed, cache_dir=cache, progress=progress, write=False
            )
            model, src, config = conversion.model, conversion.source, conversion.config
            del conversion
        else:
            src = resolve_source(
                entry, source=source, synthetic=synthetic, seed=seed, cache_dir=cache, progress=progress
            )
            report.problems += _check_folder(folder, entry, src.sha256)
            model = from_pretrained(folder)
            config = model.config
            report.problems += _check_folder_config(config, entry)
        report.source, report.source_sha256, report.synthetic = src.description, src.sha256, src.synthetic
        dtype = next(model.parameters()).dtype
        report.dtype = str(dtype).removeprefix("torch.")
        report.tolerance = tolerance_for(dtype)
        task = "masked-image-modeling" if entry.kind == "simmim-pretrain" else "image-classification"
        report.task = task
        mask = None
        if task == "masked-image-modeling":
            sim = entry.simmim
            mask = simmim_mask(
                len(pixels), config.image_hw[0], config.patch_size, sim.mask_patch_size, sim.mask_ratio, seed
            )
            report.mask = {
                "mask_patch_size": sim.mask_patch_size,
                "mask_ratio": sim.mask_ratio,
                "seed": seed,
                "masked_patches_per_image": int(mask[0].sum()),
                "patches_per_image": int(mask.shape[1]),
            }
        ours = _run_swinzoo(model.float().eval(), pixels, mask)
        report.convert_seconds = time.perf_counter() - t0
        alive = weakref.ref(model)
        del model  # one checkpoint at a time: the references are built after swinzoo's model is gone
        _release(alive)
        ctx = _Context(entry, config, task, Path(src.path), src.synthetic, pixels, mask, ours, dtype, report.tolerance)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - the entry cannot be checked; the report says why
        report.problems.append(str(exc) if isinstance(exc, ManualDownloadRequired) else f"{type(exc).__name__}: {exc}")
        report.status = "error"
        return _done(report, started, folder)

    for ref in references:
        if ref == "upstream":
            report.references += _reference_upstream(ctx)
            continue
        t0 = time.perf_counter()
        try:
            result = _REFERENCE_FUNCS[ref](ctx)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded: an error fails the entry
            result = ReferenceResult(ref, "error", f"{type(exc).__name__}: {exc}", library=ref)
        result.seconds = time.perf_counter() - t0
        report.references.append(result)
    del ctx

    statuses = {r.status for r in report.references}
    checked = {p for r in report.references if r.status == "pass" for p in r.checked}
    report.unchecked = [p for p in PARTS[task] if p not in checked]
    if "fail" in statuses or report.problems:
        report.status = "fail"
    elif "error" in statuses:
        report.status = "error"
    elif report.unchecked:
        report.status = "unchecked"
        na = "; ".join(f"{r.reference}: {r.reason}" for r in report.references if r.status == "n/a")
        report.problems.append(f"no reference could check {', '.join(report.unchecked)}" + (f" ({na})" if na else ""))
    else:
        report.status = "pass"
    return _done(report, started, folder)


def _done(report: EntryReport, started: float, folder: Path | None) -> EntryReport:
    """Stamp the time; a converted folder gets its verification.json whatever the verdict."""
    report.seconds = time.perf_counter() - started
    if folder is not None and folder.is_dir():
        write_verification(folder, report)
        from .card import write_card

        write_card(folder)  # the card shows the verdict it now has
    return report


def select_shard(entries: Sequence[ZooEntry], shard: int, shards: int) -> list[ZooEntry]:
    """Shard ``shard`` (1-based) of ``shards``, balanced by checkpoint size; deterministic.

    Greedy: entries by decreasing ``num_params`` (then name), each onto the shard with the fewest parameters
    so far (the lowest index on a tie). The chosen entries keep their given order.
    """
    if not 1 <= shard <= shards:
        raise VerifyError(f"--shard {shard}/{shards}: K must be between 1 and N")
    loads = [0] * shards
    owner: dict[str, int] = {}
    for e in sorted(entries, key=lambda e: (-e.num_params, e.name)):
        i = min(range(shards), key=lambda s: (loads[s], s))
        loads[i] += e.num_params
        owner[e.name] = i
    return [e for e in entries if owner[e.name] == shard - 1]


def parse_shard(value: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value or "")
    if not m or int(m.group(2)) < 1:
        raise VerifyError(f"--shard {value!r}: expected K/N with 1 <= K <= N, e.g. 3/8")
    k, n = int(m.group(1)), int(m.group(2))
    if not 1 <= k <= n:
        raise VerifyError(f"--shard {value!r}: K must be between 1 and N")
    return k, n


def select_entries(names: Sequence[str] = (), *, all_entries: bool = False, shard: str | None = None) -> list[str]:
    """Entry names to verify: the given ones (checked to exist) or the whole zoo, then the shard's subset."""
    if all_entries == bool(names):
        raise VerifyError("give entry NAMEs or --all (not both)")
    zoo = load_manifests()
    chosen = list(zoo.values()) if all_entries else [get_entry(n) for n in dict.fromkeys(names)]
    if shard:
        chosen = select_shard(chosen, *parse_shard(shard))
    return [e.name for e in chosen]


def verify(
    names: Sequence[str],
    *,
    synthetic: bool = False,
    source: str | os.PathLike | None = None,
    converted: str | os.PathLike | None = None,
    references: Sequence[str] = DEFAULT_REFERENCES,
    images_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    skip_manual: bool = False,
    progress: bool = False,
    on_report: Callable[[EntryReport], None] | None = None,
) -> list[EntryReport]:
    """Verify several entries one after the other (each entry's models freed before the next one).

    ``skip_manual``: entries with no download URL (Google-Drive-only SimMIM v1) and no ``source`` are reported
    ``skipped`` instead of ``error``. ``on_report`` is called after each entry (the CLI prints a line).
    """
    from tqdm.auto import tqdm

    references = parse_references(references)
    if source is not None and len(names) != 1:
        raise VerifyError("--source is one file: it can be the source of one entry only")
    if converted is not None and not Path(converted).is_dir():
        raise VerifyError(f"--converted {converted}: no such folder")
    reports = []
    bar = tqdm(names, desc="verify", unit="entry", disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        entry = get_entry(name)
        if skip_manual and source is None and not synthetic and not entry.source.urls:
            report = EntryReport(entry=name, status="skipped", layout=entry.layout, seed=seed)
            report.problems.append(f"skipped: no download URL ({entry.source.manual_download or 'manual download'})")
        else:
            folder = _folder_for(Path(converted), name, len(names) > 1) if converted is not None else None
            report = verify_entry(
                name,
                synthetic=synthetic,
                source=source,
                converted=folder,
                references=references,
                images_dir=images_dir,
                cache_dir=cache_dir,
                seed=seed,
                progress=progress,
            )
        reports.append(report)
        gc.collect()
        if on_report is not None:
            on_report(report)
    return reports


# --------------------------------------------------------------------------------------------- output
def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return "inf"
    return f"{value:.2e}"


def table_rows(reports: Sequence[EntryReport]) -> list[list[str]]:
    rows = []
    for r in reports:
        if not r.references:
            rows.append([r.entry, "-", "-", "-", "-", r.status, f"{r.seconds:.1f}s"])
            continue
        for i, ref in enumerate(r.references):
            top5 = "-" if ref.top5_per_image is None else f"{sum(ref.top5_per_image)}/{len(ref.top5_per_image)}"
            result = ref.status if i else f"{ref.status} [{r.status}]"
            rows.append(
                [
                    r.entry if i == 0 else "",
                    ref.reference,
                    _fmt(ref.output_max_abs_diff),
                    _fmt(ref.hidden_max_abs_diff),
                    top5,
                    result,
                    f"{ref.seconds:.1f}s",
                ]
            )
    return rows


def format_table(reports: Sequence[EntryReport]) -> str:
    """The human-readable table, then one line per problem or n/a reason, then the tolerance policy."""
    header = ["entry", "reference", "logits|recon", "hidden", "top-5", "result [entry]", "time"]
    rows = table_rows(reports)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {2, 3, 4, 6}
    lines = [
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in [header, *rows]
    ]
    notes = []
    for r in reports:
        notes += [f"{r.entry}: {p}" for p in r.problems]
        notes += [
            f"{r.entry}: {ref.reference} {ref.status}: {ref.reason}"
            for ref in r.references
            if ref.reason and ref.status != "pass"
        ]
    if notes:
        lines += ["", *notes]
    dtypes = sorted({r.dtype for r in reports if r.references})
    policy = ", ".join(f"{d}: |diff| <= {TOLERANCES[d].atol:g} + {TOLERANCES[d].rtol:g} * max|ref|" for d in dtypes)
    passed = sum(r.passed for r in reports)
    lines += ["", f"{passed}/{len(reports)} entries passed" + (f"; tolerance {policy}" if policy else "")]
    return "\n".join(lines)


def summary(reports: Sequence[EntryReport]) -> dict[str, Any]:
    """Machine-readable result of a run (what ``--json`` writes)."""
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.status] = counts.get(r.status, 0) + 1
    return _finite(
        {
            "swinzoo_version": __version__,
            "libraries": library_versions(),
            "tolerances": {k: v.to_dict() for k, v in TOLERANCES.items()},
            "passed": all(r.passed for r in reports),
            "counts": counts,
            "entries": [r.to_dict() for r in reports],
        }
    )


def write_json(path: str, reports: Sequence[EntryReport]) -> None:
    """:func:`summary` as JSON to ``path`` (atomically), or to stdout for ``-``."""
    if path == "-":
        print(json.dumps(summary(reports), indent=2))
    else:
        _write_json_atomic(Path(path), summary(reports))
